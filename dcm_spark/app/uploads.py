"""Where the app's Ingest tab may read from: uploads copied into a scratch folder under safe
names, or a folder under a root the server was started with (``--allow-root``).

Nothing here writes outside the scratch folder, and no name a browser sends becomes a path
as it is: each is reduced to its last component, stripped to ``[A-Za-z0-9._-]`` and never
``.`` or ``..``. Needs no Spark.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from dcm_spark.errors import DcmSparkError

#: The most bytes one upload (all its files together) may hold; Gradio refuses bigger files
#: itself (``max_file_size``), this checks the sum.
MAX_UPLOAD_BYTES = 500 * 1024 * 1024
MAX_UPLOAD_TEXT = "500 MB"

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class InputRefused(DcmSparkError, ValueError):
    """An upload or a folder the app does not ingest; the message says why, in one line."""


def safe_name(name: str) -> str:
    """A file name that stays inside any folder it is joined to.

    >>> safe_name("../../etc/passwd")
    'passwd'
    >>> safe_name("C:\\\\scans\\\\CT 1.dcm")
    'CT_1.dcm'
    """
    last = re.split(r"[\\/]", name)[-1]
    cleaned = _UNSAFE.sub("_", last).strip("._") or "upload"
    return cleaned[:200]


def store_uploads(
    sources: Sequence[str | os.PathLike[str]], names: Sequence[str], scratch: Path
) -> Path:
    """Copy uploaded files into a new folder under ``scratch``; return that folder.

    Parameters
    ----------
    sources
        Where the web framework put each upload (its own temporary files).
    names
        The names the browser gave them (untrusted: sanitised by `safe_name`).
    scratch
        The app's scratch folder; the copies go to ``scratch/upload-<id>/``.

    Raises
    ------
    InputRefused
        If there is nothing, or more than `MAX_UPLOAD_BYTES` together.
    """
    if not sources:
        raise InputRefused("refused: no file uploaded")
    total = sum(Path(s).stat().st_size for s in sources)
    if total > MAX_UPLOAD_BYTES:
        raise InputRefused(f"refused: the upload is over {MAX_UPLOAD_TEXT}")
    root = scratch.resolve()
    target = root / f"upload-{uuid.uuid4().hex[:12]}"
    target.mkdir(parents=True)
    used: set[str] = set()
    for source, name in zip(sources, names, strict=True):
        clean = _unique(safe_name(name), used)
        destination = (target / clean).resolve()
        if destination.parent != target:  # cannot happen after safe_name; checked anyway
            raise InputRefused("refused: a file name leaves the scratch folder")
        shutil.copyfile(source, destination)
    return target


def _unique(name: str, used: set[str]) -> str:
    stem, dot, suffix = name.partition(".")
    candidate, n = name, 1
    while candidate in used:
        n += 1
        candidate = f"{stem}-{n}{dot}{suffix}"
    used.add(candidate)
    return candidate


def allowed_folder(folder: str, roots: Iterable[str | os.PathLike[str]]) -> Path:
    """``folder`` resolved (links followed), if it lies under one of ``roots``.

    Raises
    ------
    InputRefused
        If no root is configured, the folder is outside them all, or does not exist.
    """
    resolved_roots = [Path(r).resolve() for r in roots]
    if not resolved_roots:
        raise InputRefused("refused: no folder may be read (start the app with --allow-root DIR)")
    if not folder.strip() or "\x00" in folder:
        raise InputRefused("refused: name a folder")
    path = Path(folder.strip()).expanduser()
    if not path.is_absolute():
        path = resolved_roots[0] / path
    path = path.resolve()
    if not any(path == r or r in path.parents for r in resolved_roots):
        raise InputRefused(
            "refused: the folder is outside the allowed roots "
            f"({', '.join(str(r) for r in resolved_roots)})"
        )
    if not path.exists():
        raise InputRefused("refused: no such file or folder under the allowed roots")
    return path
