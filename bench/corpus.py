"""Deterministic synthetic DICOM corpus for benchmarks.

Real files (by default a fixed selection of pydicom's test files) are replicated into a
study/series/instance tree with fresh, seed-derived UIDs::

    python -m bench.corpus --out /tmp/corpus --files 10000 --seed 0

Only a handful of top-level attributes change per file (Study/Series/SOP Instance UID,
MediaStorageSOPInstanceUID, PatientID, PatientName, SeriesNumber, InstanceNumber). Every
other element, pixel data included, is written back as the raw bytes read from the
template, in the template's transfer syntax. The same ``seed`` and ``n_files`` give
byte-identical output.
"""

from __future__ import annotations

import argparse
import functools
import io
import random
import re
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pydicom
from pydicom import dcmread
from pydicom.charset import default_encoding
from pydicom.data import get_testdata_files
from pydicom.dataset import Dataset, FileDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.tag import BaseTag, Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian, generate_uid

__all__ = ["default_templates", "generate", "main", "plan"]

MAX_PIXEL_BYTES = 2 * 2**20
"""Templates whose PixelData value is this large or larger are skipped."""

BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
"""Binary values ``headers_only`` leaves out of the replicas (pixels, waveforms, LUTs)..."""
BULK_BYTES = 1024
"""...when they are this long or longer."""

MAX_PER_KIND = 2
"""At most this many default templates per (Modality, TransferSyntaxUID, SOPClassUID)."""

SERIES_PER_STUDY = (1, 5)
INSTANCES_PER_SERIES = (10, 50)

# Test files that exist to exercise error handling, by name.
_BROKEN_NAME = re.compile(
    r"bad|broken|truncat|invalid|mismatch|too_short|missing|no_?meta|delimiter|padded",
    re.IGNORECASE,
)
_TEST_FILES = Path(pydicom.data.__file__).parent / "test_files"


@dataclass(frozen=True)
class Slot:
    """One file of the corpus: where it goes and what it is made of."""

    index: int
    study: int
    series: int
    instance: int
    template: int
    study_uid: str
    series_uid: str
    sop_uid: str
    patient_id: str

    @property
    def relpath(self) -> Path:
        """``<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``."""
        return Path(self.study_uid, self.series_uid, f"{self.sop_uid}.dcm")


def _uid(seed: int, *parts: object) -> str:
    # generate_uid joins entropy sources without a separator: delimit them ourselves.
    return str(
        generate_uid(entropy_srcs=["dcm-spark-bench", f"|seed={seed}"] + [f"|{p}" for p in parts])
    )


def _sort_key(path: str) -> str:
    """Machine-independent name of a pydicom test file, used for ordering and dedup."""
    p = Path(path)
    try:
        return "pydicom/" + p.relative_to(_TEST_FILES).as_posix()
    except ValueError:
        return "pydicom-data/" + p.name  # pydicom-data (or its download cache) is flat


def _parse_all(ds: Dataset) -> None:
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                _parse_all(item)
        else:
            str(elem)


def _clean(path: str) -> FileDataset | None:
    """Read, fully decode and round-trip ``path``; None on any error or warning."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds = dcmread(path, force=False)
            _parse_all(ds)
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=False)
            _parse_all(dcmread(io.BytesIO(buf.getvalue()), force=False))
    except Exception:
        return None
    return ds


@functools.cache
def default_templates() -> tuple[Path, ...]:
    """Fixed selection of pydicom test files usable as templates.

    Returns
    -------
    tuple of Path
        Files, ordered by their name within pydicom's test data, that read and round-trip
        without warnings, have a SOPInstanceUID and a transfer syntax, PixelData below
        ``MAX_PIXEL_BYTES``, and a name not marking them as deliberately broken; at most
        ``MAX_PER_KIND`` per (Modality, TransferSyntaxUID, SOPClassUID).
    """
    seen: set[str] = set()
    per_kind: dict[tuple[str, str, str], int] = {}
    chosen: list[Path] = []
    for path in sorted(get_testdata_files(), key=_sort_key):
        key = _sort_key(path)
        if key in seen or _BROKEN_NAME.search(Path(path).name) or not Path(path).is_file():
            continue
        seen.add(key)
        ds = _clean(path)
        if ds is None or "SOPInstanceUID" not in ds:
            continue
        if "TransferSyntaxUID" not in ds.file_meta:
            continue
        if len(ds.get("PixelData", b"")) >= MAX_PIXEL_BYTES:
            continue
        kind = (
            str(ds.get("Modality", "")),
            str(ds.file_meta.TransferSyntaxUID),
            str(ds.get("SOPClassUID", "")),
        )
        if per_kind.get(kind, 0) >= MAX_PER_KIND:
            continue
        per_kind[kind] = per_kind.get(kind, 0) + 1
        chosen.append(Path(path))
    return tuple(chosen)


def plan(n_files: int, seed: int, n_templates: int) -> Iterator[Slot]:
    """Lay out ``n_files`` files as studies of series of instances.

    Each study has ``SERIES_PER_STUDY`` series, each series ``INSTANCES_PER_SERIES``
    instances (the last one truncated), all instances of a series share one template.
    """
    rng = random.Random(seed)
    index = 0
    study = 0
    while index < n_files:
        study_uid = _uid(seed, "study", study)
        patient_id = f"BENCH-{seed}-{study:06d}"
        for series in range(rng.randint(*SERIES_PER_STUDY)):
            if index >= n_files:
                break
            series_uid = _uid(seed, "series", study, series)
            template = rng.randrange(n_templates)
            size = min(rng.randint(*INSTANCES_PER_SERIES), n_files - index)
            for instance in range(size):
                yield Slot(
                    index=index,
                    study=study,
                    series=series,
                    instance=instance,
                    template=template,
                    study_uid=study_uid,
                    series_uid=series_uid,
                    sop_uid=_uid(seed, "instance", index),
                    patient_id=patient_id,
                )
                index += 1
        study += 1


_CHANGED = (
    Tag("SOPInstanceUID"),
    Tag("PatientName"),
    Tag("PatientID"),
    Tag("StudyInstanceUID"),
    Tag("SeriesInstanceUID"),
    Tag("SeriesNumber"),
    Tag("InstanceNumber"),
)


def _stamp(ds: FileDataset, slot: Slot) -> None:
    """Set the per-file attributes (always the same set, so the cached dataset can be reused)."""
    ds.SOPInstanceUID = slot.sop_uid
    ds.file_meta.MediaStorageSOPInstanceUID = slot.sop_uid
    ds.PatientName = f"Bench^Patient{slot.study:06d}"
    ds.PatientID = slot.patient_id
    ds.StudyInstanceUID = slot.study_uid
    ds.SeriesInstanceUID = slot.series_uid
    ds.SeriesNumber = slot.series + 1
    ds.InstanceNumber = slot.instance + 1


def _save(ds: FileDataset) -> bytes:
    buf = DicomBytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def _drop_bulk(ds: Dataset) -> None:
    """Remove long binary values at any depth (header replicas)."""
    for elem in list(ds):
        if elem.VR == "SQ":
            for item in elem.value:
                _drop_bulk(item)
        elif elem.VR in BULK_VRS and len(elem.value or b"") >= BULK_BYTES:
            del ds[elem.tag]


class _Template:
    """A template dataset plus its encoded body, split around the per-file elements.

    ``encode`` gives the same bytes as ``ds.save_as(enforce_file_format=False)`` but only
    re-encodes the file meta and the ``_CHANGED`` elements; the rest is encoded once.
    Templates where that equivalence cannot be checked (deflated transfer syntax,
    re-encoding on write) always go through ``save_as``.
    """

    def __init__(self, path: Path, slot: Slot, headers_only: bool = False) -> None:
        self.ds = ds = dcmread(path, force=False)
        if headers_only:
            _drop_bulk(ds)
        _stamp(ds, slot)
        reference = _save(ds)  # also lets dcmwrite apply its one-off fixes (PixelData length)
        self.parts: list[bytes | BaseTag] | None = None
        self.encoding: tuple[bool, bool] = (False, True)
        self.charset: str | list[str] = default_encoding
        tsyntax = ds.file_meta.get("TransferSyntaxUID")
        if (
            tsyntax is None
            or tsyntax == DeflatedExplicitVRLittleEndian
            or not tsyntax.is_transfer_syntax
            or (tsyntax.is_implicit_VR, tsyntax.is_little_endian) != ds.original_encoding
            or ds.original_character_set != ds._character_set
        ):
            return
        self.encoding = (tsyntax.is_implicit_VR, tsyntax.is_little_endian)
        self.charset = ds.get("SpecificCharacterSet", default_encoding)
        parts: list[bytes | BaseTag] = []
        run = self._buffer()
        for tag in sorted(ds.keys()):
            if tag.element == 0 and tag.group > 6:
                continue  # dcmwrite drops retired group lengths
            if tag in _CHANGED:
                parts += [run.getvalue(), tag]
                run = self._buffer()
            else:
                write_data_element(run, ds.get_item(tag), self.charset)
        parts.append(run.getvalue())
        self.parts = parts
        if self.encode() != reference:
            self.parts = None

    def _buffer(self) -> DicomBytesIO:
        buf = DicomBytesIO()
        buf.is_implicit_VR, buf.is_little_endian = self.encoding
        return buf

    def encode(self) -> bytes:
        """Encode the dataset with its current per-file attributes."""
        ds = self.ds
        if self.parts is None:
            return _save(ds)
        head = DicomBytesIO()
        if ds.preamble:
            head.write(ds.preamble)
            head.write(b"DICM")
        write_file_meta_info(head, ds.file_meta, enforce_standard=False)
        chunks = [head.getvalue()]
        for part in self.parts:
            if isinstance(part, bytes):
                chunks.append(part)
            else:
                elem = self._buffer()
                write_data_element(elem, ds[part], self.charset)
                chunks.append(elem.getvalue())
        return b"".join(chunks)


def generate(
    out: Path,
    n_files: int,
    seed: int = 0,
    templates: Sequence[Path] | None = None,
    headers_only: bool = False,
) -> list[Path]:
    """Write a deterministic corpus of ``n_files`` DICOM files under ``out``.

    Parameters
    ----------
    out : Path
        Target directory; created if missing, must be empty if it exists.
    n_files : int
        Number of files to write.
    seed : int
        Drives the layout, the template choice and the UIDs.
    templates : sequence of Path, optional
        DICOM files to replicate; ``default_templates()`` if None.
    headers_only : bool
        Header replicas: the templates without their long binary values (pixels, waveforms,
        palettes: `BULK_VRS`); a million files of the default templates with them would
        take ~50 GB. The ingest reads none of them.

    Returns
    -------
    list of Path
        Written files, ``out/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm``,
        in generation order.
    """
    if n_files < 0:
        raise ValueError(f"n_files must be >= 0, got {n_files}")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{out} exists and is not empty")
    paths = list(default_templates() if templates is None else templates)
    if not paths:
        raise ValueError("no templates")

    cache: dict[int, _Template] = {}
    written: list[Path] = []
    made: set[Path] = set()
    for slot in plan(n_files, seed, len(paths)):
        tpl = cache.get(slot.template)
        if tpl is None:
            tpl = cache[slot.template] = _Template(paths[slot.template], slot, headers_only)
        _stamp(tpl.ds, slot)
        target = out / slot.relpath
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        target.write_bytes(tpl.encode())
        written.append(target)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point; prints a one-line summary."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.corpus", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", type=Path, help="empty or missing directory")
    parser.add_argument("--files", type=int, help="number of files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--template", type=Path, action="append", help="template file (repeatable)")
    parser.add_argument(
        "--list-templates", action="store_true", help="print the default templates and exit"
    )
    args = parser.parse_args(argv)
    if args.list_templates:
        for path in default_templates():
            print(_sort_key(str(path)))
        return 0
    if args.out is None or args.files is None:
        parser.error("--out and --files are required")
    start = time.perf_counter()
    written = generate(args.out, args.files, args.seed, args.template)
    elapsed = time.perf_counter() - start
    size = sum(p.stat().st_size for p in written)
    rate = len(written) / elapsed if elapsed else float("inf")
    print(
        f"{len(written)} files, {size} bytes in {elapsed:.2f} s ({rate:.0f} files/s) -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
