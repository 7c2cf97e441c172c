"""BigQuery Standard SQL, as IDC users write it, to one Spark SQL query.

`to_spark` parses with sqlglot's BigQuery dialect, substitutes the script's DECLAREd
variables, maps IDC table names (``bigquery-public-data.idc_current.dicom_all``) to the
registered views, rewrites what sqlglot leaves wrong or untranslated for Spark 4 (one
function per construct below), then generates Spark SQL.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

from dcm_spark.errors import DcmSparkError

__all__ = ["UnsupportedQuery", "to_spark"]

_IDC_PROJECT = "bigquery-public-data"
_IDC_DATASET = re.compile(r"idc_(current|v\d+)", re.IGNORECASE)
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")
_NULLS = (exp.IgnoreNulls, exp.RespectNulls)


class UnsupportedQuery(DcmSparkError, ValueError):
    """The query writes, does not parse, reads an unknown table or cannot be translated."""


def to_spark(sql: str, *, views: Collection[str]) -> str:
    """Translate a BigQuery Standard SQL query into one Spark SQL query.

    Parameters
    ----------
    sql : str
        A BigQuery query, optionally preceded by ``DECLARE`` statements.
    views : Collection[str]
        The names of the registered views the query may read. IDC names such as
        ``bigquery-public-data.idc_v21.dicom_all`` resolve to the view of their last part.

    Returns
    -------
    str
        One Spark SQL ``SELECT`` (or ``WITH ... SELECT``) query.

    Raises
    ------
    UnsupportedQuery
        The script writes or has statements other than DECLAREs and one query, does not
        parse, reads a table that is neither a view nor a CTE, or uses a construct with no
        translation. The message is one line.
    """
    query = _resolve_tables(_script(_parse(sql)), views)
    query = _rewrite(query, (_unnest_joins, _array_subquery))
    fixes = (_unsupported, _subscript, _array_agg, _any_value, _error, _numeric)
    query = _rewrite(query, (*fixes, _array_length, _in_unnest, _round, _string_agg))
    try:
        return query.sql(
            dialect="spark", pretty=True, comments=False, unsupported_level=ErrorLevel.RAISE
        )
    except SqlglotError as exc:
        raise UnsupportedQuery(f"cannot translate the query: {_one_line(exc)}") from None


def _one_line(exc: Exception) -> str:
    lines = _ANSI_ESCAPE.sub("", str(exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _fn(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def _lambda(body: exp.Expr, *params: exp.Identifier | str) -> exp.Expr:
    return exp.Lambda(this=body, expressions=[exp.to_identifier(p) for p in params])


def _rewrite(tree: exp.Expr, fixes: tuple[Callable[[exp.Expr], exp.Expr], ...]) -> exp.Expr:
    """Apply each fix to every node, children before their parents."""
    for node in reversed(list(tree.walk(bfs=False))):
        new = node
        for fix in fixes:
            new = fix(new)
        if new is not node:
            if node is tree:
                tree = new
            else:
                node.replace(new)
    return tree


def _parse(sql: str) -> list[exp.Expr]:
    """Parse BigQuery SQL; a parse error becomes a one-line UnsupportedQuery."""
    try:
        statements = sqlglot.parse(sql, read="bigquery")
    except SqlglotError as exc:
        raise UnsupportedQuery(f"cannot parse the query: {_one_line(exc)}") from None
    return [s for s in statements if s is not None and not isinstance(s, exp.Semicolon)]


def _kind(statement: exp.Expr) -> str:
    if isinstance(statement, exp.Command):
        return str(statement.this).upper()
    if isinstance(statement, exp.Create):
        return f"CREATE {statement.args.get('kind') or ''}".strip()
    names = {"truncatetable": "TRUNCATE", "loaddata": "LOAD DATA", "endstatement": "END"}
    return names.get(statement.key, statement.key.upper())


def _script(statements: list[exp.Expr]) -> exp.Expr:
    """``DECLARE x [type] [DEFAULT v | = v]; ... query``: the query with each variable's value.

    Every unqualified column named like a variable is replaced (BigQuery would prefer a column).
    """
    for statement in statements:
        if not isinstance(statement, exp.Declare | exp.Query):
            kind = _kind(statement)
            raise UnsupportedQuery(f"{kind} statements are not supported, only DECLARE and SELECT")
    if not statements or not isinstance(statements[-1], exp.Query):
        raise UnsupportedQuery("the script must end with a SELECT query")
    if any(isinstance(s, exp.Query) for s in statements[:-1]):
        raise UnsupportedQuery("only one query is supported, after the DECLAREs")
    variables: dict[str, exp.Expr] = {}
    for declare in statements[:-1]:
        for item in declare.expressions:
            value = _substitute(item.args.get("default") or exp.null(), variables)
            if item.args.get("kind"):
                value = exp.cast(value, item.args["kind"])
            for name in item.this:
                variables[name.name.lower()] = value
    return _substitute(statements[-1], variables)


def _substitute(tree: exp.Expr, variables: dict[str, exp.Expr]) -> exp.Expr:
    def value_of(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in variables:
            value = variables[node.name.lower()].copy()
            return value if isinstance(value, exp.Literal | exp.Cast) else exp.paren(value)
        return node

    return tree.transform(value_of)


def _resolve_tables(query: exp.Expr, views: Collection[str]) -> exp.Expr:
    """Map IDC table names to views; rename a nested WITH's CTE that reuses a visible name.

    sqlglot hoists nested CTEs to the top-level WITH for Spark, so every CTE gets a unique
    name; a renamed CTE is read under its old name as alias, so qualified columns still work.
    """
    by_name = {view.lower(): view for view in views}
    known = {cte.alias_or_name.lower() for cte in query.find_all(exp.CTE)}
    claimed: set[str] = set()

    def claim(name: str) -> str:
        new, n = name, 0
        while new.lower() in claimed or (n and new.lower() in known):
            n += 1
            new = f"{name}_{n}"
        claimed.add(new.lower())
        return new

    def visit(node: exp.Expr, env: dict[str, str]) -> None:
        with_ = node.args.get("with_") if isinstance(node, exp.Query) else None
        if with_ is not None:
            env = dict(env)
            for cte in with_.expressions:
                name, new = cte.alias_or_name, claim(cte.alias_or_name)
                if with_.args.get("recursive"):
                    env[name.lower()] = new
                visit(cte.this, env)
                env[name.lower()] = new
                cte.args["alias"].set("this", exp.to_identifier(new))
        if isinstance(node, exp.Table):
            _resolve_table(node, env, by_name)
        for child in list(node.iter_expressions()):
            if child is not with_:
                visit(child, env)

    visit(query, {})
    return query


def _resolve_table(table: exp.Table, ctes: dict[str, str], views: dict[str, str]) -> None:
    """``[bigquery-public-data.]idc_current|idc_vNN.<view>``, ``<view>`` or a CTE."""
    name = table.name
    if not table.db and name.lower() in ctes:
        if ctes[name.lower()] != name:
            table.set("this", exp.to_identifier(ctes[name.lower()]))
            if not table.alias:
                table.set("alias", exp.TableAlias(this=exp.to_identifier(name)))
        return
    idc = not table.db or (_IDC_DATASET.fullmatch(table.db) and table.catalog in ("", _IDC_PROJECT))
    if idc and name.lower() in views:
        table.set("this", exp.to_identifier(views[name.lower()]))
        table.set("db", None)
        table.set("catalog", None)
        return
    full = ".".join(part.name for part in table.parts)
    raise UnsupportedQuery(
        f"unknown table {full}: the views are {', '.join(sorted(views.values()))}"
    )


def _unnest_joins(node: exp.Expr) -> exp.Expr:
    """``FROM t, UNNEST(a) AS x [WITH OFFSET AS i]`` and ``[LEFT] JOIN UNNEST``: LATERAL VIEW.

    sqlglot makes a LEFT JOIN UNNEST an inner LATERAL VIEW, dropping the rows whose array is
    empty or NULL; BigQuery keeps them (LATERAL VIEW OUTER). An UNNEST without an alias of an
    array of structs exposes the struct's fields as columns (INLINE).
    """
    if not isinstance(node, exp.Select):
        return node
    for join in list(node.args.get("joins") or []):
        unnest = join.this
        if not isinstance(unnest, exp.Unnest) or len(unnest.expressions) != 1:
            continue
        if join.args.get("on") not in (None, exp.true()):
            raise UnsupportedQuery("JOIN UNNEST(...) ON <condition> is not supported")
        alias, offset = unnest.args.get("alias"), unnest.args.get("offset")
        columns = list(alias.columns) if alias else []
        if offset:
            columns.insert(0, exp.to_identifier(offset if offset is not True else "offset"))
        if len(columns) == 0:
            udtf: exp.Expr = exp.Inline(this=unnest.expressions[0])
        elif offset and len(columns) == 1:
            raise UnsupportedQuery("UNNEST(...) WITH OFFSET needs an alias: UNNEST(...) AS x")
        else:
            udtf = (exp.Posexplode if offset else exp.Explode)(this=unnest.expressions[0])
        view_alias = exp.TableAlias(
            this=alias.this if alias else exp.to_identifier("_u"), columns=columns
        )
        lateral = exp.Lateral(this=udtf, view=True, outer=join.side == "LEFT", alias=view_alias)
        join.pop()
        node.append("laterals", lateral)
    return node


def _array_subquery(node: exp.Expr) -> exp.Expr:
    """``ARRAY(SELECT e FROM UNNEST(a) AS x [WITH OFFSET AS i] [WHERE c] [ORDER BY i])`` and
    ``(SELECT ARRAY_AGG(e [IGNORE NULLS] [ORDER BY i]) FROM UNNEST(a) ...)``: TRANSFORM/FILTER.

    Spark has no ARRAY(subquery); the higher-order functions keep the array's order and run
    per row, where a correlated subquery over EXPLODE would need a join.
    """
    if isinstance(node, exp.Array) and isinstance(next(iter(node.expressions), None), exp.Select):
        select, projection = node.expressions[0], None
        value, order = select.expressions[0].unalias(), select.args.get("order")
    elif isinstance(node, exp.Subquery) and not isinstance(node.parent, exp.From | exp.Join):
        select, projection = node.this, next(iter(node.this.expressions), None)  # ARRAY_AGG?
        agg = projection.this if isinstance(projection, _NULLS) else projection
        if not isinstance(agg, exp.ArrayAgg) or isinstance(agg.this, exp.Distinct | exp.Limit):
            return node
        order = agg.this if isinstance(agg.this, exp.Order) else select.args.get("order")
        value = agg.this.this if isinstance(agg.this, exp.Order) else agg.this
    else:
        return node
    source = _unnest_source(select)
    if source is None and projection is None:
        raise UnsupportedQuery("ARRAY(subquery) is supported over UNNEST only: ARRAY(SELECT ...")
    if source is None:
        return node
    array, params = source
    keys = (
        [(key.this.name, bool(key.args.get("desc"))) for key in order.expressions] if order else []
    )
    if keys and (len(params) < 2 or keys != [(params[1].name, False)]):
        raise UnsupportedQuery("ARRAY(SELECT ... FROM UNNEST) ordered by anything but its OFFSET")
    result = _map_filter(array, params, value, select.args.get("where"))
    if projection is None:
        return exp.Coalesce(this=result, expressions=[exp.Array()])
    if isinstance(projection, exp.IgnoreNulls):
        not_null = exp.Not(this=exp.Is(this=exp.column("_v"), expression=exp.null()))
        result = _fn("FILTER", result, _lambda(not_null, "_v"))
    return exp.Nullif(this=result, expression=exp.Array())


def _unnest_source(select: exp.Expr) -> tuple[exp.Expr, list[exp.Identifier]] | None:
    """The array and lambda parameters of ``SELECT ... FROM UNNEST(a) AS x [WITH OFFSET i]``."""
    from_ = select.args.get("from_") if isinstance(select, exp.Select) else None
    unnest = from_.this if from_ else None
    if not isinstance(unnest, exp.Unnest) or len(unnest.expressions) != 1:
        return None
    alias, offset = unnest.args.get("alias"), unnest.args.get("offset")
    clauses = ("joins", "laterals", "group", "having", "qualify", "limit", "distinct", "with_")
    if any(select.args.get(c) for c in clauses) or not alias or len(alias.columns) != 1:
        return None
    params = [alias.columns[0]]
    if offset:
        params.append(offset if isinstance(offset, exp.Identifier) else exp.to_identifier("offset"))
    return unnest.expressions[0], params


def _map_filter(
    array: exp.Expr, params: list[exp.Identifier], value: exp.Expr, where: exp.Where | None
) -> exp.Expr:
    """``TRANSFORM`` of ``value`` over the elements kept by ``where``, which may use the index."""
    if where is None:
        return _fn("TRANSFORM", array, _lambda(value, *params))
    kept = exp.If(this=where.this, true=_fn("STRUCT", exp.alias_(value, "_v")), false=exp.null())
    not_null = _lambda(exp.Not(this=exp.Is(this=exp.column("_s"), expression=exp.null())), "_s")
    filtered = _fn("FILTER", _fn("TRANSFORM", array, _lambda(kept, *params)), not_null)
    return _fn("TRANSFORM", filtered, _lambda(exp.column("_v", table="_s"), "_s"))


def _unsupported(node: exp.Expr) -> exp.Expr:
    """No Spark equivalent: ``SELECT * REPLACE``, ``STRING_AGG(... LIMIT n)``, ``@parameter``."""
    if isinstance(node, exp.Parameter | exp.Placeholder):
        raise UnsupportedQuery(f"query parameter {node.sql('bigquery')} is not supported")
    if isinstance(node, exp.Star) and node.args.get("replace"):
        raise UnsupportedQuery("SELECT * REPLACE (...) is not supported")
    if isinstance(node, exp.GroupConcat) and isinstance(node.this, exp.Limit):
        raise UnsupportedQuery("STRING_AGG(... LIMIT n) is not supported")
    return node


def _subscript(node: exp.Expr) -> exp.Expr:
    """``a[OFFSET(i)]``, ``a[ORDINAL(i)]``, ``a[SAFE_OFFSET(i)]``, ``a[SAFE_ORDINAL(i)]``.

    sqlglot shifts only literal indexes to Spark's 1-based ELEMENT_AT; ``SAFE_OFFSET(i)`` of a
    column became ``TRY_ELEMENT_AT(a, i)``, one element off. OFFSET is Spark's 0-based ``a[i]``;
    a SAFE_ index below the first element is NULL, not TRY_ELEMENT_AT's count from the end.
    """
    if not isinstance(node, exp.Bracket) or node.args.get("offset") is None:
        return node
    index, ordinal = node.expressions[0], node.args["offset"] == 1

    def shifted(by: int) -> exp.Expr:
        if index.is_int:
            return exp.Literal.number(int(index.to_py()) + by)
        step = exp.Add if by > 0 else exp.Sub
        return step(this=index, expression=exp.Literal.number(1)) if by else index

    if not node.args.get("safe"):
        return exp.Bracket(this=node.this, expressions=[shifted(-1 if ordinal else 0)])
    position = shifted(0 if ordinal else 1)
    element = _fn("TRY_ELEMENT_AT", node.this, position)
    if position.is_int:
        return element if int(position.to_py()) >= 1 else exp.null()
    first = exp.GTE(this=position.copy(), expression=exp.Literal.number(1))
    return exp.If(this=first, true=element, false=exp.null())


def _array_agg(node: exp.Expr) -> exp.Expr:
    """``ARRAY_AGG([DISTINCT] x [IGNORE NULLS] [ORDER BY k [DESC], ...] [LIMIT n])``.

    sqlglot drops the ORDER BY and keeps a LIMIT Spark cannot parse. Ordered, the values
    travel in structs behind their keys through SORT_ARRAY, whose NULL keys sort first
    ascending and last descending as BigQuery's do, and NULL values stay unless IGNORE NULLS.
    Unordered, COLLECT_LIST and COLLECT_SET skip NULLs (a BigQuery result holding one fails).
    """
    agg = node.this if isinstance(node, _NULLS) else node
    if not isinstance(agg, exp.ArrayAgg) or (agg is node and isinstance(node.parent, _NULLS)):
        return node
    inner, limit, keys = agg.this, None, []
    if isinstance(inner, exp.Limit):
        inner, limit = inner.this, inner.expression
    if isinstance(inner, exp.Order):
        inner, keys = inner.this, inner.expressions
    distinct = isinstance(inner, exp.Distinct)
    value = inner.expressions[0] if distinct else inner
    directions = {(bool(k.args.get("desc")), bool(k.args.get("nulls_first"))) for k in keys}
    if directions not in (set(), {(False, True)}, {(True, False)}):  # BigQuery's NULLS defaults
        raise UnsupportedQuery("ARRAY_AGG ORDER BY mixing ASC and DESC or NULLS FIRST/LAST")
    ascending = exp.Boolean(this=(True, False) not in directions)
    if distinct and keys:
        if [key.this.unnest() for key in keys] != [value.unnest()]:
            raise UnsupportedQuery("ARRAY_AGG(DISTINCT x ORDER BY y) with y other than x")
        result = _fn("SORT_ARRAY", _fn("COLLECT_SET", value), ascending)
    elif keys:
        fields = [exp.alias_(key.this, f"_k{i}") for i, key in enumerate(keys)]
        row = _fn("STRUCT", *fields, exp.alias_(value, "_v"))
        if isinstance(node, exp.IgnoreNulls):
            row = exp.If(
                this=exp.Is(this=value.copy(), expression=exp.null()), true=exp.null(), false=row
            )
        sorted_rows = _fn("SORT_ARRAY", _fn("COLLECT_LIST", row), ascending)
        result = _fn("TRANSFORM", sorted_rows, _lambda(exp.column("_v", table="_r"), "_r"))
    else:
        result = _fn("COLLECT_SET" if distinct else "COLLECT_LIST", value)
    return _fn("SLICE", result, exp.Literal.number(1), limit) if limit else result


def _any_value(node: exp.Expr) -> exp.Expr:
    """``ANY_VALUE(x)`` skips NULLs in BigQuery; Spark's needs its ignore-nulls argument."""
    if isinstance(node, exp.AnyValue) and set(node.args) == {"this"}:
        return _fn("ANY_VALUE", node.this, exp.true())
    return node


def _string_agg(node: exp.Expr) -> exp.Expr:
    """``STRING_AGG(DISTINCT x, sep ORDER BY x)``: Spark 4.2's ``LISTAGG(DISTINCT ...)
    WITHIN GROUP`` fails at run time (a ClassCastException), so
    ``ARRAY_JOIN(SORT_ARRAY(COLLECT_SET(x), asc), sep)``, the same string (NULL for none)."""
    if not isinstance(node, exp.GroupConcat) or not isinstance(node.this, exp.Order):
        return node
    distinct, order = node.this.this, node.this.expressions
    if not isinstance(distinct, exp.Distinct) or len(distinct.expressions) != 1:
        return node
    value = distinct.expressions[0].unnest()  # (x) is x
    if len(order) != 1 or order[0].this.unnest() != value:
        return node
    ascending = exp.false() if order[0].args.get("desc") else exp.true()
    ordered = _fn("SORT_ARRAY", _fn("COLLECT_SET", value.copy()), ascending)
    separator = node.args.get("separator") or exp.Literal.string(",")
    joined = _fn("ARRAY_JOIN", ordered, separator.copy())
    return _fn("NULLIF", joined, exp.Literal.string(""))  # BigQuery: NULL for no values


def _round(node: exp.Expr) -> exp.Expr:
    """``ROUND(x, d)`` with ``d`` computed per row: Spark's scale must be a constant, so
    ``ROUND(x * POWER(10, d)) / POWER(10, d)`` (a double, as BigQuery's FLOAT64 result)."""
    decimals = node.args.get("decimals") if isinstance(node, exp.Round) else None
    if decimals is None or isinstance(decimals, exp.Literal) or not decimals.find(exp.Column):
        return node
    scale = _fn("POWER", exp.Literal.number(10), decimals.copy())
    scaled = exp.Mul(this=exp.Paren(this=node.this.copy()), expression=scale.copy())
    return exp.Div(this=_fn("ROUND", scaled), expression=scale)


def _error(node: exp.Expr) -> exp.Expr:
    """``ERROR(message)``: Spark's ``RAISE_ERROR``."""
    if isinstance(node, exp.Anonymous) and str(node.this).upper() == "ERROR":
        return _fn("RAISE_ERROR", *node.expressions)
    return node


def _numeric(node: exp.Expr) -> exp.Expr:
    """``NUMERIC`` is DECIMAL(38, 9), not Spark's bare DECIMAL(10, 0); no BIGNUMERIC in Spark."""
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.BIGDECIMAL:
        raise UnsupportedQuery("BIGNUMERIC is not supported: Spark decimals have 38 digits")
    if isinstance(node, exp.DataType) and node.this == exp.DataType.Type.DECIMAL:
        return node if node.expressions else exp.DataType.build("DECIMAL(38, 9)")
    return node


def _array_length(node: exp.Expr) -> exp.Expr:
    """``ARRAY_LENGTH(NULL)`` is NULL; Spark's SIZE gives -1 for it when ANSI mode is off."""
    return _fn("ARRAY_SIZE", node.this) if isinstance(node, exp.ArraySize) else node


def _in_unnest(node: exp.Expr) -> exp.Expr:
    """``x IN UNNEST(a)``: ARRAY_CONTAINS, FALSE for an empty or NULL ``a`` as in BigQuery.

    sqlglot emits ``x IN (SELECT EXPLODE(a))``, a correlated subquery.
    """
    unnest = node.args.get("unnest") if isinstance(node, exp.In) else None
    if not isinstance(unnest, exp.Unnest) or len(unnest.expressions) != 1:
        return node
    array = unnest.expressions[0]
    some = exp.GT(this=_fn("ARRAY_SIZE", array.copy()), expression=exp.Literal.number(0))
    return exp.If(this=some, true=_fn("ARRAY_CONTAINS", array, node.this), false=exp.false())
