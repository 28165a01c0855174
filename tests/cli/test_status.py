"""`edi status`: last delivered file, last run and outcome, failures in a row, open acks, next
run; exit 1 while the last run failed, an ack is rejected or overdue, or a run was missed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from edi.schedules import Schedule
from edi.status import carrier_status
from tests.support.servers import Sshd
from tests.support.workspace import edi

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


@dataclass
class Entry:
    seq: int
    body: dict[str, Any] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


def log(*bodies: dict[str, Any]) -> list[Entry]:
    return [Entry(i + 1, {"carrier": "colonial", **b}) for i, b in enumerate(bodies)]


def at(hours_ago: float) -> str:
    return (NOW - timedelta(hours=hours_ago)).isoformat()


DELIVERED = {"event": "delivery", "outcome": "delivered", "isa13": "000000007"}
FAILED = {"event": "delivery-failed", "outcome": "failed", "error_code": "sftp-connect"}


def test_failures_after_a_delivery_are_counted_and_fail_status() -> None:
    entries = log(
        {**DELIVERED, "recorded_at": at(50)},
        {"event": "ack", "ack_status": "accepted", "delivery_entry": 1, "recorded_at": at(49)},
        {**FAILED, "recorded_at": at(3)},
        {"event": "attempt", "outcome": "failed", "recorded_at": at(2)},
        {**FAILED, "recorded_at": at(2)},
    )
    status = carrier_status("colonial", entries, None, NOW)
    assert status["problems"] == ["last-run-failed"]
    assert status["consecutive_failures"] == 2
    assert status["last_run_outcome"] == "delivery-failed"
    assert status["last_delivered_at"] == at(50) and status["ack"] == "accepted"


def test_an_already_delivered_rerun_is_not_the_last_delivery() -> None:
    entries = log(
        {**DELIVERED, "recorded_at": at(10)},
        {"event": "delivery", "outcome": "already-delivered", "recorded_at": at(1)},
    )
    status = carrier_status("colonial", entries, None, NOW)
    assert status["last_delivered_at"] == at(10)
    assert status["last_run_outcome"] == "already-delivered"
    assert status["problems"] == [] and status["open_acks"] == 1 and status["ack"] == "awaiting"


def test_rejected_and_overdue_acks() -> None:
    rejected = log(
        {**DELIVERED, "recorded_at": at(10)},
        {"event": "ack", "ack_status": "rejected", "delivery_entry": 1, "recorded_at": at(9)},
    )
    assert carrier_status("colonial", rejected, None, NOW)["problems"] == ["ack-rejected"]
    yearly = "0 2 1 1 *"  # not due in the last weeks: only the ack is judged
    schedule = Schedule(carrier="colonial", cron=yearly, expected_ack_within="48h")
    late = log({**DELIVERED, "recorded_at": at(49)})
    assert carrier_status("colonial", late, schedule, NOW)["problems"] == ["ack-overdue"]
    in_time = log({**DELIVERED, "recorded_at": at(47)})
    assert carrier_status("colonial", in_time, schedule, NOW)["problems"] == []


def test_a_missed_run_is_seen_without_the_watchdog() -> None:
    daily = Schedule(carrier="colonial", cron="0 2 * * *", run_deadline="2h")
    # Delivered two days ago, nothing since: today's 02:00 run (deadline 04:00) is missed.
    entries = log({**DELIVERED, "recorded_at": at(58)})
    ack = {"event": "ack", "ack_status": "accepted", "delivery_entry": 1, "recorded_at": at(57)}
    entries.append(Entry(2, {"carrier": "colonial", **ack}))
    status = carrier_status("colonial", entries, daily, NOW)
    assert status["problems"] == ["run-missed"]
    assert status["next_run"] == "2026-12-04T02:00:00+00:00"
    # A carrier that never ran is not "missed" (a new workspace is not alarming).
    assert carrier_status("colonial", [], daily, NOW)["problems"] == []
    ran_today = [*entries, Entry(3, {**DELIVERED, "recorded_at": at(9.5)})]
    assert carrier_status("colonial", ran_today, daily, NOW)["problems"] == []


def test_logged_missed_run_until_the_next_good_run() -> None:
    missed = {"event": "run-missed", "outcome": "missed", "due": at(30), "recorded_at": at(28)}
    entries = log({**DELIVERED, "recorded_at": at(50)}, missed)
    assert "run-missed" in carrier_status("colonial", entries, None, NOW)["problems"]
    entries.append(Entry(3, {**DELIVERED, "recorded_at": at(1)}))
    assert "run-missed" not in carrier_status("colonial", entries, None, NOW)["problems"]


def test_status_after_real_failed_delivery(
    live_home: Path, sshd: Sshd, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edi(capsys, "run", "-c", "colonial", "--as-of", "2026-11-24")[0] == 0
    code, out, _ = edi(capsys, "status", "--json")
    colonial = next(r for r in json.loads(out) if r["carrier"] == "colonial")
    assert code == 0 and colonial["problems"] == [] and colonial["open_acks"] == 1
    first_delivery = colonial["last_delivered_at"]

    sshd.server.stop()  # the carrier's server is down: every attempt fails
    assert edi(capsys, "run", "-c", "colonial", "--as-of", "2026-11-24", "--type", "audit")[0] == 1
    assert edi(capsys, "run", "-c", "colonial", "--as-of", "2026-11-24", "--type", "audit")[0] == 1
    code, out, _ = edi(capsys, "status", "--json")
    colonial = next(r for r in json.loads(out) if r["carrier"] == "colonial")
    assert code == 1
    assert colonial["problems"] == ["last-run-failed"]
    assert colonial["consecutive_failures"] == 2
    assert colonial["last_delivered_at"] == first_delivery
    code, out, _ = edi(capsys, "status")
    assert code == 1
    line = next(line for line in out.splitlines() if line.startswith("colonial\t"))
    assert "last run failed (delivery-failed, 2 in a row)" in line


def test_a_profile_that_does_not_load_is_a_problem(
    edi_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edi(capsys, "status")[0] == 0
    profile = edi_home / "carriers" / "unum.toml"
    profile.write_text(profile.read_text().replace("\nclaims =", "\nclaim ="))
    code, out, _ = edi(capsys, "status", "--json")
    unum = next(r for r in json.loads(out) if r["carrier"] == "unum")
    assert code == 1 and unum["problems"] == ["profile-invalid"]
    assert unum["problem_details"] == ["profile does not load [profile-invalid]"]


def test_a_missed_run_reads_in_the_users_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        daily = Schedule(carrier="colonial", cron="0 2 * * *", run_deadline="2h")
        entries = log({**DELIVERED, "recorded_at": at(58)})
        status = carrier_status("colonial", entries, daily, NOW)
        assert status["problem_details"] == ["run missed (due Wed 2 Dec 21:00 EST)"]
    finally:
        monkeypatch.undo()
        time.tzset()
