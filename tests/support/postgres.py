"""A real PostgreSQL server on 127.0.0.1: one per test session (per xdist worker), a fresh
database per test.

`initdb` refuses to run as root, so as root the cluster belongs to the `postgres` OS user
(Debian's `postgresql` package creates it); otherwise it belongs to whoever runs the tests.
The server listens on a free loopback port with its own socket folder, so it never meets the
machine's own cluster.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

HBA = """\
local all all trust
host all postgres 127.0.0.1/32 trust
host all all 127.0.0.1/32 scram-sha-256
"""


def postgres_bindir() -> Path | None:
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if found and (Path(found) / "initdb").exists():
            return Path(found)
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name)
    )
    for candidate in reversed(candidates):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    found_initdb = shutil.which("initdb")
    return Path(found_initdb).parent if found_initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class PostgresServer:
    host: str
    port: int
    user: str
    root: Path

    def url(
        self, database: str = "postgres", password: str | None = None, user: str | None = None
    ) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{user or self.user}{secret}@{self.host}:{self.port}/{database}"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if postgres_bindir() is None:
        pytest.fail("PostgreSQL is not installed (scripts/install installs `postgresql`)")
    with running_postgres() as server:
        yield server


@contextlib.contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A throwaway cluster on a free loopback port, removed on exit (the fixture's, and the
    workers benchmark's)."""
    bindir = postgres_bindir()
    if bindir is None:
        raise RuntimeError("PostgreSQL is not installed (scripts/install installs `postgresql`)")
    as_root = os.geteuid() == 0
    root = Path(tempfile.mkdtemp(prefix="edi-pg-"))
    prefix: list[str] = []
    if as_root:
        owner = pwd.getpwnam("postgres")
        os.chown(root, owner.pw_uid, owner.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    os.chmod(root, 0o700)
    data, sockets, logfile = root / "data", root / "sockets", root / "server.log"
    subprocess.run(
        [
            *prefix,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run([*prefix, "mkdir", "-p", str(sockets)], check=True)
    # The fixture's superuser needs no password; every other role (an employer's login role)
    # must give its own, so a test of credentials is a test of credentials.
    hba = data / "pg_hba.conf"
    hba.write_text(HBA)
    if as_root:
        os.chown(hba, owner.pw_uid, owner.pw_gid)
    port = _free_port()
    options = (
        f"-h 127.0.0.1 -p {port} -k {sockets} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    pg_ctl = [*prefix, str(bindir / "pg_ctl"), "-D", str(data)]
    subprocess.run(
        [*pg_ctl, "-l", str(logfile), "-o", options, "-w", "-t", "60", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield PostgresServer("127.0.0.1", port, "postgres", root)
    finally:
        subprocess.run(
            [*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def fresh_database(server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on `server` (its owner's URL); dropped afterwards."""
    import psycopg

    name = f"edi_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server.url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server.url(name)
    finally:
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for this test; dropped afterwards (connections and all)."""
    with fresh_database(postgres_server) as url:
        yield url


# A login role in edi_app, as a worker would use: test-only credentials for a throwaway cluster.
SUITE_APP_ROLE = "edi_suite_app"
SUITE_APP_PASSWORD = "suite-app-test-only"


def as_application_role(server: PostgresServer, url: str) -> str:
    """`url`'s database for a login role in `edi_app` (the role `edi worker` runs as), so the
    store's grants, row-level security and append-only tables apply as in production; the
    fixture's own user is a superuser and passes them all. Run `init_schema` on `url` first."""
    import psycopg

    # Roles are the cluster's: the first test on any xdist worker creates it.
    refused = (psycopg.errors.DuplicateObject, psycopg.errors.UniqueViolation)
    with psycopg.connect(url, autocommit=True) as conn, contextlib.suppress(*refused):
        conn.execute(
            f"CREATE ROLE {SUITE_APP_ROLE} LOGIN PASSWORD '{SUITE_APP_PASSWORD}' IN ROLE edi_app"
        )
    return server.url(url.rsplit("/", 1)[1], SUITE_APP_PASSWORD, SUITE_APP_ROLE)
