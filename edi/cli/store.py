"""`edi store init`, `edi enqueue`, `edi worker`, `edi jobs list|retry`: the shared store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edi.cli import common
from edi.cli.common import HomeOption

store_app = typer.Typer(help="The shared PostgreSQL store.", no_args_is_help=True)
jobs_app = typer.Typer(help="Queued runs in the shared store.", no_args_is_help=True)
StoreUrlOption = Annotated[
    str | None,
    typer.Option(
        "--store-url",
        help="postgresql://… (default: $EDI_STORE_URL, else the workspace's [store]).",
        show_default=False,
    ),
]


def _url(explicit: str | None, home: Path | None) -> str:
    from edi import store

    if explicit or store.url_from_env():
        return store.resolve_url(explicit, None)
    return store.resolve_url(None, common.workspace(home))


@store_app.command("init")
def store_init(home: HomeOption = None, store_url: StoreUrlOption = None) -> None:
    """Create or migrate the store's schema (procrastinate's queue, edi's tables); a no-op when
    up to date. Stop the workers before migrating a live store."""
    from edi import store

    url = _url(store_url, home)
    changed = store.init_schema(url)
    where = store.redact(url)
    if changed:
        print(f"store {where}: {', '.join(changed)}")
    else:
        print(f"store {where}: already up to date")


@store_app.command("grant")
def store_grant(
    workspace_name: Annotated[
        str, typer.Option("--workspace", help="The employer's workspace name (edi.toml name).")
    ],
    password_env: Annotated[
        str | None,
        typer.Option(
            "--password-env",
            help="Environment variable holding the role's password (default: one is generated "
            "and printed once).",
        ),
    ] = None,
    home: HomeOption = None,
    store_url: StoreUrlOption = None,
) -> None:
    """A login role for one employer: it reads and writes only that workspace's rows (row-level
    security), and only appends to its delivery log."""
    import os
    import re

    from edi import pgstore, store
    from edi.errors import UsageError
    from edi.workspace import WORKSPACE_NAME

    if not re.match(WORKSPACE_NAME, workspace_name):
        raise UsageError(
            "store-bad-workspace-name",
            "a workspace name is lowercase letters, digits, - and _ (up to 63)",
        )
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if not password:
            raise UsageError("store-password-missing", f"${password_env} is not set")
    url = _url(store_url, home)
    store.require_schema(url)
    role, secret = pgstore.grant_workspace(url, workspace_name, password)
    print(f"role {role}: workspace {workspace_name!r} only, in store {store.redact(url)}")
    if password is None:
        print(f"password (shown once): {secret}")


@store_app.command("migrate")
def store_migrate(
    from_sqlite: Annotated[
        bool,
        typer.Option(
            "--from-sqlite", help="Move this workspace's SQLite state (state/*.sqlite) in."
        ),
    ] = False,
    home: HomeOption = None,
) -> None:
    """Move a workspace's control numbers, baselines, discrepancies and delivery log into its
    [store], then verify the log there (nothing is committed unless it verifies)."""
    from edi import pgmigrate
    from edi.errors import UsageError

    if not from_sqlite:
        raise UsageError("store-migrate-source", "say where from: --from-sqlite")
    done = pgmigrate.migrate(common.workspace(home))
    head = f", head {done.head}" if done.head else ""
    print(
        f"workspace {done.workspace!r} migrated: {done.control_numbers} control numbers, "
        f"{done.baseline_rows} baseline members, {done.discrepancies} discrepancies, "
        f"{done.log_entries} log entries and {done.log_checkpoints} checkpoints; the log "
        f"verifies in the store{head}"
    )


def enqueue(
    carrier: Annotated[str, typer.Option("--carrier", help="Carrier profile name.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD")] = None,
    file_type: Annotated[
        str | None, typer.Option("--type", help="full, changes or audit (default: as due)")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Queue a run of CARRIER for this workspace; prints the job id. A run already queued for
    the same workspace and carrier makes this a no-op."""
    from edi import jobs, store
    from edi.profiles import load_profile

    ws = common.workspace(home)
    day = common.parse_day(as_of, "--as-of")
    chosen = common.file_type_option(file_type)
    load_profile(ws, carrier)  # an unknown or invalid carrier fails here, not in a worker
    url = store.workspace_url(ws) if ws.settings.store else None
    result = jobs.enqueue(url or "", ws, carrier, as_of=day, file_type=chosen)
    if result.queued:
        print(result.job_id)
    else:
        shown = f" as job {result.job_id}" if result.job_id is not None else ""
        print(f"already queued{shown}: {ws.settings.name}/{carrier}")


def worker(
    concurrency: Annotated[
        int, typer.Option("--concurrency", min=1, max=64, help="Worker processes.")
    ] = 1,
    store_url: StoreUrlOption = None,
    heartbeat_s: Annotated[
        float, typer.Option("--heartbeat-s", min=0.1, help="Seconds between heartbeats.")
    ] = 10.0,
    stalled_after_s: Annotated[
        float,
        typer.Option(
            "--stalled-after-s",
            min=0.5,
            help="A worker silent this long is dead: its job is queued again.",
        ),
    ] = 30.0,
    poll_s: Annotated[float, typer.Option("--poll-s", min=0.05, hidden=True)] = 5.0,
    exit_when_empty: Annotated[
        bool, typer.Option("--exit-when-empty", help="Stop once the queue is empty.")
    ] = False,
) -> None:
    """Run queued jobs for any workspace until SIGTERM (the job in hand is finished first)."""
    from edi import jobs, store

    url = store.resolve_url(store_url, None)
    options = jobs.WorkerOptions(
        heartbeat_s=heartbeat_s,
        stalled_after_s=stalled_after_s,
        poll_s=poll_s,
        exit_when_empty=exit_when_empty,
    )
    if concurrency == 1:
        jobs.work(url, options)
        return
    store.require_schema(url)
    argv = [
        "--heartbeat-s",
        str(heartbeat_s),
        "--stalled-after-s",
        str(stalled_after_s),
        "--poll-s",
        str(poll_s),
        *(["--exit-when-empty"] if exit_when_empty else []),
    ]
    code = jobs.supervise(url, concurrency, options, argv)
    if code:
        raise typer.Exit(1)


@jobs_app.command("list")
def jobs_list(
    home: HomeOption = None,
    store_url: StoreUrlOption = None,
    workspace_name: Annotated[
        str | None, typer.Option("--workspace", help="Only this workspace's jobs.")
    ] = None,
    as_json: common.JsonOption = False,
) -> None:
    """Jobs in the store: id, status, workspace, carrier, times, attempts."""
    from edi import jobs

    rows = jobs.list_jobs(_url(store_url, home), workspace_name=workspace_name)
    if as_json:
        print(json.dumps([row.as_dict() for row in rows], indent=2))
        return
    from edi.output import local_time, render_table

    render_table(
        common.out,
        common.err,
        "Jobs",
        ("id", "status", "kind", "feed", "attempts", "due", "queued", "finished", "outcome"),
        [
            (
                row.id,
                row.status,
                row.kind,
                f"{row.workspace}/{row.carrier or row.kind}",
                row.attempts,
                local_time(row.due),
                local_time(row.queued_at),
                local_time(row.finished_at),
                row.error_code or row.outcome,
            )
            for row in rows
        ],
        right=("id", "attempts"),
    )


@jobs_app.command("retry")
def jobs_retry(
    job_id: Annotated[int, typer.Argument(help="The job's id (edi jobs list).")],
    home: HomeOption = None,
    store_url: StoreUrlOption = None,
) -> None:
    """Queue a failed job again."""
    from edi import jobs

    jobs.retry(_url(store_url, home), job_id)
    print(f"job {job_id} queued again")


def register(app: typer.Typer) -> None:
    app.add_typer(store_app, name="store")
    app.add_typer(jobs_app, name="jobs")
    app.command("enqueue")(enqueue)
    app.command("worker")(worker)
