"""Table maintenance, in one place: create, append, migrate, lock, properties, logs.

The instance table is a Delta table; beside it live ``<table>_errors`` (files that gave
no row) and ``<table>_promotions`` (every column whose type a run promoted). A run holds
``<table>/_dcm_spark/lock`` while it writes, so two runs never add the same file twice.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema

from dcm_spark.errors import DcmSparkError

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Columns people filter on; Delta keeps min/max statistics for these only, not for the
#: thousands of nested leaves of a wide DICOM table.
STATS_COLUMNS = (
    "_path",
    "_run_id",
    "SOPInstanceUID",
    "SOPClassUID",
    "SeriesInstanceUID",
    "StudyInstanceUID",
    "PatientID",
    "Modality",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
)

#: Delta features kept off so the table stays readable by delta-rs, DuckDB and Polars.
TABLE_PROPERTIES = {
    "delta.appendOnly": "false",
    "delta.checkpointInterval": "20",
}


class TableLocked(DcmSparkError, RuntimeError):
    """Another run holds the table."""


def absolute(path: str) -> str:
    """A table location as a URI Spark and the workers agree on."""
    if "://" in path or path.startswith("file:"):
        return path
    return os.path.abspath(path)


def errors_path(table: str) -> str:
    return table.rstrip("/") + "_errors"


def promotions_path(table: str) -> str:
    return table.rstrip("/") + "_promotions"


def control_dir(table: str) -> str:
    """Where a run keeps its lock and staged batches (ignored by Delta: starts with _)."""
    return table.rstrip("/") + "/_dcm_spark"


def exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def arrow_schema(spark: SparkSession, path: str) -> pa.Schema | None:
    """The table's schema as Arrow, or None when there is no table yet."""
    if not exists(spark, path):
        return None
    return to_arrow_schema(spark.read.format("delta").load(path).schema, timezone="UTC")


def spark_schema(schema: pa.Schema) -> Any:
    return from_arrow_schema(schema)


def _stats_properties(schema: pa.Schema) -> dict[str, str]:
    present = [c for c in STATS_COLUMNS if c in schema.names]
    return {"delta.dataSkippingStatsColumns": ",".join(f"`{c}`" for c in present)}


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
            .option("replaceWhere", f"_path IN ({quoted}) OR _run_id = '{run_id}'")
        )
    else:
        writer = writer.mode("append").option("mergeSchema", "true")
    writer.save(path)
    set_properties(df.sparkSession, path, {**TABLE_PROPERTIES, **_stats_properties(schema)})


def set_properties(spark: SparkSession, path: str, properties: dict[str, str]) -> None:
    """Set table properties that differ from what the table has."""
    current = {
        r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").collect()
    }
    changed = {k: v for k, v in properties.items() if current.get(k) != v}
    if changed:
        pairs = ", ".join(f"'{k}' = '{v}'" for k, v in changed.items())
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ({pairs})")


def append_log(
    spark: SparkSession,
    path: str,
    rows: list[dict[str, Any]],
    ddl: str,
    *,
    replace: bool = False,
) -> None:
    """Append small records (errors, promotions) to a side table; ``replace`` rewrites it
    with just these (a full refresh)."""
    if rows or (replace and exists(spark, path)):
        df = spark.createDataFrame(rows, ddl)
        mode = "overwrite" if replace else "append"
        df.write.format("delta").mode(mode).option("mergeSchema", "true").save(path)


ERRORS_DDL = (
    "_path string, _size bigint, _mtime timestamp, error_class string, message string, "
    "_run_id string, _ingested_at timestamp"
)
PROMOTIONS_DDL = (
    "column_path string, from_type string, to_type string, reason string, "
    "_run_id string, promoted_at timestamp"
)


@dataclass(frozen=True)
class _Holder:
    run_id: str
    host: str
    pid: int
    since: float


def _jvm(spark: SparkSession) -> Any:
    jvm = spark.sparkContext._jvm
    if jvm is None:
        raise DcmSparkError("the Spark session has no JVM (stopped?)")
    return jvm


def hadoop_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    jvm = _jvm(spark)
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


class _LocalLock:
    """The lock file on a local disk, created whole and atomically: written under a
    name of its own, then hard-linked to the lock's name (which fails if it exists)."""

    def __init__(self, path: str) -> None:
        self.path = path.removeprefix("file:")

    def create(self, content: str) -> bool:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        draft = f"{self.path}.{uuid.uuid4().hex}"
        with open(draft, "w") as out:
            out.write(content)
        try:
            os.link(draft, self.path)
        except FileExistsError:
            return False
        finally:
            os.remove(draft)
        return True

    def read(self) -> str:
        with open(self.path) as source:
            return source.read()

    def delete(self) -> None:
        with suppress(FileNotFoundError):
            os.remove(self.path)


class _HadoopLock:
    """The lock file on a Hadoop filesystem: create(overwrite=false) is atomic on HDFS.

    (Not on Hadoop's local filesystem, hence `_LocalLock`.)
    """

    def __init__(self, spark: SparkSession, path: str) -> None:
        self.spark = spark
        self.fs, self.hpath = hadoop_fs(spark, path)

    def create(self, content: str) -> bool:
        from py4j.protocol import Py4JJavaError  # type: ignore[import-untyped]

        try:
            out = self.fs.create(self.hpath, False)
        except Py4JJavaError as exc:
            if "FileAlreadyExists" in str(exc.java_exception):
                return False
            raise
        out.write(bytearray(content.encode()))
        out.close()
        return True

    def read(self) -> str:
        stream = self.fs.open(self.hpath)
        try:
            io_utils = _jvm(self.spark).org.apache.commons.io.IOUtils
            return str(io_utils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def delete(self) -> None:
        self.fs.delete(self.hpath, False)


def _stale(holder: _Holder) -> bool:
    """A lock whose run is certainly gone (same host, process not alive)."""
    if holder.host != socket.gethostname():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(holder.pid)


def _zombie(pid: int) -> bool:
    """A killed process not yet reaped by its parent still answers kill(pid, 0)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return False


@contextmanager
def lock(spark: SparkSession, table: str, run_id: str) -> Iterator[None]:
    """Hold the table's lock for a run; refuse with a clear message if another run does.

    The lock is a file created atomically in ``<table>/_dcm_spark/``. A lock left by a
    killed run on this host is taken over; one from another host must be removed by hand.
    """
    path = control_dir(table) + "/lock"
    local = "://" not in path or path.startswith("file:")
    lock_file = _LocalLock(path) if local else _HadoopLock(spark, path)
    holder = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid()}
    content = json.dumps(holder | {"since": time.time()})
    for _attempt in range(2):
        if lock_file.create(content):
            break
        try:
            other = _Holder(**json.loads(lock_file.read()))
        except Exception:  # a lock being written this very moment
            other = None
        if other is not None and _stale(other):
            lock_file.delete()
            continue
        who = f"run {other.run_id} (pid {other.pid} on {other.host})" if other else "a run"
        raise TableLocked(
            f"{table} is being written by {who}. Wait for it to finish; if it was killed "
            f"on another machine, delete {path}."
        )
    else:
        raise TableLocked(f"could not take the lock {path}")
    try:
        yield
    finally:
        lock_file.delete()


def remove_dir(spark: SparkSession, path: str) -> None:
    fs, hpath = hadoop_fs(spark, path)
    if fs.exists(hpath):
        fs.delete(hpath, True)
