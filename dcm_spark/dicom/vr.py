"""VR -> column type and VM -> mode: the Healthcare API's BigQuery-export rules, in one place.

The reference is IDC's ``dicom_all`` schema (``dcm_spark/idc/dicom_all.schema.json``):

===============================================  ==========================================
VR                                               column type
===============================================  ==========================================
AE AS CS DS IS LO LT SH ST UC UI UR UT            string
DA                                               date
TM                                               string ``HH:MM:SS[.ffffff]`` (see below)
DT                                               timestamp (UTC; the offset applied)
FL FD                                            double
AT SL SS UL US, "US or SS", SV                   bigint (AT as the tag's integer value)
UV                                               decimal(20,0)
PN                                               struct {Alphabetic, Ideographic, Phonetic}
SQ                                               array of struct
OB OD OF OL OV OW UN, "OB or OW", "US or OW"     no column; listed in ``_BulkData``
===============================================  ==========================================

TM is a string because Spark 4.2's TIME type can neither come out of ``mapInArrow``
(``UNSUPPORTED_ARROWTYPE Time(MICROSECOND, 64)``) nor be stored by Delta 4.4
(``UNSUPPORTED_DATA_TYPE_FOR_DATASOURCE ... TIME(6)``); both checked on 2026-11-25. The
string is zero-padded and its fraction has six digits when present, so it sorts and
compares like a time.

Mode comes from the dictionary's VM, never from the data: any VM other than "1" is an
array, even holding one value. (A VM-1 element that holds several values in a file is an
array in that file's row; `dcm_spark.schema` promotes the column.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

import pyarrow as pa
from pydicom.datadict import (
    DicomDictionary,
    RepeatersDictionary,
    mask_match,
    private_dictionary_VR,
)


class Kind(StrEnum):
    """How an element's bytes become a column value."""

    STRING = "string"  # ASCII-only VRs: AE AS CS DS IS UI
    TEXT = "text"  # charset-decoded, split on backslash: SH LO UC
    LONG_TEXT = "long_text"  # charset-decoded, never split: ST LT UT UR
    DATE = "date"
    TIME = "time"
    DATETIME = "datetime"
    INT = "int"
    FLOAT = "float"
    DECIMAL = "decimal"
    TAG = "tag"  # AT
    PERSON_NAME = "person_name"
    SEQUENCE = "sequence"
    BINARY = "binary"


VR_KIND: dict[str, Kind] = {
    **dict.fromkeys(("AE", "AS", "CS", "DS", "IS", "UI"), Kind.STRING),
    **dict.fromkeys(("SH", "LO", "UC"), Kind.TEXT),
    **dict.fromkeys(("ST", "LT", "UT", "UR"), Kind.LONG_TEXT),
    "DA": Kind.DATE,
    "TM": Kind.TIME,
    "DT": Kind.DATETIME,
    **dict.fromkeys(("SL", "SS", "UL", "US", "SV"), Kind.INT),
    "UV": Kind.DECIMAL,
    **dict.fromkeys(("FL", "FD"), Kind.FLOAT),
    "AT": Kind.TAG,
    "PN": Kind.PERSON_NAME,
    "SQ": Kind.SEQUENCE,
    **dict.fromkeys(("OB", "OD", "OF", "OL", "OV", "OW", "UN"), Kind.BINARY),
}

NAME_PARTS = ("FamilyName", "GivenName", "MiddleName", "NamePrefix", "NameSuffix")
NAME_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
_NAME_COMPONENT = pa.struct([(part, pa.string()) for part in NAME_PARTS])
PERSON_NAME = pa.struct([(group, _NAME_COMPONENT) for group in NAME_GROUPS])

KIND_TYPE: dict[Kind, pa.DataType] = {
    Kind.STRING: pa.string(),
    Kind.TEXT: pa.string(),
    Kind.LONG_TEXT: pa.string(),
    Kind.DATE: pa.date32(),
    Kind.TIME: pa.string(),
    Kind.DATETIME: pa.timestamp("us", tz="UTC"),
    Kind.INT: pa.int64(),
    Kind.FLOAT: pa.float64(),
    Kind.DECIMAL: pa.decimal128(20, 0),
    Kind.TAG: pa.int64(),
    Kind.PERSON_NAME: PERSON_NAME,
}

OTHER_ELEMENTS = "OtherElements"
OTHER_ELEMENT = pa.struct([("Tag", pa.string()), ("Data", pa.list_(pa.string()))])
BULK_DATA = "_BulkData"
BULK_ELEMENT = pa.struct(
    [("Tag", pa.string()), ("VR", pa.string()), ("Offset", pa.int64()), ("Length", pa.int64())]
)


def kind_of(vr: str) -> Kind:
    """The `Kind` of a VR as written in a file or in the dictionary ("US or SS" too)."""
    kind = VR_KIND.get(vr)
    if kind is not None:
        return kind
    choices = [VR_KIND.get(choice.strip()) for choice in vr.split(" or ")]
    # "OB or OW", "US or OW", "US or SS or OW": any binary choice makes the element binary.
    if Kind.BINARY in choices or None in choices:
        return Kind.BINARY
    return choices[0] or Kind.BINARY


def tag_name(tag: int) -> str:
    """``Tag_ggggeeee``, the name of an element without a keyword."""
    return f"Tag_{tag:08X}"


@dataclass(frozen=True, slots=True)
class ElementSpec:
    """What the dictionary says about a public tag, resolved to a column."""

    keyword: str
    vr: str
    kind: Kind
    multiple: bool  # dictionary VM other than "1"
    repeater: bool  # in a repeating group (60xx overlays, 50xx curves) or element range
    value_type: pa.DataType | None  # type of one value (None for binary and sequences)
    list_type: pa.DataType | None  # array of value_type
    memorable: bool  # its converted values are immutable and may be shared between rows


@lru_cache(maxsize=8192)
def element_spec(tag: int) -> ElementSpec | None:
    """Dictionary entry of a public tag, or None for private and unknown tags.

    Cached: it is a pure function of pydicom's dictionary and runs once per element.
    """
    group = tag >> 16
    if group & 1:
        return None
    entry = DicomDictionary.get(tag)
    repeater = False
    if entry is None:
        mask = mask_match(tag)
        if mask is not None:
            entry, repeater = RepeatersDictionary[mask], True
    if entry is None or not entry[4]:
        return None
    vr, vm, _name, _retired, keyword = entry
    kind = kind_of(vr)
    value_type = KIND_TYPE.get(kind)
    list_type = None if value_type is None else pa.list_(value_type)
    memorable = not repeater and value_type is not None and kind is not Kind.PERSON_NAME
    return ElementSpec(keyword, vr, kind, vm != "1", repeater, value_type, list_type, memorable)


def repeater_id(tag: int) -> str:
    """``Id`` of a repeating-group element: its group ("6002"), or its tag for the few
    elements that repeat within a group (0028,04x0)."""
    group = tag >> 16
    return f"{group:04X}" if group >> 8 in (0x50, 0x60) else f"{tag:08X}"


def repeater_type(value_type: pa.DataType) -> pa.DataType:
    """Column type of a repeating-group element (50xx, 60xx): array of struct {Id, Value}."""
    return pa.list_(pa.struct([("Id", pa.string()), ("Value", value_type)]))


def implicit_vr(tag: int, spec: ElementSpec | None, creators: dict[int, str]) -> str:
    """The VR of an element whose file gives none (implicit VR) or says UN."""
    if spec is not None:
        return spec.vr
    group, element = tag >> 16, tag & 0xFFFF
    if element == 0:
        return "UL"  # group length
    if group & 1:
        if 0x10 <= element <= 0xFF:
            return "LO"  # private creator
        creator = creators.get(group << 8 | element >> 8)
        if creator is not None:
            try:
                return str(private_dictionary_VR(tag, creator))
            except KeyError:
                pass
    return "UN"


def compatible(column: Kind, found: Kind) -> bool:
    """Whether a value of VR kind ``found`` can be read into a column of kind ``column``."""
    text = {Kind.STRING, Kind.TEXT, Kind.LONG_TEXT, Kind.DATE, Kind.TIME, Kind.DATETIME}
    numbers = {Kind.INT, Kind.FLOAT, Kind.DECIMAL, Kind.TAG}
    if column in text or column is Kind.PERSON_NAME:
        return found in text or found is Kind.PERSON_NAME
    return column in numbers and (found in numbers or found is Kind.STRING)
