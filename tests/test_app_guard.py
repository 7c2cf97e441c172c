"""The app's SQL gate (`dcm_spark.app.guard`): what a web page may run, and each refusal's
one-line message. No Spark."""

from __future__ import annotations

import pytest

from dcm_spark.app.examples import cookbook
from dcm_spark.app.guard import QueryRefused, check_query
from dcm_spark.catalog import VIEWS
from dcm_spark.idc.bigquery import to_spark


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT Modality, count(*) FROM dicom GROUP BY 1",
        "select * from DICOM_SERIES where instances > 1;",
        "WITH s AS (SELECT * FROM dicom_series) SELECT count(*) FROM s",
        "SELECT * FROM dicom LATERAL VIEW explode(OtherElements) AS o",
        "SELECT 1 UNION ALL SELECT 2",
        "SELECT * FROM dicom d JOIN dicom_typed t ON d._path = t._path",
        "SELECT * FROM (SELECT _path FROM dicom) x",
    ],
)
def test_read_only_queries_over_the_views_pass(sql: str) -> None:
    assert check_query(sql) == sql.strip().rstrip(";")


def test_every_cookbook_query_passes() -> None:
    examples = cookbook()
    assert len(examples) >= 8
    for dialect, sql in examples.values():
        check_query(to_spark(sql, views=VIEWS) if dialect == "bigquery" else sql)


@pytest.mark.parametrize(
    ("sql", "message"),
    [
        ("", "refused: the query is empty"),
        ("DROP TABLE dicom", "only read-only queries"),
        ("CREATE TABLE x AS SELECT * FROM dicom", "only read-only queries"),
        ("INSERT INTO dicom SELECT * FROM dicom", "only read-only queries"),
        ("DELETE FROM dicom", "only read-only queries"),
        ("UPDATE dicom SET Modality = 'CT'", "only read-only queries"),
        ("MERGE INTO dicom USING dicom s ON true WHEN MATCHED THEN DELETE", "only read-only"),
        ("SET spark.sql.ansi.enabled=false", "only read-only queries"),
        ("ADD JAR /tmp/evil.jar", "only read-only queries (SELECT or WITH) run here, not a"),
        ("LOAD DATA INPATH '/etc/passwd' INTO TABLE dicom", "only read-only queries"),
        ("CACHE TABLE dicom", "only read-only queries"),
        ("SELECT 1; DROP TABLE dicom", "one statement at a time"),
        ("SELECT 1; SELECT 2", "one statement at a time"),
        ("SELECT * FROM parquet.`/etc`", "file-path tables"),
        ("SELECT * FROM delta.`/work/warehouse/dicom`", "file-path tables"),
        ("SELECT * FROM default.dicom", "qualified or file-path tables"),
        ("SELECT * FROM read_files('/etc/passwd')", "table-valued functions (read_files"),
        ("SELECT * FROM range(10)", "table-valued functions (range"),
        ("SELECT * FROM IDENTIFIER('parquet.`/etc`')", "table-valued functions"),
        ("SELECT * FROM secrets", "unknown table 'secrets'"),
        ("SELECT * FROM dicom WHERE _path IN (SELECT x FROM other)", "unknown table 'other'"),
        ("SELECT reflect('java.lang.System', 'getenv', 'HOME')", "reflect() is not allowed"),
        ("SELECT java_method('java.lang.System', 'exit', 0)", "java_method() is not allowed"),
        ("SELECT input_file_name() FROM dicom", "input_file_name() is not allowed"),
        ("SELECT * INTO copy FROM dicom", "SELECT ... INTO"),
        ("SELECT (", "not valid Spark SQL"),
    ],
)
def test_refusals_say_why_in_one_line(sql: str, message: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        check_query(sql)
    text = str(refused.value)
    assert text.startswith("refused: ") and "\n" not in text
    assert message in text


def test_refusal_never_echoes_a_literal_of_the_query() -> None:
    with pytest.raises(QueryRefused) as refused:
        check_query("DELETE FROM dicom WHERE PatientName = 'DOE^JANE'")
    assert "DOE" not in str(refused.value)
