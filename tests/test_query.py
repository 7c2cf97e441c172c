"""The query side on the fixture corpus: the README's cookbook, typed view, series, interop.

Every expected value comes from the DICOM files read with pydicom in the test.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

import pydicom
from pydicom.dataset import Dataset

from dcm_spark.catalog import bigquery_schema, render, schema_tree

README = Path(__file__).resolve().parent.parent / "README.md"


def cookbook() -> dict[str, str]:
    """The README's cookbook queries, by the name in their first comment line."""
    blocks = re.findall(r"```sql\n-- (\S+)[^\n]*\n(.*?)```", README.read_text(), re.S)
    return {name: sql.strip() for name, sql in blocks}


def query(spark: Any, name: str) -> list[dict[str, Any]]:
    return [r.asDict(recursive=True) for r in spark.sql(cookbook()[name]).collect()]


def test_cookbook_lists_the_questions() -> None:
    assert set(cookbook()) == {
        "count-by-modality",
        "filter-scalars-and-dates",
        "explode-a-sequence",
        "walk-an-sr-content-tree",
        "private-element",
        "series-join-instances",
        "typed-numbers",
    }


def test_count_by_modality(spark, corpus_table) -> None:
    expected = Counter(ds.get("Modality") for ds in corpus_table.values())
    got = {r["Modality"]: r["instances"] for r in query(spark, "count-by-modality")}
    assert got == dict(expected)


def test_filter_scalars_and_dates(spark, corpus_table) -> None:
    expected = sorted(
        (path, str(ds.StudyDate))
        for path, ds in corpus_table.items()
        if ds.get("Modality") == "CT"
        and re.fullmatch(r"\d{8}", str(ds.get("StudyDate", "")))
        and str(ds.StudyDate) >= "20000101"
    )
    got = sorted(
        (r["_path"], r["StudyDate"].strftime("%Y%m%d"))
        for r in query(spark, "filter-scalars-and-dates")
    )
    assert got == expected and expected


def test_explode_a_sequence(spark, corpus_table) -> None:
    expected = sorted(
        (path, int(item.SegmentNumber), str(item.SegmentLabel))
        for path, ds in corpus_table.items()
        for item in ds.get("SegmentSequence", [])
    )
    got = sorted(
        (r["_path"], r["SegmentNumber"], r["SegmentLabel"])
        for r in query(spark, "explode-a-sequence")
    )
    assert got == expected and expected


def _meaning(item: Dataset) -> str | None:
    codes = item.get("ConceptNameCodeSequence")
    return str(codes[0].CodeMeaning) if codes else None


def test_walk_an_sr_content_tree(spark, corpus_table) -> None:
    expected = list(
        (path, _meaning(parent), _meaning(child), child.get("ValueType"))
        for path, ds in corpus_table.items()
        if ds.get("Modality") == "SR"
        for parent in ds.get("ContentSequence", [])
        for child in parent.get("ContentSequence", [])
    )
    rows = query(spark, "walk-an-sr-content-tree")
    got = sorted(((r["_path"], r["parent"], r["child"], r["ValueType"]) for r in rows), key=repr)
    expected = sorted(expected, key=repr)
    assert got == expected and expected


def test_private_element(spark, corpus_table) -> None:
    tag = 0x00091001
    expected = sorted(
        (path, [str(v).strip() for v in _values(ds[tag].value)])
        for path, ds in corpus_table.items()
        if tag in ds
    )
    got = sorted((r["_path"], r["value"]) for r in query(spark, "private-element"))
    assert got == expected and expected


def _values(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | pydicom.multival.MultiValue) else [value]


def test_series_join_instances(spark, corpus_table) -> None:
    counts = Counter(
        str(ds.SeriesInstanceUID) for ds in corpus_table.values() if "SeriesInstanceUID" in ds
    )
    got = {
        r["SeriesInstanceUID"]: (r["instances"], r["joined"])
        for r in query(spark, "series-join-instances")
    }
    assert got == {uid: (n, n) for uid, n in counts.items()}


def test_typed_numbers(spark, corpus_table) -> None:
    expected = sorted(
        (path, float(ds.SliceThickness))
        for path, ds in corpus_table.items()
        if ds.get("SliceThickness") not in (None, "") and float(ds.SliceThickness) > 2.5
    )
    got = sorted((r["_path"], r["SliceThickness"]) for r in query(spark, "typed-numbers"))
    assert got == expected and expected


def test_series_view_keeps_values_shared_by_all_instances(spark, corpus_table) -> None:
    by_series: dict[str, list[Dataset]] = {}
    for ds in corpus_table.values():
        if "SeriesInstanceUID" in ds:
            by_series.setdefault(str(ds.SeriesInstanceUID), []).append(ds)
    rows = {r["SeriesInstanceUID"]: r for r in spark.sql("SELECT * FROM dicom_series").collect()}
    for uid, members in by_series.items():
        modalities = {ds.get("Modality") for ds in members}
        expected = modalities.pop() if len(modalities) == 1 else None
        assert rows[uid]["Modality"] == expected, uid
        assert rows[uid]["instances"] == len(members)


def test_typed_view_converts_nested_ds(spark, corpus_table) -> None:
    expected = sorted(
        (path, [float(v) for v in item.PixelSpacing])
        for path, ds in corpus_table.items()
        for group in ds.get("SharedFunctionalGroupsSequence", [])
        for item in group.get("PixelMeasuresSequence", [])
        if "PixelSpacing" in item
    )
    rows = spark.sql(
        "SELECT _path, m.PixelSpacing FROM dicom_typed "
        "LATERAL VIEW explode(SharedFunctionalGroupsSequence) AS g "
        "LATERAL VIEW explode(g.PixelMeasuresSequence) AS m"
    ).collect()
    assert sorted((r[0], r[1]) for r in rows) == expected and expected


def test_schema_browser_and_render(spark, corpus_table) -> None:
    schema = spark.table("dicom").schema
    tree = schema_tree(schema, "PatientName")
    assert tree.splitlines()[0].split()[:3] == ["PatientName", "RECORD", "NULLABLE"]
    assert "(0010,0010) Patient's Name" in tree
    (image_type,) = bigquery_schema(schema, "ImageType")
    assert (image_type["type"], image_type["mode"]) == ("STRING", "REPEATED")
    assert image_type["description"] == "(0008,0008) Image Type"
    df = spark.sql("SELECT Modality, count(*) AS n FROM dicom WHERE Modality = 'CT' GROUP BY 1")
    assert render(df, "csv").splitlines()[0] == "Modality,n"
    assert render(df, "json").startswith('{"Modality":"CT","n":')


def test_table_reads_the_same_outside_spark(spark, corpus_table) -> None:
    """delta-rs reads the table into Arrow; DuckDB and Polars query it."""
    import duckdb
    import polars as pl
    from deltalake import DeltaTable

    location = spark.sql("SELECT _path FROM dicom LIMIT 1")  # the view is registered
    assert location.count() == 1
    path = next(iter(corpus_table)).removeprefix("file:").split("/in/")[0] + "/table"
    arrow = DeltaTable(path).to_pyarrow_table(
        columns=["_path", "SOPInstanceUID", "Modality", "StudyDate"]
    )
    spark_rows = sorted(
        tuple(r)
        for r in spark.sql("SELECT _path, SOPInstanceUID, Modality, StudyDate FROM dicom").collect()
    )
    assert sorted(zip(*[arrow.column(i).to_pylist() for i in range(4)], strict=True)) == spark_rows
    duck = duckdb.sql("SELECT Modality, count(*) FROM arrow GROUP BY 1").fetchall()
    assert dict(duck) == {r["Modality"]: r["instances"] for r in query(spark, "count-by-modality")}
    frame = pl.from_arrow(arrow)
    assert frame.height == len(corpus_table)
