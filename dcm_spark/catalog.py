"""The query side: register the tables as views, and show the schema like BigQuery does."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Collection
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydicom.datadict import dictionary_description, dictionary_VR, keyword_dict

from dcm_spark.delta.table import exists
from dcm_spark.dicom.vr import BULK_DATA, OTHER_ELEMENTS
from dcm_spark.idc.view import dicom_all_view
from dcm_spark.paths import absolute, errors_path, promotions_path
from dcm_spark.records import META_DESCRIPTIONS, META_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.types import DataType, StructType

FORMATS = ("text", "csv", "json")
#: The names IDC queries read the table by (``dicom_metadata``: the export before IDC's
#: own columns; here the same view).
IDC_VIEWS = ["dicom_all", "dicom_metadata"]
#: Every view `register` may register.
VIEWS = (
    "dicom",
    "dicom_typed",
    *IDC_VIEWS,
    "dicom_series",
    "dicom_studies",
    "dicom_errors",
    "dicom_promotions",
)
DESCRIPTIONS = {
    **META_DESCRIPTIONS,
    OTHER_ELEMENTS: "private, unknown and unparsable elements as text",
    BULK_DATA: "where each binary value lies in the file (offset, length)",
}


def register(
    spark: SparkSession,
    path: str,
    *,
    idc: bool | Collection[str] = True,
    as_of: str | int | None = None,
    data_source: bool = True,
) -> list[str]:
    """Register the table and its views for Spark SQL; return the names registered.

    - ``dicom``: the table, one row per instance;
    - ``dicom_typed``: the same with every DS as double and every IS as bigint, at any
      depth (values that do not parse are null);
    - ``dicom_series`` and ``dicom_studies``: one row per SeriesInstanceUID and per
      StudyInstanceUID, with the instance count and every scalar value that all the
      instances share (null where they differ). Views: current after every ingest;
    - ``dicom_all`` and ``dicom_metadata``: the table laid out as IDC's ``dicom_all``
      (`dcm_spark.idc.view`): every column an IDC query may name, null where absent
      (``idc=False`` leaves them out: laying out ~4,000 columns takes seconds; ``idc`` a
      set of lower case names: only those of the layout's columns, see
      `dcm_spark.idc.view.columns_read`);
    - ``dicom_errors`` and ``dicom_promotions``: the side tables, when they exist.

    ``as_of`` (a version number, or a timestamp such as "2026-12-06 10:00:00") registers
    the table and its side tables as they were then (Delta time travel): the same query
    gives the same answer later, as a versioned IDC release does.

    It also makes ``spark.read.format("dicom")`` known (`dcm_spark.source`), unless
    ``data_source`` is false (a second in a fresh JVM, for what reads only the table).
    """
    from dcm_spark import source

    path = absolute(path)
    views: list[tuple[str, DataFrame]] = []
    with ThreadPoolExecutor(1) as beside:
        laid_out = None
        if exists(spark, path):
            df = _read(spark, path, as_of)
            df.createOrReplaceTempView("dicom")
            if idc is not False:
                # Spark analyses the whole layout (~4,400 columns, about a second) in a
                # thread of its own while this one does the rest
                columns = None if idc is True else idc
                laid_out = beside.submit(dicom_all_view, spark, df, columns=columns)
            views += [("dicom", df), ("dicom_typed", df.selectExpr(*typed_columns(df.schema)))]
            for name, key, within in (
                ("dicom_series", "SeriesInstanceUID", "StudyInstanceUID"),
                ("dicom_studies", "StudyInstanceUID", None),
            ):
                if key in df.columns:
                    within = within if within in df.columns else None
                    views.append((name, spark.sql(shared_values_sql(df.schema, key, within))))
        for name, location in (
            ("dicom_errors", errors_path(path)),
            ("dicom_promotions", promotions_path(path)),
        ):
            if exists(spark, location):
                views.append((name, _read(spark, location, as_of, side=True)))
        if data_source:
            source.register(spark)  # spark.read.format("dicom")
        if laid_out is not None:
            views[2:2] = [(name, laid_out.result()) for name in IDC_VIEWS]
    for name, view in views:
        if name != "dicom":  # registered above, for the views built on it
            view.createOrReplaceTempView(name)
    return [name for name, _ in views]


def register_idc(spark: SparkSession, columns: Collection[str] | None = None) -> list[str]:
    """Lay the registered ``dicom`` view out as IDC's ``dicom_all`` again, as ``dicom_all``
    and ``dicom_metadata`` (only the layout's ``columns``, lower case, if given: see
    `dcm_spark.idc.view.columns_read`); the other views stay as they are (the app, once
    per query that names an IDC view)."""
    laid_out = dicom_all_view(spark, spark.table("dicom"), columns=columns)
    for name in IDC_VIEWS:
        laid_out.createOrReplaceTempView(name)
    return list(IDC_VIEWS)


def _read(spark: SparkSession, path: str, as_of: str | int | None, side: bool = False) -> DataFrame:
    """A Delta table, as of a version or a time if given. A side table is read as of the
    same time; as of a version of the main table, it is read as it is now (its versions
    are its own)."""
    reader = spark.read.format("delta")
    if as_of is not None and str(as_of).isdigit():
        if not side:
            reader = reader.option("versionAsOf", int(as_of))
    elif as_of is not None:
        reader = reader.option("timestampAsOf", str(as_of))
    return reader.load(path)


# -- typed numbers: DS -> double, IS -> bigint ---------------------------------------------

_NUMBER_VRS = {"DS": "double", "IS": "bigint"}


def _number_type(name: str) -> str | None:
    tag = keyword_dict.get(name)
    return None if tag is None else _NUMBER_VRS.get(dictionary_VR(tag))


def _typed_expr(name: str, data_type: DataType, ref: str, depth: int) -> str | None:
    """Spark SQL converting the DS and IS values under ``ref``; None if there are none."""
    from pyspark.sql.types import ArrayType, StringType, StructType

    element = data_type.elementType if isinstance(data_type, ArrayType) else data_type
    if isinstance(element, StringType):
        target = _number_type(name)
        if target is None:
            return None
        if isinstance(data_type, ArrayType):
            return f"transform({ref}, v{depth} -> try_cast(v{depth} AS {target}))"
        return f"try_cast({ref} AS {target})"
    if not isinstance(element, StructType) or name in ("OtherElements", "_BulkData"):
        return None
    item = f"i{depth}" if isinstance(data_type, ArrayType) else ref
    parts, changed = [], False
    for f in element.fields:
        inner = _typed_expr(f.name, f.dataType, f"{item}.`{f.name}`", depth + 1)
        changed |= inner is not None
        parts.append(f"'{f.name}', {inner or f'{item}.`{f.name}`'}")
    if not changed:
        return None
    struct = f"named_struct({', '.join(parts)})"
    if isinstance(data_type, ArrayType):
        return f"transform({ref}, {item} -> {struct})"
    return f"CASE WHEN {ref} IS NULL THEN NULL ELSE {struct} END"


def typed_columns(schema: StructType) -> list[str]:
    """Select expressions of ``dicom_typed``: every column, DS and IS as numbers."""
    out = []
    for f in schema.fields:
        expr = _typed_expr(f.name, f.dataType, f"`{f.name}`", 0)
        out.append(f"{expr} AS `{f.name}`" if expr else f"`{f.name}`")
    return out


# -- series and studies ----------------------------------------------------------------------

_SERIES_SKIP = set(META_SCHEMA.names)


def shared_values_sql(schema: StructType, key: str, within: str | None = None) -> str:
    """One row per ``key`` (and ``within``, the study of a series: a filter on it then reads
    only that study's rows, where as an aggregate it made Spark aggregate the whole table
    first; a series named in two studies, which DICOM forbids, shows as two rows): instance
    count, and each scalar column all instances share.

    Shared: no null, and the least value is the greatest (min = max). Not ``count(DISTINCT
    ...) = 1``: Spark plans many distinct counts by copying each row once per column, and
    on a table of ~600 columns that filled a 1 GB heap with 3,000 rows."""
    from pyspark.sql.types import ArrayType, MapType, StructType

    keys = [key] if within is None else [key, within]
    columns = [
        f"CASE WHEN min(`{f.name}`) = max(`{f.name}`) AND count(`{f.name}`) = count(*) "
        f"THEN min(`{f.name}`) END AS `{f.name}`"
        for f in schema.fields
        if f.name not in keys
        and f.name not in _SERIES_SKIP
        and not isinstance(f.dataType, ArrayType | MapType | StructType)
    ]
    grouped = ", ".join(f"`{k}`" for k in keys)
    body = ",\n  ".join(
        [grouped, "count(*) AS instances", "max(_ingested_at) AS last_ingested_at", *columns]
    )
    return f"SELECT\n  {body}\nFROM dicom\nWHERE `{key}` IS NOT NULL\nGROUP BY {grouped}"


def render(df: DataFrame, fmt: str = "text", limit: int = 1000) -> str:
    """Rows as an aligned text table, CSV or JSON lines."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    if fmt == "json":
        return "\n".join(str(line) for line in df.limit(limit).toJSON().collect())
    rows = [[_cell(v) for v in r] for r in df.limit(limit).collect()]
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(df.columns)
        writer.writerows(rows)
        return out.getvalue().rstrip("\n")
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(df.columns)]
    lines = [" | ".join(c.ljust(w) for c, w in zip(df.columns, widths, strict=True))]
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if value is None:
        return "NULL"
    if hasattr(value, "asDict"):
        return json.dumps(value.asDict(recursive=True), default=str)
    if isinstance(value, list):
        return json.dumps(
            [v.asDict(recursive=True) if hasattr(v, "asDict") else v for v in value], default=str
        )
    return str(value)


# -- the schema, as BigQuery's schema tab shows it --------------------------------------

_BQ_TYPES = {
    "string": "STRING",
    "bigint": "INTEGER",
    "int": "INTEGER",
    "double": "FLOAT",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamp_ntz": "DATETIME",
    "boolean": "BOOLEAN",
    "binary": "BYTES",
}


def describe(name: str) -> str:
    """Description of a column: the tag and the DICOM attribute name."""
    if name in DESCRIPTIONS:
        return DESCRIPTIONS[name]
    if name.startswith("Tag_"):
        return f"({name[4:8]},{name[8:12]}) private"
    tag = keyword_dict.get(name)
    if tag is None:
        return "" if name not in ("Id", "Value") else "repeating group"
    return f"({tag >> 16:04X},{tag & 0xFFFF:04X}) {dictionary_description(tag)}"


def _field(name: str, data_type: DataType) -> dict[str, Any]:
    from pyspark.sql.types import ArrayType, DecimalType, StructType

    mode = "NULLABLE"
    if isinstance(data_type, ArrayType):
        mode, data_type = "REPEATED", data_type.elementType
    entry: dict[str, Any] = {"name": name, "mode": mode, "description": describe(name)}
    if isinstance(data_type, StructType):
        entry["type"] = "RECORD"
        entry["fields"] = [_field(f.name, f.dataType) for f in data_type.fields]
    elif isinstance(data_type, DecimalType):
        entry["type"] = "BIGNUMERIC" if data_type.precision > 38 else "NUMERIC"
    else:
        entry["type"] = _BQ_TYPES.get(data_type.simpleString(), "STRING")
    return entry


def bigquery_schema(schema: StructType, field: str | None = None) -> list[dict[str, Any]]:
    """The schema as a BigQuery schema (list of fields), or one top-level field's."""
    fields = [_field(f.name, f.dataType) for f in schema.fields]
    if field is not None:
        fields = [f for f in fields if f["name"] == field]
        if not fields:
            raise KeyError(f"no column {field!r}")
    return fields


def schema_tree(schema: StructType, field: str | None = None) -> str:
    """The schema as an indented tree: name, type, mode, description."""
    lines: list[str] = []

    def walk(entries: list[dict[str, Any]], depth: int) -> None:
        for e in entries:
            label = "  " * depth + e["name"]
            lines.append(f"{label:<48} {e['type']:<10} {e['mode']:<9} {e['description']}")
            walk(e.get("fields", []), depth + 1)

    walk(bigquery_schema(schema, field), 0)
    return "\n".join(lines)
