"""`edi`: parse → one pipeline call → the exit-code table (0 ok, 1 job failed, 2 usage/config).

Heavy imports (pyx12, paramiko, gnupg, httpx) happen inside the commands that need them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from typer import _click as click  # typer 0.29 bundles its own click: its errors are these

from edi.errors import EdiError, UsageError
from edi.findings import Finding
from edi.workspace import Workspace

app = typer.Typer(
    help="PlanSource coverages → validated X12 834 files → PGP → SFTP, with a delivery log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
carriers_app = typer.Typer(help="Carrier profiles (carriers/*.toml).", no_args_is_help=True)
app.add_typer(carriers_app, name="carriers")


def _flags_without_type_label() -> None:
    """typer 0.29's help prints `<bool>` beside every flag; a flag takes no value, so show none."""
    option_class: Any = getattr(typer.core, "TyperOption", None)
    original = getattr(option_class, "display_type_rich", None)
    if original is None or getattr(original, "_edi_patched", False):
        return

    def display_type_rich(self: Any, ctx: Any) -> str | None:
        return None if getattr(self, "is_flag", False) else original(self, ctx)

    display_type_rich._edi_patched = True  # type: ignore[attr-defined]
    option_class.display_type_rich = display_type_rich


_flags_without_type_label()

# Plain lines never wrap: a pipe or a log gets each fact on one line.
out = Console(soft_wrap=True)
err = Console(stderr=True)
STATE: dict[str, Any] = {"debug": False, "home": None}

HomeOption = Annotated[
    Path | None, typer.Option("--home", help="Workspace directory (default: $EDI_HOME or .)")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def now() -> datetime:
    """The one clock of the CLI; `--now` pins it for reproducible files (golden samples)."""
    pinned: datetime | None = STATE.get("now")
    return pinned or datetime.now(UTC)


def parse_day(text: str | None, option: str) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError("bad-date", f"{option} must be YYYY-MM-DD") from None


def file_type_option(text: str | None) -> Any:
    if text is not None and text not in ("full", "changes", "audit"):
        raise UsageError("bad-file-type", "--type must be full, changes or audit")
    return text


def guard_override(allow: bool, reason: str | None) -> bool:
    if allow and not (reason and reason.strip()):
        raise UsageError("reason-required", "--allow-mass-termination needs --reason '...'")
    return allow


def workspace(home: Path | None) -> Workspace:
    return Workspace.open(home or STATE["home"], must_exist=True)


def _version(value: bool) -> None:
    if value:
        from edi import __version__

        print(f"edi {__version__}")
        raise typer.Exit(0)


@app.callback()
def main_options(
    home: HomeOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
    pinned_now: Annotated[
        str | None, typer.Option("--now", hidden=True, help="ISO datetime to use as now.")
    ] = None,
) -> None:
    STATE["debug"] = debug
    STATE["home"] = home
    if pinned_now is not None:
        try:
            STATE["now"] = datetime.fromisoformat(pinned_now).astimezone(UTC)
        except ValueError:
            raise UsageError("bad-now", "--now must be an ISO datetime") from None


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


SUMMARY_KEYS = (
    "members",
    "subscribers",
    "dependents",
    "additions",
    "changes",
    "terminations",
    "coverage_lines",
    "elections_ended",
    "declines_skipped",
    "declines_sent",
    "future_coverages",
    "test_employees_skipped",
    "segments",
)


def print_summary(summary: dict[str, Any]) -> None:
    """A generate/run summary on stderr (stdout carries the file's path)."""
    from edi.output import render_table

    keys = [*SUMMARY_KEYS]
    for extra in ("disappearances", "reinstatements"):
        if extra in summary:
            keys.insert(keys.index("terminations") + 1, extra)
    rows: list[tuple[str, object]] = [(k.replace("_", " "), summary[k]) for k in keys]
    rows += [(f"skipped: {reason}", count) for reason, count in summary.get("skipped", {}).items()]
    if summary.get("held"):
        rows.append(("held subscribers (quarantine)", summary["held_subscribers"]))
        rows.append(("held member loops", summary["held_members"]))
    rows += [(f"warning: {group['code']}", group["count"]) for group in summary.get("warnings", [])]
    render_table(
        err,
        err,
        f"{summary['carrier']}: {summary['file_type']} 834, ISA13 {summary['isa13']}",
        ("", "count"),
        rows,
        right=("count",),
    )


def print_rule_findings(summary: dict[str, Any]) -> None:
    """Held families with their findings' ids, then warnings grouped by code (first ids)."""
    for held in summary.get("held", []):
        codes = ", ".join(sorted({f["code"] for f in held["findings"]}))
        err.print(
            f"[yellow]held:[/] subscriber id={escape(held['subscriber_id'])}: {escape(codes)}",
            soft_wrap=True,
            highlight=False,
        )
        for finding in held["findings"]:
            ids = [
                f"{name.replace('_id', '')} id={finding[name]}"
                for name in ("dependent_id", "coverage_id")
                if finding[name]
            ]
            err.print(
                f"  [{finding['code']}] {finding['severity']} {', '.join(ids)}",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
    for group in summary.get("warnings", []):
        first = ", ".join(
            "/".join(
                f"{name.replace('_id', '')} id={f[name]}"
                for name in ("subscriber_id", "dependent_id", "coverage_id")
                if f[name]
            )
            for f in group["first"][:5]
        )
        err.print(
            f"warning [{group['code']}] x{group['count']}: {group['message']} (first: {first})",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    unclaimed = summary.get("unclaimed_coverages", {})
    if unclaimed.get("count"):
        listed = ", ".join(unclaimed["coverage_ids"][:20])
        more = unclaimed["count"] - min(20, len(unclaimed["coverage_ids"]))
        err.print(
            f"unclaimed coverages (no profile claims their lookup code): {unclaimed['count']}: "
            f"coverage ids {listed}" + (f" and {more} more" if more > 0 else ""),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def generate(
    carrier: Annotated[str, typer.Option("--carrier", "-c", help="Carrier profile name.")],
    source: Annotated[Path | None, typer.Option(help="PlanSource export directory.")] = None,
    out_dir: Annotated[Path | None, typer.Option("--out", help="Output directory.")] = None,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="YYYY-MM-DD (default today).")
    ] = None,
    file_type: Annotated[
        str | None, typer.Option("--type", help="full | changes | audit (default: profile)")
    ] = None,
    allow_mass_termination: Annotated[
        bool,
        typer.Option(
            "--allow-mass-termination", help="Pass the mass-termination guard (needs --reason)."
        ),
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why the guard may be passed.")] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Write one validated 834 for a carrier and print its path."""
    from rich.progress import Progress

    from edi.pipeline import generate as run_generate

    ws = workspace(home)
    with Progress(console=err, transient=True, disable=as_json or not err.is_terminal) as bar:
        task = bar.add_task(f"mapping {carrier}", total=None)
        result = run_generate(
            ws,
            carrier,
            now=now(),
            as_of=parse_day(as_of, "--as-of"),
            source=source,
            out_dir=out_dir,
            file_type=file_type_option(file_type),
            allow_mass_termination=guard_override(allow_mass_termination, reason),
            reason=reason,
            progress=lambda done, total: bar.update(
                task,
                completed=done,
                total=total,
                # Mapping is done; writing and pyx12's validation come next (no bar stuck at
                # 100 % with no word of what is happening).
                description=f"writing and validating {carrier}" if done >= total else None,
            ),
        )
    summary = result.summary()
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    if result.sample_data:
        err.print(
            f"[yellow]Using SAMPLE PlanSource data from {result.source}[/] (edi.toml sample_data)"
        )
    print_summary(summary)
    print_rule_findings(summary)
    for line in _warning_lines(result.report.findings):
        err.print(f"[yellow]warning:[/] {escape(line)}")
    print(result.path)


def _warning_lines(findings: list[Finding]) -> list[str]:
    """Warnings grouped by code: a count and the first few record ids (no PHI)."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for finding in findings:
        ids = finding.dependent_id and f"dependent id={finding.dependent_id}"
        grouped.setdefault((finding.code, finding.ref), []).append(
            ids or f"subscriber id={finding.subscriber_id}"
        )
    return [
        f"{code} ({ref}) x{len(ids)}: {', '.join(ids[:5])}{' ...' if len(ids) > 5 else ''}"
        for (code, ref), ids in grouped.items()
    ]


@app.command()
def validate(
    file: Annotated[Path, typer.Argument(help="An 834 file.")],
    carrier: Annotated[
        str | None, typer.Option("--carrier", "-c", help="Also apply this profile's rules.")
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Validate an 834 with pyx12 and (with --carrier) the profile's rules and business edits;
    exit 0 only if valid (business-edit warnings are listed and do not invalidate).

    Findings are grouped by code with a count, the first segments and member ids, the decisive
    ones (envelope, partner ids) first.

    Example: edi validate out/colonial/FILE.834 --carrier colonial
    """
    from edi.finding_groups import group_findings
    from edi.profiles import load_profile
    from edi.validate import business_findings, validate_file

    if not file.is_file():
        raise UsageError("file-missing", f"{file} does not exist")
    ws = workspace(home) if carrier else None
    profile = load_profile(ws, carrier) if ws is not None and carrier else None
    size_mb = file.stat().st_size / 1e6
    with (
        err.status(
            f"validating {file.name} ({size_mb:.1f} MB) with pyx12"
            + (f" and profile {carrier}" if carrier else ""),
            spinner="dots",
        )
        if err.is_terminal and not as_json
        else _nothing()
    ):
        report = validate_file(file, profile)
        # Another carrier's file (ISA06/08 are not this profile's): its business edits would
        # only bury the one finding that matters.
        if profile is not None and not any(f.code == "profile-isa-ids" for f in report.findings):
            try:
                errors, warnings = business_findings(file, profile)
            except EdiError:
                errors, warnings = [], []  # a file that cannot be read is already a finding
            report.findings.extend(errors)
            report.warnings.extend(warnings)
    groups = group_findings(report.findings, file)
    hint = _partner_hint(ws, report.findings, carrier)
    if as_json:
        document = report.as_dict()
        document["groups"] = [g.as_dict() for g in groups]
        if hint:
            document["hint"] = hint
        print(json.dumps(document, indent=2))
        if not report.valid:
            raise typer.Exit(1)
        return
    for finding in report.warnings:
        out.print(f"warning: {finding.line()}", markup=False, highlight=False)
    if report.valid:
        out.print(f"[green]valid[/]: {file}")
    else:
        for group in groups:
            out.print(group.line(), markup=False, highlight=False)
        err.print(
            f"[red]invalid[/]: {escape(str(file))}: {len(report.findings)} finding(s) in "
            f"{len(groups)} group(s)",
            highlight=False,
            soft_wrap=True,
        )
        if hint:
            err.print(f"[dim]hint: {escape(hint)}[/]", highlight=False, soft_wrap=True)
    if not report.valid:
        raise typer.Exit(1)


def _nothing() -> Any:
    from contextlib import nullcontext

    return nullcontext()


def _partner_hint(ws: Workspace | None, findings: list[Any], carrier: str | None) -> str:
    """When ISA06/ISA08 are another profile's, say which: the usual cause is a wrong --carrier."""
    mismatch = next((f for f in findings if f.code == "profile-isa-ids"), None)
    if ws is None or mismatch is None:
        return ""
    from edi.profiles import load_profile, profile_names

    ids = mismatch.message.split(" are ", 1)[1].split(",", 1)[0]
    for name in profile_names(ws):
        if name == carrier:
            continue
        try:
            other = load_profile(ws, name).interchange
        except EdiError:
            continue
        if f"{other.sender_id}/{other.receiver_id}" == ids:
            return (
                f"the file's ISA06/ISA08 belong to profile {name!r}: did you mean --carrier {name}?"
            )
    return ""


# Stage modules that bring their own commands; each exposes `register(app)`.
COMMAND_MODULES = (
    "edi.cli_plansource",
    "edi.cli_delivery",
    "edi.cli_changes",
    "edi.cli_schedules",
    "edi.cli_console",
    "edi.cli_reconcile",
    "edi.cli_store",
    "edi.cli_init",
    "edi.cli_inspect",
    "edi.cli_check",
)


def _register_optional_commands() -> None:
    import importlib

    if STATE.get("registered"):
        return
    STATE["registered"] = True
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.register(app)


def report_error(error: EdiError, shown: int = 20) -> None:
    """One line per fact, never wrapped: people and monitors grep these."""

    def say(text: str, markup: bool = True) -> None:
        err.print(text, soft_wrap=True, highlight=False, markup=markup)

    label = "[yellow]note[/]" if error.exit_code == 0 else "[red]error[/]"
    say(f"{label} {escape(f'[{error.code}]')} {escape(error.message)}")
    for line in error.details[:shown]:
        say(f"  {line}", markup=False)
    if len(error.details) > shown:
        say(f"  … and {len(error.details) - shown} more")
    if error.hint:
        say(f"[dim]hint: {escape(error.hint)}[/]")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (main() may run many times in one process)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def _show_warnings() -> None:
    """The pipeline's warnings (e.g. no alert channel) reach the operator on stderr."""
    logger = logging.getLogger("edi")
    if not logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def _try_help(ctx: click.Context | None) -> str:
    path = ctx.command_path if ctx is not None else "edi"
    return f"Try '{path} --help' for help."


def report_usage(usage: click.exceptions.UsageError) -> None:
    """One line saying what is wrong, one saying where help is; never a traceback."""
    message = usage.format_message().strip().replace("\n", " ")
    param_name = getattr(getattr(usage, "param", None), "name", "")
    if isinstance(usage, click.exceptions.MissingParameter) and param_name == "carrier":
        message += _known_carriers()
    err.print(f"[red]error:[/] {escape(message)}", soft_wrap=True, highlight=False)
    err.print(f"[dim]{escape(_try_help(usage.ctx))}[/]", soft_wrap=True, highlight=False)


def _known_carriers() -> str:
    try:
        from edi.profiles import profile_names

        names = profile_names(Workspace.open(STATE.get("home")))
    except EdiError:
        return ""
    return f" (carriers here: {', '.join(names)})" if names else ""


def main(argv: list[str] | None = None) -> None:
    _register_optional_commands()
    _show_warnings()
    try:
        returned = app(args=argv, prog_name="edi", standalone_mode=False)
    except EdiError as error:
        if STATE["debug"]:
            err.print_exception()
        report_error(error)
        sys.exit(error.exit_code)
    except (OSError, sqlite3.Error) as failure:
        # Commands outside a run (log, status, baseline) meet broken state too: one line.
        from edi.pipeline import unexpected_failure

        if STATE["debug"]:
            err.print_exception()
        report_error(unexpected_failure(failure))
        sys.exit(1)
    except click.exceptions.NoArgsIsHelpError as bare:
        # A bare `edi` or `edi log`: the help (typer's rich help prints itself) and exit 2.
        if bare.format_message().strip():
            err.print(bare.format_message(), markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except click.exceptions.UsageError as usage:
        report_usage(usage)
        sys.exit(2)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except typer.Abort:
        err.print("aborted")
        sys.exit(1)
    except click.ClickException as failure:
        err.print(f"[red]error:[/] {escape(failure.format_message())}", highlight=False)
        sys.exit(2)
    # Without standalone mode click hands back `typer.Exit` codes instead of exiting.
    sys.exit(returned if isinstance(returned, int) else 0)
