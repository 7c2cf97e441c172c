"""The Delta table as Spark sees it: its state before a run, Spark's writer for runs that
rewrite rows, and its properties."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import StructType

from dcm_spark.delta.jvm import DeltaLog
from dcm_spark.delta.properties import table_properties
from dcm_spark.paths import local_path
from dcm_spark.records import listed_path_sql

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


#: A commit file of the Delta log: ``<version, 20 digits>.json``.
COMMIT_FILE = re.compile(r"(\d{20})\.json")


def exists(spark: SparkSession, path: str) -> bool:
    """Is there a Delta table at ``path``? (A local one is read with delta-rs: Delta's own
    check loads its classes, seconds in a fresh JVM.)"""
    local = local_path(path)
    if local is not None:
        from deltalake import DeltaTable as RustTable

        return bool(RustTable.is_deltatable(local))
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def column_counts(path: str, version: int) -> dict[str, int] | None:
    """How many rows of a local table (as of ``version``) have a value in each top-level
    column, and ``""``: its rows; read with delta-rs and pyarrow, a pass over the data
    files without Spark. None where they cannot read it (not local; a table feature such
    as deletion vectors that delta-rs does not read into Arrow): count with Spark then."""
    local = local_path(path)
    if local is None:
        return None
    try:
        from deltalake import DeltaTable

        dataset = DeltaTable(local, version=version).to_pyarrow_dataset()
        counts = dict.fromkeys(["", *dataset.schema.names], 0)
        for batch in dataset.to_batches():
            counts[""] += batch.num_rows
            for name, column in zip(batch.schema.names, batch.columns, strict=True):
                counts[name] += batch.num_rows - column.null_count
    except Exception:  # what delta-rs does not read, Spark does
        return None
    return counts


@dataclass(frozen=True)
class TableState:
    """What a run needs to know of the table before it writes (`state`)."""

    schema: pa.Schema | None  # None: no table yet
    takes_data_files: bool  # `commit_files` may add files to it


def state(spark: SparkSession, path: str) -> TableState:
    """The table's schema, and whether `commit_files` may add files to it (or create it).

    Not when the table has CHECK constraints, column mapping, or column metadata
    (comments, generated or identity columns) or NOT NULL columns: Spark's Delta writer
    checks and keeps those, a commit of ready files would not. Read from the Delta log's
    metadata.
    """
    local = local_path(path)
    metadata = _local_metadata(local) if local is not None else None
    if metadata is None:
        metadata = DeltaLog(spark, path).metadata()
    if "schemaString" not in metadata:
        return TableState(None, True)
    fields = json.loads(metadata["schemaString"])
    config = metadata.get("configuration", {})
    plain = (
        not any(k.startswith("delta.constraints.") for k in config)
        and config.get("delta.columnMapping.mode", "none") == "none"
        and _plain_fields(fields["fields"])
    )
    return TableState(to_arrow_schema(StructType.fromJson(fields), timezone="UTC"), plain)


def _local_metadata(root: str) -> dict[str, Any] | None:
    """A local table's schema and properties read with delta-rs, without the JVM, as the
    log's metaData action has them ({} if no table; None if delta-rs cannot read it)."""
    if not has_log(root):
        return {}
    try:
        from deltalake import DeltaTable

        table = DeltaTable(root)
        return {
            "schemaString": table.schema().to_json(),
            "configuration": dict(table.metadata().configuration),
        }
    except Exception:  # a table feature delta-rs does not read: the JVM reads it
        return None


def schema_of(metadata: dict[str, Any]) -> StructType | None:
    schema_string = metadata.get("schemaString")
    return None if schema_string is None else StructType.fromJson(json.loads(schema_string))


def spark_schema(schema: pa.Schema) -> Any:
    """The Spark type of an Arrow schema."""
    return from_arrow_schema(schema)


def has_log(root: str) -> bool:
    """Is there a Delta table (its log) in the local directory ``root``?"""
    return os.path.isdir(os.path.join(root, "_delta_log"))


def latest_version(root: str) -> int | None:
    """The table's latest version: its newest commit file (Delta's log keeps it). None
    when commits may wait elsewhere (coordinated or catalog-managed commits)."""
    log = os.path.join(root, "_delta_log")
    try:
        names = os.listdir(log)
    except OSError:
        return None
    if "_commits" in names or "_staged_commits" in names:
        return None
    versions = [int(m.group(1)) for m in map(COMMIT_FILE.fullmatch, names) if m]
    return max(versions, default=None)


def write(
    df: DataFrame,
    path: str,
    *,
    schema: pa.Schema,
    replace_paths: list[str] | None = None,
    run_id: str = "",
    rewrite: bool = False,
) -> None:
    """Write rows into the table in one commit.

    Parameters
    ----------
    df
        Rows with exactly ``schema`` (the table's schema merged with theirs).
    replace_paths
        Files whose old rows this commit replaces (their size or mtime changed).
    run_id
        The run writing ``df`` (its rows' ``_run_id``), needed with ``replace_paths``.
    rewrite
        Replace the whole table (a migration): ``df`` holds every row.
    """
    writer = df.write.format("delta")
    if rewrite:
        writer = writer.mode("overwrite").option("overwriteSchema", "true")
    elif replace_paths:
        quoted = ",".join("'" + p.replace("'", "''") + "'" for p in replace_paths)
        writer = (
            writer.mode("overwrite")
            .option("mergeSchema", "true")
            .option(
                "replaceWhere",  # a file's row, or an archive's members' (listed_paths)
                f"{listed_path_sql()} IN ({quoted}) OR _run_id = '{run_id}'",
            )
        )
    else:
        writer = writer.mode("append").option("mergeSchema", "true")
    writer.save(path)
    set_properties(df.sparkSession, path, table_properties(schema))


def set_properties(spark: SparkSession, path: str, properties: dict[str, str]) -> None:
    """Set table properties that differ from what the table has."""
    current = {
        r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()
    }
    changed = {k: v for k, v in properties.items() if current.get(k) != v}
    if changed:
        pairs = ", ".join(f"'{k}' = '{v}'" for k, v in changed.items())
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({pairs})")


# -- data files written by the workers, added to the table in one commit ------------------


def _plain_fields(fields: list[dict[str, Any]]) -> bool:
    """No field with metadata (comments, generated or identity columns, column mapping
    ids) or NOT NULL, at any depth of a Spark schema's JSON."""
    for f in fields:
        if f.get("metadata") or not f.get("nullable", True):
            return False
        kind = f["type"]
        while isinstance(kind, dict) and kind.get("type") in ("array", "map"):
            kind = kind.get("elementType", kind.get("valueType"))
        nested = isinstance(kind, dict) and kind.get("type") == "struct"
        if nested and not _plain_fields(kind["fields"]):
            return False
    return True
