"""The keys (path, size, mtime) of the files a table holds, and a local table's keys kept by
version for the next run: a run that finds nothing new reads one small file instead of
every data file's footer."""

from __future__ import annotations

import contextlib
import hashlib
import os
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from dcm_spark.delta.commit import commit_actions, commit_file
from dcm_spark.delta.table import exists, has_log, latest_version
from dcm_spark.paths import control_dir, local_path
from dcm_spark.records import FILE_KEY_SCHEMA, listed_paths

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


#: A file's key: what tells a run that the table already holds this version of it
#: (`dcm_spark.records.FILE_KEY_SCHEMA`, the modification time in ms).
KEY_SCHEMA = pa.schema([*FILE_KEY_SCHEMA][:2] + [("_mtime", pa.int64())])


def keys_of(files: pa.Table) -> pa.Table:
    """The keys (`KEY_SCHEMA`, mtime in ms) of a listing or of a table's rows (a member's
    row is keyed by its archive: `dcm_spark.records.listed_paths`; a key may repeat)."""
    mtimes = files.column("_mtime").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
    columns = [
        listed_paths(files.column("_path").cast(pa.string())),
        files.column("_size").cast(pa.int64()),
        mtimes,
    ]
    return pa.Table.from_arrays(columns, schema=KEY_SCHEMA)


@dataclass(frozen=True)
class Known:
    """The keys of the files a table holds, at the Delta ``version`` they were read at
    (None: read through Spark, which gives no version here)."""

    keys: pa.Table
    version: int | None = None


def known_files(spark: SparkSession, path: str) -> Known | None:
    """The files a table already holds; None if no table.

    A local table's keys come from what a run kept for its latest version (`KEPT_KEYS`),
    or else are read with delta-rs, without the JVM (a fresh Spark session needs ~7 s for
    its first query of a wide table, most of a run that finds nothing new), and kept.
    Elsewhere (or if delta-rs cannot read the table) Spark reads it.
    """
    columns = ["_path", "_size", "_mtime"]
    local = local_path(path)
    if local is not None:
        if not has_log(local):
            return None
        version = latest_version(local)
        kept = None if version is None else _kept_keys(local, version)
        if kept is not None:
            return Known(kept, version)
        try:
            from deltalake import DeltaTable

            delta_table = DeltaTable(local)
            rows = delta_table.to_pyarrow_table(columns=columns)
            known = Known(keys_of(rows), delta_table.version())
            _keep_keys(local, known)
            return known
        except Exception:  # a table feature delta-rs does not read: Spark does
            pass
    if not exists(spark, path):
        return None
    return Known(keys_of(spark.read.format("delta").load(path).select(*columns).toArrow()))


def remember_append(path: str, before: Known | None, added: pa.Table, version: int) -> None:
    """After the commit of ``version`` that only added rows with the ``added`` keys to
    what the table held ``before`` (None: no table): keep the table's keys for the next
    run, if that commit was made on top of ``before`` and is still the latest (no other
    writer committed in between or since)."""
    local = local_path(path)
    if local is None:
        return
    if before is None:
        on_top, held = version == 0, KEY_SCHEMA.empty_table()
    else:
        on_top, held = before.version is not None and version == before.version + 1, before.keys
    try:
        if on_top and latest_version(local) == version:
            _keep_keys(local, Known(pa.concat_tables([held, added]), version))
    except Exception:  # only a cache: the next run reads the table
        pass


def remember_rewrite(path: str, before: Known | None, operation: str = "OPTIMIZE") -> None:
    """After ``operation`` (a commit that moves rows between data files, changing none)
    committed on top of ``before``: keep ``before``'s keys for that commit, so the next
    run does not read the table again. Only when the commit right after ``before`` is the
    latest and its commit info names ``operation`` (another writer's commit in between
    would hold files these keys lack)."""
    local = local_path(path)
    if local is None or before is None or before.version is None:
        return
    version = before.version + 1
    try:
        if latest_version(local) != version:
            return
        actions = commit_actions(local, version)
        infos = [a["commitInfo"] for a in actions if "commitInfo" in a]
        if infos and infos[0].get("operation") == operation:
            _keep_keys(local, Known(before.keys, version))
    except Exception:  # only a cache: the next run reads the table
        pass


#: A local table's keys at its latest version, in its control directory, filed under the
#: version and the SHA-256 of that version's commit file: a run that finds the table at
#: that commit reads them instead of every data file (wide footers: a no-op's comparison
#: 0.18-0.20 -> 0.10-0.15 s at 30,000 files, 0.55 -> 0.37-0.40 s at 100,000). Any commit,
#: or a table made again, changes that, so keys of another commit are never used; only
#: one file is kept.
KEPT_KEYS = "known-{version}.parquet"


def _commit_digest(root: str, version: int) -> bytes | None:
    try:
        with open(commit_file(root, version), "rb") as commit:
            return hashlib.sha256(commit.read()).hexdigest().encode()
    except OSError:
        return None


def _kept_keys(root: str, version: int) -> pa.Table | None:
    kept = os.path.join(control_dir(root), KEPT_KEYS.format(version=version))
    try:
        keys = pq.ParquetFile(kept).read()
        filed = (keys.schema.metadata or {}).get(b"commit")
    except Exception:  # no keys, or unreadable: the table is read
        return None
    if not keys.schema.equals(KEY_SCHEMA) or filed != _commit_digest(root, version):
        return None
    return keys


def _keep_keys(root: str, known: Known) -> None:
    """File ``known`` for the next run (only a cache: if it cannot be written, the next
    run reads the table)."""
    if known.version is None:
        return
    digest = _commit_digest(root, known.version)
    if digest is None:
        return
    directory = control_dir(root)
    name = KEPT_KEYS.format(version=known.version)
    scratch = os.path.join(directory, f".{name}.{uuid.uuid4().hex}")
    try:
        os.makedirs(directory, exist_ok=True)
        keys = known.keys.replace_schema_metadata({b"commit": digest})
        pq.write_table(keys, scratch, compression="zstd")
        os.replace(scratch, os.path.join(directory, name))  # whole, or not at all
    except Exception:  # only a cache
        with contextlib.suppress(OSError):
            os.remove(scratch)
        return
    with contextlib.suppress(OSError):
        for old in os.listdir(directory):
            if old != name and old.lstrip(".").startswith("known-"):
                with contextlib.suppress(OSError):
                    os.remove(os.path.join(directory, old))
