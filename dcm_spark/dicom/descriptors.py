"""Annex E's device, institution and descriptor options: what each keeps of the Basic profile.

The columns come from PS3.15 Table E.1-1 (`dcm_spark.dicom._annex_e_options`, edition 2026d).

- Retain Device Identity (DCM 113109) and Retain Institution Identity (DCM 113112): the
  attributes marked K in their column are kept as they are, sequences with the profile applied
  inside their items. A C in the device column (AE titles, network IDs, Originator) is not a
  keep: those attributes get the Basic action, since an AE title cannot be cleaned.
- Clean Descriptors (DCM 113105): C is "replace with values of similar meaning known not to
  contain identifying information". No program can know that of free text, so the choice made
  here is narrow and stated: a short descriptor (VR LO, SH or CS, at most 64 characters: study
  and series descriptions, protocol names, labels, ROI names) keeps its value when every value
  passes `is_clean`: it holds no word of the instance's own identifying values (the values of
  every other attribute the profile acts on: names, IDs, dates, institution, physicians, ...,
  compared case-blind, words of two characters or more), no run of four digits or more, no
  date-like "d/m/y" group and no "@". Otherwise the attribute gets the Basic action (removed,
  emptied or a dummy). Narrative text (ST, LT, UT: comments, histories, impressions, notes),
  bytes (OB) and sequences (coded reasons, request attributes) always get the Basic action.
  A descriptor that names someone who appears nowhere else in the instance passes: the check
  catches the instance's own identifiers, not every name.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pydicom.datadict import dictionary_VR

from dcm_spark.dicom._annex_e_options import (
    CLEAN_DESCRIPTORS,
    RETAIN_DEVICE_IDENTITY,
    RETAIN_INSTITUTION_IDENTITY,
)


def code(value: str, meaning: str) -> dict[str, str]:
    """An item of DeidentificationMethodCodeSequence: a DCM code."""
    return {"CodeValue": value, "CodingSchemeDesignator": "DCM", "CodeMeaning": meaning}


DEVICE_CODE = code("113109", "Retain Device Identity Option")
INSTITUTION_CODE = code("113112", "Retain Institution Identity Option")
DESCRIPTORS_CODE = code("113105", "Clean Descriptors Option")
#: Option (a `Policy` field) -> its code in DeidentificationMethodCodeSequence.
CODES = {
    "retain_device_identity": DEVICE_CODE,
    "retain_institution_identity": INSTITUTION_CODE,
    "clean_descriptors": DESCRIPTORS_CODE,
}
DEVICE = frozenset(k for k, a in RETAIN_DEVICE_IDENTITY.items() if a == "K")
INSTITUTION = frozenset(k for k, a in RETAIN_INSTITUTION_IDENTITY.items() if a == "K")
#: Descriptors whose value `is_clean` may keep: short text only.
CLEANABLE = frozenset(
    k for k, a in CLEAN_DESCRIPTORS.items() if a == "C" and dictionary_VR(k) in ("LO", "SH", "CS")
)
_WORD = re.compile(r"[^\W_]{2,}")
_UNCLEAN = re.compile(r"\d{4}|\d{1,4}\s*[./-]\s*\d{1,2}\s*[./-]\s*\d{1,4}|@")


def retained(device: bool, institution: bool) -> frozenset[str]:
    """The keywords kept as they are with the retain options asked for."""
    return (DEVICE if device else frozenset()) | (INSTITUTION if institution else frozenset())


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, datetime.date | datetime.time):
        yield value.isoformat()
    elif isinstance(value, int | float):
        yield str(value)
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _strings(v)


def identifying_words(values: Mapping[str, Any], acted_on: frozenset[str]) -> frozenset[str]:
    """The words (case-folded) of a data set's values of ``acted_on`` attributes, except the
    cleanable descriptors themselves, at every depth of their sequences."""
    return frozenset(
        word
        for name, value in values.items()
        if name in acted_on and name not in CLEANABLE
        for text in _strings(value)
        for word in _WORD.findall(text.casefold())
    )


def is_clean(value: Any, words: frozenset[str]) -> bool:
    """Whether a descriptor's value (a string or an array of them) may stay: see the module
    docstring. Null and empty values are clean; a value of any other type is not."""
    if value is None or value == "":
        return True
    if isinstance(value, list):
        return all(is_clean(v, words) for v in value)
    if not isinstance(value, str) or len(value) > 64 or _UNCLEAN.search(value):
        return False
    return words.isdisjoint(_WORD.findall(value.casefold()))
