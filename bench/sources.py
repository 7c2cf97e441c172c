"""Benchmark of the sources: the same generated files ingested from local disk, from an S3
server on 127.0.0.1 (moto's) and from Orthanc over DICOMweb, in one run.

Each ingest is the real job (``spark-submit jobs/ingest.py`` on ``local[2]``) into a fresh
table; the ratios compare runs of this process only (these machines are noisy). Bytes read
from S3 are counted for one 512x512 CT slice by the test suite (tests/test_object_storage.py),
not here. ``python -m bench.sources --files 2000`` (``make bench-sources``).
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

from bench.corpus import generate
from bench.run import ROOT, machine, spark_submit
from tests.orthanc import orthanc_server
from tests.s3 import CREDENTIALS, bucket_with, s3_server


def _ingest(inputs: str, table: Path) -> tuple[float, dict[str, object]]:
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
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="dcm-spark-bench-sources-") as scratch:
        work = Path(scratch)
        files = generate(work / "corpus", args.files)
        result: dict[str, object] = {"files": args.files, "machine": machine()}

        local_s, local = _ingest(str(work / "corpus"), work / "local")
        result["local_s"] = round(local_s, 2)

        with s3_server(work / "moto.log") as endpoint:
            t = time.perf_counter()
            bucket_with(
                endpoint,
                "bench",
                {str(p.relative_to(work / "corpus")): p.read_bytes() for p in files},
            )
            result["s3_upload_s"] = round(time.perf_counter() - t, 2)
            os.environ.update(CREDENTIALS | {"AWS_ENDPOINT_URL": endpoint})
            s3_s, s3 = _ingest("s3://bench/", work / "s3")
        result["s3_s"] = round(s3_s, 2)
        result["s3_over_local_throughput"] = round(local_s / s3_s, 2)
        assert s3["parsed"] == local["parsed"], (s3, local)

        subset = files[: args.orthanc_files]
        with orthanc_server(work / "orthanc") as server:
            for path in subset:
                server.upload(path)
            (work / "subset").mkdir()
            for path in subset:
                (work / "subset" / path.name).symlink_to(path)
            subset_s, _ = _ingest(str(work / "subset"), work / "subset_table")
            web_s, web = _ingest(server.dicomweb, work / "web")
        stored = len(server.stored)
        result |= {
            "orthanc_instances": stored,
            "orthanc_job_s": round(web_s, 2),
            "orthanc_same_files_local_job_s": round(subset_s, 2),
            "orthanc_instances_per_s_in_job": round(stored / web_s, 1),
            "orthanc_instances_per_s_parsing": round(stored / web["stage_seconds"]["parsed"], 1),
            "orthanc_stage_seconds": web["stage_seconds"],
        }
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    target = args.out / f"{stamp}-sources-{args.files}.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    print(f"written: {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
