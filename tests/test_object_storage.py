"""Object storage as an input: ``s3://bucket/prefix`` listed and read through pyarrow's S3
filesystem, against a real S3 server (moto's) on 127.0.0.1.

Expected values are read from the same files' bytes with pydicom.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest

from dcm_spark import sources
from dcm_spark.dicom.header import Header, HeaderOptions
from dcm_spark.dicom.memo import ValueMemo
from dcm_spark.listing import InputNotFound, SourceUnavailable
from dcm_spark.paths import ObjectStore
from tests.helpers import ingest, pydicom_path, rows
from tests.s3 import CREDENTIALS, bucket_with, s3_server

FILES = {
    "collection/p1/CT_small.dcm": "CT_small.dcm",
    "collection/p1/MR_small.dcm": "MR_small.dcm",
    "collection/p2/rtplan.dcm": "rtplan.dcm",
}
META = ("_path", "_size", "_mtime", "_ingested_at", "_run_id")


def _data() -> dict[str, bytes]:
    data = {key: Path(pydicom_path(name)).read_bytes() for key, name in FILES.items()}
    member = io.BytesIO()
    with zipfile.ZipFile(member, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("series/CT.dcm", data["collection/p1/CT_small.dcm"])
    data["collection/p3/download.zip"] = member.getvalue()
    data["collection/p3/notes.txt"] = b"not DICOM"
    data["collection/p4/ct512.dcm"] = _ct_512()
    return data


def _ct_512() -> bytes:
    """A CT slice as scanners write them: 512x512, 16 bits, pixel data last (512 KiB)."""
    ds = pydicom.dcmread(pydicom_path("CT_small.dcm"))
    ds.Rows = ds.Columns = 512
    ds.PixelData = bytes(512 * 512 * 2)
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with s3_server(tmp_path_factory.mktemp("s3") / "moto.log") as url:
        bucket_with(url, "dicom", _data())
        yield url


@pytest.fixture
def aws(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """The standard AWS environment pointing at the test server."""
    for name, value in CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    return endpoint


def test_a_prefix_is_listed_and_read_like_the_same_files_on_disk(spark, tmp_path, aws) -> None:
    local = tmp_path / "local"
    for key, data in _data().items():
        (local / key).parent.mkdir(parents=True, exist_ok=True)
        (local / key).write_bytes(data)

    summary = ingest(spark, ["s3://dicom/collection"], tmp_path / "s3table", where="spark")
    ingest(spark, [local / "collection"], tmp_path / "localtable", where="spark")

    from_s3 = {r["_path"]: r for r in rows(spark, tmp_path / "s3table")}
    on_disk = {r["_path"]: r for r in rows(spark, tmp_path / "localtable")}
    assert (summary.listed, summary.parsed, summary.failed) == (6, 5, 1)
    assert sorted(from_s3) == sorted(
        "s3://dicom/" + p.removeprefix(f"file:{local}/") for p in on_disk
    )
    for path, row in on_disk.items():
        other = from_s3["s3://dicom/" + path.removeprefix(f"file:{local}/")]
        assert {k: v for k, v in other.items() if k not in META} == {
            k: v for k, v in row.items() if k not in META
        }
    key = "collection/p1/CT_small.dcm"
    expected = pydicom.dcmread(io.BytesIO(_data()[key])).SOPInstanceUID
    assert from_s3[f"s3://dicom/{key}"]["SOPInstanceUID"] == expected
    assert from_s3[f"s3://dicom/{key}"]["_size"] == len(_data()[key])

    again = ingest(spark, ["s3://dicom/collection"], tmp_path / "s3table", where="spark")
    assert (again.new, again.changed, again.parsed) == (0, 0, 0)


class _Counting:
    """A file that counts the bytes read from it."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.read_bytes = inner, 0

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        self.read_bytes += len(data)
        return bytes(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        return int(self.inner.seek(offset, whence))

    def tell(self) -> int:
        return int(self.inner.tell())


def test_only_the_header_s_bytes_travel(aws) -> None:
    uri = "s3://dicom/collection/p4/ct512.dcm"
    size = len(_ct_512())
    with sources.open_file(uri, ObjectStore.from_environment()) as handle:
        counting = _Counting(handle)
        row = sources.convert(counting, uri, HeaderOptions(), ValueMemo())  # type: ignore[arg-type]
    assert isinstance(row, Header) and row.values["Rows"] == 512
    assert counting.read_bytes < 0.05 * size, (counting.read_bytes, size)


def test_an_unreachable_endpoint_or_a_missing_bucket_fails_the_run_before_it_writes(
    spark, tmp_path, aws, monkeypatch
) -> None:
    table = tmp_path / "table"
    with pytest.raises(InputNotFound, match="s3://nobucket/x"):
        ingest(spark, ["s3://nobucket/x"], table)
    with pytest.raises(InputNotFound, match="s3://dicom/nothing-here"):
        ingest(spark, ["s3://dicom/nothing-here"], table)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard: nothing listens
    with pytest.raises(SourceUnavailable, match="cannot list s3://dicom/collection"):
        ingest(spark, ["s3://dicom/collection"], table)
    assert not (table / "_delta_log").exists()  # no table, no commit


def test_a_table_on_object_storage_is_refused_in_one_line() -> None:
    from dcm_spark.ingest import IngestOptions

    with pytest.raises(ValueError, match="not supported: inputs may be"):
        IngestOptions(("s3://dicom/collection",), "s3://dicom/table")


def test_wrong_credentials_fail_the_run_in_one_line(spark, tmp_path, monkeypatch) -> None:
    # the server checks signatures after the bucket is made and filled (2 requests)
    with s3_server(tmp_path / "moto.log", unsigned_actions=2) as url:
        bucket_with(url, "locked", {"a.dcm": Path(pydicom_path("CT_small.dcm")).read_bytes()})
        for name, value in CREDENTIALS.items():
            monkeypatch.setenv(name, value)  # keys no IAM user of the server has
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        with pytest.raises(SourceUnavailable, match="cannot list s3://locked/") as caught:
            ingest(spark, ["s3://locked/"], tmp_path / "table")
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "table" / "_delta_log").exists()
