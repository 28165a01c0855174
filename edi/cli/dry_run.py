"""The output of `edi run --dry-run` (the option lives on `edi run`)."""

from __future__ import annotations

import json
from pathlib import Path

from edi.cli import common
from edi.cli.summary import print_summary


def dry_run_command(
    carrier: str,
    source: Path | None,
    as_of: str | None,
    file_type: str | None,
    allow_mass_termination: bool,
    reason: str | None,
    home: Path | None,
    as_json: bool,
) -> None:
    from edi.dry_run import dry_run

    result = dry_run(
        common.workspace(home),
        carrier,
        now=common.now(),
        as_of=common.parse_day(as_of, "--as-of"),
        source=source,
        file_type=common.file_type_option(file_type),
        allow_mass_termination=common.guard_override(allow_mass_termination, reason),
        reason=reason,
    )
    summary = result.summary()
    if as_json:
        print(json.dumps(summary, indent=2, default=str))
        return
    generated = summary["generated"]
    print_summary(generated)
    say = common.err.print
    say(
        f"[yellow]dry run[/]: {result.file_name} ({generated['file_type']}, ISA13 "
        f"{generated['isa13']} would be used; {generated['members']} members, "
        f"{generated['coverage_lines']} coverage lines) is valid "
        f"({len(result.findings)} findings), encrypted {result.encrypted_size} bytes",
        highlight=False,
        soft_wrap=True,
    )
    if result.already_delivered_as:
        say(
            f"a real run would send nothing: this content was already delivered as "
            f"{result.already_delivered_as}",
            highlight=False,
            soft_wrap=True,
        )
    else:
        say(
            f"a real run would upload it to {result.remote_host} as {result.remote_path}",
            highlight=False,
            soft_wrap=True,
        )
    say("nothing was sent, logged or reserved (no control number consumed)", highlight=False)
    print(summary["remote_path"])
