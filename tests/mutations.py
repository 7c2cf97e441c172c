"""Hostile inputs for `dcm_spark.dicom.header.convert_file`, built from real DICOM files.

Every case comes from a few of pydicom's test files (read offline through `tests.corpus`),
rewritten with pydicom so that they carry a *canary* (PatientName ``CANARY^SECRET``,
PatientID ``CANARY-ID-123``: no error message may ever show it) and then damaged:

* truncation every few bytes over the header, at element boundaries and inside pixel data;
* random bytes flipped in the header (the file meta included);
* element, item and sequence lengths replaced by absurd values (0xFFFFFFFE, 0x7FFFFFFF,
  file size + 1, odd lengths, undefined length on elements that cannot have one);
* VRs replaced (invalid ones, SQ on a string, ...) in explicit-VR files;
* text elements declaring a huge length (explicit files: the header rewritten to UT);
* undefined-length items and sequences with their delimiters removed, items longer than
  their sequence, sequences shorter than their first item;
* a second PatientID out of tag order (before the Pixel Data, or after it);
* the elements read for the whole file (file meta group length, transfer syntax, specific
  character set, pixel representation): lengths, VRs and values garbled;
* deflate: the compressed stream truncated or flipped, a decompression bomb, a long text
  value behind the deflate stream;
* made from scratch: empty file, random bytes, preamble + ``DICM`` only, a text file that
  holds the canary, sequences nested 200 (and 2,000) deep, 20,000 items, 4 MB of
  backslashes in one DS (4 million values);
* filesystem: a directory named ``x.dcm``, a chmod-000 file, a symlink loop, a dangling
  symlink, a missing path, a FIFO, a symlink to ``/dev/zero``, a sparse file whose one
  text value is 96 MB.

`build` is deterministic: every random choice comes from a `random.Random` seeded with a
string, and the same pydicom and zlib give byte-identical cases.

A case whose damage lies entirely after the canary elements (which come right after the
file meta and the few elements before group 0010) carries ``expect``: the converter must
still return a row with those values (a clearly intact part of the file must not be lost).
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from tests.corpus import testdata_file

CANARY = "CANARY"
CANARY_NAME = "CANARY^SECRET"
CANARY_ID = "CANARY-ID-123"
SEED = "dcm-spark robustness 1"

ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
PATIENT_NAME, PATIENT_ID, PIXEL_DATA = 0x00100010, 0x00100020, 0x7FE00010
CONTENT_SEQUENCE = 0x0040A730
TEXT_VALUE = 0x0040A160
#: explicit VRs with a 2-byte reserved field and a 4-byte length (PS3.5 7.1.2)
LONG_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
TEXT_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC"}
TEXT_VRS |= {"UI", "UR", "UT"}

#: source name -> (pydicom test file, how its sequences are written: None keeps them)
SOURCES: dict[str, tuple[str, bool | None]] = {
    "ct": ("CT_small.dcm", None),  # explicit VR little endian, native pixel data
    "mr_be": ("MR_small_bigendian.dcm", None),  # explicit VR big endian
    "mr_implicit": ("MR_small_implicit.dcm", None),  # implicit VR little endian
    "rtplan": ("rtplan.dcm", False),  # implicit VR, nested defined-length sequences
    "rtplan_undef": ("rtplan.dcm", True),  # the same, undefined-length items and sequences
    "sr": ("test-SR.dcm", False),  # explicit VR, SR content tree (defined lengths)
    "sr_undef": ("test-SR.dcm", True),
    "deflated": ("image_dfl.dcm", None),  # deflated explicit VR little endian
    "jpeg2k": ("JPEG2000.dcm", None),  # encapsulated pixel data (undefined length)
}

#: every mutation kind `build` makes, in order (the tests are parametrized over them)
KINDS = (
    "truncate",
    "truncate_pixels",
    "flip",
    "length",
    "vr",
    "text_huge",
    "delimiter",
    "item_overflow",
    "critical",
    "order",
    "deflate_stream",
    "deflate_bomb",
    "deflate_long_text",
    "not_dicom",
    "canary_text",
    "deep",
    "wide",
    "amplify",
    "fs",
    "fs_hang",
    "fs_sparse",
)


@dataclass(frozen=True)
class Element:
    """Where one element (or item, or delimiter) lies in a file's bytes."""

    offset: int  # of its tag
    tag: int
    vr: str | None  # None in implicit VR, and for items and delimiters
    length_offset: int
    length_size: int  # 2 or 4
    length: int
    value_offset: int
    depth: int  # 0 in the top-level dataset
    sequence_length: int | None = None  # an item's: its sequence's defined length

    @property
    def end(self) -> int:
        """Offset after the value (the value start for undefined lengths and SQ)."""
        if self.length == UNDEFINED or self.vr == "SQ" or self.tag == ITEM:
            return self.value_offset
        return self.value_offset + self.length


@dataclass(frozen=True)
class Source:
    """A real file with the canary planted, and the layout of its elements."""

    name: str
    data: bytes  # the file as written (deflated when the syntax says so)
    plain: bytes  # the same with the data set inflated: what structural mutations edit
    body: int  # offset of the data set (after the file meta) in `plain`
    implicit: bool
    little: bool
    deflated: bool
    elements: tuple[Element, ...]
    canary_end: int  # offset in `plain` after the canary elements
    study: str  # its StudyInstanceUID (group 0020: after the canary)

    @property
    def order(self) -> str:
        return "<" if self.little else ">"

    @property
    def header_end(self) -> int:
        """Offset of the Pixel Data element in `plain`, or its end."""
        for e in self.elements:
            if e.tag == PIXEL_DATA and e.depth == 0:
                return e.offset
        return len(self.plain)

    def pack(self, plain: bytes) -> bytes:
        """`plain` as a file: its data set deflated again when the source was."""
        if not self.deflated:
            return plain
        deflate = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
        return plain[: self.body] + deflate.compress(plain[self.body :]) + deflate.flush()


@dataclass(frozen=True)
class Case:
    """One hostile input: bytes to write to a file, or a builder of a filesystem entry."""

    id: str  # unique, e.g. "ct/truncate@1234"
    kind: str  # one of KINDS
    data: bytes | None = None
    make: Callable[[Path], Path] | None = field(default=None, compare=False)
    #: values the row must still hold (keyword -> value); empty: anything goes
    expect: tuple[tuple[str, object], ...] = ()
    note: str = ""


INTACT: tuple[tuple[str, object], ...] = (
    ("PatientID", CANARY_ID),
    ("PatientName", {"Alphabetic": {"FamilyName": "CANARY", "GivenName": "SECRET"}}),
)


# -- the element layout ----------------------------------------------------------------


def _is_sequence(tag: int, vr: str | None, length: int) -> bool:
    if vr is not None:
        return vr == "SQ"
    if tag == PIXEL_DATA:
        return False
    try:
        return dictionary_VR(tag) == "SQ"
    except KeyError:
        return length == UNDEFINED  # private, implicit: only a sequence can be undefined


class _Walker:
    """Lay out the elements of a data set, items and delimiters included."""

    def __init__(self, data: bytes, implicit: bool, little: bool) -> None:
        self.data, self.implicit, self.order = data, implicit, "<" if little else ">"
        self.found: list[Element] = []

    def header(self, pos: int, implicit: bool, order: str) -> tuple[int, str | None, int, int]:
        """(tag, VR, length offset, length size) of the element at `pos`."""
        group, number = struct.unpack_from(f"{order}HH", self.data, pos)
        tag = group << 16 | number
        if group == 0xFFFE or implicit:
            return tag, None, pos + 4, 4
        vr = self.data[pos + 4 : pos + 6].decode("latin-1")
        if vr in LONG_VRS:
            return tag, vr, pos + 8, 4
        return tag, vr, pos + 6, 2

    def dataset(self, pos: int, end: int, depth: int, meta: bool = False) -> int:
        """Walk elements from `pos` to `end` or an item delimiter; the offset after."""
        implicit, order = (False, "<") if meta else (self.implicit, self.order)
        while pos + 8 <= end:
            if meta and struct.unpack_from("<H", self.data, pos)[0] != 2:
                return pos
            tag, vr, at, size = self.header(pos, implicit, order)
            if at + size > end:
                return end
            length = struct.unpack_from(order + ("I" if size == 4 else "H"), self.data, at)[0]
            value = at + size
            self.found.append(Element(pos, tag, vr, at, size, length, value, depth))
            if tag == ITEM_END:
                return value
            if _is_sequence(tag, vr, length):
                if length == UNDEFINED:
                    pos = self.items(value, end, depth, None)
                else:
                    self.items(value, min(end, value + length), depth, length)
                    pos = value + length
            elif length == UNDEFINED:  # encapsulated pixel data: items of fragments
                pos = self.fragments(value, end, depth)
            else:
                pos = value + length
        return end if pos > end else pos

    def items(self, pos: int, end: int, depth: int, sequence_length: int | None) -> int:
        while pos + 8 <= end:
            group, number, length = struct.unpack_from(f"{self.order}HHI", self.data, pos)
            tag = group << 16 | number
            if tag not in (ITEM, SEQUENCE_END):
                return end
            self.found.append(
                Element(pos, tag, None, pos + 4, 4, length, pos + 8, depth + 1, sequence_length)
            )
            pos += 8
            if tag == SEQUENCE_END:
                return pos
            if length == UNDEFINED:
                pos = self.dataset(pos, end, depth + 1)
            else:
                self.dataset(pos, min(end, pos + length), depth + 1)
                pos += length
        return pos

    def fragments(self, pos: int, end: int, depth: int) -> int:
        while pos + 8 <= end:
            group, number, length = struct.unpack_from(f"{self.order}HHI", self.data, pos)
            tag = group << 16 | number
            self.found.append(Element(pos, tag, None, pos + 4, 4, length, pos + 8, depth + 1))
            pos += 8
            if tag == SEQUENCE_END:
                return pos
            pos += length
        return pos


def _sequences_undefined(ds: Dataset, undefined: bool) -> None:
    for elem in ds:
        if elem.VR == "SQ":
            elem.is_undefined_length = undefined
            for item in elem.value:
                item.is_undefined_length_sequence_item = undefined
                _sequences_undefined(item, undefined)


def load_source(name: str) -> Source:
    """The source `name` of `SOURCES`, with the canary planted."""
    filename, undefined = SOURCES[name]
    ds = pydicom.dcmread(testdata_file(filename))
    ds.PatientName, ds.PatientID = CANARY_NAME, CANARY_ID
    if undefined is not None:
        _sequences_undefined(ds, undefined)
    out = io.BytesIO()
    ds.save_as(out)  # keeps the file's transfer syntax (deflating again when deflated)
    return layout(name, out.getvalue())


def layout(name: str, data: bytes) -> Source:
    """Find the elements of a Part 10 file (preamble, file meta, then the data set)."""
    if data[128:132] != b"DICM":
        raise ValueError(f"{name}: no preamble")
    meta = _Walker(data, implicit=False, little=True)
    body = meta.dataset(132, len(data), 0, meta=True)
    syntax = pydicom.uid.UID(
        next(
            data[e.value_offset : e.end].rstrip(b"\x00 ").decode()
            for e in meta.found
            if e.tag == 0x00020010
        )
    )
    deflated = syntax == DeflatedExplicitVRLittleEndian
    plain = data
    if deflated:
        plain = data[:body] + zlib.decompress(data[body:], -zlib.MAX_WBITS)
    walker = _Walker(plain, syntax.is_implicit_VR, syntax.is_little_endian)
    walker.found = list(meta.found)
    walker.dataset(body, len(plain), 0)
    canary = [e for e in walker.found if e.depth == 0 and e.tag in (PATIENT_NAME, PATIENT_ID)]
    if len(canary) != 2:
        raise ValueError(f"{name}: canary elements not found")
    return Source(
        name,
        data,
        plain,
        body,
        syntax.is_implicit_VR,
        syntax.is_little_endian,
        deflated,
        tuple(walker.found),
        max(e.end for e in canary),
        str(pydicom.dcmread(io.BytesIO(data)).StudyInstanceUID),
    )


def _text(value: str) -> bytes:
    raw = value.encode("ascii")
    return raw + b" " * (len(raw) % 2)


def build() -> list[Case]:
    """Every case: mutations of each source, scratch files, filesystem entries."""
    cases: list[Case] = []
    from tests import hostile_files, source_mutations  # they build on this module

    for name in SOURCES:
        cases.extend(source_mutations.source_cases(load_source(name)))
    cases.extend(hostile_files.scratch_cases())
    cases.extend(hostile_files.filesystem_cases())
    ids = [c.id for c in cases]
    if len(set(ids)) != len(ids):
        raise AssertionError("case ids are not unique")
    unknown = {c.kind for c in cases} - set(KINDS)
    if unknown:
        raise AssertionError(f"kinds missing from KINDS: {unknown}")
    return cases
