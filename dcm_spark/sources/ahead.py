"""Reading ahead from object storage: a task's next files opened, and their first block
fetched, by a few threads while the current one is converted.

Every request to object storage waits for the network (3 ms to a local S3 server, tens of
ms to a distant one) while the converter needs ~1 ms of CPU a header: one file after the
other, a task would mostly wait. `opened_ahead` keeps up to `AHEAD` files in flight; each
is an `Ahead` file: its size (from the open) and its first `FIRST_BLOCK` bytes in memory,
the rest read by range only if the converter asks (a header longer than the block; never
pixel data it skips). Local files are not touched here: the page cache is faster.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from dcm_spark.paths import OBJECT_STORES, ObjectStore, filesystem

#: Files in flight at once, per task.
AHEAD = 8
#: Bytes fetched with the open: the reader's own first read (`dcm_spark.dicom.reader`).
FIRST_BLOCK = 1 << 14


class Ahead(io.RawIOBase):
    """A remote file whose first bytes are already here (seekable, read-only)."""

    def __init__(self, remote: Any, first: bytes) -> None:
        self.remote, self.first, self.pos = remote, first, 0
        self.length = int(remote.size())

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def size(self) -> int:
        return self.length

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self.pos, 2: self.length}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def read(self, n: int = -1) -> bytes:
        end = self.length if n is None or n < 0 else min(self.length, self.pos + n)
        if end <= self.pos:
            return b""
        if end <= len(self.first):
            data = self.first[self.pos : end]
        else:
            self.remote.seek(self.pos)
            data = bytes(self.remote.read(end - self.pos))
        self.pos += len(data)
        return data

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.remote.close()
        super().close()


def _open(uri: str, store: ObjectStore | None) -> Ahead:
    fs, path = filesystem(uri, store)
    remote = fs.open_input_file(path)
    return Ahead(remote, bytes(remote.read(FIRST_BLOCK)))


def opened_ahead(
    uris: Iterable[str], store: ObjectStore | None
) -> Iterator[tuple[str, Future[Ahead] | None]]:
    """Each uri with its file being opened (object storage), or None (read as usual)."""
    uris = list(uris)
    if not any(uri.startswith(OBJECT_STORES) for uri in uris):  # no threads for local files
        yield from ((uri, None) for uri in uris)
        return
    with ThreadPoolExecutor(AHEAD, thread_name_prefix="dcm-spark-ahead") as pool:
        pending: deque[tuple[str, Future[Ahead] | None]] = deque()
        for uri in uris:
            remote = uri.startswith(OBJECT_STORES)
            pending.append((uri, pool.submit(_open, uri, store) if remote else None))
            if len(pending) >= AHEAD:
                yield pending.popleft()
        while pending:
            yield pending.popleft()
