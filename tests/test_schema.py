"""Schema merging and casting: properties over random nested Arrow types, and real cases."""

from __future__ import annotations

import datetime
import decimal
import json
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dcm_spark.schema import (
    added_fields,
    cast_batch,
    drop_null_fields,
    fits,
    join,
    merge_schemas,
    promotions,
)

# -- strategies: recursive Arrow types and values of them ------------------------------

PRIMITIVES = [
    pa.null(),
    pa.int32(),
    pa.int64(),
    pa.float64(),
    pa.string(),
    pa.date32(),
    pa.timestamp("us", tz="UTC"),
    pa.decimal128(20, 0),
]
NAMES = st.sampled_from(["a", "b", "c", "d", "e"])


def _struct(children: st.SearchStrategy[pa.DataType]) -> st.SearchStrategy[pa.DataType]:
    fields = st.lists(st.tuples(NAMES, children), min_size=1, max_size=4, unique_by=lambda f: f[0])
    return fields.map(lambda fs: pa.struct([pa.field(n, t) for n, t in fs]))


types = st.recursive(
    st.sampled_from(PRIMITIVES),
    lambda children: st.one_of(children.map(pa.list_), _struct(children)),
    max_leaves=8,
)
schemas = st.lists(st.tuples(NAMES, types), min_size=1, max_size=4, unique_by=lambda f: f[0]).map(
    lambda fs: pa.schema([pa.field(n, t) for n, t in fs])
)

# DICOM's binary integers fit in 2**53 (UL, SL, US, SS); a double holds them exactly.
EXACT = 2**53


def values(t: pa.DataType) -> st.SearchStrategy[Any]:
    """Values of an Arrow type (None included), as Python objects."""
    if pa.types.is_null(t):
        return st.none()
    if pa.types.is_list(t):
        inner = st.lists(values(t.value_type), max_size=3)
    elif pa.types.is_struct(t):
        inner = st.fixed_dictionaries({f.name: values(f.type) for f in t})
    elif pa.types.is_int32(t):
        inner = st.integers(-(2**31), 2**31 - 1)
    elif pa.types.is_integer(t):
        inner = st.integers(-EXACT, EXACT)
    elif pa.types.is_floating(t):
        inner = st.floats(allow_nan=False, allow_infinity=False)
    elif pa.types.is_decimal(t):
        inner = st.integers(0, EXACT).map(decimal.Decimal)
    elif pa.types.is_date(t):
        inner = st.dates()
    elif pa.types.is_timestamp(t):
        inner = st.datetimes(
            min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(2200, 1, 1)
        ).map(lambda d: d.replace(tzinfo=datetime.UTC))
    else:
        inner = st.text(max_size=8)
    return st.none() | inner


@st.composite
def batches(draw: st.DrawFn) -> pa.RecordBatch:
    schema = draw(schemas)
    rows = draw(
        st.lists(st.fixed_dictionaries({f.name: values(f.type) for f in schema}), max_size=4)
    )
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def normalised(t: pa.DataType) -> pa.DataType:
    """A type with struct fields sorted by name at every depth (order-insensitive compare)."""
    if pa.types.is_list(t):
        return pa.list_(normalised(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct(
            sorted((pa.field(f.name, normalised(f.type)) for f in t), key=lambda f: f.name)
        )
    return t


def normalised_schema(s: pa.Schema) -> pa.DataType:
    return normalised(pa.struct(list(s)))


# -- properties --------------------------------------------------------------------------


@given(types)
def test_join_is_idempotent(t: pa.DataType) -> None:
    assert join(t, t) == t


@given(types, types)
def test_join_is_commutative_up_to_field_order(a: pa.DataType, b: pa.DataType) -> None:
    assert normalised(join(a, b)) == normalised(join(b, a))


@given(types, types, types)
def test_join_is_associative_up_to_field_order(
    a: pa.DataType, b: pa.DataType, c: pa.DataType
) -> None:
    assert normalised(join(join(a, b), c)) == normalised(join(a, join(b, c)))


@given(schemas, schemas)
def test_merge_keeps_existing_fields_in_place(a: pa.Schema, b: pa.Schema) -> None:
    merged = merge_schemas(a, b)
    assert merged.names[: len(a.names)] == a.names
    assert set(merged.names) == set(a.names) | set(b.names)
    assert merge_schemas(merged, merged) == merged


def kept(original: Any, src: pa.DataType, cast: Any, dst: pa.DataType) -> bool:
    """Is ``original`` (of type src) found whole in ``cast`` (of the merged type dst)?

    Written from the lattice's rules, not from the code under test.
    """
    if original is None:
        return cast is None or (
            pa.types.is_list(dst) and not pa.types.is_list(src) and cast == [None]
        )
    if pa.types.is_null(src):
        return True
    if pa.types.is_list(dst) and not pa.types.is_list(src):
        return (
            isinstance(cast, list)
            and len(cast) == 1
            and kept(original, src, cast[0], dst.value_type)
        )
    if pa.types.is_list(dst):
        return len(cast) == len(original) and all(
            kept(o, src.value_type, c, dst.value_type) for o, c in zip(original, cast, strict=True)
        )
    if pa.types.is_struct(dst):
        assert pa.types.is_struct(src)
        return all(
            kept(original[f.name], f.type, cast[f.name], dst.field(f.name).type) for f in src
        ) and all(cast[f.name] is None for f in dst if src.get_field_index(f.name) < 0)
    if pa.types.is_string(dst) and not pa.types.is_string(src):
        if isinstance(original, datetime.datetime):
            return datetime.datetime.fromisoformat(cast).replace(tzinfo=datetime.UTC) == original
        if isinstance(original, datetime.date):
            return datetime.date.fromisoformat(cast) == original
        return same_json(original, json.loads(cast))
    if isinstance(original, int | decimal.Decimal) and not isinstance(original, bool):
        return (
            decimal.Decimal(cast) == decimal.Decimal(original)
            if pa.types.is_decimal(dst)
            else cast == original
        )
    return cast == original


def same_json(original: Any, loaded: Any) -> bool:
    """Does JSON text hold ``original`` whole (dates and times as ISO text)?"""
    if isinstance(original, dict):
        return (
            isinstance(loaded, dict)
            and loaded.keys() == original.keys()
            and all(same_json(v, loaded[k]) for k, v in original.items())
        )
    if isinstance(original, list):
        return (
            isinstance(loaded, list)
            and len(loaded) == len(original)
            and all(same_json(o, x) for o, x in zip(original, loaded, strict=True))
        )
    if isinstance(original, datetime.datetime):
        return datetime.datetime.fromisoformat(loaded).replace(tzinfo=datetime.UTC) == original
    if isinstance(original, datetime.date):
        return datetime.date.fromisoformat(loaded) == original
    if isinstance(original, decimal.Decimal):
        return decimal.Decimal(str(loaded)) == original
    return bool(loaded == original)


@given(batches(), schemas)
def test_every_batch_casts_to_the_merged_schema_keeping_every_value(
    batch: pa.RecordBatch, other: pa.Schema
) -> None:
    merged = merge_schemas(batch.schema, other)
    cast = cast_batch(batch, merged)
    assert cast.schema == merged
    for field in batch.schema:
        target = merged.field(field.name).type
        before = batch.column(field.name).to_pylist()
        after = cast.column(field.name).to_pylist()
        for o, c in zip(before, after, strict=True):
            assert kept(o, field.type, c, target), (field.name, field.type, target, o, c)
    for field in merged:
        if field.name not in batch.schema.names:
            assert cast.column(field.name).null_count == cast.num_rows


@given(batches(), batches())
def test_two_batches_merge_and_concatenate(one: pa.RecordBatch, two: pa.RecordBatch) -> None:
    merged = merge_schemas(one.schema, two.schema)
    joined = pa.Table.from_batches([cast_batch(one, merged), cast_batch(two, merged)])
    assert joined.num_rows == one.num_rows + two.num_rows


# -- documented rules --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b", "merged"),
    [
        (pa.null(), pa.string(), pa.string()),
        (pa.string(), pa.list_(pa.string()), pa.list_(pa.string())),
        (pa.int64(), pa.float64(), pa.float64()),
        (pa.int32(), pa.int64(), pa.int64()),
        (pa.date32(), pa.string(), pa.string()),
        (pa.timestamp("us", tz="UTC"), pa.string(), pa.string()),
        (
            pa.struct([("x", pa.string())]),
            pa.list_(pa.struct([("y", pa.int64())])),
            pa.list_(pa.struct([("x", pa.string()), ("y", pa.int64())])),
        ),
        (pa.struct([("x", pa.string())]), pa.int64(), pa.string()),
    ],
)
def test_lattice_rules(a: pa.DataType, b: pa.DataType, merged: pa.DataType) -> None:
    assert join(a, b) == merged


def test_promotions_and_added_fields_are_reported_at_depth() -> None:
    item = pa.struct([("CodeValue", pa.string()), ("Count", pa.int64())])
    old = pa.schema([("Seq", pa.list_(item)), ("PatientAge", pa.string())])
    new_item = pa.struct(
        [("CodeValue", pa.list_(pa.string())), ("Count", pa.float64()), ("Meaning", pa.string())]
    )
    merged = merge_schemas(old, pa.schema([("Seq", pa.list_(new_item)), ("Rows", pa.int64())]))
    found = {(p.path, p.reason) for p in promotions(old, merged)}
    assert found == {("Seq[].CodeValue", "array"), ("Seq[].Count", "double")}
    assert added_fields(old, merged) == ["Seq[].Meaning", "Rows"]


def test_conflicting_values_are_kept_as_json_text() -> None:
    old = pa.RecordBatch.from_pylist(
        [{"v": {"x": 1}}], schema=pa.schema([("v", pa.struct([("x", pa.int64())]))])
    )
    merged = merge_schemas(old.schema, pa.schema([("v", pa.int64())]))
    assert [p.is_conflict for p in promotions(old.schema, merged)] == [True]
    assert json.loads(cast_batch(old, merged).column("v")[0].as_py()) == {"x": 1}


def test_null_typed_fields_are_dropped_for_parquet() -> None:
    schema = pa.schema(
        [
            ("a", pa.null()),
            ("b", pa.list_(pa.null())),
            ("c", pa.struct([("d", pa.null()), ("e", pa.string())])),
        ]
    )
    assert drop_null_fields(schema) == pa.schema([("c", pa.struct([("e", pa.string())]))])


FITTING = [
    # (schema a file was written with, the table's schema)
    (pa.schema([("a", pa.int32())]), pa.schema([("a", pa.int32()), ("b", pa.string())])),
    (
        pa.schema([("s", pa.list_(pa.struct([("y", pa.string()), ("x", pa.int64())])))]),
        pa.schema(
            [
                (
                    "s",
                    pa.list_(
                        pa.struct([("x", pa.int64()), ("y", pa.string()), ("z", pa.date32())])
                    ),
                )
            ]
        ),
    ),
    (
        pa.schema([("p", pa.struct([("Alphabetic", pa.struct([("Given", pa.string())]))]))]),
        pa.schema(
            [
                ("q", pa.float64()),
                (
                    "p",
                    pa.struct(
                        [
                            ("Ideographic", pa.struct([("Family", pa.string())])),
                            (
                                "Alphabetic",
                                pa.struct([("Family", pa.string()), ("Given", pa.string())]),
                            ),
                        ]
                    ),
                ),
            ]
        ),
    ),
]
MISFITS = [
    (pa.schema([("a", pa.int32())]), pa.schema([("a", pa.int64())])),
    (pa.schema([("a", pa.string())]), pa.schema([("a", pa.list_(pa.string()))])),
    (pa.schema([("a", pa.string())]), pa.schema([("b", pa.string())])),
    (
        pa.schema([("s", pa.list_(pa.struct([("x", pa.int32())])))]),
        pa.schema([("s", pa.list_(pa.struct([("x", pa.string())])))]),
    ),
]


@pytest.mark.parametrize(("written", "table"), FITTING)
def test_spark_reads_a_fitting_parquet_file_as_the_table_schema(
    spark: Any, tmp_path: Any, written: pa.Schema, table: pa.Schema
) -> None:
    import pyarrow.parquet as pq
    from pyspark.sql.pandas.types import from_arrow_schema

    assert fits(written, table)
    rows = pa.Table.from_batches([_batch_of(written, seed=3)])
    pq.write_table(rows, tmp_path / "part.parquet")
    read = spark.read.schema(from_arrow_schema(table)).parquet(str(tmp_path / "part.parquet"))
    got = [r.asDict(recursive=True) for r in read.collect()]
    # what the file holds, with the table's missing fields as null (spelled out: no cast)
    assert got == [_with_nulls(row, table) for row in rows.to_pylist()]


def _batch_of(s: pa.Schema, seed: int) -> pa.RecordBatch:
    values = {
        pa.int32(): 7,
        pa.int64(): 2**40,
        pa.string(): "x\u00e9",
        pa.date32(): datetime.date(2024, 2, 29),
        pa.float64(): 0.5,
    }

    def value(t: pa.DataType) -> Any:
        if pa.types.is_struct(t):
            return {f.name: value(f.type) for f in t}
        if pa.types.is_list(t):
            return [value(t.value_type)] * 2
        return values[t]

    return pa.RecordBatch.from_pylist(
        [{f.name: value(f.type) for f in s}, {f.name: None for f in s}] * seed, schema=s
    )


def _with_nulls(value: Any, t: pa.DataType | pa.Schema) -> Any:
    if value is None:
        return None
    if isinstance(t, pa.Schema) or pa.types.is_struct(t):
        return {f.name: _with_nulls(value.get(f.name), f.type) for f in t}
    if pa.types.is_list(t):
        return [_with_nulls(v, t.value_type) for v in value]
    return value


@pytest.mark.parametrize(("written", "table"), MISFITS)
def test_a_file_with_another_type_does_not_fit(written: pa.Schema, table: pa.Schema) -> None:
    assert not fits(written, table)
    assert fits(written, written)
