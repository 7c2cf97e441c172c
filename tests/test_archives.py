"""Archives as inputs: each member of a .zip, .tar or .tar.gz is a file of its own.

Expected values are read from the members' bytes with pydicom.
"""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pydicom
import pytest

from dcm_spark.records import listed_paths
from tests.helpers import ingest, pydicom_path, rows

MEMBERS = {
    "study/ct/CT_small.dcm": "CT_small.dcm",
    "study/mr/MR_small.dcm": "MR_small.dcm",
    "rt/rtplan.dcm": "rtplan.dcm",
}


def _sop(data: bytes) -> str:
    return str(pydicom.dcmread(io.BytesIO(data), force=True).SOPInstanceUID)


def _members(names: dict[str, str]) -> dict[str, bytes]:
    return {member: Path(pydicom_path(source)).read_bytes() for member, source in names.items()}


def _zip(path: Path, members: dict[str, bytes], mtime: int = 1_700_000_000) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    os.utime(path, (mtime, mtime))
    return path


def _tar(path: Path, members: dict[str, bytes], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def _by_path(spark: Any, table: Path) -> dict[str, str]:
    return {r["_path"]: r["SOPInstanceUID"] for r in rows(spark, table, "_path, SOPInstanceUID")}


@pytest.mark.parametrize(
    ("name", "make"),
    [
        ("in.zip", _zip),
        ("in.tar.gz", _tar),
        ("in.tgz", _tar),
        ("in.tar", lambda p, m: _tar(p, m, "w")),
    ],
)
def test_each_member_is_a_row_named_after_its_archive(spark, tmp_path, name, make) -> None:
    members = _members(MEMBERS)
    (tmp_path / "in").mkdir()
    archive = make(tmp_path / "in" / name, members)
    summary = ingest(spark, [tmp_path / "in"], tmp_path / "table", where="spark")
    assert (summary.listed, summary.parsed, summary.failed) == (1, len(members), 0)
    assert _by_path(spark, tmp_path / "table") == {
        f"file:{archive}!/{member}": _sop(data) for member, data in members.items()
    }
    sizes = rows(spark, tmp_path / "table", "DISTINCT _size, _mtime")
    assert sizes == [{"_size": archive.stat().st_size, "_mtime": sizes[0]["_mtime"]}]


def test_a_member_s_row_equals_the_loose_file_s(spark, tmp_path) -> None:
    members = _members({"CT_small.dcm": "CT_small.dcm"})
    (tmp_path / "zip").mkdir()
    (tmp_path / "loose").mkdir()
    _zip(tmp_path / "zip" / "a.zip", members)
    (tmp_path / "loose" / "CT_small.dcm").write_bytes(members["CT_small.dcm"])
    ingest(spark, [tmp_path / "zip"], tmp_path / "t1", where="driver")
    ingest(spark, [tmp_path / "loose"], tmp_path / "t2", where="driver")
    meta = ("_path", "_size", "_mtime", "_ingested_at", "_run_id")
    (from_zip,), (loose,) = rows(spark, tmp_path / "t1"), rows(spark, tmp_path / "t2")
    assert {k: v for k, v in from_zip.items() if k not in meta} == {
        k: v for k, v in loose.items() if k not in meta
    }


def _encrypted_flag(path: Path, member: str) -> None:
    """Mark ``member`` encrypted, as a zip tool with a password would (PKWARE APPNOTE
    4.4.4: general purpose bit 0, in the local header and the central directory)."""
    data = bytearray(path.read_bytes())
    name = member.encode()
    local = data.find(b"PK\x03\x04")
    while local != -1:
        name_len = int.from_bytes(data[local + 26 : local + 28], "little")
        if data[local + 30 : local + 30 + name_len] == name:
            data[local + 6] |= 1
        local = data.find(b"PK\x03\x04", local + 4)
    central = data.find(b"PK\x01\x02")
    while central != -1:
        name_len = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + name_len] == name:
            data[central + 8] |= 1
        central = data.find(b"PK\x01\x02", central + 4)
    path.write_bytes(bytes(data))


def test_hostile_members_are_error_records_and_the_rest_are_read(spark, tmp_path) -> None:
    good = _members({"good.dcm": "CT_small.dcm", "locked.dcm": "MR_small.dcm"})
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as zf:
        zf.writestr("x.dcm", good["good.dcm"])
    hostile = {
        **good,
        "nested.zip": inner.getvalue(),
        "../escape.dcm": good["good.dcm"],
        "bomb.dcm": bytes(64 << 20),  # 64 MiB of zeros: deflates ~1000 times
    }
    (tmp_path / "in").mkdir()
    archive = _zip(tmp_path / "in" / "hostile.zip", hostile)
    _encrypted_flag(archive, "locked.dcm")
    links = tmp_path / "in" / "links.tar"
    with tarfile.open(links, "w") as tf:
        info = tarfile.TarInfo("link.dcm")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tf.addfile(info)
    (tmp_path / "in" / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")

    summary = ingest(spark, [tmp_path / "in"], tmp_path / "table", where="spark")

    assert _by_path(spark, tmp_path / "table") == {
        f"file:{archive}!/good.dcm": _sop(good["good.dcm"])
    }
    errors = {
        r["_path"]: r["error_class"]
        for r in rows(spark, Path(f"{tmp_path / 'table'}_errors"), "_path, error_class")
    }
    assert errors == {
        f"file:{archive}!/locked.dcm": "EncryptedMember",
        f"file:{archive}!/nested.zip": "NestedArchive",
        f"file:{archive}!/../escape.dcm": "UnsafeMemberName",
        f"file:{archive}!/bomb.dcm": "ArchiveBomb",
        f"file:{links}!/link.dcm": "NotARegularMember",
        f"file:{tmp_path / 'in' / 'broken.zip'}": "BadZipFile",
    }
    assert summary.failed == len(errors)


def test_an_archive_is_read_once_and_a_changed_one_replaces_its_members(spark, tmp_path) -> None:
    (tmp_path / "in").mkdir()
    archive = _zip(tmp_path / "in" / "a.zip", _members(MEMBERS))
    table = tmp_path / "table"
    ingest(spark, [tmp_path / "in"], table, where="driver")

    again = ingest(spark, [tmp_path / "in"], table, where="driver")
    assert (again.new, again.changed, again.parsed) == (0, 0, 0)

    fewer = _members({k: v for k, v in MEMBERS.items() if "mr" not in k})
    _zip(archive, fewer, mtime=1_800_000_000)
    changed = ingest(spark, [tmp_path / "in"], table, where="spark")
    assert (changed.changed, changed.parsed) == (1, len(fewer))
    assert _by_path(spark, table) == {
        f"file:{archive}!/{member}": _sop(data) for member, data in fewer.items()
    }


def test_a_member_path_is_keyed_by_its_archive_and_nothing_else_is() -> None:
    import pyarrow as pa

    paths = pa.array(
        ["file:/a/b.ZIP!/c/d.dcm", "file:/x!/y.dcm", "file:/a.tar.gz!/m", "s3://b/k.dcm"]
    )
    assert listed_paths(paths).to_pylist() == [
        "file:/a/b.ZIP",
        "file:/x!/y.dcm",  # a folder whose name ends in "!" is no archive
        "file:/a.tar.gz",
        "s3://b/k.dcm",
    ]
    # a listing without members (the common case) keeps every path, archives included
    plain = pa.chunked_array([["file:/a/b.zip", "file:/x!", "s3://b/k.dcm"], []])
    assert listed_paths(plain).to_pylist() == ["file:/a/b.zip", "file:/x!", "s3://b/k.dcm"]
    assert listed_paths(pa.array([], pa.string())).to_pylist() == []
