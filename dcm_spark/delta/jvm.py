"""The one wrapper around the JVM side: the session's JVM, Hadoop filesystems, and Delta's
transaction log for committing files the workers already wrote.

Delta's public API (``io.delta.tables.DeltaTable``, the DataFrame writer) writes rows, it
does not add existing Parquet files. Committing the workers' files therefore uses Delta's
internal ``DeltaLog`` / ``OptimisticTransaction`` (as Delta's own ``CONVERT TO DELTA`` and
its tests do): `DeltaLog` below is the only place that touches them. A local table is
committed with delta-rs instead whenever it can be (`dcm_spark.delta.commit`).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from dcm_spark.errors import DcmSparkError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def jvm(spark: SparkSession) -> Any:
    """The session's py4j JVM view."""
    view = spark.sparkContext._jvm
    if view is None:
        raise DcmSparkError("the Spark session has no JVM (stopped?)")
    return view


def hadoop_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """The Hadoop FileSystem of ``path`` and its Hadoop ``Path``."""
    hpath = jvm(spark).org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hpath


class DeltaLog:
    """A table's Delta log, through Delta's internal JVM classes (see the module's doc).

    One transaction at a time: `metadata` starts it (reading the log's latest state) and
    `commit` ends it.
    """

    def __init__(self, spark: SparkSession, path: str) -> None:
        self._spark = spark
        self._delta = jvm(spark).org.apache.spark.sql.delta
        log = self._delta.DeltaLog.forTable(spark._jsparkSession, path)
        self._transaction = log.startTransaction()

    def metadata(self) -> dict[str, Any]:
        """The table's ``metaData`` action as the log has it ({} schema-less if no table)."""
        return dict(json.loads(self._transaction.metadata().json())["metaData"])

    def update_metadata(self, metadata: dict[str, Any]) -> None:
        self._transaction.updateMetadata(self._action({"metaData": metadata}), False)

    def commit(self, adds: list[dict[str, Any]]) -> int:
        """Commit ``add`` actions as a Spark append would record them; the new version."""
        view = jvm(self._spark)
        actions = view.java.util.ArrayList()
        for add in adds:
            actions.add(self._action({"add": add}))
        listed = view.scala.jdk.javaapi.CollectionConverters.asScala(actions).toList()
        return int(self._transaction.commit(listed, self._append_operation()))

    def _action(self, action: dict[str, Any]) -> Any:
        """A Delta action (``{"add": ...}``, ``{"metaData": ...}``) from its log JSON."""
        actions = getattr(self._delta.actions, "Action$").__getattr__("MODULE$")
        return actions.fromJson(json.dumps(action))

    def _append_operation(self) -> Any:
        """Delta's ``WRITE`` operation in append mode, as a Spark append records it.

        Built by reflection: its constructor takes the save mode and a version-dependent
        number of optional arguments, all left empty.
        """
        view = jvm(self._spark)
        write = view.py4j.reflection.ReflectionUtil.classForName(
            "org.apache.spark.sql.delta.DeltaOperations$Write"
        )
        for constructor in write.getConstructors():
            kinds = [t.getName() for t in constructor.getParameterTypes()]
            if set(kinds) <= {"org.apache.spark.sql.SaveMode", "scala.Option"}:
                gateway = self._spark.sparkContext._gateway
                if gateway is None:
                    raise DcmSparkError("the Spark session has no JVM gateway (stopped?)")
                args = gateway.new_array(view.java.lang.Object, len(kinds))
                append = view.org.apache.spark.sql.SaveMode.Append
                for i, kind in enumerate(kinds):
                    args[i] = append if kind.endswith("SaveMode") else view.scala.Option.empty()
                return constructor.newInstance(args)
        raise DcmSparkError("this Delta version has no WRITE operation of the expected shape")
