"""The Schema tab's page: the table's schema as BigQuery shows it (Field name, Type, Mode,
Description, from `dcm_spark.catalog.bigquery_schema`) as an HTML tree whose RECORDs fold
(``<details>``), with each top-level column's fill rate and promotion history, and a filter.

Pure functions of the schema entries and counts; no Spark.
"""

from __future__ import annotations

from html import escape
from typing import Any

CSS = """
.dcm-schema { font-family: ui-monospace, monospace; font-size: 13px; }
.dcm-schema summary, .dcm-schema .leaf { display: grid; gap: 0 12px;
  grid-template-columns: minmax(16em, 2fr) 7em 7em 5em minmax(16em, 4fr); padding: 1px 0; }
.dcm-schema summary { cursor: pointer; list-style: none; }
.dcm-schema summary::-webkit-details-marker { display: none; }
.dcm-schema .name { padding-left: calc(var(--depth, 0) * 1.5em + 1.2em); }
.dcm-schema summary .name::before { content: "\\25B8"; display: inline-block; width: 1.2em;
  margin-left: -1.2em; }
.dcm-schema details[open] > summary .name::before { content: "\\25BE"; }
.dcm-schema .head { font-weight: bold; border-bottom: 1px solid #999; }
.dcm-schema .promoted { color: #b45309; }
"""


def matches(entry: dict[str, Any], needle: str) -> bool:
    """Does the field, or any field inside it, name or describe ``needle``?"""
    if not needle:
        return True
    text = f"{entry['name']} {entry['description']}".lower()
    return needle in text or any(matches(f, needle) for f in entry.get("fields", []))


def schema_html(
    fields: list[dict[str, Any]],
    fill: dict[str, int],
    promotions: dict[str, list[str]],
    needle: str = "",
) -> str:
    """The tree as HTML: one row per field, RECORDs as ``<details>`` (unfolded when the
    filter found something inside them).

    Parameters
    ----------
    fields
        `dcm_spark.catalog.bigquery_schema` of the table.
    fill
        Non-null counts by top-level column, and the row count under ``""``.
    promotions
        Promotion history lines by top-level column (`AppState.promotions`).
    needle
        The filter: a case-insensitive part of a name or description.
    """
    needle = needle.strip().lower()
    rows = fill.get("", 0)
    shown = [f for f in fields if matches(f, needle)]
    head = (
        '<div class="leaf head"><span>Field name</span><span>Type</span><span>Mode</span>'
        "<span>Filled</span><span>Description</span></div>"
    )
    body = "".join(_entry(f, 0, fill, rows, promotions, needle) for f in shown)
    total = f"{len(shown)} of {len(fields)} columns, {rows} rows"
    return f'<div class="dcm-schema"><p>{total}</p>{head}{body}</div>'


def _entry(
    entry: dict[str, Any],
    depth: int,
    fill: dict[str, int],
    rows: int,
    promotions: dict[str, list[str]],
    needle: str,
) -> str:
    name = escape(entry["name"])
    rate = ""
    history: list[str] = []
    if depth == 0:
        if rows and entry["name"] in fill:
            rate = f"{100 * fill[entry['name']] / rows:.0f}%"
        history = promotions.get(entry["name"], [])
    mark = ""
    if history:
        title = escape("promoted: " + "; ".join(history), quote=True)
        mark = f' <span class="promoted" title="{title}">(promoted)</span>'
    description = escape(entry["description"])
    if history:
        description += "<br>" + "<br>".join(escape(h) for h in history)
    cells = (
        f'<span class="name" style="--depth: {depth}">{name}{mark}</span>'
        f"<span>{escape(entry['type'])}</span>"
        f"<span>{escape(entry['mode'])}</span><span>{rate}</span><span>{description}</span>"
    )
    children = entry.get("fields")
    if not children:
        return f'<div class="leaf" data-field="{name}">{cells}</div>'
    inner_needle = (
        "" if needle and needle in f"{entry['name']} {entry['description']}".lower() else needle
    )
    inner = "".join(
        _entry(f, depth + 1, fill, rows, promotions, inner_needle)
        for f in children
        if matches(f, inner_needle)
    )
    opened = " open" if needle and inner_needle else ""
    return f'<details data-field="{name}"{opened}><summary>{cells}</summary>{inner}</details>'
