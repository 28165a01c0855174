"""Employer workspaces on one store, and `edi` workers as real processes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.postgres import PostgresServer
from tests.support.servers import Sshd
from tests.support.workspace import REPO, edi

AS_OF = "2026-11-24"
FAST = ("--heartbeat-s", "0.5", "--stalled-after-s", "3", "--poll-s", "0.2")


def add_store(home: Path, name: str) -> None:
    settings = home / "edi.toml"
    settings.write_text(f'name = "{name}"\n' + settings.read_text() + "\n[store]\n")


def grant_employers(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    server: PostgresServer,
    pg_url: str,
    passwords: dict[str, str],
) -> dict[str, str]:
    """`edi store grant` a login role per employer (name → password); each role's store URL.
    The grant names its role and workspace and never prints the password."""
    for name, password in passwords.items():
        monkeypatch.setenv("ROLE_PASSWORD", password)
        code, out, err = edi(
            capsys,
            *("store", "grant", "--workspace", name, "--password-env", "ROLE_PASSWORD"),
            *("--store-url", pg_url),
        )
        assert code == 0, err
        assert f"role edi_ws_{name}: workspace '{name}' only" in out and password not in out
    database = pg_url.rsplit("/", 1)[1]
    return {name: server.url(database, pw, f"edi_ws_{name}") for name, pw in passwords.items()}


def employer(live_home: Path, sshd: Sshd, name: str) -> Path:
    """A copy of the live workspace named NAME, delivering into its own remote folder."""
    home = live_home.parent / f"employer-{name}"
    shutil.copytree(live_home, home, ignore=shutil.ignore_patterns("state"))
    inbox = sshd.inbox / name
    inbox.mkdir()
    profile = home / "carriers" / "colonial.toml"
    profile.write_text(
        profile.read_text().replace(f'remote_dir = "{sshd.inbox}"', f'remote_dir = "{inbox}"')
    )
    add_store(home, name)
    return home


def env(url: str, **extra: str) -> dict[str, str]:
    values = {k: v for k, v in os.environ.items() if k != "EDI_CRASH_AT"}
    values["EDI_STORE_URL"] = url
    values["PYTHONPATH"] = str(REPO) + os.pathsep + values.get("PYTHONPATH", "")
    values.update(extra)
    return values


def edi_run(url: str, *args: str, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "edi", *args]
    if home is not None:
        command[3:3] = ["--home", str(home)]
    return subprocess.run(
        command, env=env(url), capture_output=True, text=True, timeout=120, check=False
    )


def start_worker(url: str, *args: str, **extra_env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "edi", "worker", *FAST, *args],
        env=env(url, **extra_env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def jobs(url: str) -> list[dict[str, object]]:
    done = edi_run(url, "jobs", "list", "--json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def wait_for(url: str, predicate: object, timeout: float = 120) -> list[dict[str, object]]:
    deadline = time.monotonic() + timeout
    while True:
        rows = jobs(url)
        if predicate(rows):  # type: ignore[operator]
            return rows
        assert time.monotonic() < deadline, rows
        time.sleep(0.5)


def delivered(home: Path, url: str) -> list[dict[str, object]]:
    done = edi_run(url, "log", "list", "--json", home=home)
    assert done.returncode == 0, done.stderr
    return [
        e
        for e in json.loads(done.stdout)
        if e.get("event") == "delivery" and e.get("outcome") == "delivered"
    ]


def remote_files(sshd: Sshd, name: str) -> list[Path]:
    return sorted(p for p in (sshd.inbox / name).iterdir() if not p.name.startswith("."))
