"""De-identify header rows: the PS3.15 Annex E Basic Profile, and columns left out on demand.

Pure Python, no Spark: `apply` runs once per `Header`, on the workers. The Basic Application
Level Confidentiality Profile (`dcm_spark.dicom._annex_e`) applies by keyword at every depth:

- X removes the column (from ``values`` and ``types``); Z keeps it, null (zero-length);
- D puts a dummy of the column's type: "ANONYMIZED" for text, 1900-01-01 for dates,
  "00:00:00" for times, 0 for numbers, a PN of family name "ANONYMIZED", a sequence of one
  empty item; C (clean) is done as D; a null value stays null;
- U replaces each UID with "2.25." + the decimal of the first 16 bytes of
  HMAC-SHA256(key, "UID\\0" + UID): a valid UID of 44 characters at most, the same in every
  file that shares the key, so references between instances still join;
- combined codes take the action valid whatever the attribute's Type in the IOD, which a row
  does not know: X/Z -> Z, X/D -> D, Z/D -> D, X/Z/D -> D, X/Z/U* -> U (the sequence stays,
  the UIDs in its items are replaced); D on a UI attribute gives a hashed UID.

Identifiers that link records (`HASHED_IDS`: PatientID, AccessionNumber, StudyID, ...) become
the first 16 hex digits of HMAC-SHA256(key, keyword + "\\0" + value) rather than null or a
dummy, so a patient's rows still group. Without ``hash_key`` the Basic profile draws a random
key (``os.urandom``) when the `Policy` is built: it is pickled with the policy to the workers,
so one run is consistent, but joins across runs break; pass the same key to every run for
stable pseudonyms, and keep it secret (with it, a known UID or ID can be matched).

Private attributes (odd groups) are removed at every depth: ``OtherElements`` entries,
``Tag_ggggeeee`` sequence columns, ``_BulkData`` entries (but see ``retain_safe_private``).
Not implemented: Table E.1-1's patient characteristics, structured content and graphics
options, and burned-in text in pixel data. What the row cannot show safely goes too:
``OtherElements`` entries of profile attributes (values that did not parse), of unknown
public tags and of subtrees kept as DICOM JSON text (deeper than ``max_depth``); ``Tag_``
columns of unknown public sequences; ``_BulkData`` entries of profile attributes; the file
meta elements that name the sending site (AE titles, presentation addresses, private
information). The top level gets PatientIdentityRemoved "YES", DeidentificationMethod and
DeidentificationMethodCodeSequence (DCM 113100), as E.1.1 asks.

``exclude`` removes columns at every depth, by keyword or tag, with either profile.

``retain_longitudinal`` (Annex E's Retain Longitudinal Temporal Information with Modified
Dates Option, combined with Basic): every date (DA) and date-time (DT) the profile would
empty or replace is shifted back by a whole number of days instead (1 to 3650), the same
for every instance of a patient: HMAC-SHA256(key, "DATE\0" + the original PatientID), so
intervals within a patient are exact and two patients' shifts differ. Times are kept,
PatientAge is kept, PatientBirthDate is still removed. It needs the caller's key (a random
one would shift differently in every run); LongitudinalTemporalInformationModified says
"MODIFIED" and the method code sequence gets DCM 113107.

``retain_uids`` (Retain UIDs Option): UIDs are kept as they are (DCM 113110), so the table
joins with the original data; everything else as the profile says.

``retain_safe_private`` (Retain Safe Private Option, DCM 113111): the private elements that
PS3.15 Table E.3.10-1 lists as safe for their block's creator stay, the rest goes; values are
not inspected, but UIDs the table says are UI are replaced (`dcm_spark.dicom.safe_private`).

``retain_device_identity``, ``retain_institution_identity``, ``clean_descriptors``: Table
E.1-1's options of those names, as `dcm_spark.dicom.descriptors` says.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any

import pyarrow as pa
from pydicom.datadict import DicomDictionary, RepeatersDictionary, keyword_for_tag

from dcm_spark import schema
from dcm_spark.dicom import descriptors, safe_private
from dcm_spark.dicom._annex_e import BASIC_PROFILE
from dcm_spark.dicom.header import Header
from dcm_spark.dicom.safe_private import NO_SAFE, Kept, kept_tags, tag_of
from dcm_spark.dicom.vr import BULK_DATA, OTHER_ELEMENTS, Kind, element_spec

DUMMY = "ANONYMIZED"
# LO holds 64 characters at most: a longer method text would not fit a DICOM file.
METHOD = "DICOM PS3.15 Annex E Basic Profile (dcm-spark)"


METHOD_CODE = descriptors.code("113100", "Basic Application Confidentiality Profile")
UIDS_CODE = descriptors.code("113110", "Retain UIDs Option")
SAFE_PRIVATE_CODE = descriptors.code("113111", "Retain Safe Private Option")
_LONGITUDINAL = "Retain Longitudinal Temporal Information Modified Dates Option"
LONGITUDINAL_CODE = descriptors.code("113107", _LONGITUDINAL)
#: Kept with ``retain_longitudinal`` (ages), and not shifted by it (a birth date).
_AGES = frozenset({"PatientAge"})
_UNSHIFTED = frozenset({"PatientBirthDate"})
# Identifiers that link a patient's, a study's, a trial's or a specimen's records.
# fmt: off
HASHED_IDS = frozenset((
    "PatientID", "AccessionNumber", "StudyID", "ClinicalTrialProtocolID", "ClinicalTrialSiteID",
    "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID", "ClinicalTrialTimePointID",
    "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest",
    "ContainerIdentifier", "SpecimenIdentifier",
))
# fmt: on

_COMBINED = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U", "C": "D"}
_REPEATERS: dict[str, tuple[int, str]] = {  # keyword -> (tag with xx as 00, VR)
    e[4]: (int(mask.replace("x", "0"), 16), e[0]) for mask, e in RepeatersDictionary.items()
}
_KEYWORDS: dict[str, tuple[int, str]] = {
    e[4]: (tag, e[0]) for tag, e in DicomDictionary.items() if e[4]
} | _REPEATERS
_SEQUENCES = frozenset(k for k, (_, vr) in _KEYWORDS.items() if vr == "SQ")
_VR = {k: _KEYWORDS[k][1] for k in BASIC_PROFILE}
# The file meta group (0002) is no part of Table E.1-1, since a de-identifier writes a new
# one; the row keeps the file's, so what names the sending site or system goes here.
_FILE_META = dict.fromkeys(
    [f"{role}ApplicationEntityTitle" for role in ("Source", "Sending", "Receiving")]
    + [f"{role}PresentationAddress" for role in ("Source", "Sending", "Receiving")]
    + ["PrivateInformationCreatorUID", "PrivateInformation", "RTVSourceIdentifier"],
    "X",
) | {"RTVCommunicationSOPInstanceUID": "U"}
_VR |= {k: _KEYWORDS[k][1] for k in _FILE_META}
_ACTIONS = {
    k: "U" if _VR[k] == "UI" and a == "D" else _COMBINED.get(a, a)
    for k, a in (BASIC_PROFILE | _FILE_META).items()
}
_REMOVED = frozenset(k for k, a in _ACTIONS.items() if a == "X")
_ACTED_ON = frozenset(k for k, a in _ACTIONS.items() if a != "K")
_OPTIONS = {"retain_uids": UIDS_CODE, "retain_safe_private": SAFE_PRIVATE_CODE} | descriptors.CODES
_TEXT_DUMMIES = {"TM": "00:00:00", "DA": "19000101", "DT": "19000101000000", "AS": "000Y"}
_TEXT_DUMMIES |= {"DS": "0", "IS": "0"}
_TAG_TEXT = re.compile(r"(?:Tag_)?([0-9A-Fa-f]{8})|\(([0-9A-Fa-f]{4}),\s*([0-9A-Fa-f]{4})\)")


class Profile(StrEnum):
    """Which confidentiality profile `apply` enforces."""

    NONE = "none"  # only ``exclude``
    BASIC = "basic"  # PS3.15 Annex E Basic Application Level Confidentiality Profile


@dataclass(frozen=True)
class Policy:
    """What `apply` removes or replaces; built once on the driver, pickled to the workers.

    Parameters
    ----------
    exclude
        Columns removed at every depth, with their ``OtherElements`` and ``_BulkData``
        entries: keywords ("PatientName") or tags ("00100010", "(0010,0010)",
        "Tag_00100010"). Normalised to keywords, or ``Tag_ggggeeee`` for tags without one
        (private); a repeating-group tag (60xx) names its whole keyword column.
    profile
        `Profile` or its value ("none", "basic").
    hash_key
        HMAC key (16 bytes or more) for UIDs and `HASHED_IDS`; Basic profile only. None
        with the Basic profile draws a random key per `Policy` (see the module docstring).

    Raises
    ------
    ValueError
        For an exclude entry that is neither a known keyword nor a tag (the message names
        it), an unknown profile, a key that is short or not bytes, or a key without the
        Basic profile.
    TypeError
        For ``exclude`` given as one string rather than a set of them.
    """

    exclude: frozenset[str] = frozenset()
    profile: Profile = Profile.NONE
    hash_key: bytes | None = field(default=None, repr=False)  # a secret: never in logs
    retain_longitudinal: bool = False
    retain_uids: bool = False
    retain_safe_private: bool = False
    retain_device_identity: bool = False
    retain_institution_identity: bool = False
    clean_descriptors: bool = False
    _tags: frozenset[int] = field(init=False, repr=False, compare=False)
    _json_keys: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _drop: frozenset[str] = field(init=False, repr=False, compare=False)
    _kept: frozenset[str] = field(init=False, repr=False, compare=False)  # retain options' K
    # Table E.3.10-1 with ``retain_safe_private``: read on the driver, pickled to the workers
    _safe: Mapping[safe_private.Key, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        put = object.__setattr__  # frozen: derived fields are set once, here
        if isinstance(self.exclude, str):
            raise TypeError("exclude must be a set of names, not one string")
        put(self, "profile", Profile(self.profile))
        names, tags = set(), set()
        for entry in self.exclude:
            name, tag = _normalise(entry)
            names.add(name)
            if tag is not None:
                tags.add(tag)
        put(self, "exclude", frozenset(names))
        put(self, "_tags", frozenset(tags))
        put(self, "_json_keys", tuple(f'"{t:08X}"' for t in sorted(tags)))  # DICOM JSON keys
        basic = self.profile is Profile.BASIC
        kept = descriptors.retained(self.retain_device_identity, self.retain_institution_identity)
        put(self, "_kept", kept)
        removed = _REMOVED - _AGES if self.retain_longitudinal else _REMOVED
        removed -= kept | (descriptors.CLEANABLE if self.clean_descriptors else frozenset())
        put(self, "_drop", self.exclude | removed if basic else self.exclude)
        if self.hash_key is not None and not basic:
            raise ValueError("hash_key applies to the basic profile only")
        for option in _OPTIONS:
            if getattr(self, option) and not basic:
                raise ValueError(f"{option} is an option of the basic profile")
        put(self, "_safe", safe_private.table() if self.retain_safe_private else {})
        if self.retain_longitudinal and (not basic or self.hash_key is None):
            raise ValueError(
                "retain_longitudinal needs the basic profile and a hash_key: a random key "
                "would shift dates differently in every run"
            )
        if basic and self.hash_key is None:
            put(self, "hash_key", os.urandom(32))
        if self.hash_key is not None and (
            not isinstance(self.hash_key, bytes) or len(self.hash_key) < 16
        ):
            raise ValueError("hash_key must be bytes, at least 16 bytes long")

    def hash_uid(self, uid: str) -> str:
        """The UID that replaces ``uid`` (action U)."""
        digest = hmac.new(self.hash_key or b"", b"UID\0" + uid.encode(), hashlib.sha256)
        return "2.25." + str(int.from_bytes(digest.digest()[:16], "big"))

    def hash_id(self, keyword: str, text: str) -> str:
        """The 16 hex digits that replace ``text`` in an identifier of `HASHED_IDS`.

        The keyword is hashed too: equal values of different identifiers (a StudyID that
        repeats the PatientID) must not show as equal pseudonyms.
        """
        message = keyword.encode() + b"\0" + text.encode()
        return hmac.new(self.hash_key or b"", message, hashlib.sha256).hexdigest()[:16]

    def date_shift(self, patient_id: str) -> datetime.timedelta:
        """How far back a patient's dates go (``retain_longitudinal``): whole days."""
        digest = hmac.new(self.hash_key or b"", b"DATE\0" + patient_id.encode(), hashlib.sha256)
        return datetime.timedelta(days=1 + int.from_bytes(digest.digest()[:4], "big") % 3650)


def _normalise(entry: str) -> tuple[str, int | None]:
    """(column name, tag) of one exclude entry; the tag is masked for repeating groups."""
    if entry in (OTHER_ELEMENTS, BULK_DATA):
        return entry, None
    known = _KEYWORDS.get(entry)
    if known is not None:
        return entry, known[0]
    match = _TAG_TEXT.fullmatch(entry.strip()) if isinstance(entry, str) else None
    if match is None:
        raise ValueError(
            f"exclude: {entry!r} is neither a DICOM keyword nor a tag "
            "(ggggeeee, (gggg,eeee) or Tag_ggggeeee)"
        )
    tag = int(match[1] or match[2] + match[3], 16)
    keyword = "" if tag >> 16 & 1 else keyword_for_tag(tag)
    if keyword in _REPEATERS:
        return keyword, _REPEATERS[keyword][0]
    return keyword or f"Tag_{tag:08X}", tag


def apply(header: Header, policy: Policy) -> Header:
    """A new `Header` with ``policy`` applied at every depth; ``header`` is not changed.

    ``types`` follows ``values``: removed columns leave both, replaced values keep their
    column's type, nested struct types lose the removed fields. Values that are kept are
    shared with ``header``, not copied.
    """
    if policy.profile is Profile.NONE and not policy.exclude:
        return Header(dict(header.values), dict(header.types))
    shift = None
    if policy.retain_longitudinal:
        patient = header.values.get("PatientID")
        shift = policy.date_shift(patient if isinstance(patient, str) else "")
    clean = policy.clean_descriptors  # the instance's identifying words, to clean with
    words = descriptors.identifying_words(header.values, _ACTED_ON) if clean else None
    values = _values(header.values, header.types, policy, shift, words)
    types = _types(header.types, policy, [header.values])
    for name in (OTHER_ELEMENTS, BULK_DATA):  # emptied here: gone, as `read_header` does
        if name in values and not values[name]:
            del values[name], types[name]
    if policy.profile is Profile.BASIC:
        _mark(values, types, shift is not None, policy)
    return Header(values, types)


def _dropped(name: str, column_type: pa.DataType, policy: Policy, kept: Kept = NO_SAFE) -> bool:
    if name in policy._drop:
        return True
    if policy.profile is Profile.NONE:
        return False
    # Private sequences (unless ``kept`` as safe), and unknown public ones whose content the
    # profile cannot judge; a sequence whose type conflicted across items holds JSON text.
    if name.startswith("Tag_"):
        return tag_of(name) not in kept
    return name in _SEQUENCES and not pa.types.is_list(column_type)


def _is_items(name: str, column_type: pa.DataType) -> bool:
    """A sequence column (array of items), not a PN array nor a repeating-group column."""
    return (
        (name in _SEQUENCES or name.startswith("Tag_"))
        and pa.types.is_list(column_type)
        and (pa.types.is_struct(column_type.value_type) or pa.types.is_null(column_type.value_type))
    )


def _fields(item_type: pa.DataType) -> dict[str, pa.DataType]:
    return {f.name: f.type for f in item_type} if pa.types.is_struct(item_type) else {}


def _types(
    types: Mapping[str, pa.DataType], policy: Policy, rows: Sequence[Any] = ()
) -> dict[str, pa.DataType]:
    """``rows``: the data sets of ``types``; with ``retain_safe_private``, their safe tags."""
    rows = rows if policy._safe else ()
    kept = kept_tags(rows, policy._safe)
    out: dict[str, pa.DataType] = {}
    for name, column_type in types.items():
        if _dropped(name, column_type, policy, kept):
            continue
        if _is_items(name, column_type):
            column_type = _item_types(column_type, policy, safe_private.items_of(rows, name))
        out[name] = column_type
    return out


def _item_types(column_type: pa.DataType, policy: Policy, items: Sequence[Any] = ()) -> pa.DataType:
    """A sequence column's type without the removed fields, at every depth."""
    kept = _types(_fields(column_type.value_type), policy, items)
    # An item without fields is null, as in `read_header`: Parquet has no empty struct.
    return pa.list_(pa.struct(list(kept.items())) if kept else pa.null())


def _values(
    values: Mapping[str, Any],
    types: Mapping[str, pa.DataType],
    policy: Policy,
    shift: datetime.timedelta | None = None,
    words: frozenset[str] | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    basic = policy.profile is Profile.BASIC
    safe = kept_tags([values], policy._safe)
    for name, value in values.items():
        column_type = types.get(name, pa.null())
        if _dropped(name, column_type, policy, safe):
            continue
        if name in (OTHER_ELEMENTS, BULK_DATA):
            text = name == OTHER_ELEMENTS
            kept = [e for e in value or () if _keep_entry(e, text, policy, safe)]
            out[name] = [_safe_uids(e, safe, policy) if text else e for e in kept] or None
            continue
        action = _ACTIONS.get(name) if basic else None
        if shift is not None and name in _AGES:
            action = "K"  # ages are kept with the longitudinal option
        if name in policy._kept:
            action = "K"
        elif words is not None and name in descriptors.CLEANABLE:
            if descriptors.is_clean(value, words):
                action = "K"
            elif action == "X":  # not in ``_drop``: its column stays, null
                action = "Z"
        if _is_items(name, column_type):
            if action == "Z":
                value = None
            elif action == "D":  # one empty item: the subtree could hold anything
                value = _dummy("SQ", _item_types(column_type, policy)) if value else value
            elif value is not None:
                fields = _fields(column_type.value_type)
                # No field left: items are null, as their type (see `_item_types`).
                inner = kept_tags(value, policy._safe)
                empty = all(_dropped(n, t, policy, inner) for n, t in fields.items())
                value = [
                    None if i is None or empty else _values(i, fields, policy, shift, words)
                    for i in value
                ]
        elif action is None or action == "K":
            pass
        elif shift is not None and _VR[name] in ("DA", "DT") and name not in _UNSHIFTED:
            value = _shifted(value, shift)
        elif action == "U":
            value = value if policy.retain_uids else _map(value, policy.hash_uid)
        elif name in HASHED_IDS:
            value = _map(value, partial(policy.hash_id, name))
        elif action == "Z":
            value = None
        elif value is not None and value != "" and value != []:
            value = _dummy(_VR[name], column_type)
        out[name] = value
    return out


def _keep_entry(entry: Mapping[str, Any], text: bool, policy: Policy, safe: Kept = NO_SAFE) -> bool:
    """Whether an ``OtherElements`` (``text``) or ``_BulkData`` entry stays."""
    try:
        tag = int(entry["Tag"][4:], 16)  # "Tag_ggggeeee"
    except (TypeError, ValueError, KeyError):
        return policy.profile is Profile.NONE
    masked = tag & 0xFF00FFFF if tag >> 24 in (0x50, 0x60) else tag
    if tag in policy._tags or masked in policy._tags:
        return False
    if text and policy._json_keys:  # a subtree kept as DICOM JSON text names its tags
        data = "".join(entry.get("Data") or ())
        if any(key in data for key in policy._json_keys):
            return False
    if policy.profile is Profile.NONE:
        return True
    if tag in safe:  # listed safe for its creator; a subtree as text still goes
        return not (text and safe_private.holds_text_tree(entry, safe[tag]))
    spec = element_spec(tag)
    if spec is None:  # private (odd group), or public but unknown to the dictionary
        return False
    if text and spec.kind is Kind.SEQUENCE:  # DICOM JSON text: the profile cannot look in
        return False
    return _ACTIONS.get(spec.keyword, "K") == "K" or spec.keyword in policy._kept


def _safe_uids(entry: Mapping[str, Any], safe: Kept, policy: Policy) -> Mapping[str, Any]:
    """A kept ``OtherElements`` entry, its UIDs replaced if the safe list says UI (action U)."""
    if policy.retain_uids or safe.get(tag_of(entry.get("Tag"))) != "UI":
        return entry
    data = entry.get("Data")
    return {**entry, "Data": _map(data, policy.hash_uid) if isinstance(data, list) else None}


def _map(value: Any, replace: Callable[[str], str]) -> Any:
    """``replace`` each string of a value or array; anything else cannot be vouched for."""
    if isinstance(value, str):
        return replace(value) if value else value
    if isinstance(value, list):
        return [_map(v, replace) for v in value]
    return None


def _shifted(value: Any, shift: datetime.timedelta) -> Any:
    """A date or date-time (or an array of them) ``shift`` earlier; text (a value that did
    not parse) cannot be shifted: null."""
    if isinstance(value, list):
        return [_shifted(v, shift) for v in value]
    if isinstance(value, datetime.date):  # a datetime is a date too
        return value - shift
    return None


def _dummy(vr: str, column_type: pa.DataType) -> Any:
    """A non-empty value of ``column_type`` that says nothing (action D)."""
    if pa.types.is_list(column_type):
        return [_dummy(vr, column_type.value_type)]
    if pa.types.is_struct(column_type):  # a person name, or a sequence item
        has_name = column_type.get_field_index("Alphabetic") >= 0
        return {"Alphabetic": {"FamilyName": DUMMY}} if has_name else {}
    if pa.types.is_string(column_type):
        return _TEXT_DUMMIES.get(vr, DUMMY)
    if pa.types.is_date(column_type):
        return datetime.date(1900, 1, 1)
    if pa.types.is_timestamp(column_type):
        return datetime.datetime(1900, 1, 1, tzinfo=datetime.UTC)
    if pa.types.is_integer(column_type):
        return 0
    if pa.types.is_floating(column_type):
        return 0.0
    if pa.types.is_decimal(column_type):
        return Decimal(0)
    return None


def _mark(
    values: dict[str, Any], types: dict[str, pa.DataType], longitudinal: bool, policy: Policy
) -> None:
    """Add the attributes that PS3.15 E.1.1 requires of a de-identified instance."""
    if longitudinal:
        values["LongitudinalTemporalInformationModified"] = "MODIFIED"
        types["LongitudinalTemporalInformationModified"] = pa.string()
    values["PatientIdentityRemoved"], types["PatientIdentityRemoved"] = "YES", pa.string()
    old = values.get("DeidentificationMethod")
    methods = [m for m in old if isinstance(m, str)] if isinstance(old, list) else []
    values["DeidentificationMethod"] = methods if METHOD in methods else [*methods, METHOD]
    types["DeidentificationMethod"] = pa.list_(pa.string())
    options = [LONGITUDINAL_CODE] if longitudinal else []
    options += [code for option, code in _OPTIONS.items() if getattr(policy, option)]
    for code in [METHOD_CODE, *options]:
        _add_code(values, types, code)


def _add_code(values: dict[str, Any], types: dict[str, pa.DataType], code: dict[str, str]) -> None:
    name = "DeidentificationMethodCodeSequence"
    item_type = pa.struct([(k, pa.string()) for k in code])
    codes = values.get(name)
    if not isinstance(codes, list) or not pa.types.is_list(types.get(name, pa.null())):
        values[name], types[name] = [dict(code)], pa.list_(item_type)
    elif not any(isinstance(c, dict) and c.get("CodeValue") == code["CodeValue"] for c in codes):
        merged = schema.join(types[name], pa.list_(item_type))
        values[name] = schema.conform(codes, types[name], merged) + [
            schema.conform(dict(code), item_type, merged.value_type)
        ]
        types[name] = merged


__all__ = ["DUMMY", "HASHED_IDS", "METHOD", "Policy", "Profile", "apply"]
