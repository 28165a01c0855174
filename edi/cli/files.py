"""`edi generate` and `edi validate`: one file written, any file checked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from edi.cli.common import (
    HomeOption,
    JsonOption,
    err,
    file_type_option,
    guard_override,
    now,
    out,
    parse_day,
    workspace,
)
from edi.cli.summary import print_rule_findings, print_summary
from edi.errors import EdiError, UsageError

if TYPE_CHECKING:
    from edi.findings import Finding
    from edi.workspace import Workspace


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
            progress=GenerateProgress(bar, carrier),
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


class GenerateProgress:
    """Mapping counts subscribers; then the envelope is written and pyx12 validates the file,
    which on a large file takes as long again: a pulsing "writing and validating" line then,
    never a bar sitting at 100 % with no word of what is happening."""

    def __init__(self, bar: Any, carrier: str) -> None:
        self.bar, self.carrier = bar, carrier
        self.mapping = bar.add_task(f"mapping {carrier}", total=None)
        self.sealing: Any = None

    def __call__(self, done: int, total: int) -> None:
        if self.sealing is not None:
            return
        self.bar.update(self.mapping, completed=done, total=total)
        if done >= total:
            self.bar.update(self.mapping, visible=False)
            self.sealing = self.bar.add_task(f"writing and validating {self.carrier}", total=None)


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


def register(app: typer.Typer) -> None:
    app.command()(generate)
    app.command()(validate)
