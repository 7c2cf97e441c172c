"""The table's lock: a run holds ``<table>/_dcm_spark/lock`` while it writes, so two runs
never add the same file twice."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dcm_spark.delta.jvm import hadoop_fs, jvm
from dcm_spark.errors import DcmSparkError
from dcm_spark.paths import control_dir

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


class TableLocked(DcmSparkError, RuntimeError):
    """Another run holds the table."""


@dataclass(frozen=True)
class _Holder:
    run_id: str
    host: str
    pid: int
    since: float


class _LocalLock:
    """The lock file on a local disk, created whole and atomically: written under a
    name of its own, then hard-linked to the lock's name (which fails if it exists)."""

    def __init__(self, path: str) -> None:
        self.path = path.removeprefix("file:")

    def create(self, content: str) -> bool:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        draft = f"{self.path}.{uuid.uuid4().hex}"
        with open(draft, "w") as out:
            out.write(content)
        try:
            os.link(draft, self.path)
        except FileExistsError:
            return False
        finally:
            os.remove(draft)
        return True

    def read(self) -> str:
        with open(self.path) as source:
            return source.read()

    def delete(self) -> None:
        with suppress(FileNotFoundError):
            os.remove(self.path)


class _HadoopLock:
    """The lock file on a Hadoop filesystem: create(overwrite=false) is atomic on HDFS.

    (Not on Hadoop's local filesystem, hence `_LocalLock`.)
    """

    def __init__(self, spark: SparkSession, path: str) -> None:
        self.spark = spark
        self.fs, self.hpath = hadoop_fs(spark, path)

    def create(self, content: str) -> bool:
        from py4j.protocol import Py4JJavaError  # type: ignore[import-untyped]

        try:
            out = self.fs.create(self.hpath, False)
        except Py4JJavaError as exc:
            if "FileAlreadyExists" in str(exc.java_exception):
                return False
            raise
        out.write(bytearray(content.encode()))
        out.close()
        return True

    def read(self) -> str:
        stream = self.fs.open(self.hpath)
        try:
            io_utils = jvm(self.spark).org.apache.commons.io.IOUtils
            return str(io_utils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def delete(self) -> None:
        self.fs.delete(self.hpath, False)


def _stale(holder: _Holder) -> bool:
    """A lock whose run is certainly gone (same host, process not alive)."""
    if holder.host != socket.gethostname():
        return False
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return _zombie(holder.pid)


def _zombie(pid: int) -> bool:
    """A killed process not yet reaped by its parent still answers kill(pid, 0)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return False


@contextmanager
def lock(spark: SparkSession, table: str, run_id: str) -> Iterator[None]:
    """Hold the table's lock for a run; refuse with a clear message if another run does.

    The lock is a file created atomically in ``<table>/_dcm_spark/``. A lock left by a
    killed run on this host is taken over; one from another host must be removed by hand.
    """
    path = control_dir(table) + "/lock"
    local = "://" not in path or path.startswith("file:")
    lock_file = _LocalLock(path) if local else _HadoopLock(spark, path)
    holder = {"run_id": run_id, "host": socket.gethostname(), "pid": os.getpid()}
    content = json.dumps(holder | {"since": time.time()})
    for _attempt in range(2):
        if lock_file.create(content):
            break
        try:
            other = _Holder(**json.loads(lock_file.read()))
        except Exception:  # a lock being written this very moment
            other = None
        if other is not None and _stale(other):
            lock_file.delete()
            continue
        who = f"run {other.run_id} (pid {other.pid} on {other.host})" if other else "a run"
        raise TableLocked(
            f"{table} is being written by {who}. Wait for it to finish; if it was killed "
            f"on another machine, delete {path}."
        )
    else:
        raise TableLocked(f"could not take the lock {path}")
    try:
        yield
    finally:
        lock_file.delete()
