"""Where DICOM comes from, on the workers: files on a local, Hadoop or object-storage
filesystem (`dcm_spark.paths.filesystem`), the members of archives
(`dcm_spark.sources.archives`), instances of a DICOMweb server
(`dcm_spark.sources.dicomweb`).

`read` turns one listed entry (see `dcm_spark.listing`) into ``(_path, row or error)``
pairs: one for a file or an instance, one per member for an archive. No pyspark here.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from concurrent.futures import Future
from typing import IO, Any

from dcm_spark.dicom.header import (
    FileError,
    Header,
    HeaderOptions,
    NotARegularFile,
    convert_file,
)
from dcm_spark.dicom.memo import ValueMemo
from dcm_spark.errors import safe_message
from dcm_spark.paths import ObjectStore, filesystem, local_path
from dcm_spark.sources import archives

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
DICOMWEB_SCHEMES = ("dicomweb+http://", "dicomweb+https://")


def is_dicomweb(uri: str) -> bool:
    """Whether ``uri`` names a DICOMweb server (or one of its instances)."""
    return uri.startswith(DICOMWEB_SCHEMES)


def open_file(uri: str, store: ObjectStore | None = None) -> IO[bytes]:
    """A listed file, open for reading (seekable: object storage reads byte ranges)."""
    path = local_path(uri)
    if path is not None:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the task
            raise NotARegularFile("not a regular file")
        return open(path, "rb")  # noqa: SIM115 - closed by the caller
    fs, path = filesystem(uri, store)
    return fs.open_input_file(path)


def convert(
    handle: IO[bytes], path: str, options: HeaderOptions, memo: ValueMemo
) -> Header | FileError:
    """One file's row, or its error (a DICOMDIR is no instance: an error)."""
    result = convert_file(handle, options, path=path, memo=memo)
    if isinstance(result, Header) and result.values.get("MediaStorageSOPClassUID") == (
        DICOMDIR_CLASS
    ):
        return FileError(path, "DICOMDIR", "a media storage directory, not an instance")
    return result


def read(
    uri: str,
    options: HeaderOptions,
    memo: ValueMemo,
    store: ObjectStore | None = None,
    opened: Future[Any] | None = None,
) -> Iterator[tuple[str, Header | FileError]]:
    """The rows (or errors) of one listed entry, each with its ``_path`` (``opened``: the
    file being opened, or the instance's metadata fetched, ahead: `dcm_spark.sources.ahead`)."""
    if is_dicomweb(uri):
        from dcm_spark.sources import dicomweb

        yield uri, dicomweb.read_instance(uri, options, memo, fetched=opened)
        return
    try:
        handle = open_file(uri, store) if opened is None else opened.result()
    except Exception as exc:
        yield uri, FileError(uri, type(exc).__name__, safe_message(exc))
        return
    with handle:
        if archives.is_archive(uri):
            yield from archives.read_members(
                uri, handle, lambda member, path: convert(member, path, options, memo)
            )
        else:
            yield uri, convert(handle, uri, options, memo)
