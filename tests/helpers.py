"""Helpers the test modules share: listings and rows of made-up files, and what the tests
of ingest runs read back from a table."""

from __future__ import annotations

import pyarrow as pa

from dcm_spark.listing import LISTING_SCHEMA


def listed(*files: tuple[str, int, int]) -> pa.Table:
    """A listing: (path, size, mtime in ms)."""
    paths, sizes, mtimes = zip(*files, strict=True)
    return pa.table(
        [
            pa.array(paths, pa.string()),
            pa.array(sizes, pa.int64()),
            pa.array([m * 1000 for m in mtimes], pa.int64()).cast(
                LISTING_SCHEMA.field("_mtime").type
            ),
        ],
        schema=LISTING_SCHEMA,
    )


def rows_of(*files: tuple[str, int, int]) -> pa.Table:
    """Instance rows as the table holds them: mtime in microseconds, and other columns."""
    paths, sizes, mtimes = zip(*files, strict=True)
    return pa.table(
        {
            "_path": pa.array(paths, pa.string()),
            "_size": pa.array(sizes, pa.int64()),
            "_mtime": pa.array([m * 1000 for m in mtimes], pa.int64()).cast(
                pa.timestamp("us", tz="UTC")
            ),
            "Modality": pa.array(["CT"] * len(paths), pa.string()),
        }
    )


A = ("/d/a.dcm", 10, 1000)
B = ("/d/b.dcm", 20, 2000)
C = ("/d/c.dcm", 30, 3000)
D = ("/d/d.dcm", 40, 4000)
