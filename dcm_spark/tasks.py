"""The workers' side of a run: the functions Spark's ``mapInArrow`` runs in the tasks.

`parse_partition` converts a task's files and writes their rows as one data file;
`load_partition`, `rewrite_partition` and `cast_partition` carry rows into a merged or
promoted schema. pydicom and pyarrow only: pyspark is imported only for the task's
context (its attempt id, whether there is a task), where Spark has already loaded it.
"""

from __future__ import annotations

import datetime
import gc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa

from dcm_spark import schema, sources
from dcm_spark.delta.datafiles import read_data_file, write_data_file
from dcm_spark.dicom.budget import file_timeouts
from dcm_spark.dicom.deidentify import Policy, apply
from dcm_spark.dicom.header import FileError, Header, HeaderOptions, to_record_batch
from dcm_spark.dicom.memo import ValueMemo
from dcm_spark.paths import ObjectStore
from dcm_spark.pseudonyms import KEEP_PATHS, PathPolicy
from dcm_spark.records import META_SCHEMA, FailedFile, to_batch
from dcm_spark.sources.ahead import opened_ahead


def parse_partition(
    batches: Iterator[pa.RecordBatch],
    root: str,
    run_id: str,
    ingested_at: datetime.datetime,
    options: HeaderOptions,
    privacy: Policy | None = None,
    store: ObjectStore | None = None,
    paths: PathPolicy = KEEP_PATHS,
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: (_path, _size, _mtime) -> a `FailedFile` per file that gave no
    row and one `DataFile` (`dcm_spark.records.PARSED_SCHEMA`). An archive's members are
    files of their own (`dcm_spark.sources.read`), with the archive's size and mtime.
    A listing whose ``_path`` is a pseudonym (`dcm_spark.pseudonyms`) has the real path in
    ``_source``; members get their pseudonyms from ``paths``.

    The task's rows are converted into one batch, in the task's own schema, and written
    as one Parquet file into the table's directory (``root``); the driver adds it to the
    table once every task's schema is known. (One batch: 10 batches of 200 rows cost 6%
    more, casting each to the merged schema; a task holds its rows anyway.)
    """
    rows: list[Header] = []
    meta: list[dict[str, Any]] = []
    memo = ValueMemo()
    with _cycle_collector_paused(), file_timeouts():
        for batch in batches:
            errors: list[FailedFile] = []
            entries = batch.to_pylist()
            reals = [listed.pop("_source", None) or listed["_path"] for listed in entries]
            ahead = opened_ahead(reals, store)
            for listed, (real, opened) in zip(entries, ahead, strict=True):
                for path, result in sources.read(real, options, memo, store, opened):
                    if path == real:
                        path = listed["_path"]  # as the table stores it (`paths`)
                    else:  # an archive's member, under its archive's stored _path
                        path = paths.member(listed["_path"], path[len(real) + 2 :])
                    f = {**listed, "_path": path}
                    if isinstance(result, FileError):
                        errors.append(
                            FailedFile(**f, error_class=result.error_class, message=result.message)
                        )
                    else:
                        rows.append(result if privacy is None else apply(result, privacy))
                        meta.append(f)
            if errors:
                yield to_batch(errors)
        if rows:
            body = _with_meta(to_record_batch(rows), meta, run_id, ingested_at)
            # freed while the collector is off: back on, its first pass would walk them all
            del rows, meta, memo
            name = f"part-{run_id}-{_attempt()}.snappy.parquet"
            written = write_data_file(root, name, pa.Table.from_batches([body]))
            yield to_batch([written])


def _attempt() -> str:
    """What tells this task attempt's files apart: Spark's attempt id, or in the driver
    (no task) a random one."""
    from pyspark import TaskContext

    context = TaskContext.get()
    return f"{context.taskAttemptId():05d}" if context is not None else uuid.uuid4().hex[:12]


@contextmanager
def _cycle_collector_paused() -> Iterator[None]:
    """Python's cycle collector off while a task converts and writes its files.

    A task keeps every row it converts (``files_per_task`` of them, hundreds of thousands
    of objects) and each full collection walks them all: 13% of a task's time. Converting
    makes few cycles; the collector takes them once it is back on.

    In a Spark task, the objects alive before it (the ~90,000 of the modules the worker
    imported) are also moved out of the collector's sight (`gc.freeze`): pyspark's daemon
    collects fully after every task, and walked them all each time (3-5% of a task). Not
    in the driver's process, whose objects are the caller's.
    """
    from pyspark import TaskContext

    if TaskContext.get() is not None:
        gc.freeze()
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _with_meta(
    body: pa.RecordBatch,
    meta: list[dict[str, Any]],
    run_id: str,
    ingested_at: datetime.datetime,
) -> pa.RecordBatch:
    """The meta columns (`dcm_spark.records.META_SCHEMA`) first, then the header's."""
    n = len(meta)
    values = {"_ingested_at": [ingested_at] * n, "_run_id": [run_id] * n}
    columns = [
        pa.array(values.get(f.name) or [m[f.name] for m in meta], f.type) for f in META_SCHEMA
    ]
    body = body.drop_columns([c for c in body.schema.names if c in META_SCHEMA.names])
    return pa.RecordBatch.from_arrays(
        columns + list(body.columns), names=META_SCHEMA.names + list(body.schema.names)
    )


def load_partition(
    batches: Iterator[pa.RecordBatch], root: str, target: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: data file names -> their rows cast to the merged schema."""
    for batch in batches:
        for name in batch.column("data_file").to_pylist():
            for part in read_data_file(root, name).to_batches(max_chunksize=500):
                yield schema.cast_batch(part, target)


def rewrite_partition(
    batches: Iterator[pa.RecordBatch], root: str, target: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: data files whose schema does not fit the merged one are cast
    and written again, under a name of this task attempt (a retried task finds its input
    intact; the driver deletes the originals once the commit is done)."""
    attempt = _attempt()
    for batch in batches:
        for name in batch.column("data_file").to_pylist():
            rows = read_data_file(root, name)
            cast = pa.Table.from_batches([schema.cast_batch(rows, target)])
            new_name = name.replace(".snappy", f"-cast{attempt}.snappy")
            written = write_data_file(root, new_name, cast)
            yield to_batch([written])


def cast_partition(
    batches: Iterator[pa.RecordBatch], target: pa.Schema
) -> Iterator[pa.RecordBatch]:
    """mapInArrow function: existing rows carried into a promoted schema."""
    for batch in batches:
        yield schema.cast_batch(batch, target)
