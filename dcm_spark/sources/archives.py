"""Archives: each member of a ``.zip``, ``.tar``, ``.tar.gz`` or ``.tgz`` is a file.

Members are read where they lie, never unpacked to disk: a zip member is a stream of its
own (seeking forward inflates and discards, so pixel data is skipped, not kept); a tar is
read in one pass, member after member. A member's row has ``_path``
``<archive>!/<member name>`` and the archive's ``_size`` and ``_mtime``: the archive is
what was listed, so it is the key of what a run read
(`dcm_spark.records.listed_paths`).

A member that cannot be a row becomes an error record of its own, and the next member is
read: an archive inside the archive (`NestedArchive`, not opened), a name that climbs out
(``..`` or absolute: `UnsafeMemberName`), a zip member whose declared size is over
`MAX_MEMBER_BYTES` or which inflates more than `MAX_RATIO` times (`ArchiveBomb`), an
encrypted member (`EncryptedMember`), a link or a device (`NotARegularFile`).
pydicom and the standard library only.
"""

from __future__ import annotations

import tarfile
import zipfile
from collections.abc import Callable, Iterator
from typing import IO

from dcm_spark.dicom.header import FileError, Header
from dcm_spark.errors import DcmSparkError
from dcm_spark.records import MEMBER_SEPARATOR, archive_suffix

#: Converts one member (open, and its ``_path``) into its row or error.
ConvertMember = Callable[[IO[bytes], str], Header | FileError]

#: A zip member may declare at most this many bytes ...
MAX_MEMBER_BYTES = 4 << 30
#: ... and inflate at most this many times its compressed size (deflate's own limit is
#: ~1032; real DICOM, even blank images, stays far below).
MAX_RATIO = 200


class NestedArchive(DcmSparkError, ValueError):
    """An archive inside an archive: not opened."""


class UnsafeMemberName(DcmSparkError, ValueError):
    """A member whose name is absolute or climbs out of the archive with ``..``."""


class ArchiveBomb(DcmSparkError, ValueError):
    """A member that would inflate to more than the limits allow."""


class EncryptedMember(DcmSparkError, ValueError):
    """A member encrypted with a password."""


class NotARegularMember(DcmSparkError, ValueError):
    """A link, a device or a FIFO inside a tar."""


def is_archive(path: str) -> bool:
    """Whether ``path`` names an archive this module reads (by its suffix)."""
    return bool(archive_suffix(path))


def read_members(
    archive: str,
    handle: IO[bytes],
    convert: ConvertMember,
) -> Iterator[tuple[str, Header | FileError]]:
    """Each member of the archive ``archive`` (open as ``handle``), as ``(_path, row or
    error)``; the archive itself as one error if it cannot be opened."""
    try:
        if archive.lower().endswith(".zip"):
            yield from _zip_members(archive, handle, convert)
        else:
            yield from _tar_members(archive, handle, convert)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as exc:
        yield archive, FileError(archive, type(exc).__name__, "not a readable archive")


def _checked_name(archive: str, name: str) -> tuple[str, FileError | None]:
    path = f"{archive}{MEMBER_SEPARATOR}{name}"
    parts = name.replace("\\", "/").split("/")
    if name.startswith(("/", "\\")) or ".." in parts:
        return path, _error(path, UnsafeMemberName("member name is absolute or climbs out"))
    if is_archive(name):
        return path, _error(path, NestedArchive("an archive inside an archive is not opened"))
    return path, None


def _error(path: str, exc: Exception) -> FileError:
    return FileError(path, type(exc).__name__, str(exc))


def _zip_members(
    archive: str, handle: IO[bytes], convert: ConvertMember
) -> Iterator[tuple[str, Header | FileError]]:
    with zipfile.ZipFile(handle) as zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            path, refused = _checked_name(archive, info.filename)
            if refused is None and info.flag_bits & 0x1:
                refused = _error(path, EncryptedMember("member is encrypted"))
            if refused is None and (
                info.file_size > MAX_MEMBER_BYTES
                or info.file_size > MAX_RATIO * max(info.compress_size, 1)
            ):
                refused = _error(
                    path,
                    ArchiveBomb(
                        f"member inflates to {info.file_size} bytes from {info.compress_size}"
                        f" (limits: {MAX_MEMBER_BYTES} bytes, {MAX_RATIO}x)"
                    ),
                )
            if refused is not None:
                yield path, refused
                continue
            try:
                member = zf.open(info)
            except Exception as exc:  # a method zipfile does not inflate, say
                yield path, FileError(path, type(exc).__name__, "member cannot be opened")
                continue
            with member:
                yield path, convert(member, path)


def _tar_members(
    archive: str, handle: IO[bytes], convert: ConvertMember
) -> Iterator[tuple[str, Header | FileError]]:
    with tarfile.open(fileobj=handle, mode="r:*") as tf:
        for info in tf:
            if info.isdir():
                continue
            path, refused = _checked_name(archive, info.name)
            if refused is None and not info.isfile():
                refused = _error(path, NotARegularMember("a link or a device, not a file"))
            if refused is not None:
                yield path, refused
                continue
            member = tf.extractfile(info)
            if member is None:
                yield path, _error(path, NotARegularMember("member has no data"))
                continue
            with member:
                yield path, convert(member, path)
