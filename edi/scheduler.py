"""The scheduler: APScheduler 3.11, one cron job per enabled schedule, plus a periodic
watchdog and ack check. Each run is the same code path as `edi run`, so delivery stays
idempotent even if two runs ever overlap; a workspace lock refuses a second scheduler."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from filelock import FileLock, Timeout

from edi.errors import ConfigError, EdiError
from edi.schedules import Schedule, load_schedules
from edi.workspace import Workspace

log = logging.getLogger("edi.scheduler")
MISFIRE_GRACE_S = 6 * 3600  # a job late by hours (machine asleep) still runs, once
CHECK_EVERY_MIN = 15

RunJob = Callable[[Workspace, Schedule], object]


def default_run_job(workspace: Workspace, schedule: Schedule) -> object:
    from edi.pipeline import run

    return run(
        workspace,
        schedule.carrier,
        now=datetime.now(UTC),
        file_type=schedule.file_type,
        schedule_id=schedule.id,
    )


def checks(workspace: Workspace, schedules: list[Schedule], now: Callable[[], datetime]) -> None:
    from edi.acks import overdue_acks
    from edi.watchdog import missed_runs

    moment = now()
    missed_runs(workspace, schedules, moment)
    for schedule in schedules:
        if schedule.enabled and schedule.ack_window is not None:
            overdue_acks(workspace, schedule.carrier, schedule.ack_window, moment)
    for schedule in schedules:
        if schedule.enabled and schedule.reconcile:
            reconcile_rosters(workspace, schedule, moment)


def reconcile_rosters(workspace: Workspace, schedule: Schedule, moment: datetime) -> None:
    """New rosters are fetched and reconciled (each logged, new discrepancies alerted); a fetch
    that fails is logged and alerted too, and never stops the other checks."""
    from edi.pipeline import record_failure
    from edi.reconcile import fetch_rosters

    try:
        fetch_rosters(workspace, schedule.carrier, now=moment, schedule_id=schedule.id)
    except EdiError as error:
        log.warning("schedule %s: roster fetch failed: %s", schedule.id, error.code)
        record_failure(
            workspace,
            schedule.carrier,
            error,
            kind="roster-fetch-failed",
            now=moment,
            schedule_id=schedule.id,
        )


def run_scheduled(run_job: RunJob, workspace: Workspace, schedule: Schedule) -> None:
    """A failing run is already logged and alerted by the pipeline; it must not stop the others."""
    try:
        run_job(workspace, schedule)
    except EdiError as error:
        log.warning("schedule %s: %s", schedule.id, error.code)
    except Exception:
        log.exception("schedule %s failed unexpectedly", schedule.id)


def workspace_lock(workspace: Workspace) -> FileLock:
    lock = FileLock(str(workspace.ensure_state() / "scheduler.lock"))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise ConfigError(
            "scheduler-running",
            f"another scheduler holds {lock.lock_file}",
            hint="One scheduler per workspace; stop the other one first.",
        ) from None
    return lock


def build_scheduler(
    workspace: Workspace,
    *,
    run_job: RunJob = default_run_job,
    scheduler_cls: Any = None,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Any:
    from apscheduler.schedulers.blocking import BlockingScheduler

    scheduler = (scheduler_cls or BlockingScheduler)(
        job_defaults={"misfire_grace_time": MISFIRE_GRACE_S, "coalesce": True, "max_instances": 1},
        timezone=UTC,
    )
    schedules = load_schedules(workspace)
    for schedule in schedules:
        if schedule.enabled:
            scheduler.add_job(
                run_scheduled,
                schedule.trigger(),
                args=(run_job, workspace, schedule),
                id=schedule.id,
                name=f"{schedule.carrier} ({schedule.cron} {schedule.timezone})",
            )
    scheduler.add_job(
        checks,
        "interval",
        minutes=CHECK_EVERY_MIN,
        args=(workspace, schedules, now),
        id="watchdog",
        next_run_time=now(),
    )
    return scheduler


def serve(workspace: Workspace) -> None:
    """Runs until SIGTERM/SIGINT; the current upload finishes before it stops."""
    lock = workspace_lock(workspace)
    scheduler = build_scheduler(workspace)

    def stop(signum: int, frame: object) -> None:
        log.info("signal %s: finishing the current run, then stopping", signum)
        scheduler.shutdown(wait=True)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        scheduler.start()
    finally:
        lock.release()
