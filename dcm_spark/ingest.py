"""One ingest run: list files, parse the new ones, merge schemas, write once.

The flow (see DESIGN.md)::

    list files (Spark/Hadoop; no contents read on the driver)
      -> anti-join with what the table and the errors table hold (path, size, mtime)
      -> mapInArrow(parse): the workers convert each file once and stage the rows as Arrow
         IPC files (the schema is only known after parsing), returning small records
      -> merge the staged schemas with the table's (dcm_spark.schema)
      -> mapInArrow(load): the staged batches, cast to the merged schema
      -> one Delta commit (append, replace changed files, or migrate), then the errors

Why staging: ``mapInArrow`` needs its output schema before it runs. Parsing twice (once
for the schema, once for the rows) doubles the hot path; staging costs one Arrow IPC
write and read per batch, a few per cent of parsing.
"""

from __future__ import annotations

import datetime
import json
import os
import stat
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import IO, TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.fs as pafs

from dcm_spark import listing, schema, table
from dcm_spark.deidentify import Policy, apply
from dcm_spark.header import (
    FileError,
    Header,
    HeaderOptions,
    NotARegularFile,
    convert_file,
    to_record_batch,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
META_SCHEMA = pa.schema(
    [
        ("_path", pa.string()),
        ("_size", pa.int64()),
        ("_mtime", pa.timestamp("us", tz="UTC")),
        ("_ingested_at", pa.timestamp("us", tz="UTC")),
        ("_run_id", pa.string()),
    ]
)
STAGED_SCHEMA = pa.schema(
    [
        ("kind", pa.string()),  # "rows" or "error"
        ("_path", pa.string()),
        ("_size", pa.int64()),
        ("_mtime", pa.timestamp("us", tz="UTC")),
        ("error_class", pa.string()),
        ("message", pa.string()),
        ("staged", pa.string()),
        ("n_rows", pa.int64()),
        ("arrow_schema", pa.binary()),
    ]
)
ROWS_PER_FILE = 20000
STAGED_DDL = (
    "kind string, _path string, _size bigint, _mtime timestamp, error_class string, "
    "message string, staged string, n_rows bigint, arrow_schema binary"
)


@dataclass(frozen=True)
class IngestOptions:
    """What a run ingests and how.

    Parameters
    ----------
    inputs
        Directories or files, local paths or Hadoop filesystem URIs.
    table
        Location of the Delta table of instances.
    errors_table
        Location of the errors table; ``<table>_errors`` when None.
    full_refresh
        Rebuild the table from every listed file instead of adding what is new.
    header
        Conversion policy for the workers.
    privacy
        De-identification and excluded columns, applied on the workers before anything is
        written; None keeps every element.
    files_per_batch
        Files converted into one staged Arrow batch.
    files_per_task
        Upper bound of files one Spark task parses (more tasks on bigger clusters).
    """

    inputs: tuple[str, ...]
    table: str
    errors_table: str | None = None
    full_refresh: bool = False
    header: HeaderOptions = field(default_factory=HeaderOptions)
    privacy: Policy | None = None
    files_per_batch: int = 200
    files_per_task: int = 2000

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("at least one input is needed")
        if self.files_per_batch < 1 or self.files_per_task < 1:
            raise ValueError("files_per_batch and files_per_task must be positive")


@dataclass
class Summary:
    """What a run did; printed at the end and written with ``--summary-json``."""

    run_id: str
    table: str
    listed: int = 0
    unchanged: int = 0
    new: int = 0
    changed: int = 0
    parsed: int = 0
    failed: int = 0
    rows_written: int = 0
    columns_added: list[str] = field(default_factory=list)
    promotions: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def text(self) -> str:
        return (
            f"run {self.run_id}: {self.listed} files listed, {self.unchanged} unchanged, "
            f"{self.new} new, {self.changed} changed; {self.parsed} parsed, "
            f"{self.failed} failed; {self.rows_written} rows written; "
            f"{len(self.columns_added)} columns added, {len(self.promotions)} promotions; "
            f"{self.seconds:.1f} s"
        )


def _stderr(line: str) -> None:
    print(f"[dcm-spark] {line}", file=sys.stderr, flush=True)


# -- worker side -----------------------------------------------------------------------


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if uri.startswith("file:"):
        return pafs.LocalFileSystem(), "/" + uri[len("file:") :].lstrip("/")
    if "://" not in uri:
        return pafs.LocalFileSystem(), uri
    return pafs.FileSystem.from_uri(uri)


def _open(uri: str) -> IO[bytes]:
    if uri.startswith("file:") or "://" not in uri:
        path = _filesystem(uri)[1]
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the task
            raise NotARegularFile("not a regular file")
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    fs, path = _filesystem(uri)
    return fs.open_input_file(path)


def _convert(uri: str, options: HeaderOptions) -> Header | FileError:
    try:
        handle = _open(uri)
    except Exception as exc:
        return convert_file_error(uri, exc)
    with handle:
        result = convert_file(handle, options, path=uri)
    if isinstance(result, Header) and result.values.get("MediaStorageSOPClassUID") == (
        DICOMDIR_CLASS
    ):
        return FileError(uri, "DICOMDIR", "a media storage directory, not an instance")
    return result


def convert_file_error(uri: str, exc: BaseException) -> FileError:
    from dcm_spark.errors import safe_message

    return FileError(uri, type(exc).__name__, safe_message(exc))


def parse_partition(
    batches: Iterator[pa.RecordBatch],
    staging: str,
    options: HeaderOptions,
    per_batch: int,
    privacy: Policy | None = None,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: (_path, _size, _mtime) -> staged batches and error records."""
    from pyspark import TaskContext

    context = TaskContext.get()
    attempt = context.taskAttemptId() if context is not None else uuid.uuid4().int
    fs, staging_path = _filesystem(staging)
    fs.create_dir(staging_path, recursive=True)
    chunk = 0
    for batch in batches:
        files = batch.to_pylist()
        for start in range(0, len(files), per_batch):
            out: list[dict[str, Any]] = []
            rows: list[Header] = []
            meta: list[dict[str, Any]] = []
            for f in files[start : start + per_batch]:
                result = _convert(f["_path"], options)
                if isinstance(result, FileError):
                    out.append(
                        {"kind": "error", **f, "error_class": result.error_class}
                        | {"message": result.message}
                    )
                else:
                    rows.append(result if privacy is None else apply(result, privacy))
                    meta.append(f)
            if rows:
                staged = f"{staging_path}/part-{attempt}-{chunk}.arrow"
                chunk += 1
                body = to_record_batch(rows)
                staged_batch = _with_meta(body, meta)
                with (
                    fs.open_output_stream(staged) as sink,
                    pa.ipc.new_file(sink, staged_batch.schema) as writer,
                ):
                    writer.write_batch(staged_batch)
                out.append(
                    {
                        "kind": "rows",
                        "staged": staged,
                        "n_rows": staged_batch.num_rows,
                        "arrow_schema": staged_batch.schema.serialize().to_pybytes(),
                    }
                )
            if out:
                yield pa.RecordBatch.from_pylist(out, schema=STAGED_SCHEMA)


def _with_meta(body: pa.RecordBatch, meta: list[dict[str, Any]]) -> pa.RecordBatch:
    columns = [
        pa.array([m["_path"] for m in meta], pa.string()),
        pa.array([m["_size"] for m in meta], pa.int64()),
        pa.array([m["_mtime"] for m in meta], pa.timestamp("us", tz="UTC")),
    ]
    names = ["_path", "_size", "_mtime"]
    clash = [n for n in body.schema.names if n in names]
    body = body.drop_columns(clash) if clash else body
    return pa.RecordBatch.from_arrays(
        columns + list(body.columns), names=names + list(body.schema.names)
    )


def load_partition(
    batches: Iterator[pa.RecordBatch],
    target: pa.Schema,
    run_id: str,
    ingested_at: datetime.datetime,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: staged file names -> their rows cast to the merged schema."""
    for batch in batches:
        for uri in batch.column("staged").to_pylist():
            fs, path = _filesystem(uri)
            with fs.open_input_file(path) as source:
                staged = pa.ipc.open_file(source).read_all()
            n = staged.num_rows
            staged = staged.append_column(
                "_ingested_at", pa.array([ingested_at] * n, pa.timestamp("us", tz="UTC"))
            ).append_column("_run_id", pa.array([run_id] * n, pa.string()))
            for part in staged.to_batches(max_chunksize=500):
                yield schema.cast_batch(part, target)


def cast_partition(
    batches: Iterator[pa.RecordBatch], target: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: existing rows carried into a promoted schema."""
    for batch in batches:
        yield schema.cast_batch(batch, target)


# -- driver side -----------------------------------------------------------------------


def _tasks(spark: SparkSession, n_files: int, per_task: int) -> int:
    """Enough tasks to keep every core busy (3 waves), none larger than ``per_task``."""
    cores = spark.sparkContext.defaultParallelism
    return max(1, min(n_files, max(3 * cores, -(-n_files // per_task))))


def run(
    spark: SparkSession,
    options: IngestOptions,
    *,
    report: Callable[[str], None] = _stderr,
) -> Summary:
    """Ingest the new and changed files under ``options.inputs`` into the table.

    Returns
    -------
    Summary
        Counts, added columns, promotions and seconds.

    Raises
    ------
    dcm_spark.table.TableLocked
        If another run is writing the table.
    """
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:16]
    ingested_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    target = table.absolute(options.table)
    errors_target = table.absolute(options.errors_table or table.errors_path(target))
    summary = Summary(run_id=run_id, table=target)
    staging = f"{table.control_dir(target)}/staging/{run_id}"

    def stage(name: str, count: int, since: float) -> None:
        seconds = time.perf_counter() - since
        summary.stage_seconds[name] = round(seconds, 2)
        rate = f", {count / seconds:.0f} files/s" if seconds > 0 and count else ""
        report(f"{name}: {count} files in {seconds:.1f} s{rate}")

    with table.lock(spark, target, run_id):
        table.remove_dir(spark, f"{table.control_dir(target)}/staging")  # left by killed runs
        t = time.perf_counter()
        found = listing.list_files(spark, options.inputs)
        summary.listed = found.num_rows
        stage("listed", summary.listed, t)

        t = time.perf_counter()
        in_table = None if options.full_refresh else listing.known_files(spark, target)
        in_errors = None if options.full_refresh else listing.known_files(spark, errors_target)
        todo_files, changed = listing.to_parse(found, in_table, in_errors)
        n_todo = todo_files.num_rows
        summary.changed = len(changed)
        summary.new = n_todo - len(changed)
        summary.unchanged = summary.listed - n_todo
        stage("compared with the table", summary.listed, t)
        report(f"to parse: {n_todo} ({summary.new} new, {summary.changed} changed)")

        if n_todo:
            t = time.perf_counter()
            header_options, per_batch = options.header, options.files_per_batch
            privacy = options.privacy
            todo = spark.createDataFrame(todo_files)
            staged = (
                todo.repartition(_tasks(spark, n_todo, options.files_per_task))
                .mapInArrow(
                    lambda it: parse_partition(it, staging, header_options, per_batch, privacy),
                    STAGED_DDL,
                )
                .collect()
            )
            parts = [r for r in staged if r["kind"] == "rows"]
            failures = [r for r in staged if r["kind"] == "error"]
            summary.parsed = sum(r["n_rows"] for r in parts)
            summary.failed = len(failures)
            stage("parsed", n_todo, t)
            t = time.perf_counter()
            old_schema = None if in_table is None else table.arrow_schema(spark, target)
            _write(spark, options, summary, parts, old_schema, changed, run_id, ingested_at)
            stage("written", summary.rows_written, t)
            _record_errors(
                spark, errors_target, failures, run_id, ingested_at, replace=options.full_refresh
            )
        table.remove_dir(spark, staging)
    summary.seconds = round(time.perf_counter() - started, 2)
    report(summary.text())
    return summary


def _write(
    spark: SparkSession,
    options: IngestOptions,
    summary: Summary,
    parts: list[Any],
    old_schema: pa.Schema | None,
    changed: list[str],
    run_id: str,
    ingested_at: datetime.datetime,
) -> None:
    if not parts:
        return
    target = summary.table
    staged_schemas = [pa.ipc.read_schema(pa.py_buffer(r["arrow_schema"])) for r in parts]
    base = old_schema if old_schema is not None else META_SCHEMA  # a new table: ours first
    merged = schema.drop_null_fields(schema.merge_schemas(base, *staged_schemas))
    promoted = schema.promotions(old_schema, merged) if old_schema is not None else []
    summary.columns_added = schema.added_fields(base, merged)
    spark_schema = table.spark_schema(merged)
    files = spark.createDataFrame([(r["staged"],) for r in parts], "staged string")
    # Few large Parquet files: a wide nested schema costs per file, not per row.
    cores = spark.sparkContext.defaultParallelism
    writers = min(len(parts), max(cores, -(-summary.parsed // ROWS_PER_FILE)))
    new_rows = files.repartition(writers).mapInArrow(
        lambda it: load_partition(it, merged, run_id, ingested_at), spark_schema
    )
    if promoted:
        old_rows = spark.read.format("delta").load(target)
        if changed:
            from pyspark.sql import functions as F

            old_rows = old_rows.where(~F.col("_path").isin(changed))
        carried = old_rows.mapInArrow(lambda it: cast_partition(it, merged), spark_schema)
        table.write(carried.unionByName(new_rows), target, schema=merged, rewrite=True)
        now = datetime.datetime.now(datetime.UTC)
        log = [
            {
                "column_path": p.path,
                "from_type": p.from_type,
                "to_type": p.to_type,
                "reason": p.reason,
                "_run_id": run_id,
                "promoted_at": now,
            }
            for p in promoted
        ]
        table.append_log(spark, table.promotions_path(target), log, table.PROMOTIONS_DDL)
        summary.promotions = [{k: str(v) for k, v in p.items()} for p in log]
    elif options.full_refresh:
        table.write(new_rows, target, schema=merged, rewrite=True)
    else:
        table.write(new_rows, target, schema=merged, replace_paths=changed, run_id=run_id)
    summary.rows_written = summary.parsed


def _record_errors(
    spark: SparkSession,
    path: str,
    failures: list[Any],
    run_id: str,
    ingested_at: datetime.datetime,
    *,
    replace: bool = False,
) -> None:
    rows = [
        {
            "_path": r["_path"],
            "_size": r["_size"],
            "_mtime": r["_mtime"],
            "error_class": r["error_class"],
            "message": r["message"],
            "_run_id": run_id,
            "_ingested_at": ingested_at,
        }
        for r in failures
    ]
    table.append_log(spark, path, rows, table.ERRORS_DDL, replace=replace)
