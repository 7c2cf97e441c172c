"""``make bench``: ingest throughput against baselines measured in the same run.

    python -m bench.run --files 30000 [--work DIR] [--out bench/results]

On one generated corpus (bench/corpus.py) it measures:

- B0, the read floor: ``dcmread(stop_before_pixels=True)``, touching no value, 2 processes;
- B1, the naive approach: dcmread + ``to_json_dict()``, then pyarrow, then one Parquet
  file, 2 processes;
- P: ``spark-submit jobs/ingest.py`` into a new Delta table on ``local[2]``; Spark's
  start-up and shut-down (wall time minus the job's own) is reported apart;
- P-noop: the same ingest again, nothing new; P-inc: again with 1% new files (parsed in
  the driver when they are few, see ``DRIVER_PARSE_LIMIT``);
- P-inc through the Spark job (``--driver-parse-limit 0``): 1% new files, then 10% (the
  slope between the two: the job's marginal cost of a file; the rest is its fixed cost);
- in ``--rounds`` (3) rounds of B0, P and B1, every other one reversed (B0 P B1, B1 P B0,
  ...), each P into a new table: the machine's speed drifts over minutes, so each P is
  compared with the baselines measured next to it; the ratios are the rounds' median;
- peak memory (RSS) of the driver JVM and of the Python workers during P, sampled from /proc;
- the converter alone on a header with ~18,000 elements and on a 100 MB multi-frame file.

Above `LARGE` files (``make bench BENCH_FILES=1000000``) the corpus is header replicas (the
templates without pixel data: with pixels a million files take ~50 GB) and the baselines are
left out (B1 alone would take hours there; ``--baselines`` keeps them): what is measured at
that size is the listing, the full run, the no-op run, the increments and driver memory.

Results go to ``bench/results/<date>-<files>.json`` (``-2``, ``-3``, ... after the first of
the day: never over an earlier one) with the machine's facts.
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from bench.corpus import generate
from dcm_spark.dicom.header import Header, HeaderOptions, convert_file
from dcm_spark.paths import errors_path, promotions_path
from dcm_spark.session import LOCAL_CONF

ROOT = Path(__file__).resolve().parent.parent
#: Above this many files: header replicas, no baselines (unless --baselines).
LARGE = 200_000
#: the Python daemon's module, on the command line of the daemon and its workers
PYTHON_WORKER_MODULES = (LOCAL_CONF["spark.python.daemon.module"].encode(), b"pyspark.daemon")


# -- baselines ---------------------------------------------------------------------------


def _bare(path: str) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmread(path, stop_before_pixels=True, force=True)
    return 1


def _naive(paths: list[str]) -> list[dict[str, Any]]:
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in paths:
            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
                doc = ds.to_json_dict(
                    bulk_data_threshold=1024, bulk_data_element_handler=lambda e: ""
                )
                rows.append({"path": path, "header": json.dumps(doc)})
            except Exception as exc:
                rows.append({"path": path, "header": None, "error": type(exc).__name__})
    return rows


def baseline_b0(files: list[str]) -> float:
    start = time.perf_counter()
    with multiprocessing.Pool(2) as pool:
        sum(pool.imap_unordered(_bare, files, chunksize=64))
    return time.perf_counter() - start


def baseline_b1(files: list[str], out: Path) -> float:
    start = time.perf_counter()
    chunks = [files[i : i + 256] for i in range(0, len(files), 256)]
    with multiprocessing.Pool(2) as pool:
        rows = [r for part in pool.imap(_naive, chunks) for r in part]
    table = pa.Table.from_pylist(rows)
    pq.write_table(table, out)
    return time.perf_counter() - start


# -- the job -----------------------------------------------------------------------------


class MemorySampler(threading.Thread):
    """Peak RSS of the Spark driver JVM and of the Python workers (the daemon and the
    workers it forks, which keep its command line), read from /proc."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks = {"driver_jvm_mb": 0.0, "python_driver_mb": 0.0, "python_worker_mb": 0.0}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.2):
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                rss = next(
                    (int(x.split()[1]) for x in status.splitlines() if x.startswith("VmRSS")), 0
                )
                key = None
                if b"org.apache.spark.deploy.SparkSubmit" in cmd:
                    key = "driver_jvm_mb"
                elif any(m in cmd for m in PYTHON_WORKER_MODULES):
                    key = "python_worker_mb"
                elif b"jobs/ingest.py" in cmd and b"java" not in cmd:
                    key = "python_driver_mb"
                if key:
                    self.peaks[key] = max(self.peaks[key], rss / 1024)


def save_result(result: dict[str, Any], name: str, out_dir: Path | None = None) -> Path:
    """Write ``result`` to ``<out_dir>/<today>-<name>.json`` (bench/results by default) and
    print it without the machine's facts and the raw runs."""
    out_dir = out_dir or ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{datetime.date.today().isoformat()}-{name}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    shown = {k: v for k, v in result.items() if k not in ("machine", "all_runs")}
    print(json.dumps(shown, indent=2))
    return out


#: How every benchmark starts a job: ``spark-submit`` on ``local[2]``, the project's conf.
SPARK_SUBMIT = (
    "spark-submit", "--master", "local[2]", "--properties-file", "conf/spark-defaults.conf"
)  # fmt: skip


def spark_env() -> dict[str, str]:
    """The environment for `SPARK_SUBMIT`: this interpreter for the driver and the workers."""
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def spark_submit(
    script: str, *args: str, java_options: str | None = None
) -> tuple[float, dict[str, float]]:
    """Run ``script`` under `SPARK_SUBMIT` (the driver's Java options replaced by
    ``java_options`` if given): its seconds and the driver's peak memory."""
    env, command = spark_env(), list(SPARK_SUBMIT)
    if java_options is not None:
        command += ["--driver-java-options", java_options]
    sampler = MemorySampler()
    sampler.start()
    start = time.perf_counter()
    done = subprocess.run(
        [*command, script, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    seconds = time.perf_counter() - start
    sampler.stop.set()
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return seconds, sampler.peaks


# -- extreme files -----------------------------------------------------------------------


def big_header(path: Path, frames: int = 1500) -> int:
    """An enhanced multi-frame header with ~12 elements per frame (18,000 at 1500 frames)."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["bench", "big-header"])
    ds.NumberOfFrames = frames
    groups = []
    for i in range(frames):
        item = Dataset()
        position = Dataset()
        position.ImagePositionPatient = [0.0, 0.0, float(i)]
        item.PlanePositionSequence = [position]
        content = Dataset()
        content.InStackPositionNumber = i + 1
        content.DimensionIndexValues = [1, i + 1]
        content.FrameAcquisitionNumber = i
        item.FrameContentSequence = [content]
        voi = Dataset()
        voi.WindowCenter = "40"
        voi.WindowWidth = "400"
        item.FrameVOILUTSequence = [voi]
        groups.append(item)
    ds.PerFrameFunctionalGroupsSequence = groups
    _save(ds, path)
    return sum(1 for _ in ds.iterall())


def big_pixels(path: Path, megabytes: int = 100) -> int:
    """A multi-frame file with ``megabytes`` of pixel data, and an element after it."""
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4.1"
    ds.SOPInstanceUID = generate_uid(entropy_srcs=["bench", "big-pixels"])
    ds.Rows = ds.Columns = 512
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.SamplesPerPixel = 1
    ds.PixelRepresentation = 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    frames = megabytes * 2**20 // (512 * 512 * 2)
    ds.NumberOfFrames = frames
    ds.PixelData = np.zeros(frames * 512 * 512, dtype=np.uint16).tobytes()
    ds.DataSetTrailingPadding = b"\0" * 8
    _save(ds, path)
    return path.stat().st_size


def _save(ds: Dataset, path: Path) -> None:
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)


def converter_alone(path: Path) -> dict[str, float]:
    tracemalloc.start()
    start = time.perf_counter()
    result = convert_file(path, HeaderOptions())
    seconds = time.perf_counter() - start
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert isinstance(result, Header), result
    return {"seconds": round(seconds, 3), "peak_python_mb": round(peak / 2**20, 1)}


# -- the run -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem = next(
        int(x.split()[1])
        for x in Path("/proc/meminfo").read_text().splitlines()
        if x.startswith("MemTotal")
    )
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[
        0
    ]
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(mem / 2**20, 1),
        "python": platform.python_version(),
        "java": java,
        "pyspark": __import__("pyspark").__version__,
        "pydicom": pydicom.__version__,
        "pyarrow": pa.__version__,
        # the driver JVM's class archive `make setup` builds (conf/spark-defaults.conf)
        "jvm_class_archive": (ROOT / ".cache" / "spark-driver.jsa").is_file()
        and (ROOT / ".cache" / "spark-driver.jsa").stat().st_size > 0,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="scratch directory (default: a temporary one)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--baselines",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"measure B0 and B1 (default: up to {LARGE:,} files)",
    )
    parser.add_argument(
        "--headers-only",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"header replicas, no pixel data (default: above {LARGE:,} files)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="rounds of B0, P and B1 (every other one reversed); ratios: their median",
    )
    parser.add_argument(
        "--corpus",
        choices=("benchmark", "wide"),
        default="benchmark",
        help="the templates: pydicom's (default) or bench/wide.py's (thousands of fields)",
    )
    args = parser.parse_args(argv)
    large = args.files > LARGE
    baselines = not large if args.baselines is None else args.baselines
    headers_only = large if args.headers_only is None else args.headers_only
    work = args.work or Path(tempfile.mkdtemp(prefix="dcm-spark-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    }
    results["machine"] = machine()
    try:
        corpus = work / "corpus"
        start = time.perf_counter()
        templates = None
        if args.corpus == "wide":
            from bench.wide import templates as wide_templates

            templates = wide_templates(work / "templates")
        written = generate(corpus, args.files, args.seed, templates, headers_only)
        files = [str(p) for p in written]
        del written
        size = sum(os.path.getsize(f) for f in files)
        # the corpus on disk before anything is timed: the kernel writing 5 GB of dirty
        # pages back took CPU from whatever ran meanwhile (B0, B1 and P alike)
        os.sync()
        results["corpus"] = {
            "files": len(files),
            "bytes": size,
            "generated_s": round(time.perf_counter() - start, 1),
            "headers_only": headers_only,
            "templates": args.corpus,
        }
        print(f"corpus: {len(files)} files, {size / 2**30:.2f} GiB", flush=True)

        table = work / "table"
        summary_json = work / "summary.json"
        ingest_args = [
            "--input",
            str(corpus),
            "--table",
            str(table),
            "--summary-json",
            str(summary_json),
        ]
        # rounds of B0, P and B1, every other one reversed (B0 P B1, B1 P B0, ...): the
        # machine's speed drifts over minutes, so each P is compared with the baselines
        # measured next to it, and the ratios are the median of the rounds'
        rounds: list[dict[str, float]] = []
        for number in range(args.rounds if baselines else 1):
            measured: dict[str, float] = {}
            order = ("B0", "P", "B1") if number % 2 == 0 else ("B1", "P", "B0")
            for step in order if baselines else ("P",):
                if step == "P":
                    for old in (str(table), errors_path(str(table)), promotions_path(str(table))):
                        shutil.rmtree(old, ignore_errors=True)  # every P into a new table
                    p_total, memory = spark_submit("jobs/ingest.py", *ingest_args)
                    p_summary = json.loads(summary_json.read_text())
                    measured |= {"P_wall": p_total, "P_in_job": p_summary["seconds"]}
                    # start-up and shut-down: what spark-submit costs around the job's work
                    print(f"P: {p_total:.1f} s wall ({p_total - p_summary['seconds']:.1f} s "
                          "start-up)", flush=True)  # fmt: skip
                else:
                    measured[step] = (
                        baseline_b0(files) if step == "B0"
                        else baseline_b1(files, work / "naive.parquet")
                    )  # fmt: skip
                    print(f"{step}: {len(files) / measured[step]:.0f} files/s", flush=True)
            if baselines:
                measured |= {
                    "P_over_B0": measured["B0"] / measured["P_in_job"],
                    "P_over_B1": measured["B1"] / measured["P_in_job"],
                    "P_wall_over_B0": measured["B0"] / measured["P_wall"],
                    "P_wall_over_B1": measured["B1"] / measured["P_wall"],
                }
            rounds.append({k: round(v, 3) for k, v in measured.items()})
        # the medians of the rounds; the no-op and the increments run on the last P's table
        p_total = statistics.median(r["P_wall"] for r in rounds)
        p_work = statistics.median(r["P_in_job"] for r in rounds)
        startup = p_total - p_work
        noop_total, _ = spark_submit("jobs/ingest.py", *ingest_args)
        noop_summary = json.loads(summary_json.read_text())

        def increment(name: str, n_files: int, seed: int, *extra_args: str) -> tuple[float, Any]:
            generate(corpus / name, n_files, seed, templates, headers_only)
            os.sync()
            total, _ = spark_submit("jobs/ingest.py", *ingest_args, *extra_args)
            return total, json.loads(summary_json.read_text())

        extra, extra10 = max(1, args.files // 100), 10 * max(1, args.files // 100)
        inc_total, inc_summary = increment("increment", extra, args.seed + 1)
        # the same through the Spark job, then ten times as many: the slope between the
        # two is the job's marginal cost of a new file, the rest its fixed cost per run
        job = ("--driver-parse-limit", "0")
        inc_job_total, inc_job_summary = increment("increment_job", extra, args.seed + 2, *job)
        inc10_total, inc10_summary = increment("increment10", extra10, args.seed + 3, *job)
        marginal = (inc10_summary["seconds"] - inc_job_summary["seconds"]) / (extra10 - extra)

        n = len(files)
        results["seconds"] = {
            "spark_startup": round(startup, 2),
            "P_wall": round(p_total, 2),
            "P_in_job": round(p_work, 2),
            "P_noop_wall": round(noop_total, 2),
            "P_noop_in_job": noop_summary["seconds"],
            "P_inc_wall": round(inc_total, 2),
            "P_inc_in_job": inc_summary["seconds"],
            "P_inc_spark_job_wall": round(inc_job_total, 2),
            "P_inc_spark_job_in_job": inc_job_summary["seconds"],
            "P_inc10_spark_job_wall": round(inc10_total, 2),
            "P_inc10_spark_job_in_job": inc10_summary["seconds"],
        }
        results["incremental"] = {
            "files": [extra, extra10],
            "P_inc_parsed_in": inc_summary["parsed_in"],
            "P_ms_per_file": round(p_work / n * 1000, 3),
            "P_inc_ms_per_new_file": round(inc_summary["seconds"] / extra * 1000, 3),
            "spark_job_marginal_ms_per_file": round(marginal * 1000, 3),
            "spark_job_fixed_s": round(inc_job_summary["seconds"] - marginal * extra, 2),
        }
        results["files_per_s"] = {
            "P_wall": round(n / p_total),
            "P_without_startup": round(n / p_work),
        }
        results["ratios"] = {
            "P_noop_over_P": round(noop_summary["seconds"] / p_work, 3),
            "P_inc_over_P": round(inc_summary["seconds"] / p_work, 3),
            "P_inc_spark_job_over_P": round(inc_job_summary["seconds"] / p_work, 3),
            "inc_files_fraction": round(extra / n, 3),
        }
        if baselines:
            b0 = statistics.median(r["B0"] for r in rounds)
            b1 = statistics.median(r["B1"] for r in rounds)
            results["seconds"] |= {"B0": round(b0, 2), "B1": round(b1, 2)}
            results["files_per_s"] |= {"B0": round(n / b0), "B1": round(n / b1)}
            results["ratios"] |= {
                key: round(statistics.median(r[key] for r in rounds), 3)
                for key in ("P_over_B0", "P_over_B1", "P_wall_over_B0", "P_wall_over_B1")
            }
        results["rounds"] = rounds
        results["peak_memory_mb"] = {k: round(v) for k, v in memory.items()}
        results["summaries"] = {
            "P": p_summary,
            "P_noop": noop_summary,
            "P_inc": inc_summary,
            "P_inc_spark_job": inc_job_summary,
            "P_inc10_spark_job": inc10_summary,
        }
        for key in results["summaries"]:
            results["summaries"][key].pop("columns_added", None)

        elements = big_header(work / "big_header.dcm")
        results["big_header"] = {"elements": elements, **converter_alone(work / "big_header.dcm")}
        big = big_pixels(work / "big_pixels.dcm")
        results["big_pixels"] = {"bytes": big, **converter_alone(work / "big_pixels.dcm")}
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    label = "" if args.corpus == "benchmark" else f"-{args.corpus}-corpus"
    name = f"{results['date'][:10]}-{args.files}{label}"
    out = args.out / f"{name}.json"
    for again in range(2, 100):  # never over an earlier result
        if not out.exists():
            break
        out = args.out / f"{name}-{again}.json"
    out.write_text(json.dumps(results, indent=2) + "\n")
    shown = ("files_per_s", "ratios", "incremental", "peak_memory_mb")
    print(json.dumps({k: results[k] for k in shown}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
