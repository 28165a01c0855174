"""Output that survives pipes: with stdout a pipe (not a terminal), tables are tab-separated
lines with every value whole; empty tables say so; times are in the user's zone, JSON is ISO."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edi.output import local_time
from tests.support.workspace import REPO

NOW = "2026-12-03T12:00:00+00:00"


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "ws"
    shutil.copytree(REPO / "carriers", home / "carriers")
    shutil.copytree(REPO / "schedules", home / "schedules")
    return home


def piped(home: Path, *args: str, tz: str = "America/New_York") -> subprocess.CompletedProcess[str]:
    """`edi ARGS | cat`: stdout and stderr are pipes, COLUMNS is narrow like a small terminal."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TZ": tz, "COLUMNS": "60"}
    env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "edi", "--home", str(home), "--now", NOW, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=home,
    )


def rows(stdout: str) -> list[list[str]]:
    return [line.split("\t") for line in stdout.splitlines()]


def test_schedules_list_is_whole_and_in_the_users_zone(home: Path) -> None:
    done = piped(home, "schedules", "list")
    assert done.returncode == 0, done.stderr
    table = rows(done.stdout)
    header = table[0]
    assert header[:3] == ["schedule", "carrier", "cron"]
    colonial = next(r for r in table if r[0] == "colonial")
    assert colonial[header.index("timezone")] == "America/New_York"
    assert colonial[header.index("next run")] == "Mon 7 Dec 02:00 EST"
    assert "…" not in done.stdout and "┃" not in done.stdout


def test_times_follow_the_users_zone(home: Path) -> None:
    done = piped(home, "schedules", "list", tz="Europe/Paris")
    colonial = next(r for r in rows(done.stdout) if r[0] == "colonial")
    assert "Mon 7 Dec 08:00 CET" in colonial


def test_json_keeps_iso_times(home: Path) -> None:
    done = piped(home, "schedules", "list", "--json")
    colonial = next(r for r in json.loads(done.stdout) if r["schedule"] == "colonial")
    assert colonial["next_run"] == "2026-12-07T02:00:00-05:00"


def test_carriers_show_grep_finds_every_plan(home: Path) -> None:
    done = piped(home, "carriers", "show", "colonial")
    assert done.returncode == 0, done.stderr
    hospital = [line for line in done.stdout.splitlines() if "hospital" in line]
    expected = (REPO / "carriers" / "colonial.toml").read_text().count("hospital_confinement")
    assert len(hospital) == expected > 0
    assert all(len(line.split("\t")) == 5 for line in hospital)


def test_carriers_list_names_whole(home: Path) -> None:
    done = piped(home, "carriers", "list")
    names = {r[0]: r[1] for r in rows(done.stdout)[1:]}
    assert names == {"allstate": "Allstate Benefits", "colonial": "Colonial Life", "unum": "Unum"}


def test_empty_table_says_no_entries(home: Path) -> None:
    done = piped(home, "log", "list")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip() == "Delivery log: no entries"


def test_local_time_format() -> None:
    assert local_time("2026-12-07T07:00:00+00:00").count(" ") >= 4
    assert local_time(None) == "-"
    assert local_time("not a time") == "not a time"


def test_terminal_tables_keep_bracketed_text() -> None:
    """On a terminal a cell like "Set [alerts] email_to" is text, not rich markup."""
    from io import StringIO

    from rich.console import Console

    from edi.output import render_table

    buffer = StringIO()
    terminal = Console(file=buffer, force_terminal=True, width=200, color_system=None)
    render_table(
        terminal,
        terminal,
        "edi check [colonial]",
        ("detail", "hint"),
        [("[host-key-mismatch] offered SHA256:x", "Set [alerts] email_to or webhook_url")],
    )
    shown = buffer.getvalue()
    assert "[host-key-mismatch]" in shown and "Set [alerts] email_to" in shown
    assert "edi check [colonial]" in shown


def test_stderr_lines_are_never_wrapped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A remote path on stderr stays on one line however narrow the terminal says it is."""
    from edi.cli import common

    monkeypatch.setattr(common.err, "_width", 40)  # as if COLUMNS=40 (restored to unset)
    path = "/carrier/inbound/ACME_colonial_834_20261124_000000001.834.pgp"
    common.err.print(f"colonial: delivered → {path} (ISA13 000000001, 65 members)")
    shown = capsys.readouterr().err
    assert shown.count("\n") == 1 and path in shown


def test_generate_progress_says_what_follows_mapping() -> None:
    """After the last subscriber is mapped the bar gives way to a pulsing "writing and
    validating" line (no total), instead of sitting at 100 %."""
    from io import StringIO

    from rich.console import Console
    from rich.progress import Progress

    from edi.cli.files import GenerateProgress

    terminal = Console(file=StringIO(), force_terminal=True, width=100)
    with Progress(console=terminal, auto_refresh=False) as bar:
        progress = GenerateProgress(bar, "colonial")
        progress(500, 1000)
        shown = [t for t in bar.tasks if t.visible]
        assert [(t.description, t.completed, t.total) for t in shown] == [
            ("mapping colonial", 500, 1000)
        ]
        progress(1000, 1000)
        progress(1000, 1000)
        shown = [t for t in bar.tasks if t.visible]
        assert [(t.description, t.total) for t in shown] == [
            ("writing and validating colonial", None)
        ]
