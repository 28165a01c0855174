"""The HTML report, read in a real headless browser (Debian's chromium + chromedriver)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.reconcile.conftest import reconcile
from tests.reconcile.rosters import EXPECTED, PLANTED_VALUES, plant_one_per_kind, roster_from

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver"
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def visible_rows(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    rows = driver.find_elements(By.CSS_SELECTOR, "#discrepancies tbody tr")
    return [row for row in rows if row.is_displayed()]


def test_report_reads_and_filters_in_a_browser(
    recon_home: Path, our_file: Path, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    roster = roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    page = recon_home / "report.html"
    code, out, _ = reconcile(capsys, recon_home, roster, "--html", str(page))
    assert code == 1 and str(page) in out
    html = page.read_text()
    assert not [value for value in PLANTED_VALUES if value in html]

    browser.get(page.as_uri())
    assert "colonial" in browser.title
    counts = {
        row.get_attribute("data-kind"): row.find_element(By.CSS_SELECTOR, "td.count").text
        for row in browser.find_elements(By.CSS_SELECTOR, "#summary tr[data-kind]")
    }
    assert counts["demographic-mismatch"] == "5" and counts["plan-mismatch"] == "1"
    assert "what to do" in browser.find_element(By.ID, "summary").text.lower()
    assert len(visible_rows(browser)) == len(EXPECTED)
    assert browser.find_element(By.ID, "open-errors").text == "8"

    Select(browser.find_element(By.ID, "kind-filter")).select_by_value("demographic-mismatch")
    assert len(visible_rows(browser)) == 5
    Select(browser.find_element(By.ID, "severity-filter")).select_by_value("warning")
    assert len(visible_rows(browser)) == 3
    assert browser.find_element(By.ID, "shown").text == "3"
    Select(browser.find_element(By.ID, "kind-filter")).select_by_value("")
    Select(browser.find_element(By.ID, "severity-filter")).select_by_value("")
    browser.find_element(By.ID, "search").send_keys("1011")
    rows = visible_rows(browser)
    assert len(rows) == 1 and "plan-mismatch" in rows[0].text
    # clicking a kind in the summary filters the table to it
    browser.find_element(By.ID, "search").clear()
    browser.find_element(By.CSS_SELECTOR, '#summary tr[data-kind="tier-mismatch"]').click()
    rows = visible_rows(browser)
    assert len(rows) == 1 and "HD05" in rows[0].text


def test_report_with_names_and_a_clean_one(
    recon_home: Path, our_file: Path, browser: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    from selenium.webdriver.common.by import By

    roster = roster_from(our_file, recon_home / "in" / "planted.834", plant_one_per_kind)
    page = recon_home / "named.html"
    reconcile(capsys, recon_home, roster, "--html", str(page), "--show-names")
    browser.get(page.as_uri())
    table = browser.find_element(By.ID, "discrepancies").text
    assert all(value in table for value in PLANTED_VALUES)

    clean = roster_from(our_file, recon_home / "in" / "equal.834")
    page = recon_home / "clean.html"
    assert reconcile(capsys, recon_home, clean, "--html", str(page))[0] == 0
    browser.get(page.as_uri())
    assert "No discrepancies" in browser.find_element(By.ID, "none").text
