"""idc-index tables from a local table: IDC's own index queries, run on `dicom_all`.

The installed ``idc-index-data`` package (pinned in pyproject.toml) ships each index's
BigQuery SQL and output schema (``INDEX_METADATA``). Every index whose SQL reads only
``dicom_all`` / ``dicom_metadata`` runs here through `dcm_spark.idc.bigquery`, so the local
index follows IDC's definitions as the package changes; its result is cast to the
package's schema and written as ``<name>.parquet``, which DuckDB reads as idc-index does.
``idc_index`` itself reads IDC's curated tables: here it is one row per series of the
local table, with IDC's own columns (collection, DOI, licence, URLs, versions) taken from
the package's ``idc_index.parquet`` for series IDC has, null for the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp

from dcm_spark.idc.bigquery import UnsupportedQuery, to_spark
from dcm_spark.idc.layout import BIGQUERY_TYPES
from dcm_spark.idc.view import columns_read, dicom_all_view

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: The views IDC's index SQL may read.
SOURCES = ("dicom_all", "dicom_metadata")
#: Columns of ``idc_index`` that only IDC knows (taken from the package's parquet).
IDC_ONLY = (
    "collection_id",
    "analysis_result_id",
    "source_DOI",
    "license_short_name",
    "series_init_idc_version",
    "series_revised_idc_version",
    "aws_bucket",
    "crdc_series_uuid",
    "series_aws_url",
)

#: ``idc_index``'s DICOM columns, from the local table (Spark SQL over ``dicom_all``).
_IDC_INDEX_SQL = """
SELECT
  any_value(PatientID, true) AS PatientID,
  SeriesInstanceUID,
  any_value(StudyInstanceUID, true) AS StudyInstanceUID,
  any_value(PatientAge, true) AS PatientAge,
  any_value(PatientSex, true) AS PatientSex,
  CAST(any_value(StudyDate, true) AS STRING) AS StudyDate,
  any_value(StudyDescription, true) AS StudyDescription,
  any_value(BodyPartExamined, true) AS BodyPartExamined,
  any_value(Modality, true) AS Modality,
  any_value(SOPClassUID, true) AS SOPClassUID,
  any_value(TransferSyntaxUID, true) AS TransferSyntaxUID,
  any_value(PhotometricInterpretation, true) AS PhotometricInterpretation,
  CAST(any_value(PixelRepresentation, true) AS STRING) AS PixelRepresentation,
  any_value(Manufacturer, true) AS Manufacturer,
  any_value(ManufacturerModelName, true) AS ManufacturerModelName,
  CAST(any_value(SeriesDate, true) AS STRING) AS SeriesDate,
  any_value(SeriesDescription, true) AS SeriesDescription,
  CAST(any_value(SeriesNumber, true) AS STRING) AS SeriesNumber,
  count(*) AS instanceCount,
  sum(_size) / 1000000.0 AS series_size_MB
FROM {source}
WHERE SeriesInstanceUID IS NOT NULL
GROUP BY SeriesInstanceUID
"""


def _metadata() -> dict[str, dict[str, Any]]:
    from idc_index_data import INDEX_METADATA

    return dict(INDEX_METADATA)


def arrow_schema(name: str) -> pa.Schema:
    """An index's columns and types, from the package's ``<name>_schema.json``."""

    def kind(column: dict[str, Any]) -> pa.DataType:
        if column["type"] == "RECORD":
            inner: pa.DataType = pa.struct([(f["name"], kind(f)) for f in column["fields"]])
        else:
            inner = BIGQUERY_TYPES[column["type"]]
        return pa.list_(inner) if column.get("mode") == "REPEATED" else inner

    return pa.schema([(c["name"], kind(c)) for c in _metadata()[name]["schema"]["columns"]])


def local_indexes() -> list[str]:
    """The package's indexes that read only `SOURCES` (their SQL translates), and
    ``idc_index``."""
    names = ["idc_index"]
    for name, entry in _metadata().items():
        try:
            to_spark(entry["sql"], views=SOURCES)
        except UnsupportedQuery:
            continue
        names.append(name)
    return names


def index_frame(spark: SparkSession, name: str) -> DataFrame:
    """The index ``name`` of the registered ``dicom`` view, as a Spark DataFrame. The query
    reads its own ``dicom_all`` view of only the columns it names (`columns_read`)."""
    own = f"_dicom_all_for_{name}"
    if name == "idc_index":
        sql = _IDC_INDEX_SQL.format(source=own)
    else:
        tree = sqlglot.parse_one(to_spark(_metadata()[name]["sql"], views=SOURCES), read="spark")
        for table in tree.find_all(exp.Table):
            if table.name in SOURCES and not table.db:
                table.set("this", exp.to_identifier(own))
        sql = tree.sql("spark")
    laid_out = dicom_all_view(spark, spark.table("dicom"), columns=columns_read(sql))
    laid_out.createOrReplaceTempView(own)
    frame = spark.sql(sql)
    return _with_idc_columns(spark, frame) if name == "idc_index" else frame


def _with_idc_columns(spark: SparkSession, local: DataFrame) -> DataFrame:
    """``idc_index``'s local rows with SOP class and transfer syntax names, and IDC's own
    columns for the series IDC has."""
    from pydicom.uid import UID_dictionary

    names = spark.createDataFrame(
        [(uid, entry[0]) for uid, entry in UID_dictionary.items()], "uid string, name string"
    )
    for column, label in (
        ("SOPClassUID", "sop_class_name"),
        ("TransferSyntaxUID", "transfer_syntax_name"),
    ):
        local = local.join(names.withColumnsRenamed({"uid": column, "name": label}), column, "left")
    idc = spark.read.parquet(str(_metadata()["idc_index"]["parquet_filepath"]))
    idc = idc.select("SeriesInstanceUID", *IDC_ONLY)
    return local.join(idc, "SeriesInstanceUID", "left")


def write_index(spark: SparkSession, name: str, out: Path) -> Path:
    """Run the index ``name`` on the registered views and write ``<out>/<name>.parquet``
    with exactly the package's columns and types; the file written."""
    schema = arrow_schema(name)
    frame = index_frame(spark, name)
    missing = [n for n in schema.names if n not in frame.columns]
    if missing:
        raise UnsupportedQuery(f"{name}: the query gives no column {', '.join(missing)}")
    from pyspark.sql.pandas.types import from_arrow_type

    columns = [
        frame[f"`{f.name}`"]
        if pa.types.is_nested(f.type)
        else frame[f"`{f.name}`"].cast(from_arrow_type(f.type)).alias(f.name)
        for f in schema
    ]
    rows = frame.select(*columns).toArrow()
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.parquet"
    pq.write_table(rows.cast(schema, safe=False), target)
    return target
