"""What every command module shares: the consoles, the clock, the workspace, the options, and
how an error is told. No command module imports the root (edi.cli.root) back."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from edi.errors import EdiError, UsageError

if TYPE_CHECKING:
    from edi.workspace import Workspace

# Plain lines never wrap: a pipe or a log gets each fact on one line (a remote path too).
out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
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
    from edi.workspace import Workspace

    return Workspace.open(home or STATE["home"], must_exist=True)


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


def point_at_the_demo(home: Path | None) -> None:
    """An empty log in a workspace whose demo ran elsewhere: say where the demo's log is."""
    ws = workspace(home)
    demo = ws.home / "state" / "demo"
    if (demo / "edi.toml").is_file() or (demo / "carriers").is_dir():
        err.print(
            f"hint: `bash scripts/demo` keeps its own workspace: edi --home {escape(str(demo))} "
            "log list (or status)",
            highlight=False,
            soft_wrap=True,
        )
