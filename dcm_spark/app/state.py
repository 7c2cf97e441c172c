"""The app's one state object: the warm Spark session, the table it shows, and what each tab
asks of them (a guarded query with a row limit and a time-out, the schema's fill rates, the
series and instances, an ingest run that refreshes the views).

The web layer (`dcm_spark.app.ui`) holds one `AppState` for the app's lifetime and calls
only its methods; nothing else keeps state.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import functools
import json
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.parquet as pq

from dcm_spark.app.guard import QueryRefused, check_query
from dcm_spark.catalog import IDC_VIEWS, VIEWS, register, register_idc
from dcm_spark.delta.table import column_counts
from dcm_spark.errors import DcmSparkError, safe_message
from dcm_spark.idc.bigquery import to_spark
from dcm_spark.idc.view import columns_read
from dcm_spark.paths import absolute, errors_path, local_path, promotions_path

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

#: Rows a query returns to the page (and to its downloads).
ROW_LIMIT = 10_000
#: Seconds a query may run before its Spark jobs are cancelled.
QUERY_SECONDS = 120.0
#: Instances listed for one series.
INSTANCE_LIMIT = 1_000
#: The Series tab's columns, where the table has them, and those its text box searches.
SERIES_COLUMNS = (
    "SeriesInstanceUID",
    "Modality",
    "SeriesDate",
    "StudyDate",
    "SeriesDescription",
    "StudyDescription",
    "SeriesNumber",
    "instances",
    "StudyInstanceUID",
)
SEARCHED = ("SeriesDescription", "StudyDescription", "SeriesInstanceUID")
INSTANCE_COLUMNS = ("SOPInstanceUID", "InstanceNumber", "SOPClassUID", "_path", "_size")


@dataclass
class Result:
    """A query's answer as the page shows it: column names, rows of text, files to download."""

    columns: list[str]
    rows: list[list[str]]
    truncated: bool
    csv_path: Path
    parquet_path: Path

    @property
    def note(self) -> str:
        more = f" (first {len(self.rows)}: the row limit)" if self.truncated else ""
        return f"{len(self.rows)} rows{more}"


@dataclass
class AppState:
    """The session, the table and the caches of one running app."""

    spark: SparkSession
    table: str
    scratch: Path
    allow_roots: tuple[Path, ...] = ()
    row_limit: int = ROW_LIMIT
    query_seconds: float = QUERY_SECONDS
    views: list[str] = field(default_factory=list)
    _cache: dict[tuple[str, int], Any] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _computing: threading.RLock = field(default_factory=threading.RLock)
    _registered: int = -1

    @classmethod
    def open(
        cls,
        spark: SparkSession,
        table: str,
        *,
        allow_roots: tuple[Path, ...] = (),
        warm_up: bool = False,
    ) -> AppState:
        """Register the table's views (no IDC layout yet: it is laid out when a query reads
        it); with ``warm_up``, count the rows and fill the schema's counts in the background
        meanwhile, so the first page does not wait for Spark's first jobs after it loads."""
        # SQL scripts (BEGIN ... END) would run statements the guard never saw as such.
        spark.conf.set("spark.sql.scripting.enabled", "false")
        state = cls(
            spark,
            absolute(table),
            Path(tempfile.mkdtemp(prefix="dcm-spark-app-")),
            allow_roots=allow_roots,
        )
        state.refresh()
        if warm_up:
            threading.Thread(target=state._warm_up, name="dcm-warm-up", daemon=True).start()
        return state

    def _warm_up(self) -> None:
        with contextlib.suppress(Exception):  # the page that needs them says what failed
            self.row_count(), self.fill_counts(), self.promotions()

    # -- the table ---------------------------------------------------------------------

    def refresh(self) -> list[str]:
        """Register the views again (after an ingest: the new rows and columns show)."""
        with self._lock:
            self._registered = self.version()
            self.views = register(self.spark, self.table, idc=False, data_source=False)
        return self.views

    def refresh_if_changed(self) -> None:
        """Register the views again if the table has a new version (an ingest from elsewhere,
        ``make ingest``, while the app runs); called on each page load."""
        if self.version() != self._registered:
            self.refresh()

    def version(self) -> int:
        """The table's Delta version (the key of the cached counts); -1 without a table.
        A local table's is the newest commit file's number: no Spark job on a page load."""
        from delta.tables import DeltaTable

        from dcm_spark.delta.table import exists, latest_version

        local = local_path(self.table)
        latest = None if local is None else latest_version(local)
        if latest is not None:
            return latest
        if not exists(self.spark, self.table):
            return -1
        last = DeltaTable.forPath(self.spark, self.table).history(1).collect()
        return int(last[0]["version"]) if last else -1

    def _memo(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per registered table version (a second caller waits for the
        first's result)."""
        with self._computing:
            key = (name, self._registered)
            if key not in self._cache:
                self._cache = {k: v for k, v in self._cache.items() if k[1] == self._registered}
                self._cache[key] = compute()
            return self._cache[key]

    def row_count(self) -> int:
        return self.fill_counts()[""]

    def schema(self) -> Any:
        """The table's Spark schema (None without a table)."""
        return self.spark.table("dicom").schema if "dicom" in self.views else None

    def fill_counts(self) -> dict[str, int]:
        """Non-null count of each top-level column, and ``""`` for the row count; computed
        once per table version (the one last registered: see `refresh_if_changed`)."""
        return dict(self._memo("fill", self._fill_counts))

    def _fill_counts(self) -> dict[str, int]:
        if "dicom" not in self.views:
            return {"": 0}
        counted = column_counts(self.table, self._registered)  # a local table: no Spark job
        if counted is not None:
            return counted
        df = self.spark.table("dicom")
        exprs = ["count(*) AS `__rows`"] + [
            f"count(`{c}`) AS `{i}`" for i, c in enumerate(df.columns)
        ]
        row = self._guarded(lambda: df.selectExpr(*exprs).collect()[0])
        counts = {c: int(row[str(i)]) for i, c in enumerate(df.columns)}
        counts[""] = int(row["__rows"])
        return counts

    def promotions(self) -> dict[str, list[str]]:
        """The promotions each column went through, as lines, by top-level column."""
        return dict(self._memo("promotions", self._promotions))

    def _promotions(self) -> dict[str, list[str]]:
        if "dicom_promotions" not in self.views:
            return {}
        rows = self.spark.sql(
            "SELECT column_path, from_type, to_type, reason, promoted_at "
            "FROM dicom_promotions ORDER BY promoted_at"
        ).collect()
        history: dict[str, list[str]] = {}
        for r in rows:
            top = str(r["column_path"]).split(".")[0]
            history.setdefault(top, []).append(
                f"{r['column_path']}: {r['from_type']} -> {r['to_type']} ({r['reason']}, "
                f"{str(r['promoted_at'])[:19]})"
            )
        return history

    # -- queries -----------------------------------------------------------------------

    def query(self, sql: str, dialect: str = "spark") -> Result:
        """Run one guarded query; raise `DcmSparkError` (one line) when it cannot run."""
        if dialect == "bigquery":
            sql = to_spark(sql, views=VIEWS)
        elif dialect != "spark":
            raise QueryRefused(f"refused: unknown dialect {dialect[:20]!r}")
        query = check_query(sql)
        if "dicom" in self.views and any(v in query.lower() for v in IDC_VIEWS):
            with self._lock:  # the IDC layout of only the columns the query reads
                register_idc(self.spark, columns_read(query) or None)
                self.views += [v for v in IDC_VIEWS if v not in self.views]
        df = self._sql(query)
        self._check_inputs(df)
        arrow = self._guarded(lambda: df.limit(self.row_limit + 1).toArrow())
        truncated = arrow.num_rows > self.row_limit
        arrow = arrow.slice(0, self.row_limit)
        return self._result(arrow, truncated)

    def _sql(self, query: str) -> DataFrame:
        from pyspark.errors import PySparkException

        try:
            return self.spark.sql(query)
        except PySparkException as exc:
            raise DcmSparkError(one_line(exc)) from None

    def _check_inputs(self, df: DataFrame) -> None:
        """Refuse a plan that reads any file outside the table and its side tables: the
        second lock behind `check_query`, in case Spark reads a query otherwise."""
        roots = tuple(
            _uri(p) + "/"
            for p in (self.table, errors_path(self.table), promotions_path(self.table))
        )
        outside = [f for f in df.inputFiles() if not _uri(f).startswith(roots)]
        if outside:
            raise QueryRefused("refused: the query reads files outside the table")

    def _guarded(self, action: Callable[[], Any]) -> Any:
        """Run ``action``'s Spark jobs in their own group, cancelled after ``query_seconds``."""
        from py4j.protocol import Py4JError  # type: ignore[import-untyped]
        from pyspark.errors import PySparkException

        context = self.spark.sparkContext
        group = f"dcm-spark-app-{uuid.uuid4().hex[:12]}"
        context.setJobGroup(group, "dcm-spark app", interruptOnCancel=True)
        expired = threading.Event()

        def cancel() -> None:
            expired.set()
            context.cancelJobGroup(group)

        timer = threading.Timer(self.query_seconds, cancel)
        timer.start()
        try:
            return action()
        except (PySparkException, Py4JError) as exc:
            if expired.is_set():
                raise DcmSparkError(
                    f"cancelled: the query ran over {self.query_seconds:g} s"
                ) from None
            raise DcmSparkError(one_line(exc)) from None
        finally:
            timer.cancel()
            context.setLocalProperty("spark.jobGroup.id", None)  # type: ignore[arg-type]

    def _result(self, arrow: pa.Table, truncated: bool) -> Result:
        rows = [[cell(v) for v in r.values()] for r in arrow.to_pylist()]
        name = uuid.uuid4().hex[:12]
        csv_path = self.scratch / "results" / name / "result.csv"
        csv_path.parent.mkdir(parents=True)
        import csv

        with csv_path.open("w", newline="", encoding="utf-8") as out:
            writer = csv.writer(out)
            writer.writerow(arrow.column_names)
            writer.writerows(rows)
        parquet_path = csv_path.with_suffix(".parquet")
        pq.write_table(arrow, parquet_path)
        return Result(arrow.column_names, rows, truncated, csv_path, parquet_path)

    # -- series and instances ----------------------------------------------------------

    def modalities(self) -> list[str]:
        """The table's modalities (for the Series tab's choice), once per version."""
        return list(self._memo("modalities", self._modalities))

    def _modalities(self) -> list[str]:
        if "dicom" not in self.views or "Modality" not in self.spark.table("dicom").columns:
            return []
        rows = self.spark.sql(
            "SELECT DISTINCT Modality FROM dicom WHERE Modality IS NOT NULL ORDER BY 1"
        ).collect()
        return [str(r[0]) for r in rows]

    def series(self, modality: str, date_from: str, date_to: str, text: str) -> Result:
        """``dicom_series`` filtered by modality, SeriesDate (or StudyDate) range and text
        found in its descriptions or UIDs. Values go in as literals of the DataFrame API,
        never spliced into SQL text."""
        from pyspark.sql import functions as F

        if "dicom_series" not in self.views:
            return self._result(pa.table({"message": ["no series yet: ingest files first"]}), False)
        df = self.spark.table("dicom_series")
        have = set(df.columns)
        columns = [c for c in SERIES_COLUMNS if c in have]
        if modality and "Modality" in have:
            df = df.where(F.col("Modality") == F.lit(modality))
        date = "SeriesDate" if "SeriesDate" in have else "StudyDate" if "StudyDate" in have else ""
        if date and date_from.strip():
            df = df.where(F.col(date) >= F.lit(_iso_date(date_from)).cast("date"))
        if date and date_to.strip():
            df = df.where(F.col(date) <= F.lit(_iso_date(date_to)).cast("date"))
        searched = [c for c in SEARCHED if c in have]
        if text.strip() and searched:
            needle = F.lit(text.strip().lower())
            found = [F.contains(F.lower(F.col(c)), needle) for c in searched]
            df = df.where(functools.reduce(lambda a, b: a | b, found))
        df = df.select(*columns).orderBy(columns[0]).limit(self.row_limit)
        return self._result(self._guarded(df.toArrow), False)

    def instances(self, series_uid: str) -> Result:
        """The instances of one series (at most `INSTANCE_LIMIT`), by path."""
        from pyspark.sql import functions as F

        df = self.spark.table("dicom")
        columns = [c for c in INSTANCE_COLUMNS if c in df.columns]
        df = df.where(F.col("SeriesInstanceUID") == F.lit(series_uid))
        df = df.select(*columns).orderBy("_path").limit(INSTANCE_LIMIT)
        return self._result(self._guarded(df.toArrow), False)

    def header(self, path: str) -> dict[str, Any]:
        """One instance's whole row (null elements left out) as JSON-ready values."""
        from pyspark.sql import functions as F

        df = self.spark.table("dicom").where(F.col("_path") == F.lit(path)).limit(1)
        rows = self._guarded(lambda: df.toArrow().to_pylist())
        return _without_nulls(rows[0]) if rows else {}


def _uri(path: str) -> str:
    """A local path or ``file:`` URI in one spelling (``file:/...``), to compare prefixes."""
    path = unquote(path)
    for prefix in ("file://", "file:"):
        if path.startswith(prefix):
            return "file:" + path[len(prefix) :]
    return "file:" + path if path.startswith("/") else path


def _iso_date(value: str) -> str:
    try:
        return datetime.date.fromisoformat(value.strip()).isoformat()
    except ValueError:
        raise DcmSparkError("dates are written YYYY-MM-DD") from None


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None and v != []}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    if isinstance(value, datetime.date | datetime.datetime | decimal.Decimal):
        return str(value)
    return value


def cell(value: Any) -> str:
    """A value as the page's table and CSV show it: nested values as JSON."""
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def one_line(exc: BaseException) -> str:
    """An exception as one short line, quoted values removed (`safe_message`)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return safe_message(Exception(text), limit=240)
