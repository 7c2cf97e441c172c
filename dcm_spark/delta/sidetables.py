"""The side tables beside the instance table: ``<table>_errors`` (files that gave no row) and
``<table>_promotions`` (every column whose type a run promoted)."""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyspark.sql.pandas.types import from_arrow_schema

from dcm_spark.delta.table import exists
from dcm_spark.records import META_SCHEMA, UTC_MICROS, FailedFile, arrow_type
from dcm_spark.schema import Promotion

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_RUN = [META_SCHEMA.field("_run_id")]
#: ``<table>_errors``: a `FailedFile` and the run that found it.
ERRORS_SCHEMA = pa.schema([*arrow_type(FailedFile), *_RUN, META_SCHEMA.field("_ingested_at")])
#: ``<table>_promotions``: a `dcm_spark.schema.Promotion` and the run that made it.
PROMOTIONS_SCHEMA = pa.schema(
    [("column_path", pa.string()), *list(arrow_type(Promotion))[1:], *_RUN]
    + [("promoted_at", UTC_MICROS)]
)


def record_errors(
    spark: SparkSession,
    path: str,
    failures: list[FailedFile],
    run_id: str,
    ingested_at: datetime.datetime,
    *,
    replace: bool = False,
) -> None:
    """Append the run's failed files to the errors table at ``path``; ``replace`` (a full
    refresh) keeps only them."""
    run = {"_run_id": run_id, "_ingested_at": ingested_at}
    rows = [dataclasses.asdict(f) | run for f in failures]
    _append(spark, path, rows, ERRORS_SCHEMA, replace=replace)


def record_promotions(
    spark: SparkSession, path: str, promoted: list[Promotion], run_id: str
) -> list[dict[str, Any]]:
    """Append the run's promotions to the promotions table at ``path``; the rows added."""
    run = {"_run_id": run_id, "promoted_at": datetime.datetime.now(datetime.UTC)}
    rows = [
        dict(zip(PROMOTIONS_SCHEMA.names, dataclasses.astuple(p), strict=False)) | run
        for p in promoted
    ]
    _append(spark, path, rows, PROMOTIONS_SCHEMA)
    return rows


def _append(
    spark: SparkSession,
    path: str,
    rows: list[dict[str, Any]],
    schema: pa.Schema,
    *,
    replace: bool = False,
) -> None:
    if rows or (replace and exists(spark, path)):
        df = spark.createDataFrame(rows, from_arrow_schema(schema))
        mode = "overwrite" if replace else "append"
        df.write.format("delta").mode(mode).option("mergeSchema", "true").save(path)
