"""`edi check --carrier NAME`: test a carrier's connection, keys and alert channels."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from edi.cli import common


def check_command(
    carrier: Annotated[str, typer.Option("--carrier", "-c", help="Carrier profile name.")],
    no_write: Annotated[
        bool, typer.Option("--no-write", help="Do not write and remove a probe file.")
    ] = False,
    alerts: Annotated[
        bool, typer.Option("--alerts", help="Send a test alert to every configured channel.")
    ] = False,
    home: common.HomeOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """Resolve, connect, verify the pinned host key, authenticate, check the remote folder is
    writable (a probe file, removed again), the acks folder, the PGP key (pin, expiry) and the
    alert channels. Exit 0 only when every check passes (warnings pass).

    Example: edi check --carrier colonial --no-write
    """
    from edi.connection_check import MARKS, run_checks
    from edi.output import render_table
    from edi.profiles import load_profile

    workspace = common.workspace(home)
    profile = load_profile(workspace, carrier)
    checks = run_checks(
        workspace, profile, write=not no_write, send_alerts=alerts, now=common.now()
    )
    failed = [c for c in checks if c.failed]
    if as_json:
        print(
            json.dumps(
                {"carrier": carrier, "ok": not failed, "checks": [c.as_dict() for c in checks]},
                indent=2,
            )
        )
    else:
        render_table(
            common.out,
            common.err,
            f"edi check {carrier}",
            ("", "check", "result", "detail", "hint"),
            [(MARKS[c.status], c.name, c.status, c.detail, c.hint) for c in checks],
        )
        verdict = f"{len(failed)} check(s) failed" if failed else "all checks passed"
        common.err.print(f"{carrier}: {verdict}", highlight=False)
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("check")(check_command)
