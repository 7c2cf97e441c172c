"""What a de-identified table keeps of a file's path: `PathPolicy`.

Most archives name folders after patients and studies, so with ``--deidentify`` no path
that names anything is stored: not in the rows, the errors table, the kept keys, the Delta
log's statistics and commit info, nor in the job's output. The modes (`PathMode`):

- ``keep``: the path as listed (the default without de-identification);
- ``pseudonym`` (the default with it): every component of the path replaced by the first 16
  hex digits of HMAC-SHA256(key, "PATH\\0" + component), the scheme kept
  (``file:/3f2a.../9c1b...``), so the tree's shape shows, the same file has the same
  ``_path`` in every run with the same key, and incremental runs work as before. An
  archive's suffix is kept (``.zip``), so its members still go with it;
- ``drop``: no trace of the path: ``_path`` is ``dropped:`` and the HMAC of the path, size
  and modification time, so a run still finds what it holds; a changed file is a new one
  (its old row stays).

The real paths are only in the driver's memory and the tasks' input; ``--path-map`` writes
pseudonym -> path for the listed files to a file the user keeps apart from the table.
Pure Python: the workers use it for archive members.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from enum import StrEnum

import pyarrow as pa

from dcm_spark.records import MEMBER_SEPARATOR, archive_suffix

_SCHEMES = ("dicomweb+https://", "dicomweb+http://", "s3://", "gs://", "file:")


class PathMode(StrEnum):
    """What the table keeps of a path (see the module's doc)."""

    KEEP = "keep"
    PSEUDONYM = "pseudonym"
    DROP = "drop"


@dataclass(frozen=True)
class PathPolicy:
    """A `PathMode` and its HMAC key (16 bytes or more; a secret, never printed)."""

    mode: PathMode = PathMode.KEEP
    key: bytes = field(default=b"", repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "mode", PathMode(self.mode))
        if self.mode is not PathMode.KEEP and len(self.key) < 16:
            raise ValueError("a path pseudonym needs a key of at least 16 bytes")

    def listed(self, path: str, size: int, mtime_ms: int) -> str:
        """The ``_path`` stored for a listed file (or archive, or instance URL)."""
        if self.mode is PathMode.KEEP:
            return path
        if self.mode is PathMode.DROP:
            digest = self._digest(f"{path}\0{size}\0{mtime_ms}".encode(), 32)
            return f"dropped:{digest}{archive_suffix(path)}"
        return self._pseudonym(path)

    def member(self, archive_row_path: str, member: str) -> str:
        """The ``_path`` of an archive's member, given the archive's stored ``_path``."""
        if self.mode is PathMode.KEEP:
            return f"{archive_row_path}{MEMBER_SEPARATOR}{member}"
        return f"{archive_row_path}{MEMBER_SEPARATOR}{self._components(member)}"

    def _pseudonym(self, path: str) -> str:
        scheme = next((s for s in _SCHEMES if path.startswith(s)), "")
        return scheme + self._components(path[len(scheme) :])

    def _components(self, text: str) -> str:
        return "/".join(self._component(part) if part else part for part in text.split("/"))

    def _component(self, part: str) -> str:
        suffix = archive_suffix(part)
        return self._digest(part.encode(), 16) + suffix

    def _digest(self, message: bytes, hex_digits: int) -> str:
        return hmac.new(self.key, b"PATH\0" + message, hashlib.sha256).hexdigest()[:hex_digits]


#: Paths as listed.
KEEP_PATHS = PathPolicy()


def stored_paths(listing: pa.Table, policy: PathPolicy, path_map: str | None = None) -> pa.Table:
    """A listing (``_path``, ``_size``, ``_mtime``) with ``_path`` as the table will store
    it; the real path, which the tasks read, in ``_source``. With ``path_map``, appends
    ``stored<TAB>real`` of each entry to that file."""
    if policy.mode is PathMode.KEEP:
        return listing
    real = listing.column("_path").to_pylist()
    mtimes = listing.column("_mtime").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    sizes = listing.column("_size").to_pylist()
    stored = [
        policy.listed(path, size, mtime)
        for path, size, mtime in zip(real, sizes, mtimes.to_pylist(), strict=True)
    ]
    if path_map:
        with open(path_map, "a", encoding="utf-8") as out:
            out.writelines(f"{p}\t{r}\n" for p, r in zip(stored, real, strict=True))
    listing = listing.set_column(0, "_path", pa.array(stored, pa.string()))
    return listing.append_column("_source", pa.array(real, pa.string()))
