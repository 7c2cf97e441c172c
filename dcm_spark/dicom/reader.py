"""Reading a DICOM file's element structure from its bytes (PS3.5 7 and PS3.10 7).

`read_file` returns the file meta and the data set as dicts of `Element`, values as raw
bytes, sequences as lists of items. Nothing is converted here (`dcm_spark.dicom.header` does
that), which makes this several times faster than building pydicom datasets.

- Values longer than ``defer_size`` are not read: their offset is kept, and the reader
  seeks past them; encapsulated pixel data is stepped over fragment by fragment. Pixel
  data never enters memory, and the elements after it are read.
- A file that ends early, or an element whose length runs past the end, ends the data set
  there: the elements read before are kept (``Parsed.truncated`` says so).
- Explicit and implicit VR, little and big endian, deflated data sets; a data set that
  says explicit VR but is written implicit (a common error) is read as implicit.
- A sequence whose bytes were read before (`SeenSequences`, shared by the files of a task)
  is not read again once its conversion is known to need nothing else of the file.
"""

from __future__ import annotations

import io
import os
import stat
import struct
from dataclasses import dataclass
from typing import IO, Any, Literal, NamedTuple

from pydicom.datadict import DicomDictionary
from pydicom.errors import InvalidDicomError

from dcm_spark.dicom.window import End, Inflated, Window

IMPLICIT_LITTLE = "1.2.840.10008.1.2"
EXPLICIT_BIG = "1.2.840.10008.1.2.2"
DEFLATED = ("1.2.840.10008.1.2.1.99", "1.2.840.10008.1.2.8.1")
ITEM, ITEM_END, SEQUENCE_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF
LONG_VRS = frozenset(
    (b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"UC", b"UN", b"UR", b"UT", b"SV", b"UV")
)
VALID_VRS = LONG_VRS | frozenset(
    (b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT",
     b"PN", b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US")
)  # fmt: skip
_VR_NAMES = {code: code.decode() for code in VALID_VRS}
_SHORT_VRS = {code: name for code, name in _VR_NAMES.items() if code not in LONG_VRS}
#: VRs with a 4-byte length that never hold items (not SQ, not UN)
_LONG_PLAIN_VRS = {code: _VR_NAMES[code] for code in LONG_VRS - {b"SQ", b"UN"}}
_LENGTHS = {True: struct.Struct("<I"), False: struct.Struct(">I")}  # little endian?
_HEADS = {  # (little endian, implicit VR) -> an element's first 8 bytes
    (True, False): struct.Struct("<HH2sH"),  # tag, VR, 2-byte length
    (True, True): struct.Struct("<HHI"),  # tag, 4-byte length
    (False, False): struct.Struct(">HH2sH"),
    (False, True): struct.Struct(">HHI"),
}
MAX_NESTING = 64  # deeper than any real file; guards the stack against hostile input
TOO_DEEP: list[Dataset] = []  # the value of a sequence nested deeper than MAX_NESTING
_DELIMITERS = {  # little endian? -> a sequence delimitation item (tag and zero length)
    True: struct.pack("<HHI", 0xFFFE, 0xE0DD, 0),
    False: struct.pack(">HHI", 0xFFFE, 0xE0DD, 0),
}


class Element(NamedTuple):
    """One element as read. ``value`` is bytes, None (not read: see ``length``), or, for
    a sequence, a list of items (dicts of elements)."""

    tag: int
    VR: str | None  # None: implicit VR (the dictionary says)
    length: int  # UNDEFINED for undefined length
    value: Any
    value_tell: int  # offset of the value in the file
    is_implicit_VR: bool
    is_little_endian: bool


Dataset = dict[int, Element]


class Items(list[Dataset]):
    """A sequence's items. ``key`` (when the whole sequence lay in the read window): its
    bytes and how they were read, under which `SeenSequences` keeps the first copy."""

    __slots__ = ("key", "plain", "converted")

    def __init__(self, items: list[Dataset], key: tuple[Any, ...]) -> None:
        super().__init__(items)
        self.key = key
        #: True once converted using nothing of the file beyond these bytes (no offset, no
        #: value read later): a later copy is then not parsed at all. None: it did.
        self.plain: bool | None = False
        #: the conversions, by character set and pixel sign (`dcm_spark.dicom.header`)
        self.converted: dict[Any, Any] = {}


class SeenSequences(dict[tuple[Any, ...], Items]):
    """The sequences a task's files hold, by their bytes (the first copy of each).

    The files of a series repeat most of their sequences byte for byte (the codes, the
    request's attributes, a multi-frame file's per-frame groups): a repeat is converted
    once, and read no further than its bytes. At most ``max_bytes`` of sequences are
    held (then it starts again empty); their items and conversions take ~8 times that.
    """

    def __init__(self, max_bytes: int = 4 << 20) -> None:
        super().__init__()
        self.max_bytes = max_bytes
        self.held = 0

    def remember(self, key: tuple[Any, ...], items: Items) -> None:
        size = len(key[-1])
        if self.held + size > self.max_bytes:
            self.clear()
            self.held = 0
        self[key] = items
        self.held += size


@dataclass
class Parsed:
    meta: Dataset
    body: Dataset
    truncated: bool
    deflated: bool = False  # offsets are in the inflated stream; long values were not kept


class _Reader:
    def __init__(
        self,
        source: Window,
        little: bool,
        implicit: bool,
        defer: int,
        seen: SeenSequences | None = None,
    ) -> None:
        self.src = source
        self.defer = defer
        self.truncated = False
        self.seen = seen
        self._encoding(little, implicit)

    def _encoding(self, little: bool, implicit: bool) -> None:
        self.little = little
        self.implicit = implicit
        self.header = struct.Struct("<HH" if little else ">HH")
        self.u16 = struct.Struct("<H" if little else ">H")
        self.u32 = struct.Struct("<I" if little else ">I")

    def dataset(self, end: int | None, depth: int, stop_group: int | None = None) -> Dataset:
        """Elements up to offset ``end`` (None: to an item delimiter or the file's end).

        When the bytes end early, the elements complete so far are returned and
        ``self.truncated`` is set: one cut element never costs the ones before it.
        """
        out: Dataset = {}
        src = self.src
        try:
            while not self.truncated:
                self._common(out, end, stop_group)
                if end is not None and src.pos >= end:
                    break
                head = src.head()
                if head is None:
                    if end is None:
                        break
                    raise End
                group, number = self.header.unpack(head[:4])
                tag = group << 16 | number
                if stop_group is not None and group != stop_group:
                    src.pos -= 8
                    break
                if tag in (ITEM_END, SEQUENCE_END):
                    break  # its 4-byte length is part of the 8 bytes read
                vr, length = self._vr_and_length(tag, head)
                element = self._value(tag, vr, length, depth)
                # A tag twice in one data set: the first stands (a later copy must not
                # silently replace, say, the PatientID).
                out.setdefault(tag, element)
        except (End, struct.error):
            self.truncated = True
        return out

    def _common(self, out: Dataset, end: int | None, only_group: int | None) -> None:
        """Read the common elements inline, up to the first that needs the general path.

        Common: not a sequence (explicit VR: not SQ or UN; implicit: a public non-SQ
        tag), the whole value in the window, not deferred, of ``only_group`` if given.
        The result is what the general path gives, without its calls per element.
        """
        src, defer, implicit, little = self.src, self.defer, self.implicit, self.little
        buf, base, pos = src.buf, src.base, src.pos
        size = len(buf)
        unpack, long_length = _HEADS[little, implicit].unpack_from, _LENGTHS[little].unpack_from
        new = tuple.__new__  # an `Element` without its __new__'s Python frame: 2x faster
        dictionary, short_vrs, setdefault = DicomDictionary.get, _SHORT_VRS.get, out.setdefault
        long_vrs = _LONG_PLAIN_VRS.get
        while end is None or pos < end:
            start = pos - base
            if start + 8 > size:
                break
            if implicit:
                group, number, length = unpack(buf, start)
                entry = dictionary(group << 16 | number)
                if entry is None or entry[0] == "SQ":
                    break
                vr = None
            else:
                group, number, code, length = unpack(buf, start)
                vr = short_vrs(code)
                if vr is None:  # a 4-byte length after 2 reserved bytes
                    vr = long_vrs(code)
                    if vr is None or start + 12 > size:
                        break
                    (length,) = long_length(buf, start + 8)
                    start += 4
            start += 8
            if group == 0xFFFE or start + length > size or length > defer:
                break
            if only_group is not None and group != only_group:
                break
            tag = group << 16 | number
            pos = base + start + length
            value = buf[start : start + length]
            setdefault(tag, new(Element, (tag, vr, length, value, base + start, implicit, little)))
        src.pos = pos

    def _vr_and_length(self, tag: int, head: bytes) -> tuple[str | None, int]:
        """VR and length from the 8 bytes after which the value (or a long length) starts."""
        if self.implicit or tag >> 16 == 0xFFFE:
            return None, self.u32.unpack(head[4:])[0]
        code = head[4:6]
        if code not in VALID_VRS:  # explicit said, implicit written: read on as implicit
            self.implicit = True
            return None, self.u32.unpack(head[4:])[0]
        if code in LONG_VRS:
            return _VR_NAMES[code], self.u32.unpack(self.src.need(4))[0]
        return _VR_NAMES[code], self.u16.unpack(head[6:])[0]

    def _is_sequence(self, tag: int, vr: str | None, length: int) -> bool:
        if vr == "SQ":
            return True
        if vr is not None and vr != "UN":
            return False
        entry = DicomDictionary.get(tag)
        if entry is not None:
            return bool(entry[0] == "SQ")
        if length == 0:
            return False
        peek = self.src.pos  # private or unknown: a sequence if its value starts with an item
        try:
            group, number = self.header.unpack(self.src.need(4))
        finally:
            self.src.pos = peek
        return (group << 16 | number) == ITEM

    def _value(self, tag: int, vr: str | None, length: int, depth: int) -> Element:
        src = self.src
        tell = src.pos
        implicit = vr is None
        if self._is_sequence(tag, vr, length):
            end = None if length == UNDEFINED else tell + length
            if depth >= MAX_NESTING:  # step over the subtree, keep reading after it
                self._skip_sequence(end)
                return Element(tag, "SQ", length, TOO_DEEP, tell, implicit, self.little)
            # a sequence sent as UN is encoded implicit VR little endian
            little, implicit_items = (True, True) if vr == "UN" else (self.little, self.implicit)
            how = (tag, vr, depth, self.defer, little, implicit_items)
            known = self._known(how, length) if self.seen is not None else None
            if known is not None:
                return Element(tag, vr, length, known, tell, implicit, self.little)
            if vr == "UN":
                saved = (self.little, self.implicit)
                self._encoding(True, True)
                try:
                    items = self._items(end, depth)
                finally:
                    self._encoding(*saved)
            else:
                items = self._items(end, depth)
            if self.seen is not None:
                items = self._remember(how, tell, items)
            return Element(tag, vr, length, items, tell, implicit, self.little)
        if length == UNDEFINED:  # encapsulated pixel data: step over the fragments
            self._skip_fragments()
            return Element(tag, vr, length, None, tell, implicit, self.little)
        if length > self.defer:
            src.skip(length)
            return Element(tag, vr, length, None, tell, implicit, self.little)
        value = src.upto(length)
        if len(value) < length:  # the file ends inside this value: keep what is there
            self.truncated = True
        return Element(tag, vr, length, value, tell, implicit, self.little)

    def _known(self, how: tuple[Any, ...], length: int) -> Items | None:
        """A sequence starting here whose bytes were read and converted before, plainly:
        stepped over. Of undefined length, it ends at one of the next sequence
        delimiters: each is tried, the bytes up to it a key."""
        assert self.seen is not None
        src = self.src
        buf, start = src.buf, src.pos - src.base
        if length != UNDEFINED:
            if start + length > len(buf):
                return None
            known = self.seen.get((*how, buf[start : start + length]))
            if known is None or not known.plain:
                return None
            src.pos += length
            return known
        delimiter = _DELIMITERS[how[4]]
        at = start
        for _ in range(MAX_NESTING):
            at = buf.find(delimiter, at)
            if at < 0:
                return None
            at += len(delimiter)
            known = self.seen.get((*how, buf[start:at]))
            if known is not None and known.plain:
                src.pos += at - start
                return known
        return None

    def _remember(self, how: tuple[Any, ...], tell: int, items: list[Dataset]) -> list[Dataset]:
        """The items of the sequence just read, as an `Items` with its key when its bytes
        are all still in the window (the first copy is kept in ``self.seen``)."""
        assert self.seen is not None
        src = self.src
        start, end = tell - src.base, src.pos - src.base
        # not when cut short, nor when its bytes changed how the data set is read on
        changed = how[1] != "UN" and self.implicit != how[5]  # (UN: restored after)
        if self.truncated or changed or start < 0 or end > len(src.buf):
            return items
        key = (*how, src.buf[start:end])
        known = self.seen.get(key)
        if known is None:
            known = Items(items, key)
            self.seen.remember(key, known)
            return known
        return items if known.plain is None else Items(items, key)

    def _items(self, end: int | None, depth: int) -> list[Dataset]:
        items: list[Dataset] = []
        src = self.src
        try:
            while (end is None or src.pos < end) and not self.truncated:
                head = src.head()
                if head is None:
                    raise End
                group, number = self.header.unpack(head[:4])
                tag = group << 16 | number
                length = self.u32.unpack(head[4:])[0]
                if tag == SEQUENCE_END:
                    break
                if tag != ITEM:
                    raise End  # not an item where one must be
                item_end = None if length == UNDEFINED else src.pos + length
                items.append(self.dataset(item_end, depth + 1))
                if item_end is not None and src.pos < item_end:
                    src.pos = item_end
        except (End, struct.error):
            self.truncated = True
        return items

    def _skip_sequence(self, end: int | None) -> None:
        """Step over a sequence without building it (no recursion: any depth)."""
        src = self.src
        if end is not None:
            src.skip(end - src.pos)
            return
        open_ = 1  # undefined-length sequences and items not yet closed
        while open_:
            head = bytes(src.need(8))
            group, number = self.header.unpack(head[:4])
            tag = group << 16 | number
            if tag >> 16 == 0xFFFE:
                length = self.u32.unpack(head[4:])[0]
                if tag in (ITEM_END, SEQUENCE_END):
                    open_ -= 1
                elif length == UNDEFINED:
                    open_ += 1
                else:
                    src.skip(length)
                continue
            _vr, length = self._vr_and_length(tag, head)
            if length == UNDEFINED:
                open_ += 1
            else:
                src.skip(length)

    def _skip_fragments(self) -> None:
        src = self.src
        while True:
            group, number = self.header.unpack(src.need(4))
            length = self.u32.unpack(src.need(4))[0]
            if (group << 16 | number) == SEQUENCE_END:
                return
            if length == UNDEFINED:
                raise End
            src.skip(length)


def _transfer_syntax(meta: Dataset) -> str | None:
    elem = meta.get(0x00020010)
    if elem is None or not isinstance(elem.value, bytes):
        return None
    return elem.value.rstrip(b"\x00 ").decode("ascii", "replace")


def _looks_explicit(head: bytes) -> bool:
    return len(head) >= 6 and head[4:6] in VALID_VRS


def _plausible(group_bytes: bytes, order: Literal["little", "big"]) -> bool:
    """Is this the group of a first element (file meta, or 0008 to 0030)?"""
    group = int.from_bytes(group_bytes, order)
    return len(group_bytes) == 2 and (group == 0x0002 or 0x0008 <= group <= 0x0030)


def _plausible_group(head: bytes) -> bool:
    """Does a file without preamble start with a DICOM element, in either byte order?"""
    return len(head) >= 8 and (_plausible(head[:2], "little") or _plausible(head[:2], "big"))


def _size(fp: IO[bytes]) -> int | None:
    """The size of a plain file on disk, or of a file that knows it (pyarrow's, an
    `dcm_spark.sources.ahead.Ahead`); None for other streams (a gzip or bz2 file object
    gives the fd of its compressed bytes: their size is not the stream's)."""
    raw = fp.raw if isinstance(fp, io.BufferedReader) else fp
    size = getattr(raw, "size", None)
    if callable(size):  # object storage: the size came with the open
        return int(size())
    if not isinstance(raw, io.FileIO):  # an archive's member, say: a stream of its own
        return None
    try:
        st = os.fstat(fp.fileno())
    except (OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def read_file(fp: IO[bytes], defer_size: int = 4096, seen: SeenSequences | None = None) -> Parsed:
    """Read a DICOM file's file meta and data set (see the module docstring); the
    sequences in ``seen`` (the other files of a task) and new ones kept there.

    Raises
    ------
    pydicom.errors.InvalidDicomError
        If the bytes do not start like a DICOM file (with or without the preamble).
    """
    size = _size(fp)
    first = fp.read(Window.BLOCK)  # the meta and, mostly, the whole header: one read
    start = 132 if first[128:132] == b"DICM" else 0
    if start == 0 and not _plausible_group(first[:132]):
        raise InvalidDicomError("not a DICOM file: no preamble, no DICOM elements")
    meta_src = Window(fp, base=start, ahead=first[start:], size=size)
    meta_reader = _Reader(meta_src, True, False, defer_size)
    meta = meta_reader.dataset(None, 0, stop_group=0x0002)
    syntax = _transfer_syntax(meta)
    body_start = meta_src.pos
    ahead = meta_src.buf[body_start - meta_src.base :]  # the file goes on from here
    if syntax is None or not syntax.startswith("1.2.840.10008.1.2"):
        # no file meta, or a transfer syntax no one defined: guess from the first element
        if len(ahead) < 8:
            fp.seek(body_start)
            ahead = fp.read(8)
        peek = ahead[:8]
        little = not (_plausible(peek[:2], "big") and not _plausible(peek[:2], "little"))
        implicit = not _looks_explicit(peek)
    else:
        little, implicit = syntax != EXPLICIT_BIG, syntax == IMPLICIT_LITTLE
    deflated = syntax in DEFLATED
    if deflated:  # offsets of a deflated data set are in the inflated stream
        fp.seek(body_start)
        source = Window(Inflated(fp), base=0)  # type: ignore[arg-type]
        defer_size = max(defer_size, 1 << 20)  # text cannot be read again afterwards
    else:
        source = Window(fp, base=body_start, ahead=ahead, size=size)
    reader = _Reader(source, little, implicit, defer_size, seen)
    body = reader.dataset(None, 0)
    return Parsed(meta, body, meta_reader.truncated or reader.truncated, deflated)
