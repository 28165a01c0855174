"""edi/overview.py: the per-carrier state `edi status` prints and the console shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from edi.overview import ack_state, carrier_overview, consecutive_failures
from transmit import LogEntry

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def entries(*events: tuple[str, dict[str, Any]]) -> list[LogEntry]:
    made = []
    for seq, (event, facts) in enumerate(events, start=1):
        body = {"seq": seq, "recorded_at": f"2026-11-{seq:02d}T10:00:00+00:00", "event": event}
        made.append(
            LogEntry(seq, {**body, "carrier": "colonial", **facts}, "0" * 64, f"{seq:064x}")
        )
    return made


DELIVERED = ("delivery", {"outcome": "delivered", "isa13": "000000007"})
FAILED = ("delivery-failed", {"outcome": "failed", "error_code": "connection-failed"})
INVALID = ("validation-failed", {"outcome": "failed", "error_code": "file-invalid"})


def test_failures_in_a_row_stop_at_the_last_run_that_did_not_fail() -> None:
    log = entries(FAILED, DELIVERED, ("attempt", {"outcome": "failed"}), FAILED, INVALID)
    assert consecutive_failures(log) == 2
    assert consecutive_failures(entries(FAILED, ("nothing-to-send", {}), FAILED)) == 1
    assert consecutive_failures(entries(DELIVERED, ("ack", {"ack_status": "accepted"}))) == 0
    row = carrier_overview("colonial", log, None, NOW)
    assert row["failing"] and row["last_success"]["seq"] == 2
    assert row["last_attempt"]["error_code"] == "file-invalid" and row["next_run"] is None


def test_ack_state_of_a_delivery() -> None:
    log = entries(DELIVERED, DELIVERED)
    assert ack_state(log, log[0]) == "awaiting"
    answered = entries(DELIVERED, ("ack", {"ack_status": "rejected", "delivery_entry": 1}))
    assert ack_state(answered, answered[0]) == "rejected"
    late = entries(DELIVERED, ("ack-overdue", {"delivery_entry": 1}))
    assert ack_state(late, late[0]) == "overdue"
    again = entries(
        DELIVERED,
        ("ack", {"ack_status": "accepted", "delivery_entry": 1}),
        ("delivery", {"outcome": "already-delivered", "details": {"previous_entry": 1}}),
    )
    assert ack_state(again, again[2]) == "accepted"
    # Past the schedule's window with no ack and before the watchdog says so: overdue too.
    window = timedelta(hours=48)
    assert ack_state(log, log[0], window, datetime(2026, 11, 3, 11, tzinfo=UTC)) == "overdue"
    assert ack_state(log, log[0], window, datetime(2026, 11, 3, 9, tzinfo=UTC)) == "awaiting"
    assert ack_state(answered, answered[0], window, NOW) == "rejected"
    assert carrier_overview("colonial", again, None, NOW)["last_success"]["seq"] == 1
