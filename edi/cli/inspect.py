"""`edi show FILE`: an 834 inspector (envelope, then each member and its coverage lines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edi.cli import common


def show_command(
    file: Annotated[Path, typer.Argument(help="Any 005010X220A1 834 file.")],
    as_json: common.JsonOption = False,
    show_names: Annotated[
        bool, typer.Option("--show-names", help="Also show names and SSNs (your screen only).")
    ] = False,
) -> None:
    """Read an 834 back: sender, receiver, control numbers, test or production, file type, then
    each INS loop (REF*0F id, relationship, maintenance in words, reason, dates) and its
    coverage lines. Names and SSNs stay hidden unless --show-names.

    Example: edi show out/colonial/ACME_colonial_834_20261124_000000001.834 --json
    """
    from edi.errors import UsageError
    from edi.inspector import describe, inspect_file

    if not file.is_file():
        raise UsageError("file-missing", f"{file} does not exist")
    inspection = inspect_file(file, show_names=show_names)
    if as_json:
        print(json.dumps(inspection.as_dict(show_names), indent=2))
        return
    for line in describe(inspection, show_names=show_names):
        common.out.print(line, markup=False, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    app.command("show")(show_command)
