"""`edi scheduler run` on a shared store: schedules deferred as procrastinate periodic jobs.

Any number of schedulers, on any machines, may run for the same workspace. Each one works out,
from the same schedules and the same cron triggers as the SQLite scheduler (APScheduler's, in
the schedule's time zone), which run is due; the store lets exactly one of them defer it. The
run itself is an `edi.run_feed` job that `edi worker` executes; the missed-run watchdog, the
overdue-ack check and roster reconciliation are one `edi.checks` job per workspace every
CHECK_EVERY_MIN minutes.

Exactly once per period rests on procrastinate's periodic deferral: a row per (task,
periodic id, due timestamp) under a unique constraint, written in the same transaction as the
job (`procrastinate_defer_periodic_job_v2`, called through procrastinate's own query). That
function deletes the rows of earlier due times, so a scheduler lagging a whole period behind
could defer an earlier period again; a transaction-scoped advisory lock per periodic id and a
check that no later due time was deferred close that gap. A run already queued for the same
feed (the queueing lock) covers a due time: nothing more is deferred for it.

Like the SQLite scheduler, a due time is deferred up to MISFIRE_GRACE_S late (a scheduler
started, or woken, after it) and late due times coalesce into the latest one.
"""

from __future__ import annotations

import hashlib
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from edi import jobs, store
from edi.errors import ConfigError, EdiError
from edi.scheduler import CHECK_EVERY_MIN, MISFIRE_GRACE_S
from edi.schedules import Schedule, load_schedules
from edi.workspace import Workspace

log = logging.getLogger("edi.scheduler")
MAX_SLEEP_S = 30.0  # real seconds: a clock jump or a suspended machine is noticed this fast
RETRY_S = 5.0  # real seconds before deferring again when the store could not be reached
Deferred = Literal["deferred", "already-deferred", "already-queued"]


@dataclass(frozen=True)
class Clock:
    """Wall-clock time, or (tests only: `--clock-speed`) time running `speed` times faster from
    `anchor` (epoch seconds), the same for every process given the same anchor and speed."""

    speed: float = 1.0
    anchor: float = 0.0
    real: Callable[[], float] = field(default=time.time, compare=False)

    def now(self) -> datetime:
        real = self.real()
        return datetime.fromtimestamp(self.anchor + (real - self.anchor) * self.speed, UTC)

    def real_seconds(self, virtual_s: float) -> float:
        return virtual_s / self.speed


def _lock_key(task_name: str, periodic_id: str) -> int:
    digest = hashlib.sha256(f"edi-periodic\0{task_name}\0{periodic_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def defer_periodic(
    url: str,
    *,
    task_name: str,
    periodic_id: str,
    timestamp: int,
    kwargs: dict[str, Any],
    lock: str,
) -> tuple[Deferred, int | None]:
    """Defer TASK_NAME for the due time TIMESTAMP once, whoever else tries; the job id when
    this call deferred it."""
    import psycopg
    from procrastinate.sql import queries
    from psycopg.types.json import Jsonb

    args = {**kwargs, "timestamp": timestamp}
    with store.connect(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(task_name, periodic_id),))
        row = conn.execute(
            "SELECT max(defer_timestamp) FROM procrastinate_periodic_defers "
            "WHERE task_name = %s AND periodic_id = %s",
            (task_name, periodic_id),
        ).fetchone()
        if row is not None and row[0] is not None and int(row[0]) >= timestamp:
            return "already-deferred", None
        try:
            found = conn.execute(
                queries["defer_periodic_job"],
                {
                    "queue": "default",
                    "lock": lock,
                    "queueing_lock": lock,
                    "task_name": task_name,
                    "priority": 0,
                    "periodic_id": periodic_id,
                    "defer_timestamp": timestamp,
                    "args": Jsonb(args),
                },
            ).fetchone()
        except psycopg.errors.UniqueViolation:
            conn.rollback()
            return "already-queued", None
    job_id = found[0] if found else None
    if job_id is None:
        return "already-deferred", None
    return "deferred", int(job_id)


@dataclass
class _Due:
    """One periodic thing: when it is next due, and how to defer it."""

    periodic_id: str
    task_name: str
    lock: str
    kwargs: dict[str, Any]
    next_fire: Callable[[datetime, datetime | None], datetime | None]
    upcoming: datetime | None = None


class SharedScheduler:
    """Defers a workspace's due runs and checks into the store; `tick` once, or `serve`."""

    def __init__(
        self,
        url: str,
        workspace: Workspace,
        *,
        clock: Clock | None = None,
        check_every_s: float = CHECK_EVERY_MIN * 60,
        grace_s: float = MISFIRE_GRACE_S,
    ) -> None:
        name = workspace.settings.name
        if workspace.settings.store is None or not name:
            raise ConfigError(
                "store-not-configured",
                "this workspace has no [store] (and name) in edi.toml",
                hint='Add name = "acme" and [store] url_env = "EDI_STORE_URL" to edi.toml.',
            )
        self.url, self.workspace, self.name = url, workspace, name
        self.clock = clock or Clock()
        self.grace = timedelta(seconds=grace_s)
        self.deferred: list[tuple[str, datetime, Deferred, int | None]] = []
        where = {"workspace_path": str(workspace.home), "workspace_name": name}
        self.items = [
            _Due(
                periodic_id=f"{name}/{schedule.id}",
                task_name=jobs.TASK_NAME,
                lock=jobs.feed_key(name, schedule.carrier),
                kwargs={
                    **where,
                    "carrier": schedule.carrier,
                    "as_of": None,
                    "file_type": schedule.file_type,
                    "schedule_id": schedule.id,
                },
                next_fire=_cron_fires(schedule),
            )
            for schedule in load_schedules(workspace)
            if schedule.enabled
        ]
        self.items.append(
            _Due(
                periodic_id=f"{name}/checks",
                task_name=jobs.CHECKS_TASK,
                lock=f"{name}/checks",
                kwargs=where,
                next_fire=_every(check_every_s),
            )
        )

    def tick(self) -> float:
        """Defer whatever is due now; the virtual seconds until something is next due."""
        moment = self.clock.now()
        for item in self.items:
            if item.upcoming is None:
                item.upcoming = item.next_fire(moment - self.grace, None)
            due = None
            while item.upcoming is not None and item.upcoming <= moment:
                due = item.upcoming  # late due times coalesce into the latest
                item.upcoming = item.next_fire(moment, due)
            if due is None:
                continue
            stamp = int(due.timestamp())
            try:
                outcome, job_id = defer_periodic(
                    self.url,
                    task_name=item.task_name,
                    periodic_id=item.periodic_id,
                    timestamp=stamp,
                    kwargs=item.kwargs,
                    lock=item.lock,
                )
            except Exception as error:  # the store unreachable, a lost connection: retry
                code = error.code if isinstance(error, EdiError) else type(error).__name__
                log.warning("%s due %s: not deferred: %s", item.periodic_id, due.isoformat(), code)
                item.upcoming = due
                return self.clock.speed * RETRY_S
            self.deferred.append((item.periodic_id, due, outcome, job_id))
            shown = f" as job {job_id}" if job_id is not None else ""
            log.info("%s due %s: %s%s", item.periodic_id, due.isoformat(), outcome, shown)
        upcoming = [item.upcoming for item in self.items if item.upcoming is not None]
        if not upcoming:
            return MAX_SLEEP_S
        return max(0.0, (min(upcoming) - moment).total_seconds())

    def serve(self, stop: threading.Event) -> None:
        while not stop.is_set():
            wait = self.clock.real_seconds(self.tick())
            stop.wait(min(MAX_SLEEP_S, wait + 0.05))


def _cron_fires(schedule: Schedule) -> Callable[[datetime, datetime | None], datetime | None]:
    trigger = schedule.trigger()

    def next_fire(now: datetime, previous: datetime | None) -> datetime | None:
        if previous is None:
            fire: datetime | None = trigger.get_next_fire_time(None, now)
        else:
            fire = trigger.get_next_fire_time(previous, previous + timedelta(seconds=1))
        return fire

    return next_fire


def _every(seconds: float) -> Callable[[datetime, datetime | None], datetime | None]:
    period = max(1, round(seconds))

    def next_fire(now: datetime, previous: datetime | None) -> datetime | None:
        start = previous.timestamp() + 1 if previous is not None else now.timestamp()
        stamp = -(-int(start) // period) * period  # the first multiple of the period >= start
        return datetime.fromtimestamp(stamp, UTC)

    return next_fire


def serve(
    workspace: Workspace,
    *,
    clock: Clock | None = None,
    check_every_s: float = CHECK_EVERY_MIN * 60,
) -> None:
    """Runs until SIGTERM/SIGINT; defers each due run once, whoever else is scheduling."""
    url = store.workspace_url(workspace)
    assert url is not None
    store.require_schema(url)
    scheduler = SharedScheduler(url, workspace, clock=clock, check_every_s=check_every_s)
    stop = threading.Event()
    if not log.handlers:  # what is deferred, when: one line each on stderr
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False

    def stopping(signum: int, frame: object) -> None:
        log.info("signal %s: stopping (runs already deferred stay queued)", signum)
        stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    log.info(
        "scheduling %d item(s) of %s into the store at %s",
        len(scheduler.items),
        scheduler.name,
        store.redact(url),
    )
    scheduler.serve(stop)
