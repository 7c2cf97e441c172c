"""Data files: the Parquet files the workers write into the table's directory, before one
commit adds them (pyarrow only; runs on the workers)."""

from __future__ import annotations

import json
import time
from contextlib import suppress
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pyarrow.types as pat

from dcm_spark.delta.properties import STATS_COLUMNS
from dcm_spark.paths import filesystem
from dcm_spark.records import DataFile


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


def write_data_file(root: str, name: str, data: pa.Table) -> DataFile:
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
    return DataFile(
        name=name,
        n_rows=data.num_rows,
        file_size=info.size,
        modified_ms=modified,
        stats=file_stats(data),
        arrow_schema=data.schema.serialize().to_pybytes(),
    )


def read_data_file(root: str, name: str) -> pa.Table:
    """The rows of the data file ``<root>/<name>``."""
    fs, base = filesystem(root)
    return pq.read_table(f"{base.rstrip('/')}/{name}", filesystem=fs)


def delete_data_files(root: str, files: list[DataFile]) -> None:
    """Remove data files that were never committed (the table does not reference them)."""
    fs, base = filesystem(root)
    for f in files:
        with suppress(FileNotFoundError):
            fs.delete_file(f"{base.rstrip('/')}/{f.name}")
