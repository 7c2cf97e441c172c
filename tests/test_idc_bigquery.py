"""BigQuery SQL as IDC users write it, translated to Spark SQL and run on Spark.

The expected values are written by hand from BigQuery's documented semantics.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import idc_index_data
import pytest
import sqlglot
from sqlglot import exp

from dcm_spark.idc.bigquery import UnsupportedQuery, to_spark

VIEWS = {"dicom", "dicom_all", "dicom_metadata", "dicom_series", "dicom_studies", "dicom_errors"}

#: IDC's index queries that read only dicom_all / dicom_metadata.
IDC_DICOM_ONLY = [
    "sm_index",
    "sm_instance_index",
    "seg_index",
    "ann_index",
    "ann_group_index",
    "contrast_index",
    "volume_geometry_index",
    "rtstruct_index",
    "ct_index",
    "mr_index",
    "pt_index",
]
#: The others, with the first thing that stops them.
_V25 = "unknown table bigquery-public-data.idc_v25"
IDC_OTHERS = {
    "idc_index": f"{_V25}.auxiliary_metadata",
    "prior_versions_index": "SET statements are not supported",
    "collections_index": f"{_V25}.original_collections_metadata",
    "analysis_results_index": f"{_V25}.analysis_results_metadata",
    "clinical_index": "unknown table bigquery-public-data.idc_v25_clinical.column_metadata",
    "version_metadata_index": f"{_V25}.version_metadata",
}


def _from_tables(spark_sql: str) -> list[str]:
    tables = sqlglot.parse_one(spark_sql, read="spark").find_all(exp.Table)
    return [t.sql("spark") for t in tables if isinstance(t.this, exp.Identifier)]


def test_every_idc_index_is_classified() -> None:
    assert set(idc_index_data.INDEX_METADATA) == set(IDC_DICOM_ONLY) | set(IDC_OTHERS)


@pytest.mark.parametrize("name", IDC_DICOM_ONLY)
def test_idc_index_query_translates(name: str) -> None:
    spark_sql = to_spark(idc_index_data.INDEX_METADATA[name]["sql"], views=VIEWS)
    (statement,) = sqlglot.parse(spark_sql, read="spark")
    assert isinstance(statement, exp.Query)
    ctes = [cte.alias for cte in statement.find_all(exp.CTE)]
    assert len(ctes) == len(set(ctes))
    assert {t.split(" ")[0] for t in _from_tables(spark_sql)} <= VIEWS | set(ctes)


@pytest.mark.parametrize(("name", "message"), IDC_OTHERS.items())
def test_idc_index_query_on_other_tables_is_refused(name: str, message: str) -> None:
    with pytest.raises(UnsupportedQuery, match=message):
        to_spark(idc_index_data.INDEX_METADATA[name]["sql"], views=VIEWS)


@pytest.mark.parametrize(
    "table",
    [
        "`bigquery-public-data.idc_current.dicom_all`",
        "bigquery-public-data.idc_v21.dicom_all",
        "`bigquery-public-data`.`idc_v25`.`dicom_all`",
        "`bigquery-public-data`.idc_current.dicom_all",
        "idc_v19.dicom_all",
        "`idc_current.dicom_all`",
        "dicom_all",
    ],
)
def test_idc_qualified_names_map_to_the_view(table: str) -> None:
    spark_sql = to_spark(f"SELECT dicom_all.Modality FROM {table}", views=VIEWS)
    assert _from_tables(spark_sql) == ["dicom_all"]


def test_idc_metadata_maps_to_its_view() -> None:
    sql = "SELECT COUNT(*) FROM `bigquery-public-data.idc_current.dicom_metadata` AS m"
    assert _from_tables(to_spark(sql, views=VIEWS)) == ["dicom_metadata AS m"]


@pytest.mark.parametrize(
    "table",
    [
        "`bigquery-public-data.idc_current.dicom_metadata_curated`",
        "`bigquery-public-data.idc_current_clinical.dicom_all`",
        "`bigquery-public-data.idc_current.auxiliary_metadata`",
        "`other-project.idc_current.dicom_all`",
        "mydataset.dicom_all",
        "patients",
    ],
)
def test_unknown_table_is_named(table: str) -> None:
    with pytest.raises(UnsupportedQuery) as caught:
        to_spark(f"SELECT * FROM {table}", views=VIEWS)
    name = table.replace("`", "")
    assert str(caught.value) == (
        f"unknown table {name}: the views are "
        "dicom, dicom_all, dicom_errors, dicom_metadata, dicom_series, dicom_studies"
    )


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("INSERT INTO dicom_all (Modality) VALUES ('CT')", "INSERT"),
        ("UPDATE dicom_all SET Modality = 'CT' WHERE TRUE", "UPDATE"),
        ("DELETE FROM dicom_all WHERE TRUE", "DELETE"),
        ("MERGE dicom_all USING dicom ON FALSE WHEN MATCHED THEN DELETE", "MERGE"),
        ("CREATE TABLE x AS SELECT * FROM dicom_all", "CREATE TABLE"),
        ("CREATE OR REPLACE VIEW v AS SELECT 1", "CREATE VIEW"),
        ("DROP TABLE dicom_all", "DROP"),
        ("ALTER TABLE dicom_all ADD COLUMN c INT64", "ALTER"),
        ("TRUNCATE TABLE dicom_all", "TRUNCATE"),
        ("EXPORT DATA OPTIONS (uri = 'gs://b/*.csv', format = 'CSV') AS SELECT 1", "EXPORT"),
        ("CALL proc()", "CALL"),
        ("DECLARE x INT64; SET x = 1; SELECT x", "SET"),
        ("EXECUTE IMMEDIATE 'SELECT 1'", "EXECUTE"),
    ],
)
def test_writes_and_scripting_are_refused_in_one_line(sql: str, kind: str) -> None:
    with pytest.raises(UnsupportedQuery) as caught:
        to_spark(sql, views=VIEWS)
    assert str(caught.value).startswith(f"{kind} statements are not supported")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    "sql", ["SELECT FROM WHERE", "SELECT a FROM dicom WHERE (", "SELECT 'open", "SELEC 1"]
)
def test_parse_error_is_one_line(sql: str) -> None:
    with pytest.raises(UnsupportedQuery, match="^cannot parse the query: ") as caught:
        to_spark(sql, views=VIEWS)
    assert "\n" not in str(caught.value) and "\x1b" not in str(caught.value)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("SELECT 1; SELECT 2", "only one query"),
        ("SELECT 1; DECLARE x INT64", "must end with a SELECT"),
        ("SELECT * REPLACE (1 AS Modality) FROM dicom", r"SELECT \* REPLACE"),
        ("SELECT STRING_AGG(Modality LIMIT 2) FROM dicom", "STRING_AGG"),
        ("SELECT CAST(1 AS BIGNUMERIC)", "BIGNUMERIC"),
        ("SELECT ARRAY(SELECT Modality FROM dicom)", r"ARRAY\(subquery\)"),
        ("SELECT ARRAY(SELECT x FROM UNNEST(a) AS x ORDER BY x) FROM dicom", "OFFSET"),
        ("SELECT ARRAY_AGG(a ORDER BY b, c DESC) FROM dicom", "ASC and DESC"),
        ("SELECT ARRAY_AGG(DISTINCT a ORDER BY b) FROM dicom", "DISTINCT"),
    ],
)
def test_untranslatable_construct_is_named(sql: str, message: str) -> None:
    with pytest.raises(UnsupportedQuery, match=message):
        to_spark(sql, views=VIEWS)


def test_nested_with_reusing_a_name_gets_unique_ctes() -> None:
    sql = "WITH s AS (WITH s AS (SELECT 1 AS a) SELECT a FROM s) SELECT a FROM s"
    ctes = [cte.alias for cte in sqlglot.parse_one(to_spark(sql, views=VIEWS)).find_all(exp.CTE)]
    assert sorted(ctes) == ["s", "s_1"]


# --- Spark: each construct runs, with results checked against BigQuery's semantics ---

TEST_VIEWS = {"bq_arrays", "bq_groups", "bq_seqs", "dicom_all"}


@pytest.fixture(scope="module")
def bq(spark: Any) -> Iterator[Any]:
    spark.createDataFrame(
        [(1, ["a", "b", "c"], 1), (2, None, 0), (3, [], 2)], "id INT, arr ARRAY<STRING>, n INT"
    ).createOrReplaceTempView("bq_arrays")
    groups = [(1, "b", 2), (1, "a", 1), (1, "c", 3), (1, None, 4), (1, "b", 5), (2, None, 1)]
    groups += [(2, "x", 2), (3, None, 1), (3, None, 2), (3, None, 3), (3, "y", 4)]
    spark.createDataFrame(groups, "g INT, s STRING, k INT").createOrReplaceTempView("bq_groups")
    code = "STRUCT<CodeValue: STRING, CodeMeaning: STRING>"
    seqs = [(1, [("T-1", "Liver"), ("T-2", "Kidney")]), (2, None)]
    spark.createDataFrame(seqs, f"id INT, seq ARRAY<{code}>").createOrReplaceTempView("bq_seqs")
    yield spark
    for name in TEST_VIEWS:
        spark.catalog.dropTempView(name)


def run(spark: Any, sql: str) -> list[tuple[Any, ...]]:
    return [tuple(row) for row in spark.sql(to_spark(sql, views=TEST_VIEWS)).collect()]


def test_offset_ordinal_and_safe_subscripts(bq: Any) -> None:
    sql = """SELECT arr[OFFSET(1)], arr[ORDINAL(1)], arr[SAFE_OFFSET(5)], arr[SAFE_OFFSET(-1)],
        arr[SAFE_OFFSET(n)], arr[SAFE_ORDINAL(n)], arr[OFFSET(n + 1)]
        FROM bq_arrays WHERE id = 1"""
    assert run(bq, sql) == [("b", "a", None, None, "b", "a", "c")]


def test_subscripts_of_null_and_empty_arrays(bq: Any) -> None:
    sql = "SELECT id, arr[SAFE_OFFSET(0)], arr[SAFE_ORDINAL(n)] FROM bq_arrays ORDER BY id"
    assert run(bq, sql) == [(1, "a", "a"), (2, None, None), (3, None, None)]


def test_offset_out_of_range_fails(bq: Any) -> None:
    with pytest.raises(Exception, match="INVALID_ARRAY_INDEX"):
        run(bq, "SELECT arr[OFFSET(3)] FROM bq_arrays WHERE id = 1")


def test_array_length(bq: Any) -> None:
    sql = "SELECT id, ARRAY_LENGTH(arr) FROM bq_arrays ORDER BY id"
    assert run(bq, sql) == [(1, 3), (2, None), (3, 0)]


def test_casts_and_safe_cast(bq: Any) -> None:
    sql = """SELECT SAFE_CAST('x' AS INT64), SAFE_CAST('12' AS INT64), CAST('7' AS INT64),
        CAST('1.5' AS FLOAT64), CAST(12 AS STRING), CAST('1.25' AS NUMERIC)"""
    assert run(bq, sql) == [(None, 12, 7, 1.5, "12", Decimal("1.250000000"))]


def test_string_agg_distinct_ordered(bq: Any) -> None:
    sql = "SELECT g, STRING_AGG(DISTINCT s, ',' ORDER BY s) FROM bq_groups GROUP BY g ORDER BY g"
    assert run(bq, sql) == [(1, "a,b,c"), (2, "x"), (3, "y")]


def test_array_agg_distinct_ignore_nulls_ordered(bq: Any) -> None:
    sql = """SELECT g, ARRAY_AGG(DISTINCT s IGNORE NULLS ORDER BY s) FROM bq_groups
        WHERE g < 3 GROUP BY g ORDER BY g"""
    assert run(bq, sql) == [(1, ["a", "b", "c"]), (2, ["x"])]


def test_array_agg_ordered_by_another_key_with_limit(bq: Any) -> None:
    sql = """SELECT g, ARRAY_AGG(s IGNORE NULLS ORDER BY k DESC LIMIT 2) FROM bq_groups
        WHERE g < 3 GROUP BY g ORDER BY g"""
    assert run(bq, sql) == [(1, ["b", "c"]), (2, ["x"])]


def test_array_agg_orders_null_keys_first(bq: Any) -> None:
    sql = "SELECT g, ARRAY_AGG(k ORDER BY s, k) FROM bq_groups WHERE g < 3 GROUP BY g ORDER BY g"
    assert run(bq, sql) == [(1, [4, 1, 2, 5, 3]), (2, [1, 2])]


def test_any_value_skips_nulls(bq: Any) -> None:
    assert run(bq, "SELECT ANY_VALUE(s) FROM bq_groups WHERE g = 3") == [("y",)]


def test_countif(bq: Any) -> None:
    sql = "SELECT g, COUNTIF(s = 'b') FROM bq_groups GROUP BY g ORDER BY g"
    assert run(bq, sql) == [(1, 2), (2, 0), (3, 0)]


def test_if_and_error(bq: Any) -> None:
    sql = "SELECT id, IF(ARRAY_LENGTH(arr) > 0, 'some', 'none') FROM bq_arrays ORDER BY id"
    assert run(bq, sql) == [(1, "some"), (2, "none"), (3, "none")]
    assert run(bq, "SELECT IF(id > 0, 'ok', ERROR('bad id')) FROM bq_arrays") == [("ok",)] * 3
    with pytest.raises(Exception, match="bad id 2"):
        run(
            bq,
            "SELECT IF(id <> 2, 'ok', ERROR(CONCAT('bad id ', CAST(id AS STRING)))) FROM bq_arrays",
        )


def test_unnest_with_offset(bq: Any) -> None:
    sql = "SELECT id, x, i FROM bq_arrays, UNNEST(arr) AS x WITH OFFSET AS i ORDER BY id, i"
    assert run(bq, sql) == [(1, "a", 0), (1, "b", 1), (1, "c", 2)]


def test_left_join_unnest_keeps_rows_without_elements(bq: Any) -> None:
    sql = "SELECT id, x FROM bq_arrays LEFT JOIN UNNEST(arr) AS x ORDER BY id, x"
    assert run(bq, sql) == [(1, "a"), (1, "b"), (1, "c"), (2, None), (3, None)]


def test_unnest_array_of_structs(bq: Any) -> None:
    sql = "SELECT id, c.CodeValue FROM bq_seqs CROSS JOIN UNNEST(seq) AS c ORDER BY 2"
    assert run(bq, sql) == [(1, "T-1"), (1, "T-2")]
    sql = "SELECT id, CodeMeaning FROM bq_seqs, UNNEST(seq) ORDER BY CodeMeaning"
    assert run(bq, sql) == [(1, "Kidney"), (1, "Liver")]


def test_array_subquery_over_unnest(bq: Any) -> None:
    sql = """SELECT id, ARRAY(SELECT UPPER(x) FROM UNNEST(arr) AS x WITH OFFSET AS i WHERE i > 0),
        ARRAY(SELECT CONCAT(x, ':', CAST(i AS STRING)) FROM UNNEST(arr) AS x WITH OFFSET i)
        FROM bq_arrays ORDER BY id"""
    assert run(bq, sql) == [(1, ["B", "C"], ["a:0", "b:1", "c:2"]), (2, [], []), (3, [], [])]


def test_array_agg_subquery_ordered_by_offset(bq: Any) -> None:
    sql = """SELECT id, (SELECT ARRAY_AGG(x ORDER BY i) FROM UNNEST(arr) x WITH OFFSET i
        WHERE i BETWEEN 1 AND 2) FROM bq_arrays ORDER BY id"""
    assert run(bq, sql) == [(1, ["b", "c"]), (2, None), (3, None)]


def test_in_unnest_and_exists(bq: Any) -> None:
    sql = """SELECT id, 'b' IN UNNEST(arr), EXISTS(SELECT 1 FROM UNNEST(arr) AS x WHERE x > 'b')
        FROM bq_arrays ORDER BY id"""
    assert run(bq, sql) == [(1, True, True), (2, False, False), (3, False, False)]


def test_select_star_except(bq: Any) -> None:
    assert run(bq, "SELECT * EXCEPT (arr, n) FROM bq_arrays ORDER BY id") == [(1,), (2,), (3,)]


def test_comments_and_date_timestamp_literals(bq: Any) -> None:
    sql = """# a BigQuery comment
        SELECT EXTRACT(DAY FROM DATE '2024-02-29'),  -- another
          EXTRACT(HOUR FROM TIMESTAMP '2024-01-01 12:00:00+00')"""
    assert run(bq, sql) == [(29, 12)]


def test_declared_variables_are_substituted(bq: Any) -> None:
    sql = """DECLARE lo DEFAULT 1; DECLARE tag STRING DEFAULT 'x'; DECLARE hi = lo + 1;
        DECLARE missing INT64;
        SELECT id, tag, missing FROM bq_arrays WHERE id BETWEEN lo AND hi ORDER BY id"""
    assert run(bq, sql) == [(1, "x", None), (2, "x", None)]


def test_nested_with_reusing_an_outer_name(bq: Any) -> None:
    sql = """WITH t AS (
          WITH t AS (SELECT id FROM bq_arrays WHERE id > 1) SELECT t.id * 10 AS id FROM t
        ), u AS (SELECT id FROM t)
        SELECT t.id FROM t JOIN u USING (id) ORDER BY t.id"""
    assert run(bq, sql) == [(20,), (30,)]


def _instance(series: str, sop: str, z: str, image_type: str = "AXIAL") -> tuple[Any, ...]:
    return (
        series,
        sop,
        "CT",
        "1.2.840.10008.5.1.4.1.1.2",
        ["-100", "-120", z],
        ["1", "0", "0", "0", "1", "0"],
        ["0.5", "0.5"],
        512,
        512,
        ["ORIGINAL", "PRIMARY", image_type],
    )


def test_idc_volume_geometry_index_runs(bq: Any) -> None:
    """IDC's own script: DECLAREs, WITH OFFSET subqueries, SELECT AS STRUCT, ARRAY_AGG LIMIT."""
    rows = [_instance("1.1", "1.1.2", "2.5"), _instance("1.1", "1.1.1", "0")]
    rows += [_instance("1.1", "1.1.3", "5"), _instance("2.2", "2.2.1", "0", "LOCALIZER")]
    rows += [_instance("3.3", f"3.3.{z}", z) for z in ("0", "1", "3")]
    schema = """SeriesInstanceUID STRING, SOPInstanceUID STRING, Modality STRING,
        SOPClassUID STRING, ImagePositionPatient ARRAY<STRING>,
        ImageOrientationPatient ARRAY<STRING>, PixelSpacing ARRAY<STRING>, `Rows` INT,
        `Columns` INT, ImageType ARRAY<STRING>"""
    bq.createDataFrame(rows, schema).createOrReplaceTempView("dicom_all")
    result = run(bq, idc_index_data.INDEX_METADATA["volume_geometry_index"]["sql"])
    checks = (True,) * 7
    volume = [-100.0, -120.0, 0.0], [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], 2.5
    assert result == [
        ("1.1", *checks, True, 0.0, True, *volume),
        ("3.3", *checks, False, 0.0, False, None, None, None),
    ]


def test_idc_contrast_index_runs(bq: Any) -> None:
    """IDC's own query: ARRAY_AGG(DISTINCT ... IGNORE NULLS ORDER BY), ARRAY_LENGTH, SAFE_OFFSET."""
    rows = [("A", "CT", "Omnipaque", "Iohexol", "IV"), ("A", "CT", None, None, "IV")]
    rows += [("A", "CT", "Isovue", "Iopamidol", None), ("B", "MR", None, None, None)]
    rows += [("C", "SEG", "Omnipaque", None, None)]
    schema = """SeriesInstanceUID STRING, Modality STRING, ContrastBolusAgent STRING,
        ContrastBolusIngredient STRING, ContrastBolusRoute STRING"""
    bq.createDataFrame(rows, schema).createOrReplaceTempView("dicom_all")
    result = run(bq, idc_index_data.INDEX_METADATA["contrast_index"]["sql"])
    assert result == [("A", ["Isovue", "Omnipaque"], ["Iohexol", "Iopamidol"], ["IV"])]


@pytest.mark.parametrize(
    ("sql", "read"),
    [
        ("SELECT Modality, count(*) FROM dicom_all GROUP BY 1", {"modality", "dicom_all"}),
        (
            "SELECT s.CodeValue FROM dicom_all LATERAL VIEW explode(AnatomicRegionSequence) t AS s",
            {"codevalue", "dicom_all", "anatomicregionsequence", "t", "s"},
        ),
        ("SELECT * FROM dicom_all", None),
        ("SELECT d.* FROM dicom_all AS d", None),
    ],
)
def test_a_view_of_the_columns_a_query_names(sql: str, read: set[str] | None) -> None:
    from dcm_spark.idc.view import columns_read

    assert columns_read(sql) == (None if read is None else frozenset(read))
