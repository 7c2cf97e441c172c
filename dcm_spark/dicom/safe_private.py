"""PS3.15 Table E.3.10-1, the safe private attributes, and which of a data set's private
elements it keeps (Annex E's Retain Safe Private Option, `dcm_spark.dicom.deidentify`).

The table is ``safe_private.csv`` next to this module (its header names its source and
version): (group, element offset within the private block, private creator) -> VR. The
policy reads it when it is built, on the driver, and carries it pickled to the workers (the
cluster's zip of the library holds Python files only).

A private element stays when its key is in the table, its creator being the value of
(gggg,00xx) in the same data set (each sequence item has creators of its own), matched
exactly; the creator elements stay for the blocks that keep an element. A kept private
sequence keeps its items with the profile applied inside them; one held as text (DICOM JSON
deeper than ``max_depth``) goes, as nothing can look in. Values of kept elements are not
inspected, except that `dcm_spark.dicom.deidentify` replaces the UIDs of an element the
table says is UI, as it does public UIDs (kept with ``retain_uids``).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from functools import cache
from importlib.resources import files
from typing import Any

from dcm_spark.dicom.vr import BULK_DATA, OTHER_ELEMENTS

#: The key of a table row: (group, element offset in the block, private creator).
Key = tuple[int, int, str]
#: Private tags kept in some data sets -> their VR in the table ("" unknown, "LO" creators).
Kept = Mapping[int, str]
NO_SAFE: Kept = {}  # no safe private tag: read only, never changed


@cache
def table() -> dict[Key, str]:
    """Table E.3.10-1 from ``safe_private.csv``: key -> VR ("" where the list does not say)."""
    text = (files(__package__) / "safe_private.csv").read_text(encoding="utf-8")
    lines = (line for line in text.splitlines() if not line.startswith("#"))
    return {
        (int(row["group"], 16), int(row["element_offset"], 16), row["private_creator"]): row["vr"]
        for row in csv.DictReader(lines)
    }


def tag_of(name: Any) -> int:
    """The tag of a ``Tag_ggggeeee`` name; 0 (public, never kept) for anything else."""
    try:
        return int(name[4:], 16) if isinstance(name, str) and name.startswith("Tag_") else 0
    except ValueError:
        return 0


def kept_tags(rows: Iterable[Any], safe: Mapping[Key, str]) -> Kept:
    """The private tags of these data sets (rows: values of a `Header` or of its items) that
    ``safe`` lists, with their VR ("" unknown), and the creator elements (LO) of the blocks
    that keep one: ``Tag_`` columns (sequences), ``OtherElements`` and ``_BulkData`` entries."""
    if not safe:
        return NO_SAFE
    kept: dict[int, str] = {}
    for row in rows:
        if not isinstance(row, Mapping):
            continue
        creators: dict[int, str] = {}  # (group << 8 | block) -> private creator
        tags: list[int] = [tag_of(n) for n in row if n.startswith("Tag_")]
        for name in (OTHER_ELEMENTS, BULK_DATA):
            for entry in row.get(name) or ():
                tag = tag_of(entry.get("Tag") if isinstance(entry, Mapping) else None)
                tags.append(tag)
                data = entry.get("Data") if name == OTHER_ELEMENTS else None
                if tag >> 16 & 1 and 0x10 <= tag & 0xFFFF <= 0xFF and data:
                    creators[tag >> 16 << 8 | tag & 0xFF] = str(data[0])
        for tag in tags:
            group, element = tag >> 16, tag & 0xFFFF
            if not group & 1 or element < 0x1000:  # public, or not a private data element
                continue
            creator = creators.get(group << 8 | element >> 8)
            vr = None if creator is None else safe.get((group, element & 0xFF, creator))
            if vr is not None:
                # Items of one sequence may disagree: a VR said anywhere wins over "".
                kept[tag] = kept.get(tag) or vr
                kept[group << 16 | element >> 8] = "LO"
    return kept


def items_of(rows: Iterable[Any], name: str) -> list[Any]:
    """The items of sequence column ``name`` in these data sets, all together."""
    found: list[Any] = []
    for row in rows:
        value = row.get(name) if isinstance(row, Mapping) else None
        if isinstance(value, list):
            found += value
    return found


def holds_text_tree(entry: Mapping[str, Any], vr: str) -> bool:
    """Whether a kept ``OtherElements`` entry holds (or may hold) a subtree as text: a listed
    sequence, or a value that reads as DICOM JSON (deeper than ``max_depth``) or as the items
    of a sequence that failed to convert. Such an entry cannot be judged: it goes."""
    data = entry.get("Data") or ()
    return vr == "SQ" or any(isinstance(d, str) and d.lstrip()[:1] in ("{", "[") for d in data)


__all__ = ["NO_SAFE", "Key", "Kept", "holds_text_tree", "items_of", "kept_tags", "table", "tag_of"]
