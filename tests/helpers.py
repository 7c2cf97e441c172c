"""Helpers the test modules share: listings and rows of made-up files, and what the tests
of ingest runs read back from a table."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import socket
import warnings
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet
import pydicom
from pydicom.data import get_testdata_file
from pydicom.data.data_manager import get_charset_files
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dcm_spark.dicom.header import Header, HeaderOptions, convert_file
from dcm_spark.ingest import DRIVER_PARSE_LIMIT, IngestOptions, Summary, run
from dcm_spark.listing import LISTING_SCHEMA
from dcm_spark.records import listed_path_sql
from dcm_spark.sources.archives import is_archive


def listed(*files: tuple[str, int, int]) -> pa.Table:
    """A listing: (path, size, mtime in ms)."""
    paths, sizes, mtimes = zip(*files, strict=True)
    return pa.table(
        [
            pa.array(paths, pa.string()),
            pa.array(sizes, pa.int64()),
            pa.array([m * 1000 for m in mtimes], pa.int64()).cast(
                LISTING_SCHEMA.field("_mtime").type
            ),
        ],
        schema=LISTING_SCHEMA,
    )


def rows_of(*files: tuple[str, int, int]) -> pa.Table:
    """Instance rows as the table holds them: mtime in microseconds, and other columns."""
    paths, sizes, mtimes = zip(*files, strict=True)
    return pa.table(
        {
            "_path": pa.array(paths, pa.string()),
            "_size": pa.array(sizes, pa.int64()),
            "_mtime": pa.array([m * 1000 for m in mtimes], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "Modality": pa.array(["CT"] * len(paths), pa.string()),
        }
    )


A = ("/d/a.dcm", 10, 1000)
B = ("/d/b.dcm", 20, 2000)
C = ("/d/c.dcm", 30, 3000)
D = ("/d/d.dcm", 40, 4000)


# -- ingest runs and what they leave in a table ------------------------------------------

#: Where a run parses its files: the tests' runs are small, below `DRIVER_PARSE_LIMIT`,
#: so each names the path it takes; most take the Spark job's, which every larger run takes.
PARSED_IN = {"spark": 0, "driver": DRIVER_PARSE_LIMIT}

VOLATILE = ("_run_id", "_ingested_at")

DICOM_FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "SC_rgb.dcm"]


def ingest(spark: Any, inputs: list[Path], table: Path, where: str = "spark", **kw: Any) -> Summary:
    lines: list[str] = []
    options = IngestOptions(
        tuple(map(str, inputs)), str(table), driver_parse_limit=PARSED_IN[where], **kw
    )
    summary = run(spark, options, report=lines.append)
    assert lines and lines[-1] == summary.text()
    assert summary.parsed_in == (where if summary.parsed + summary.failed else "")
    for side in (table, Path(f"{table}_errors")):
        if (side / "_delta_log").is_dir():
            version, keys = held(spark, side)
            if (side / "_dcm_spark" / f"known-{version}.parquet").exists():
                # what the next run will trust: the table's keys, and those of archives
                # it read whose every member became an error record
                kept_version, kept = kept_keys(side)
                assert kept_version == version and set(keys) <= set(kept)
                assert all(is_archive(path) for path, _, _ in set(kept) - set(keys))
    return summary


def rows(spark: Any, table: Path, columns: str = "*") -> list[dict[str, Any]]:
    result = spark.sql(f"SELECT {columns} FROM delta.`{table}`").collect()
    return [r.asDict(recursive=True) for r in result]


def sop_uid(path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(pydicom.dcmread(path, stop_before_pixels=True, force=True).SOPInstanceUID)


def digest(root: Path) -> dict[str, tuple[str, float]]:
    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def spark_jobs(spark: Any) -> set[int]:
    """The Spark jobs this session keeps a record of (none of the tests sets a group)."""
    return set(spark.sparkContext.statusTracker().getJobIdsForGroup())


def without(df: Any, *volatile: str) -> list[tuple[Any, ...]]:
    return sorted(map(tuple, df.select(*[c for c in df.columns if c not in volatile]).collect()))


def kept_keys(table: Path) -> tuple[int, list[tuple[str, int, int]]]:
    """The version and the keys a run kept in the table's control directory (the one file)."""
    (kept,) = (table / "_dcm_spark").glob("known-*.parquet")
    data = pa.parquet.read_table(kept).to_pydict()
    version = int(kept.name.removeprefix("known-").removesuffix(".parquet"))
    return version, sorted(set(zip(data["_path"], data["_size"], data["_mtime"], strict=True)))


def held(spark: Any, table: Path) -> tuple[int, list[tuple[str, int, int]]]:
    """The table's latest version and its listed files' keys (an archive's, not its
    members'), read through Spark."""
    (version,) = spark.sql(f"DESCRIBE HISTORY delta.`{table}` LIMIT 1").select("version").first()
    listed = listed_path_sql()
    keys = spark.sql(
        f"SELECT DISTINCT {listed}, _size, unix_millis(_mtime) FROM delta.`{table}`"
    ).collect()
    return version, sorted(tuple(r) for r in keys)


def committed(table: Path) -> list[dict[str, Any]]:
    """The add actions of the files the Delta log references now (read from the log)."""
    files: dict[str, dict[str, Any]] = {}
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                files[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
    return list(files.values())


def commit(table: Path, version: int) -> dict[str, list[dict[str, Any]]]:
    """The actions of one commit of the Delta log, by kind."""
    actions: dict[str, list[dict[str, Any]]] = {}
    for line in (table / "_delta_log" / f"{version:020d}.json").read_text().splitlines():
        ((kind, action),) = json.loads(line).items()
        actions.setdefault(kind, []).append(action)
    return actions


def study_date(path: Path) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True, force=True).get("StudyDate") or None


# -- DICOM files made in memory ---------------------------------------------------------


def make_file(raw: dict[int, tuple[str, bytes]] | None = None, **elements: Any) -> bytes:
    """A small Explicit VR Little Endian file with the given elements.

    ``raw`` maps tags to (VR, bytes) written as they are, invalid or not.
    """
    ds = Dataset()
    for tag, (vr, data) in (raw or {}).items():
        ds[tag] = RawDataElement(Tag(tag), vr, len(data), data, 0, False, True)
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["dcm-spark", *sorted(elements)])
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def header_of(data: bytes, **options: Any) -> Header:
    result = convert_file(io.BytesIO(data), HeaderOptions(**options))
    assert isinstance(result, Header), result
    return result


# -- de-identification ------------------------------------------------------------------

#: The tests' HMAC key.
KEY = b"0123456789abcdef0123456789abcdef"


def pydicom_path(name: str) -> str:
    found = get_charset_files(name)[0] if name.startswith("chr") else get_testdata_file(name)
    assert found is not None, name
    return str(found)


def read_row(path: str | io.BytesIO, options: HeaderOptions | None = None) -> Header:
    header = convert_file(path, options)
    assert isinstance(header, Header), header
    return header


def all_text(value: Any) -> str:
    """A row as text, dates and times also written as in DICOM (YYYYMMDD, HHMMSS)."""
    parts: list[str] = []

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, datetime.datetime):
            parts.extend([v.strftime("%Y%m%d%H%M%S"), v.isoformat()])
        elif isinstance(v, datetime.date):
            parts.extend([v.strftime("%Y%m%d"), v.isoformat()])
        elif isinstance(v, str):
            parts.extend([v, v.replace(":", "")])
        elif v is not None:
            parts.append(str(v))

    walk(value)  # values only: column names ("DateTime") are not values
    return "\n".join(parts)


def find_key(value: Any, key: str) -> list[Any]:
    """Every value of ``key`` at any depth of a row."""
    if isinstance(value, dict):
        found = [value[key]] if key in value else []
        return found + [x for v in value.values() for x in find_key(v, key)]
    if isinstance(value, list):
        return [x for v in value for x in find_key(v, key)]
    return []


def type_names(arrow_type: Any) -> set[str]:
    """Every field name at every depth of a type, or of a dict of column types."""
    if isinstance(arrow_type, dict):
        return set(arrow_type) | {n for t in arrow_type.values() for n in type_names(t)}
    if pa.types.is_list(arrow_type):
        return type_names(arrow_type.value_type)
    if pa.types.is_struct(arrow_type):
        return type_names({f.name: f.type for f in arrow_type})
    return set()


def synthetic_file() -> io.BytesIO:
    """A file with identifying values at three depths, a private sequence in an item, an
    unparsable date (kept as text in OtherElements) and a private element."""
    inner = Dataset()
    inner.PatientName = "Poe^Edgar"
    inner.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    inner.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.9.1001"
    private_item = Dataset()
    private_item.PatientName = "Private^Person"
    item = Dataset()
    item.PatientName = "Roe^Richard"
    item.PatientID = "PID-67890"
    item.SeriesInstanceUID = "1.2.3.4.5.6.7.8.9.2002"
    item.ReferencedInstanceSequence = Sequence([inner])
    item.add_new(0x00110010, "LO", "ACME 1.0")
    item.add_new(0x00111001, "SQ", Sequence([private_item]))
    ds = Dataset()
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "PID-12345"
    ds.ReferencedSeriesSequence = Sequence([item])
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "LO", "secret private text")
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = "1.2.3.4.5.6.7.8.9.3003"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.add_new(0x00100030, "DA", "19XX0101")  # not a date: the row keeps it as text
        ds.save_as(buffer, enforce_file_format=True)
    buffer.seek(0)
    return buffer


def free_port() -> int:
    """A port of 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stored_text(*roots: Path) -> str:
    """Every file under ``roots`` (tables, side tables), raw and (Parquet) decoded: what a
    search for a value written anywhere must look through."""
    parts: list[str] = []
    for root in roots:
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            parts.append(path.read_bytes().decode("latin-1"))
            if path.suffix == ".parquet":  # its pages are compressed
                table = pyarrow.parquet.read_table(path)
                parts.append(json.dumps(table.to_pylist(), default=str, ensure_ascii=False))
    return "\n".join(parts)
