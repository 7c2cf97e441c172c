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
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pyarrow.types as pat
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import StructType

from dcm_spark.errors import DcmSparkError
from dcm_spark.schema import fits

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


def local_path(uri: str) -> str | None:
    """The local directory of a path or ``file:`` URI; None for other filesystems."""
    if uri.startswith("file:"):
        return os.path.abspath("/" + uri[len("file:") :].lstrip("/"))
    return None if "://" in uri else os.path.abspath(uri)


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
    """Where a run keeps its lock and the table's kept keys (`dcm_spark.listing`;
    ignored by Delta: starts with _)."""
    return table.rstrip("/") + "/_dcm_spark"


def exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


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
        metadata = _metadata(_transaction(spark, path))
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


def _schema_of(metadata: dict[str, Any]) -> StructType | None:
    schema_string = metadata.get("schemaString")
    return None if schema_string is None else StructType.fromJson(json.loads(schema_string))


def spark_schema(schema: pa.Schema) -> Any:
    return from_arrow_schema(schema)


def _properties(schema: pa.Schema) -> dict[str, str]:
    """The table properties a table of ``schema`` gets: `TABLE_PROPERTIES` and statistics
    on the `STATS_COLUMNS` it has."""
    present = [c for c in STATS_COLUMNS if c in schema.names]
    stats = ",".join(f"`{c}`" for c in present)
    return {**TABLE_PROPERTIES, "delta.dataSkippingStatsColumns": stats}


def has_log(root: str) -> bool:
    """Is there a Delta table (its log) in the local directory ``root``?"""
    return os.path.isdir(os.path.join(root, "_delta_log"))


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
    set_properties(df.sparkSession, path, _properties(schema))


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


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path of a local path, ``file:`` URI or other URI."""
    local = local_path(uri)
    if local is not None:
        return pafs.LocalFileSystem(), local
    return pafs.FileSystem.from_uri(uri)


#: What a worker reports about a Parquet file it wrote into the table's directory.
DATA_FILE_FIELDS = [
    ("data_file", pa.string()),  # name, relative to the table's root
    ("n_rows", pa.int64()),
    ("file_size", pa.int64()),
    ("modified_ms", pa.int64()),
    ("stats", pa.string()),  # Delta's per-file statistics, JSON
    ("arrow_schema", pa.binary()),  # the schema the file was written with
]


def _stat_value(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def file_stats(data: pa.Table) -> str:
    """Delta's statistics of a data file: row count, and min, max and null count of the
    `STATS_COLUMNS` that are strings or dates (the ones people filter on)."""
    low, high, nulls = {}, {}, {}
    for name in STATS_COLUMNS:
        if name not in data.column_names:
            continue
        column = data.column(name)
        if not (pat.is_string(column.type) or pat.is_date32(column.type)):
            continue
        nulls[name] = column.null_count
        if column.null_count < len(column):
            bounds = pc.min_max(column)
            low[name] = _stat_value(bounds["min"].as_py())
            high[name] = _stat_value(bounds["max"].as_py())
    stats = {"numRecords": data.num_rows, "minValues": low, "maxValues": high}
    return json.dumps(stats | {"nullCount": nulls})


def write_data_file(root: str, name: str, data: pa.Table) -> dict[str, Any]:
    """Write ``data`` as the Parquet file ``<root>/<name>`` (worker side).

    The file is not part of the table until `commit_files` adds it; a run killed before
    that leaves it unreferenced, for ``VACUUM`` to remove.
    """
    fs, base = filesystem(root)
    path = f"{base.rstrip('/')}/{name}"
    try:
        pq.write_table(data, path, filesystem=fs, compression="snappy")
    except BaseException:  # a full disk: no half-written file left behind
        with suppress(OSError):
            fs.delete_file(path)
        raise
    info = fs.get_file_info(path)
    modified = info.mtime_ns // 1_000_000 if info.mtime_ns is not None else time.time_ns() // 10**6
    return {
        "data_file": name,
        "n_rows": data.num_rows,
        "file_size": info.size,
        "modified_ms": modified,
        "stats": file_stats(data),
        "arrow_schema": data.schema.serialize().to_pybytes(),
    }


def read_data_file(root: str, name: str) -> pa.Table:
    fs, base = filesystem(root)
    return pq.read_table(f"{base.rstrip('/')}/{name}", filesystem=fs)


def delete_data_files(root: str, names: list[str]) -> None:
    """Remove data files that were never committed (the table does not reference them)."""
    fs, base = filesystem(root)
    for name in names:
        with suppress(FileNotFoundError):
            fs.delete_file(f"{base.rstrip('/')}/{name}")


def _delta(spark: SparkSession) -> Any:
    return _jvm(spark).org.apache.spark.sql.delta


def _transaction(spark: SparkSession, path: str) -> Any:
    return _delta(spark).DeltaLog.forTable(spark._jsparkSession, path).startTransaction()


def _metadata(transaction: Any) -> dict[str, Any]:
    return dict(json.loads(transaction.metadata().json())["metaData"])


def _action(spark: SparkSession, action: dict[str, Any]) -> Any:
    """A Delta action (``{"add": ...}``, ``{"metaData": ...}``) from its log JSON."""
    actions = getattr(_delta(spark).actions, "Action$").__getattr__("MODULE$")
    return actions.fromJson(json.dumps(action))


def _append_operation(spark: SparkSession) -> Any:
    """Delta's ``WRITE`` operation in append mode, as a Spark append records it.

    Built by reflection: its constructor takes the save mode and a version-dependent
    number of optional arguments, all left empty.
    """
    jvm = _jvm(spark)
    write = jvm.py4j.reflection.ReflectionUtil.classForName(
        "org.apache.spark.sql.delta.DeltaOperations$Write"
    )
    for constructor in write.getConstructors():
        kinds = [t.getName() for t in constructor.getParameterTypes()]
        if set(kinds) <= {"org.apache.spark.sql.SaveMode", "scala.Option"}:
            gateway = spark.sparkContext._gateway
            assert gateway is not None  # a session with a JVM (checked by _jvm)
            args = gateway.new_array(jvm.java.lang.Object, len(kinds))
            for i, kind in enumerate(kinds):
                append = jvm.org.apache.spark.sql.SaveMode.Append
                args[i] = append if kind.endswith("SaveMode") else jvm.scala.Option.empty()
            return constructor.newInstance(args)
    raise DcmSparkError("this Delta version has no WRITE operation of the expected shape")


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


def commit_files(
    spark: SparkSession, path: str, schema: pa.Schema, files: list[dict[str, Any]]
) -> None:
    """Add data files written by `write_data_file` to the table in one Delta commit.

    The same commit creates the table, adds new columns and sets the table properties
    when needed, so a run adds all its rows and columns or nothing. Every file must
    already be written with ``schema`` or a part of it (`dcm_spark.schema.fits`).

    A local table is committed with delta-rs when the commit creates it or only adds
    files: 10 ms, where a fresh JVM's first Delta commit took 1.1 s. A commit that
    changes an existing table's schema or properties, and any table elsewhere, goes
    through Delta's JVM API (a delta-rs append cannot change the table's metadata).

    Raises
    ------
    DcmSparkError
        If the table's schema now has a column ``schema`` lacks or types differently
        (changed by another writer during the run): nothing is committed.
    """
    local = local_path(path)
    if local is None or not _commit_local(local, schema, files):
        _commit_jvm(spark, path, schema, files)


def _add_action(f: dict[str, Any]) -> dict[str, Any]:
    """The log's add action of a data file (`DATA_FILE_FIELDS`)."""
    return {
        "path": f["data_file"],
        "partitionValues": {},
        "size": f["file_size"],
        "modificationTime": f["modified_ms"],
        "dataChange": True,
        "stats": f["stats"],
    }


def _commit_local(root: str, schema: pa.Schema, files: list[dict[str, Any]]) -> bool:
    """Create the table with the files, or append them with its schema and properties
    unchanged, through delta-rs; False (nothing done) when the commit is not one of
    those or the table needs writer features delta-rs is not asked to handle here."""
    from deltalake import DeltaTable, Schema
    from deltalake.exceptions import DeltaError
    from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

    wanted = spark_schema(schema).json()  # the schema the JVM commit would write
    adds = [
        AddAction(a["path"], a["size"], {}, a["modificationTime"], True, a["stats"])
        for a in map(_add_action, files)
    ]
    config = _properties(schema)
    if not has_log(root):
        try:
            create_table_with_add_actions(
                root, Schema.from_json(wanted), adds, mode="error", configuration=config
            )
        except DeltaError as exc:  # another writer created the table meanwhile
            raise DcmSparkError(
                f"{root}: the table could not be created ({exc}); nothing committed: run again"
            ) from exc
        return True
    try:
        table = DeltaTable(root)
    except Exception:  # a table feature delta-rs does not read: the JVM commits
        return False
    protocol = table.protocol()
    current = dict(table.metadata().configuration)
    if (
        protocol.min_writer_version > 2
        or json.loads(table.schema().to_json()) != json.loads(wanted)
        or {**current, **config} != current
    ):
        return False
    actions: list[AddAction | RemoveAction] = [*adds]
    try:
        table.create_write_transaction(actions, "append", Schema.from_json(wanted))
    except DeltaError as exc:  # another writer changed the table meanwhile
        raise DcmSparkError(
            f"{root} changed while this run committed (another writer): {exc}; "
            "nothing was committed: run again"
        ) from exc
    return True


def _commit_jvm(
    spark: SparkSession, path: str, schema: pa.Schema, files: list[dict[str, Any]]
) -> None:
    transaction = _transaction(spark, path)
    metadata = _metadata(transaction)
    wanted = spark_schema(schema)
    current = _schema_of(metadata)
    if current is not None and not fits(to_arrow_schema(current, timezone="UTC"), schema):
        raise DcmSparkError(
            f"the schema of {path} changed while this run parsed (another writer); "
            "nothing was committed: run again"
        )
    config = metadata.get("configuration", {})
    new_config = {**config, **_properties(schema)}
    if current is None or current != wanted or new_config != config:
        metadata |= {"schemaString": wanted.json(), "configuration": new_config}
        transaction.updateMetadata(_action(spark, {"metaData": metadata}), False)
    adds = _jvm(spark).java.util.ArrayList()
    for f in files:
        adds.add(_action(spark, {"add": _add_action(f)}))
    actions = _jvm(spark).scala.jdk.javaapi.CollectionConverters.asScala(adds).toList()
    transaction.commit(actions, _append_operation(spark))


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
