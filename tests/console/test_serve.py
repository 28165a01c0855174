"""`edi serve`: loopback without a token, anything else only with one; the bearer token on every
request; and no other command loads the web stack."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from edi.console.app import create_app
from tests.console.conftest import ConsoleHome, LiveConsole, TestClient
from tests.support.workspace import REPO, edi

TOKEN = "s3cret-console-token-0123456789"


@pytest.fixture
def guarded(console_home: ConsoleHome) -> TestClient:
    return TestClient(create_app(console_home.workspace, token=TOKEN))


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x", TOKEN],
)
def test_a_token_is_needed_on_every_request(guarded: TestClient, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for path in ("/", "/api/carriers", "/log/export.csv", "/static/console.css", "/nope"):
        response = guarded.get(path, headers=headers)
        assert response.status_code == 401, (authorization, path)
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.headers["x-frame-options"] == "DENY"
        assert "Colonial" not in response.text


def test_the_right_token_opens_everything_but_writing(guarded: TestClient) -> None:
    good = {"Authorization": f"Bearer {TOKEN}"}
    for path in ("/", "/deliveries", "/log", "/discrepancies", "/api/carriers", "/api/log"):
        assert guarded.get(path, headers=good).status_code == 200, path
    assert guarded.get("/", headers={"Authorization": f"bearer {TOKEN}"}).status_code == 200
    assert guarded.post("/", headers=good).status_code == 405
    assert guarded.post("/").status_code == 401


def test_the_token_is_compared_in_constant_time(
    guarded: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hmac

    from edi.console import app as console_app

    seen: list[tuple[bytes, bytes]] = []
    original = hmac.compare_digest

    def spy(given: bytes, expected: bytes) -> bool:
        seen.append((given, expected))
        return original(given, expected)

    monkeypatch.setattr(console_app.hmac, "compare_digest", spy)
    assert guarded.get("/", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert seen == [(b"nope", TOKEN.encode())]


def test_serve_refuses_a_workspace_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = edi(capsys, "serve", "--home", str(tmp_path / "nowhere"))
    assert code == 2 and "workspace-missing" in err


def test_off_loopback_needs_token_env(
    console_home: ConsoleHome, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    home = ["--home", str(console_home.home)]
    for host in ("0.0.0.0", "192.0.2.10", "::", "example.com"):
        code, _, err = edi(capsys, "serve", "--host", host, *home)
        assert code == 2 and "serve-needs-token" in err, host
    monkeypatch.delenv("EDI_TEST_CONSOLE_TOKEN", raising=False)
    code, _, err = edi(
        capsys, "serve", "--host", "0.0.0.0", "--token-env", "EDI_TEST_CONSOLE_TOKEN", *home
    )
    assert code == 2 and "serve-token-missing" in err
    monkeypatch.setenv("EDI_TEST_CONSOLE_TOKEN", "tiny-tok")
    code, _, err = edi(
        capsys, "serve", "--host", "0.0.0.0", "--token-env", "EDI_TEST_CONSOLE_TOKEN", *home
    )
    assert code == 2 and "serve-token-weak" in err and "tiny-tok" not in err


def test_serve_with_a_token_env_off_loopback_guards_a_real_server(
    console_home: ConsoleHome, tmp_path: Path
) -> None:
    import socket
    import time

    from tests.console.conftest import free_port

    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edi",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--token-env",
            "EDI_TEST_CONSOLE_TOKEN",
            "--home",
            str(console_home.home),
        ],
        cwd=REPO,
        env={**_env(), "EDI_TEST_CONSOLE_TOKEN": TOKEN},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None and time.monotonic() < deadline
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.1)
        url = f"http://127.0.0.1:{port}/api/carriers"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(url, timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
            assert {c["carrier"] for c in json.load(answer)["carriers"]} == {
                "allstate",
                "colonial",
                "unum",
            }
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert TOKEN not in stderr.decode()


def test_loopback_serves_without_a_token(live_console: LiveConsole) -> None:
    assert live_console.url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(f"{live_console.url}/api/log", timeout=10) as answer:
        assert answer.status == 200 and json.load(answer)["verification"]["ok"] is True
    port = live_console.url.rsplit(":", 1)[1]
    for name in ("localhost", "127.0.0.1"):
        named = urllib.request.Request(
            f"{live_console.url}/api/log", headers={"Host": f"{name}:{port}"}
        )
        with urllib.request.urlopen(named, timeout=10) as answer:
            assert answer.status == 200
    # A page of some other site whose name now points at 127.0.0.1 (DNS rebinding) gets nothing.
    rebound = urllib.request.Request(
        f"{live_console.url}/api/carriers", headers={"Host": f"rebind.example:{port}"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(rebound, timeout=10)
    assert refused.value.code == 421 and b"colonial" not in refused.value.read()


def test_allowed_hosts(console_home: ConsoleHome) -> None:
    from edi.console.app import host_name

    assert host_name(b"127.0.0.1:8834") == "127.0.0.1" and host_name(b"LOCALHOST") == "localhost"
    assert host_name(b"[::1]:8834") == "[::1]"
    app = create_app(console_home.workspace, allowed_hosts=("127.0.0.1",))
    assert TestClient(app, base_url="http://127.0.0.1:8834").get("/").status_code == 200
    other = TestClient(app, base_url="http://attacker.example")
    assert other.get("/").status_code == 421 and other.get("/api/log").status_code == 421


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "EDI_HOME"}


def test_generate_never_imports_the_web_stack(tmp_path: Path) -> None:
    probe = (
        "import sys\n"
        "from edi.cli import main\n"
        "try:\n"
        "    main(sys.argv[1:])\n"
        "except SystemExit as done:\n"
        "    assert not done.code, done.code\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('starlette', 'uvicorn', 'edi'))\n"
        "print(' '.join(loaded))\n"
    )
    home = tmp_path / "demo-workspace"  # a copy: tests never write into the repository's state/
    shutil.copytree(REPO / "carriers", home / "carriers")
    shutil.copyfile(REPO / "edi.toml", home / "edi.toml")
    (home / "samples").symlink_to(REPO / "samples")
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            "--home",
            str(home),
            "generate",
            "--carrier",
            "colonial",
            "--out",
            str(tmp_path / "out"),
        ],
        cwd=REPO,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.split()
    assert "edi.pipeline" in loaded and "edi.cli.console" in loaded  # the probe saw the run
    assert not [m for m in loaded if m.startswith(("starlette", "uvicorn", "edi.console"))]
    assert not [m for m in loaded if m.startswith("edi.plansource.sandbox")]
