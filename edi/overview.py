"""Per-carrier state computed from delivery-log entries: what the console's overview shows (`edi
status` is edi.status, on the same run events). Pure: entries, schedules and `now` in, plain
dicts out (ids, codes, counts and times only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from edi.schedules import Schedule
from transmit import LogEntry

# The entry that ends a run, whatever its outcome.
RUN_EVENTS = (
    "delivery",
    "delivery-failed",
    "nothing-to-send",
    "validation-failed",
    "mass-termination-guard",
)
FAILURE_EVENTS = ("delivery-failed", "validation-failed", "mass-termination-guard")
SUCCESS_OUTCOMES = ("delivered", "already-delivered")


def last(entries: Sequence[LogEntry], *events: str) -> LogEntry | None:
    return next((e for e in reversed(entries) if e.get("event") in events), None)


def last_success(entries: Sequence[LogEntry]) -> LogEntry | None:
    """The newest delivery that sent a file (a re-run that found it delivered sends nothing)."""
    for outcomes in (("delivered",), SUCCESS_OUTCOMES):
        found = next(
            (
                e
                for e in reversed(entries)
                if e.get("event") == "delivery" and e.get("outcome") in outcomes
            ),
            None,
        )
        if found is not None:
            return found
    return None


def next_run(schedule: Schedule | None, now: datetime) -> datetime | None:
    return schedule.next_run(now) if schedule is not None and schedule.enabled else None


def problems(entries: Sequence[LogEntry]) -> list[str]:
    """Missed runs and overdue acks since the last delivery, and a rejection of it."""
    delivery = last(entries, "delivery")
    found = [
        str(e.get("event"))
        for e in entries
        if e.get("event") in ("run-missed", "ack-overdue")
        and (delivery is None or e.seq > delivery.seq)
    ]
    ack = last(entries, "ack")
    if (
        ack is not None
        and ack.get("ack_status") == "rejected"
        and (delivery is None or ack.seq > delivery.seq)
    ):
        found.append("ack-rejected")
    return sorted(set(found))


def consecutive_failures(entries: Sequence[LogEntry]) -> int:
    """Failed runs since the last run that did not fail."""
    count = 0
    for entry in reversed(entries):
        event = entry.get("event")
        if event in FAILURE_EVENTS:
            count += 1
        elif event in RUN_EVENTS:
            break
    return count


def ack_target(delivery: LogEntry) -> int:
    """The entry acks answer: a re-run that found the file delivered points at the first one."""
    if delivery.get("outcome") == "already-delivered":
        return int((delivery.get("details") or {}).get("previous_entry") or delivery.seq)
    return delivery.seq


def ack_verdict(
    answers: Sequence[LogEntry],
    sent_at: datetime,
    window: timedelta | None = None,
    now: datetime | None = None,
) -> str:
    """From the entries that answer one delivery (`delivery_entry`): overdue once the watchdog
    logged it, or once the schedule's ack window has passed without an ack."""
    ack = last(answers, "ack")
    if ack is not None:
        return str(ack.get("ack_status"))
    if last(answers, "ack-overdue") is not None:
        return "overdue"
    if window is not None and now is not None and now - sent_at > window:
        return "overdue"
    return "awaiting"


def ack_state(
    entries: Sequence[LogEntry],
    delivery: LogEntry | None,
    window: timedelta | None = None,
    now: datetime | None = None,
) -> str | None:
    """accepted | accepted-with-errors | rejected | overdue | awaiting, for one delivery."""
    if delivery is None:
        return None
    target = ack_target(delivery)
    answers = [e for e in entries if e.get("delivery_entry") == target]
    sent = next((e for e in entries if e.seq == target), delivery)
    return ack_verdict(answers, datetime.fromisoformat(str(sent.get("recorded_at"))), window, now)


def _brief(entry: LogEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    return {
        "seq": entry.seq,
        "recorded_at": entry.get("recorded_at"),
        "event": entry.get("event"),
        "outcome": entry.get("outcome"),
        "isa13": entry.get("isa13"),
        "file_type": entry.get("file_type"),
        "error_code": entry.get("error_code"),
        "error_message": entry.get("error_message"),
    }


def carrier_overview(
    carrier: str, entries: Sequence[LogEntry], schedule: Schedule | None, now: datetime
) -> dict[str, Any]:
    """The console's row: last success, last attempt and its outcome, failures in a row, ack."""
    success = last_success(entries)
    attempt = last(entries, *RUN_EVENTS)
    fire = next_run(schedule, now)
    return {
        "carrier": carrier,
        "last_success": _brief(success),
        "last_attempt": _brief(attempt),
        "failing": attempt is not None and attempt.get("event") in FAILURE_EVENTS,
        "consecutive_failures": consecutive_failures(entries),
        "ack": ack_state(entries, success, schedule.ack_window if schedule else None, now),
        "next_run": fire.isoformat() if fire else None,
        "schedule": schedule.id if schedule is not None else None,
        "timezone": schedule.timezone if schedule is not None else None,
        "problems": problems(entries),
    }
