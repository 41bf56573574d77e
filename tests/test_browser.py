"""A person at a browser: Debian's Chromium, driven by Selenium through Debian's chromedriver,
opens `authload run --ui`'s page on 127.0.0.1, starts the test by clicking, watches the
authload tab's SLO table update, stops the test, and follows the UI's link to the report.

Both programs come from the Debian packages ``chromium`` and ``chromium-driver``, found or
installed before the session as the tests' other programs are (``tests/helpers/tools.py``).
``AUTHLOAD_UI_SCREENSHOT=FILE`` also saves the authload tab as a PNG (the README's picture is
made so).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.helpers.tools import tool_path
from tests.helpers.ui_runs import SHORT, ui_run

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.tools("chromium", "chromedriver"),
]

T = TypeVar("T")
SCREENSHOT_ENV = "AUTHLOAD_UI_SCREENSHOT"


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = tool_path("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1000")
    driver = webdriver.Chrome(service=Service(tool_path("chromedriver")), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _until(what: str, probe: Callable[[], T | None], timeout_s: float = 30) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value = probe()
        except WebDriverException:  # the page re-rendered under us: look again
            value = None
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.25)


def _click(driver: WebDriver, tag: str, text: str) -> None:
    """Click the element (button, tab, link) showing ``text``, once it is there."""

    def find() -> bool | None:
        for element in driver.find_elements(By.TAG_NAME, tag):
            if element.text.strip().lower().startswith(text.lower()):
                element.click()
                return True
        return None

    _until(f"a {tag} {text!r}", find)


def _table(driver: WebDriver) -> dict[tuple[str, str], tuple[str, str]]:
    """The authload tab's table: (what, item) -> (now, status)."""
    table = {}
    for row in driver.find_elements(By.CSS_SELECTOR, "table tbody tr"):
        cells = [c.text for c in row.find_elements(By.TAG_NAME, "td")]
        if len(cells) == 4:
            table[(cells[0], cells[1])] = (cells[2], cells[3])
    return table


def _requests(driver: WebDriver) -> int | None:
    """The request count on the tab's run row, once the test counts some."""
    runs = [now for (what, _), (now, _) in _table(driver).items() if what == "run"]
    if not runs or "requests" not in runs[0]:
        return None
    return int(runs[0].rsplit(", ", 1)[1].split()[0])


def test_a_person_starts_watches_stops_and_reads_the_report(
    tmp_path: Path, browser: WebDriver
) -> None:
    longer = SHORT.replace("duration_s: 5, users: 5", "duration_s: 60, users: 5")
    with ui_run(tmp_path, longer, linger_s=60) as ui:
        ui.wait_up()
        browser.get(ui.url)
        _click(browser, "button", "start")
        _click(browser, "button", "authload")  # the tab
        slo = ("SLO", "error_rate(*, 5xx) < 1%")
        first = _until("the SLO's first value", lambda: _table(browser).get(slo))
        assert first[1] in ("ok so far", "at the end")
        counted = _until("requests counted", lambda: _requests(browser) or None)
        later = _until("the table updated", lambda: _check_grew(browser, counted))
        assert later > counted
        value, status = _table(browser)[slo]
        assert (value, status) == ("0%", "ok so far")
        if os.environ.get(SCREENSHOT_ENV):
            _screenshot(browser, Path(os.environ[SCREENSHOT_ENV]))
        _click(browser, "button", "stop")
        stopped = ("verdict so far", "ui-check")
        _until("stopped", lambda: _table(browser).get(stopped, ("", ""))[1] == "stopped" or None)
        _click(browser, "button", "download data")
        _click(browser, "a", "authload report")
        _until("the report", lambda: browser.title == "authload report: ui-check" or None, 60)
        assert "ABORTED" in browser.find_element(By.TAG_NAME, "body").text
        ui.wait_printed("verdict: ABORTED")
        ui.interrupt()
        assert ui.wait_exit(30) == 3, ui.describe()


def _check_grew(driver: WebDriver, before: int) -> int | None:
    now = _requests(driver)
    return now if now is not None and now > before else None


def _screenshot(driver: WebDriver, path: Path) -> None:
    """The whole tab: the window made tall enough for every row, then as it was."""
    size = driver.get_window_size()
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(size["width"], int(height) + 120)
    time.sleep(1)
    driver.save_screenshot(str(path))
    driver.set_window_size(size["width"], size["height"])
