"""Discovery: which files are under the inputs, and which of them a run must parse.

No file content is read here. Local paths are walked with ``os.scandir`` (30,000 files in a
fraction of a second, where Spark's binaryFile listing took 17 s); ``s3://`` and ``gs://``
through pyarrow's filesystems (`dcm_spark.paths.filesystem`), as the workers read them;
DICOMweb servers with QIDO-RS (`dcm_spark.sources.dicomweb`), one entry per instance; other
URIs (hdfs://, s3a://, ...) through the Hadoop FileSystem API of the Spark session.
Modification times are kept to the millisecond, Hadoop's precision, so all listings agree.
An archive is one entry: its members are listed where they are read.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from dcm_spark.delta.jvm import hadoop_fs
from dcm_spark.delta.keys import KEY_SCHEMA, Known, keys_of
from dcm_spark.errors import DcmSparkError
from dcm_spark.paths import OBJECT_STORES, ObjectStore, filesystem, local_path
from dcm_spark.records import FILE_KEY_SCHEMA, UTC_MICROS
from dcm_spark.sources import is_dicomweb

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

LISTING_SCHEMA = FILE_KEY_SCHEMA


class InputNotFound(DcmSparkError, FileNotFoundError):
    """An input directory or file does not exist."""


class SourceUnavailable(DcmSparkError, OSError):
    """An input's server cannot be reached, refuses the credentials, or has no such
    bucket."""


def _walk_local(root: str, rows: list[tuple[str, int, int]]) -> None:
    """Every file under ``root``. Symbolic links to directories are not followed (no
    loops); links that cannot be resolved are listed, so they get an error record."""
    start = local_path(root)
    assert start is not None
    if not os.path.lexists(start):
        raise InputNotFound(f"input does not exist: {root}")
    if not os.path.isdir(start):
        rows.append(_entry(start))
        return
    pending = [start]
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except OSError:  # an unreadable directory: listed, so it is recorded
            rows.append((f"file:{directory}", 0, 0))
            continue
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                pending.append(entry.path)
            else:
                rows.append(_entry(entry.path))


def _entry(path: str) -> tuple[str, int, int]:
    try:
        stat = os.stat(path)
    except OSError:  # a dangling link or a link loop: size 0, time 0
        return f"file:{path}", 0, 0
    return f"file:{path}", stat.st_size, stat.st_mtime_ns // 1_000_000


def _walk_hadoop(spark: SparkSession, root: str, rows: list[tuple[str, int, int]]) -> None:
    fs, hpath = hadoop_fs(spark, root)
    if not fs.exists(hpath):
        raise InputNotFound(f"input does not exist: {root}")
    files = fs.listFiles(hpath, True)
    while files.hasNext():
        status = files.next()
        rows.append(
            (status.getPath().toString(), int(status.getLen()), int(status.getModificationTime()))
        )


def _walk_object_store(root: str, rows: list[tuple[str, int, int]], store: ObjectStore) -> None:
    import pyarrow.fs as pafs

    scheme = root[: root.index("://") + 3]
    fs, path = filesystem(root, store)
    try:
        info = fs.get_file_info(path.rstrip("/"))
        if info.type == pafs.FileType.File:
            found = [info]
        elif info.type == pafs.FileType.NotFound:
            raise InputNotFound(f"input does not exist: {root}")
        else:
            found = fs.get_file_info(pafs.FileSelector(path.rstrip("/"), recursive=True))
    except OSError as exc:
        if isinstance(exc, InputNotFound):
            raise
        raise SourceUnavailable(f"cannot list {root}: {str(exc).splitlines()[0]}") from None
    for entry in found:
        if entry.type == pafs.FileType.File:
            mtime = 0 if entry.mtime_ns is None else entry.mtime_ns // 1_000_000
            rows.append((scheme + entry.path, int(entry.size or 0), mtime))


def list_files(
    spark: SparkSession | None, inputs: tuple[str, ...], store: ObjectStore | None = None
) -> pa.Table:
    """Every file under the inputs, recursively: ``_path``, ``_size``, ``_mtime``
    (object storage reached as ``store`` says).

    Raises
    ------
    InputNotFound
        If an input does not exist.
    SourceUnavailable
        If a server cannot be reached, or refuses.
    """
    rows: list[tuple[str, int, int]] = []
    for root in inputs:
        if local_path(root) is not None:
            _walk_local(root, rows)
        elif is_dicomweb(root):
            from dcm_spark.sources import dicomweb

            try:
                rows += dicomweb.list_instances(root)
            except OSError as exc:
                raise SourceUnavailable(str(exc).splitlines()[0]) from None
        elif root.startswith(OBJECT_STORES):
            _walk_object_store(root, rows, store or ObjectStore.from_environment())
        elif spark is None:
            raise InputNotFound(f"{root}: a Hadoop filesystem is listed through Spark's")
        else:
            _walk_hadoop(spark, root, rows)
    listed = pa.table(
        [
            pa.array([r[0] for r in rows], pa.string()),
            pa.array([r[1] for r in rows], pa.int64()),
            pa.array([r[2] * 1000 for r in rows], pa.int64()).cast(UTC_MICROS),
        ],
        schema=LISTING_SCHEMA,
    )
    return _sorted_once(listed)


def _sorted_once(listed: pa.Table) -> pa.Table:
    """``listed`` in order (path, then size and time), each entry once (inputs may overlap).
    Sorted in Arrow: Python's ``sorted(set(...))`` of the entries took 3.2 s at a million
    files, a third of a run that finds nothing new, and grew faster than the files."""
    ordered = listed.sort_by([(name, "ascending") for name in listed.schema.names])
    ordered = ordered.combine_chunks()
    if ordered.num_rows < 2:
        return ordered
    repeated = None  # each entry equal to the one before it
    for column in ordered.columns:
        values = column.chunk(0)
        same = pc.equal(values[1:], values[:-1])
        repeated = same if repeated is None else pc.and_(repeated, same)
    return ordered.filter(pa.concat_arrays([pa.array([True]), pc.invert(repeated)]))


def to_parse(listing: pa.Table, *known: Known | None) -> tuple[pa.Table, list[str]]:
    """The listed files whose key no table holds, in the listing's order, and which of
    those are changed versions of files the first table holds (their rows are replaced)."""
    held = [k.keys for k in known if k is not None]
    if not held:
        return listing, []
    rows = keys_of(listing).append_column("_row", pa.array(range(listing.num_rows), pa.int64()))
    fresh = rows.join(pa.concat_tables(held), keys=KEY_SCHEMA.names, join_type="left anti")
    fresh_rows = fresh.column("_row").combine_chunks()
    todo = listing.take(fresh_rows.take(pc.array_sort_indices(fresh_rows)))  # a join's order
    if known[0] is None:
        return todo, []
    in_table = known[0].keys.column("_path").combine_chunks()
    replaced = pc.is_in(todo.column("_path"), value_set=in_table)
    return todo, todo.column("_path").filter(replaced).to_pylist()
