"""What crosses from the parse tasks to the driver, typed, and the columns every row carries.

A task reports each file that gave no row as a `FailedFile` and each Parquet file it wrote
as a `DataFile`. They travel through ``mapInArrow`` as one Arrow table of `PARSED_SCHEMA`
(one struct column each, the other null), derived here from the dataclasses: declare a
field once and the schema, the Spark type and the conversions follow. pyarrow only.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, get_type_hints

import pyarrow as pa

UTC_MICROS = pa.timestamp("us", tz="UTC")

#: The meta columns of every row of the table: (name, Arrow type, description).
META_COLUMNS: tuple[tuple[str, pa.DataType, str], ...] = (
    ("_path", pa.string(), "the file, as listed (an archive's member: archive!/member)"),
    ("_size", pa.int64(), "file size in bytes"),
    ("_mtime", UTC_MICROS, "file modification time"),
    ("_ingested_at", UTC_MICROS, "when the run that wrote this row started"),
    ("_run_id", pa.string(), "the run that wrote this row"),
)
META_SCHEMA = pa.schema([(name, kind) for name, kind, _ in META_COLUMNS])
META_DESCRIPTIONS = {name: text for name, _, text in META_COLUMNS}
#: The meta columns that say which version of which file a row came from.
#: What joins an archive's path and a member's name in ``_path``.
MEMBER_SEPARATOR = "!/"
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
#: A member's ``_path``; group 1 is its archive's (RE2 and Java both read it).
MEMBER_PATH = (
    r"(?is)^(.*?\.(?:"
    + "|".join(x[1:].replace(".", r"\.") for x in ARCHIVE_SUFFIXES)
    + r"))"
    + MEMBER_SEPARATOR
    + ".*$"
)


def archive_suffix(name: str) -> str:
    """The archive suffix ``name`` ends with, as written (".zip", ".TGZ", ...), or ""."""
    lower = name.lower()
    return next((name[-len(s) :] for s in ARCHIVE_SUFFIXES if lower.endswith(s)), "")


def listed_paths(paths: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """The listed entry each ``_path`` comes from: the archive of a member, else itself.
    (An archive is listed, and keyed, as one file.) Paths without `MEMBER_SEPARATOR` are
    no members: a listing with none is returned as it is (the regex took ~2 µs a path,
    two thirds of comparing a listing with the table's keys)."""
    import pyarrow.compute as pc

    if not pc.any(pc.match_substring(paths, MEMBER_SEPARATOR)).as_py():
        return paths
    return pc.replace_substring_regex(paths, pattern=MEMBER_PATH, replacement=r"\1")


def listed_path_sql(column: str = "_path") -> str:
    """`listed_paths` in Spark SQL."""
    pattern = MEMBER_PATH.replace("\\", "\\\\")
    return f"regexp_replace({column}, '{pattern}', '$1')"


FILE_KEY_SCHEMA = pa.schema([META_SCHEMA.field(n) for n in ("_path", "_size", "_mtime")])

_ARROW_TYPES: dict[Any, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    bytes: pa.binary(),
    datetime.datetime: UTC_MICROS,
}


@dataclass(frozen=True)
class FailedFile:
    """A listed file that gave no row. ``message`` never holds element values."""

    _path: str
    _size: int
    _mtime: datetime.datetime
    error_class: str
    message: str


@dataclass(frozen=True)
class DataFile:
    """A Parquet file a task wrote into the table's directory, not yet committed."""

    name: str  # relative to the table's root
    n_rows: int
    file_size: int
    modified_ms: int
    stats: str  # Delta's per-file statistics, JSON
    arrow_schema: bytes  # the schema the file was written with, serialised

    @property
    def schema(self) -> pa.Schema:
        return pa.ipc.read_schema(pa.py_buffer(self.arrow_schema))

    def add_action(self) -> dict[str, Any]:
        """The Delta log's ``add`` action of this file."""
        return {
            "path": self.name,
            "partitionValues": {},
            "size": self.file_size,
            "modificationTime": self.modified_ms,
            "dataChange": True,
            "stats": self.stats,
        }


def arrow_type(record: type) -> pa.StructType:
    """The Arrow struct of a record dataclass, field by field."""
    hints = get_type_hints(record)
    return pa.struct([(f.name, _ARROW_TYPES[hints[f.name]]) for f in dataclasses.fields(record)])


#: What a parse task returns: one row per failed file or data file written.
PARSED_SCHEMA = pa.schema([("failed", arrow_type(FailedFile)), ("written", arrow_type(DataFile))])


def to_batch(records: Iterable[FailedFile | DataFile]) -> pa.RecordBatch:
    """Records as one batch of `PARSED_SCHEMA`."""
    rows = [
        {"failed": dataclasses.asdict(r)}
        if isinstance(r, FailedFile)
        else {"written": dataclasses.asdict(r)}
        for r in records
    ]
    return pa.RecordBatch.from_pylist(rows, schema=PARSED_SCHEMA)


def from_table(parsed: pa.Table | pa.RecordBatch) -> tuple[list[DataFile], list[FailedFile]]:
    """The records of a table of `PARSED_SCHEMA` (what the tasks returned)."""
    written: list[DataFile] = []
    failed: list[FailedFile] = []
    for row in parsed.to_pylist():
        if row["written"] is not None:
            written.append(DataFile(**row["written"]))
        else:
            failed.append(FailedFile(**row["failed"]))
    return written, failed
