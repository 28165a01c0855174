"""`edi serve`: the read-only operations console. starlette and uvicorn are imported inside the
command, so no other command loads them."""

from __future__ import annotations

import ipaddress
import os
from typing import Annotated

import typer

from edi.cli import common
from edi.cli.common import HomeOption
from edi.errors import ConfigError, UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8834
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def console_token(host: str, token_env: str | None) -> str | None:
    """The bearer token every request must carry: none on loopback without --token-env; any
    other host refuses to start without one."""
    if token_env is None:
        if not is_loopback(host):
            raise UsageError(
                "serve-needs-token",
                f"--host {host} is reachable from other machines: it needs --token-env NAME",
                hint="export EDI_CONSOLE_TOKEN=$(python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'); edi serve --host ... "
                "--token-env EDI_CONSOLE_TOKEN",
            )
        return None
    token = os.environ.get(token_env, "")
    if not token:
        raise ConfigError(
            "serve-token-missing",
            f"--token-env {token_env}: the environment variable {token_env} is not set",
            hint=f"export {token_env}=... (a long random string; it never goes in TOML)",
        )
    if len(token) < MIN_TOKEN_LENGTH:
        raise ConfigError(
            "serve-token-weak",
            f"the token in {token_env} is shorter than {MIN_TOKEN_LENGTH} characters",
            hint="python3 -c 'import secrets; print(secrets.token_urlsafe(32))'",
        )
    return token


def serve_command(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = DEFAULT_PORT,
    token_env: Annotated[
        str | None,
        typer.Option(
            "--token-env",
            help="Environment variable holding the bearer token (required off loopback).",
        ),
    ] = None,
    home: HomeOption = None,
) -> None:
    """Serve the read-only console: overview, deliveries, log, discrepancies, JSON under /api/."""
    token = console_token(host, token_env)
    workspace = common.workspace(home)
    if not workspace.home.is_dir():
        raise UsageError("workspace-missing", f"the workspace {workspace.home} does not exist")

    import uvicorn

    from edi.console.app import LOOPBACK_NAMES, create_app

    # Without a token only requests naming this machine are answered (DNS rebinding).
    names = tuple(sorted({*LOOPBACK_NAMES, f"[{host}]" if ":" in host else host.lower()}))
    app = create_app(workspace, token=token, allowed_hosts=None if token else names, now=common.now)
    shown = f"[{host}]" if ":" in host else host
    common.err.print(
        f"edi console (read-only) for {workspace.home} on http://{shown}:{port}/"
        + (f" (Authorization: Bearer ${token_env})" if token else ""),
        highlight=False,
        soft_wrap=True,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", server_header=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve_command)
