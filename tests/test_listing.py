"""dcm_spark.listing without Spark: which listed files a run parses."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from dcm_spark.delta.keys import Known, keys_of
from dcm_spark.listing import LISTING_SCHEMA, to_parse
from tests.helpers import A, B, C, D, listed, rows_of


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


def test_overlapping_inputs_list_each_file_once_in_path_order(tmp_path: Path) -> None:
    import os

    from dcm_spark.listing import list_files

    for name in ("b.dcm", "a.dcm", "sub/x.dcm", "a.x", "sub.dcm"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(name.encode())
    on_disk = sorted(
        f"file:{os.path.join(folder, name)}"
        for folder, _, names in os.walk(tmp_path)
        for name in names
    )
    inputs = (str(tmp_path), str(tmp_path / "sub"), str(tmp_path / "b.dcm"), str(tmp_path))
    listing = list_files(None, inputs)
    assert paths(listing) == on_disk
    assert listing.column("_size").to_pylist() == [
        os.path.getsize(p.removeprefix("file:")) for p in on_disk
    ]
    assert list_files(None, (str(tmp_path / "a.x"),)).num_rows == 1
