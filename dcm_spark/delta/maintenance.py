"""Table maintenance, with Delta's own commands: OPTIMIZE compacts the small data files that
incremental runs leave (one a task, every run), VACUUM deletes the files no version in the
retention period references.

Both act on the table and its side tables (errors, promotions). Neither changes a row, so
the next incremental run still finds nothing new; delta-rs and DuckDB still read the table
(tests/test_maintenance.py). VACUUM never goes below Delta's safety period (168 hours)
unless told to (``force``): a shorter one can delete files a running reader or writer still
needs, and makes time travel to older versions impossible.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dcm_spark.delta.keys import known_files, remember_rewrite
from dcm_spark.delta.table import exists
from dcm_spark.errors import DcmSparkError
from dcm_spark.paths import absolute, errors_path, local_path, promotions_path

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

#: Delta's default retention (``delta.deletedFileRetentionDuration``): 7 days.
SAFE_RETAIN_HOURS = 168
#: Z-order keys: rows of one study and series end up in few files (data skipping).
ZORDER_COLUMNS = ("StudyInstanceUID", "SeriesInstanceUID")


class UnsafeRetention(DcmSparkError, ValueError):
    """A VACUUM retention below Delta's safety period, not forced."""


@dataclass(frozen=True)
class Compacted:
    """What OPTIMIZE did to one table."""

    table: str
    files_removed: int
    files_added: int


def tables_of(path: str) -> list[str]:
    """The table at ``path`` and its side tables (those that exist are kept by callers)."""
    path = absolute(path)
    return [path, errors_path(path), promotions_path(path)]


def optimize(spark: SparkSession, path: str, *, zorder: bool = False) -> list[Compacted]:
    """OPTIMIZE the table and its side tables (Z-ordered by study and series if ``zorder``
    and the table has both columns); what each compaction did."""
    done = []
    tables = tables_of(path)
    for table in tables:
        if not exists(spark, table):
            continue
        columns = spark.read.format("delta").load(table).columns
        sql = f"OPTIMIZE delta.`{table}`"
        if zorder and all(c in columns for c in ZORDER_COLUMNS):
            sql += f" ZORDER BY ({', '.join(ZORDER_COLUMNS)})"
        # a local table's keys, to keep for OPTIMIZE's commit (others keep none)
        local = table == tables[0] and local_path(table) is not None
        before = known_files(spark, table) if local else None
        metrics = spark.sql(sql).select("metrics.numFilesRemoved", "metrics.numFilesAdded").first()
        removed, added = (0, 0) if metrics is None else (int(metrics[0]), int(metrics[1]))
        remember_rewrite(table, before)  # the next run's no-op reads no data file
        done.append(Compacted(table, removed, added))
    return done


def optimize_if_many(spark: SparkSession, path: str, most: int) -> list[Compacted]:
    """OPTIMIZE (`optimize`) if the table has more than ``most`` data files; [] if not.
    After a run, with ``--auto-optimize N``: every run adds a file a task."""
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{absolute(path)}`").select("numFiles").first()
    return optimize(spark, path) if detail is not None and int(detail[0]) > most else []


def vacuum(
    spark: SparkSession, path: str, *, retain_hours: float = SAFE_RETAIN_HOURS, force: bool = False
) -> list[str]:
    """VACUUM the table and its side tables; the tables vacuumed.

    Raises
    ------
    UnsafeRetention
        If ``retain_hours`` is below `SAFE_RETAIN_HOURS` and not ``force``.
    """
    if retain_hours < SAFE_RETAIN_HOURS and not force:
        raise UnsafeRetention(
            f"a retention of {retain_hours:g} hours is below Delta's safety period of "
            f"{SAFE_RETAIN_HOURS}: files a running job still reads could go, and time travel "
            "before it; force it explicitly if no one else uses the table"
        )
    key = "spark.databricks.delta.retentionDurationCheck.enabled"
    previous = spark.conf.get(key, "true")
    done = []
    try:
        if force:
            spark.conf.set(key, "false")
        for table in tables_of(path):
            if exists(spark, table):
                spark.sql(f"VACUUM delta.`{table}` RETAIN {retain_hours:g} HOURS")
                done.append(table)
    finally:
        spark.conf.set(key, previous or "true")
    return done
