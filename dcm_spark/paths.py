"""Where things are: one resolver for paths and filesystems, and the names of the places
beside a table. pyarrow only (the workers use it)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field

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


@dataclass(frozen=True)
class ObjectStore:
    """How to reach object storage: the standard AWS settings, read once on the driver
    (`from_environment`) and handed to the tasks with their work, so executors need no
    environment of their own; ``anonymous`` reads public buckets (IDC's) unsigned."""

    anonymous: bool = False
    endpoint: str | None = None
    region: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, anonymous: bool = False) -> ObjectStore:
        env = os.environ.get
        return cls(
            anonymous=anonymous,
            endpoint=env("AWS_ENDPOINT_URL_S3") or env("AWS_ENDPOINT_URL"),
            region=env("AWS_REGION") or env("AWS_DEFAULT_REGION"),
            access_key=None if anonymous else env("AWS_ACCESS_KEY_ID"),
            secret_key=None if anonymous else env("AWS_SECRET_ACCESS_KEY"),
            session_token=None if anonymous else env("AWS_SESSION_TOKEN"),
        )

    def s3(self) -> pafs.S3FileSystem:
        scheme, _, host = (self.endpoint or "").rpartition("://")
        keys = {"access_key": self.access_key, "secret_key": self.secret_key}
        if self.session_token:
            keys["session_token"] = self.session_token
        return pafs.S3FileSystem(
            anonymous=self.anonymous,
            **(keys if self.access_key and self.secret_key else {}),
            endpoint_override=host or None,
            scheme=scheme or "https",
            region=self.region or "us-east-1",
            connect_timeout=10,
            request_timeout=60,
        )


@functools.lru_cache(maxsize=8)
def _s3(store: ObjectStore) -> pafs.S3FileSystem:
    """One S3 filesystem per settings, per process (they are thread-safe)."""
    return store.s3()


def filesystem(uri: str, store: ObjectStore | None = None) -> tuple[pafs.FileSystem, str]:
    """The pyarrow filesystem and path of a local path, ``file:`` URI or other URI
    (``s3://`` and ``gs://`` reached as ``store`` says; the environment's settings if
    None)."""
    local = local_path(uri)
    if local is not None:
        return pafs.LocalFileSystem(), local
    if uri.startswith(OBJECT_STORES):
        store = store or ObjectStore.from_environment()
        if uri.startswith("s3://"):
            return _s3(store), uri[len("s3://") :]
        return pafs.GcsFileSystem(anonymous=store.anonymous), uri[len("gs://") :]
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
