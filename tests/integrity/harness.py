"""Runs `python -m edi` as a separate process (so it can be killed with SIGKILL or run several
at once) and checks what a run must leave behind: one right file per content on the server,
one `delivered` entry for it, no temp files on either side, no PHI outside state/."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.servers import CarrierKey, Sshd
from tests.support.workspace import REPO

AS_OF = "2026-11-24"
NOW = "2026-11-24T02:00:00+00:00"


@dataclass(frozen=True)
class Done:
    code: int
    out: str
    err: str


def edi_command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "edi", "--home", str(home), "--now", NOW, *args]


def edi_env(**extra: str) -> dict[str, str]:
    """The environment of a child run; its system temp folder is a fresh one per test
    (`system_temp()`), so what a run leaves there can be seen."""
    env = {k: v for k, v in os.environ.items() if k != "EDI_CRASH_AT"}
    env["TMPDIR"] = str(system_temp())
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_edi(home: Path, *args: str, crash_at: str | None = None, timeout: float = 240) -> Done:
    env = edi_env(**({"EDI_CRASH_AT": crash_at} if crash_at else {}))
    done = subprocess.run(
        edi_command(home, *args),
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return Done(done.returncode, done.stdout, done.stderr)


def start_edi(home: Path, *args: str, **extra_env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        edi_command(home, *args),
        env=edi_env(**extra_env),
        cwd=home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def log_entries(home: Path) -> list[dict[str, object]]:
    done = run_edi(home, "log", "list", "--json")
    assert done.code == 0, done.err
    return list(json.loads(done.out))


def delivered_entries(home: Path, carrier: str = "colonial") -> list[dict[str, object]]:
    return [
        e
        for e in log_entries(home)
        if e.get("event") == "delivery"
        and e.get("outcome") == "delivered"
        and e.get("carrier") == carrier
    ]


def final_files(sshd: Sshd) -> list[Path]:
    return sorted(p for p in sshd.inbox.iterdir() if not p.name.startswith("."))


def temp_files(sshd: Sshd) -> list[Path]:
    return sorted(p for p in sshd.inbox.iterdir() if p.name.startswith("."))


def isa13_of(plaintext: bytes) -> str:
    element = chr(plaintext[3])
    return plaintext[:106].decode("ascii").split(element)[13]


def number_in_name(name: str) -> str:
    match = re.search(r"_(\d{9})\.834", name)
    assert match, name
    return match.group(1)


def assert_files_match_names_and_log(home: Path, sshd: Sshd, key: CarrierKey) -> None:
    """Every delivered file's content ISA13 equals the number in its name and the ISA13 of
    the log entry that delivered it, and that entry's ciphertext hash is the file's."""
    import transmit

    by_name = {Path(str(e["remote_final_path"])).name: e for e in delivered_entries(home)}
    for remote in final_files(sshd):
        isa13 = isa13_of(key.decrypt(remote))
        assert isa13 == number_in_name(remote.name)
        entry = by_name[remote.name]
        assert entry["isa13"] == isa13
        assert entry["ciphertext_sha256"] == transmit.sha256_file(remote)


def system_temp() -> Path:
    """The child runs' system temp folder: one per test (pytest's own tmp dir for it)."""
    folder = Path(os.environ["PYTEST_CURRENT_TEST_TMP"]) / "system-temp"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def system_temp_leftovers() -> list[str]:
    """Whatever the child runs left in their system temp folder (gpg's sockets aside)."""
    return sorted(p.name for p in system_temp().iterdir())


def assert_no_traceback(done: Done) -> None:
    assert "Traceback" not in done.err and "Traceback" not in done.out, done.err[-2000:]
