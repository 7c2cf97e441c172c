"""``spark.read.format("dicom")``: the same rows as the ingest, without a table.

Expected values come from the ingest's table of the same files (itself checked against
pydicom elsewhere) and from the files read with pydicom.
"""

from __future__ import annotations

import shutil
import zipfile
from pathlib import Path

import pydicom
import pytest

from dcm_spark import source
from tests.helpers import ingest, pydicom_path, rows

NAMES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "JPEG2000.dcm", "SC_rgb.dcm"]
VOLATILE = ("_ingested_at", "_run_id", source.ERROR_COLUMN)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("source") / "in"
    root.mkdir()
    for name in NAMES:
        shutil.copy(pydicom_path(name), root / name)
    with zipfile.ZipFile(root / "more.zip", "w") as zf:
        zf.write(pydicom_path("emri_small.dcm"), "series/emri_small.dcm")
    (root / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM" + b"\x02\x00")
    return root


def test_the_format_gives_the_ingest_s_rows_and_types(spark, tmp_path, inputs) -> None:
    source.register(spark)
    df = spark.read.format("dicom").option("maxDepth", 15).load(str(inputs))
    ingest(spark, [inputs], tmp_path / "table")
    table = spark.read.format("delta").load(str(tmp_path / "table"))

    got = {r["_path"]: r.asDict(recursive=True) for r in df.collect()}
    expected = {r["_path"]: r for r in rows(spark, tmp_path / "table")}
    assert set(expected) < set(got)  # and the broken file, as a row with its error
    for path, row in expected.items():
        assert got[path][source.ERROR_COLUMN] is None
        assert {k: v for k, v in got[path].items() if k not in VOLATILE and k in row} == {
            k: v for k, v in row.items() if k not in VOLATILE
        }
    types = {f.name: f.dataType for f in table.schema.fields}
    assert all(types[f.name] == f.dataType for f in df.schema.fields if f.name in types)

    member = f"file:{inputs / 'more.zip'}!/series/emri_small.dcm"
    emri = pydicom.dcmread(pydicom_path("emri_small.dcm"))
    assert got[member]["SOPInstanceUID"] == emri.SOPInstanceUID


def test_a_bad_file_is_a_row_with_its_error_and_nothing_else(spark, inputs) -> None:
    source.register(spark)
    df = spark.read.format("dicom").load(str(inputs))
    (bad,) = df.where("_error IS NOT NULL").collect()
    assert bad["_path"] == f"file:{inputs / 'broken.dcm'}"
    assert bad["_error"].split(":")[0] in ("InvalidDicomError", "TruncatedFile")
    header = [c for c in df.columns if not c.startswith("_")]
    assert all(bad[c] is None for c in header)


def test_a_given_schema_and_partitions_of_consecutive_files(spark, inputs) -> None:
    source.register(spark)
    df = (
        spark.read.format("dicom")
        .schema("_path string, SOPInstanceUID string, Rows bigint")
        .option("filesPerPartition", 2)
        .load(str(inputs))
    )
    assert df.columns == ["_path", "SOPInstanceUID", "Rows"]
    assert df.rdd.getNumPartitions() == 4  # 7 listed entries, 2 by 2
    got = {r["_path"]: (r["SOPInstanceUID"], r["Rows"]) for r in df.collect()}
    ct = pydicom.dcmread(inputs / "CT_small.dcm")
    assert got[f"file:{inputs / 'CT_small.dcm'}"] == (ct.SOPInstanceUID, ct.Rows)
    by_partition = df.rdd.glom().map(lambda part: [r["_path"] for r in part]).collect()
    assert [p for part in by_partition for p in part] == sorted(got)  # consecutive, in order
