"""Shared fixtures: one real local[2] Spark session with Delta for the whole run, a small
tree of real files, and both places a run parses in."""

from __future__ import annotations

import os
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from hypothesis import HealthCheck, settings
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from dcm_spark.catalog import register
from dcm_spark.ingest import IngestOptions, run
from tests import corpus
from tests.helpers import DICOM_FILES, PARSED_IN

settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    from pyspark.sql import SparkSession

    from dcm_spark.session import configure

    builder = (
        SparkSession.builder.appName("dcm-spark-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.sql.execution.arrow.pyspark.validateSchema.enabled", "true")
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.driver.memory", "2g")
    )
    session = configure(builder, master="local[2]").getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(params=list(PARSED_IN))
def where(request: pytest.FixtureRequest) -> str:
    """Both paths: the files parsed by the Spark job's tasks, or in the driver."""
    return str(request.param)


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


@pytest.fixture(scope="session")
def corpus_table(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    """The fixture corpus ingested once; returns each readable file's dataset by _path."""
    root = tmp_path_factory.mktemp("query")
    built = tmp_path_factory.mktemp("built")
    datasets: dict[str, Dataset] = {}
    for i, source in enumerate(corpus.all_files(built)):
        if source.name == "emri_small_jpeg_2k_lossless_too_short.dcm":
            continue  # pydicom reads it as empty, so nothing to check its row against here
        target = root / "in" / f"{i:03d}" / source.name
        target.parent.mkdir(parents=True)
        shutil.copy(source, target)
        if source.name in corpus.DELIBERATELY_BROKEN:
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(target, force=True)
        # Media Storage Directory Storage (PS3.4): a DICOMDIR, recorded apart, not a row
        if ds.file_meta.get("MediaStorageSOPClassUID") != "1.2.840.10008.1.3.10":
            datasets[f"file:{target}"] = ds
    run(spark, IngestOptions((str(root / "in"),), str(root / "table")), report=lambda _: None)
    assert "dicom_typed" in register(spark, str(root / "table"))
    return datasets
