"""dcm_spark.delta.keys without Spark: the keys a table holds, and those kept for the next run.

Tables are real Delta tables written with delta-rs; a local table needs no JVM here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake

from dcm_spark.delta.keys import Known, keys_of, known_files, remember_append
from tests.helpers import A, B, C, D, rows_of


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
    write_deltalake(str(table), rows_of(C), mode="append")  # "this run's" commit: version 1
    remember_append(str(table), before, keys_of(rows_of(C)), 2)
    assert [p.name for p in kept(table)] == ["known-0.parquet"]  # not filed: not on `before`
    remember_append(str(table), before, keys_of(rows_of(C)), 1)
    assert [p.name for p in kept(table)] == ["known-1.parquet"]
    known = known_files(None, str(table))
    assert known is not None and as_tuples(known) == sorted([A, B, C])
    # another commit after it: nothing filed for the older one
    write_deltalake(str(table), rows_of(D), mode="append")
    remember_append(str(table), before, keys_of(rows_of(C)), 1)
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
