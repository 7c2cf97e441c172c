"""The DICOM JSON Model (PS3.18 F.2) as a row: a data set given as DICOM JSON (a DICOMweb
server's WADO-RS metadata) becomes the `Header` its file would give.

The JSON is written as a Part 10 stream (explicit VR little endian, text in UTF-8) and read
by the files' converter (`dcm_spark.dicom.header.read_header`), so one set of rules types
every value; the character set the JSON names is put back afterwards, and binary elements
(BulkDataURI or InlineBinary) are ``_BulkData`` entries with the URI. No HTTP, no pyspark.
"""

from __future__ import annotations

import base64
import io
import struct
from typing import Any
from urllib.parse import urljoin

import pyarrow as pa

from dcm_spark.dicom.header import BULK_DATA_TYPE, read_header
from dcm_spark.dicom.memo import ValueMemo
from dcm_spark.dicom.options import HeaderOptions
from dcm_spark.dicom.reader import LONG_VRS
from dcm_spark.dicom.rows import Header
from dcm_spark.dicom.values import BINARY_NUMBERS, SPECIFIC_CHARACTER_SET
from dcm_spark.dicom.vr import BULK_DATA, BULK_ELEMENT, element_spec, tag_name
from dcm_spark.errors import DcmSparkError

#: A ``_BulkData`` entry of a DICOMweb instance: a file's, and the BulkDataURI.
BULK_URI_ELEMENT = pa.struct([*BULK_ELEMENT, pa.field("URI", pa.string())])
BULK_URI_TYPE = pa.list_(BULK_URI_ELEMENT)

_BINARY_VRS = frozenset(("OB", "OD", "OF", "OL", "OV", "OW", "UN"))
_ITEM_SIZE = {"OB": 1, "UN": 1, "OW": 2, "OF": 4, "OL": 4, "OD": 8, "OV": 8}
_LONG = frozenset(vr.decode() for vr in LONG_VRS)
_SHORT_HEAD, _LONG_HEAD = struct.Struct("<HH2sH"), struct.Struct("<HH2s2xI")
_MARKER = struct.Struct("<HHI")  # items and delimiters: tag, 4-byte length
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQUENCE_END = (0xFFFE, 0xE000), (0xFFFE, 0xE00D), (0xFFFE, 0xE0DD)
UTF8 = "ISO_IR 192"
#: Character sets that are only code extensions, never a data set's default (value 1).
_EXTENSIONS_ONLY = frozenset(
    ("ISO 2022 IR 58", "ISO 2022 IR 87", "ISO 2022 IR 149", "ISO 2022 IR 159")
)
#: Preamble, "DICM" and a file meta of one element: the transfer syntax.
_PART10 = b"\0" * 128 + b"DICM" + _SHORT_HEAD.pack(2, 0x10, b"UI", 20) + b"1.2.840.10008.1.2.1\0"
_META_COLUMNS = ("TransferSyntaxUID",)


class MalformedMetadata(DcmSparkError, ValueError):
    """WADO-RS metadata that is not one data set of DICOM JSON."""


def to_header(
    ds: dict[str, Any],
    options: HeaderOptions | None = None,
    memo: ValueMemo | None = None,
    *,
    base_url: str = "",
) -> Header:
    """The row of one DICOM JSON data set (PS3.18 F.2), as `read_header` gives a file's.

    Raises
    ------
    MalformedMetadata
        If an element is not DICOM JSON (no VR, a value of the wrong kind).
    """
    writer = _Writer(base_url)
    writer.dataset(ds, top=True)
    header = read_header(io.BytesIO(writer.out), options, memo)
    values, types = header.values, header.types
    for name in _META_COLUMNS:
        values.pop(name, None)
        types.pop(name, None)
    charset = ds.get(f"{SPECIFIC_CHARACTER_SET:08X}")
    if charset is None:
        values.pop("SpecificCharacterSet", None)
        types.pop("SpecificCharacterSet", None)
    else:  # the stream said UTF-8; the row says what the server's JSON says
        values["SpecificCharacterSet"] = _charset_value(charset)
    if writer.nested_charsets:
        _restore_charsets(values, ds)
    if writer.bulk or BULK_DATA in values:
        _bulk_entries(values, types, writer.bulk)
    return header


def _charset_value(elem: Any) -> list[str]:
    """SpecificCharacterSet as the file holds it. A server may drop an empty value 1
    (Orthanc does: ``\\ISO 2022 IR 87`` becomes ``ISO 2022 IR 87``); a multi-byte code
    extension can never be value 1 (PS3.3 C.12.1.1.2), so the empty value is put back."""
    raw = elem.get("Value") if isinstance(elem, dict) else None
    values = [(v or "").strip() for v in raw] if isinstance(raw, list) else []
    if values and values[0] in _EXTENSIONS_ONLY:
        values.insert(0, "")
    return values


def _restore_charsets(values: dict[str, Any], ds: dict[str, Any]) -> None:
    """SpecificCharacterSet of the sequence items that have one, as the JSON says. The
    items are replaced, not changed: a converted sequence may be shared with other rows
    (`dcm_spark.dicom.reader.SeenSequences`)."""
    for key, elem in ds.items():
        items = elem.get("Value") if isinstance(elem, dict) and elem.get("vr") == "SQ" else None
        if not items:
            continue
        tag = int(key, 16)
        spec = element_spec(tag)
        name = spec.keyword if spec is not None else tag_name(tag)
        rows = values.get(name)
        if not isinstance(rows, list) or len(rows) != len(items):
            continue
        restored = []
        for row, item in zip(rows, items, strict=True):
            if isinstance(row, dict) and isinstance(item, dict):
                row = dict(row)
                if "SpecificCharacterSet" in row and f"{SPECIFIC_CHARACTER_SET:08X}" in item:
                    row["SpecificCharacterSet"] = _charset_value(item["00080005"])
                _restore_charsets(row, item)
            restored.append(row)
        values[name] = restored


def _bulk_entries(
    values: dict[str, Any], types: dict[str, pa.DataType], bulk: dict[int, tuple[Any, ...]]
) -> None:
    """``_BulkData`` entries with the server's VR, length and BulkDataURI (`_Writer.bulk`,
    by the value's offset in the stream), at every level; their types with ``URI``."""
    for name, value in values.items():
        if name == BULK_DATA:
            _fix_entries(value, bulk)
            types[name] = BULK_URI_TYPE
        elif type(value) is list and value and type(value[0]) is dict and _fix_items(value, bulk):
            types[name] = _with_uri(types[name])


def _fix_entries(entries: list[dict[str, Any]], bulk: dict[int, tuple[Any, ...]]) -> None:
    for entry in entries:
        vr, length, uri = bulk.get(entry["Offset"], (entry["VR"], entry["Length"], None))
        entry.update(VR=vr, Offset=None, Length=length, URI=uri)


def _fix_items(items: list[Any], bulk: dict[int, tuple[Any, ...]]) -> bool:
    """Fix the entries in sequence items, at any depth; whether there were any."""
    found = False
    for item in items:
        if type(item) is not dict:
            continue
        for name, value in item.items():
            if name == BULK_DATA:
                _fix_entries(value, bulk)
                found = True
            elif type(value) is list and value and type(value[0]) is dict:
                found = _fix_items(value, bulk) or found
    return found


def _with_uri(column_type: pa.DataType) -> pa.DataType:
    """``column_type`` with each ``_BulkData`` inside it of `BULK_URI_TYPE`."""
    if column_type == BULK_DATA_TYPE:
        return BULK_URI_TYPE
    if pa.types.is_list(column_type):
        return pa.list_(_with_uri(column_type.value_type))
    if pa.types.is_struct(column_type):
        return pa.struct([f.with_type(_with_uri(f.type)) for f in column_type])
    return column_type


class _Writer:
    """DICOM JSON -> a Part 10 stream: explicit VR little endian, all text UTF-8.

    Binary values are not written: each becomes an empty element whose offset keys
    ``bulk`` (VR, length if known, BulkDataURI), except a UN value given inline, which is
    written as it is, for the converter to read as it reads a file's.
    """

    def __init__(self, base_url: str) -> None:
        self.out = bytearray(_PART10)
        self.base_url = base_url
        self.bulk: dict[int, tuple[str, int | None, str | None]] = {}
        self.nested_charsets = False

    def dataset(self, ds: dict[str, Any], top: bool = False) -> None:
        if not isinstance(ds, dict):
            raise MalformedMetadata("a data set that is not a JSON object")
        try:
            elements = sorted((int(key, 16), elem) for key, elem in ds.items())
        except (ValueError, TypeError):
            raise MalformedMetadata("a key that is not a tag (8 hex digits)") from None
        charset = (SPECIFIC_CHARACTER_SET, {"vr": "CS", "Value": [UTF8]})
        if top:  # the text is UTF-8 here, whatever the instance's character set was
            elements = sorted([e for e in elements if e[0] != SPECIFIC_CHARACTER_SET] + [charset])
        elif any(tag == SPECIFIC_CHARACTER_SET for tag, _ in elements):
            self.nested_charsets = True
            elements = [charset if e[0] == SPECIFIC_CHARACTER_SET else e for e in elements]
        for tag, elem in elements:
            if tag >> 16 == 2:
                continue  # file meta: never part of a data set
            try:
                self.element(tag, elem)
            except (ValueError, TypeError, KeyError, AttributeError, struct.error):
                raise MalformedMetadata(
                    f"element ({tag >> 16:04X},{tag & 0xFFFF:04X}) is not DICOM JSON"
                ) from None

    def head(self, tag: int, vr: str, length: int) -> None:
        if vr in _LONG:
            self.out += _LONG_HEAD.pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)
        else:
            self.out += _SHORT_HEAD.pack(tag >> 16, tag & 0xFFFF, vr.encode(), length)

    def element(self, tag: int, elem: dict[str, Any]) -> None:
        vr = elem["vr"]
        values = elem.get("Value")
        if values is None:
            values = []
        elif not isinstance(values, list):
            raise TypeError("Value is not a list")
        if vr == "SQ":
            self.head(tag, "SQ", UNDEFINED)
            for item in values:
                self.out += _MARKER.pack(*ITEM, UNDEFINED)
                self.dataset(item or {})
                self.out += _MARKER.pack(*ITEM_END, 0)
            self.out += _MARKER.pack(*SEQUENCE_END, 0)
            return
        if vr in _BINARY_VRS:
            self.binary(tag, vr, elem, values)
            return
        number = BINARY_NUMBERS.get(vr)
        if number is not None:
            data = self.numbers(vr, number[0], values)
        else:
            data = "\\".join(map(_pn if vr == "PN" else _text, values)).encode("utf-8")
            if len(data) % 2:
                data += b"\0" if vr == "UI" else b" "
        if len(data) > 0xFFFE and vr not in _LONG:
            vr = "UN"  # too long for its VR's 2-byte length: the converter takes its VR
        self.head(tag, vr, len(data))
        self.out += data

    def numbers(self, vr: str, fmt: str, values: list[Any]) -> bytes:
        if vr == "AT":
            tags = [int(v, 16) for v in values if v is not None]
            return b"".join(struct.pack("<HH", t >> 16, t & 0xFFFF) for t in tags)
        if fmt in "fd":
            found = [float(v) for v in values if v is not None]
        else:
            found = [int(v) for v in values if v is not None]
        return struct.pack(f"<{len(found)}{fmt}", *found)

    def binary(self, tag: int, vr: str, elem: dict[str, Any], values: list[Any]) -> None:
        inline = elem.get("InlineBinary")
        if inline is not None and vr == "UN":  # read as the file's UN value would be
            data = base64.b64decode(inline)
            self.head(tag, "UN", len(data) + len(data) % 2)
            self.out += data + b"\0" * (len(data) % 2)
            return
        uri = elem.get("BulkDataURI")
        if uri is not None:
            length = None
            uri = urljoin(self.base_url, str(uri))
        elif inline is not None:
            length = len(base64.b64decode(inline))
        else:
            length = len(values) * _ITEM_SIZE[vr]
        self.head(tag, "OB", 0)  # OB, never UN: the converter must not look up its VR
        self.bulk[len(self.out)] = (vr, length, uri)


def _text(value: Any) -> str:
    """One value of a text VR: a string, a number (DS, IS) or null (empty)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError("a boolean value")
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value) if isinstance(value, float) else str(int(value))


def _pn(value: Any) -> str:
    """A person name object ({"Alphabetic": ..., "Ideographic": ..., "Phonetic": ...})."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    groups = [value.get(g) or "" for g in ("Alphabetic", "Ideographic", "Phonetic")]
    while groups and not groups[-1]:
        groups.pop()
    return "=".join(groups)
