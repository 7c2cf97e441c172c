"""The `dicom_all` layout: every column and nested field an IDC user may name, as one Arrow
schema, built from three maintained sources.

1. IDC's own ``dicom_all`` BigQuery schema (``dicom_all.schema.json``, see the README
   beside it): its columns, in its order, typed as it types them (TIME excepted: a TM is a
   string here, as in the table, see `dcm_spark.dicom.vr`).
2. Every public keyword of pydicom's dictionary at the top level, typed by VR and moded by
   VM as the table's own rules say (`dcm_spark.dicom.vr.element_spec`); binary elements
   have no column, as in the table.
3. Inside sequences: what the IDC schema nests, plus what the DICOM standard's modules put in
   each sequence, from highdicom's copy of the standard's module attribute tables (each
   attribute with its path of sequences: a tree, so recursive sequences stay finite).

pyarrow, pydicom and highdicom only; `dcm_spark.idc.view` lays a table out in it.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pyarrow as pa
from pydicom.datadict import DicomDictionary, RepeatersDictionary, keyword_dict

from dcm_spark.dicom.vr import Kind, element_spec, repeater_type

REFERENCE = Path(__file__).with_name("dicom_all.schema.json")

#: BigQuery column types -> Arrow; TIME is a string, as the table stores TM.
BIGQUERY_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INTEGER": pa.int64(),
    "INT64": pa.int64(),
    "FLOAT": pa.float64(),
    "FLOAT64": pa.float64(),
    "NUMERIC": pa.decimal128(38, 9),
    "BOOLEAN": pa.bool_(),
    "BOOL": pa.bool_(),
    "DATE": pa.date32(),
    "TIME": pa.string(),
    "DATETIME": pa.timestamp("us", tz="UTC"),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
    "BYTES": pa.binary(),
}

#: Keywords of repeating groups (60xx overlays, 50xx curves, ...) -> their first tag.
_REPEATER_TAGS = {
    entry[4]: int(mask.replace("x", "0"), 16) for mask, entry in RepeatersDictionary.items()
}

#: A tree of field names: each name maps to the fields of its items (empty: not a sequence
#: or none known). Insertion order is the layout's order.
Tree = dict[str, "Tree"]


def _bigquery_type(field: dict[str, Any]) -> pa.DataType:
    """A reference field's type; a DICOM keyword's by the table's rules, as the export
    derives it from the dictionary (a later dictionary may have changed a VM)."""
    own = None if field["type"] == "RECORD" else _keyword_type(field["name"], {})
    if own is not None:
        return own
    if field["type"] == "RECORD":
        kind: pa.DataType = pa.struct([(f["name"], _bigquery_type(f)) for f in field["fields"]])
    else:
        kind = BIGQUERY_TYPES[field["type"]]
    return pa.list_(kind) if field.get("mode") == "REPEATED" else kind


def _keyword_type(keyword: str, items: Tree) -> pa.DataType | None:
    """The column type the table's rules give a keyword (None: binary, or a sequence whose
    items are not known)."""
    tag = keyword_dict.get(keyword, _REPEATER_TAGS.get(keyword))
    spec = None if tag is None else element_spec(tag)
    if spec is None:
        return None
    if spec.kind is Kind.SEQUENCE:
        fields = [(k, t) for k, t in ((k, _keyword_type(k, sub)) for k, sub in items.items()) if t]
        return pa.list_(pa.struct(fields)) if fields else None
    if spec.value_type is None:
        return None
    column = spec.list_type if spec.multiple else spec.value_type
    return repeater_type(column) if spec.repeater else column


#: How many sequence levels deep the module tables' fields go in the whole layout: a
#: top-level sequence's items and their sequences' items. `dicom_all` (``deep=True``, for a
#: view of a few columns) goes every level, where a code item below this depth keeps only
#: its Basic Coded Entry Attributes (PS3.3 Table 8.8-1): IDC's ``sm_index`` reads
#: SpecimenDescriptionSequence > SpecimenPreparationSequence >
#: SpecimenPreparationStepContentItemSequence > ConceptCodeSequence > CodeValue.
#: The whole layout deep is ~34,000 fields (~21,000 at this depth): registering a view of
#: it took 3-4 s more and a query on it 1.7x as long; every level in full (the code
#: macro's Enhanced Encoding Mode attributes in every code item, each with its own
#: EquivalentCodeSequence) is over 40,000 fields, whose types alone made Spark's analysis
#: of IDC's index queries run out of memory.
MODULE_DEPTH = 2
ENHANCED_ENCODING = frozenset(
    {
        "ContextIdentifier",
        "ContextUID",
        "MappingResource",
        "MappingResourceUID",
        "MappingResourceName",
        "ContextGroupVersion",
        "ContextGroupExtensionFlag",
        "ContextGroupLocalVersion",
        "ContextGroupExtensionCreatorUID",
        "EquivalentCodeSequence",
    }
)


def module_tree(deep: bool = False) -> Tree:
    """What the standard's modules put in each sequence, merged over every module, from
    highdicom's tables (the one place that reads highdicom's private module map):
    `MODULE_DEPTH` sequence levels deep, or every level (``deep``) without
    `ENHANCED_ENCODING` below that depth."""
    from highdicom._standard_utils import get_module_attribute_map

    tree: Tree = {}
    for attributes in get_module_attribute_map().values():
        for attribute in attributes:
            steps = (*attribute["path"], attribute["keyword"])
            if len(steps) > MODULE_DEPTH + 1 and (
                not deep or ENHANCED_ENCODING.intersection(steps[MODULE_DEPTH + 1 :])
            ):
                continue
            node = tree
            for step in steps:
                node = node.setdefault(step, {})
    return tree


def _merge(into: pa.DataType, extra: Tree) -> pa.DataType:
    """A reference type with the module tree's fields added inside its sequences."""
    inner = into.value_type if pa.types.is_list(into) else into
    if not pa.types.is_struct(inner) or not extra:
        return into
    fields = {inner.field(i).name: inner.field(i).type for i in range(inner.num_fields)}
    for name, sub in extra.items():
        if name in fields:
            fields[name] = _merge(fields[name], sub)
        else:
            kind = _keyword_type(name, sub)
            if kind is not None:
                fields[name] = kind
    struct = pa.struct(list(fields.items()))
    return pa.list_(struct) if pa.types.is_list(into) else struct


@lru_cache(maxsize=2)
def dicom_all(deep: bool = False) -> pa.Schema:
    """The reference layout of the `dicom_all` view (see the module's doc), its sequences
    `MODULE_DEPTH` levels deep or every level (``deep``, see `module_tree`)."""
    reference = json.loads(REFERENCE.read_text())["schema"]["fields"]
    modules = module_tree(deep)
    columns = {f["name"]: _merge(_bigquery_type(f), modules.get(f["name"], {})) for f in reference}
    keywords = [e[4] for _, e in sorted(DicomDictionary.items())] + sorted(_REPEATER_TAGS)
    for keyword in keywords:
        if keyword and keyword not in columns:
            kind = _keyword_type(keyword, modules.get(keyword, {}))
            if kind is not None:
                columns[keyword] = kind
    return pa.schema(list(columns.items()))
