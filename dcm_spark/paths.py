"""Where things are: one resolver for paths and filesystems, and the names of the places
beside a table. pyarrow only (the workers use it)."""

from __future__ import annotations

import os

import pyarrow.fs as pafs


def local_path(uri: str) -> str | None:
    """The local directory of a path or ``file:`` URI; None for other filesystems."""
    if uri.startswith("file:"):
        return os.path.abspath("/" + uri[len("file:") :].lstrip("/"))
    return None if "://" in uri else os.path.abspath(uri)


def absolute(path: str) -> str:
    """A table location as a URI Spark and the workers agree on."""
    if "://" in path or path.startswith("file:"):
        return path
    return os.path.abspath(path)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path of a local path, ``file:`` URI or other URI."""
    local = local_path(uri)
    if local is not None:
        return pafs.LocalFileSystem(), local
    return pafs.FileSystem.from_uri(uri)


def errors_path(table: str) -> str:
    """The errors table beside ``table``: files that gave no row."""
    return table.rstrip("/") + "_errors"


def promotions_path(table: str) -> str:
    """The promotions table beside ``table``: every column a run promoted."""
    return table.rstrip("/") + "_promotions"


def control_dir(table: str) -> str:
    """Where a run keeps its lock and the table's kept keys (ignored by Delta: starts
    with _)."""
    return table.rstrip("/") + "/_dcm_spark"
