"""One exception root for the project.

Messages name the file, tag and VR, never a patient's value.
"""

from __future__ import annotations


class DcmSparkError(Exception):
    """Root of every error raised by dcm-spark."""


class EnvironmentProblem(DcmSparkError, RuntimeError):
    """The machine cannot run Spark as configured (Java missing, jars unresolvable)."""


class SchemaConflict(DcmSparkError, TypeError):
    """Two types meet that the promotion lattice can only join as JSON text."""


class ConfigError(DcmSparkError, ValueError):
    """An option or configuration value is invalid."""
