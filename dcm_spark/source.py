"""``spark.read.format("dicom")``: DICOM headers as a DataFrame, without a table.

A Spark Python data source (Spark 4's Python Data Source API). `register` makes it known
to a session (`dcm_spark.catalog.register` does too); then::

    spark.read.format("dicom").option("maxDepth", 15).load("/data/dicom")

gives one row per file (an archive's members are files; ``s3://``, ``gs://`` and
``dicomweb+http://`` inputs too) with the same columns and values as the ingest's table,
``_path``, ``_size`` and ``_mtime``, and ``_error``: null for a file that gave a row,
"ErrorClass: message" for one that did not (its other columns null). A bad file never
fails the job.

The schema is inferred from the files (each is read once for it, on the driver's planner),
or given with ``.schema(...)``; partitions are runs of consecutive files
(``filesPerPartition``, default 500). Options: ``maxDepth``, ``maxValueSize`` (bytes),
``timeBudget`` (seconds per file), ``anonymous`` (object storage without credentials).
Only listing that needs no Spark session is possible here: local paths, ``file:``,
``s3://``, ``gs://`` and DICOMweb; Hadoop URIs go through the ingest job.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.pandas.types import from_arrow_schema, to_arrow_schema
from pyspark.sql.types import StructType

from dcm_spark import schema as schemas
from dcm_spark import sources
from dcm_spark.dicom.header import FileError, Header, HeaderOptions, to_record_batch
from dcm_spark.dicom.memo import ValueMemo
from dcm_spark.paths import ObjectStore
from dcm_spark.records import FILE_KEY_SCHEMA

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ERROR_COLUMN = "_error"
FILES_PER_PARTITION = 500


def register(spark: SparkSession) -> None:
    """Make ``spark.read.format("dicom")`` known to ``spark`` (once is enough: a session
    made with ``newSession`` may see it already, and says so)."""
    from pyspark.errors import AnalysisException

    try:
        spark.dataSource.register(DicomDataSource)
    except AnalysisException as exc:
        if exc.getCondition() != "DATA_SOURCE_ALREADY_EXISTS":
            raise


@dataclass(frozen=True)
class Files(InputPartition):
    """A partition: consecutive listed entries, as (path, size, mtime in ms)."""

    entries: tuple[tuple[str, int, int], ...]


class DicomDataSource(DataSource):
    """The ``dicom`` format (see the module's doc)."""

    @classmethod
    def name(cls) -> str:
        return "dicom"

    def _settings(self) -> tuple[list[tuple[str, int, int]], HeaderOptions, ObjectStore]:
        """The listing and options, made once: `schema` and `reader` both need them (the
        instance, with what it holds, travels from one to the other)."""
        if getattr(self, "_made", None) is None:
            self._made = self._make_settings()
        return self._made

    def _make_settings(self) -> tuple[list[tuple[str, int, int]], HeaderOptions, ObjectStore]:
        from dcm_spark.listing import list_files

        path = self.options.get("path")
        if not path:
            raise ValueError('spark.read.format("dicom").load(path): a path is needed')
        store = ObjectStore.from_environment(_flag(self.options.get("anonymous", "false")))
        listing = list_files(None, tuple(path.split(",")), store)
        mtimes = listing.column("_mtime").cast(pa.timestamp("ms", tz="UTC")).cast(pa.int64())
        entries = list(
            zip(
                listing.column("_path").to_pylist(),
                listing.column("_size").to_pylist(),
                mtimes.to_pylist(),
                strict=True,
            )
        )
        header = HeaderOptions(
            max_depth=int(self.options.get("maxDepth", 15)),
            max_value_size=int(self.options.get("maxValueSize", 1 << 20)),
            time_budget=float(self.options.get("timeBudget", 30)),
        )
        return entries, header, store

    def schema(self) -> StructType:
        entries, header, store = self._settings()
        rows, _ = _read(entries, header, store)
        return from_arrow_schema(_arrow_schema(rows))

    def reader(self, schema: StructType) -> DataSourceReader:
        return DicomReader(self._settings(), schema, self.options)


class DicomReader(DataSourceReader):
    def __init__(
        self,
        settings: tuple[list[tuple[str, int, int]], HeaderOptions, ObjectStore],
        schema: StructType,
        options: Mapping[str, str],
    ) -> None:
        self.entries, self.header, self.store = settings
        self.arrow_schema = to_arrow_schema(schema, timezone="UTC")
        self.per_partition = int(options.get("filesPerPartition", FILES_PER_PARTITION))

    def partitions(self) -> list[Files]:
        n = max(self.per_partition, 1)
        return [Files(tuple(self.entries[i : i + n])) for i in range(0, len(self.entries), n)]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, Files)
        rows, meta = _read(list(partition.entries), self.header, self.store)
        if rows:
            batch = _with_meta(rows, meta)
            wanted = [n for n in batch.schema.names if n in self.arrow_schema.names]
            yield schemas.cast_batch(batch.select(wanted), self.arrow_schema)


def _flag(value: str) -> bool:
    return value.strip().lower() in ("true", "1", "yes")


def _read(
    entries: list[tuple[str, int, int]], header: HeaderOptions, store: ObjectStore
) -> tuple[list[Header], list[dict[str, Any]]]:
    """Every entry's rows (an error as a row with only ``_error``) and their meta values."""
    rows: list[Header] = []
    meta: list[dict[str, Any]] = []
    memo = ValueMemo()
    for path, size, mtime in entries:
        for row_path, result in sources.read(path, header, memo, store):
            error = None
            if isinstance(result, FileError):
                error = f"{result.error_class}: {result.message}"
                result = Header({}, {})
            rows.append(result)
            meta.append({"_path": row_path, "_size": size, "_mtime": mtime, ERROR_COLUMN: error})
    return rows, meta


_META = pa.schema([*FILE_KEY_SCHEMA, (ERROR_COLUMN, pa.string())])


def _with_meta(rows: list[Header], meta: list[dict[str, Any]]) -> pa.RecordBatch:
    body = to_record_batch(rows)
    mtimes = pa.array([m["_mtime"] for m in meta], pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    columns = [
        pa.array([m["_path"] for m in meta], pa.string()),
        pa.array([m["_size"] for m in meta], pa.int64()),
        mtimes.cast(_META.field("_mtime").type),
        pa.array([m[ERROR_COLUMN] for m in meta], pa.string()),
    ]
    return pa.RecordBatch.from_arrays(
        columns + list(body.columns), names=_META.names + list(body.schema.names)
    )


def _arrow_schema(rows: list[Header]) -> pa.Schema:
    body = to_record_batch(rows).schema if rows else pa.schema([])
    return pa.schema([*_META, *body])
