"""The Query tab's examples: the README's cookbook queries (each a ```sql block whose first
line is ``-- name``), and the README's BigQuery example, read from the project's README.md."""

from __future__ import annotations

import re
from pathlib import Path

from dcm_spark.session import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
_BLOCK = re.compile(r"```sql\n(.*?)```", re.S)
_NAMED = re.compile(r"-- (\S+)[^\n]*\n(.*)", re.S)


def cookbook(readme: Path = README) -> dict[str, tuple[str, str]]:
    """Examples by name: (dialect, query). Empty when there is no README (a Space's own)."""
    try:
        text = readme.read_text(encoding="utf-8")
    except OSError:
        return {}
    found: dict[str, tuple[str, str]] = {}
    for block in _BLOCK.findall(text):
        named = _NAMED.match(block)
        if named:
            found[named.group(1)] = ("spark", named.group(2).strip())
        elif "DECLARE" in block or "`bigquery-public-data" in block:
            found["bigquery-by-modality"] = ("bigquery", block.strip())
    return found
