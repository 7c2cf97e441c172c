"""Schema merging and type promotion: the one place where two types meet.

The promotion lattice (``join`` of two types), applied at any depth, inside arrays too:

==========================================  =============================================
types that meet                             merged type
==========================================  =============================================
null with T                                 T
T with array<T>                             array<T> (a scalar becomes a one-element array)
struct with struct                          union of fields: existing fields keep their
                                            position, new ones are appended
struct with array<struct>                   array<struct> (the rule above)
integer with integer                        the wider integer (bigint here)
integer with double                         double
integer with decimal                        decimal wide enough for both
decimal with double                         double
date, time or timestamp with string         string (ISO text, as Spark casts it)
anything else                               string holding the value's JSON text (a
                                            *conflict*; string values stay as they are)
==========================================  =============================================

The same rules cast data (`conform`, `cast_batch`): every value of a type S is carried
into the merged type M without loss.
"""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.types as pat


@dataclass(frozen=True)
class Promotion:
    """An existing field whose type changes when a new schema is merged in."""

    path: str
    from_type: str
    to_type: str
    reason: str

    @property
    def is_conflict(self) -> bool:
        return self.reason == "conflict"


def _is_temporal(t: pa.DataType) -> bool:
    return pat.is_date(t) or pat.is_timestamp(t) or pat.is_time(t)


def _is_string(t: pa.DataType) -> bool:
    return pat.is_string(t) or pat.is_large_string(t)


def rule(a: pa.DataType, b: pa.DataType) -> str:
    """Name of the lattice rule that joins ``a`` and ``b`` (see the module docstring)."""
    if a == b:
        return "equal"
    if pat.is_null(a) or pat.is_null(b):
        return "null"
    if pat.is_list(a) or pat.is_list(b):
        return "array"
    if pat.is_struct(a) and pat.is_struct(b):
        return "struct"
    if pat.is_integer(a) and pat.is_integer(b):
        return "integer"
    numbers = (pat.is_integer, pat.is_floating, pat.is_decimal)
    if any(f(a) for f in numbers) and any(f(b) for f in numbers):
        if pat.is_decimal(a) or pat.is_decimal(b):
            if pat.is_floating(a) or pat.is_floating(b):
                return "double"
            return "decimal"
        return "double"
    if (_is_temporal(a) and _is_string(b)) or (_is_string(a) and _is_temporal(b)):
        return "string"
    return "conflict"


def _wide_decimal(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    scale = max(getattr(t, "scale", 0) for t in (a, b))
    digits = max((t.precision - t.scale) if pat.is_decimal(t) else 19 for t in (a, b))
    return pa.decimal128(min(38, digits + scale), scale)


def join(a: pa.DataType, b: pa.DataType) -> pa.DataType:
    """The merged type of ``a`` and ``b``; ``a``'s struct fields keep their order."""
    how = rule(a, b)
    if how == "equal":
        return a
    if how == "null":
        return b if pat.is_null(a) else a
    if how == "array":
        inner_a = a.value_type if pat.is_list(a) else a
        inner_b = b.value_type if pat.is_list(b) else b
        return pa.list_(join(inner_a, inner_b))
    if how == "struct":
        return pa.struct(merge_fields(list(a), list(b)))
    if how == "integer":
        return a if a.bit_width >= b.bit_width else b
    if how == "decimal":
        return _wide_decimal(a, b)
    if how == "double":
        return pa.float64()
    return pa.string()


def merge_fields(a: list[pa.Field], b: Iterable[pa.Field]) -> list[pa.Field]:
    """Union of two field lists: ``a``'s fields first, in order, then ``b``'s new ones."""
    merged = {f.name: f for f in a}
    for field in b:
        old = merged.get(field.name)
        if old is None:
            merged[field.name] = field.with_nullable(True)
        elif old.type != field.type:
            merged[field.name] = old.with_type(join(old.type, field.type))
    return list(merged.values())


def merge_schemas(*schemas: pa.Schema) -> pa.Schema:
    """Merge many schemas left to right (existing columns keep their position)."""
    fields: list[pa.Field] = []
    for schema in schemas:
        fields = merge_fields(fields, schema)
    return pa.schema(fields)


def promotions(old: pa.Schema, new: pa.Schema) -> list[Promotion]:
    """Fields of ``old`` whose type differs in ``new`` beyond added struct fields."""
    found: list[Promotion] = []

    def walk(path: str, a: pa.DataType, b: pa.DataType) -> None:
        if a == b:
            return
        if pat.is_struct(a) and pat.is_struct(b):
            for field in a:
                walk(f"{path}.{field.name}", field.type, b.field(field.name).type)
        elif pat.is_list(a) and pat.is_list(b):
            walk(f"{path}[]", a.value_type, b.value_type)
        else:
            found.append(Promotion(path, str(a), str(b), rule(a, b)))

    for field in old:
        walk(field.name, field.type, new.field(field.name).type)
    return found


def added_fields(old: pa.Schema, new: pa.Schema) -> list[str]:
    """Paths of the fields (at any depth) that ``new`` has and ``old`` has not."""
    found: list[str] = []

    def walk(path: str, a: pa.DataType, b: pa.DataType) -> None:
        while pat.is_list(a) and pat.is_list(b):
            a, b, path = a.value_type, b.value_type, f"{path}[]"
        if pat.is_list(b):  # struct -> array<struct>: compare the items
            b, path = b.value_type, f"{path}[]"
        if pat.is_struct(a) and pat.is_struct(b):
            names = {f.name for f in a}
            for field in b:
                if field.name in names:
                    walk(f"{path}.{field.name}", a.field(field.name).type, field.type)
                else:
                    found.append(f"{path}.{field.name}")

    names = set(old.names)
    for field in new:
        if field.name in names:
            walk(field.name, old.field(field.name).type, field.type)
        else:
            found.append(field.name)
    return found


def _iso_text(value: Any) -> str:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value.isoformat(sep=" ")
    return str(value.isoformat())


def _json_default(value: Any) -> str:
    if isinstance(value, datetime.date | datetime.time):
        return _iso_text(value)
    return str(value)


def json_text(value: Any) -> str:
    """The JSON text a conflicting value is kept as."""
    return json.dumps(value, default=_json_default, ensure_ascii=False)


def conform(value: Any, src: pa.DataType, dst: pa.DataType) -> Any:
    """Carry a Python value of Arrow type ``src`` into the merged type ``dst``.

    ``dst`` must be a join of ``src`` with something; no value is dropped or truncated.
    """
    if value is None or src == dst:
        return value
    if pat.is_null(src):
        return None
    if pat.is_list(dst):
        if pat.is_list(src):
            inner = src.value_type
            return [conform(v, inner, dst.value_type) for v in value]
        return [conform(value, src, dst.value_type)]
    if pat.is_struct(dst) and pat.is_struct(src):
        return {f.name: conform(value.get(f.name), f.type, dst.field(f.name).type) for f in src}
    if pat.is_floating(dst):
        return float(value)
    if pat.is_integer(dst):
        return int(value)
    if pat.is_decimal(dst):
        return decimal.Decimal(value)
    if _is_string(dst):
        if _is_string(src):
            return value
        if _is_temporal(src):
            return _iso_text(value)
        return json_text(value)
    raise TypeError(f"cannot carry {src} into {dst}: {dst} is not a join of {src}")


def cast_array(array: pa.Array | pa.ChunkedArray, dst: pa.DataType) -> pa.Array:
    """Cast an Arrow array of type S into a merged type M (see `conform`).

    Field additions, array wrapping and numeric widening stay in Arrow; only text
    conversions (temporal to ISO text, conflicts to JSON) go through Python values.
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    src = array.type
    if src == dst:
        return array
    mask = array.is_null() if array.null_count else None
    if pat.is_null(src):
        return pa.nulls(len(array), dst)
    if pat.is_struct(src) and pat.is_struct(dst):
        names = {f.name for f in src}
        children = [
            cast_array(array.field(f.name), f.type)
            if f.name in names
            else pa.nulls(len(array), f.type)
            for f in dst
        ]
        return pa.StructArray.from_arrays(children, fields=list(dst), mask=mask)
    if pat.is_list(dst):
        if pat.is_list(src):
            # rebase the offsets: from_arrays cannot take a sliced offsets array with a mask
            offsets = array.offsets
            start, end = offsets[0].as_py(), offsets[-1].as_py()
            values = cast_array(array.values.slice(start, end - start), dst.value_type)
            rebased = pc.subtract(offsets, pa.scalar(start, offsets.type))
            return pa.ListArray.from_arrays(rebased, values, type=dst, mask=mask)
        offsets = pa.array(range(len(array) + 1), pa.int32())
        return pa.ListArray.from_arrays(
            offsets, cast_array(array, dst.value_type), type=dst, mask=mask
        )
    if rule(src, dst) in ("integer", "double", "decimal"):
        return array.cast(dst)
    return pa.array([conform(v, src, dst) for v in array.to_pylist()], type=dst)


def cast_batch(batch: pa.RecordBatch | pa.Table, schema: pa.Schema) -> pa.RecordBatch:
    """Cast a batch to a schema that contains its own (missing columns become null).

    Raises
    ------
    ValueError
        If the batch has a column that ``schema`` lacks.
    """
    extra = set(batch.schema.names) - set(schema.names)
    if extra:
        raise ValueError(f"columns {sorted(extra)} are not in the target schema")
    columns = []
    for field in schema:
        if field.name in batch.schema.names:
            columns.append(cast_array(batch.column(field.name), field.type))
        else:
            columns.append(pa.nulls(batch.num_rows, field.type))
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _fits(src: pa.DataType, dst: pa.DataType) -> bool:
    if pat.is_struct(src) and pat.is_struct(dst):
        names = {f.name: f.type for f in dst}
        return all(f.name in names and _fits(f.type, names[f.name]) for f in src)
    if pat.is_list(src) and pat.is_list(dst):
        return _fits(src.value_type, dst.value_type)
    return bool(src == dst)


def fits(written: pa.Schema, table: pa.Schema) -> bool:
    """Whether a Parquet file written with ``written`` reads as ``table`` unchanged.

    True when every field of ``written`` is in ``table`` with the same type at every
    depth; fields it lacks read as null. Otherwise the file must be cast (`cast_batch`)
    and written again.
    """
    types = {f.name: f.type for f in table}
    return all(f.name in types and _fits(f.type, types[f.name]) for f in written)


def _without_nulls(t: pa.DataType) -> pa.DataType | None:
    if pat.is_null(t):
        return None
    if pat.is_list(t):
        inner = _without_nulls(t.value_type)
        return None if inner is None else pa.list_(inner)
    if pat.is_struct(t):
        fields = [f.with_type(k) for f in t if (k := _without_nulls(f.type)) is not None]
        return pa.struct(fields) if fields else None
    return t


def drop_null_fields(arrow_schema: pa.Schema) -> pa.Schema:
    """Remove fields that hold no type (null, list<null>, empty structs) at any depth.

    Parquet cannot store them (a null column becomes INT32, a struct needs a field); they
    come from empty sequences whose item layout is still unknown, and hold no value.
    """
    fields = []
    for f in arrow_schema:
        kept = _without_nulls(f.type)
        if kept is not None:
            fields.append(f.with_type(kept))
    return pa.schema(fields)
