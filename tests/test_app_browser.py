"""The app in a real browser: Debian's headless Chromium driven by Selenium against the app
served on a free port of 127.0.0.1, over a small table ingested here from pydicom's test
files and a highdicom SEG. Every expected value is read from the files with pydicom.

With ``DCM_SPARK_SCREENSHOTS=1`` each tab is saved to ``docs/screenshots/<tab>.png`` (the
README's pictures).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest

from tests.browser import available, chromium, until
from tests.browser import tab as _tab
from tests.browser import text as _text
from tests.corpus import build_highdicom_objects
from tests.helpers import free_port, ingest, pydicom_path

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
WAIT = 90  # seconds: an ingest through the page runs a Spark job on 2 shared cores

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not available(),
        reason="no browser: apt-get install chromium chromium-driver",
    ),
]


def _read(path: Path) -> pydicom.Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(path, stop_before_pixels=True)


@pytest.fixture(scope="module")
def served(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The app on 127.0.0.1 over CT_small, MR_small and a SEG; yields its URL and files."""
    from dcm_spark.app.server import launch
    from dcm_spark.app.state import AppState

    root = tmp_path_factory.mktemp("app")
    seg = build_highdicom_objects(root / "built")["seg"]
    inputs = root / "in"
    inputs.mkdir()
    for source in (Path(pydicom_path("CT_small.dcm")), Path(pydicom_path("MR_small.dcm")), seg):
        shutil.copy(source, inputs / source.name)
    table = root / "table"
    ingest(spark, [inputs], table, where="driver")
    # Its own SQL session: the app's views do not replace those other tests registered.
    state = AppState.open(spark.newSession(), str(table))
    port = free_port()
    page = launch(state, "127.0.0.1", port, block=False)
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "seg": inputs / seg.name, "state": state}
    finally:
        page.close()
        shutil.rmtree(state.scratch, ignore_errors=True)


@pytest.fixture(scope="module")
def browser(served: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("downloads"), log_requests=True) as driver:
        driver.get(served["url"])
        yield driver


def _until(check: Callable[[], Any], what: str, seconds: float = WAIT) -> Any:
    return until(check, what, seconds)


def _screenshot(driver: Any, name: str, element: Any = None) -> None:
    """Save the page (from its top, or ``element`` in the middle) as
    docs/screenshots/<name>.png, in 64 colours, when DCM_SPARK_SCREENSHOTS is set."""
    if not os.environ.get("DCM_SPARK_SCREENSHOTS"):
        return
    from PIL import Image

    if element is None:
        driver.execute_script("window.scrollTo(0, 0)")
    else:
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    time.sleep(0.5)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    image = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("RGB")
    image.quantize(colors=64).save(SCREENSHOTS / f"{name}.png", optimize=True)
    assert (SCREENSHOTS / f"{name}.png").stat().st_size < 150_000


def test_page_opens_with_the_table(browser: Any) -> None:
    assert _until(lambda: "3 instances" in _text(browser, "#title"), "the title")


def test_page_asks_nothing_of_other_hosts(browser: Any, served: dict[str, Any]) -> None:
    """No analytics, fonts or scripts from elsewhere: every request goes to the app."""
    _until(lambda: "instances" in _text(browser, "#title"), "the title")
    urls = set()
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.add(message["params"]["request"]["url"])
    assert urls and all(u.startswith((served["url"], "data:", "blob:")) for u in urls), urls


def test_schema_unfolds_referenced_series_sequence(browser: Any, served: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    _tab(browser, "Schema")
    css = 'details[data-field="ReferencedSeriesSequence"]'
    node = _until(lambda: browser.find_element(By.CSS_SELECTOR, css), "the schema tree")
    assert node.get_attribute("open") is None
    node.find_element(By.CSS_SELECTOR, "summary").click()
    assert node.get_attribute("open") == "true"
    inner = node.find_elements(By.CSS_SELECTOR, ":scope > [data-field]")
    referenced = _read(served["seg"]).ReferencedSeriesSequence[0]
    assert {e.get_attribute("data-field") for e in inner} >= set(referenced.dir()) & {
        "SeriesInstanceUID",
        "ReferencedInstanceSequence",
    }
    summary = node.find_element(By.CSS_SELECTOR, "summary").text
    assert "RECORD" in summary and "REPEATED" in summary and "33%" in summary  # 1 row of 3
    box = browser.find_element(By.CSS_SELECTOR, "#schema-filter textarea, #schema-filter input")
    box.send_keys("Referenced")
    modality = '.dcm-schema [data-field="Modality"]'
    _until(lambda: not browser.find_elements(By.CSS_SELECTOR, modality), "the filtered tree")
    _screenshot(browser, "schema")


def test_query_first_cell_and_csv_download(browser: Any, served: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    _tab(browser, "Query")
    sql = (
        "SELECT s.SegmentLabel FROM dicom LATERAL VIEW explode(SegmentSequence) AS s "
        "ORDER BY s.SegmentNumber"
    )
    box = browser.find_element(By.CSS_SELECTOR, "#sql textarea")
    box.clear()
    box.send_keys(sql)
    browser.find_element(By.ID, "run-query").click()
    labels = [str(s.SegmentLabel) for s in _read(served["seg"]).SegmentSequence]
    expected = labels[0]
    first = "#query-result [data-testid=cell-0-0]"
    assert _until(lambda: _text(browser, first), "the first cell") == expected
    assert _text(browser, "#query-status").startswith(f"{len(labels)} rows")
    link = _until(
        lambda: browser.find_element(By.CSS_SELECTOR, '#downloads a[download$=".csv"]'),
        "the CSV link",
    )
    link.click()
    saved = _until(lambda: list(browser.downloads.glob("*.csv")), "the downloaded CSV")
    rows = list(csv.reader(io.StringIO(saved[0].read_text())))
    assert rows == [["SegmentLabel"], *([label] for label in labels)]
    _screenshot(browser, "query")


def test_cookbook_example_runs(browser: Any, served: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    browser.find_element(By.CSS_SELECTOR, "#example input").click()
    options = _until(lambda: browser.find_elements(By.CSS_SELECTOR, "[role=option]"), "examples")
    next(o for o in options if o.text == "count-by-modality").click()
    box = browser.find_element(By.CSS_SELECTOR, "#sql textarea")
    _until(lambda: "GROUP BY Modality" in box.get_attribute("value"), "the example's SQL")
    browser.find_element(By.ID, "run-query").click()
    files = [Path(pydicom_path("CT_small.dcm")), Path(pydicom_path("MR_small.dcm")), served["seg"]]
    expected = {str(_read(f).Modality) for f in files}
    _until(lambda: _text(browser, "#query-status").startswith(f"{len(expected)} rows"), "rows")
    cells = [f"#query-result [data-testid=cell-{i}-0]" for i in range(len(expected))]
    assert {_text(browser, c) for c in cells} == expected


def test_query_refusal_is_one_line(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    box = browser.find_element(By.CSS_SELECTOR, "#sql textarea")
    box.clear()
    box.send_keys("SELECT * FROM parquet.`/etc`")
    browser.find_element(By.ID, "run-query").click()
    message = _until(lambda: _text(browser, "#query-status .dcm-error"), "the refusal")
    assert message.startswith("refused: qualified or file-path tables") and "\n" not in message


def test_series_opens_instances_and_a_header(browser: Any, served: dict[str, Any]) -> None:
    from selenium.webdriver.common.by import By

    seg = _read(served["seg"])
    _tab(browser, "Series")
    box = browser.find_element(By.CSS_SELECTOR, "#text textarea, #text input")
    box.send_keys(str(seg.SeriesInstanceUID))
    browser.find_element(By.ID, "find-series").click()
    first = "#series [data-testid=cell-0-0]"
    assert _until(lambda: _text(browser, first), "a series") == seg.SeriesInstanceUID
    browser.find_element(By.CSS_SELECTOR, first).click()
    instance = "#instances [data-testid=cell-0-0]"
    assert _until(lambda: _text(browser, instance), "an instance") == seg.SOPInstanceUID
    browser.find_element(By.CSS_SELECTOR, instance).click()
    header = _until(
        lambda: (text := _text(browser, "#header")) and seg.SOPInstanceUID in text and text,
        "the header",
    )
    assert "SegmentSequence" in header and str(seg.SegmentSequence[0].SegmentLabel) in header
    _screenshot(browser, "series")


def test_uploading_two_files_grows_the_table(browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _tab(browser, "Ingest")
    files = [pydicom_path("rtplan.dcm"), pydicom_path("SC_rgb.dcm")]
    field = browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]")
    field.send_keys("\n".join(files))
    _until(lambda: len(browser.find_elements(By.CSS_SELECTOR, "#upload .file")) == 2, "the uploads")
    browser.find_element(By.ID, "ingest").click()
    summary = _until(
        lambda: (text := _text(browser, "#ingest-summary")).startswith("run ") and text,
        "the run's summary",
    )
    assert "2 new" in summary and "2 parsed" in summary, summary
    assert _until(lambda: "5 instances" in _text(browser, "#title"), "the new row count")
    _screenshot(browser, "ingest")
    _tab(browser, "Query")
    box = browser.find_element(By.CSS_SELECTOR, "#sql textarea")
    box.clear()
    box.send_keys("SELECT count(*) AS n FROM dicom WHERE Modality = 'RTPLAN'")
    browser.find_element(By.ID, "run-query").click()
    first = "#query-result [data-testid=cell-0-0]"
    assert _until(lambda: _text(browser, first) == "1", "the new row in the views")
