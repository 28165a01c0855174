"""Queued runs on the shared store (procrastinate): enqueue, the job itself, workers, listing.

A job carries a workspace's path and name, a carrier and the run's options; any worker that
mounts the workspace runs it by calling `edi.pipeline.run`, holding the store's advisory lock on
(workspace name, carrier) for the run. One queued job per feed at a time (procrastinate's
queueing lock), and jobs of one feed never run side by side (its job lock).

Workers heartbeat; each worker also sweeps for jobs left `doing` by a worker whose heartbeat
stopped (kill -9, machine lost) and puts them back in the queue, where the next free worker
picks them up. The pipeline's integrity guarantees make that re-run deliver exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from edi import store
from edi.errors import ConfigError, EdiError, NothingToSend, UsageError

if TYPE_CHECKING:
    from procrastinate import App, JobContext

    from edi.workspace import Workspace

TASK_NAME = "edi.run_feed"
CHECKS_TASK = "edi.checks"  # the missed-run watchdog, overdue acks, roster reconciliation
TASKS = (TASK_NAME, CHECKS_TASK)
STATUS_NAMES = {"todo": "queued"}
FINAL = ("succeeded", "failed", "cancelled", "aborted")
logger = logging.getLogger("edi.jobs")


class JobFailed(Exception):
    """What procrastinate records for a failed run: the error's code and message (no PHI)."""


def feed_key(workspace_name: str, carrier: str) -> str:
    return f"{workspace_name}/{carrier}"


def make_app(url: str) -> App:
    from procrastinate import App, PsycopgConnector

    app = App(connector=PsycopgConnector(conninfo=url, min_size=1, max_size=4))
    app.task(name=TASK_NAME, pass_context=True)(run_feed)
    app.task(name=CHECKS_TASK, pass_context=True)(run_checks)
    return app


def _record_start(url: str, context: JobContext, kwargs: dict[str, Any]) -> int:
    job_id = context.job.id
    worker = str(context.additional_context.get("worker", context.worker_name or "worker"))
    with store.connect(url) as conn:
        conn.execute(
            "UPDATE edi_runs SET outcome = 'interrupted', finished_at = now() "
            "WHERE job_id = %s AND finished_at IS NULL",
            (job_id,),
        )
        row = conn.execute(
            "INSERT INTO edi_runs (job_id, attempt, workspace_name, workspace_path, carrier, "
            "worker) VALUES (%s, (SELECT count(*) + 1 FROM edi_runs WHERE job_id = %s), "
            "%s, %s, %s, %s) RETURNING id",
            (
                job_id,
                job_id,
                kwargs["workspace_name"],
                kwargs["workspace_path"],
                kwargs["carrier"],
                worker,
            ),
        ).fetchone()
    assert row is not None
    return int(row[0])


def _record_end(url: str, run_id: int, outcome: str, error_code: str | None) -> None:
    with store.connect(url) as conn:
        conn.execute(
            "UPDATE edi_runs SET outcome = %s, error_code = %s, finished_at = now() WHERE id = %s",
            (outcome, error_code, run_id),
        )


def run_feed(
    context: JobContext,
    *,
    workspace_path: str,
    workspace_name: str,
    carrier: str,
    as_of: str | None = None,
    file_type: str | None = None,
    schedule_id: str | None = None,
    timestamp: int | None = None,
) -> str:
    """The job: one `edi run` of one carrier in one workspace. A scheduled run (deferred by
    `edi scheduler run` with a store) carries its schedule's id and due time (`timestamp`)."""
    from edi import pipeline

    url = str(context.additional_context["store_url"])
    kwargs = {
        "workspace_path": workspace_path,
        "workspace_name": workspace_name,
        "carrier": carrier,
    }
    run_id = _record_start(url, context, kwargs)
    try:
        workspace = _open_workspace(workspace_path, workspace_name)
        with store.hold_run_lock(
            url, workspace_name, carrier, wait_s=pipeline.lock_wait_s(workspace)
        ):
            try:
                result = pipeline.run(
                    workspace,
                    carrier,
                    now=datetime.now(UTC),
                    as_of=date.fromisoformat(as_of) if as_of else None,
                    file_type=file_type,  # type: ignore[arg-type]
                    schedule_id=schedule_id or f"job:{context.job.id}",
                )
                outcome = result.outcome
            except NothingToSend:
                outcome = "nothing-to-send"
    except EdiError as error:
        _record_end(url, run_id, "failed", error.code)
        raise JobFailed(str(error)) from None
    except Exception as error:
        _record_end(url, run_id, "failed", "unexpected")
        raise JobFailed(f"[unexpected] {type(error).__name__}") from None
    _record_end(url, run_id, outcome, None)
    return outcome


def _open_workspace(workspace_path: str, workspace_name: str) -> Workspace:
    from edi.workspace import Workspace

    workspace = Workspace.open(Path(workspace_path))
    if workspace.settings.name != workspace_name:
        raise ConfigError(
            "workspace-name-mismatch",
            f"the workspace at {workspace_path} is not named {workspace_name!r}",
            hint="Each job runs the workspace it was queued from; was edi.toml changed?",
        )
    return workspace


def run_checks(
    context: JobContext, *, workspace_path: str, workspace_name: str, timestamp: int
) -> str:
    """The periodic checks job of one workspace: what the SQLite scheduler runs every
    CHECK_EVERY_MIN minutes (missed-run watchdog, overdue acks, roster reconciliation)."""
    from edi.scheduler import checks
    from edi.schedules import load_schedules

    try:
        workspace = _open_workspace(workspace_path, workspace_name)
        checks(workspace, load_schedules(workspace), lambda: datetime.now(UTC))
    except EdiError as error:
        raise JobFailed(str(error)) from None
    except Exception as error:
        raise JobFailed(f"[unexpected] {type(error).__name__}") from None
    return "checked"


@dataclass(frozen=True)
class Enqueued:
    job_id: int | None
    queued: bool  # False: one was already queued for this feed (job_id is that one)


def enqueue(
    url: str,
    workspace: Workspace,
    carrier: str,
    *,
    as_of: date | None = None,
    file_type: str | None = None,
) -> Enqueued:
    from procrastinate.exceptions import AlreadyEnqueued

    name = workspace.settings.name
    if workspace.settings.store is None or not name:
        raise ConfigError(
            "store-not-configured",
            "this workspace has no [store] (and name) in edi.toml: there is no queue to use",
            hint='Add name = "acme" and [store] url_env = "EDI_STORE_URL" to edi.toml.',
        )
    store.require_schema(url)
    key = feed_key(name, carrier)
    app = make_app(url)
    with app.open():
        task = app.tasks[TASK_NAME]
        try:
            job_id = task.configure(queueing_lock=key, lock=key).defer(
                workspace_path=str(workspace.home),
                workspace_name=name,
                carrier=carrier,
                as_of=as_of.isoformat() if as_of else None,
                file_type=file_type,
            )
        except AlreadyEnqueued:
            with store.connect(url) as conn:
                row = conn.execute(
                    "SELECT id FROM procrastinate_jobs WHERE queueing_lock = %s AND "
                    "status = 'todo' ORDER BY id LIMIT 1",
                    (key,),
                ).fetchone()
            return Enqueued(int(row[0]) if row else None, False)
    return Enqueued(job_id, True)


@dataclass(frozen=True)
class WorkerOptions:
    heartbeat_s: float = 10.0
    stalled_after_s: float = 30.0
    poll_s: float = 5.0
    exit_when_empty: bool = False
    name: str | None = None

    @property
    def sweep_every_s(self) -> float:
        return max(0.5, min(self.heartbeat_s, self.stalled_after_s / 2))

    @property
    def worst_pickup_s(self) -> float:
        """The longest a dead worker's job waits before another worker starts it: its last
        heartbeat may be a whole interval old when it dies, it is stalled after
        `stalled_after_s`, the next sweep queues it again, and a poll fetches it (when no
        notification wakes the worker first)."""
        return self.heartbeat_s + self.stalled_after_s + self.sweep_every_s + self.poll_s


async def _sweep_stalled(app: App, options: WorkerOptions) -> None:
    """Put back in the queue the jobs of workers whose heartbeat stopped."""
    while True:
        await asyncio.sleep(options.sweep_every_s)
        try:
            stalled = await app.job_manager.get_stalled_jobs(
                seconds_since_heartbeat=options.stalled_after_s
            )
            for job in stalled:
                with contextlib.suppress(Exception):  # another worker's sweep got there first
                    await app.job_manager.retry_job(job)
                    logger.warning("job %s of a stalled worker is queued again", job.id)
        except Exception as exc:
            logger.warning("stalled-job sweep failed: %s", type(exc).__name__)


def work(url: str, options: WorkerOptions) -> None:
    """One worker process running one job at a time until SIGTERM/SIGINT (it finishes the job
    in hand first) or, with exit_when_empty, until the queue is empty."""
    store.require_schema(url)
    app = make_app(url)
    name = options.name or f"{socket.gethostname()}:{os.getpid()}"

    async def main() -> None:
        async with app.open_async():
            sweeper = asyncio.create_task(_sweep_stalled(app, options))
            try:
                await app.run_worker_async(
                    concurrency=1,
                    wait=not options.exit_when_empty,
                    name=name,
                    update_heartbeat_interval=options.heartbeat_s,
                    stalled_worker_timeout=options.stalled_after_s,
                    fetch_job_polling_interval=options.poll_s,
                    additional_context={"store_url": url, "worker": name},
                )
            finally:
                sweeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await sweeper

    asyncio.run(main())


def supervise(url: str, concurrency: int, options: WorkerOptions, argv: list[str]) -> int:
    """N worker processes (runs are CPU-bound: processes, not threads). SIGTERM/SIGINT go to
    every child, each finishing its job; a child that dies is started again."""
    env = {**os.environ, store.DEFAULT_URL_ENV: url}  # the URL never goes on a command line
    children: list[subprocess.Popen[bytes]] = []
    stopping = False

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "edi", "worker", *argv], env=env)

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    children.extend(start() for _ in range(concurrency))
    while True:
        for index, child in enumerate(children):
            code = child.poll()
            if code is not None and not stopping and not options.exit_when_empty and code != 0:
                logger.warning(
                    "worker process %s exited with %s; starting another", child.pid, code
                )
                time.sleep(1)
                children[index] = start()
        if all(child.poll() is not None for child in children):
            break
        time.sleep(0.2)
    return max((child.returncode or 0 for child in children), default=0)


@dataclass(frozen=True)
class JobRow:
    id: int
    status: str
    workspace: str
    carrier: str
    attempts: int
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    outcome: str | None
    error_code: str | None
    kind: str = "run"  # "run" (a feed's run) or "checks" (a workspace's periodic checks)
    due: str | None = None  # a scheduled job's due time (`edi scheduler run` with a store)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else None


def list_jobs(url: str, *, workspace_name: str | None = None) -> list[JobRow]:
    store.require_schema(url)
    with store.connect(url) as conn:
        rows = conn.execute(
            """
            SELECT j.id, j.status::text, j.args->>'workspace_name', j.args->>'carrier',
                   j.attempts,
                   (SELECT min(e.at) FROM procrastinate_events e
                     WHERE e.job_id = j.id AND e.type = 'deferred'),
                   (SELECT max(e.at) FROM procrastinate_events e
                     WHERE e.job_id = j.id AND e.type = 'started'),
                   CASE WHEN j.status::text = ANY(%s) THEN
                     (SELECT max(e.at) FROM procrastinate_events e WHERE e.job_id = j.id
                        AND e.type::text = ANY(%s)) END,
                   r.outcome, r.error_code, j.task_name,
                   (j.args->>'timestamp')::bigint
              FROM procrastinate_jobs j
              LEFT JOIN LATERAL (SELECT outcome, error_code FROM edi_runs
                                  WHERE job_id = j.id ORDER BY id DESC LIMIT 1) r ON true
             WHERE j.task_name = ANY(%s)
               AND (%s::text IS NULL OR j.args->>'workspace_name' = %s)
             ORDER BY j.id
            """,
            (list(FINAL), list(FINAL), list(TASKS), workspace_name, workspace_name),
        ).fetchall()
    return [
        JobRow(
            id=int(r[0]),
            status=STATUS_NAMES.get(r[1], r[1]),
            workspace=r[2] or "",
            carrier=r[3] or "",
            attempts=int(r[4]),
            queued_at=_iso(r[5]),
            started_at=_iso(r[6]),
            finished_at=_iso(r[7]),
            outcome=r[8] if r[10] == TASK_NAME else ("checked" if r[1] == "succeeded" else None),
            error_code=r[9],
            kind="run" if r[10] == TASK_NAME else "checks",
            due=_iso(datetime.fromtimestamp(r[11], UTC)) if r[11] is not None else None,
        )
        for r in rows
    ]


def retry(url: str, job_id: int) -> None:
    """Queue a failed (or aborted/cancelled) job again."""
    from procrastinate.exceptions import UniqueViolation

    store.require_schema(url)
    with store.connect(url) as conn:
        row = conn.execute(
            "SELECT status::text FROM procrastinate_jobs WHERE id = %s AND task_name = %s",
            (job_id, TASK_NAME),
        ).fetchone()
    if row is None:
        raise UsageError("job-not-found", f"no job {job_id} in the store")
    if row[0] not in ("failed", "aborted", "cancelled"):
        raise UsageError(
            "job-not-retryable",
            f"job {job_id} is {STATUS_NAMES.get(row[0], row[0])}; only failed jobs are retried",
        )
    app = make_app(url)
    with app.open():
        try:
            app.job_manager.retry_job_by_id(job_id, retry_at=datetime.now(UTC))
        except UniqueViolation:
            raise UsageError(
                "already-queued",
                f"job {job_id}'s feed already has a queued run; nothing retried",
            ) from None
