"""The console in a real browser: Debian's chromium, headless, driven by selenium through
Debian's chromedriver (nothing is downloaded), against `edi serve` itself on a free loopback
port, after the demo run with one failed delivery. Screenshots go to a temporary folder (and,
with EDI_SCREENSHOT_DIR set, there too: that is how docs/console.png is made)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.console.conftest import ConsoleHome, LiveConsole, assert_no_phi

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    assert CHROMIUM.exists() and CHROMEDRIVER.exists(), "scripts/install installs chromium"
    offline = os.environ.get("SE_OFFLINE")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not fetch a browser or driver
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1440,1000",
        "--hide-scrollbars",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        if offline is None:
            os.environ.pop("SE_OFFLINE", None)
        else:
            os.environ["SE_OFFLINE"] = offline


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


def visit(browser: Any, live: LiveConsole, path: str, shots: Path, name: str) -> Any:
    from selenium.webdriver.common.by import By

    browser.set_window_size(1440, 700)
    browser.get(live.url + path)
    body = browser.find_element(By.TAG_NAME, "body")
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1440, max(700, min(int(height) + 200, 6000)))
    shot = shots / f"{name}.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    extra = os.environ.get("EDI_SCREENSHOT_DIR")
    if extra:
        Path(extra).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, Path(extra) / shot.name)
    problems = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert problems == [], problems  # no CSP violation, no missing resource
    assert_no_phi(browser.page_source, path)
    # The stylesheet from the package applied (under the CSP): the header is the console's blue.
    header = browser.find_element(By.CSS_SELECTOR, "header.top")
    assert header.value_of_css_property("background-color") == "rgba(22, 50, 79, 1)"
    return body


def test_overview_in_a_browser(
    browser: Any, live_console: LiveConsole, console_home: ConsoleHome, shots: Path
) -> None:
    from selenium.webdriver.common.by import By

    body = visit(browser, live_console, "/", shots, "console")
    for name in ("Colonial Life", "Unum", "Allstate Benefits"):
        assert name in body.text
    assert "SAMPLE DATA" in body.text and console_home.home.name in body.text
    alert = browser.find_element(By.ID, "failures")
    assert alert.is_displayed() and "Unum" in alert.text and "connection-failed" in alert.text
    unum = browser.find_element(By.ID, "carrier-unum")
    assert "failing" in unum.get_attribute("class")
    assert unum.value_of_css_property("background-color") == "rgba(253, 236, 235, 1)"
    colonial = browser.find_element(By.ID, "carrier-colonial")
    assert colonial.value_of_css_property("background-color") != "rgba(253, 236, 235, 1)"
    assert "accepted" in colonial.text and "failed" in unum.text
    assert "intact" in browser.find_element(By.ID, "log-status").text


def test_deliveries_filter_and_a_delivery_in_a_browser(
    browser: Any, live_console: LiveConsole, console_home: ConsoleHome, shots: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    body = visit(browser, live_console, "/deliveries", shots, "deliveries")
    failed = browser.find_element(By.ID, f"delivery-{console_home.failed_seq}")
    assert failed.is_displayed() and "connection-failed" in failed.text
    colonial_seq = console_home.delivered["colonial"]
    row = browser.find_element(By.ID, f"delivery-{colonial_seq}")
    assert "colonial" in row.text and "delivered" in row.text and "834 SHA-256" in row.text
    assert "PGP SHA-256" in body.text

    Select(browser.find_element(By.NAME, "carrier")).select_by_value("unum")
    browser.find_element(By.CSS_SELECTOR, "form.filters button").click()
    WebDriverWait(browser, 20).until(lambda b: "carrier=unum" in b.current_url)

    def only_unum(b: Any) -> bool:
        rows = b.find_elements(By.CSS_SELECTOR, "table.deliveries tbody tr")
        return bool(rows) and all("unum" in r.text for r in rows)

    WebDriverWait(browser, 20).until(only_unum)

    visit(browser, live_console, "/deliveries", shots, "deliveries-all")
    browser.find_element(By.LINK_TEXT, f"#{colonial_seq}").click()
    WebDriverWait(browser, 20).until(
        lambda b: b.current_url.endswith(f"/deliveries/{colonial_seq}")
    )
    body = visit(browser, live_console, f"/deliveries/{colonial_seq}", shots, "delivery")
    assert "834 summary" in body.text and "Log entries" in body.text and "accepted" in body.text
    body = visit(
        browser, live_console, f"/deliveries/{console_home.failed_seq}", shots, "delivery-failed"
    )
    assert "delivery-failed" in body.text and "connection-failed" in body.text


def test_log_discrepancies_and_diff_in_a_browser(
    browser: Any, live_console: LiveConsole, console_home: ConsoleHome, shots: Path
) -> None:
    from selenium.webdriver.common.by import By

    body = visit(browser, live_console, "/log", shots, "log")
    assert "Intact." in browser.find_element(By.ID, "verification").text
    assert "BEGIN PUBLIC KEY" in browser.find_element(By.ID, "public-key").text
    assert "How to verify it yourself" in body.text
    assert browser.find_element(By.ID, "export-csv").get_attribute("href").endswith(".csv")

    body = visit(browser, live_console, "/discrepancies", shots, "discrepancies")
    assert browser.find_element(By.ID, "kind-plan-mismatch").is_displayed()
    assert "ticket OPS-17" in body.text

    body = visit(browser, live_console, "/carriers/colonial/diff", shots, "diff")
    assert f"subscriber id={console_home.ended_coverage['subscriber_id']}" in body.text
    assert list(shots.glob("*.png"))
