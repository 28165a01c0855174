"""`edi log report --since --until`: a summary per carrier, labelled hashes, and a page that
says "no deliveries" in words (never a green "intact" over nothing)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.servers import Sshd
from tests.support.workspace import edi, log_entries


def report(capsys: pytest.CaptureFixture[str], home: Path, *args: str) -> str:
    page = home / "report.html"
    code, out, err = edi(capsys, "log", "report", "--html", str(page), *args)
    assert code == 0, err
    assert out.strip() == str(page)
    return page.read_text()


def test_empty_log_says_so(edi_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = report(capsys, edi_home)
    assert 'id="no-deliveries"' in page and "No deliveries in this period" in page
    assert "the log is empty: nothing to verify" in page
    assert 'class="verify-ok"' not in page and 'id="summary"' not in page


def test_summary_labelled_hashes_and_period(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edi(capsys, "run", "-c", "colonial", "--as-of", "2026-11-24")[0] == 0
    assert edi(capsys, "run", "-c", "colonial", "--as-of", "2026-11-24")[0] == 0  # re-run
    delivery = next(e for e in log_entries(capsys, live_home) if e["event"] == "delivery")
    page = report(capsys, live_home)
    summary = re.search(r'<table id="summary">.*?</table>', page, re.S)
    assert summary is not None
    cells = re.findall(r"<td>([^<]*)</td>", summary.group(0))
    assert cells == ["colonial", "1", "1", "0", "1", "0", "0", "0"]
    assert f"plaintext file:</span> <code>{delivery['plaintext_sha256']}</code>" in page
    assert f"encrypted file:</span> <code>{delivery['ciphertext_sha256']}</code>" in page
    assert "log entry:</span>" in page and 'class="verify-ok"' in page

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    page = report(capsys, live_home, "--since", tomorrow, "--until", tomorrow)
    assert 'id="no-deliveries"' in page and f"between {tomorrow}" in page
    assert 'class="verify-ok"' in page, "the whole log still verifies"
    assert "Period: " + tomorrow in page
