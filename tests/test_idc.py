"""IDC on your own data: the `dicom_all` layout and view, BigQuery SQL through the query job,
and idc-index tables from the fixture corpus.

Expected values come from IDC's schema file, pydicom's dictionary, the standard's module
tables and the DICOM files read with pydicom.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest
from pydicom.datadict import DicomDictionary
from pydicom.dataset import Dataset

from dcm_spark.catalog import IDC_VIEWS
from dcm_spark.idc import index, layout

ROOT = Path(__file__).resolve().parent.parent
BINARY_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN", "OB or OW", "US or OW", "US or SS or OW"}
BINARY_VRS |= {"NONE"}  # items and delimiters (FFFE,xxxx): not data elements
# PS3.5 6.2 and the README's table: the type a value of each VR gets
VR_TYPES = {"DA": pa.date32(), "DT": pa.timestamp("us", tz="UTC"), "FL": pa.float64()}
VR_TYPES |= {"FD": pa.float64(), "UV": pa.decimal128(20, 0)}
VR_TYPES |= dict.fromkeys(("AT", "SL", "SS", "UL", "US", "SV", "US or SS"), pa.int64())
BIGQUERY = {"STRING": pa.string(), "INTEGER": pa.int64(), "FLOAT": pa.float64()}
BIGQUERY |= {"DATE": pa.date32(), "TIME": pa.string(), "BOOLEAN": pa.bool_()}
BIGQUERY |= {"TIMESTAMP": pa.timestamp("us", tz="UTC"), "DATETIME": pa.timestamp("us", tz="UTC")}


def _fields(t: pa.DataType) -> dict[str, pa.DataType]:
    inner = t.value_type if pa.types.is_list(t) else t
    return {inner.field(i).name: inner.field(i).type for i in range(inner.num_fields)}


def _multiple(keyword: str) -> bool:
    from pydicom.datadict import dictionary_VM, keyword_dict

    tag = keyword_dict.get(keyword)
    return tag is not None and dictionary_VM(tag) != "1"


def _check(reference: list[dict[str, Any]], have: dict[str, pa.DataType], where: str) -> None:
    for f in reference:
        assert f["name"] in have, f"{where}{f['name']}"
        got = have[f["name"]]
        if f.get("mode") == "REPEATED":
            assert pa.types.is_list(got), f"{where}{f['name']}"
        if f["type"] == "RECORD":
            _check(f["fields"], _fields(got), f"{where}{f['name']}.")
        else:
            # a VM the dictionary changed since IDC's export: the layout follows the dictionary
            repeated = f.get("mode") == "REPEATED" or _multiple(f["name"])
            inner = got.value_type if repeated else got
            assert inner == BIGQUERY[f["type"]], f"{where}{f['name']}"


def test_the_layout_holds_every_field_of_idc_s_schema_typed_as_it_types_it() -> None:
    reference = json.loads(layout.REFERENCE.read_text())["schema"]["fields"]
    schema = layout.dicom_all()
    assert schema.names[: len(reference)] == [f["name"] for f in reference]
    _check(reference, {f.name: f.type for f in schema}, "")


def test_the_layout_has_every_dictionary_keyword_with_a_column() -> None:
    reference = {f["name"] for f in json.loads(layout.REFERENCE.read_text())["schema"]["fields"]}
    schema = layout.dicom_all()
    checked = 0
    for vr, vm, _name, _retired, keyword in DicomDictionary.values():
        if not keyword or keyword in reference or vr in BINARY_VRS or vr == "SQ":
            continue
        got = schema.field(keyword).type
        value = got.value_type if vm != "1" else got
        assert pa.types.is_list(got) == (vm != "1"), keyword
        if vr == "PN":
            assert [value.field(i).name for i in range(3)] == [
                "Alphabetic",
                "Ideographic",
                "Phonetic",
            ]
        else:
            assert value == VR_TYPES.get(vr, pa.string()), keyword
        checked += 1
    assert checked > 3000


def test_sequences_hold_what_the_standard_s_modules_put_in_them() -> None:
    # PS3.3 C.17.2.1 Hierarchical Series Reference Macro; C.8.20.2 Segmentation Image Module
    items = _fields(layout.dicom_all().field("ReferencedSeriesSequence").type)
    assert {"SeriesInstanceUID", "ReferencedInstanceSequence"} <= set(items)
    assert "ReferencedSOPInstanceUID" in _fields(items["ReferencedInstanceSequence"])
    segment = _fields(layout.dicom_all().field("SegmentSequence").type)
    assert {"SegmentNumber", "SegmentLabel", "SegmentedPropertyTypeCodeSequence"} <= set(segment)


# -- the view on the fixture corpus ------------------------------------------------------


def test_dicom_all_has_the_layout_s_columns_and_the_table_s_values(spark, corpus_table) -> None:
    view = spark.table("dicom_all")
    assert view.columns == spark.table("dicom_metadata").columns
    assert view.count() == len(corpus_table)
    assert set(layout.dicom_all().names) <= set(view.columns)
    assert "_path" in view.columns  # the table's own columns stay
    for keyword in ("SpiralPitchFactor", "DiffusionBValue", "ContrastBolusIngredient"):
        if not any(keyword in ds for ds in corpus_table.values()):
            assert view.where(f"`{keyword}` IS NOT NULL").count() == 0
    uids = {
        r["_path"]: r["SOPInstanceUID"] for r in view.select("_path", "SOPInstanceUID").collect()
    }
    assert uids == {p: ds.get("SOPInstanceUID") for p, ds in corpus_table.items()}


def test_where_the_table_promoted_a_column_its_type_wins(spark, corpus_table) -> None:
    own = {f.name: f.dataType for f in spark.table("dicom").schema.fields}
    shown = {f.name: f.dataType for f in spark.table("dicom_all").schema.fields}
    plain = [n for n, t in own.items() if t.simpleString() in ("string", "bigint", "double")]
    assert plain and all(shown[n] == own[n] for n in plain)


def test_nested_fields_absent_from_the_data_are_there_and_null(spark, corpus_table) -> None:
    rows = spark.sql(
        "SELECT _path, r.SeriesInstanceUID, r.ReferencedSOPSequence[0].StorageMediaFileSetUID"
        " AS media FROM dicom_all LATERAL VIEW explode(ReferencedSeriesSequence) AS r"
    ).collect()
    expected = {
        (p, item.SeriesInstanceUID)
        for p, ds in corpus_table.items()
        for item in ds.get("ReferencedSeriesSequence", [])
    }
    assert expected and {(r["_path"], r["SeriesInstanceUID"]) for r in rows} == expected
    # ReferencedSOPSequence: PS3.3 C.17.2.1's item, in none of the corpus' files
    assert all(
        "ReferencedSOPSequence" not in i
        for _, ds in corpus_table.items()
        for i in ds.get("ReferencedSeriesSequence", [])
    )
    assert {r["media"] for r in rows} == {None}


def test_a_query_on_the_view_reads_only_its_columns(spark, corpus_table) -> None:
    plan = spark.sql("SELECT Modality FROM dicom_all")._jdf.queryExecution().executedPlan()
    assert "ReadSchema: struct<Modality:string>" in plan.toString()


def _items(seq: Any) -> list[Any]:
    """A Scala sequence's items, through py4j."""
    items, it = [], seq.iterator()
    while it.hasNext():
        items.append(it.next())
    return items


def _view_columns(df: Any) -> list[list[str]]:
    """The columns of each IDC view in ``df``'s analysed plan."""
    found = []
    nodes = [df._jdf.queryExecution().analyzed()]
    while nodes:
        node = nodes.pop()
        if node.nodeName() == "View" and node.desc().identifier().table() in IDC_VIEWS:
            found.append([a.name() for a in _items(node.output())])
        nodes += _items(node.children())
    return found


def test_the_view_is_pruned_to_a_query_s_columns_while_spark_analyses_it(
    spark, corpus_table
) -> None:
    # jvm/dcm_spark/IdcViewPruning.java: the rules after it see a narrow plan
    whole = spark.table("dicom_all").columns
    by_modality = spark.sql("SELECT Modality, count(*) AS n FROM dicom_all GROUP BY Modality")
    assert _view_columns(by_modality) == [["Modality"]]
    expected = Counter(ds.get("Modality") for ds in corpus_table.values())
    assert {r["Modality"]: r["n"] for r in by_modality.collect()} == expected
    # a correlated subquery on the other name: each side keeps what it reads
    studies_with_ct = {
        ds.StudyInstanceUID for ds in corpus_table.values() if ds.get("Modality") == "CT"
    }
    in_them = spark.sql(
        "SELECT count(*) AS n FROM dicom_all a WHERE EXISTS (SELECT 1 FROM dicom_metadata b"
        " WHERE b.StudyInstanceUID = a.StudyInstanceUID AND b.Modality = 'CT')"
    )
    n = sum(ds.get("StudyInstanceUID") in studies_with_ct for ds in corpus_table.values())
    assert studies_with_ct and in_them.collect()[0]["n"] == n
    # what reads every column keeps every column
    for every in ("SELECT * FROM dicom_all", "TABLE dicom_all UNION ALL TABLE dicom_metadata"):
        df = spark.sql(every)
        assert df.columns == whole and all(c == whole for c in _view_columns(df))
    assert spark.sql("TABLE dicom_all UNION ALL TABLE dicom_all").count() == 2 * len(corpus_table)
    assert spark.table("dicom_all").columns == whole


# -- idc-index tables ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def indexes(spark, corpus_table, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("idc-index")
    made = {}
    for name in index.local_indexes():
        try:
            made[name] = index.write_index(spark, name, out)
        except Exception:  # the test below names the ones that must be made
            continue
    return made


def test_every_index_that_reads_dicom_all_is_written_as_the_package_types_it(indexes) -> None:
    from idc_index_data import INDEX_METADATA

    expected = {"idc_index", "ct_index", "mr_index", "pt_index", "seg_index", "rtstruct_index"}
    expected |= {"contrast_index", "volume_geometry_index", "ann_index", "ann_group_index"}
    expected |= {"sm_index", "sm_instance_index"}
    assert set(index.local_indexes()) == expected == set(indexes)
    for name, path in indexes.items():
        columns = [c["name"] for c in INDEX_METADATA[name]["schema"]["columns"]]
        described = duckdb.sql(f"DESCRIBE SELECT * FROM '{path}'").fetchall()
        assert [row[0] for row in described] == columns, name


def _series(corpus_table: dict[str, Dataset], sop_class: str) -> dict[str, list[Dataset]]:
    found: dict[str, list[Dataset]] = defaultdict(list)
    for ds in corpus_table.values():
        if ds.get("SOPClassUID") == sop_class and "SeriesInstanceUID" in ds:
            found[ds.SeriesInstanceUID].append(ds)
    return found


def test_idc_index_counts_instances_per_series(indexes, corpus_table) -> None:
    got = dict(
        duckdb.sql(
            f"SELECT SeriesInstanceUID, instanceCount FROM '{indexes['idc_index']}'"
        ).fetchall()
    )
    expected = Counter(
        ds.SeriesInstanceUID for ds in corpus_table.values() if "SeriesInstanceUID" in ds
    )
    assert got == dict(expected)
    names = dict(
        duckdb.sql(f"SELECT SOPClassUID, sop_class_name FROM '{indexes['idc_index']}'").fetchall()
    )
    assert names["1.2.840.10008.5.1.4.1.1.2"] == "CT Image Storage"


def test_ct_index_has_each_ct_series_kvp_and_slice_thickness(indexes, corpus_table) -> None:
    query = f"SELECT SeriesInstanceUID, KVP, SliceThickness FROM '{indexes['ct_index']}'"
    got = {uid: (kvp, thickness) for uid, kvp, thickness in duckdb.sql(query).fetchall()}
    ct = _series(corpus_table, "1.2.840.10008.5.1.4.1.1.2")
    assert ct and set(got) == set(ct)
    for uid, datasets in ct.items():
        kvps = {float(ds.KVP) if ds.get("KVP") not in (None, "") else None for ds in datasets}
        assert got[uid][0] in kvps
        thick = {
            float(ds.SliceThickness) if ds.get("SliceThickness") not in (None, "") else None
            for ds in datasets
        }
        assert got[uid][1] in thick


def test_seg_index_counts_segments_and_names_their_properties(indexes, corpus_table) -> None:
    query = (
        "SELECT SeriesInstanceUID, total_segments, SegmentedPropertyType_CodeMeanings"
        f" FROM '{indexes['seg_index']}'"
    )
    got = {uid: (n, sorted(m or [])) for uid, n, m in duckdb.sql(query).fetchall()}
    seg = _series(corpus_table, "1.2.840.10008.5.1.4.1.1.66.4")
    assert seg and set(got) == set(seg)
    for uid, datasets in seg.items():
        segments = [s for ds in datasets for s in ds.SegmentSequence]
        meanings = {s.SegmentedPropertyTypeCodeSequence[0].CodeMeaning for s in segments}
        assert got[uid] == (len({s.SegmentNumber for s in segments}), sorted(meanings))


def test_rtstruct_index_counts_rois(indexes, corpus_table) -> None:
    query = f"SELECT SeriesInstanceUID, total_rois FROM '{indexes['rtstruct_index']}'"
    got = dict(duckdb.sql(query).fetchall())
    rt = _series(corpus_table, "1.2.840.10008.5.1.4.1.1.481.3")
    assert rt and set(got) == set(rt)
    for uid, datasets in rt.items():
        assert got[uid] == len({r.ROINumber for ds in datasets for r in ds.StructureSetROISequence})


# SNOMED CT concept names of a specimen preparation step's items (PS3.16 TID 8001)
USING_SUBSTANCE, FIXATIVE, EMBEDDING = (
    ("SCT", "424361007"),
    ("SCT", "430864009"),
    ("SCT", "430863003"),
)


def _preparation(ds: Dataset, concept: tuple[str, str]) -> list[str]:
    """CodeMeaning of each item of the specimen's preparation steps named `concept`."""
    return sorted(
        item.ConceptCodeSequence[0].CodeMeaning
        for step in ds.SpecimenDescriptionSequence[0].SpecimenPreparationSequence
        for item in step.SpecimenPreparationStepContentItemSequence
        if (
            item.ConceptNameCodeSequence[0].CodingSchemeDesignator,
            item.ConceptNameCodeSequence[0].CodeValue,
        )
        == concept
        and "ConceptCodeSequence" in item
    )


def test_sm_indexes_describe_the_slide_s_specimen_and_optics(indexes, corpus_table) -> None:
    (slide,) = [ds for ds in corpus_table.values() if ds.get("Modality") == "SM"]
    instance = duckdb.sql(
        "SELECT SOPInstanceUID, staining_usingSubstance_CodeMeaning, tissueFixative_CodeMeaning,"
        " embeddingMedium_CodeMeaning, PixelSpacing_0, TotalPixelMatrixColumns"
        f" FROM '{indexes['sm_instance_index']}'"
    ).fetchall()
    spacing = slide.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing[0]
    assert instance == [
        (
            slide.SOPInstanceUID,
            _preparation(slide, USING_SUBSTANCE),
            _preparation(slide, FIXATIVE),
            _preparation(slide, EMBEDDING),
            pytest.approx(float(spacing)),
            slide.TotalPixelMatrixColumns,
        )
    ]
    series = duckdb.sql(
        "SELECT SeriesInstanceUID, ObjectiveLensPower, primaryAnatomicStructure_CodeMeaning,"
        f" illuminationType_CodeMeaning FROM '{indexes['sm_index']}'"
    ).fetchall()
    path = slide.OpticalPathSequence[0]
    site = slide.SpecimenDescriptionSequence[0].PrimaryAnatomicStructureSequence[0]
    assert series == [
        (
            slide.SeriesInstanceUID,
            int(str(path.ObjectiveLensPower)),  # SAFE_CAST(DS AS INT): integer strings only
            site.CodeMeaning,
            path.IlluminationTypeCodeSequence[0].CodeMeaning,
        )
    ]


# -- BigQuery SQL through the query job ----------------------------------------------------


def _query_job(*args: str) -> subprocess.CompletedProcess[str]:
    """The query job in this interpreter: what it refuses, it refuses before Spark starts."""
    return subprocess.run(
        [sys.executable, "jobs/query.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.parametrize(
    ("sql", "says"),
    [
        ("DELETE FROM dicom_all WHERE TRUE", "DELETE"),
        ("CREATE TABLE x AS SELECT 1", "CREATE"),
        (
            "SELECT * FROM `bigquery-public-data.idc_current.auxiliary_metadata`",
            "auxiliary_metadata",
        ),
    ],
)
def test_a_bigquery_query_that_cannot_run_is_refused_in_one_line(sql, says, tmp_path) -> None:
    out = _query_job("--table", str(tmp_path / "none"), "--dialect", "bigquery", sql)
    assert out.returncode == 2 and out.stdout == ""
    assert says in out.stderr and len(out.stderr.strip().splitlines()) == 1


def test_a_query_file_that_is_not_utf8_is_refused(tmp_path) -> None:
    bad = tmp_path / "q.sql"
    bad.write_bytes("SELECT 'caf\u00e9'".encode("latin-1"))
    out = _query_job("--table", str(tmp_path), "--sql-file", str(bad))
    assert out.returncode == 2 and "not UTF-8" in out.stderr


@pytest.mark.slow
def test_an_idc_query_file_runs_on_the_table(spark, corpus_table, tmp_path) -> None:
    table = next(iter(corpus_table)).removeprefix("file:")
    location = str(Path(table).parent.parent.parent / "table")
    sql = tmp_path / "q.sql"
    sql.write_text(
        "# IDC users' habits: a script variable, a qualified name, backticks\n"
        "DECLARE wanted STRING DEFAULT 'CT';\n"
        "SELECT COUNT(DISTINCT SeriesInstanceUID) AS n\n"
        "FROM `bigquery-public-data.idc_current.dicom_all` WHERE Modality = wanted\n"
    )
    bin_dir = str(Path(sys.executable).parent)
    out = subprocess.run(
        [
            "spark-submit",
            "--properties-file",
            "conf/spark-defaults.conf",
            "--master",
            "local[2]",
            "jobs/query.py",
            "--table",
            location,
            "--dialect",
            "bigquery",
            "--format",
            "csv",
            "--sql-file",
            str(sql),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=os.environ
        | {"PYSPARK_PYTHON": sys.executable, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    series = {ds.SeriesInstanceUID for ds in corpus_table.values() if ds.get("Modality") == "CT"}
    assert out.stdout.strip().splitlines() == ["n", str(len(series))]
