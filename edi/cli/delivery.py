"""`edi run`, `edi send`, `edi log ...` and `edi demo`."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from edi.cli import common
from edi.cli.common import HomeOption, JsonOption

log_app = typer.Typer(
    help="The compliance delivery log (append-only, hash-chained, signed).", no_args_is_help=True
)

COLUMNS = (
    "seq",
    "recorded_at",
    "event",
    "carrier",
    "outcome",
    "isa13",
    "member_count",
    "attempt",
    "error_code",
)


def _day(text: str | None, option: str, end: bool = False) -> datetime | None:
    parsed = common.parse_day(text, option)
    if parsed is None:
        return None
    moment = datetime.combine(parsed, datetime.max.time() if end else datetime.min.time())
    return moment.replace(tzinfo=UTC)


def run_command(
    carrier: Annotated[str, typer.Option("--carrier", "-c", help="Carrier profile name.")],
    source: Annotated[Path | None, typer.Option(help="PlanSource export directory.")] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="YYYY-MM-DD.")] = None,
    file_type: Annotated[
        str | None, typer.Option("--type", help="changes | full | audit (default: profile)")
    ] = None,
    allow_mass_termination: Annotated[
        bool,
        typer.Option(
            "--allow-mass-termination", help="Pass the mass-termination guard (needs --reason)."
        ),
    ] = False,
    reason: Annotated[
        str | None, typer.Option(help="Why the guard may be passed (logged).")
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Generate, validate and encrypt, show what would be sent; send, log and "
            "reserve nothing.",
        ),
    ] = False,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Generate, validate, encrypt, deliver and log; re-running sends nothing twice.

    Example: edi run --carrier colonial --dry-run
    """
    from edi.pipeline import run

    if dry_run:
        from edi.cli.dry_run import dry_run_command

        dry_run_command(
            carrier, source, as_of, file_type, allow_mass_termination, reason, home, as_json
        )
        return
    outcome = run(
        common.workspace(home),
        carrier,
        now=common.now(),
        as_of=common.parse_day(as_of, "--as-of"),
        source=source,
        file_type=common.file_type_option(file_type),
        allow_mass_termination=common.guard_override(allow_mass_termination, reason),
        reason=reason,
    )
    _report(outcome.summary(), as_json)


def send_command(
    file: Annotated[Path, typer.Argument(help="An 834 file to deliver.")],
    carrier: Annotated[str, typer.Option("--carrier", "-c", help="Carrier profile name.")],
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Deliver an existing 834 (validated first; never sent when invalid)."""
    from edi.errors import UsageError
    from edi.pipeline import send

    if not file.is_file():
        raise UsageError("file-missing", f"{file} does not exist")
    _report(send(common.workspace(home), carrier, file, now=common.now()).summary(), as_json)


def _report(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    err = common.err
    if summary["outcome"] == "already-delivered":
        err.print(
            f"[yellow]{summary['carrier']}: already delivered[/] as {summary['remote_path']}; "
            "nothing was sent (log entry %s)" % summary["log_seq"]
        )
    else:
        err.print(
            f"[green]{summary['carrier']}: delivered[/] {summary['file_id']} → "
            f"{summary['remote_path']} in {summary['attempts']} attempt(s), "
            f"ISA13 {summary['isa13']}, {summary['member_count']} members (log entry "
            f"{summary['log_seq']})"
        )
    print(summary["remote_path"])


def _log(home: Path | None) -> Any:
    from edi.delivery_config import delivery_log

    return delivery_log(common.workspace(home))


@contextmanager
def _log_errors() -> Iterator[None]:
    """A log, key or witness that cannot be used is one clear line and exit 1, no traceback."""
    from edi.errors import DeliveryLogError
    from transmit import LogError

    try:
        yield
    except LogError as error:
        raise DeliveryLogError(error.code, error.message, hint=error.hint) from error


def _known_carrier_or_logged(home: Path | None, carrier: str | None, entries: list[Any]) -> None:
    """A carrier filter that matches nothing is checked against the profiles, so a misspelt
    name says "did you mean" instead of "no entries" (a retired carrier's entries still show)."""
    if carrier is not None and not entries:
        from edi.profiles import profile_path

        profile_path(common.workspace(home), carrier)


@log_app.command("list")
def log_list(
    carrier: Annotated[
        str | None, typer.Option("--carrier", "-c", help="Only this carrier.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    until: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    outcome: Annotated[str | None, typer.Option(help="delivered, failed, ...")] = None,
    event: Annotated[str | None, typer.Option(help="delivery, attempt, ...")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Entries, filtered by carrier, date range, outcome or event."""
    with _log_errors():
        entries = _log(home).entries(
            carrier=carrier,
            since=_day(since, "--since"),
            until=_day(until, "--until", end=True),
            outcome=outcome,
            event=event,
        )
    _known_carrier_or_logged(home, carrier, entries)
    if as_json:
        print(json.dumps([{**e.body, "entry_hash": e.entry_hash} for e in entries], indent=2))
        return
    from edi.output import local_time, render_table

    def cell(entry: Any, column: str) -> object:
        if column == "seq":
            return entry.seq
        if column == "recorded_at":
            return local_time(entry.get(column))
        return entry.get(column, "")

    render_table(
        common.out,
        common.err,
        "Delivery log",
        COLUMNS,
        [[cell(entry, c) for c in COLUMNS] for entry in entries],
        right=("seq", "member_count", "attempt"),
    )
    if not entries:
        common.point_at_the_demo(home)


@log_app.command("show")
def log_show(
    seq: Annotated[int, typer.Argument(help="Entry number (the seq column).")],
    home: HomeOption = None,
) -> None:
    """One entry with every field and its hashes."""
    from edi.errors import UsageError

    with _log_errors():
        entry = _log(home).get(seq)
    if entry is None:
        raise UsageError("log-no-entry", f"the delivery log has no entry {seq}")
    print(
        json.dumps(
            {**entry.body, "prev_hash": entry.prev_hash, "entry_hash": entry.entry_hash},
            indent=2,
            sort_keys=True,
        )
    )


@log_app.command("head")
def log_head(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """The current signed head (COUNT:HASH and its signature) for an auditor to record."""
    from edi.errors import DeliveryLogError
    from edi.output import local_time

    with _log_errors():
        head = _log(home).head()
    if head is None:
        raise DeliveryLogError(
            "log-no-head",
            "the delivery log has no signed checkpoint yet",
            hint="The first delivery (or any logged run) signs one.",
        )
    if as_json:
        print(json.dumps(head.as_json(), indent=2))
        return
    print(head.text)
    err = common.err
    err.print(f"signature {head.signature}", soft_wrap=True, highlight=False)
    err.print(
        f"signed at {local_time(head.signed_at)} by key {head.key}; "
        f"previous checkpoint {head.prev}",
        soft_wrap=True,
        highlight=False,
    )


@log_app.command("verify")
def log_verify(
    head: Annotated[
        str | None,
        typer.Option("--head", help="A COUNT:HASH an auditor recorded from `edi log head`."),
    ] = None,
    public_key: Annotated[
        Path | None,
        typer.Option("--public-key", help="The auditor's copy of the public key (PEM)."),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check the entry chain, the checkpoint chain, every signature and the witness; exit 1 on
    any tampering (or an unreadable log)."""
    import transmit
    from edi.errors import UsageError

    try:
        auditor_head = transmit.parse_head(head) if head is not None else None
    except ValueError as exc:
        raise UsageError("bad-head", f"--head: {exc}") from None
    try:
        pinned = transmit.load_public_key(public_key) if public_key is not None else None
    except transmit.LogError as error:
        raise UsageError(error.code, f"--public-key: {error.message}") from None
    report = _log(home).verify(public_key=pinned, auditor_head=auditor_head)
    if as_json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "entries": report.entries,
                    "checkpoints": report.checkpoints,
                    "witnessed": report.witnessed,
                    "head": report.head.text if report.head else None,
                    "first_bad_entry": report.first_bad_seq,
                    "problem": report.problem,
                    "problems": list(report.problems),
                },
                indent=2,
            )
        )
    elif report.ok:
        witnessed = (
            f", witnessed to entry {report.witnessed}" if report.witnessed is not None else ""
        )
        pinned_text = " with the auditor's key" if pinned is not None else ""
        common.out.print(
            f"[green]intact[/]: {report.entries} entries, {report.checkpoints} signed "
            f"checkpoints verified{pinned_text}{witnessed}",
            soft_wrap=True,
        )
    else:
        where = f"first bad entry {report.first_bad_seq}: " if report.first_bad_seq else ""
        out = common.out
        out.print(f"[red]TAMPERED[/]: {where}{escape(report.problem)}", soft_wrap=True)
        for problem in report.problems[1:10]:
            out.print(f"  also: {escape(problem)}", soft_wrap=True)
    if not report.ok:
        raise typer.Exit(1)


@log_app.command("export")
def log_export(
    fmt: Annotated[str, typer.Option("--format", help="csv | json")] = "csv",
    carrier: Annotated[
        str | None, typer.Option("--carrier", "-c", help="Only this carrier.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    until: Annotated[str | None, typer.Option(help="YYYY-MM-DD")] = None,
    home: HomeOption = None,
) -> None:
    """Write entries to stdout as CSV or JSON for auditors."""
    from edi.errors import UsageError

    if fmt not in ("csv", "json"):
        raise UsageError("bad-format", "--format must be csv or json")
    log = _log(home)
    with _log_errors():
        entries = log.entries(
            carrier=carrier, since=_day(since, "--since"), until=_day(until, "--until", end=True)
        )
    _known_carrier_or_logged(home, carrier, entries)
    (log.export_csv if fmt == "csv" else log.export_json)(sys.stdout, entries)


@log_app.command("report")
def log_report(
    html: Annotated[Path, typer.Option("--html", help="Where to write the page.")],
    carrier: Annotated[
        str | None, typer.Option("--carrier", "-c", help="Only this carrier.")
    ] = None,
    since: Annotated[str | None, typer.Option(help="YYYY-MM-DD, first day included")] = None,
    until: Annotated[str | None, typer.Option(help="YYYY-MM-DD, last day included")] = None,
    home: HomeOption = None,
) -> None:
    """An HTML page auditors open without the tool: a summary per carrier (deliveries,
    failures, acks), every entry with labelled hashes, the chain verification.

    Example: edi log report --html report.html --since 2026-11-01 --until 2026-11-30
    """
    log = _log(home)
    start, end = _day(since, "--since"), _day(until, "--until", end=True)
    with _log_errors():
        entries = log.entries(carrier=carrier, since=start, until=end)
    _known_carrier_or_logged(home, carrier, entries)
    path = log.render_html(html, entries, log.verify(), common.now(), since=start, until=end)
    if not entries:
        common.err.print("no deliveries in this period; the page says so", highlight=False)
    print(path)


@log_app.command("public-key")
def log_public_key(home: HomeOption = None) -> None:
    """The Ed25519 public key that verifies the checkpoints (PEM)."""
    with _log_errors():
        print(_log(home).export_public_key(), end="")


def demo_command(
    workspace_dir: Annotated[
        Path, typer.Option("--workspace", help="Where the demo lives.")
    ] = Path("state/demo"),
    as_of: Annotated[
        str, typer.Option("--as-of", help="The sample data's as-of date.")
    ] = "2026-11-24",
    as_json: common.JsonOption = False,
) -> None:
    """The whole pipeline on embedded defaults: samples → 834s → PGP → loopback sshd → log.

    Example: edi demo --workspace /tmp/edi-demo
    """
    from edi.delivery_config import delivery_log
    from edi.demo import run_demo
    from edi.workspace import Workspace

    home = workspace_dir.resolve()
    outcomes = run_demo(
        common.workspace(None),
        home,
        as_of=common.parse_day(as_of, "--as-of") or date.min,
        now=common.now(),
        out=common.out,
        err=common.err,
        show_log=not as_json,
    )
    if as_json:
        report = delivery_log(Workspace.open(home)).verify()
        print(
            json.dumps(
                {
                    "workspace": str(home),
                    "deliveries": [outcome.summary() for outcome in outcomes],
                    "log": {
                        "ok": report.ok,
                        "entries": report.entries,
                        "checkpoints": report.checkpoints,
                    },
                },
                indent=2,
                default=str,
            )
        )


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("send")(send_command)
    app.add_typer(log_app, name="log")
    app.command("demo")(demo_command)
