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


#: Object storage read through pyarrow's own filesystems (elsewhere: Hadoop's, by URI).
OBJECT_STORES = ("s3://", "gs://")


def filesystem(uri: str, *, anonymous: bool = False) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path of a local path, ``file:`` URI or other URI.

    ``s3://`` takes the standard AWS settings from the environment (``AWS_ENDPOINT_URL``,
    ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ...); ``anonymous``
    reads public buckets (IDC's) without credentials, on S3 and GCS.
    """
    local = local_path(uri)
    if local is not None:
        return pafs.LocalFileSystem(), local
    if uri.startswith("s3://"):
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        scheme, _, host = (endpoint or "").rpartition("://")
        s3 = pafs.S3FileSystem(
            anonymous=anonymous,
            endpoint_override=host or None,
            scheme=scheme or "https",
            region=region or "us-east-1",
            connect_timeout=10,
            request_timeout=60,
        )
        return s3, uri[len("s3://") :]
    if uri.startswith("gs://"):
        return pafs.GcsFileSystem(anonymous=anonymous), uri[len("gs://") :]
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
