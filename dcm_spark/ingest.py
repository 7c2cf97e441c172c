"""One ingest run: list files, parse the new ones, merge schemas, commit once.

The flow::

    list files (os.scandir or Hadoop; no contents read on the driver)
      -> compare with what the table and the errors table hold (path, size, mtime)
      -> mapInArrow(parse): each task converts its files once and writes their rows as
         one Parquet file into the table's directory (pyarrow), in the task's own schema;
         it returns the file's name, schema and statistics, and an error record per
         failed file (a run with few local files runs the same function in the driver,
         see `DRIVER_PARSE_LIMIT`)
      -> merge the files' schemas with the table's (dcm_spark.schema)
      -> cast and rewrite the rare file whose schema does not fit the merged one
      -> one Delta commit adding the files (and new columns); errors to <table>_errors

Why: ``mapInArrow`` needs its output schema before it runs, and the schema is only known
after parsing. Parsing twice doubles the hot path; sending the rows through Spark's writer
cost as much as parsing them (converting wide nested Arrow batches to Spark rows). The
workers write Parquet that Spark reads as the merged schema: a file lacking a column or a
nested field reads it as null. Runs that rewrite rows (a changed file replaced, a column
promoted, a full refresh) read the data files back through Spark's Delta writer.
"""

from __future__ import annotations

import datetime
import functools
import json
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dcm_spark import listing, records, schema
from dcm_spark.delta import keys, sidetables
from dcm_spark.delta.commit import commit_files
from dcm_spark.delta.datafiles import delete_data_files
from dcm_spark.delta.lock import lock
from dcm_spark.delta.table import TableState, spark_schema, state, write
from dcm_spark.dicom.budget import alarms_free
from dcm_spark.dicom.deidentify import Policy
from dcm_spark.dicom.options import HeaderOptions
from dcm_spark.errors import DcmSparkError, safe_message
from dcm_spark.paths import (
    OBJECT_STORES,
    ObjectStore,
    absolute,
    errors_path,
    local_path,
    promotions_path,
)
from dcm_spark.progress import Progress, spark_progress
from dcm_spark.pseudonyms import PathPolicy, stored_paths
from dcm_spark.records import META_SCHEMA, DataFile, FailedFile, listed_path_sql
from dcm_spark.sources import is_dicomweb
from dcm_spark.tasks import cast_partition, load_partition, parse_partition, rewrite_partition

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: What the parse tasks return, as Spark declares it (`dcm_spark.records.PARSED_SCHEMA`).
PARSED_TYPE = spark_schema(records.PARSED_SCHEMA)


#: Files a run of a local master parses at most in the driver's Python process,
#: without a Spark job: as many as one task takes (`IngestOptions.files_per_task`'s
#: default). A fresh JVM's first Spark job and its Python workers' start cost ~1.3 s
#: before the first file is read, in which one core parses ~3,000 files. Adding 300 files
#: to a table of 30,000 on 2 cores, parsing took 0.13 s here against 1.58 s as a job
#: (bench/results/2026-11-25-30000-driver.json). More cores do not move the crossover below this
#: limit: a job's start alone is worth ~3,000 files. That holds for a job's fresh JVM
#: (spark-submit); a long-lived session (a notebook) starts its jobs faster, and may set a
#: lower limit. Cluster masters always use their executors: the driver may have little
#: memory to spare, and may see paths the executors do not. Remote sources too (bench/README).
DRIVER_PARSE_LIMIT = 2000


@dataclass(frozen=True)
class IngestOptions:
    """What a run ingests and how.

    Parameters
    ----------
    inputs
        Directories or files (local paths, ``s3://``/``gs://`` or Hadoop filesystem URIs;
        archives among them are read member by member), or DICOMweb servers
        (``dicomweb+http://host:port/dicom-web``); see `dcm_spark.sources`.
    table
        Location of the Delta table of instances.
    errors_table
        Location of the errors table; ``<table>_errors`` when None.
    full_refresh
        Rebuild the table from every listed file, not only what is new.
    header
        Conversion policy for the workers.
    privacy
        De-identification and excluded columns, applied on the workers before anything is
        written; None keeps every element.
    files_per_task
        Upper bound of files one Spark task parses and writes as one Parquet file (more
        tasks on bigger clusters); a task holds that many rows in memory.
    driver_parse_limit
        A run of a local master with at most this many files to parse converts them in
        the driver's process, not a Spark job (`DRIVER_PARSE_LIMIT`); 0: always Spark.
    anonymous
        Read object storage without credentials (public buckets, such as IDC's).
    paths
        What the table keeps of each file's path (`dcm_spark.pseudonyms`): the path, a
        keyed pseudonym of each component, or nothing.
    path_map
        With pseudonymous or dropped paths: also write ``pseudonym<TAB>path`` for every
        listed file to this file (kept apart from the table).
    """

    inputs: tuple[str, ...]
    table: str
    errors_table: str | None = None
    full_refresh: bool = False
    header: HeaderOptions = field(default_factory=HeaderOptions)
    privacy: Policy | None = None
    files_per_task: int = 2000
    driver_parse_limit: int = DRIVER_PARSE_LIMIT
    anonymous: bool = False
    paths: PathPolicy = field(default_factory=PathPolicy)
    path_map: str | None = None

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("at least one input is needed")
        if self.files_per_task < 1:
            raise ValueError("files_per_task must be positive")
        if self.driver_parse_limit < 0:
            raise ValueError("driver_parse_limit must not be negative")
        if self.table.startswith(OBJECT_STORES):
            raise ValueError(
                f"a table on object storage ({self.table}) is not supported: inputs may be"
            )


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
    parsed_in: str = ""  # "driver" or "spark" (see `DRIVER_PARSE_LIMIT`); "" if nothing to parse
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


#: A smaller run gets fewer tasks than 3 waves: below this many files a task's own cost
#: (a Parquet file, its schema, a Python call) outweighs balancing the cores.
MIN_FILES_PER_TASK = 250


def _tasks(spark: SparkSession, n_files: int, per_task: int) -> int:
    """Enough tasks to keep every core busy (3 waves, whole ones), none larger than
    ``per_task`` files; a small run gets only as many whole waves as `MIN_FILES_PER_TASK`
    files a task fill (at least one task a core, so a task may hold fewer)."""
    cores = spark.sparkContext.defaultParallelism
    waves = max(3, -(-n_files // (per_task * cores)))
    few = cores * -(-n_files // (MIN_FILES_PER_TASK * cores))
    return max(1, min(n_files, waves * cores, max(few, -(-n_files // per_task))))


def _partitioned(spark: SparkSession, files: pa.Table, tasks: int) -> DataFrame:
    """The files to parse as about ``tasks`` partitions of consecutive files.

    Consecutive files (one folder, often one series) end in one data file: its
    statistics on the series and study UIDs stay narrow for data skipping, and the
    task's `ValueMemo` finds more repeated values. One Arrow batch per partition, so
    no shuffle and no Python step before the parse (a second less in a fresh JVM).
    """
    conf = {
        "spark.sql.execution.arrow.localRelationThreshold": "0",  # batches as partitions
        "spark.sql.execution.arrow.maxRecordsPerBatch": str(-(-files.num_rows // tasks)),
    }
    saved = {key: spark.conf.get(key, None) for key in conf}
    try:
        for key, value in conf.items():
            spark.conf.set(key, value)
        return spark.createDataFrame(files.sort_by("_path"))
    finally:
        for key, before in saved.items():
            if before is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, before)


def _parse_on_driver(spark: SparkSession, files: pa.Table, options: IngestOptions) -> bool:
    """Few files (local, object storage, DICOMweb: not ``hdfs://``, the JVM's) into a local
    table, on a local master: parsing here costs less than a job's start (`DRIVER_PARSE_LIMIT`).

    Only in the main thread (parsing sets process-wide warning and logging filters), and
    with SIGALRM free when files have a time budget (`dcm_spark.dicom.budget.alarms_free`).
    """
    if files.num_rows > options.driver_parse_limit:
        return False
    local_master = (spark.sparkContext.master or "").startswith("local")
    if not local_master or local_path(options.table) is None:
        return False
    if threading.current_thread() is not threading.main_thread():
        return False
    if options.header.time_budget is not None and not alarms_free():
        return False
    return all(
        local_path(p) is not None or p.startswith(OBJECT_STORES) or is_dicomweb(p)
        for p in files.column("_path").to_pylist()
    )


def _parse_here(
    files: pa.Table,
    parse: Callable[[Iterator[pa.RecordBatch]], Iterator[pa.RecordBatch]],
    root: str,
    per_task: int,
    progress: Progress | None = None,
) -> tuple[list[DataFile], list[FailedFile]]:
    """`parse_partition` in this process, as tasks of at most ``per_task`` files would
    (``progress`` told after each).

    Raises
    ------
    DcmSparkError
        If parsing or writing fails (a full disk): as a failed Spark job would, with a
        message that holds no element value; the data files written so far are deleted.
    """
    files = files.sort_by("_path")
    written: list[DataFile] = []
    failed: list[FailedFile] = []
    try:
        for start in range(0, files.num_rows, per_task):
            for batch in parse(iter(files.slice(start, per_task).to_batches())):
                parts, failures = records.from_table(batch)
                written += parts
                failed += failures
            if progress is not None:
                progress(min(start + per_task, files.num_rows), files.num_rows)
    except Exception as exc:
        delete_data_files(root, written)
        raise DcmSparkError(f"parsing in the driver failed: {safe_message(exc)}") from None
    return written, failed


def run(
    spark: SparkSession,
    options: IngestOptions,
    *,
    report: Callable[[str], None] = _stderr,
    progress: Progress | None = None,
) -> Summary:
    """Ingest the new and changed files under ``options.inputs`` into the table.

    ``report`` is told each stage in a line; ``progress``, if given, how many of the files
    to parse are parsed, as the parse goes (see `Progress`).

    Returns
    -------
    Summary
        Counts, added columns, promotions and seconds.

    Raises
    ------
    dcm_spark.delta.lock.TableLocked
        If another run is writing the table.
    """
    started = time.perf_counter()
    run_id = uuid.uuid4().hex[:16]
    ingested_at = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    target = absolute(options.table)
    errors_target = absolute(options.errors_table or errors_path(target))
    summary = Summary(run_id=run_id, table=target)

    def stage(name: str, count: int, since: float) -> None:
        seconds = time.perf_counter() - since
        summary.stage_seconds[name] = round(seconds, 2)
        rate = f", {count / seconds:.0f} files/s" if seconds > 0 and count else ""
        report(f"{name}: {count} files in {seconds:.1f} s{rate}")

    with lock(spark, target, run_id):
        t = time.perf_counter()
        store = ObjectStore.from_environment(options.anonymous)
        found = stored_paths(
            listing.list_files(spark, options.inputs, store), options.paths, options.path_map
        )
        summary.listed = found.num_rows
        stage("listed", summary.listed, t)

        t = time.perf_counter()
        in_table = None if options.full_refresh else keys.known_files(spark, target)
        in_errors = None if options.full_refresh else keys.known_files(spark, errors_target)
        todo_files, changed = listing.to_parse(found, in_table, in_errors)
        n_todo = todo_files.num_rows
        summary.changed = len(changed)
        summary.new = n_todo - len(changed)
        summary.unchanged = summary.listed - n_todo
        stage("compared with the table", summary.listed, t)
        report(f"to parse: {n_todo} ({summary.new} new, {summary.changed} changed)")

        if n_todo:
            t = time.perf_counter()
            parse = functools.partial(
                parse_partition,
                root=target,
                run_id=run_id,
                ingested_at=ingested_at,
                options=options.header,
                privacy=options.privacy,
                store=store,
                paths=options.paths,
            )
            # The table's state is read while the files are parsed (delta-rs for a local
            # table; elsewhere the driver's JVM loads Delta's log code meanwhile, seconds
            # in a fresh JVM, instead of after).
            with ThreadPoolExecutor(1) as background:
                table_state = background.submit(state, spark, target)
                if _parse_on_driver(spark, todo_files, options):
                    summary.parsed_in = "driver"
                    report("few local files: parsed by the driver, without a Spark job")
                    parts, failures = _parse_here(
                        todo_files, parse, target, options.files_per_task, progress
                    )
                else:
                    summary.parsed_in = "spark"
                    tasks = _tasks(spark, n_todo, options.files_per_task)
                    todo = _partitioned(spark, todo_files, tasks)
                    # through Arrow, as the driver's parse returns them: times in UTC
                    with spark_progress(spark, n_todo, progress):
                        parsed = todo.mapInArrow(parse, PARSED_TYPE).toArrow()
                    parts, failures = records.from_table(parsed)
                with _discarded_on_error(target, parts):
                    current = table_state.result()
            summary.parsed = sum(p.n_rows for p in parts)
            summary.failed = len(failures)
            stage("parsed", n_todo, t)
            t = time.perf_counter()
            old_schema = None if in_table is None else current.schema
            version = _write(spark, options, summary, parts, old_schema, changed, run_id, current)
            if version is not None:
                added = keys.keys_of(_without(todo_files, failures))
                keys.remember_append(target, in_table, added, version)
            stage("written", summary.rows_written, t)
            sidetables.record_errors(
                spark, errors_target, failures, run_id, ingested_at, replace=options.full_refresh
            )
    summary.seconds = round(time.perf_counter() - started, 2)
    report(summary.text())
    return summary


def _without(files: pa.Table, failures: list[FailedFile]) -> pa.Table:
    failed = pa.array([f._path for f in failures], pa.string())
    return files.filter(pc.invert(pc.is_in(files.column("_path"), value_set=failed)))


def _write(
    spark: SparkSession,
    options: IngestOptions,
    summary: Summary,
    parts: list[DataFile],
    old_schema: pa.Schema | None,
    changed: list[str],
    run_id: str,
    current: TableState,
) -> int | None:
    """Make the run's data files part of the table, in one commit; its version if that
    commit only added the data files (no row replaced or rewritten), else None.

    Plain appends (new files; new columns) commit the workers' files as they are, after
    casting the few whose schema does not fit the merged one. Replacing changed files,
    promoting a column or a full refresh rewrite rows, so they go through Spark's Delta
    writer, reading the data files as input; those are then deleted. So do appends to a
    table someone gave constraints, column mapping or column metadata
    (``takes_data_files`` false, see `dcm_spark.delta.table.state`): Spark's writer
    enforces and keeps those.
    """
    if not parts:
        return None
    target = summary.table
    written = [p.schema for p in parts]
    base = old_schema if old_schema is not None else META_SCHEMA  # a new table: ours first
    merged = schema.merge_schemas(base, *written)
    promoted = schema.promotions(old_schema, merged) if old_schema is not None else []
    summary.columns_added = schema.added_fields(base, merged)
    summary.rows_written = summary.parsed
    if current.takes_data_files and not (promoted or changed or options.full_refresh):
        misfits = [p for p, s in zip(parts, written, strict=True) if not schema.fits(s, merged)]
        if misfits:
            with _discarded_on_error(target, parts):
                parts = [p for p in parts if p not in misfits] + _cast_misfits(
                    spark, target, misfits, merged
                )
        version = commit_files(spark, target, merged, parts)
        delete_data_files(target, misfits)
        return version

    with _discarded_on_error(target, parts, always=True):  # input only: never committed
        _rewrite_rows(spark, options, summary, parts, merged, promoted, changed, run_id)
    return None


def _rewrite_rows(
    spark: SparkSession,
    options: IngestOptions,
    summary: Summary,
    parts: list[DataFile],
    merged: pa.Schema,
    promoted: list[schema.Promotion],
    changed: list[str],
    run_id: str,
) -> None:
    """Spark's Delta writer, reading the data files: replace changed files' rows, migrate
    a promoted column, rebuild (full refresh), or append to a table with constraints."""
    target = summary.table
    merged_type = spark_schema(merged)
    files = _names(spark, parts)
    new_rows = files.repartition(min(len(parts), spark.sparkContext.defaultParallelism)).mapInArrow(
        lambda it: load_partition(it, target, merged), merged_type
    )
    if promoted:
        old_rows = spark.read.format("delta").load(target)
        if changed:
            from pyspark.sql import functions as F

            listed = F.expr(listed_path_sql())  # an archive's members go with it
            old_rows = old_rows.where(~listed.isin(changed))
        carried = old_rows.mapInArrow(lambda it: cast_partition(it, merged), merged_type)
        write(carried.unionByName(new_rows), target, schema=merged, rewrite=True)
        log = sidetables.record_promotions(spark, promotions_path(target), promoted, run_id)
        summary.promotions = [{k: str(v) for k, v in p.items()} for p in log]
    elif options.full_refresh:
        write(new_rows, target, schema=merged, rewrite=True)
    else:
        write(new_rows, target, schema=merged, replace_paths=changed, run_id=run_id)


def _names(spark: SparkSession, parts: list[DataFile]) -> DataFrame:
    """The data files' names, as the input of `load_partition` and `rewrite_partition`."""
    return spark.createDataFrame([(p.name,) for p in parts], "data_file string")


@contextmanager
def _discarded_on_error(
    root: str, parts: list[DataFile], *, always: bool = False
) -> Iterator[None]:
    """Delete the run's data files if the block fails before they are committed (or,
    with ``always``, in any case: the block only reads them)."""
    try:
        yield
    except BaseException:
        delete_data_files(root, parts)
        raise
    if always:
        delete_data_files(root, parts)


def _cast_misfits(
    spark: SparkSession, target: str, misfits: list[DataFile], merged: pa.Schema
) -> list[DataFile]:
    tasks = min(len(misfits), spark.sparkContext.defaultParallelism)
    rewritten = (
        _names(spark, misfits)
        .repartition(tasks)
        .mapInArrow(lambda it: rewrite_partition(it, target, merged), PARSED_TYPE)
    )
    return records.from_table(rewritten.toArrow())[0]
