"""A file's bytes as `dcm_spark.dicom.reader` sees them: a window that reads ahead in blocks
and seeks past what is not wanted, and a deflated data set inflated block by block."""

from __future__ import annotations

import zlib
from typing import IO

MAX_INFLATED = 256 << 20  # a deflated data set is read no further than this


class End(Exception):
    """The bytes end (or lie) before the current element is complete."""


class Window:
    """A window on the file: reads ahead in blocks, seeks past what is not wanted."""

    BLOCK = 1 << 14  # most headers fit; a larger block copies pixel data for nothing

    def __init__(
        self, fp: IO[bytes], base: int = 0, ahead: bytes = b"", size: int | None = None
    ) -> None:
        self.fp = fp  # positioned at base + len(ahead)
        self.buf = ahead  # bytes from base on, already read
        self.base = base  # file offset of buf[0]
        self.pos = base
        self.eof = False
        self.size = size  # the file's size, if known: no read to find where it ends

    def need(self, n: int) -> memoryview | bytes:
        start = self.pos - self.base
        if start + n > len(self.buf):
            if self.eof:
                raise End
            self.buf = self.buf[start:] + self.fp.read(max(n, self.BLOCK))
            self.base, start = self.pos, 0
            if n > len(self.buf):
                self.eof = True
                raise End
        self.pos += n
        return self.buf[start : start + n]

    def head(self) -> bytes | None:
        """The next 8 bytes (an element's tag and what follows), or None at a clean end."""
        start = self.pos - self.base
        if start + 8 <= len(self.buf):
            self.pos += 8
            return self.buf[start : start + 8]
        if self.pos == self.size:
            return None  # nothing at all left: the data set simply ends here
        try:
            return bytes(self.need(8))
        except End:
            if self.pos - self.base >= len(self.buf):
                return None  # nothing at all left: the data set simply ends here
            raise

    def upto(self, n: int) -> bytes:
        """Up to ``n`` bytes: fewer only where the file ends."""
        try:
            return bytes(self.need(n))
        except End:
            start = self.pos - self.base
            rest = self.buf[start:] + (b"" if self.eof else self.fp.read(n))
            self.eof = True
            self.buf, self.base, self.pos = b"", self.pos + len(rest), self.pos + len(rest)
            return bytes(rest[:n])

    def skip(self, n: int) -> None:
        if self.pos + n - self.base <= len(self.buf):
            self.pos += n
            return
        if self.eof:
            raise End
        if self.size is not None:  # beyond the window: is the value all there?
            if self.pos + n > self.size:
                raise End  # the length runs past the end of the file
            self.fp.seek(self.pos + n)
        else:
            self.fp.seek(self.pos + n - 1)
            if not self.fp.read(1):
                raise End
        self.pos += n
        self.buf, self.base = b"", self.pos


class Inflated:
    """A deflated data set as a forward-only file: inflated block by block, never whole.

    Seeking backwards is impossible; seeking forwards inflates and discards.
    """

    def __init__(self, fp: IO[bytes], limit: int = MAX_INFLATED) -> None:
        self.fp = fp
        self.inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        self.pending = b""
        self.position = 0
        self.limit = limit

    def read(self, n: int) -> bytes:
        while len(self.pending) < n and self.position + len(self.pending) < self.limit:
            compressed = self.fp.read(1 << 16)
            try:
                if compressed:
                    more = self.inflater.decompress(compressed, 1 << 20)
                else:
                    more = self.inflater.flush()
                while self.inflater.unconsumed_tail and len(more) < (4 << 20):
                    more += self.inflater.decompress(self.inflater.unconsumed_tail, 1 << 20)
            except zlib.error:
                more = b""
            if not more and not compressed:
                break
            self.pending += more
        data, self.pending = self.pending[:n], self.pending[n:]
        self.position += len(data)
        return data

    def seek(self, position: int) -> None:
        while self.position < position:
            if not self.read(min(position - self.position, 1 << 20)):
                break

    def tell(self) -> int:
        return self.position
