"""`edi reconcile`, `edi discrepancies list|show|resolve|ignore` and `edi roster fetch`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from edi.cli import common
from edi.cli.common import HomeOption, JsonOption

discrepancies_app = typer.Typer(
    help="Discrepancies found by reconciliation, and their resolution.", no_args_is_help=True
)
roster_app = typer.Typer(help="Carrier rosters (for reconciliation).", no_args_is_help=True)
NoteOption = Annotated[str, typer.Option("--note", help="Why (kept in the discrepancy's notes).")]


def _store(home: Path | None) -> Any:
    from edi import stores

    return stores.discrepancies(common.workspace(home))


def _rows(result: Any, show_names: bool) -> list[dict[str, str]]:
    rows = []
    for d in result.sorted_discrepancies():
        row = {
            "id": d.id,
            "kind": d.kind,
            "severity": d.severity,
            "status": result.statuses.get(d.id, "open"),
            "subscriber": d.subscriber_id or "",
            "member id": d.member_id,
            "dependent": d.dependent_id or "",
            "coverage": d.coverage_id or "",
            "field": d.field or "",
            "detail": d.detail,
        }
        if show_names:
            row["plansource value"] = d.ours or ""
            row["carrier value"] = d.theirs or ""
        rows.append(row)
    return rows


def write_html(path: Path, result: Any, rows: list[dict[str, str]], show_names: bool) -> None:
    from jinja2 import Environment, PackageLoader, select_autoescape

    from edi.reconcile import KINDS

    environment = Environment(loader=PackageLoader("edi"), autoescape=select_autoescape())
    page = environment.get_template("reconcile.html.j2").render(
        result=result,
        summary=result.summary(),
        kinds=KINDS,
        rows=rows,
        columns=list(rows[0]) if rows else [],
        show_names=show_names,
        warnings=result.roster.warnings if result.roster else [],
    )
    partial = path.with_name(f".{path.name}.part")
    partial.write_text(page)
    partial.replace(path)


def _print_result(result: Any, rows: list[dict[str, str]]) -> None:
    summary = result.summary()
    from edi.output import render_table

    render_table(
        common.out,
        common.err,
        f"{result.carrier}: reconciliation as of {result.as_of} "
        f"({result.roster_name}, {result.roster_format})",
        ("kind", "count"),
        list(summary.items()),
        right=("count",),
    )
    common.out.print(
        f"PlanSource members: {result.ours_members}; roster members: {result.theirs_members}; "
        f"new: {len(result.new)}; resolved: {len(result.resolved)}; "
        f"open errors: {result.open_errors()}",
        highlight=False,
    )
    held = result.mapping.quarantined if result.mapping else []
    if held:
        common.err.print(
            f"[yellow]{len(held)} PlanSource subscriber(s) held (quarantined)[/]: not on "
            "PlanSource's side, so the carrier's records of them show as unexpected",
            highlight=False,
        )
    for row in rows:
        ids = " ".join(
            f"{name}={row[name]}"
            for name in ("subscriber", "member id", "dependent", "coverage", "field")
            if row[name]
        ).replace("member id=", "member_id=")
        text = (
            f"{row['id']} {row['kind']} [{row['severity']}, {row['status']}] {ids}: {row['detail']}"
        )
        if row.get("plansource value") or row.get("carrier value"):
            ours, theirs = row["plansource value"] or "-", row["carrier value"] or "-"
            text += f" (PlanSource: {ours}; carrier: {theirs})"
        common.out.print(escape(text), soft_wrap=True, highlight=False)


def reconcile_command(
    roster: Annotated[Path, typer.Argument(help="The carrier's roster: an 834 or a CSV census.")],
    carrier: Annotated[str, typer.Option("--carrier", "-c", help="Carrier profile name.")],
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD.")] = None,
    source: Annotated[Path | None, typer.Option(help="PlanSource export directory.")] = None,
    html: Annotated[Path | None, typer.Option(help="Also write an HTML report.")] = None,
    show_names: Annotated[
        bool, typer.Option("--show-names", help="Show the differing values (your screen only).")
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Compare a carrier's roster with PlanSource; exit 1 while open error discrepancies exist."""
    from edi.reconcile import run_reconciliation

    result = run_reconciliation(
        common.workspace(home),
        carrier,
        roster,
        now=common.now(),
        as_of=common.parse_day(as_of, "--as-of"),
        source=source,
    )
    rows = _rows(result, show_names)
    for warning in result.roster.warnings if result.roster else []:
        common.err.print(f"[yellow]roster warning:[/] {escape(warning)}", highlight=False)
    if html is not None:
        write_html(html, result, rows, show_names)
    if as_json:
        print(json.dumps(result.as_json(), indent=2))
    else:
        _print_result(result, rows)
        if html is not None:
            print(html)
    if result.open_errors():
        raise typer.Exit(1)


@discrepancies_app.command("list")
def discrepancies_list(
    carrier: Annotated[
        str | None, typer.Option("--carrier", "-c", help="Only this carrier.")
    ] = None,
    status: Annotated[str, typer.Option(help="open | resolved | ignored | all")] = "open",
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Discrepancies by status (default: open)."""
    from edi.output import local_time

    rows = _store(home).select(carrier, status)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    if not rows:
        common.err.print(f"no {status} discrepancies" if status != "all" else "no discrepancies")
    for row in rows:
        ids = " ".join(
            f"{name}={row[name]}"
            for name in ("subscriber_id", "member_id", "dependent_id", "coverage_id", "field")
            if row[name]
        )
        seen = local_time(row["last_seen"])
        text = (
            f"{row['id']} {row['carrier']} {row['kind']} [{row['severity']}, {row['status']}] "
            f"{ids} last seen {seen}: {row['detail'] or ''}"
        )
        common.out.print(escape(text), soft_wrap=True, highlight=False)


@discrepancies_app.command("show")
def discrepancies_show(
    discrepancy_id: Annotated[str, typer.Argument(help="An id (or its first characters).")],
    home: HomeOption = None,
) -> None:
    """One discrepancy with its history of notes."""
    print(json.dumps(_store(home).get(discrepancy_id), indent=2))


def _set_status(discrepancy_id: str, status: str, note: str, home: Path | None) -> None:
    row = _store(home).set_status(discrepancy_id, status, note, common.now())
    common.err.print(f"{row['id']}: {status}")


@discrepancies_app.command("resolve")
def discrepancies_resolve(
    discrepancy_id: Annotated[str, typer.Argument(help="An id (or its first characters).")],
    note: NoteOption,
    home: HomeOption = None,
) -> None:
    """Mark a discrepancy resolved (it reopens if a later reconciliation finds it again)."""
    _set_status(discrepancy_id, "resolved", note, home)


@discrepancies_app.command("ignore")
def discrepancies_ignore(
    discrepancy_id: Annotated[str, typer.Argument(help="An id (or its first characters).")],
    note: NoteOption,
    home: HomeOption = None,
) -> None:
    """Ignore a discrepancy: it stays ignored while it persists and no longer fails reconcile."""
    _set_status(discrepancy_id, "ignored", note, home)


@roster_app.command("fetch")
def roster_fetch(
    carrier: Annotated[
        str | None, typer.Option("--carrier", "-c", help="Only this carrier.")
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD.")] = None,
    source: Annotated[Path | None, typer.Option(help="PlanSource export directory.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download new rosters from the carrier's outbound folder, decrypt and reconcile them."""
    from edi.profiles import load_profile, profile_names
    from edi.reconcile import fetch_rosters

    ws = common.workspace(home)
    carriers = (
        [carrier]
        if carrier
        else [name for name in profile_names(ws) if load_profile(ws, name).roster is not None]
    )
    report: list[dict[str, Any]] = []
    failed = False
    for name in carriers:
        for item in fetch_rosters(
            ws, name, now=common.now(), as_of=common.parse_day(as_of, "--as-of"), source=source
        ):
            entry: dict[str, Any] = {"carrier": name, "remote_name": item.remote_name}
            entry["archived"] = str(item.archived)
            if item.reconciliation is not None:
                result = item.reconciliation
                entry.update(
                    summary=result.summary(),
                    new=len(result.new),
                    resolved=len(result.resolved),
                    open_errors=result.open_errors(),
                )
                failed = failed or result.open_errors() > 0
            else:
                entry["error"] = item.error
                failed = True
            report.append(entry)
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        if not report:
            common.err.print("no new rosters")
        for entry in report:
            outcome = entry.get("error") or (
                f"{sum(entry['summary'].values())} discrepancies, {entry['new']} new, "
                f"{entry['open_errors']} open errors"
            )
            common.out.print(
                f"{entry['carrier']}: {escape(entry['remote_name'])}: {escape(outcome)}",
                highlight=False,
            )
    if failed:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile_command)
    app.add_typer(discrepancies_app, name="discrepancies")
    app.add_typer(roster_app, name="roster")
