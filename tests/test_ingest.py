"""The ingest job against a real local[2] session and real Delta tables."""

from __future__ import annotations

import contextvars
import datetime
import io
import shutil
import signal
import threading
from dataclasses import replace
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet
import pydicom
from pydicom.data import get_testdata_file

from dcm_spark.dicom.header import HeaderOptions
from dcm_spark.ingest import IngestOptions, run
from tests.helpers import (
    DICOM_FILES,
    PARSED_IN,
    VOLATILE,
    committed,
    digest,
    held,
    ingest,
    kept_keys,
    rows,
    sop_uid,
    spark_jobs,
    without,
)


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


def test_progress_counts_the_files_parsed_up_to_all_of_them(spark, tmp_path, monkeypatch) -> None:
    from dcm_spark import progress as progress_module

    monkeypatch.setattr(progress_module, "PROGRESS_EVERY", 0.01)
    source = tmp_path / "in"
    source.mkdir()
    for i in range(40):  # 40 files, 2 a task: 20 tasks on 2 cores
        shutil.copy(get_testdata_file(DICOM_FILES[i % len(DICOM_FILES)]), source / f"{i}.dcm")
    told: list[tuple[int, int]] = []
    request = contextvars.ContextVar("request")  # as a web framework keeps its request
    request.set("this run's page")

    def progress(done: int, total: int) -> None:
        assert request.get(None) == "this run's page"  # its progress bar is found
        told.append((done, total))

    options = IngestOptions((str(source),), str(tmp_path / "t"), driver_parse_limit=0)
    run(spark, replace(options, files_per_task=2), report=lambda line: None, progress=progress)
    assert told[-1] == (40, 40)
    assert {total for _, total in told} == {40}
    done = [d for d, _ in told]
    assert done == sorted(set(done))  # only forward, each count once
    assert any(0 < d < 40 for d in done)  # told while the tasks ran, not only at the end
    assert all(d % 2 == 0 for d in done)  # whole tasks of 2 files


def test_progress_in_the_driver_after_each_batch_of_files(spark, tree, tmp_path) -> None:
    told: list[tuple[int, int]] = []
    options = IngestOptions(
        (str(tree),), str(tmp_path / "t"), driver_parse_limit=PARSED_IN["driver"]
    )
    summary = run(
        spark,
        replace(options, files_per_task=3),
        report=lambda line: None,
        progress=lambda *a: told.append(a),
    )
    assert summary.parsed_in == "driver"
    assert told == [(3, 8), (6, 8), (8, 8)]  # the tree's 8 files, 3 at a time


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
