"""The missed-run watchdog: works from the delivery log, so it also catches runs that never
started (scheduler down, machine off). Each missed due time is alerted and logged once."""

from __future__ import annotations

from datetime import datetime

import transmit
from edi.schedules import Schedule
from edi.workspace import Workspace

DONE = {"delivered", "already-delivered", "nothing-to-send"}


def missed_runs(
    workspace: Workspace, schedules: list[Schedule], now: datetime
) -> list[dict[str, str]]:
    from edi.delivery_config import delivery_log, send_alert

    log = delivery_log(workspace)
    missed = []
    for schedule in schedules:
        due = schedule.last_due(now) if schedule.enabled else None
        if due is None:
            continue
        entries = log.entries(carrier=schedule.carrier, since=due)
        if any(e.get("outcome") in DONE for e in entries):
            continue
        key = due.isoformat()
        if any(
            e.get("event") == "run-missed" and e.get("due") == key
            for e in log.entries(carrier=schedule.carrier)
        ):
            missed.append(
                {
                    "schedule": schedule.id,
                    "carrier": schedule.carrier,
                    "due": key,
                    "alerted": "before",
                }
            )
            continue
        sent = send_alert(
            workspace,
            transmit.AlertEvent(
                kind="run-missed",
                carrier=schedule.carrier,
                message=f"schedule {schedule.id} was due {key}; "
                f"no delivery logged within {schedule.run_deadline}",
                extra={
                    "schedule": schedule.id,
                    "cron": schedule.cron,
                    "timezone": schedule.timezone,
                },
            ),
        )
        log.append(
            "run-missed",
            now=now,
            carrier=schedule.carrier,
            outcome="missed",
            due=key,
            schedule_id=schedule.id,
            alerts_sent=sent,
        )
        missed.append(
            {"schedule": schedule.id, "carrier": schedule.carrier, "due": key, "alerted": "now"}
        )
    log.checkpoint(now=now)
    return missed
