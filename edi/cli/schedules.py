"""`edi schedules list`, `edi scheduler run`, `edi acks fetch`, `edi status`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from edi.cli import common
from edi.cli.common import HomeOption

schedules_app = typer.Typer(
    help="Scheduled transmissions (schedules/*.toml).", no_args_is_help=True
)
scheduler_app = typer.Typer(help="The long-running scheduler.", no_args_is_help=True)
acks_app = typer.Typer(help="TA1/999 acknowledgments.", no_args_is_help=True)


def _last(entries: list[Any], *events: str) -> Any:
    return next((e for e in reversed(entries) if e.get("event") in events), None)


@schedules_app.command("list")
def schedules_list(
    home: HomeOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """Each schedule, its next run and its carrier's last outcome."""
    from edi.delivery_config import delivery_log
    from edi.schedules import load_schedules

    workspace = common.workspace(home)
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
        next_run = schedule.next_run(common.now()) if schedule.enabled else None
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
    from edi.output import local_time, render_table

    columns = ("schedule", "carrier", "cron", "timezone", "enabled", "next_run", "last_outcome")
    render_table(
        common.out,
        common.err,
        "Schedules",
        (*(c.replace("_", " ") for c in columns), "last at"),
        [
            [
                *(local_time(str(row[c] or "")) if c == "next_run" else row[c] for c in columns),
                local_time(str(row["last_at"] or "")),
            ]
            for row in rows
        ],
    )


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
    workspace = common.workspace(home)
    if workspace.settings.store is not None:
        from edi import shared_scheduler

        clock = shared_scheduler.Clock(speed=clock_speed, anchor=clock_anchor)
        shared_scheduler.serve(workspace, clock=clock, check_every_s=check_every_s)
        return
    serve(workspace)


@acks_app.command("fetch")
def acks_fetch(
    carrier: Annotated[
        str | None, typer.Option("--carrier", "-c", help="Only this carrier.")
    ] = None,
    home: HomeOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """Fetch TA1/999 files from each carrier's outbound folder, match, log and alert."""
    from edi.acks import fetch_acks
    from edi.errors import UsageError
    from edi.profiles import load_profile, profile_names

    workspace = common.workspace(home)
    results: dict[str, dict[str, list[Any]]] = {}
    for name in [carrier] if carrier else profile_names(workspace):
        profile = load_profile(workspace, name)
        if profile.acks is None:
            if carrier:
                raise UsageError(
                    "profile-no-acks",
                    f"carriers/{name}.toml has no [acks] table: there is nowhere to fetch from",
                    hint="Add an [acks] table to the profile (README: Delivery settings).",
                )
            continue
        report = fetch_acks(workspace, profile, common.now())
        results[name] = {"matched": report.matched, "unmatched": report.unmatched}
    if as_json:
        print(json.dumps(results, indent=2))
        return
    if not results:
        common.err.print(
            "no carrier profile has an [acks] table: nothing to fetch", highlight=False
        )
    for name, result in results.items():
        common.out.print(
            f"{name}: {len(result['matched'])} matched, unmatched: {result['unmatched'] or 'none'}"
        )


def status_command(
    home: HomeOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """Per carrier: last delivered file, last run and its outcome, failures in a row, open acks,
    next run. Exit 1 while a last run failed, an ack is rejected or overdue, or a run was missed,
    so monitoring can alert on it."""
    from edi.delivery_config import delivery_log
    from edi.output import local_time, render_table
    from edi.profiles import profile_names
    from edi.schedules import load_schedules
    from edi.status import carrier_status

    workspace = common.workspace(home)
    log, now = delivery_log(workspace), common.now()
    schedules = {s.carrier: s for s in load_schedules(workspace)}
    rows = [
        carrier_status(carrier, log.entries(carrier=carrier), schedules.get(carrier), now)
        for carrier in profile_names(workspace)
    ]
    for row in rows:
        _flag_an_unusable_profile(workspace, row)
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        render_table(
            common.out,
            common.err,
            "Status",
            (
                "carrier",
                "last delivered",
                "ISA13",
                "last run",
                "outcome",
                "failures in a row",
                "open acks",
                "ack",
                "next run",
                "problems",
            ),
            [
                (
                    row["carrier"],
                    local_time(row["last_delivered_at"]),
                    row["last_delivered_isa13"],
                    local_time(row["last_run_at"]),
                    row["last_run_outcome"],
                    row["consecutive_failures"],
                    row["open_acks"],
                    row["ack"],
                    local_time(row["next_run"]),
                    "; ".join(row["problem_details"]) or "ok",
                )
                for row in rows
            ],
            empty="no carrier profiles",
        )
        if not any(row["last_run_at"] for row in rows):
            common.point_at_the_demo(home)
    if any(row["problems"] for row in rows):
        raise typer.Exit(1)


def _flag_an_unusable_profile(workspace: Any, row: dict[str, Any]) -> None:
    """A profile that does not load stops every run of its carrier: a problem `status` shows."""
    from edi.errors import ConfigError
    from edi.profiles import load_profile

    try:
        load_profile(workspace, row["carrier"])
    except ConfigError as error:
        row["problems"].append("profile-invalid")
        row["problem_details"].append(f"profile does not load [{error.code}]")


def register(app: typer.Typer) -> None:
    app.add_typer(schedules_app, name="schedules")
    app.add_typer(scheduler_app, name="scheduler")
    app.add_typer(acks_app, name="acks")
    app.command("status")(status_command)
