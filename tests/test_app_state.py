"""The app's session object (`dcm_spark.app.state`) on a real table: guarded queries with a
row limit, a time-out and one-line errors, downloads, fill rates per version, series, and a
header; plus the schema page's HTML (`dcm_spark.app.schema_view`)."""

from __future__ import annotations

import csv
import shutil
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pydicom
import pytest

from dcm_spark.app.guard import QueryRefused
from dcm_spark.app.schema_view import schema_html
from dcm_spark.app.state import AppState
from dcm_spark.catalog import bigquery_schema
from dcm_spark.errors import DcmSparkError
from tests.helpers import ingest, pydicom_path

FILES = ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm")


def _read(name: str) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(pydicom_path(name), stop_before_pixels=True)


@pytest.fixture(scope="module")
def state(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppState]:
    root = tmp_path_factory.mktemp("app-state")
    (root / "in").mkdir()
    for name in FILES:
        shutil.copy(pydicom_path(name), root / "in" / name)
    ingest(spark, [root / "in"], root / "table", where="driver")
    opened = AppState.open(spark.newSession(), str(root / "table"))
    yield opened
    shutil.rmtree(opened.scratch, ignore_errors=True)


def test_query_answers_with_downloads(state: AppState) -> None:
    result = state.query("SELECT Modality, PatientName FROM dicom ORDER BY Modality")
    ct = _read("CT_small.dcm")
    assert result.columns == ["Modality", "PatientName"]
    assert sorted(r[0] for r in result.rows) == sorted(_read(n).Modality for n in FILES)
    first = result.rows[0]
    assert first[0] == "CT" and f'"FamilyName": "{ct.PatientName.family_name}"' in first[1]
    with result.csv_path.open() as f:
        assert list(csv.reader(f))[1:] == result.rows
    assert pq.read_table(result.parquet_path).column("Modality").to_pylist()[0] == "CT"
    assert result.csv_path.is_relative_to(state.scratch)


def test_row_limit(state: AppState) -> None:
    state.row_limit = 2
    try:
        result = state.query("SELECT _path FROM dicom")
    finally:
        state.row_limit = 10_000
    assert len(result.rows) == 2 and result.truncated
    assert result.note == "2 rows (first 2: the row limit)"


def test_bigquery_dialect(state: AppState) -> None:
    result = state.query(
        "SELECT Modality, COUNT(*) AS n FROM `bigquery-public-data.idc_current.dicom_all` "
        "WHERE Modality = 'MR' GROUP BY Modality",
        "bigquery",
    )
    assert result.rows == [["MR", "1"]]


def test_refusals_reach_the_page(state: AppState) -> None:
    with pytest.raises(QueryRefused, match="^refused: qualified or file-path tables"):
        state.query("SELECT * FROM parquet.`/etc`")
    with pytest.raises(QueryRefused, match="^refused: only read-only queries"):
        state.query("DROP TABLE dicom")


def test_spark_errors_are_one_line(state: AppState) -> None:
    with pytest.raises(DcmSparkError) as failed:
        state.query("SELECT NoSuchColumn FROM dicom")
    assert "\n" not in str(failed.value) and "NoSuchColumn" in str(failed.value)


def test_a_long_query_is_cancelled(state: AppState) -> None:
    state.query_seconds = 3
    started = time.monotonic()
    try:
        with pytest.raises(DcmSparkError, match="^cancelled: the query ran over 3 s$"):
            state.query(
                "SELECT count(*) FROM dicom LATERAL VIEW explode(sequence(1, 50000)) a "
                "LATERAL VIEW explode(sequence(1, 50000)) b"
            )
    finally:
        state.query_seconds = 120
    assert time.monotonic() - started < 40
    assert state.query("SELECT count(*) FROM dicom").rows == [["3"]]  # the session still works


def test_fill_rates_series_and_header(state: AppState) -> None:
    counts = state.fill_counts()
    assert counts[""] == 3 and counts["_path"] == 3
    assert counts["SliceThickness"] == sum("SliceThickness" in _read(n) for n in FILES)
    state.__dict__["_fill_counts"] = lambda: pytest.fail("counted again in the same version")
    try:
        assert state.fill_counts() == counts
    finally:
        del state.__dict__["_fill_counts"]
    ct = _read("CT_small.dcm")
    assert "CT" in state.modalities()
    found = state.series("CT", "", "", "")
    assert [r[0] for r in found.rows] == [ct.SeriesInstanceUID]
    assert state.series("MR", "", "", str(ct.SeriesInstanceUID)).rows == []
    instances = state.instances(str(ct.SeriesInstanceUID))
    path = instances.rows[0][instances.columns.index("_path")]
    header = state.header(path)
    assert header["SOPInstanceUID"] == ct.SOPInstanceUID
    assert header["PatientName"]["Alphabetic"]["GivenName"] == ct.PatientName.given_name
    with pytest.raises(DcmSparkError, match="YYYY-MM-DD"):
        state.series("", "2001-13-45", "", "")


def test_schema_html_folds_filters_and_marks_promotions(state: AppState) -> None:
    fields = bigquery_schema(state.schema())
    html = schema_html(fields, {"": 4, "Modality": 2}, {"Modality": ["Modality: a -> b"]})
    assert '<details data-field="BeamSequence">' in html  # folded until clicked
    assert "50%" in html and "(promoted)" in html and "Modality: a -&gt; b" in html
    found = schema_html(fields, {"": 4}, {}, needle="ReferencedPatientSetupNumber")
    assert '<details data-field="BeamSequence" open>' in found
    assert 'data-field="Modality"' not in found


def test_an_ingest_from_elsewhere_shows_on_the_next_page_load(
    spark: Any, state: AppState, tmp_path: Path
) -> None:
    (tmp_path / "more").mkdir()
    shutil.copy(pydicom_path("SC_rgb.dcm"), tmp_path / "more" / "SC_rgb.dcm")
    before = state.row_count()
    ingest(spark, [tmp_path / "more"], Path(state.table), where="driver")
    state.refresh_if_changed()
    assert state.row_count() == before + 1
    assert state.fill_counts()[""] == before + 1  # a new version: counted again
