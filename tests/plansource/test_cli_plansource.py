"""`edi pull`, `edi snapshots list`, `edi sandbox plansource`: exit codes, output, real servers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from edi.cli.plansource import register
from edi.errors import EdiError
from edi.plansource.client import ClientSecret, PlanSourceClient
from edi.plansource.sandbox import Faults
from edi.workspace import Workspace
from tests.support.plansource_server import REPO, SAMPLE_EXPORT, RunningSandbox

Sandbox = Callable[..., RunningSandbox]


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """The commands on a bare Typer app, with the main CLI's error → exit-code mapping."""
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, list(args), env=env)
    error = result.exception
    if isinstance(error, EdiError):
        return error.exit_code, result.stdout, f"[{error.code}] {error.message}"
    if error is not None and not isinstance(error, SystemExit):
        raise error
    return result.exit_code, result.stdout, result.stderr


def workspace_for(api: RunningSandbox, home: Path, per_page: int = 20) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    (home / "edi.toml").write_text(
        "[plansource]\n"
        f'base_url = "{api.base_url}"\n'
        f'token_url = "{api.root_url}/oauth/v2/token"\n'
        'client_id = "sandbox"\n'
        'client_secret_env = "TEST_PLANSOURCE_SECRET"\n'
        f"per_page = {per_page}\n"
    )
    return home


SECRET = {"TEST_PLANSOURCE_SECRET": "sandbox-secret"}


def test_pull_publishes_a_snapshot_that_becomes_the_default_source(
    plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    home = workspace_for(plansource_sandbox(SAMPLE_EXPORT), tmp_path / "ws")

    code, stdout, _ = run("pull", "--home", str(home), env=SECRET)

    assert code == 0
    snapshot = Path(stdout.strip().splitlines()[-1])
    assert snapshot.parent == home / "state" / "snapshots"
    assert Workspace.open(home).default_source() == (snapshot, False)
    code, stdout, _ = run("snapshots", "list", "--home", str(home), "--json")
    rows = json.loads(stdout)
    assert code == 0 and [row["folder"] for row in rows] == [str(snapshot)]
    assert rows[0]["newest"] and rows[0]["endpoints"]["subscribers"]["records"] == 70


def test_pull_json_and_explicit_out(plansource_sandbox: Sandbox, tmp_path: Path) -> None:
    home = workspace_for(plansource_sandbox(SAMPLE_EXPORT), tmp_path / "ws")
    out = tmp_path / "delta"

    args = ("pull", "--home", str(home), "--out", str(out), "--since", "2026-01-01", "--json")

    code, _, message = run(*args)  # the secret is not in the environment: configuration
    assert (code, message.split("]")[0]) == (2, "[plansource-secret-missing")
    code, stdout, _ = run(*args, env=SECRET)
    manifest = json.loads(stdout)
    assert code == 0 and manifest["folder"] == str(out)
    assert manifest["incremental"] and manifest["since"] == "2026-01-01"
    assert Workspace.open(home).newest_snapshot() is None  # an incremental pull is not published


@pytest.mark.parametrize(
    ("args", "env", "exit_code", "error_code"),
    [
        (["--since", "2026-01-01"], SECRET, 2, "pull-since-needs-out"),
        (["--since", "01/02/2026", "--out", "x"], SECRET, 2, "bad-date"),
        ([], {"TEST_PLANSOURCE_SECRET": "wrong"}, 1, "plansource-auth-failed"),
    ],
)
def test_pull_errors_map_to_exit_codes(
    args: list[str],
    env: dict[str, str],
    exit_code: int,
    error_code: str,
    plansource_sandbox: Sandbox,
    tmp_path: Path,
) -> None:
    home = workspace_for(plansource_sandbox(SAMPLE_EXPORT), tmp_path / "ws")
    code, _, message = run("pull", "--home", str(home), *args, env=env)
    assert (code, message.split("]")[0]) == (exit_code, f"[{error_code}")
    assert Workspace.open(home).newest_snapshot() is None


def test_sandbox_command_rejects_a_bad_fault_switch() -> None:
    code, _, message = run("sandbox", "plansource", "--short-page", "everything")
    assert code == 2 and message == "[sandbox-bad-fault] invalid fault switch: --short-page"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_edi_sandbox_plansource_serves_over_http(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "edi", "sandbox", "plansource", "--port", str(port)]
    command += ["--data", str(SAMPLE_EXPORT), "--rate-limit-every", "5", "--retry-after-s", "0"]
    server = subprocess.Popen(command, cwd=REPO, env=os.environ | {"PYTHONPATH": str(REPO)})
    try:
        root = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"{root}/_sandbox/stats", timeout=1)
                break
            except httpx.TransportError:
                assert server.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        settings = Workspace.open(workspace_for_url(root, tmp_path)).settings.plansource
        with PlanSourceClient(settings, ClientSecret("sandbox", "sandbox-secret")) as client:
            assert sum(1 for _ in client.records("/coverages")) == 255
        assert httpx.get(f"{root}/_sandbox/stats").json()["statuses"]["429"] > 0
    finally:
        server.terminate()
        server.wait(timeout=10)


def workspace_for_url(root: str, home: Path) -> Path:
    (home / "edi.toml").write_text(
        f'[plansource]\nbase_url = "{root}/admin/v2"\ntoken_url = "{root}/oauth/v2/token"\n'
        'client_id = "sandbox"\nper_page = 10\n'
    )
    return home


def test_a_terminated_edi_pull_leaves_nothing_behind(
    plansource_sandbox: Sandbox, tmp_path: Path
) -> None:
    api = plansource_sandbox(SAMPLE_EXPORT, Faults(latency_ms=100))
    home = workspace_for(api, tmp_path / "ws", per_page=5)  # ~80 pages: a few seconds
    snapshots = home / "state" / "snapshots"
    command = [sys.executable, "-m", "edi", "--home", str(home), "pull"]
    env = os.environ | SECRET | {"PYTHONPATH": str(REPO)}
    puller = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 20
        while api.stats.api_requests < 5:  # well into the pull, writing its partial folder
            assert puller.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        assert [p.name.startswith(".") for p in snapshots.iterdir()] == [True]
        puller.terminate()
        assert puller.wait(timeout=15) != 0
    finally:
        if puller.poll() is None:
            puller.kill()
            puller.wait()
    assert list(snapshots.iterdir()) == []
    assert Workspace.open(home).newest_snapshot() is None
