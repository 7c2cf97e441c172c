"""The `dicom_all` view: a table laid out as IDC's ``dicom_all`` (`dcm_spark.idc.layout`).

Every column and nested field of the layout is there, null where the table has none; the
table's own values and types win where it has them (its data forced a promotion); columns
the table has beyond the layout follow. Column projections only, so Spark still prunes
the columns a query does not read. The projection is one SQL text handed to Spark in one
call: built as Column objects through py4j, thousands of columns took seconds.

A query that names its columns can have a view of just those (`columns_read`), laid out
every sequence level deep: Spark analyses every field of a view each time a query reads it;
the whole layout that deep (~34,000 fields) made every query slower, and IDC's
``sm_index``, which reads ``dicom_all`` twice, filled a 2 GB driver heap. A query on the
whole view is pruned to the columns it reads while Spark analyses it, by this project's
Spark SQL extension (jvm/dcm_spark/IdcViewPruning.java).
"""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache
from typing import TYPE_CHECKING

import sqlglot
from pyspark.sql.pandas.types import from_arrow_type
from pyspark.sql.types import ArrayType, DataType, StructType
from sqlglot import exp

from dcm_spark.idc.layout import dicom_all

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _laid_out(value: str, have: DataType, want: DataType, depth: int) -> str:
    """SQL of ``value`` (of type ``have``) with the fields of ``want`` it lacks added as
    nulls, at any depth; ``value`` as it is where the two are not both structs or both
    arrays of structs, or nothing is missing."""
    if isinstance(have, ArrayType) and isinstance(want, ArrayType):
        item, wanted = have.elementType, want.elementType
        if isinstance(item, StructType) and isinstance(wanted, StructType):
            x = f"x{depth}"
            body = _struct(x, item, wanted, depth + 1)
            return value if body == x else f"transform({value}, {x} -> {body})"
        return value
    if isinstance(have, StructType) and isinstance(want, StructType):
        body = _struct(value, have, want, depth + 1)
        return value if body == value else f"IF({value} IS NULL, NULL, {body})"
    return value


def _struct(value: str, have: StructType, want: StructType, depth: int) -> str:
    own = {f.name: f.dataType for f in have.fields}
    if all(f.name in own and own[f.name] == f.dataType for f in want.fields):
        return value  # nothing to add at any depth
    parts = []
    for f in want.fields:
        if f.name in own:
            inner = _laid_out(f"{value}.{_quoted(f.name)}", own[f.name], f.dataType, depth)
        else:
            inner = f"CAST(NULL AS {f.dataType.simpleString()})"
        parts.append(f"'{f.name}', {inner}")
    wanted = {f.name for f in want.fields}
    parts += [f"'{n}', {value}.{_quoted(n)}" for n in own if n not in wanted]
    return f"named_struct({', '.join(parts)})"


@lru_cache(maxsize=2)
def _layout_types(deep: bool) -> tuple[tuple[str, DataType], ...]:
    return tuple((f.name, from_arrow_type(f.type)) for f in dicom_all(deep))


def columns_read(spark_sql: str) -> frozenset[str] | None:
    """The names (lower case) a Spark SQL query may read a column by; None when it may
    read every column (a ``*`` other than ``count(*)``). Every identifier counts: an alias
    or a CTE name that is also a column name costs one column more, never one too few."""
    tree = sqlglot.parse_one(spark_sql, read="spark")
    if any(not isinstance(star.parent, exp.Count) for star in tree.find_all(exp.Star)):
        return None
    return frozenset(i.name.lower() for i in tree.find_all(exp.Identifier))


def dicom_all_sql(table: StructType, source: str, columns: Collection[str] | None = None) -> str:
    """The SQL that lays out the view ``source`` (of schema ``table``) as `dicom_all`; only
    the layout's ``columns`` (lower case names) if given, with every column of the table,
    and then with every sequence level of the layout (`dcm_spark.idc.layout.module_tree`)."""
    own = {f.name: f.dataType for f in table.fields}
    columns_out = []
    layout = _layout_types(deep=columns is not None)
    for name, want in layout:
        if columns is not None and name.lower() not in columns:
            if name in own:  # not read: as the table has it
                columns_out.append(_quoted(name))
            continue
        if name in own:
            value = _laid_out(_quoted(name), own[name], want, 0)
        else:
            value = f"CAST(NULL AS {want.simpleString()})"
        columns_out.append(f"{value} AS {_quoted(name)}")
    reference = {name for name, _ in layout}
    columns_out += [_quoted(n) for n in own if n not in reference]
    return f"SELECT {', '.join(columns_out)} FROM {_quoted(source)}"


def dicom_all_view(
    spark: SparkSession,
    table: DataFrame,
    source: str = "dicom",
    columns: Collection[str] | None = None,
) -> DataFrame:
    """``table``, registered as the view ``source``, laid out as `dicom_all` (only the
    layout's ``columns``, lower case, if given: see `columns_read`)."""
    return spark.sql(dicom_all_sql(table.schema, source, columns))
