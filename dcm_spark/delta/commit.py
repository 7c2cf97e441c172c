"""The commit: the run's data files added to the table in one Delta commit, with delta-rs
for a local table that is created or only gets files, else through Delta's JVM."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa
from pyspark.sql.pandas.types import to_arrow_schema

from dcm_spark.delta.jvm import DeltaLog
from dcm_spark.delta.properties import table_properties
from dcm_spark.delta.table import has_log, schema_of, spark_schema
from dcm_spark.errors import DcmSparkError
from dcm_spark.paths import local_path
from dcm_spark.records import DataFile
from dcm_spark.schema import fits

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def commit_files(spark: SparkSession, path: str, schema: pa.Schema, files: list[DataFile]) -> int:
    """Add data files the workers wrote to the table in one Delta commit; its version.

    The same commit creates the table, adds new columns and sets the table properties
    when needed, so a run adds all its rows and columns or nothing. Every file must
    already be written with ``schema`` or a part of it (`dcm_spark.schema.fits`).

    A local table is committed with delta-rs when the commit creates it or only adds
    files: 10 ms, where a fresh JVM's first Delta commit took 1.1 s. A commit that
    changes an existing table's schema or properties, and any table elsewhere, goes
    through Delta's JVM (`dcm_spark.delta.jvm.DeltaLog`; a delta-rs append cannot change
    the table's metadata).

    Raises
    ------
    DcmSparkError
        If the table's schema now has a column ``schema`` lacks or types differently
        (changed by another writer during the run): nothing is committed.
    """
    local = local_path(path)
    version = None if local is None else _commit_local(local, schema, files)
    return _commit_jvm(spark, path, schema, files) if version is None else version


def _commit_local(root: str, schema: pa.Schema, files: list[DataFile]) -> int | None:
    """Create the table with the files, or append them with its schema and properties
    unchanged, through delta-rs, and return the version; None (nothing done) when the
    commit is not one of those or the table needs writer features delta-rs is not asked
    to handle here."""
    from deltalake import DeltaTable, Schema
    from deltalake.exceptions import DeltaError
    from deltalake.transaction import AddAction, RemoveAction, create_table_with_add_actions

    wanted = spark_schema(schema).json()  # the schema the JVM commit would write
    adds = [
        AddAction(a["path"], a["size"], {}, a["modificationTime"], True, a["stats"])
        for a in (f.add_action() for f in files)
    ]
    config = table_properties(schema)
    if not has_log(root):
        try:
            create_table_with_add_actions(
                root, Schema.from_json(wanted), adds, mode="error", configuration=config
            )
        except DeltaError as exc:  # another writer created the table meanwhile
            raise DcmSparkError(
                f"{root}: the table could not be created ({exc}); nothing committed: run again"
            ) from exc
        return 0
    try:
        table = DeltaTable(root)
    except Exception:  # a table feature delta-rs does not read: the JVM commits
        return None
    protocol = table.protocol()
    current = dict(table.metadata().configuration)
    if (
        protocol.min_writer_version > 2
        or json.loads(table.schema().to_json()) != json.loads(wanted)
        or {**current, **config} != current
    ):
        return None
    before = table.version()
    actions: list[AddAction | RemoveAction] = [*adds]
    try:
        table.create_write_transaction(actions, "append", Schema.from_json(wanted))
    except DeltaError as exc:  # another writer changed the table meanwhile
        raise DcmSparkError(
            f"{root} changed while this run committed (another writer): {exc}; "
            "nothing was committed: run again"
        ) from exc
    return _version_adding(root, before + 1, files[0].name if files else None)


def _version_adding(root: str, first: int, name: str | None) -> int:
    """The version, from ``first`` on, whose commit adds the data file ``name``: delta-rs
    does not say which version its commit became (another writer may have committed
    first, and delta-rs then retries an append on top)."""
    version = first
    while name is not None:
        try:
            actions = commit_actions(root, version)
        except FileNotFoundError:
            break
        if any(unquote(a["add"]["path"]) == name for a in actions if "add" in a):
            return version
        version += 1
    return first


def commit_file(root: str, version: int) -> str:
    """The commit file of ``version`` in a local table's log."""
    return os.path.join(root, "_delta_log", f"{version:020d}.json")


def commit_actions(root: str, version: int) -> list[dict[str, Any]]:
    """The actions (add, remove, commitInfo...) of ``version``'s commit in a local table."""
    with open(commit_file(root, version), encoding="utf-8") as log:
        return [json.loads(line) for line in log if line.strip()]


def _commit_jvm(spark: SparkSession, path: str, schema: pa.Schema, files: list[DataFile]) -> int:
    log = DeltaLog(spark, path)
    metadata = log.metadata()
    wanted = spark_schema(schema)
    current = schema_of(metadata)
    if current is not None and not fits(to_arrow_schema(current, timezone="UTC"), schema):
        raise DcmSparkError(
            f"the schema of {path} changed while this run parsed (another writer); "
            "nothing was committed: run again"
        )
    config = metadata.get("configuration", {})
    new_config = {**config, **table_properties(schema)}
    if current is None or current != wanted or new_config != config:
        log.update_metadata(metadata | {"schemaString": wanted.json(), "configuration": new_config})
    return log.commit([f.add_action() for f in files])
