"""Benchmark of the `dicom_all` view (``make bench-idc``): what IDC's layout costs.

    python -m bench.idc --files 30000 [--repeats 5]

On a generated corpus (bench/corpus.py) ingested by the real job, a Spark session
(``spark-submit bench/idc.py --measure TABLE``, ``local[2]``) measures, warm, alternating
the runs so the machine's drift falls on both sides; twice: in the JVM of a long session
(``session_jvm``: the app's, a notebook's, with the optimising JIT; where the whole view is
registered) and in the jobs' (``job_jvm``: C1 only, see `dcm_spark.session.SHORT_JOB_JIT`):

- registering the views without ``dicom_all``, with the whole layout (``catalog.register``'s
  default), and with the layout of only the columns one query reads (what ``make sql``,
  ``make idc-index`` and the app register);
- ``SELECT Modality, count(*) ... GROUP BY Modality`` on ``dicom``, on the whole
  ``dicom_all`` and on the restricted one.

``--repeats`` rounds, every other one in reverse order; in each, a query's time is the
median of 5 after a warm-up, and its ratio is taken against the query on ``dicom`` of the
same round (``group_by_modality_ratio_by_round``: the median of those). Medians of the
rounds besides; results in ``bench/results/<date>-<files>-idc.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

QUERY = "SELECT Modality, count(*) AS n FROM {} GROUP BY Modality"
QUERIES = 5  # timed queries after each registration


def _seconds(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(table: str, repeats: int) -> dict[str, Any]:
    """In this process's Spark session (run under spark-submit)."""
    from dcm_spark.catalog import register
    from dcm_spark.idc.view import columns_read
    from dcm_spark.session import job_session

    spark = job_session("dcm-spark bench idc")
    query = QUERY.format("dicom_all")
    read = columns_read(query)
    ways: dict[str, Callable[[], Any]] = {
        "without": lambda: register(spark, table, idc=False),
        "whole": lambda: register(spark, table, idc=True),
        "restricted": lambda: register(spark, table, idc=read),
    }
    for way in ways.values():
        way()  # warm-up
    registered: dict[str, list[float]] = {name: [] for name in ways}
    queried: dict[str, list[float]] = {name: [] for name in ways}
    paired: dict[str, list[float]] = {"whole": [], "restricted": []}
    for number in range(repeats):
        order = list(ways) if number % 2 == 0 else list(reversed(ways))
        this_round: dict[str, float] = {}
        for name in order:
            registered[name].append(_seconds(ways[name]))
            view = "dicom" if name == "without" else "dicom_all"
            spark.sql(QUERY.format(view)).collect()  # warm-up of this registration
            # the median of QUERIES: one query's time moves by a third from run to run
            runs = [_seconds(spark.sql(QUERY.format(view)).collect) for _ in range(QUERIES)]
            this_round[name] = statistics.median(runs)
            queried[name].append(this_round[name])
        for name in paired:  # against the query on `dicom` of the same round
            paired[name].append(this_round[name] / this_round["without"])
    median = {name: statistics.median(v) for name, v in registered.items()}
    answer = {name: statistics.median(v) for name, v in queried.items()}
    return {
        "rows": spark.table("dicom").count(),
        "table_columns": len(spark.table("dicom").columns),
        "register_s": {k: round(v, 3) for k, v in median.items()},
        "register_added_s": {
            name: round(median[name] - median["without"], 3) for name in ("whole", "restricted")
        },
        "group_by_modality_s": {k: round(v, 3) for k, v in answer.items()},
        "group_by_modality_ratio": {
            name: round(answer[name] / answer["without"], 2) for name in ("whole", "restricted")
        },
        # the ratio in each round (every other one in reverse order), then their median
        "group_by_modality_ratio_by_round": {
            name: round(statistics.median(v), 2) for name, v in paired.items()
        },
        "all_runs": {"register": registered, "query": queried, "query_ratio": paired},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.idc", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--measure", metavar="TABLE", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:  # inside spark-submit
        args.result.write_text(json.dumps(measure(args.measure, args.repeats)))
        return 0

    from bench.corpus import generate
    from bench.run import machine, save_result, spark_submit
    from dcm_spark.session import server_java_options

    with tempfile.TemporaryDirectory(prefix="dcm-bench-idc-") as scratch:
        work = Path(scratch)
        generate(work / "in", args.files)
        table, result = work / "dicom", work / "result.json"
        spark_submit("jobs/ingest.py", "--input", str(work / "in"), "--table", str(table))
        figures: dict[str, Any] = {"files": args.files, "machine": machine()}
        # the whole view is what a long session registers (the app, a notebook: the JVM
        # with its optimising JIT); the jobs register only the columns a query reads
        for jvm, options in (("session_jvm", server_java_options()), ("job_jvm", None)):
            spark_submit(
                "bench/idc.py", "--measure", str(table), "--repeats", str(args.repeats),
                "--result", str(result), java_options=options,
            )  # fmt: skip
            figures[jvm] = json.loads(result.read_text())
    save_result(figures, f"{args.files}-idc", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
