"""One exception root for the project.

Messages name the file, tag and VR, never a patient's value.
"""

from __future__ import annotations

import re


class DcmSparkError(Exception):
    """Root of every error raised by dcm-spark."""


class EnvironmentProblem(DcmSparkError, RuntimeError):
    """The machine cannot run Spark as configured (Java missing, jars unresolvable)."""


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"|b'[^']*'")


def safe_message(exc: BaseException, limit: int = 300) -> str:
    """An exception's message with every quoted fragment removed.

    Parsers quote the values they choke on ("invalid literal for int(): 'SMITH'");
    those may be a patient's data, so they never reach a log or an error table.
    """
    text = _QUOTED.sub("<value>", str(exc)).replace("\n", " ").strip()
    return (text[:limit] + "...") if len(text) > limit else text or type(exc).__name__
