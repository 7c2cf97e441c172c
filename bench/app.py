"""Benchmark of the app (``make bench-app``): what a researcher waits for in the browser.

    python -m bench.app --files 30000 [--repeats 3]

On a generated corpus (bench/corpus.py) ingested by the real job, it starts the app as
``make app`` does (``spark-submit jobs/app.py`` on ``local[2]``) and drives Debian's
headless Chromium (tests/browser.py) against it:

- first page load: from starting the app's process to the title showing the row count;
- schema page, warm: a reload of the page until the schema tree (with fill rates) shows;
- query, warm: ``count(*) ... GROUP BY Modality`` typed in the Query tab until its rows show.

Warm figures are each of ``--repeats`` tries after a first one that is not counted. Times
are the browser's (the page's own requests and rendering included). Results go to
``bench/results/<date>-<files>-app.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench.corpus import generate
from bench.run import ROOT, SPARK_SUBMIT, machine, spark_env, spark_submit
from dcm_spark.session import server_java_options
from tests.browser import available, chromium, tab, text, until
from tests.helpers import free_port

QUERY = "SELECT Modality, count(*) AS n FROM dicom GROUP BY Modality ORDER BY n DESC"
WAIT = 300  # seconds: the first load of a cold JVM on 2 shared cores


def _schema_shown(driver: Any) -> bool:
    from selenium.webdriver.common.by import By

    return bool(driver.find_elements(By.CSS_SELECTOR, '.dcm-schema [data-field="Modality"]'))


def _serving(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False


def _reload_until_schema(driver: Any, url: str) -> float:
    start = time.perf_counter()
    driver.get(url)
    until(lambda: _schema_shown(driver), "the schema tree", WAIT, every=0.05)
    return time.perf_counter() - start


def _run(driver: Any, sql: str) -> float:
    """Seconds from clicking Run to the status line's row count of ``sql``."""
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.CSS_SELECTOR, "#sql textarea")
    box.clear()
    box.send_keys(sql)
    before = text(driver, "#query-status")
    start = time.perf_counter()
    driver.find_element(By.ID, "run-query").click()
    until(
        lambda: (status := text(driver, "#query-status")) != before and " rows" in status,
        "the query's rows",
        WAIT,
        every=0.05,
    )
    return time.perf_counter() - start


def _query(driver: Any, sql: str) -> float:
    tab(driver, "Query")
    _run(driver, "SELECT 1 AS one")  # a status line of another row count first
    return _run(driver, sql)


def measure(table: Path, work: Path, repeats: int) -> dict[str, Any]:
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    log = (work / "app.log").open("w")
    started = time.perf_counter()
    app = subprocess.Popen(
        [*SPARK_SUBMIT, "--driver-java-options", server_java_options()]
        + ["jobs/app.py", "--table", str(table), "--port", str(port)],
        cwd=ROOT,
        env=spark_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        with chromium(work / "downloads") as driver:
            until(lambda: _serving(url), "the app's port", WAIT, every=0.1)
            serving = time.perf_counter() - started
            driver.get(url)
            until(lambda: "instances" in text(driver, "#title"), "the title", WAIT, every=0.05)
            first_load = time.perf_counter() - started
            until(lambda: _schema_shown(driver), "the schema tree", WAIT, every=0.05)
            first_schema = time.perf_counter() - started
            _reload_until_schema(driver, url)  # warm-up, not counted
            schema = [_reload_until_schema(driver, url) for _ in range(repeats)]
            _query(driver, QUERY)  # warm-up
            query = [_query(driver, QUERY) for _ in range(repeats)]
    finally:
        app.terminate()
        app.wait(60)
        log.close()
    return {
        "serving_s": round(serving, 2),
        "first_page_load_s": round(first_load, 2),
        "first_schema_s": round(first_schema, 2),
        "schema_warm_s": [round(s, 2) for s in schema],
        "query_group_by_modality_warm_s": [round(s, 2) for s in query],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.app", description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=30000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    if not available():
        print("bench.app: no browser: apt-get install chromium chromium-driver", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dcm-bench-app-") as scratch:
        work = Path(scratch)
        generate(work / "in", args.files)
        table = work / "dicom"
        ingest_s, _ = spark_submit(
            "jobs/ingest.py", "--input", str(work / "in"), "--table", str(table)
        )
        result = {"files": args.files, "machine": machine(), "ingest_s": round(ingest_s, 2)}
        result |= measure(table, work, args.repeats)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{datetime.date.today().isoformat()}-{args.files}-app.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
