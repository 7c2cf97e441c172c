"""The ingest job against a real local[2] session and real Delta tables."""

from __future__ import annotations

import datetime
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet
import pydicom
import pytest
from pydicom.data import get_testdata_file

from dcm_spark.delta.lock import TableLocked
from dcm_spark.dicom.header import HeaderOptions
from dcm_spark.ingest import DRIVER_PARSE_LIMIT, IngestOptions, Summary, run
from dcm_spark.session import LOCAL_CONF

ROOT = Path(__file__).resolve().parent.parent
DICOM_FILES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "SC_rgb.dcm"]


#: Where a run parses its files: the tests' runs are small, below `DRIVER_PARSE_LIMIT`,
#: so each names the path it takes; most take the Spark job's, which every larger run takes.
PARSED_IN = {"spark": 0, "driver": DRIVER_PARSE_LIMIT}
VOLATILE = ("_run_id", "_ingested_at")


def ingest(spark: Any, inputs: list[Path], table: Path, where: str = "spark", **kw: Any) -> Summary:
    lines: list[str] = []
    options = IngestOptions(
        tuple(map(str, inputs)), str(table), driver_parse_limit=PARSED_IN[where], **kw
    )
    summary = run(spark, options, report=lines.append)
    assert lines and lines[-1] == summary.text()
    assert summary.parsed_in == (where if summary.parsed + summary.failed else "")
    for side in (table, Path(f"{table}_errors")):
        if (side / "_delta_log").is_dir():
            version, keys = held(spark, side)
            if (side / "_dcm_spark" / f"known-{version}.parquet").exists():
                assert kept_keys(side) == (version, keys)  # what the next run will trust
    return summary


@pytest.fixture(params=list(PARSED_IN))
def where(request: pytest.FixtureRequest) -> str:
    """Both paths: the files parsed by the Spark job's tasks, or in the driver."""
    return str(request.param)


def rows(spark: Any, table: Path, columns: str = "*") -> list[dict[str, Any]]:
    result = spark.sql(f"SELECT {columns} FROM delta.`{table}`").collect()
    return [r.asDict(recursive=True) for r in result]


def sop_uid(path: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return str(pydicom.dcmread(path, stop_before_pixels=True, force=True).SOPInstanceUID)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """DICOM files in nested folders, a DICOMDIR, a text file and an empty file."""
    root = tmp_path / "in"
    for i, name in enumerate(DICOM_FILES):
        folder = root / f"series{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(get_testdata_file(name), folder / name)
    shutil.copy(get_testdata_file("DICOMDIR"), root / "DICOMDIR")
    (root / "notes.txt").write_text("not DICOM")
    (root / "empty.dcm").write_bytes(b"")
    return root


def digest(root: Path) -> dict[str, tuple[str, float]]:
    import hashlib

    return {
        str(p): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_first_run_puts_every_file_in_one_of_the_two_tables(spark, tree, tmp_path, where) -> None:
    table = tmp_path / "dicom"
    before = digest(tree)
    summary = ingest(spark, [tree], table, where)
    assert digest(tree) == before  # an ingest never modifies or deletes its inputs
    listed = sorted(p for p in tree.rglob("*") if p.is_file())
    assert summary.listed == len(listed) == 8
    assert (summary.parsed, summary.failed) == (5, 3)
    instances = rows(spark, table, "_path, SOPInstanceUID, _size, _run_id")
    errors = rows(spark, Path(f"{table}_errors"), "_path, error_class, message")
    seen = sorted(Path(r["_path"].removeprefix("file:")) for r in instances + errors)
    assert seen == listed
    by_name = {Path(r["_path"]).name: r for r in instances}
    for name in DICOM_FILES:
        path = next(tree.rglob(name))
        assert by_name[name]["SOPInstanceUID"] == sop_uid(path)
        assert by_name[name]["_size"] == path.stat().st_size
        assert by_name[name]["_run_id"] == summary.run_id
    classes = {Path(r["_path"]).name: r["error_class"] for r in errors}
    assert classes["DICOMDIR"] == "DICOMDIR"
    assert set(classes) == {"DICOMDIR", "notes.txt", "empty.dcm"}


def spark_jobs(spark: Any) -> set[int]:
    """The Spark jobs this session keeps a record of (none of the tests sets a group)."""
    return set(spark.sparkContext.statusTracker().getJobIdsForGroup())


def without(df: Any, *volatile: str) -> list[tuple[Any, ...]]:
    return sorted(map(tuple, df.select(*[c for c in df.columns if c not in volatile]).collect()))


def test_few_local_files_are_parsed_in_the_driver_without_a_spark_job(spark, tmp_path) -> None:
    source = tmp_path / "in"
    source.mkdir()
    for name in DICOM_FILES[:3]:
        shutil.copy(get_testdata_file(name), source / name)
    jobs = {}
    for where, limit in PARSED_IN.items():
        options = IngestOptions((str(source),), str(tmp_path / where), driver_parse_limit=limit)
        before = spark_jobs(spark)
        summary = run(spark, options, report=lambda _: None)
        jobs[where] = spark_jobs(spark) - before
        assert (summary.parsed, summary.failed, summary.parsed_in) == (3, 0, where)
    assert jobs["driver"] == set()
    assert jobs["spark"]  # the record sees the job the other path runs
    # a second run, with a new instance and a file that is not DICOM, on each path
    for name in DICOM_FILES[3:]:
        shutil.copy(get_testdata_file(name), source / name)
    (source / "notes.txt").write_text("not DICOM")
    for where in PARSED_IN:
        summary = ingest(spark, [source], tmp_path / where, where)
        assert (summary.parsed, summary.failed) == (len(DICOM_FILES) - 3, 1)
    load = spark.read.format("delta").load
    instances = [load(str(tmp_path / where)) for where in PARSED_IN]
    assert instances[0].schema == instances[1].schema
    assert without(instances[0], *VOLATILE) == without(instances[1], *VOLATILE)
    uids = {r["SOPInstanceUID"] for r in instances[1].select("SOPInstanceUID").collect()}
    assert uids == {sop_uid(source / name) for name in DICOM_FILES}
    errors = [without(load(f"{tmp_path / where}_errors"), *VOLATILE) for where in PARSED_IN]
    assert errors[0] == errors[1]
    (error,) = errors[1]
    assert error[:3] == (
        f"file:{source / 'notes.txt'}",
        (source / "notes.txt").stat().st_size,
        datetime.datetime.fromtimestamp(
            (source / "notes.txt").stat().st_mtime_ns // 1_000_000 / 1000
        ),
    )


def test_only_a_local_master_s_main_thread_parses_local_files_in_the_driver(
    spark, tmp_path
) -> None:
    from dcm_spark.ingest import _parse_on_driver

    options = IngestOptions(("in",), str(tmp_path / "table"))
    local = pa.table({"_path": ["/data/a.dcm", "file:/data/b.dcm"]})
    assert _parse_on_driver(spark, local, options)
    assert not _parse_on_driver(spark, local, replace(options, driver_parse_limit=1))
    remote = pa.table({"_path": ["/data/a.dcm", "s3a://bucket/b.dcm"]})
    assert not _parse_on_driver(spark, remote, options)
    assert not _parse_on_driver(spark, local, replace(options, table="s3a://bucket/table"))
    # off the main thread: parsing would share the process's warning and logging filters
    found: list[bool] = []
    other = threading.Thread(target=lambda: found.append(_parse_on_driver(spark, local, options)))
    other.start()
    other.join()
    assert found == [False]
    # someone else's SIGALRM (a host program's timeout): only without a time budget
    previous = signal.signal(signal.SIGALRM, lambda *_: None)
    try:
        assert not _parse_on_driver(spark, local, options)
        no_budget = replace(options, header=HeaderOptions(time_budget=None))
        assert _parse_on_driver(spark, local, no_budget)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert _parse_on_driver(spark, local, options)


def test_the_time_budget_holds_on_both_paths(spark, tree, tmp_path, where) -> None:
    budget = HeaderOptions(time_budget=1e-6)  # past before any file is read
    summary = ingest(spark, [tree], tmp_path / "dicom", where, header=budget)
    assert (summary.parsed, summary.failed) == (0, 8)
    errors = rows(spark, tmp_path / "dicom_errors", "_path, error_class")
    assert {r["error_class"] for r in errors} == {"FileTimeout"}
    assert len(errors) == 8


def test_rerun_is_a_no_op_and_touched_and_new_files_are_picked_up(
    spark, tree, tmp_path, where
) -> None:
    table = tmp_path / "dicom"
    first = ingest(spark, [tree], table, where)
    versions = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").count()

    again = ingest(spark, [tree], table, where)
    assert (again.new, again.changed, again.parsed, again.unchanged) == (0, 0, 0, 8)
    assert spark.sql(f"DESCRIBE HISTORY delta.`{table}`").count() == versions

    # a changed file replaces its row; a new file is appended
    ct = next(tree.rglob("CT_small.dcm"))
    ds = pydicom.dcmread(ct)
    ds.StudyDescription = "touched"
    ds.save_as(ct)
    shutil.copy(get_testdata_file("emri_small.dcm"), tree / "series0" / "emri_small.dcm")
    third = ingest(spark, [tree], table, where)
    assert (third.new, third.changed, third.parsed) == (1, 1, 2)
    table_rows = rows(spark, table, "_path, StudyDescription, _run_id")
    assert len(table_rows) == first.parsed + 1
    paths = [r["_path"] for r in table_rows]
    assert len(paths) == len(set(paths))
    touched = next(r for r in table_rows if r["_path"].endswith("CT_small.dcm"))
    assert touched["StudyDescription"] == "touched"
    assert touched["_run_id"] == third.run_id
    # replacing rows goes through Spark's writer: the run's own data files are gone
    assert not list(table.glob(f"part-{third.run_id}-*"))
    assert {a["path"] for a in committed(table)} <= {p.name for p in table.glob("*.parquet")}


def kept_keys(table: Path) -> tuple[int, list[tuple[str, int, int]]]:
    """The version and the keys a run kept in the table's control directory (the one file)."""
    (kept,) = (table / "_dcm_spark").glob("known-*.parquet")
    data = pa.parquet.read_table(kept).to_pydict()
    version = int(kept.name.removeprefix("known-").removesuffix(".parquet"))
    return version, sorted(zip(data["_path"], data["_size"], data["_mtime"], strict=True))


def held(spark: Any, table: Path) -> tuple[int, list[tuple[str, int, int]]]:
    """The table's latest version and its files' keys, read through Spark."""
    (version,) = spark.sql(f"DESCRIBE HISTORY delta.`{table}` LIMIT 1").select("version").first()
    keys = spark.sql(f"SELECT _path, _size, unix_millis(_mtime) FROM delta.`{table}`").collect()
    return version, sorted(tuple(r) for r in keys)


def test_a_run_keeps_the_table_s_files_for_the_next_one_of_the_same_version(
    spark, tree, tmp_path, where
) -> None:
    table = tmp_path / "dicom"
    ingest(spark, [tree], table, where)
    assert kept_keys(table) == held(spark, table)
    shutil.copy(get_testdata_file("emri_small.dcm"), tree / "emri_small.dcm")
    assert ingest(spark, [tree], table, where).new == 1
    assert kept_keys(table) == held(spark, table)
    # another writer's commit: keys kept at an older version are not used
    version, keys = held(spark, table)
    gone = min(keys)[0]
    spark.sql(f"DELETE FROM delta.`{table}` WHERE _path = '{gone}'")
    again = ingest(spark, [tree], table, where)
    assert (again.new, again.parsed) == (1, 1)
    paths = [r["_path"] for r in rows(spark, table, "_path")]
    assert len(paths) == len(set(paths)) == 6
    assert gone in paths
    assert kept_keys(table) == held(spark, table)
    assert held(spark, table)[0] == version + 2


def test_full_refresh_rebuilds(spark, tree, tmp_path) -> None:
    table = tmp_path / "dicom"
    ingest(spark, [tree], table)
    refreshed = ingest(spark, [tree], table, full_refresh=True)
    assert refreshed.parsed == 5
    assert len(rows(spark, table, "_path")) == 5
    assert len(rows(spark, Path(f"{table}_errors"), "_path")) == 3  # replaced, not doubled


def write_age(path: Path, age: bytes, uid: str) -> None:
    """A file whose PatientAge (VM 1) holds ``age`` as written, one value or several."""
    from pydicom.dataelem import RawDataElement
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.tag import Tag
    from pydicom.uid import ExplicitVRLittleEndian

    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7"
    ds.SOPInstanceUID = uid
    ds[0x00101010] = RawDataElement(Tag(0x00101010), "AS", len(age), age, 0, False, True)
    seq_item = Dataset()
    seq_item.CodeValue = "T-D0050"
    if b"\\" in age:  # the second batch's items also gain a field
        seq_item.CodeMeaning = "Tissue"
    ds.AnatomicRegionSequence = [seq_item]
    vendor = Dataset()  # a private sequence whose items differ between the two batches
    vendor.CodeValue = "V1"
    if b"\\" in age:
        vendor.CodeMeaning = "vendor two"
    ds.private_block(0x0029, "DCM-SPARK TEST", create=True).add_new(0x10, "SQ", [vendor])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    path.write_bytes(out.getvalue())


def test_promotion_across_runs_migrates_old_rows(spark, tmp_path, where) -> None:
    table = tmp_path / "dicom"
    first, second = tmp_path / "run1", tmp_path / "run2"
    first.mkdir()
    second.mkdir()
    write_age(first / "a.dcm", b"040Y", "1.2.826.0.1.1")
    ingest(spark, [first], table, where)
    assert (
        spark.read.format("delta").load(str(table)).schema["PatientAge"].dataType.simpleString()
        == "string"
    )

    write_age(second / "b.dcm", b"040Y\\041Y", "1.2.826.0.1.2")
    summary = ingest(spark, [first, second], table, where)
    assert [p["column_path"] for p in summary.promotions] == ["PatientAge"]
    ages = {
        r["SOPInstanceUID"]: r["PatientAge"]
        for r in rows(spark, table, "SOPInstanceUID, PatientAge")
    }
    assert ages == {"1.2.826.0.1.1": ["040Y"], "1.2.826.0.1.2": ["040Y", "041Y"]}
    meanings = rows(spark, table, "SOPInstanceUID, AnatomicRegionSequence[0].CodeMeaning AS m")
    assert {r["SOPInstanceUID"]: r["m"] for r in meanings} == {
        "1.2.826.0.1.1": None,
        "1.2.826.0.1.2": "Tissue",
    }
    vendor = rows(spark, table, "SOPInstanceUID, Tag_00291010[0].CodeMeaning AS m")
    assert {r["SOPInstanceUID"]: r["m"] for r in vendor} == {
        "1.2.826.0.1.1": None,
        "1.2.826.0.1.2": "vendor two",
    }
    log = rows(spark, Path(f"{table}_promotions"))
    assert [(r["column_path"], r["from_type"], r["to_type"], r["_run_id"]) for r in log] == [
        ("PatientAge", "string", "list<item: string>", summary.run_id)
    ]


def committed(table: Path) -> list[dict[str, Any]]:
    """The add actions of the files the Delta log references now (read from the log)."""
    import json

    files: dict[str, dict[str, Any]] = {}
    for commit in sorted((table / "_delta_log").glob("*.json")):
        for line in commit.read_text().splitlines():
            action = json.loads(line)
            if "add" in action:
                files[action["add"]["path"]] = action["add"]
            elif "remove" in action:
                files.pop(action["remove"]["path"], None)
    return list(files.values())


def test_a_conflict_within_one_run_is_cast_in_the_files_that_need_it(
    spark, tmp_path, where
) -> None:
    table = tmp_path / "dicom"
    files = tmp_path / "in"
    files.mkdir()
    write_age(files / "a.dcm", b"040Y", "1.2.826.0.1.1")
    write_age(files / "b.dcm", b"040Y\\041Y", "1.2.826.0.1.2")
    summary = ingest(spark, [files], table, where, files_per_task=1)  # one file per task
    assert summary.promotions == []  # a new table: nothing old to migrate
    ages = {
        r["SOPInstanceUID"]: r["PatientAge"]
        for r in rows(spark, table, "SOPInstanceUID, PatientAge")
    }
    assert ages == {"1.2.826.0.1.1": ["040Y"], "1.2.826.0.1.2": ["040Y", "041Y"]}
    adds = committed(table)
    assert len(adds) == 2  # one file per task: the two types met only on the driver
    # the file written with a string PatientAge was replaced, not left behind
    assert sorted(p.name for p in table.glob("*.parquet")) == sorted(a["path"] for a in adds)


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


def study_date(path: Path) -> str | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True, force=True).get("StudyDate") or None


def commit(table: Path, version: int) -> dict[str, list[dict[str, Any]]]:
    """The actions of one commit of the Delta log, by kind."""
    import json

    actions: dict[str, list[dict[str, Any]]] = {}
    for line in (table / "_delta_log" / f"{version:020d}.json").read_text().splitlines():
        ((kind, action),) = json.loads(line).items()
        actions.setdefault(kind, []).append(action)
    return actions


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


def test_two_runs_at_once_never_duplicate(spark, tree, tmp_path) -> None:
    table = tmp_path / "dicom"
    outcomes: list[Any] = []

    def one_run() -> None:
        try:
            outcomes.append(ingest(spark, [tree], table))
        except TableLocked as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert any(isinstance(o, Summary) for o in outcomes)
    for o in outcomes:
        if isinstance(o, TableLocked):
            assert "is being written by run" in str(o)
    ingest(spark, [tree], table)  # whatever happened, a later run completes the table
    paths = [r["_path"] for r in rows(spark, table, "_path")]
    assert len(paths) == len(set(paths)) == 5


def spark_submit(args: list[str], master: str = "local[2]") -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    command = ["spark-submit", "--master", master, "--properties-file", "conf/spark-defaults.conf"]
    return subprocess.Popen(
        [*command, "jobs/ingest.py", *args],
        cwd=ROOT,
        env=env,
        # spark-submit's Python driver writes its stderr into spark-submit's stdout
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [6.0, 14.0, 22.0])
def test_killed_driver_then_rerun_is_exactly_once(spark, tree, tmp_path, kill_after) -> None:
    for i in range(40):  # more files, so the kill lands while there is work
        shutil.copy(get_testdata_file("CT_small.dcm"), tree / f"copy{i}.dcm")
        ds = pydicom.dcmread(tree / f"copy{i}.dcm")
        ds.SOPInstanceUID = f"1.2.826.0.1.3.{i}"
        ds.save_as(tree / f"copy{i}.dcm")
    table = tmp_path / "dicom"
    job = spark_submit(["--input", str(tree), "--table", str(table), "--driver-parse-limit", "0"])
    time.sleep(kill_after)
    if job.poll() is None:
        os.killpg(job.pid, signal.SIGKILL)  # the driver and its Python workers
    job.communicate()
    summary = ingest(spark, [tree], table)
    paths = [r["_path"] for r in rows(spark, table, "_path")]
    assert len(paths) == len(set(paths)) == 45
    errors = [r["_path"] for r in rows(spark, Path(f"{table}_errors"), "_path")]
    assert len(errors) == len(set(errors)) == 3
    assert summary.listed == 48


@pytest.mark.slow
def test_spark_submit_exit_codes(tree, tmp_path) -> None:
    table = tmp_path / "dicom"
    summary_json = tmp_path / "summary.json"
    ok = spark_submit(
        ["--input", str(tree), "--table", str(table), "--summary-json", str(summary_json)]
    )
    out, _ = ok.communicate(timeout=300)
    assert ok.returncode == 0, out.decode()[-2000:]
    assert '"parsed": 5' in summary_json.read_text()
    missing = spark_submit(["--input", str(tmp_path / "nowhere"), "--table", str(table)])
    out, _ = missing.communicate(timeout=300)
    assert missing.returncode == 2
    assert b"ingest: the job could not run: input does not exist" in out


def test_excluded_and_deidentified_values_never_reach_the_written_bytes(
    spark, tmp_path, where
) -> None:
    from pydicom.uid import generate_uid

    from dcm_spark.dicom.deidentify import Policy, Profile

    source = tmp_path / "in"
    source.mkdir()
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName = "CANARYNAME^SECRET"
    ds.PatientID = "CANARYID42"
    ds.InstitutionName = "CANARYHOSPITAL"
    ds.StudyInstanceUID = generate_uid(
        prefix="1.2.826.0.1.3680043.10.999.", entropy_srcs=["canary"]
    )
    block = ds.private_block(0x0029, "CANARY CREATOR", create=True)
    block.add_new(0x10, "LO", "CANARYPRIVATE")
    ds.save_as(source / "canary.dcm")
    canaries = [
        b"CANARYNAME",
        b"CANARYID42",
        b"CANARYHOSPITAL",
        b"CANARYPRIVATE",
        ds.StudyInstanceUID.encode(),
    ]

    spark.conf.set("spark.sql.parquet.compression.codec", "uncompressed")  # bytes searchable
    try:
        table = tmp_path / "dicom"
        policy = Policy(
            exclude=frozenset({"InstitutionName"}), profile=Profile.BASIC, hash_key=b"k" * 32
        )
        summary = ingest(spark, [source], table, where, privacy=policy)
    finally:
        spark.conf.unset("spark.sql.parquet.compression.codec")
    assert summary.parsed == 1
    written = [p for p in tmp_path.rglob("*") if p.is_file() and source not in p.parents]
    assert any(p.suffix == ".parquet" for p in written)
    for path in written:
        data = path.read_bytes()
        for canary in canaries:
            assert canary not in data, (path, canary)
    (row,) = rows(spark, table, "PatientIdentityRemoved, StudyInstanceUID, PatientID")
    assert row["PatientIdentityRemoved"] == "YES"
    assert row["StudyInstanceUID"] == policy.hash_uid(str(ds.StudyInstanceUID))
    assert row["PatientID"] not in (None, "CANARYID42")


def python_workers(root: int) -> list[int]:
    """Python workers forked by a Python daemon (a local master's: `LOCAL_CONF`) that
    descends from process ``root``."""
    module = LOCAL_CONF["spark.python.daemon.module"].encode()
    parent: dict[int, int] = {}
    daemon: set[int] = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            parent[int(pid)] = int(
                Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
            )
        except (OSError, ValueError, IndexError):
            continue
        if module in cmd:
            daemon.add(int(pid))

    def descends(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parent.get(pid, 0)
        return False

    return [pid for pid in daemon if parent.get(pid) in daemon and descends(pid)]


@pytest.mark.slow
def test_a_killed_python_worker_is_retried_without_duplicates(spark, tree, tmp_path) -> None:
    ct = Path(get_testdata_file("CT_small.dcm")).read_bytes()
    for i in range(1500):
        (tree / f"bulk{i:04d}.dcm").write_bytes(ct)
    table = tmp_path / "dicom"
    job = spark_submit(
        ["--input", str(tree), "--table", str(table), "--driver-parse-limit", "0"],
        master="local[2,4]",
    )
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and job.poll() is None and time.monotonic() < deadline:
        workers = python_workers(job.pid)
        if workers:
            os.kill(workers[0], signal.SIGKILL)
            killed = workers[0]
        time.sleep(0.05)
    out, _ = job.communicate(timeout=300)
    assert killed is not None, "no Python worker seen"
    assert job.returncode == 0, out.decode()[-3000:]
    paths = [r["_path"] for r in rows(spark, table, "_path")]
    assert len(paths) == len(set(paths)) == 1505


@pytest.fixture()
def small_disk(tmp_path: Path) -> Any:
    """A 24 MB tmpfs (needs root and mount rights; skipped where they are missing)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.mark.slow
def test_a_full_disk_fails_the_run_and_leaves_the_table_as_it_was(
    spark, tree, small_disk, where
) -> None:
    table = small_disk / "dicom"
    ingest(spark, [tree], table)
    version = spark.sql(f"DESCRIBE HISTORY delta.`{table}`").count()
    before = sorted(r["_path"] for r in rows(spark, table, "_path"))
    for i in range(30):
        shutil.copy(get_testdata_file("MR_small.dcm"), tree / f"more{i}.dcm")
    free = shutil.disk_usage(small_disk).free
    (small_disk / "filler").write_bytes(b"\0" * max(0, free - 4096))
    with pytest.raises(Exception, match="(?i)space|quota|IOException|error"):
        ingest(spark, [tree], table, where, files_per_task=10)
    (small_disk / "filler").unlink()
    if where == "driver":  # what it wrote is gone (a failed Spark job leaves it to VACUUM)
        committed_files = {a["path"] for a in committed(table)}
        assert {p.name for p in table.glob("*.parquet")} == committed_files
    assert spark.sql(f"DESCRIBE HISTORY delta.`{table}`").count() == version
    assert sorted(r["_path"] for r in rows(spark, table, "_path")) == before
    assert not (table / "_dcm_spark" / "lock").exists()
    again = ingest(spark, [tree], table)  # with space again, the files come in once
    assert again.parsed == 30
