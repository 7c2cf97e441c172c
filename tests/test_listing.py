"""dcm_spark.listing without Spark: which listed files a run parses, and the keys it keeps.

Tables are real Delta tables written with delta-rs; a local table needs no JVM here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from dcm_spark.listing import (
    LISTING_SCHEMA,
    Known,
    keys_of,
    known_files,
    remember_append,
    to_parse,
)


def listed(*files: tuple[str, int, int]) -> pa.Table:
    """A listing: (path, size, mtime in ms)."""
    paths, sizes, mtimes = zip(*files, strict=True)
    return pa.table(
        [
            pa.array(paths, pa.string()),
            pa.array(sizes, pa.int64()),
            pa.array(mtimes, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
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


def paths(todo: pa.Table) -> list[str]:
    return todo.column("_path").to_pylist()


def test_new_files_keep_the_listing_s_order_and_columns() -> None:
    listing = listed(D, B, A, C)
    todo, changed = to_parse(listing, Known(keys_of(rows_of(B, C))), None)
    assert paths(todo) == ["/d/d.dcm", "/d/a.dcm"]
    assert todo.schema == LISTING_SCHEMA
    assert changed == []


def test_no_table_parses_everything() -> None:
    listing = listed(A, B)
    todo, changed = to_parse(listing, None, None)
    assert todo.equals(listing) and changed == []
    empty = Known(keys_of(rows_of(A).slice(0, 0)))
    todo, changed = to_parse(listing, empty, empty)
    assert paths(todo) == ["/d/a.dcm", "/d/b.dcm"] and changed == []


def test_a_changed_size_or_mtime_is_a_changed_file_only_if_the_table_holds_it() -> None:
    grown = ("/d/a.dcm", 11, 1000)
    touched = ("/d/b.dcm", 20, 2001)
    failed_before = ("/d/c.dcm", 31, 3000)  # its old version is in the errors table
    in_table = Known(keys_of(rows_of(A, B)))
    in_errors = Known(keys_of(rows_of(C)))
    todo, changed = to_parse(listed(grown, touched, failed_before, D), in_table, in_errors)
    assert paths(todo) == ["/d/a.dcm", "/d/b.dcm", "/d/c.dcm", "/d/d.dcm"]
    assert changed == ["/d/a.dcm", "/d/b.dcm"]


def test_keys_held_twice_or_in_chunks_count_once() -> None:
    keys = pa.concat_tables([keys_of(rows_of(A, B)), keys_of(rows_of(B)), keys_of(rows_of(C))])
    assert keys.column("_path").num_chunks == 3
    todo, changed = to_parse(listed(A, B, C, D), Known(keys), Known(keys_of(rows_of(A))))
    assert paths(todo) == ["/d/d.dcm"] and changed == []


def test_a_millisecond_apart_is_another_version() -> None:
    todo, _ = to_parse(listed(("/d/a.dcm", 10, 1001)), Known(keys_of(rows_of(A))), None)
    assert paths(todo) == ["/d/a.dcm"]


@pytest.fixture()
def table(tmp_path: Path) -> Path:
    root = tmp_path / "dicom"
    write_deltalake(str(root), rows_of(A, B))
    return root


def kept(table: Path) -> list[Path]:
    return sorted((table / "_dcm_spark").glob("*known-*"))


def as_tuples(known: Known) -> list[tuple[str, int, int]]:
    data = known.keys.to_pydict()
    return sorted(zip(data["_path"], data["_size"], data["_mtime"], strict=True))


def test_a_table_s_keys_are_read_then_kept_for_its_latest_commit(table: Path) -> None:
    known = known_files(None, str(table))
    assert known is not None and known.version == 0
    assert as_tuples(known) == sorted([A, B])
    assert [p.name for p in kept(table)] == ["known-0.parquet"]
    # the kept file is what the next run reads: a planted key shows it
    planted = pq.read_table(kept(table)[0])
    pq.write_table(
        pa.concat_tables([planted, keys_of(rows_of(C)).cast(planted.schema)]), kept(table)[0]
    )
    again = known_files(None, str(table))
    assert again is not None and as_tuples(again) == sorted([A, B, C])


def test_keys_of_another_commit_are_never_used(table: Path) -> None:
    known_files(None, str(table))
    stale = kept(table)[0].read_bytes()
    # another writer's commit: a new version
    write_deltalake(str(table), rows_of(C), mode="append")
    known = known_files(None, str(table))
    assert known is not None and known.version == 1
    assert as_tuples(known) == sorted([A, B, C])
    assert [p.name for p in kept(table)] == ["known-1.parquet"]  # the older file is gone
    # the table made again from scratch: version 0 again, another commit
    shutil.rmtree(table / "_delta_log")
    for data_file in table.glob("*.parquet"):
        data_file.unlink()
    write_deltalake(str(table), rows_of(D))
    (table / "_dcm_spark" / "known-0.parquet").write_bytes(stale)  # left from the old table
    known = known_files(None, str(table))
    assert known is not None and (known.version, as_tuples(known)) == (0, [D])


def test_an_unreadable_kept_file_is_ignored(table: Path) -> None:
    (table / "_dcm_spark").mkdir()
    (table / "_dcm_spark" / "known-0.parquet").mkdir()  # not a file
    known = known_files(None, str(table))
    assert known is not None and as_tuples(known) == sorted([A, B])
    (table / "_dcm_spark" / "known-0.parquet").rmdir()
    (table / "_dcm_spark" / "known-0.parquet").write_bytes(b"not parquet")
    known = known_files(None, str(table))
    assert known is not None and as_tuples(known) == sorted([A, B])
    assert pq.read_table(kept(table)[0]).num_rows == 2  # and replaced by a good one


def test_an_append_s_keys_are_kept_only_for_its_own_commit(table: Path) -> None:
    before = known_files(None, str(table))
    assert before is not None
    old_files = {Path(u).name for u in DeltaTable(str(table)).file_uris()}
    write_deltalake(str(table), rows_of(C), mode="append")  # the commit of "this run"
    (added,) = {Path(u).name for u in DeltaTable(str(table)).file_uris()} - old_files
    remember_append(str(table), before, keys_of(rows_of(C)), ["someone-else.parquet"])
    assert [p.name for p in kept(table)] == ["known-0.parquet"]  # not filed: not its files
    remember_append(str(table), before, keys_of(rows_of(C)), [added])
    assert [p.name for p in kept(table)] == ["known-1.parquet"]
    known = known_files(None, str(table))
    assert known is not None and as_tuples(known) == sorted([A, B, C])
    # another commit after it: nothing filed for the older one
    write_deltalake(str(table), rows_of(D), mode="append")
    remember_append(str(table), known, keys_of(rows_of(D)), [added])
    assert [p.name for p in kept(table)] == ["known-1.parquet"]


def test_no_kept_keys_where_commits_may_wait_outside_the_log(table: Path) -> None:
    known_files(None, str(table))
    planted = pq.read_table(kept(table)[0])
    pq.write_table(
        pa.concat_tables([planted, keys_of(rows_of(C)).cast(planted.schema)]), kept(table)[0]
    )
    (table / "_delta_log" / "_staged_commits").mkdir()  # a catalog-managed table's
    known = known_files(None, str(table))
    assert known is not None and as_tuples(known) == sorted([A, B])
