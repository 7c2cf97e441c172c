"""A converted header (`Header`), and the rows of many files as one Arrow batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from dcm_spark import schema


@dataclass
class Header:
    """One file's row: values by column name, and the Arrow type of each column."""

    values: dict[str, Any]
    types: dict[str, pa.DataType]


def union(rows: list[Header]) -> dict[str, pa.DataType]:
    """Merge the column types of many rows, and conform each row's values to them."""
    if len(rows) == 1:  # most sequences have one item: nothing to merge
        return dict(rows[0].types)
    merged: dict[str, pa.DataType] = {}
    for row in rows:
        for name, column_type in row.types.items():
            old = merged.get(name)
            if old is None:
                merged[name] = column_type
            elif old is not column_type and old != column_type:
                merged[name] = schema.join(old, column_type)
    for row in rows:
        for name, column_type in row.types.items():
            target = merged[name]
            if target is not column_type and target != column_type:
                row.values[name] = schema.conform(row.values[name], column_type, target)
    return merged


def to_record_batch(rows: list[Header]) -> pa.RecordBatch:
    """One RecordBatch with the union schema of ``rows`` (null-typed fields dropped)."""
    merged = union(rows)
    fields = [pa.field(n, t) for n, t in merged.items()]
    arrow_schema = schema.drop_null_fields(pa.schema(fields))
    return pa.RecordBatch.from_pylist([r.values for r in rows], schema=arrow_schema)
