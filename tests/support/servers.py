"""Real servers on 127.0.0.1 and real keys: OpenSSH sshd, GnuPG, SMTP (aiosmtpd), HTTP.

Every key here is a throwaway TEST key generated per test run; none is committed.
"""

from __future__ import annotations

import atexit
import json
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import transmit

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Sshd:
    server: transmit.LoopbackSftpServer
    facts: transmit.LoopbackServer
    inbox: Path

    def settings(self, **overrides: Any) -> transmit.SftpSettings:
        values: dict[str, Any] = {
            "host": self.facts.host,
            "port": self.facts.port,
            "username": self.facts.username,
            "host_key": self.facts.host_key_fingerprint,
            "remote_dir": str(self.inbox),
            "private_key_file": self.facts.client_key,
            "connect_timeout_s": 5,
            "timeout_s": 20,
        }
        values.update(overrides)
        return transmit.SftpSettings(**values)

    def restart(self) -> None:
        self.server.stop()
        self.facts = self.server.start()


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[Sshd]:
    server = transmit.LoopbackSftpServer(tmp_path / "sftp-root", tmp_path / "sshd-state")
    facts = server.start()
    inbox = facts.root / "inbound"
    inbox.mkdir(parents=True)
    try:
        yield Sshd(server, facts, inbox)
    finally:
        server.stop()


@dataclass
class CarrierKey:
    gnupg: Path
    fingerprint: str
    public_key_file: Path

    def decrypt(self, encrypted: Path) -> bytes:
        return subprocess.run(
            [
                "gpg",
                "--homedir",
                str(self.gnupg),
                "--batch",
                "--quiet",
                "--decrypt",
                str(encrypted),
            ],
            check=True,
            capture_output=True,
        ).stdout

    def packets(self, encrypted: Path) -> str:
        """gpg's account of the packets, and of the cipher it met while decrypting."""
        listing = subprocess.run(
            ["gpg", "--homedir", str(self.gnupg), "--batch", "--list-packets", str(encrypted)],
            capture_output=True,
            text=True,
        )
        decrypting = subprocess.run(
            [
                "gpg",
                "--homedir",
                str(self.gnupg),
                "--batch",
                "-v",
                "--decrypt",
                "-o",
                "/dev/null",
                str(encrypted),
            ],
            capture_output=True,
            text=True,
        )
        return listing.stdout + listing.stderr + decrypting.stderr


def _gpg(home: Path, *args: str) -> None:
    subprocess.run(
        ["gpg", "--homedir", str(home), "--batch", "--yes", *args], check=True, capture_output=True
    )


def _forget_gnupg_home(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


def make_carrier_key(
    base: Path, name: str, *, usage: str = "sign,encr", expire: str = "never"
) -> CarrierKey:
    # gpg-agent's socket lives in the GnuPG home and its path must stay under 108 bytes:
    # pytest's tmp paths under xdist (…/pytest-NNN/popen-gwN/test_long_name0/) can exceed it.
    home = Path(tempfile.mkdtemp(prefix=f"gpg-{name}-"))
    home.chmod(0o700)
    atexit.register(_forget_gnupg_home, home)
    _gpg(
        home,
        "--passphrase",
        "",
        "--quick-gen-key",
        f"TEST KEY {name} <{name}@test.invalid>",
        "rsa2048",
        usage,
        expire,
    )
    listing = subprocess.run(
        ["gpg", "--homedir", str(home), "--list-keys", "--with-colons"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    fingerprint = next(
        line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr")
    )
    public = base / f"{name}.asc"
    public.write_text(
        subprocess.run(
            ["gpg", "--homedir", str(home), "--armor", "--export", fingerprint],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    return CarrierKey(home, fingerprint, public)


@pytest.fixture
def carrier_key(tmp_path: Path) -> CarrierKey:
    return make_carrier_key(tmp_path, "carrier")


@pytest.fixture
def bad_keys(tmp_path: Path) -> dict[str, CarrierKey]:
    """Keys a carrier must never be sent to: expired, revoked, and one that cannot encrypt."""
    expired = make_carrier_key(tmp_path, "expired", expire="seconds=1")
    revoked = make_carrier_key(tmp_path, "revoked")
    revocation = next((revoked.gnupg / "openpgp-revocs.d").glob("*.rev")).read_text()
    certificate = tmp_path / "revoke.asc"
    certificate.write_text(revocation.replace(":-----BEGIN", "-----BEGIN"))
    _gpg(revoked.gnupg, "--import", str(certificate))
    revoked.public_key_file.write_text(
        subprocess.run(
            ["gpg", "--homedir", str(revoked.gnupg), "--armor", "--export", revoked.fingerprint],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    sign_only = make_carrier_key(tmp_path, "signonly", usage="sign")
    import time

    time.sleep(1.1)  # let the one-second key expire
    return {"expired": expired, "revoked": revoked, "sign-only": sign_only}


@dataclass
class SmtpServer:
    host: str
    port: int
    messages: list[Any] = field(default_factory=list)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    received: list[Any] = []

    class Collect(Message):  # type: ignore[misc]
        def handle_message(self, message: Any) -> None:
            received.append(message)

    controller = Controller(Collect(), hostname="127.0.0.1", port=transmit.loopback.free_port())
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", controller.port, received)
    finally:
        controller.stop()


@dataclass
class WebhookServer:
    url: str
    payloads: list[dict[str, Any]]


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    payloads: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            payloads.append(json.loads(self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield WebhookServer(f"http://127.0.0.1:{server.server_address[1]}/hook", payloads)
    finally:
        server.shutdown()


@pytest.fixture
def live_home(
    edi_home: Path,
    sshd: Sshd,
    carrier_key: CarrierKey,
    smtp_server: SmtpServer,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
) -> Path:
    """A workspace whose colonial profile delivers to the test sshd, encrypted to a test key,
    with alerts to the test SMTP server. With `pytest --store postgres` its control numbers,
    baselines and delivery log live in a fresh PostgreSQL database instead of state/*.sqlite."""
    shutil.copyfile(carrier_key.public_key_file, edi_home / "carriers" / "colonial.asc")
    profile = edi_home / "carriers" / "colonial.toml"
    profile.write_text(
        profile.read_text()
        + f"""
[encryption]
recipient_fingerprint = "{carrier_key.fingerprint}"
public_key_file = "carriers/colonial.asc"

[delivery]
host = "{sshd.facts.host}"
port = {sshd.facts.port}
username = "{sshd.facts.username}"
private_key_file = "{sshd.facts.client_key}"
host_key = "{sshd.facts.host_key_fingerprint}"
remote_dir = "{sshd.inbox}"
max_attempts = 2
initial_backoff_s = 0.05
max_backoff_s = 0.1
connect_timeout_s = 3
"""
    )
    (edi_home / "edi.toml").write_text(f"""
source = "{REPO / "samples" / "plansource"}"
sample_data = true
[alerts]
email_to = ["ops@test.invalid"]
[smtp]
host = "{smtp_server.host}"
port = {smtp_server.port}
from = "edi@test.invalid"
""")
    if request.config.getoption("--store") == "postgres":
        # edi_home put the state in the store (as the workers' role); say so in edi.toml too,
        # for the edi processes a test starts.
        name_the_store(edi_home)
    return edi_home


def name_the_store(home: Path) -> None:
    """edi.toml says `name = "acme"` and `[store] url_env = "EDI_STORE_URL"`."""
    settings = home / "edi.toml"
    settings.write_text(
        'name = "acme"\n' + settings.read_text() + '\n[store]\nurl_env = "EDI_STORE_URL"\n'
    )


def use_postgres_store(home: Path, url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The workspace keeps its state in the store at `url` (schema created, URL in the env)."""
    from edi.store import init_schema

    name_the_store(home)
    monkeypatch.setenv("EDI_STORE_URL", url)
    init_schema(url)
