"""`edi carriers list|show`: the workspace's carrier profiles."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from edi.cli.common import HomeOption, JsonOption, err, out, workspace

carriers_app = typer.Typer(help="Carrier profiles (carriers/*.toml).", no_args_is_help=True)


@carriers_app.command("list")
def carriers_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """The carrier profiles in this workspace, with their plans."""
    from edi.profiles import load_profile, profile_names

    ws = workspace(home)
    profiles = [load_profile(ws, name) for name in profile_names(ws)]
    if as_json:
        rows = [
            {
                "name": p.name,
                "display_name": p.display_name,
                "claims": p.claims,
                "plans": sorted(p.plans),
                "usage": p.interchange.usage,
            }
            for p in profiles
        ]
        print(json.dumps(rows, indent=2))
        return
    from edi.output import render_table

    render_table(
        out,
        err,
        f"Carrier profiles in {ws.carriers_dir}",
        ("name", "carrier", "claims", "plans", "usage", "file type"),
        [
            (
                p.name,
                p.display_name,
                ", ".join(p.claims),
                len(p.plans),
                p.interchange.usage,
                str((p.changes or {}).get("file_type", "full")),
            )
            for p in profiles
        ],
    )


@carriers_app.command("show")
def carriers_show(
    name: Annotated[str, typer.Argument(help="Profile name (carriers/NAME.toml).")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """One profile: its envelope ids and every plan it maps."""
    from edi.profiles import load_profile

    profile = load_profile(workspace(home), name)
    if as_json:
        print(profile.model_dump_json(indent=2, by_alias=True))
        return
    out.print(
        f"[bold]{profile.display_name}[/] ({profile.name}) claims {', '.join(profile.claims)}"
    )
    i = profile.interchange
    out.print(
        f"ISA {i.sender_qualifier}:{i.sender_id} → {i.receiver_qualifier}:{i.receiver_id}, "
        f"usage {i.usage}, TA1 {'requested' if i.ack_requested else 'not requested'}"
    )
    out.print(
        f"REF*0F from {profile.members.identifier}; PlanSource termination_date is the "
        f"{profile.members.termination_date_is.replace('_', ' ')}; "
        f"declines: {profile.declines.send}"
    )
    from edi.output import render_table

    render_table(
        out,
        err,
        "Plans",
        ("lookup code", "HD03", "HD04", "HD05", "2300 REF"),
        [
            (
                code,
                plan.insurance_line,
                plan.plan_code,
                plan.coverage_level or "by level",
                ", ".join(f"{r.qualifier}*{r.value}" for r in plan.refs),
            )
            for code, plan in sorted(profile.plans.items())
        ],
    )


def register(app: typer.Typer) -> None:
    app.add_typer(carriers_app, name="carriers")
