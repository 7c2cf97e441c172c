"""The same job on a real Spark standalone cluster (master and worker on 127.0.0.1).

The executors run the packed environment (`make package`), not the project's venv: their
interpreter has no pydicom of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.data import get_testdata_file

from dcm_spark.ingest import IngestOptions, run
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "rtplan.dcm",
    "JPEG2000.dcm",
    "SC_rgb.dcm",
    "emri_small.dcm",
]
VOLATILE = {"_run_id", "_ingested_at"}

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def env() -> dict[str, str]:
    return {
        **os.environ,
        "SPARK_LOCAL_IP": "127.0.0.1",
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }


def wait_for(log: Path, text: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and text in log.read_text(errors="replace"):
            return
        time.sleep(0.5)
    raise TimeoutError(f"{text!r} not in {log} after {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A standalone master and one 2-core worker; both stopped whatever happens."""
    work = tmp_path_factory.mktemp("cluster")
    port = free_port()
    master_url = f"spark://127.0.0.1:{port}"
    spark_class = str(BIN / "spark-class")
    processes: list[subprocess.Popen[bytes]] = []
    try:
        master_log = work / "master.log"
        processes.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.master.Master",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--webui-port",
                    str(free_port()),
                ],
                stdout=master_log.open("wb"),
                stderr=subprocess.STDOUT,
                env=env(),
                start_new_session=True,
            )
        )
        wait_for(master_log, "I have been elected leader", 120)
        worker_log = work / "worker.log"
        processes.append(
            subprocess.Popen(
                [
                    spark_class,
                    "org.apache.spark.deploy.worker.Worker",
                    master_url,
                    "--host",
                    "127.0.0.1",
                    "--cores",
                    "2",
                    "--memory",
                    "3g",
                    "--webui-port",
                    str(free_port()),
                    "--work-dir",
                    str(work / "worker"),
                ],
                stdout=worker_log.open("wb"),
                stderr=subprocess.STDOUT,
                env=env(),
                start_new_session=True,
            )
        )
        wait_for(worker_log, "Successfully registered with master", 120)
        yield master_url, work / "worker"
    finally:
        for process in processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


def table_rows(spark: Any, path: Path) -> list[tuple[Any, ...]]:
    df = spark.read.format("delta").load(str(path))
    columns = [c for c in df.columns if c not in VOLATILE]
    return sorted(tuple(r) for r in df.select(*columns).collect())


def test_ingest_on_a_standalone_cluster_equals_local_mode(spark, cluster, tmp_path) -> None:
    tree = tmp_path / "in"
    tree.mkdir()
    for name in FILES:
        shutil.copy(get_testdata_file(name), tree / name)
    (tree / "notes.txt").write_text("not DICOM")

    make = subprocess.run(["make", "package"], cwd=ROOT, capture_output=True, text=True, env=env())
    assert make.returncode == 0, make.stdout[-2000:] + make.stderr[-2000:]

    master_url, worker_dir = cluster
    on_cluster = tmp_path / "cluster_table"
    job = subprocess.run(
        [
            "make",
            "ingest",
            f"MASTER={master_url}",
            f"INPUT={tree}",
            f"TABLE={on_cluster}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env(),
        timeout=900,
    )
    assert job.returncode == 0, job.stdout[-4000:] + job.stderr[-4000:]
    # few files, but a cluster's driver leaves them to the executors
    assert "parsed by the driver" not in job.stdout + job.stderr
    # the executors ran on the worker, with the packed environment
    executor_logs = list(worker_dir.glob("app-*/*/stderr"))
    assert executor_logs, "no executor ran on the worker"
    assert any((log.parent / "environment" / "bin" / "python").exists() for log in executor_logs)

    local = tmp_path / "local_table"  # few files, a local master: parsed in the driver
    summary = run(spark, IngestOptions((str(tree),), str(local)), report=lambda _: None)
    assert summary.parsed_in == "driver"

    cluster_df = spark.read.format("delta").load(str(on_cluster))
    local_df = spark.read.format("delta").load(str(local))
    assert cluster_df.schema == local_df.schema
    assert table_rows(spark, on_cluster) == table_rows(spark, local)
    assert len(table_rows(spark, on_cluster)) == len(FILES)
    errors = spark.read.format("delta").load(f"{on_cluster}_errors").select("_path").collect()
    assert [Path(r[0]).name for r in errors] == ["notes.txt"]


READ_WITH_THE_FORMAT = """
import sys
import pyarrow.parquet as pq
from pyspark.sql import SparkSession
from dcm_spark import source

spark = SparkSession.builder.getOrCreate()
source.register(spark)
df = spark.read.format("dicom").option("filesPerPartition", 2).load(sys.argv[1])
pq.write_table(df.select("_path", "SOPInstanceUID", "_error").toArrow(), sys.argv[2])
spark.stop()
"""


def test_the_dicom_format_reads_on_a_standalone_cluster(cluster, tmp_path) -> None:
    import pyarrow.parquet as pq
    import pydicom

    tree = tmp_path / "in"
    tree.mkdir()
    for name in FILES:
        shutil.copy(get_testdata_file(name), tree / name)
    (tree / "notes.txt").write_text("not DICOM")
    make = subprocess.run(["make", "package"], cwd=ROOT, capture_output=True, text=True, env=env())
    assert make.returncode == 0, make.stdout[-2000:] + make.stderr[-2000:]
    script = tmp_path / "read.py"
    script.write_text(READ_WITH_THE_FORMAT)
    out = tmp_path / "rows.parquet"
    # The format's planning runs spark.pyspark.python on the driver too: there, as beside
    # each executor, ./environment is a Python environment with the project (its venv).
    (tmp_path / "environment").symlink_to(Path(sys.prefix))
    master_url, _ = cluster
    job = subprocess.run(
        [
            str(BIN / "spark-submit"),
            "--properties-file",
            str(ROOT / "conf/spark-defaults.conf"),
            "--master",
            master_url,
            "--py-files",
            str(ROOT / "dist/dcm_spark.zip"),
            "--archives",
            f"{ROOT / 'dist/dcm_spark_env.tar.gz'}#environment",
            "--conf",
            "spark.pyspark.python=./environment/bin/python",
            "--conf",
            f"spark.pyspark.driver.python={sys.executable}",
            str(script),
            str(tree),
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**env(), "PYSPARK_PYTHON": sys.executable},
        timeout=600,
    )
    (tmp_path / "stderr.txt").write_text(job.stdout + job.stderr)
    assert job.returncode == 0, f"see {tmp_path / 'stderr.txt'}"
    got = {r["_path"]: (r["SOPInstanceUID"], r["_error"]) for r in pq.read_table(out).to_pylist()}
    expected = {
        f"file:{tree / name}": (pydicom.dcmread(tree / name).SOPInstanceUID, None) for name in FILES
    }
    notes = got.pop(f"file:{tree / 'notes.txt'}")
    assert got == expected
    assert notes[0] is None and notes[1].startswith("InvalidDicomError")
