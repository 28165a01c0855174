"""`edi pull`, `edi snapshots list` and `edi sandbox plansource`.

The main CLI registers these (`register(app)`); errors are `edi.errors` classes that its one
handler turns into exit codes. httpx, uvicorn and starlette are imported inside the commands.
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from edi.cli import common
from edi.cli.common import HomeOption, JsonOption
from edi.errors import UsageError

if TYPE_CHECKING:
    from edi.plansource.pull import ProgressCallback, PullManifest
    from edi.workspace import PlanSourceSettings, Workspace

snapshots_app = typer.Typer(help="Pulled PlanSource snapshots (state/snapshots).")
sandbox_app = typer.Typer(help="Local stand-ins for outside services.")

PageOption = Annotated[str | None, typer.Option(metavar="ENDPOINT:PAGE")]

err = common.err
out = common.out


def _workspace(home: Path | None) -> Workspace:
    """The main CLI's `--home` (given before the command) applies when this one is absent."""
    return common.workspace(home)


def _now() -> datetime:
    return common.now()


def _since(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise UsageError("bad-date", "--since must be YYYY-MM-DD") from None


def plansource_settings(workspace: Workspace) -> PlanSourceSettings:
    """The [plansource] settings with `private_key_file` resolved against the workspace."""
    settings = workspace.settings.plansource
    if settings.private_key_file:
        key_file = str(workspace.path(settings.private_key_file))
        settings = settings.model_copy(update={"private_key_file": key_file})
    return settings


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler or service manager stopping us) unwinds like Ctrl-C, so the pull's
    own cleanup removes its unfinished folder instead of the process dying mid-write."""

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals to whoever owns them
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def _endpoint_bars(enabled: bool) -> Iterator[ProgressCallback]:
    """One rich progress bar per endpoint, added when its first page arrives."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    columns = (TextColumn("{task.description:<12}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=err, disable=not enabled) as bars:
        tasks: dict[str, Any] = {}

        def report(endpoint: str, done: int, total: int | None) -> None:
            if endpoint not in tasks:
                tasks[endpoint] = bars.add_task(endpoint, total=total)
            bars.update(tasks[endpoint], completed=done, total=total)

        yield report


def _print_summary(manifest: PullManifest) -> None:
    from edi.output import render_table

    render_table(
        err,
        err,
        f"PlanSource pull from {manifest.api_base}",
        ("endpoint", "records", "pages", "sha256"),
        [
            (
                summary.endpoint,
                summary.records,
                summary.pages,
                manifest.files.get(summary.file, "")[:12],
            )
            for summary in manifest.endpoints.values()
        ],
        right=("records", "pages"),
    )


def pull_command(
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help="Snapshot folder (default: state/snapshots/<UTC time>)."),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="YYYY-MM-DD: only records updated since (sent as updated_since); needs --out.",
        ),
    ] = None,
    home: HomeOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pull subscribers, dependents and coverages from PlanSource; print the snapshot path."""
    from edi.plansource.pull import new_snapshot_dir, pull

    workspace = _workspace(home)
    since_day = _since(since)
    if since_day is not None and out_dir is None:
        # An incremental pull holds only changed records: it must never become the default
        # source of a full file, so it is not published among the snapshots.
        raise UsageError(
            "pull-since-needs-out",
            "--since makes an incremental pull; give it its own folder with --out",
            hint="edi pull --out DIR --since YYYY-MM-DD",
        )
    target = out_dir or new_snapshot_dir(workspace.snapshots_dir, _now())
    settings = plansource_settings(workspace)
    bars = _endpoint_bars(enabled=not as_json and err.is_terminal)
    with _terminate_as_interrupt(), bars as report:
        manifest = pull(settings, target, since_day, report, now=_now)
    if as_json:
        print(json.dumps({"folder": str(manifest.folder), **manifest.model_dump(mode="json")}))
        return
    _print_summary(manifest)
    print(manifest.folder)


def _snapshot_rows(workspace: Workspace) -> tuple[list[PullManifest], int]:
    from edi.plansource.pull import MANIFEST, read_manifest

    folder = workspace.snapshots_dir
    if not folder.is_dir():
        return [], 0
    children = sorted(p for p in folder.iterdir() if p.is_dir())
    partial = sum(1 for p in children if p.name.startswith("."))
    complete = [p for p in children if not p.name.startswith(".") and (p / MANIFEST).exists()]
    return [read_manifest(p) for p in complete], partial


@snapshots_app.command("list")
def snapshots_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """Complete snapshots, oldest first; the newest is the default source for `edi generate`."""
    workspace = _workspace(home)
    manifests, partial = _snapshot_rows(workspace)
    newest = workspace.newest_snapshot()
    if as_json:
        rows = [
            {"folder": str(m.folder), "newest": m.folder == newest, **m.model_dump(mode="json")}
            for m in manifests
        ]
        print(json.dumps(rows, indent=2))
        return
    from edi.output import local_time, render_table

    render_table(
        out,
        err,
        f"Snapshots in {workspace.snapshots_dir}",
        ("newest", "snapshot", "pulled at", "subscribers", "dependents", "coverages"),
        [
            (
                "*" if m.folder == newest else "",
                m.folder.name,
                local_time(m.pulled_at),
                m.counts.get("subscribers", 0),
                m.counts.get("dependents", 0),
                m.counts.get("coverages", 0),
            )
            for m in manifests
        ],
    )
    if partial:
        err.print(f"{partial} unfinished pull folder(s) (dot-prefixed) are ignored.")


@sandbox_app.command("plansource")
def sandbox_plansource(
    port: Annotated[int, typer.Option(help="TCP port.")] = 8700,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    data: Annotated[Path, typer.Option(help="Export folder to serve.")] = Path(
        "samples/plansource"
    ),
    client_id: Annotated[str, typer.Option(help="Accepted client id.")] = "sandbox",
    client_secret_env: Annotated[
        str | None,
        typer.Option(
            help="Environment variable with the accepted secret (default sandbox-secret)."
        ),
    ] = None,
    client_public_key: Annotated[
        Path | None, typer.Option(help="PEM public key that verifies JWT client assertions.")
    ] = None,
    latency_ms: Annotated[float, typer.Option(help="Delay before each API answer.")] = 0,
    rate_limit_every: Annotated[int, typer.Option(help="Throttle every Nth API request.")] = 0,
    throttle_status: Annotated[int, typer.Option(help="429 or 503.")] = 429,
    retry_after_s: Annotated[float, typer.Option(help="Retry-After with a throttle.")] = 1,
    error_every: Annotated[int, typer.Option(help="HTTP 500 on every Nth API request.")] = 0,
    failure_page: PageOption = None,
    malformed_dates: Annotated[bool, typer.Option(help="A bad date on each page.")] = False,
    token_expires_s: Annotated[float, typer.Option(help="Token lifetime.")] = 3600,
    token_max_uses: Annotated[int, typer.Option(help="Revoke a token after N uses.")] = 0,
    reject_tokens: Annotated[bool, typer.Option(help="HTTP 401 for every token.")] = False,
    not_json_page: PageOption = None,
    short_page: PageOption = None,
    missing_id_page: PageOption = None,
    duplicate_id_page: PageOption = None,
) -> None:
    """Serve an export folder as a PlanSource-compatible API (with fault switches) until Ctrl-C."""
    from pydantic import ValidationError

    from edi.plansource.sandbox import DEFAULT_CLIENT_SECRET, Faults, PlanSourceSandbox, serve

    switches = {k: v for k, v in locals().items() if k in Faults.model_fields}
    try:
        faults = Faults.model_validate(switches)
    except ValidationError as exc:
        fields = ", ".join(f"--{str(e['loc'][0]).replace('_', '-')}" for e in exc.errors())
        raise UsageError("sandbox-bad-fault", f"invalid fault switch: {fields}") from None
    if not data.is_dir():
        raise UsageError("sandbox-no-data", f"{data} is not an export folder")
    secret = os.environ.get(client_secret_env, "") if client_secret_env else DEFAULT_CLIENT_SECRET
    if not secret:
        raise UsageError("sandbox-no-secret", f"{client_secret_env} is not set")
    public_key = client_public_key.read_bytes() if client_public_key else None
    sandbox = PlanSourceSandbox(
        data,
        faults,
        client_id=client_id,
        client_secret=secret,
        client_public_key=public_key,
    )
    shown = "from $" + str(client_secret_env) if client_secret_env else DEFAULT_CLIENT_SECRET
    root = f"http://{host}:{port}"
    err.print(f"PlanSource sandbox serving {data} ({sandbox.counts()}) on {root}/admin/v2")
    err.print(f"token endpoint {root}/oauth/v2/token, client_id {client_id}, secret {shown}")
    err.print(f"faults: {faults.model_dump(exclude_defaults=True) or 'none'}; Ctrl-C stops")
    serve(sandbox, host, port)


def register(app: typer.Typer) -> None:
    app.command("pull")(pull_command)
    app.add_typer(snapshots_app, name="snapshots")
    app.add_typer(sandbox_app, name="sandbox")
