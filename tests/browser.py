"""Debian's headless Chromium driven by Selenium, for the app's browser tests and its
benchmark (bench/app.py): start it, wait for what a page shows, read it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def available() -> bool:
    return CHROMIUM.exists() and CHROMEDRIVER.exists()


@contextmanager
def chromium(downloads: Path, log_requests: bool = False) -> Iterator[Any]:
    """A headless Chromium saving downloads to ``downloads`` (``driver.downloads``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--window-size=1280,860",
        "--disable-background-networking",
    ):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    if log_requests:
        options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    # the driver's path given: Selenium Manager has nothing to look up or download
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.execute_cdp_cmd(
        "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    try:
        yield driver
    finally:
        driver.quit()


def until(check: Callable[[], Any], what: str, seconds: float, every: float = 0.3) -> Any:
    """``check()``'s first true value, tried every ``every`` seconds for ``seconds``."""
    deadline = time.monotonic() + seconds
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
            if value:
                return value
        except Exception as exc:  # the element is not there yet, or went stale
            last = exc
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} ({last})")


def text(driver: Any, css: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, css).text)


def tab(driver: Any, name: str) -> None:
    from selenium.webdriver.common.by import By

    tabs = driver.find_elements(By.CSS_SELECTOR, "button[role=tab]")
    next(t for t in tabs if t.text == name).click()
