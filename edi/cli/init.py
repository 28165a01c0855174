"""`edi init DIR`: the one command that makes a workspace rather than needing one."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from edi.cli import common


def init_command(
    directory: Annotated[Path, typer.Argument(help="The new workspace's folder.")],
) -> None:
    """Create a production workspace: commented edi.toml, carrier and schedule templates.

    Example: edi init /srv/edi && cd /srv/edi && edi carriers list
    """
    from edi.skeleton import create_workspace

    written = create_workspace(directory)
    err: Any = common.err
    for path in written:
        print(path)
    home = directory.resolve()
    err.print(
        f"Workspace created in {home}. Next:\n"
        f"  1. copy {home}/carriers/example.toml.sample to carriers/NAME.toml and fill it in\n"
        f"  2. edi --home {home} carriers show NAME\n"
        f"  3. edi --home {home} check --carrier NAME\n"
        f"  4. edi --home {home} pull   (PlanSource → state/snapshots/)",
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    app.command("init")(init_command)
