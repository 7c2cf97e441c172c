"""Benchmark of the sources: the same generated files ingested from local disk, from S3
servers on 127.0.0.1 and from Orthanc over DICOMweb, in one run.

Each ingest is the real job (``spark-submit jobs/ingest.py`` on ``local[2]``) into a fresh
table; the ratios compare runs of this process only (these machines are noisy). Bytes read
from S3 are counted for one 512x512 CT slice by the test suite (tests/test_object_storage.py),
not here. ``python -m bench.sources --files 2000`` (``make bench-sources``).

S3 servers: gofakes3 (Go, objects in memory; ``make bench-tools`` builds it into
``.cache/go/bin``) when built, and moto's, which the tests use. moto's server is pure
Python and spends ~4 ms of CPU per request on the 2 cores the job runs on (a file costs a
HEAD and a ranged GET, and more GETs where the reader steps over encapsulated pixel data),
so with moto the figure measures moto; ``s3_over_local_throughput`` is the fastest
server's.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.corpus import generate
from bench.run import ROOT, machine, spark_submit
from tests.orthanc import orthanc_server
from tests.s3 import CREDENTIALS, bucket_with, gofakes3_server, s3_server

#: gofakes3, as ``make bench-tools`` builds it.
GOFAKES3 = ROOT / ".cache" / "go" / "bin" / "gofakes3"


def _ingest(inputs: str, table: Path) -> tuple[float, dict[str, Any]]:
    summary = table.with_suffix(".json")
    seconds, _ = spark_submit(
        "jobs/ingest.py", "--input", inputs, "--table", str(table), "--summary-json", str(summary)
    )
    return seconds, json.loads(summary.read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.sources", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--orthanc-files", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument(
        "--s3-servers",
        default="gofakes3,moto" if GOFAKES3.exists() else "moto",
        help="comma-separated, from gofakes3 and moto (default: those available)",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dcm-spark-bench-sources-") as scratch:
        work = Path(scratch)
        files = generate(work / "corpus", args.files)
        result: dict[str, object] = {"files": args.files, "machine": machine()}

        local_s, local = _ingest(str(work / "corpus"), work / "local")
        result["local_s"] = round(local_s, 2)

        objects = {str(p.relative_to(work / "corpus")): p.read_bytes() for p in files}
        servers = {
            "gofakes3": lambda log: gofakes3_server(GOFAKES3, log),
            "moto": lambda log: s3_server(log),
        }
        by_server: dict[str, dict[str, float]] = {}
        for name in args.s3_servers.split(","):
            with servers[name](work / f"{name}.log") as endpoint:
                t = time.perf_counter()
                bucket_with(endpoint, "bench", objects)
                upload_s = time.perf_counter() - t
                os.environ.update(CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint})
                s3_s, s3 = _ingest("s3://bench/", work / f"s3-{name}")
            assert s3["parsed"] == local["parsed"], (name, s3, local)
            by_server[name] = {
                "upload_s": round(upload_s, 2),
                "job_s": round(s3_s, 2),
                "over_local_throughput": round(local_s / s3_s, 2),
            }
        fastest = min(by_server, key=lambda name: by_server[name]["job_s"])
        result |= {
            "s3_server": fastest,
            "s3_s": by_server[fastest]["job_s"],
            "s3_over_local_throughput": by_server[fastest]["over_local_throughput"],
            "s3_servers": by_server,
        }

        subset = files[: args.orthanc_files]
        with orthanc_server(work / "orthanc") as server:
            for path in subset:
                server.upload(path)
            (work / "subset").mkdir()
            for path in subset:
                (work / "subset" / path.name).symlink_to(path)
            subset_s, _ = _ingest(str(work / "subset"), work / "subset_table")
            study_s, study = _ingest(server.dicomweb + "?limit=1", work / "web_one_study")
            web_s, web = _ingest(server.dicomweb, work / "web")
        stored = len(server.stored)
        parsed_s, study_parsed_s = web["stage_seconds"]["parsed"], study["stage_seconds"]["parsed"]
        more = stored - study["parsed"]
        result |= {
            "orthanc_instances": stored,
            "orthanc_job_s": round(web_s, 2),
            "orthanc_same_files_local_job_s": round(subset_s, 2),
            "orthanc_instances_per_s_in_job": round(stored / web_s, 1),
            "orthanc_instances_per_s_parsing": round(stored / parsed_s, 1),
            "orthanc_stage_seconds": web["stage_seconds"],
            # what each instance adds: the job over a one-study job (a Spark job's and
            # its Python workers' start are in both)
            "orthanc_one_study": {"instances": study["parsed"], "job_s": round(study_s, 2)}
            | {"stage_seconds": study["stage_seconds"]},
            "orthanc_instances_per_s_past_one_study_job": round(more / (web_s - study_s), 1),
            "orthanc_instances_per_s_past_one_study_parsing": round(
                more / (parsed_s - study_parsed_s), 1
            ),
        }
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    target = args.out / f"{stamp}-sources-{args.files}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written: {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
