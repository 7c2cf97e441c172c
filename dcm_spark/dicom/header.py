"""A DICOM file's header becomes one nested row; a batch of files one Arrow RecordBatch.

Pure Python (pydicom + pyarrow), no Spark: this runs inside ``mapInArrow`` on the workers.

`dcm_spark.dicom.reader` reads the element structure (tags, VRs, lengths, sequences) from the
bytes; the values are converted here from the raw element bytes, several times faster than
building pydicom's datasets and value objects. pydicom supplies the dictionary and the
character set decoding. Values longer than ``HeaderOptions.defer_size`` are not read while
parsing (pixel data never enters memory); elements after PixelData are kept.

Column names and types follow `dcm_spark.dicom.vr`; what does not fit a column goes to
``OtherElements`` and binary values to ``_BulkData`` (where they lie in the file).
"""

from __future__ import annotations

import json
import logging
import os
import stat
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
from pydicom.errors import InvalidDicomError

from dcm_spark import schema
from dcm_spark.dicom.budget import FileTimeout, time_budget
from dcm_spark.dicom.memo import MEMO_MAX_BYTES, ValueMemo
from dcm_spark.dicom.options import HeaderOptions
from dcm_spark.dicom.reader import MAX_NESTING, TOO_DEEP, Dataset, Element, Items, read_file
from dcm_spark.dicom.rows import Header, to_record_batch, union
from dcm_spark.dicom.values import (
    BINARY_NUMBERS,
    CONVERTED_KINDS,
    SPECIFIC_CHARACTER_SET,
    VALIDATED,
    empty,
    encodings,
    texts,
    typed,
)
from dcm_spark.dicom.vr import (
    BULK_DATA,
    BULK_ELEMENT,
    NAME_GROUPS,
    OTHER_ELEMENT,
    OTHER_ELEMENTS,
    ElementSpec,
    Kind,
    compatible,
    element_spec,
    implicit_vr,
    kind_of,
    repeater_id,
    repeater_type,
    tag_name,
)
from dcm_spark.errors import DcmSparkError, safe_message

OTHER_ELEMENTS_TYPE = pa.list_(OTHER_ELEMENT)
BULK_DATA_TYPE = pa.list_(BULK_ELEMENT)
UNDEFINED_LENGTH = 0xFFFFFFFF
TRUNCATED = "_Truncated"  # true on the row of a file that ends before its data set does
PIXEL_REPRESENTATION = 0x00280103


@dataclass(frozen=True)
class FileError:
    """A file that could not be read at all. ``message`` never holds element values."""

    path: str
    error_class: str
    message: str


class _Unparsable(ValueError):
    """A value that does not fit its column's type; carries the raw text to keep."""

    def __init__(self, raw: list[str]) -> None:
        super().__init__("unparsable value")
        self.raw = raw


@dataclass
class _File:
    """State of one file's conversion (never shared between files; ``memo`` may be)."""

    handle: IO[bytes]
    options: HeaderOptions
    memo: ValueMemo
    signed_pixels: bool = False
    deflated: bool = False
    #: conversions that used where a value lies in the file (a bulk data offset, a value
    #: read afterwards): a sequence converted with none is the same in any file
    placed: int = 0

    def read_at(self, offset: int, length: int) -> bytes:
        """Read a value the reader left in the file (longer than ``defer_size``)."""
        self.placed += 1
        if length > self.options.max_value_size:
            raise _Unparsable([f"value of {length} bytes not read (max_value_size)"])
        if self.deflated:
            raise _Unparsable([f"value of {length} bytes in a deflated data set not read"])
        self.handle.seek(offset)
        data = self.handle.read(length)
        if len(data) != length:
            raise _Unparsable([f"value of {length} bytes runs past the end of the file"])
        return data

    # The raw bytes of one element -> a list of values (text or numbers).
    def raw_values(self, elem: Element, vr: str, kind: Kind, enc: list[str]) -> list[Any]:
        data = elem.value
        if data is None:
            data = self.read_at(elem.value_tell, elem.length) if elem.length else b""
        if not data:
            return []
        number = BINARY_NUMBERS.get(vr)
        if number is not None:
            fmt, size = number
            if len(data) % size:
                raise _Unparsable([data.hex()])
            order = "<" if elem.is_little_endian else ">"
            numbers = list(struct.unpack(f"{order}{len(data) // size}{fmt}", data))
            if vr == "AT":
                if len(numbers) % 2:
                    raise _Unparsable([data.hex()])
                numbers = [(g << 16) | e for g, e in zip(numbers[::2], numbers[1::2], strict=True)]
            return numbers
        return texts(data, kind, enc)

    def dataset(self, ds: Dataset, enc: list[str], depth: int) -> Header:
        """Convert one dataset (the file's, or a sequence item's) into a `Header`."""
        values: dict[str, Any] = {}
        types: dict[str, pa.DataType] = {}
        other: list[dict[str, Any]] = []
        bulk: list[dict[str, Any]] = []
        creators: dict[int, str] = {}  # (group << 8 | block) -> private creator
        if SPECIFIC_CHARACTER_SET in ds and depth > 0:
            enc = encodings(ds, enc)
        memo, charset = self.memo, enc[0] if len(enc) == 1 else tuple(enc)
        for elem in ds.values():
            key = None
            data = elem.value
            if type(data) is bytes and len(data) <= MEMO_MAX_BYTES:
                # A value converted before, in this file or another of the task?
                key = (elem.tag, elem.VR, data, elem.is_little_endian, charset)
                seen = memo.get(key)
                if seen is not None:
                    name, known, known_type = seen
                    if known_type is None:  # a private element's text, in OtherElements
                        other.append({"Tag": name, "Data": list(known)})
                        continue
                    values[name] = list(known) if type(known) is list else known
                    types[name] = known_type
                    continue
            try:
                self.element(elem, enc, depth, values, types, other, bulk, creators, key)
            except _Unparsable as exc:
                other.append({"Tag": tag_name(elem.tag), "Data": exc.raw})
                _null_column(elem.tag, values, types)
            except FileTimeout:
                raise  # the file's time is up: not one element's fault
            except Exception:  # one bad element never costs the rest of the file
                other.append({"Tag": tag_name(elem.tag), "Data": [_raw_text(elem)]})
        if other:
            values[OTHER_ELEMENTS], types[OTHER_ELEMENTS] = other, OTHER_ELEMENTS_TYPE
        if bulk:
            values[BULK_DATA], types[BULK_DATA] = bulk, BULK_DATA_TYPE
        return Header(values, types)

    def element(
        self,
        elem: Element,
        enc: list[str],
        depth: int,
        values: dict[str, Any],
        types: dict[str, pa.DataType],
        other: list[dict[str, Any]],
        bulk: list[dict[str, Any]],
        creators: dict[int, str],
        key: tuple[Any, ...] | None = None,
    ) -> None:
        """Convert one element into ``values``; remember the result under ``key`` (tag,
        VR as written, bytes, byte order, character set) when that alone determines it."""
        tag = elem.tag
        spec = element_spec(tag)
        vr = elem.VR
        if isinstance(elem.value, list):  # the reader found items: a sequence, whatever the VR
            if elem.value is TOO_DEEP:
                raise _Unparsable([f"sequence nested deeper than {MAX_NESTING} levels: not read"])
            self.sequence(elem, spec, enc, depth, values, types, other)
            return
        if spec is not None and vr == spec.vr:
            kind = spec.kind  # the common case: the file says what the dictionary says
        else:
            if vr is None or vr == "UN":
                vr = implicit_vr(tag, spec, creators)
            if " or " in vr:  # ambiguous in the dictionary, the file was implicit VR
                key = None  # the VR depends on PixelRepresentation: not the bytes alone
                vr = "SS" if self.signed_pixels and "SS" in vr else vr.split(" or ")[0]
                if spec is not None and spec.kind is Kind.BINARY:
                    vr = "OW"
            kind = kind_of(vr)
        if kind is Kind.SEQUENCE:
            self.sequence(elem, spec, enc, depth, values, types, other)
            return
        if kind is Kind.BINARY:
            length, offset = _extent(elem)
            self.placed += 1
            at = None if self.deflated else offset  # an offset in inflated bytes helps no one
            bulk.append({"Tag": tag_name(tag), "VR": vr, "Offset": at, "Length": length})
            return
        raw = self.raw_values(elem, vr, kind, enc)
        if spec is None:  # private or unknown: text in OtherElements
            name, text = tag_name(tag), [_text(v) for v in raw]
            other.append({"Tag": name, "Data": text})
            if tag >> 16 & 1 and 0x10 <= tag & 0xFFFF <= 0xFF and raw:
                creators[(tag >> 16) << 8 | (tag & 0xFF)] = str(raw[0])
            elif key is not None and elem.VR not in (None, "UN"):  # the file's VR, not a
                # creator's dictionary: the text depends on the bytes and charset alone
                self.memo.remember(key, (name, tuple(text), None))
            return
        column_kind = spec.kind
        if column_kind is not kind and not compatible(column_kind, kind):
            raise _Unparsable([_text(v) for v in raw])
        converted = raw
        if column_kind in CONVERTED_KINDS or (column_kind is not kind) or vr in VALIDATED:
            try:
                converted = [
                    typed(column_kind, vr, v) if v != "" else empty(column_kind) for v in raw
                ]
            except (ValueError, OverflowError, ArithmeticError):
                raise _Unparsable([_text(v) for v in raw]) from None
        value: Any
        if spec.multiple or len(converted) > 1:
            value, column_type = converted, spec.list_type
        else:
            value, column_type = (converted[0] if converted else None), spec.value_type
        if key is not None and spec.memorable:
            self.memo.remember(
                key, (spec.keyword, list(value) if type(value) is list else value, column_type)
            )
        self.put(spec, tag, value, column_type, values, types)

    def put(
        self,
        spec: ElementSpec | None,
        tag: int,
        value: Any,
        column_type: pa.DataType,
        values: dict[str, Any],
        types: dict[str, pa.DataType],
    ) -> None:
        name = spec.keyword if spec is not None else tag_name(tag)
        if spec is None or not spec.repeater:
            values[name], types[name] = value, column_type
            return
        entry = {"Id": repeater_id(tag), "Value": value}
        entry_type = repeater_type(column_type)
        if name not in values:
            values[name], types[name] = [entry], entry_type
            return
        merged = schema.join(types[name], entry_type)
        values[name] = schema.conform(values[name], types[name], merged) + [
            schema.conform(entry, entry_type.value_type, merged.value_type)
        ]
        types[name] = merged

    def sequence(
        self,
        elem: Element,
        spec: ElementSpec | None,
        enc: list[str],
        depth: int,
        values: dict[str, Any],
        types: dict[str, pa.DataType],
        other: list[dict[str, Any]],
    ) -> None:
        if depth + 1 > self.options.max_depth:
            text = json.dumps(self.json(elem, enc, {}), ensure_ascii=False)
            other.append({"Tag": tag_name(elem.tag), "Data": [text]})
            return
        # the same bytes converted before, in this file or another of the task?
        items = elem.value
        seen = self.memo.seen.get(items.key) if type(items) is Items else None
        how = (enc[0] if len(enc) == 1 else tuple(enc), self.signed_pixels)
        if seen is not None:
            known = seen.converted.get(how)
            if known is not None:
                self.put(spec, elem.tag, list(known[0]), known[1], values, types)
                return
        placed = self.placed
        rows = [self.dataset(item, enc, depth + 1) for item in items]
        item_types = union(rows)
        column_type = self.memo.sequence_type(item_types)
        converted = [r.values for r in rows]
        if seen is not None:
            seen.plain = self.placed == placed or None
            if seen.plain:
                seen.converted[how] = (converted, column_type)
                converted = list(converted)
        self.put(spec, elem.tag, converted, column_type, values, types)

    def json(self, elem: Element, enc: list[str], creators: dict[int, str]) -> dict[str, Any]:
        """DICOM JSON (PS3.18 F.2) of a subtree kept as text; bulk data as a reference."""
        spec = element_spec(elem.tag)
        vr = elem.VR if elem.VR not in (None, "UN") else implicit_vr(elem.tag, spec, creators)
        vr = vr.split(" or ")[0]
        kind = kind_of(vr)
        if kind is Kind.SEQUENCE:
            items = [
                {f"{e.tag:08X}": self.json(e, enc, creators) for e in item.values()}
                for item in elem.value
            ]
            return {"vr": "SQ", "Value": items}
        if kind is Kind.BINARY:
            length, offset = _extent(elem)
            self.placed += 1
            return {"vr": vr, "BulkDataURI": f"#offset={offset}&length={length}"}
        values = self.raw_values(elem, vr, kind, enc)
        if kind is Kind.PERSON_NAME:
            values = [dict(zip(NAME_GROUPS, v.split("="), strict=False)) for v in values]
        return {"vr": vr, "Value": values} if values else {"vr": vr}


def _extent(elem: Element) -> tuple[int, int]:
    """(length, offset of the value in the file); length -1 when undefined."""
    return (-1 if elem.length == UNDEFINED_LENGTH else elem.length), elem.value_tell


def _null_column(tag: int, values: dict[str, Any], types: dict[str, pa.DataType]) -> None:
    """A null in the column of an element whose value went to OtherElements: the
    column exists with its dictionary type, whatever the value was."""
    spec = element_spec(tag)
    if spec is None or spec.repeater or spec.value_type is None or spec.keyword in values:
        return
    values[spec.keyword] = None
    types[spec.keyword] = pa.list_(spec.value_type) if spec.multiple else spec.value_type


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)


def _raw_text(elem: Element) -> str:
    value = elem.value
    if isinstance(value, bytes):
        return value.hex()
    return "" if value is None else str(value)


# -- files and batches -----------------------------------------------------------------


def _looks_like_dicom(ds: Dataset) -> bool:
    """A file without preamble and file meta: does it hold a plausible DICOM data set?"""
    tags = list(ds.keys())
    return (
        bool(tags) and any(element_spec(t) is not None for t in tags[:8]) and tags[0] >> 16 < 0x7FE0
    )


def read_header(
    source: str | Path | IO[bytes],
    options: HeaderOptions | None = None,
    memo: ValueMemo | None = None,
) -> Header:
    """Read one DICOM file's header into a `Header` (values and their Arrow types).

    Parameters
    ----------
    source
        Path or binary file object (seekable).
    options
        Conversion policy; `HeaderOptions` defaults when None.
    memo
        Values converted before, shared by the files of one task (`ValueMemo`); None
        gives the file a memo of its own.

    Raises
    ------
    pydicom.errors.InvalidDicomError
        If the file is not DICOM. Other errors of reading propagate too; use
        `convert_file` to get a `FileError` instead.
    """
    options = options or HeaderOptions()
    if isinstance(source, str | Path):
        if not stat.S_ISREG(os.stat(source).st_mode):  # a FIFO or a device would block
            raise NotARegularFile("not a regular file")
        with open(source, "rb") as handle:
            return _read(handle, options, memo)
    return _read(source, options, memo)


def _read(handle: IO[bytes], options: HeaderOptions, memo: ValueMemo | None) -> Header:
    # pydicom logs what it rejects, values included (an unknown character set name,
    # an invalid UID): nothing of a file may reach a log, so its logger is off meanwhile.
    pydicom_log = logging.getLogger("pydicom")
    was_disabled, pydicom_log.disabled = pydicom_log.disabled, True
    try:
        return _convert(handle, options, memo)
    finally:
        pydicom_log.disabled = was_disabled


def _convert(handle: IO[bytes], options: HeaderOptions, memo: ValueMemo | None) -> Header:
    memo = ValueMemo() if memo is None else memo
    parsed = read_file(handle, options.defer_size, memo.seen)
    ds = parsed.body
    if not parsed.meta and not _looks_like_dicom(ds):
        raise InvalidDicomError("not a DICOM file: no preamble, no DICOM elements")
    if not ds:
        raise TruncatedFile("no data set element could be read after the file meta")
    converter = _File(handle, options, memo)
    converter.deflated = parsed.deflated
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        enc = encodings(ds, ["iso8859"]) if SPECIFIC_CHARACTER_SET in ds else ["iso8859"]
        if PIXEL_REPRESENTATION in ds:
            converter.signed_pixels = _pixel_representation(ds) == 1
        meta = converter.dataset(parsed.meta, enc, 0)
        body = converter.dataset(ds, enc, 0)
    for extra in (OTHER_ELEMENTS, BULK_DATA):
        if extra in meta.values and extra in body.values:
            body.values[extra] = meta.values.pop(extra) + body.values[extra]
            meta.types.pop(extra)
    meta.values.update(body.values)
    meta.types.update(body.types)
    if parsed.truncated:  # the file ends early: say so, the row is not the whole header
        meta.values[TRUNCATED], meta.types[TRUNCATED] = True, pa.bool_()
    return meta


class NotARegularFile(DcmSparkError, OSError):
    """A FIFO, a device or a socket: reading it could block or never end."""


class TruncatedFile(DcmSparkError, EOFError):
    """A file whose data set ends before its first element could be read."""


def _pixel_representation(ds: Dataset) -> int:
    elem = ds[PIXEL_REPRESENTATION]
    raw = elem.value
    if isinstance(raw, bytes) and len(raw) == 2:
        return int(struct.unpack("<H" if elem.is_little_endian else ">H", raw)[0])
    return 0


def convert_file(
    source: str | Path | IO[bytes],
    options: HeaderOptions | None = None,
    *,
    path: str = "",
    memo: ValueMemo | None = None,
) -> Header | FileError:
    """Like `read_header`, but a file that cannot be read becomes a `FileError`."""
    label = path or str(source if isinstance(source, str | Path) else getattr(source, "name", ""))
    options = options or HeaderOptions()
    try:
        with time_budget(options.time_budget):
            return read_header(source, options, memo)
    except Exception as exc:
        return FileError(label, type(exc).__name__, safe_message(exc))


def convert_files(
    sources: Iterable[str | Path], options: HeaderOptions | None = None
) -> tuple[pa.RecordBatch, list[str], list[FileError]]:
    """Convert many files: (batch of rows, the path of each row, errors)."""
    rows: list[Header] = []
    paths: list[str] = []
    errors: list[FileError] = []
    memo = ValueMemo()
    for source in sources:
        result = convert_file(source, options, memo=memo)
        if isinstance(result, FileError):
            errors.append(result)
        else:
            rows.append(result)
            paths.append(str(source))
    return to_record_batch(rows), paths, errors


__all__ = [
    "FileError",
    "Header",
    "HeaderOptions",
    "convert_file",
    "convert_files",
    "read_header",
    "to_record_batch",
]
