"""`edi diff` (preview a change file) and `edi baseline show|reset`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from edi.cli import common
from edi.cli.common import HomeOption

baseline_app = typer.Typer(help="The last delivered state per carrier.", no_args_is_help=True)
CarrierOption = Annotated[str, typer.Option("--carrier", "-c", help="Carrier profile name.")]


def _rows(changes: Any, show_names: bool) -> list[dict[str, str]]:
    rows = []
    for change in changes.changes:
        member = change.member
        row = {
            "kind": change.kind,
            "member": member.ref,
            "INS03": member.maintenance,
            "INS04": member.reason or "",
            "lines": ", ".join(
                f"HD{line.maintenance} {line.plan_code}" for line in member.coverages
            ),
            "changed": "; ".join(change.changed_fields),
        }
        if show_names:
            row["name"] = f"{member.person.last_name}, {member.person.first_name}"
        rows.append(row)
    return rows


def diff_command(
    carrier: CarrierOption,
    source: Annotated[Path | None, typer.Option(help="PlanSource export directory.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD.")] = None,
    html: Annotated[
        Path | None, typer.Option(help="Also write the preview as an HTML page.")
    ] = None,
    show_names: Annotated[
        bool, typer.Option("--show-names", help="Show names (your screen only).")
    ] = False,
    home: HomeOption = None,
    as_json: common.JsonOption = False,
) -> None:
    """Preview the next change file: adds, changes, terms, reinstatements, disappearances."""
    from edi.pipeline import preview

    changes = preview(
        common.workspace(home),
        carrier,
        now=common.now(),
        as_of=common.parse_day(as_of, "--as-of"),
        source=source,
    )
    summary = {key: value for key, value in changes.summary().items() if key != "members"}
    rows = _rows(changes, show_names)
    if html is not None:
        _write_html(html, carrier, summary, rows)
    if as_json:
        print(json.dumps({"carrier": carrier, **summary, "members": rows}, indent=2))
        return
    if not changes.has_baseline:
        common.err.print(
            f"{carrier}: no baseline yet; the first file is a full file of every member"
        )
    from edi.output import render_table

    render_table(
        common.out,
        common.err,
        f"{carrier}: changes since the last delivered file",
        list(rows[0]) if rows else ["kind", "member"],
        [list(row.values()) for row in rows],
        empty="no changes",
    )
    common.out.print(", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in summary.items()))
    if html is not None:
        print(html)


def _write_html(
    path: Path, carrier: str, summary: dict[str, Any], rows: list[dict[str, str]]
) -> None:
    from jinja2 import Environment, PackageLoader, select_autoescape

    environment = Environment(loader=PackageLoader("edi"), autoescape=select_autoescape())
    page = environment.get_template("diff.html.j2").render(
        carrier=carrier, summary=summary, rows=rows
    )
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(page)
    partial.replace(path)


@baseline_app.command("show")
def baseline_show(carrier: CarrierOption, home: HomeOption = None) -> None:
    """Counts and history of a carrier's baseline (no member data)."""
    from edi.pipeline import baselines
    from edi.profiles import profile_path

    workspace = common.workspace(home)
    profile_path(workspace, carrier)  # a misspelt carrier is an error, not an empty baseline
    print(json.dumps(baselines(workspace).show(carrier), indent=2))


@baseline_app.command("reset")
def baseline_reset(
    carrier: CarrierOption,
    reason: Annotated[str, typer.Option(help="Why (kept in the baseline history).")],
    home: HomeOption = None,
) -> None:
    """Forget what the carrier has; the next file is a full file of every member."""
    from edi.pipeline import baselines
    from edi.profiles import profile_path

    workspace = common.workspace(home)
    profile_path(workspace, carrier)
    removed = baselines(workspace).reset(carrier, reason, common.now())
    common.err.print(f"{carrier}: baseline of {removed} member(s) reset")


def register(app: typer.Typer) -> None:
    app.command("diff")(diff_command)
    app.add_typer(baseline_app, name="baseline")
