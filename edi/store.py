"""The shared PostgreSQL store: where it is, its schema, and the run lock it holds.

What lives here: procrastinate's queue (jobs, events, workers), `edi_runs` (one row per job
attempt: workspace, carrier, outcome, error code — never PHI), the run locks (advisory locks
keyed on workspace name + carrier), `edi_schema_versions` (what `edi store init` last migrated
to) and, for workspaces with `[store]`, their control numbers, baselines, delivery log and
reconciliation's discrepancies (`edi.pgstore`, `edi.pgdiscrepancies`, rows keyed by workspace
name). Schedules' last runs and acks are delivery-log entries, so they are in the store too; the
log's signing key and its witness stay files of the workspace.

The URL's password is never printed: messages carry `redact(url)`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from edi.errors import ConfigError, RunFailed
from edi.runs import RunLocked

if TYPE_CHECKING:
    import psycopg

    from edi.workspace import Workspace

DEFAULT_URL_ENV = "EDI_STORE_URL"

EDI_SCHEMA = """
CREATE TABLE IF NOT EXISTS edi_runs (
    id             bigserial PRIMARY KEY,
    job_id         bigint NOT NULL,
    attempt        integer NOT NULL,
    workspace_name text NOT NULL,
    workspace_path text NOT NULL,
    carrier        text NOT NULL,
    worker         text NOT NULL,
    outcome        text,
    error_code     text,
    started_at     timestamptz NOT NULL DEFAULT now(),
    finished_at    timestamptz
);
CREATE INDEX IF NOT EXISTS edi_runs_job ON edi_runs (job_id);
CREATE INDEX IF NOT EXISTS edi_runs_feed ON edi_runs (workspace_name, carrier);
"""


class RunLockedInStore(RunLocked):
    """Another machine's run of the same workspace and carrier held the store's lock."""


def redact(url: str) -> str:
    """The URL with any password replaced by `***`."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def url_from_env(env: str = DEFAULT_URL_ENV) -> str | None:
    return os.environ.get(env) or None


def workspace_url(workspace: Workspace) -> str | None:
    """The workspace's store URL, or None when it has no `[store]`."""
    store = workspace.settings.store
    if store is None:
        return None
    url = store.url or url_from_env(store.url_env)
    if not url:
        raise ConfigError(
            "store-url-missing",
            f"[store] in edi.toml names no url and ${store.url_env} is not set",
            hint=f"export {store.url_env}=postgresql://user:password@host/db",
        )
    return url


def resolve_url(explicit: str | None, workspace: Workspace | None) -> str:
    """--store-url, else $EDI_STORE_URL, else the workspace's [store]."""
    url = explicit or url_from_env()
    if not url and workspace is not None:
        url = workspace_url(workspace)
    if not url:
        raise ConfigError(
            "store-not-configured",
            "no store: pass --store-url, set $EDI_STORE_URL, or add [store] to edi.toml",
            hint="See README: Running many employers.",
        )
    return url


def connect(url: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    import psycopg

    try:
        return psycopg.connect(url, autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        raise RunFailed(
            "store-unreachable",
            f"cannot connect to the store at {redact(url)}: {type(exc).__name__}",
            hint="Check the URL, that PostgreSQL is running, and the role's password.",
        ) from None


# The oldest PostgreSQL the store runs on: CREATE OR REPLACE TRIGGER (14) and the row-level
# security and privileges the tests prove were tried on 15.
MIN_SERVER_VERSION = 150000

VERSIONS_TABLE = """
CREATE TABLE IF NOT EXISTS edi_schema_versions (
    component  text PRIMARY KEY,
    version    text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
);
"""


def init_schema(url: str) -> list[str]:
    """Create procrastinate's schema and ours when missing, or migrate them: procrastinate's
    own migration scripts newer than the version recorded when its schema was made, then our
    tables (created when missing), grants, policies and triggers (restored every time). The
    names of what was created or migrated (empty: already up to date). Serialized by a
    transaction-scoped advisory lock; stop the workers before migrating a live store."""
    from edi import pgstore

    changed: list[str] = []
    with connect(url) as conn:
        require_server_version(server_version(conn))
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_key("edi-store-init", ""),))
        conn.execute(VERSIONS_TABLE)
        changed += _queue_schema(conn)
        row = conn.execute("SELECT to_regclass('edi_runs')").fetchone()
        if row is None or row[0] is None:
            conn.execute(EDI_SCHEMA)
            changed.append("created edi_runs")
        row = conn.execute("SELECT to_regclass('edi_log_checkpoints')").fetchone()
        if row is None or row[0] is None:
            changed.append("created state tables (control numbers, baselines, log, discrepancies)")
        conn.execute(pgstore.schema())  # idempotent: grants, policies and triggers restored
        pgstore.grant_queue(conn)
        conn.execute(f"REVOKE ALL ON edi_schema_versions FROM PUBLIC, {pgstore.APP_ROLE}")
    return changed


def server_version(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SHOW server_version_num").fetchone()
    return int(row[0]) if row else 0


def require_server_version(version_num: int) -> None:
    if version_num < MIN_SERVER_VERSION:
        major = version_num // 10000
        raise ConfigError(
            "store-server-too-old",
            f"the store's PostgreSQL is version {major}; edi needs 15 or newer",
            hint="Upgrade the server, or point [store] at a PostgreSQL 15+ database.",
        )


def _queue_schema(conn: psycopg.Connection[Any]) -> list[str]:
    """procrastinate's schema: created whole when missing, else its migration scripts newer
    than the one recorded (they are named by version, so their order is their names')."""
    from procrastinate.schema import SchemaManager

    scripts = sorted(
        path
        for path in Path(SchemaManager.get_migrations_path()).glob("*.sql")
        if path.name[:2].isdigit()
    )
    newest = scripts[-1].name if scripts else ""
    row = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()
    if row is None or row[0] is None:
        conn.execute(SchemaManager.get_schema())
        _record_version(conn, "procrastinate", newest)
        return ["created procrastinate"]
    recorded = conn.execute(
        "SELECT version FROM edi_schema_versions WHERE component = 'procrastinate'"
    ).fetchone()
    if recorded is None:
        # A store made before versions were recorded: its schema is the installed one's.
        _record_version(conn, "procrastinate", newest)
        return []
    pending = [path for path in scripts if path.name > str(recorded[0])]
    for path in pending:
        conn.execute(path.read_text())
    if pending:
        _record_version(conn, "procrastinate", newest)
    return [f"applied procrastinate migration {path.stem}" for path in pending]


def _record_version(conn: psycopg.Connection[Any], component: str, version: str) -> None:
    conn.execute(
        "INSERT INTO edi_schema_versions (component, version) VALUES (%s, %s) "
        "ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version, applied_at = now()",
        (component, version),
    )


def require_schema(url: str) -> None:
    with connect(url) as conn:
        row = conn.execute(
            "SELECT to_regclass('procrastinate_jobs') IS NOT NULL AND "
            "to_regclass('edi_runs') IS NOT NULL"
        ).fetchone()
    if not (row and row[0]):
        raise ConfigError(
            "store-not-initialized",
            f"the store at {redact(url)} has no schema yet",
            hint="Run `edi store init` once.",
        )


def _key(workspace_name: str, carrier: str) -> int:
    digest = hashlib.sha256(f"edi-run\0{workspace_name}\0{carrier}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_held: set[tuple[str, str]] = set()
_held_guard = threading.Lock()


@contextlib.contextmanager
def hold_run_lock(url: str, workspace_name: str, carrier: str, *, wait_s: float) -> Iterator[None]:
    """Hold the store's advisory lock on (workspace, carrier) for the duration of a run, on a
    connection of its own: a worker that dies drops its connection and with it the lock."""
    conn = connect(url, autocommit=True)
    key = _key(workspace_name, carrier)
    try:
        deadline = time.monotonic() + wait_s
        while True:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (key,)).fetchone()
            if row and row[0]:
                break
            if time.monotonic() >= deadline:
                raise RunLockedInStore(
                    "run-in-progress",
                    f"another run of {workspace_name}/{carrier} held the store's run lock for "
                    f"more than {wait_s:g} s; this run did nothing",
                    hint="Wait for it to finish (edi jobs list), or raise [runs] lock_wait_s.",
                )
            time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
        with _held_guard:
            _held.add((workspace_name, carrier))
        try:
            yield
        finally:
            with _held_guard:
                _held.discard((workspace_name, carrier))
            with contextlib.suppress(Exception):
                conn.execute("SELECT pg_advisory_unlock(%s)", (key,))
    finally:
        conn.close()


@contextlib.contextmanager
def run_lock(workspace: Workspace, carrier: str, *, wait_s: float) -> Iterator[None]:
    """The store's run lock for a workspace with a `[store]`; nothing without one, or when this
    process already holds it (a worker's job takes it before calling the pipeline)."""
    name = workspace.settings.name
    url = workspace_url(workspace)
    with _held_guard:
        held = (name or "", carrier) in _held
    if url is None or name is None or held:
        yield
        return
    with hold_run_lock(url, name, carrier, wait_s=wait_s):
        yield
