"""The app's gate for SQL typed into a web page: one read-only query over the registered views.

A SQL box on a web page is a door into the server, so `check_query` lets through only what a
researcher needs to read the table and nothing that writes, configures or reads elsewhere:

- exactly one statement, a query (``SELECT``, ``WITH ... SELECT``, set operations, ``VALUES``);
  no DDL or DML, ``SET``, ``ADD JAR``, ``LOAD DATA``, ``CACHE``, ``SELECT ... INTO``;
- tables only by the names `dcm_spark.catalog.VIEWS` registers (or the query's own ``WITH``
  names), never qualified (``parquet.`/etc```, ``delta.`...```, ``default.x``), never a
  table-valued function (``read_files(...)``, ``range(...)``, ``IDENTIFIER(...)``);
- no function that reaches outside the data (``reflect``, ``java_method``, ...).

It parses with sqlglot (Spark dialect) and needs no Spark. The refusal is one line saying
what was refused, without echoing the query (which may hold a patient's name).
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from dcm_spark.catalog import VIEWS
from dcm_spark.errors import DcmSparkError

#: Functions that reach the JVM, the files or the session: never in a query from the page.
DENIED_FUNCTIONS = frozenset(
    {
        "reflect",
        "java_method",
        "try_reflect",
        "read_files",
        "identifier",
        "input_file_name",
        "input_file_block_start",
        "input_file_block_length",
        "current_user",
        "session_user",
        "user",
        "current_catalog",
        "current_database",
        "current_schema",
        "version",
    }
)

#: The longest query text the page accepts (characters).
MAX_QUERY_CHARS = 100_000


class QueryRefused(DcmSparkError, ValueError):
    """A query the app does not run; the message says why, in one line."""


def check_query(sql: str, views: Collection[str] = VIEWS) -> str:
    """Return ``sql`` (stripped of a trailing ``;``) if it is one read-only query over
    ``views``; raise `QueryRefused` otherwise.

    Examples
    --------
    >>> check_query("SELECT Modality, count(*) FROM dicom GROUP BY 1")
    'SELECT Modality, count(*) FROM dicom GROUP BY 1'
    """
    text = sql.strip().rstrip(";").strip()
    if not text:
        raise QueryRefused("refused: the query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise QueryRefused(f"refused: the query is longer than {MAX_QUERY_CHARS} characters")
    quiet = logging.getLogger("sqlglot")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # "falling back to parsing as a Command" is ours to say
    try:
        statements = [s for s in sqlglot.parse(text, dialect="spark") if s is not None]
    except (ParseError, TokenError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise QueryRefused(f"refused: not valid Spark SQL ({first[:160]})") from None
    finally:
        quiet.setLevel(level)
    if len(statements) != 1:
        raise QueryRefused("refused: one statement at a time (no ';' between statements)")
    (tree,) = statements
    if not isinstance(tree, exp.Query):
        kind = "a command" if isinstance(tree, exp.Command) else type(tree).__name__.upper()
        raise QueryRefused(f"refused: only read-only queries (SELECT or WITH) run here, not {kind}")
    _check_tree(tree, {v.lower() for v in views})
    return text


def _check_tree(tree: Any, views: set[str]) -> None:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    for node in tree.walk():
        if isinstance(node, exp.Into):
            raise QueryRefused("refused: SELECT ... INTO writes a table")
        if isinstance(node, exp.DDL | exp.DML | exp.Command | exp.Set):
            raise QueryRefused("refused: only read-only queries (SELECT or WITH) run here")
        if isinstance(node, exp.Table):
            _check_table(node, views, ctes)
        elif isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name in DENIED_FUNCTIONS:
                raise QueryRefused(f"refused: the function {name}() is not allowed here")


def _check_table(table: exp.Table, views: set[str], ctes: set[str]) -> None:
    if not isinstance(table.this, exp.Identifier):
        name = table.this.name if isinstance(table.this, exp.Anonymous) else "a function"
        raise QueryRefused(
            f"refused: table-valued functions ({name}(...)) are not allowed; "
            f"read the views: {', '.join(sorted(views))}"
        )
    if table.args.get("db") or table.args.get("catalog"):
        raise QueryRefused(
            "refused: qualified or file-path tables (like parquet.`/path`) are not allowed; "
            f"read the views: {', '.join(sorted(views))}"
        )
    name = table.name.lower()
    if name not in views and name not in ctes:
        raise QueryRefused(
            f"refused: unknown table {table.name[:60]!r}; read the views: "
            f"{', '.join(sorted(views))}"
        )
