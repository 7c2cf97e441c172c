"""DICOM values as their columns' types: text of DA, TM, DT, PN, IS and DS parsed, binary
numbers unpacked (PS3.5 6.2). Pure Python; the converter (`dcm_spark.dicom.header`) calls
`typed` for every value it does not take as read."""

from __future__ import annotations

import datetime
import re
import struct
import warnings
from decimal import Decimal
from typing import Any

from pydicom.charset import convert_encodings, decode_bytes
from pydicom.multival import MultiValue
from pydicom.values import convert_PN

from dcm_spark.dicom.reader import Dataset
from dcm_spark.dicom.vr import NAME_GROUPS, NAME_PARTS, Kind

SPECIFIC_CHARACTER_SET = 0x00080005
TEXT_KINDS = frozenset({Kind.STRING, Kind.TEXT, Kind.LONG_TEXT})
# Column kinds whose values need converting from the element's text or numbers; the others
# (strings, binary numbers) are used as read, except IS and DS, which are validated.
CONVERTED_KINDS = frozenset({Kind.DATE, Kind.TIME, Kind.DATETIME, Kind.PERSON_NAME, Kind.DECIMAL})
VALIDATED = frozenset({"IS", "DS"})


TEXT_DELIMITERS = {0x0D, 0x0A, 0x09, 0x0C}  # reset ISO 2022 escapes (PS3.5 6.1.2.5.3)


def texts(data: bytes, kind: Kind, enc: list[str]) -> list[str]:
    """The values of a text VR's bytes, decoded by the character sets ``enc`` (pydicom's
    names), split at backslashes (but not LT, ST, UT and UR) and stripped of padding."""
    if data.isascii() and b"\x1b" not in data:
        text = data.decode("ascii")
    elif kind is Kind.PERSON_NAME:
        decoded: Any = convert_PN(data, enc)
        names = decoded if isinstance(decoded, MultiValue) else [decoded]
        text = "\\".join("=".join(n.components) for n in names)
    else:
        text = decode_bytes(data, enc, TEXT_DELIMITERS)
    if kind is Kind.LONG_TEXT:
        text = text.rstrip("\x00 ")
        return [text] if text else []
    values = [v.strip("\x00 ") for v in text.split("\\")]
    return [] if values == [""] else values


def empty(kind: Kind) -> Any:
    """An empty value among several: "" in a text column, null otherwise."""
    return "" if kind in TEXT_KINDS else None


# VR -> (struct format of one number, its size): binary numbers, decoded in one unpack
BINARY_NUMBERS = {
    vr: (fmt, struct.calcsize(fmt))
    for vr, fmt in (
        ("US", "H"), ("SS", "h"), ("UL", "I"), ("SL", "i"), ("SV", "q"), ("UV", "Q"),
        ("AT", "H"), ("FL", "f"), ("FD", "d"),
    )
}  # fmt: skip
_IS = re.compile(r"[+-]?\d+")
_DS = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_DT = re.compile(r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?")
_TM = re.compile(r"(\d{2})(?::?(\d{2})(?::?(\d{2})(?:\.(\d{1,6}))?)?)?")


def parse_date(text: str) -> datetime.date:
    digits = text.replace(".", "") if len(text) == 10 else text  # ACR-NEMA "YYYY.MM.DD"
    if len(digits) != 8 or not digits.isdigit():
        raise ValueError
    return datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))


def parse_time(text: str) -> str:
    match = _TM.fullmatch(text)
    if not match:
        raise ValueError
    hh, mm, ss, frac = match.groups()
    if int(hh) > 23 or int(mm or 0) > 59 or int(ss or 0) > 60:
        raise ValueError
    out = f"{hh}:{mm or '00'}:{ss or '00'}"
    return f"{out}.{frac.ljust(6, '0')}" if frac else out


def parse_datetime(text: str) -> datetime.datetime:
    match = _DT.fullmatch(text)
    if not match:
        raise ValueError
    year, month, day, hour, minute, second, frac, offset = match.groups()
    tz = datetime.UTC
    if offset:
        delta = datetime.timedelta(hours=int(offset[1:3]), minutes=int(offset[3:]))
        tz = datetime.timezone(delta if offset[0] == "+" else -delta)
    value = datetime.datetime(
        int(year),
        int(month or 1),
        int(day or 1),
        int(hour or 0),
        int(minute or 0),
        min(int(second or 0), 59),  # a leap second keeps its minute
        int(frac.ljust(6, "0")) if frac else 0,
        tzinfo=tz,
    )
    return value.astimezone(datetime.UTC)


def person_name(text: str) -> dict[str, Any]:
    groups = text.split("=")
    row: dict[str, Any] = {}
    for name, group in zip(NAME_GROUPS, groups, strict=False):
        if group:
            parts = group.split("^")
            row[name] = {p: (v or None) for p, v in zip(NAME_PARTS, parts, strict=False)}
    return row


def typed(kind: Kind, vr: str, value: Any) -> Any:
    """One value (text, or a number for binary VRs) in its column's type."""
    if kind is Kind.STRING or kind is Kind.TEXT or kind is Kind.LONG_TEXT:
        if vr == "IS" and not _IS.fullmatch(value):
            raise ValueError
        if vr == "DS" and not _DS.fullmatch(value):
            raise ValueError
        return value
    if kind is Kind.DATE:
        return parse_date(value)
    if kind is Kind.TIME:
        return parse_time(value)
    if kind is Kind.DATETIME:
        return parse_datetime(value)
    if kind is Kind.PERSON_NAME:
        return person_name(value)
    if kind is Kind.INT or kind is Kind.TAG:
        return int(value)
    if kind is Kind.FLOAT:
        return float(value)
    if kind is Kind.DECIMAL:
        return Decimal(int(value))
    raise ValueError(kind)


def encodings(ds: Dataset, default: list[str]) -> list[str]:
    """Python codecs for a data set's SpecificCharacterSet; unknown or garbled names fall
    back to ``default`` (the values then decode with replacement characters)."""
    raw = ds[SPECIFIC_CHARACTER_SET].value
    names: list[str] = []
    if isinstance(raw, bytes):
        names = [v.strip(" \x00") for v in raw.decode("ascii", "replace").split("\\")]
        names = [n for n in names if n.isprintable()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return list(convert_encodings(names or default))
        except (ValueError, LookupError, TypeError):
            return list(default)
