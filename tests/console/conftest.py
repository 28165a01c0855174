"""One demo-like workspace for the console tests: `edi demo` (real sshd, real gpg, three
carriers delivered, one re-run), the repository's schedules, then a delivery that fails (the
demo's sshd is gone), a 999 accepting Colonial's file and a reconciliation database."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from edi.acks import record_acks
from edi.console.app import create_app
from edi.demo import run_demo
from edi.errors import DeliveryFailed
from edi.pipeline import run
from edi.workspace import Workspace
from tests.support.postgres import fresh_database
from tests.support.servers import name_the_store
from tests.support.workspace import REPO, SAMPLES, check_no_sqlite_state, open_in_store

with warnings.catch_warnings():
    # starlette 1.x suggests httpx2 for its TestClient; httpx is what the project has.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

AS_OF = date(2026, 11, 24)
DISCREPANCY_SCHEMA = """
CREATE TABLE discrepancies (
    id TEXT PRIMARY KEY, carrier TEXT, kind TEXT, subscriber_id TEXT, member_id TEXT,
    dependent_id TEXT, coverage_id TEXT, field TEXT, severity TEXT, status TEXT,
    first_seen TEXT, last_seen TEXT, notes TEXT
)
"""


@dataclass(frozen=True)
class ConsoleHome:
    home: Path
    workspace: Workspace
    delivered: dict[str, int]  # carrier → log seq of its delivery
    failed_seq: int
    failed_carrier: str
    ended_coverage: dict[str, Any]  # the PlanSource coverage record ended after the demo
    demo_output: str


def records(name: str) -> list[dict[str, Any]]:
    """A sample export file's records, whichever of the three shapes it uses."""
    raw = json.loads((SAMPLES / f"{name}.json").read_text())
    found: list[dict[str, Any]] = []
    for item in raw if isinstance(raw, list) else [raw]:
        if isinstance(item, dict) and "data" in item and "status" in item:
            found.extend(item["data"])
        else:
            found.append(item)
    return found


def end_one_coverage(export: Path, prefix: str, day: str) -> dict[str, Any]:
    """Ends the first open coverage whose lookup code starts with prefix; keeps the file's shape."""
    path = export / "coverages.json"
    raw = json.loads(path.read_text())
    items = raw if isinstance(raw, list) else [raw]
    pages = [item["data"] for item in items if isinstance(item, dict) and "data" in item]
    for record in [r for page in pages for r in page] or items:
        if str(record["benefit_lookup_code"]).startswith(prefix) and not record["termination_date"]:
            record.update(termination_date=day, termination_reason="Plan Change")
            path.write_text(json.dumps(raw))
            return dict(record)
    raise AssertionError(f"no open {prefix} coverage in the sample data")


def phi_patterns() -> list[re.Pattern[str]]:
    """The sample people's SSNs (as written and as digits) and surnames (as written and as the
    834 upper-cases them). "Employee" is the sample's placeholder test employee and a word in
    plan codes, so it is left out."""
    people = records("subscribers") + records("dependents")
    patterns: set[str] = set()
    for person in people:
        ssn = str(person.get("ssn") or "")
        digits = re.sub(r"\D", "", ssn)
        if len(digits) == 9:
            patterns.add(re.escape(ssn))
            patterns.add(rf"(?<!\d){digits}(?!\d)")
        surname = str(person.get("last_name") or "")
        for part in re.split(r"[^\w']+", surname):
            if len(part) >= 3 and part != "Employee":
                patterns.add(rf"\b{re.escape(part)}\b")
                patterns.add(rf"\b{re.escape(part.upper())}\b")
    assert len(patterns) > 100
    return [re.compile(p) for p in sorted(patterns)]


def assert_no_phi(text: str, where: str) -> None:
    for pattern in PHI:
        match = pattern.search(text)
        assert match is None, f"{where} shows PHI matching {pattern.pattern!r}"


PHI = phi_patterns()


def ack_999(gs06: str, st02: str, verdict: str = "A") -> str:
    isa = (
        "ISA*00*"
        + " " * 10
        + "*00*"
        + " " * 10
        + "*ZZ*"
        + "COLONIAL".ljust(15)
        + "*ZZ*"
        + "ACMEWIDGETS".ljust(15)
        + "*261124*0300*^*00501*000000905*0*T*:~"
    )
    assert len(isa) == 106
    body = [
        "GS*FA*COLONIAL*ACMEWIDGETS*20261124*0300*905*X*005010X231A1",
        "ST*999*0001*005010X231A1",
        f"AK1*BE*{gs06}*005010X220A1",
        f"AK2*834*{st02}*005010X220A1",
        f"IK5*{verdict}",
        f"AK9*{verdict}*1*1*1",
        "SE*6*0001",
        "GE*1*905",
        "IEA*1*000000905",
    ]
    return isa + "~".join(body) + "~"


def discrepancy_rows(unum_member_ssn: str) -> list[tuple[str | None, ...]]:
    return [
        (
            "d-001",
            "colonial",
            "missing-at-carrier",
            "1003",
            "AW1003",
            None,
            "5003",
            None,
            "error",
            "open",
            "2026-11-24T09:00:00+00:00",
            "2026-11-25T09:00:00+00:00",
            "[]",
        ),
        (
            "d-002",
            "colonial",
            "plan-mismatch",
            "1004",
            "AW1004",
            None,
            "5004",
            "plan",
            "error",
            "open",
            "2026-11-24T09:00:00+00:00",
            "2026-11-25T09:00:00+00:00",
            json.dumps(["carrier shows ACC-LOW"]),
        ),
        (
            "d-003",
            "colonial",
            "tier-mismatch",
            "1005",
            "AW1005",
            "2005",
            "5005",
            "tier",
            "warning",
            "resolved",
            "2026-11-20T09:00:00+00:00",
            "2026-11-22T09:00:00+00:00",
            json.dumps(["resolved: carrier corrected the tier (ticket OPS-17)"]),
        ),
        (
            "d-004",
            "unum",
            "demographic-mismatch",
            "1006",
            unum_member_ssn,
            None,
            None,
            "last_name",
            "warning",
            "open",
            "2026-11-24T09:00:00+00:00",
            "2026-11-24T09:00:00+00:00",
            json.dumps(["the carrier's spelling differs"]),
        ),
    ]


def write_discrepancies(path: Path, unum_member_ssn: str) -> None:
    rows = discrepancy_rows(unum_member_ssn)
    path.parent.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(path)) as db:
        db.execute(DISCREPANCY_SCHEMA)
        db.executemany("INSERT INTO discrepancies VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        db.commit()


def store_discrepancies(owner_url: str, workspace: str, unum_member_ssn: str) -> None:
    """The same rows in the shared store, with the reconciliation run that found them."""
    import psycopg

    with psycopg.connect(owner_url) as conn:
        conn.execute(
            "INSERT INTO edi_reconciliations VALUES (%s, 'r-001', 'colonial', '2026-11-24', "
            "%s, '2026-11-25T09:00:00+00:00', '{}')",
            (workspace, "0" * 64),
        )
        for row in discrepancy_rows(unum_member_ssn):
            conn.execute(
                "INSERT INTO edi_discrepancies (workspace, id, carrier, kind, subscriber_id, "
                "member_id, dependent_id, coverage_id, field, severity, status, first_seen, "
                "last_seen, notes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, "
                "%s, %s::jsonb)",
                (workspace, *row),
            )


@pytest.fixture(scope="package")
def console_home(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[ConsoleHome]:
    """On the store pass (`pytest --store postgres`), the workspace's state is in a database of
    its own, reached as the workers' role, for the whole package."""
    home = tmp_path_factory.mktemp("console") / "demo"
    if request.config.getoption("--store") != "postgres":
        yield from build_console_home(home, None)
        return
    server = request.getfixturevalue("postgres_server")
    with fresh_database(server) as owner_url, pytest.MonkeyPatch.context() as patch:
        open_in_store(home, owner_url, server, patch)
        yield from build_console_home(home, owner_url)
        check_no_sqlite_state(home)


def build_console_home(home: Path, store_owner_url: str | None) -> Iterator[ConsoleHome]:
    now = datetime.now(UTC)
    printed = io.StringIO()
    quiet = Console(file=printed, width=400)
    outcomes = run_demo(Workspace.open(REPO), home, as_of=AS_OF, now=now, out=quiet, err=quiet)
    shutil.copytree(REPO / "schedules", home / "schedules")
    # PlanSource since the demo: one Colonial coverage ended, so the next file has a change.
    export = home / "export"
    shutil.copytree(SAMPLES, export)
    ended = end_one_coverage(export, "colonial_", "2026/11/30")
    (home / "edi.toml").write_text(f'source = "{export}"\nsample_data = true\n')
    if store_owner_url is not None:
        name_the_store(home)  # for `edi serve` in a subprocess (live_console)
    workspace = Workspace.open(home)
    # The demo's sshd has stopped: Unum's next file (an audit file) cannot be delivered.
    with pytest.raises(DeliveryFailed):
        run(workspace, "unum", now=datetime.now(UTC), as_of=AS_OF, file_type="audit")
    from edi.delivery_config import delivery_log

    failed = delivery_log(workspace).entries(carrier="unum", event="delivery-failed")[-1]
    colonial = next(o for o in outcomes if o.carrier == "colonial")
    ack = home / "acks-in" / "colonial-1.999"
    ack.parent.mkdir()
    ack.write_text(ack_999(colonial.facts.gs06, colonial.facts.st02))
    report = record_acks(workspace, "colonial", [ack], datetime.now(UTC))
    assert report.matched and not report.unmatched
    unum_member_ssn = re.sub(r"\D", "", str(records("subscribers")[5]["ssn"]))
    if store_owner_url is None:
        write_discrepancies(workspace.state_dir / "discrepancies.sqlite", unum_member_ssn)
    else:
        store_discrepancies(store_owner_url, str(workspace.settings.name), unum_member_ssn)
    yield ConsoleHome(
        home,
        workspace,
        {o.carrier: o.log_seq for o in outcomes},
        failed.seq,
        "unum",
        ended,
        printed.getvalue(),
    )
    for gnupg in [home / "state" / "gnupg", *home.glob("carrier-side/*/gnupg")]:
        subprocess.run(["gpgconf", "--homedir", str(gnupg), "--kill", "gpg-agent"], check=False)


@pytest.fixture
def client(console_home: ConsoleHome) -> Iterator[TestClient]:
    with TestClient(create_app(console_home.workspace)) as test_client:
        yield test_client


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class LiveConsole:
    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="package")
def live_console(console_home: ConsoleHome) -> Iterator[LiveConsole]:
    """`edi serve` itself, in a subprocess on a free loopback port."""
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edi",
            "serve",
            "--port",
            str(port),
            "--home",
            str(console_home.home),
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"edi serve exited: {process.stderr.read().decode() if process.stderr else ''}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.1)
    else:
        process.kill()
        raise AssertionError("edi serve did not start listening")
    try:
        yield LiveConsole(f"http://127.0.0.1:{port}", process)
    finally:
        process.terminate()
        process.wait(timeout=10)
