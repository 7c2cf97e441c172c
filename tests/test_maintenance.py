"""Maintenance (OPTIMIZE, VACUUM) and time travel on a table made in several runs.

Expected rows come from the files read with pydicom; file counts from the Delta log.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pydicom
import pytest
from deltalake import DeltaTable

from dcm_spark.catalog import register
from dcm_spark.delta.keys import known_files, remember_rewrite
from dcm_spark.delta.maintenance import UnsafeRetention, optimize, optimize_if_many, vacuum
from jobs.maintain import main as maintain_job
from tests.helpers import ingest, pydicom_path, rows

RUNS = [["CT_small.dcm", "MR_small.dcm"], ["rtplan.dcm", "SC_rgb.dcm"], ["JPEG2000.dcm"]]


def _sops(names: list[str]) -> set[str]:
    return {str(pydicom.dcmread(pydicom_path(n)).SOPInstanceUID) for n in names}


@pytest.fixture
def table(spark, tmp_path: Path) -> Path:
    """A table of three runs (three data files), each run adding files to the input."""
    (tmp_path / "in").mkdir()
    target = tmp_path / "table"
    for names in RUNS:
        for name in names:
            shutil.copy(pydicom_path(name), tmp_path / "in" / name)
        ingest(spark, [tmp_path / "in"], target, where="spark")
    return target


def _live_files(path: Path) -> int:
    return len(DeltaTable(str(path)).file_uris())


def test_optimize_compacts_and_changes_no_row(spark, table) -> None:
    before = sorted(r["SOPInstanceUID"] for r in rows(spark, table, "SOPInstanceUID"))
    assert _live_files(table) >= 3

    (done, *_) = optimize(spark, str(table), zorder=True)

    assert done.files_removed >= 3 and done.files_added == 1 == _live_files(table)
    after = sorted(r["SOPInstanceUID"] for r in rows(spark, table, "SOPInstanceUID"))
    assert after == before and set(after) == _sops([n for run in RUNS for n in run])
    arrow = DeltaTable(str(table)).to_pyarrow_table(columns=["SOPInstanceUID"])  # delta-rs
    (duck,) = duckdb.sql("SELECT count(DISTINCT SOPInstanceUID) FROM arrow").fetchall()
    assert arrow.num_rows == len(before) and duck == (len(set(before)),)
    again = ingest(spark, [table.parent / "in"], table, where="spark")
    assert (again.new, again.changed, again.parsed) == (0, 0, 0)


def _latest_commit(table: Path) -> int:
    return max(int(p.stem) for p in (table / "_delta_log").glob("*.json"))


def _kept_paths(table: Path, version: int) -> set[str]:
    kept = pq.read_table(table / "_dcm_spark" / f"known-{version}.parquet")
    return {Path(p).name for p in kept.column("_path").to_pylist()}


def test_optimize_keeps_the_keys_for_its_commit(spark, table) -> None:
    optimize(spark, str(table))

    latest = _latest_commit(table)  # OPTIMIZE's commit
    assert _kept_paths(table, latest) == {n for run in RUNS for n in run}
    again = ingest(spark, [table.parent / "in"], table, where="spark")
    assert (again.new, again.changed, again.parsed) == (0, 0, 0)


def test_keys_are_not_filed_for_another_writers_commit(spark, table) -> None:
    before = known_files(spark, str(table))
    shutil.copy(pydicom_path("ExplVR_BigEnd.dcm"), table.parent / "in" / "ExplVR_BigEnd.dcm")
    ingest(spark, [table.parent / "in"], table, where="spark")  # a WRITE right after

    remember_rewrite(str(table), before)  # as if an OPTIMIZE had committed it

    names = {n for run in RUNS for n in run} | {"ExplVR_BigEnd.dcm"}
    assert _kept_paths(table, _latest_commit(table)) == names


def test_auto_optimize_compacts_only_past_its_threshold(spark, table) -> None:
    files = _live_files(table)
    assert optimize_if_many(spark, str(table), most=files) == []
    assert _live_files(table) == files
    (done, *_) = optimize_if_many(spark, str(table), most=files - 1)
    assert done.files_removed == files and _live_files(table) == 1


def test_vacuum_keeps_the_safety_period_unless_forced(spark, table) -> None:
    optimize(spark, str(table))
    with pytest.raises(UnsafeRetention, match="below Delta's safety period"):
        vacuum(spark, str(table), retain_hours=0)
    assert len(list(table.glob("*.parquet"))) > _live_files(table)  # nothing deleted
    vacuum(spark, str(table), retain_hours=0, force=True)
    assert len(list(table.glob("*.parquet"))) == _live_files(table) == 1
    assert len(rows(spark, table, "_path")) == sum(map(len, RUNS))
    assert spark.conf.get("spark.databricks.delta.retentionDurationCheck.enabled") == "true"


def test_the_vacuum_job_refuses_a_short_retention_before_spark_starts(tmp_path, capsys) -> None:
    code = maintain_job(["vacuum", "--table", str(tmp_path / "t"), "--retain-hours", "1"])
    assert code == 2 and "--force-short-retention" in capsys.readouterr().err


def test_views_as_of_a_version_show_the_table_as_it_was(spark, table) -> None:
    session = spark.newSession()  # its own views: the other tests' stay as they are
    register(session, str(table), idc=False, as_of=0)
    first = {r["SOPInstanceUID"] for r in session.sql("SELECT SOPInstanceUID FROM dicom").collect()}
    assert first == _sops(RUNS[0])
    register(session, str(table), idc=False, as_of=1)
    series = session.sql("SELECT sum(instances) FROM dicom_series").first()
    assert series is not None and series[0] == len(_sops(RUNS[0] + RUNS[1]))
    register(session, str(table), idc=False)
    assert session.sql("SELECT count(*) FROM dicom").first()[0] == sum(map(len, RUNS))
