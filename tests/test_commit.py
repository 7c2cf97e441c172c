"""The commit of a run's data files (dcm_spark.delta.commit): through delta-rs or Delta's
JVM, with statistics; a table with constraints gets its rows through Spark."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.helpers import (
    commit,
    committed,
    ingest,
    rows,
    sop_uid,
    study_date,
)


def test_committed_files_carry_statistics_of_their_rows(spark, tree, tmp_path) -> None:
    import json

    import pyarrow.parquet as pq

    table = tmp_path / "dicom"
    ingest(spark, [tree], table)
    adds = committed(table)
    assert sum(json.loads(a["stats"])["numRecords"] for a in adds) == 5
    for add in adds:
        stats = json.loads(add["stats"])
        paths = pq.read_table(table / add["path"], columns=["_path"]).column(0).to_pylist()
        assert stats["numRecords"] == len(paths)
        uids = [sop_uid(Path(p.removeprefix("file:"))) for p in paths]
        assert stats["minValues"]["SOPInstanceUID"] == min(uids)
        assert stats["maxValues"]["SOPInstanceUID"] == max(uids)
        assert (stats["minValues"]["_path"], stats["maxValues"]["_path"]) == (
            min(paths),
            max(paths),
        )
        assert stats["nullCount"]["SOPInstanceUID"] == 0
        dates = [study_date(Path(p.removeprefix("file:"))) for p in paths]
        known = sorted(d for d in dates if d)
        assert stats["nullCount"]["StudyDate"] == dates.count(None)
        if known:  # DA as ISO text (Delta's date statistics)
            assert (
                stats["minValues"]["StudyDate"] == f"{known[0][:4]}-{known[0][4:6]}-{known[0][6:]}"
            )
            assert (
                stats["maxValues"]["StudyDate"]
                == f"{known[-1][:4]}-{known[-1][4:6]}-{known[-1][6:]}"
            )
        assert add["size"] == (table / add["path"]).stat().st_size


def test_delta_rs_commits_what_only_adds_files_and_the_jvm_what_adds_columns(
    spark, tmp_path
) -> None:
    """A local table is created, and appended to with its schema unchanged, by delta-rs;
    a run that adds columns commits through Delta's JVM API. Spark reads every row."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(get_testdata_file(name), inputs / name)
    table = tmp_path / "dicom"
    ingest(spark, [inputs], table)
    created = commit(table, 0)
    assert created["commitInfo"][0]["engineInfo"].startswith("delta-rs")
    assert created["metaData"][0]["configuration"]["delta.checkpointInterval"] == "20"
    assert (
        "`SOPInstanceUID`"
        in created["metaData"][0]["configuration"]["delta.dataSkippingStatsColumns"]
    )

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # same elements, new instance
    ds.SOPInstanceUID = "1.2.826.0.1.3680043.8.498.1"
    ds.save_as(inputs / "CT_copy.dcm")
    ingest(spark, [inputs], table)
    appended = commit(table, 1)
    assert appended["commitInfo"][0]["engineInfo"].startswith("delta-rs")
    assert "metaData" not in appended and len(appended["add"]) == 1

    shutil.copy(get_testdata_file("rtplan.dcm"), inputs / "rtplan.dcm")
    third = ingest(spark, [inputs], table)
    assert "RTPlanLabel" in third.columns_added
    grown = commit(table, 2)
    assert "delta-rs" not in grown["commitInfo"][0].get("engineInfo", "")
    assert "RTPlanLabel" in grown["metaData"][0]["schemaString"]

    found = {
        Path(r["_path"]).name: r for r in rows(spark, table, "_path, SOPInstanceUID, RTPlanLabel")
    }
    on_disk = {p.name: p for p in inputs.iterdir()}
    assert {n: r["SOPInstanceUID"] for n, r in found.items()} == {
        n: sop_uid(p) for n, p in on_disk.items()
    }
    plan = pydicom.dcmread(on_disk["rtplan.dcm"], stop_before_pixels=True)
    assert found["rtplan.dcm"]["RTPlanLabel"] == plan.RTPlanLabel
    assert found["CT_small.dcm"]["RTPlanLabel"] is None


def test_the_jvm_route_creates_a_table_as_delta_rs_does(spark, tree, tmp_path) -> None:
    """What a table on HDFS or S3 gets: the same data files committed through Delta's JVM
    API make a table Spark reads with the same rows, schema and properties."""
    import pyarrow.parquet as pq

    from dcm_spark import schema
    from dcm_spark.delta.commit import _commit_jvm
    from dcm_spark.records import DataFile

    local = tmp_path / "local"
    ingest(spark, [tree], local)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    files = []
    for add in committed(local):
        shutil.copy(local / add["path"], elsewhere / add["path"])
        written = pq.read_schema(local / add["path"])
        n_rows = json.loads(add["stats"])["numRecords"]
        files.append(
            DataFile(
                add["path"],
                n_rows,
                add["size"],
                add["modificationTime"],
                add["stats"],
                written.serialize().to_pybytes(),
            )
        )
    merged = schema.merge_schemas(*(f.schema for f in files))
    assert _commit_jvm(spark, str(elsewhere), merged, files) == 0

    created = commit(elsewhere, 0)
    assert "delta-rs" not in created["commitInfo"][0].get("engineInfo", "")
    assert (
        created["metaData"][0]["configuration"] == commit(local, 0)["metaData"][0]["configuration"]
    )
    read = {t: spark.read.format("delta").load(str(t)) for t in (local, elsewhere)}
    assert read[elsewhere].schema == read[local].schema
    key = "_path, SOPInstanceUID, StudyDate"
    assert sorted(map(tuple, read[elsewhere].selectExpr(*key.split(", ")).collect())) == sorted(
        map(tuple, read[local].selectExpr(*key.split(", ")).collect())
    )
    assert sorted(r["SOPInstanceUID"] for r in rows(spark, elsewhere, "SOPInstanceUID")) == sorted(
        sop_uid(p) for p in tree.rglob("*.dcm") if p.stat().st_size and p.name != "DICOMDIR"
    )


def test_a_table_with_a_constraint_gets_rows_through_spark_which_enforces_it(
    spark, tree, tmp_path
) -> None:
    table = tmp_path / "dicom"
    first = tmp_path / "first"
    first.mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), first / "ct.dcm")
    ingest(spark, [first], table)
    spark.sql(f"ALTER TABLE delta.`{table}` ADD CONSTRAINT no_mr CHECK (Modality <> 'MR')")
    before = rows(spark, table, "_path")

    with pytest.raises(Exception, match="no_mr"):  # MR_small.dcm in the tree violates it
        ingest(spark, [tree], table)
    assert rows(spark, table, "_path") == before
    # the run left none of its own data files (part-<run id>-...; Spark's failed write may
    # leave its own, unreferenced, for VACUUM, as any failed Delta write does)
    ours = {p.name for p in table.glob("part-*.parquet") if re.match(r"part-[0-9a-f]{16}-", p.name)}
    assert ours == {a["path"] for a in committed(table)}

    spark.sql(f"ALTER TABLE delta.`{table}` DROP CONSTRAINT no_mr")
    spark.sql(f"ALTER TABLE delta.`{table}` ADD CONSTRAINT sized CHECK (_size > 0)")
    summary = ingest(spark, [tree], table)
    assert len(rows(spark, table, "_path")) == 1 + summary.parsed
    properties = spark.sql(f"SHOW TBLPROPERTIES delta.`{table}`").collect()
    assert "delta.constraints.sized" in {r["key"] for r in properties}
