"""`edi status` from the delivery log: per carrier, what was last delivered, how the last run
went, how many runs in a row failed, which acks are open, when the next run is, and what needs
a person. Pure: takes log entries, the carrier's schedule and the clock."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from edi.output import local_time
from edi.overview import FAILURE_EVENTS as FAILED_RUNS
from edi.overview import RUN_EVENTS as RUN_ENDS
from edi.schedules import Schedule


def _outcome(entry: Any) -> str:
    event = str(entry.get("event"))
    return event if event in FAILED_RUNS else str(entry.get("outcome") or event)


def _at(entry: Any) -> datetime:
    return datetime.fromisoformat(str(entry.get("recorded_at")))


def carrier_status(
    carrier: str, entries: Sequence[Any], schedule: Schedule | None, now: datetime
) -> dict[str, Any]:
    runs = [e for e in entries if e.get("event") in RUN_ENDS]
    sent = [e for e in runs if e.get("event") == "delivery" and e.get("outcome") == "delivered"]
    last_sent = sent[-1] if sent else None
    last_run = runs[-1] if runs else None

    failures = 0
    for entry in reversed(runs):
        if entry.get("event") not in FAILED_RUNS:
            break
        failures += 1

    acks: dict[int, Any] = {}
    overdue_logged: set[int] = set()
    for entry in entries:
        if entry.get("event") == "ack":
            acks[int(entry.get("delivery_entry") or 0)] = entry
        elif entry.get("event") == "ack-overdue":
            overdue_logged.add(int(entry.get("delivery_entry") or 0))
    window = schedule.ack_window if schedule else None
    open_acks = [e for e in sent if e.seq not in acks]

    def ack_state(delivery: Any) -> str:
        if delivery.seq in acks:
            return str(acks[delivery.seq].get("ack_status"))
        late = window is not None and now - _at(delivery) > window
        return "overdue" if late or delivery.seq in overdue_logged else "awaiting"

    # Stable codes for monitors (JSON `problems`) and a sentence each for people.
    problems: dict[str, str] = {}
    if last_run is not None and last_run.get("event") in FAILED_RUNS:
        problems["last-run-failed"] = f"last run failed ({_outcome(last_run)}, {failures} in a row)"
    ack = ack_state(last_sent) if last_sent is not None else None
    if last_sent is not None and ack in ("rejected", "overdue"):
        problems[f"ack-{ack}"] = f"ack {ack} (ISA13 {last_sent.get('isa13')})"
    missed = _missed(entries, runs, schedule, now)
    if missed:
        problems["run-missed"] = f"run missed (due {local_time(missed, now)})"

    next_run = schedule.next_run(now) if schedule and schedule.enabled else None
    return {
        "carrier": carrier,
        "last_delivered_at": last_sent.get("recorded_at") if last_sent else None,
        "last_delivered_isa13": last_sent.get("isa13") if last_sent else None,
        "last_run_at": last_run.get("recorded_at") if last_run else None,
        "last_run_outcome": _outcome(last_run) if last_run else None,
        "consecutive_failures": failures,
        "open_acks": len(open_acks),
        "ack": ack,
        "next_run": next_run.isoformat() if next_run else None,
        "problems": list(problems),
        "problem_details": list(problems.values()),
        # The names the first `edi status --json` used.
        "last_delivery": last_sent.get("recorded_at") if last_sent else None,
        "isa13": last_sent.get("isa13") if last_sent else None,
    }


def _missed(
    entries: Sequence[Any], runs: Sequence[Any], schedule: Schedule | None, now: datetime
) -> str | None:
    """A due time (deadline passed) with no finished run since; logged by the watchdog, or seen
    here for a carrier that was already running before that due time."""
    last_ok = next((e for e in reversed(runs) if e.get("event") not in FAILED_RUNS), None)
    for entry in reversed(entries):
        if last_ok is not None and entry.seq < last_ok.seq:
            break
        if entry.get("event") == "run-missed":
            return str(entry.get("due"))
    if schedule is None or not schedule.enabled or not entries:
        return None
    due = schedule.last_due(now)
    if due is None or _at(entries[0]) > due:
        return None
    if any(e.get("event") not in FAILED_RUNS and _at(e) >= due for e in runs):
        return None
    return due.isoformat()
