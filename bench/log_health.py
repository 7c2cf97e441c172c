"""Benchmark of the Delta log after many small runs (``make bench-log``): does it stay healthy?

    python -m bench.log_health --runs 500 [--files-per-run 20]

A nightly job adds a few files each run; after a year the log has hundreds of commits. Here,
in one Spark session (``spark-submit bench/log_health.py --measure``, ``local[2]``), ``--runs``
incremental runs each add ``--files-per-run`` new generated files (bench/corpus.py) to the
inputs and ingest them; at milestones a run finding nothing new (the no-op) is timed, and the
log is described: commits, checkpoints, bytes. Then the real job's no-op (``spark-submit
jobs/ingest.py``) runs under ``strace`` and every file of ``_delta_log`` it opens is listed:
Delta's promise is that a reader needs the latest checkpoint and the commits after it only.

Then the table of many runs is compared with a table of the same files written in one run,
before and after ``jobs/maintain.py optimize`` (``make optimize``): the real job's no-op
(in the job) and ``SELECT Modality, count(*) ... GROUP BY Modality`` (median of 5 warm runs,
``spark-submit bench/log_health.py --query``), with the data files each has.

Results go to ``bench/results/<date>-log-<runs>x<files per run>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from dcm_spark.delta.table import COMMIT_FILE

MILESTONES = (1, 10, 50, 100, 200, 300, 400, 500, 1000)
QUERY = "SELECT Modality, count(*) AS n FROM dicom GROUP BY Modality"
QUERY_REPEATS = 5
_CHECKPOINT = re.compile(r"(\d{20})\.checkpoint(\.\d+\.\d+)?\.parquet")


def describe_log(table: Path) -> dict[str, Any]:
    """The log's commits, checkpoints and bytes, and its latest checkpoint's version."""
    names = os.listdir(table / "_delta_log")
    commits = [int(m[1]) for m in map(COMMIT_FILE.fullmatch, names) if m]
    checkpoints = sorted({int(m[1]) for m in map(_CHECKPOINT.fullmatch, names) if m})
    size = sum(p.stat().st_size for p in (table / "_delta_log").iterdir() if p.is_file())
    return {
        "version": max(commits),
        "commits": len(commits),
        "checkpoints": len(checkpoints),
        "latest_checkpoint": checkpoints[-1] if checkpoints else None,
        "log_bytes": size,
    }


def measure(pool: Path, inputs: Path, table: Path, runs: int, per_run: int) -> dict[str, Any]:
    """In this process's Spark session (run under spark-submit)."""
    from dcm_spark.ingest import IngestOptions, run
    from dcm_spark.session import job_session

    spark = job_session("dcm-spark bench log")
    options = IngestOptions((str(inputs),), str(table))
    waiting = sorted(p for p in pool.rglob("*") if p.is_file())
    milestones = []
    run_seconds = []
    for i in range(1, runs + 1):
        batch = inputs / f"night-{i:04d}"
        batch.mkdir(parents=True)
        for f in waiting[(i - 1) * per_run : i * per_run]:
            shutil.move(f, batch / f.name)
        start = time.perf_counter()
        summary = run(spark, options, report=lambda line: None)
        run_seconds.append(time.perf_counter() - start)
        assert summary.new == per_run, summary.text()
        if i in MILESTONES or i == runs:
            start = time.perf_counter()
            noop = run(spark, options, report=lambda line: None)
            seconds = time.perf_counter() - start
            assert noop.new == noop.changed == 0, noop.text()
            milestones.append(
                {
                    "runs": i,
                    "files": noop.listed,
                    "noop_s": round(seconds, 3),
                    **describe_log(table),
                }
            )
            print(json.dumps(milestones[-1]), flush=True)
    return {
        "milestones": milestones,
        "run_s_first_10": round(sum(run_seconds[:10]) / min(10, runs), 3),
        "run_s_last_10": round(sum(run_seconds[-10:]) / min(10, runs), 3),
    }


def log_files_opened(inputs: Path, table: Path, work: Path) -> dict[str, Any]:
    """The real job's no-op under strace: which files of ``_delta_log`` any of its
    processes (the JVM, Python) opened, and the job's own summary."""
    from bench.run import ROOT, SPARK_SUBMIT, spark_env

    trace, summary = work / "strace.txt", work / "noop.json"
    command = [
        "strace", "-f", "-qq", "-e", "trace=open,openat", "-e", "signal=none", "-o", str(trace),
        *SPARK_SUBMIT, "jobs/ingest.py", "--input", str(inputs), "--table", str(table),
        "--summary-json", str(summary),
    ]  # fmt: skip
    subprocess.run(command, cwd=ROOT, env=spark_env(), check=True, capture_output=True)
    log = str(table / "_delta_log") + "/"
    opened = set()
    for line in trace.read_text(errors="replace").splitlines():
        match = re.search(r'"([^"]*)"', line)
        if match and match[1].startswith(log) and "ENOENT" not in line:
            opened.add(match[1][len(log) :])
    files = sorted(n for n in opened if COMMIT_FILE.fullmatch(n) or _CHECKPOINT.fullmatch(n))
    done = json.loads(summary.read_text())
    return {
        "job_noop_s": done.get("seconds"),
        "job_noop_new": done.get("new"),
        "log_files_opened": files,
        "other_log_paths_opened": sorted(opened - set(files)),
    }


def query_seconds(table: Path) -> dict[str, Any]:
    """In this process's Spark session: `QUERY` on the table's views, median of warm runs."""
    import statistics

    from dcm_spark.catalog import register
    from dcm_spark.session import job_session

    spark = job_session("dcm-spark bench log query")
    register(spark, str(table), idc=False, data_source=False)
    spark.sql(QUERY).collect()  # warm-up
    seconds = []
    for _ in range(QUERY_REPEATS):
        start = time.perf_counter()
        spark.sql(QUERY).collect()
        seconds.append(time.perf_counter() - start)
    return {"query_s": round(statistics.median(seconds), 3)}


def table_costs(inputs: Path, table: Path, work: Path) -> dict[str, Any]:
    """The real job's no-op on ``table`` (in the job), `QUERY`'s time, its data files."""
    from deltalake import DeltaTable

    from bench.run import spark_submit

    summary, result = work / "noop.json", work / "query.json"
    spark_submit(
        "jobs/ingest.py", "--input", str(inputs), "--table", str(table),
        "--summary-json", str(summary),
    )  # fmt: skip
    done = json.loads(summary.read_text())
    assert done["new"] == done["changed"] == 0, done
    spark_submit("bench/log_health.py", "--query", str(table), "--result", str(result))
    return {
        "noop_in_job_s": done["seconds"],
        **json.loads(result.read_text()),
        "data_files": len(DeltaTable(str(table)).file_uris()),
    }


def compare_with_one_run(inputs: Path, table: Path, work: Path) -> dict[str, Any]:
    """The table of many runs before and after ``optimize``, against one run of its files."""
    from bench.run import spark_submit

    many = table_costs(inputs, table, work)
    optimize_s, _ = spark_submit("jobs/maintain.py", "optimize", "--table", str(table))
    optimized = table_costs(inputs, table, work)
    one = work / "one-run"
    spark_submit("jobs/ingest.py", "--input", str(inputs), "--table", str(one))
    once = table_costs(inputs, one, work)
    ratio = {
        f"{name}_{k}": round(costs[k] / once[k], 2)
        for name, costs in (("many_runs", many), ("optimized", optimized))
        for k in ("noop_in_job_s", "query_s")
    }
    return {
        "many_runs": many,
        "optimize_job_s": round(optimize_s, 2),
        "optimized": optimized,
        "one_run": once,
        "ratio_to_one_run": ratio,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.log_health", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--files-per-run", type=int, default=20)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--measure", nargs=3, metavar="DIR", help=argparse.SUPPRESS)
    parser.add_argument("--query", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.query:  # inside spark-submit
        args.result.write_text(json.dumps(query_seconds(args.query)))
        return 0
    if args.measure:  # inside spark-submit
        pool, inputs, table = map(Path, args.measure)
        figures = measure(pool, inputs, table, args.runs, args.files_per_run)
        args.result.write_text(json.dumps(figures))
        return 0

    from bench.corpus import generate
    from bench.run import machine, save_result, spark_submit

    with tempfile.TemporaryDirectory(prefix="dcm-bench-log-") as scratch:
        work = Path(scratch)
        pool, inputs, table = work / "pool", work / "in", work / "dicom"
        generate(pool, args.runs * args.files_per_run)
        inputs.mkdir()
        spark_submit(
            "bench/log_health.py", "--measure", str(pool), str(inputs), str(table),
            "--runs", str(args.runs), "--files-per-run", str(args.files_per_run),
            "--result", str(work / "result.json"),
        )  # fmt: skip
        figures = json.loads((work / "result.json").read_text())
        figures |= log_files_opened(inputs, table, work)
        figures |= {"log": describe_log(table)}
        figures |= {"compared": compare_with_one_run(inputs, table, work)}
    result = {"runs": args.runs, "files_per_run": args.files_per_run, "machine": machine()}
    result |= figures
    save_result(result, f"log-{args.runs}x{args.files_per_run}", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
