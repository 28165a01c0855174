"""`edi schedules list`, `edi scheduler run`, `edi acks fetch`, `edi status`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

schedules_app = typer.Typer(
    help="Scheduled transmissions (schedules/*.toml).", no_args_is_help=True
)
scheduler_app = typer.Typer(help="The long-running scheduler.", no_args_is_help=True)
acks_app = typer.Typer(help="TA1/999 acknowledgments.", no_args_is_help=True)
HomeOption = Annotated[Path | None, typer.Option("--home", help="Workspace directory.")]


def _cli() -> Any:
    from edi import cli

    return cli


def _last(entries: list[Any], *events: str) -> Any:
    return next((e for e in reversed(entries) if e.get("event") in events), None)


@schedules_app.command("list")
def schedules_list(
    home: HomeOption = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Each schedule, its next run and its carrier's last outcome."""
    from edi.delivery_config import delivery_log
    from edi.schedules import load_schedules

    cli = _cli()
    workspace = cli.workspace(home)
    log = delivery_log(workspace)
    rows = []
    for schedule in load_schedules(workspace):
        last = _last(
            log.entries(carrier=schedule.carrier),
            "delivery",
            "delivery-failed",
            "nothing-to-send",
            "validation-failed",
            "mass-termination-guard",
        )
        next_run = schedule.next_run(cli.now()) if schedule.enabled else None
        rows.append(
            {
                "schedule": schedule.id,
                "carrier": schedule.carrier,
                "cron": schedule.cron,
                "timezone": schedule.timezone,
                "enabled": schedule.enabled,
                "next_run": next_run.isoformat() if next_run else None,
                "last_outcome": last.get("outcome") if last else None,
                "last_at": last.get("recorded_at") if last else None,
            }
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title="Schedules")
    for column in rows[0] if rows else ("schedule",):
        table.add_column(column.replace("_", " "))
    for row in rows:
        table.add_row(*(str(v) if v is not None else "-" for v in row.values()))
    cli.out.print(table)


@scheduler_app.command("run")
def scheduler_run(
    home: HomeOption = None,
    clock_speed: Annotated[float, typer.Option("--clock-speed", min=1.0, hidden=True)] = 1.0,
    clock_anchor: Annotated[float, typer.Option("--clock-anchor", hidden=True)] = 0.0,
    check_every_s: Annotated[float, typer.Option("--check-every-s", min=1.0, hidden=True)] = 900,
) -> None:
    """Run every enabled schedule until stopped (SIGTERM finishes the current upload first).
    With a [store], defer each due run into the store for `edi worker` instead: any number of
    schedulers, each run deferred once."""
    import logging

    from edi.scheduler import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    workspace = _cli().workspace(home)
    if workspace.settings.store is not None:
        from edi import shared_scheduler

        clock = shared_scheduler.Clock(speed=clock_speed, anchor=clock_anchor)
        shared_scheduler.serve(workspace, clock=clock, check_every_s=check_every_s)
        return
    serve(workspace)


@acks_app.command("fetch")
def acks_fetch(
    carrier: Annotated[str | None, typer.Option("--carrier", "-c")] = None,
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Fetch TA1/999 files from each carrier's outbound folder, match, log and alert."""
    from edi.acks import fetch_acks
    from edi.profiles import load_profile, profile_names

    cli = _cli()
    workspace = cli.workspace(home)
    results: dict[str, dict[str, list[Any]]] = {}
    for name in [carrier] if carrier else profile_names(workspace):
        profile = load_profile(workspace, name)
        if profile.acks is None:
            continue
        report = fetch_acks(workspace, profile, cli.now())
        results[name] = {"matched": report.matched, "unmatched": report.unmatched}
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for name, result in results.items():
        cli.out.print(
            f"{name}: {len(result['matched'])} matched, unmatched: {result['unmatched'] or 'none'}"
        )


def status_command(
    home: HomeOption = None, as_json: Annotated[bool, typer.Option("--json")] = False
) -> None:
    """Per carrier: last delivery, ack state, next run, anything overdue. Exit 1 if something is
    overdue, missed or rejected, so monitoring can alert on it."""
    from edi.delivery_config import delivery_log
    from edi.overview import status_row
    from edi.profiles import profile_names
    from edi.schedules import load_schedules

    cli = _cli()
    workspace = cli.workspace(home)
    log, now = delivery_log(workspace), cli.now()
    schedules = {s.carrier: s for s in load_schedules(workspace)}
    rows = [
        status_row(carrier, log.entries(carrier=carrier), schedules.get(carrier), now)
        for carrier in profile_names(workspace)
    ]
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        table = Table(title="Status")
        for column in ("carrier", "last delivery", "ISA13", "ack", "next run", "problems"):
            table.add_column(column)
        for row in rows:
            table.add_row(
                *(", ".join(v) if isinstance(v, list) else str(v or "-") for v in row.values())
            )
        cli.out.print(table)
    if any(row["problems"] for row in rows):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.add_typer(schedules_app, name="schedules")
    app.add_typer(scheduler_app, name="scheduler")
    app.add_typer(acks_app, name="acks")
    app.command("status")(status_command)
