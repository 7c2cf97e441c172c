"""Runs that fail or race: killed drivers and workers, a full disk, two runs at once, exit
codes. Every file still ends in the table once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file

from dcm_spark.delta.lock import TableLocked
from dcm_spark.ingest import Summary
from dcm_spark.session import LOCAL_CONF
from tests.helpers import (
    committed,
    ingest,
    rows,
)

ROOT = Path(__file__).resolve().parent.parent


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
