"""The conversion policy (`HeaderOptions`) the driver passes to the workers' converter."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HeaderOptions:
    """Policy for converting headers, passed explicitly to the workers.

    Parameters
    ----------
    max_depth
        Deepest sequence nesting kept as columns (BigQuery's limit, 15, by default);
        deeper subtrees are kept as DICOM JSON text in ``OtherElements``.
    defer_size
        Values longer than this (bytes) are not read while parsing; binary ones are
        only listed in ``_BulkData``, text ones are read on their own afterwards.
    max_value_size
        Text or number values longer than this (bytes) are not read at all: the column
        is null and ``OtherElements`` says how long the value was (memory stays bounded).
    time_budget
        Seconds one file may take (a hung network read, a pathological file); past it
        the file becomes a `FileError` of class ``FileTimeout``. None: no limit. Applies
        in the main thread (Spark's Python workers; the driver, for a run it parses
        itself), through SIGALRM.
    """

    max_depth: int = 15
    defer_size: int = 4096
    max_value_size: int = 1 << 20
    time_budget: float | None = 30.0

    def __post_init__(self) -> None:
        if self.max_depth < 1:
            raise ValueError(f"max_depth must be at least 1, not {self.max_depth}")
        if self.defer_size < 64:
            raise ValueError(f"defer_size must be at least 64 bytes, not {self.defer_size}")
