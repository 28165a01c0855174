"""The `edi` application: the root command, its options, the command groups assembled from
their modules, and the exit-code table (0 ok, 1 job failed, 2 usage/config).

Heavy imports (pydantic models, pyx12, paramiko, gnupg, httpx) happen inside the commands that
need them, so `edi --help` stays fast.
"""

from __future__ import annotations

import logging
import sqlite3
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer import _click as click  # typer 0.29 bundles its own click: its errors are these

from edi.cli.common import STATE, HomeOption, err, report_error
from edi.errors import EdiError, UsageError

app = typer.Typer(
    help="PlanSource coverages → validated X12 834 files → PGP → SFTP, with a delivery log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Plain help, like uv's and ruff's: rich's help formatter imports a Markdown parser and
    # more than doubles the time of `edi --help`.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


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
    STATE["now"] = None  # main() may run many times in one process: no pin outlives its call
    if pinned_now is not None:
        try:
            STATE["now"] = datetime.fromisoformat(pinned_now).astimezone(UTC)
        except ValueError:
            raise UsageError("bad-now", "--now must be an ISO datetime") from None


# One module per command group, each exposing `register(app)`; listed in help order.
COMMAND_MODULES = (
    "files",
    "carriers",
    "delivery",
    "changes",
    "plansource",
    "schedules",
    "reconcile",
    "store",
    "console",
    "init",
    "inspect",
    "check",
)


def _register_optional_commands() -> None:
    import importlib

    if STATE.get("registered"):
        return
    STATE["registered"] = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"edi.cli.{name}").register(app)


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


def _command_path(argv: list[str] | None) -> str:
    """`edi log list` for `edi --home x log list --since bad`: the commands named on the line."""
    command: Any = typer.main.get_command(app)
    words = ["edi"]
    for token in sys.argv[1:] if argv is None else argv:
        child = getattr(command, "commands", {}).get(token)
        if child is not None:
            command = child
            words.append(token)
    return " ".join(words)


def _known_carriers() -> str:
    try:
        from edi.profiles import profile_names
        from edi.workspace import Workspace

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
        if isinstance(error, UsageError):
            # A bad value the command checked itself is a usage error like click's own.
            err.print(
                f"[dim]Try '{escape(_command_path(argv))} --help' for help.[/]", soft_wrap=True
            )
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
