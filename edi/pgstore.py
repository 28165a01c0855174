"""Control numbers, baselines and the delivery log in the shared PostgreSQL store.

Every row is keyed by workspace name (`edi.toml` `name`). The same semantics as the SQLite
stores of `edi.x12.control`, `edi.baseline` and `transmit.log`, with PostgreSQL's locks where
SQLite had `BEGIN IMMEDIATE`: a transaction-scoped advisory lock per (workspace, carrier) for
control numbers and baselines, one per workspace for the log.

The log tables, and the histories of baselines and reconciliations, are append-only in the
database itself: the roles edi grants (`edi_app` for workers, `edi_employer` for one employer's
login roles) have SELECT and INSERT on them and nothing else, and triggers refuse UPDATE, DELETE
and TRUNCATE even for the owner. Row-level security limits an employer's login role to its own
workspace's rows; `edi_app` sees all.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import transmit
from edi.baseline import PROPOSAL_BATCH, BaselineReader, member_from_state, member_state
from edi.baseline import SCHEMA as BASELINE_SCHEMA
from edi.errors import ConfigError, RunFailed, UsageError
from edi.members import Member
from edi.private import private_dir, private_file
from edi.x12.control import MAX_CONTROL_NUMBER, LoggedNumber, Restoration
from edi.x12.writer import Envelope

if TYPE_CHECKING:
    import psycopg

APP_ROLE = "edi_app"
EMPLOYER_ROLE = "edi_employer"
LOG_TABLES = ("edi_log_entries", "edi_log_checkpoints")
# Histories are appended to and never changed, like the log (a baseline reset is a new row).
HISTORY_TABLES = ("edi_baseline_history", "edi_reconciliations")
APPEND_ONLY_TABLES = (*LOG_TABLES, *HISTORY_TABLES)
STATE_TABLES = (
    "edi_control_numbers",
    "edi_control_floor",
    "edi_baseline_members",
    "edi_baseline_proposed",
    "edi_baseline_history",
    "edi_discrepancies",
    "edi_reconciliations",
    "edi_rosters",
)

TABLES = """
CREATE TABLE IF NOT EXISTS edi_control_numbers (
    workspace      text NOT NULL,
    carrier        text NOT NULL,
    fingerprint    text NOT NULL,
    control_number bigint NOT NULL,
    created_at     text NOT NULL,
    PRIMARY KEY (workspace, carrier, fingerprint),
    UNIQUE (workspace, carrier, control_number)
);
CREATE TABLE IF NOT EXISTS edi_control_floor (
    workspace text NOT NULL,
    carrier   text NOT NULL,
    highest   bigint NOT NULL,
    PRIMARY KEY (workspace, carrier)
);
CREATE TABLE IF NOT EXISTS edi_baseline_members (
    workspace  text NOT NULL,
    carrier    text NOT NULL,
    member_key text NOT NULL,
    state      text NOT NULL,
    PRIMARY KEY (workspace, carrier, member_key)
);
CREATE TABLE IF NOT EXISTS edi_baseline_proposed (
    workspace   text NOT NULL,
    carrier     text NOT NULL,
    fingerprint text NOT NULL,
    member_key  text NOT NULL,
    state       text NOT NULL,
    PRIMARY KEY (workspace, carrier, fingerprint, member_key)
);
CREATE TABLE IF NOT EXISTS edi_baseline_history (
    id          bigserial PRIMARY KEY,
    workspace   text NOT NULL,
    carrier     text NOT NULL,
    fingerprint text,
    action      text NOT NULL,
    at          text NOT NULL,
    members     integer NOT NULL,
    reason      text
);
CREATE INDEX IF NOT EXISTS edi_baseline_history_feed ON edi_baseline_history (workspace, carrier);
CREATE TABLE IF NOT EXISTS edi_log_entries (
    workspace  text NOT NULL,
    seq        bigint NOT NULL,
    body       text NOT NULL,
    prev_hash  text NOT NULL,
    entry_hash text NOT NULL,
    PRIMARY KEY (workspace, seq)
);
CREATE TABLE IF NOT EXISTS edi_log_checkpoints (
    workspace   text NOT NULL,
    id          bigint NOT NULL,
    entry_count bigint NOT NULL,
    head_hash   text NOT NULL,
    signed_at   text NOT NULL,
    signature   text NOT NULL,
    prev_hash   text,
    PRIMARY KEY (workspace, id)
);
CREATE TABLE IF NOT EXISTS edi_discrepancies (
    workspace     text NOT NULL,
    id            text NOT NULL,
    carrier       text NOT NULL,
    kind          text NOT NULL,
    subscriber_id text,
    member_id     text,
    dependent_id  text,
    coverage_id   text,
    field         text,
    severity      text NOT NULL,
    status        text NOT NULL,
    first_seen    text NOT NULL,
    last_seen     text NOT NULL,
    notes         jsonb NOT NULL DEFAULT '[]',
    detail        text,
    detail_run    text,
    PRIMARY KEY (workspace, id)
);
CREATE INDEX IF NOT EXISTS edi_discrepancies_feed ON edi_discrepancies (workspace, carrier, status);
CREATE TABLE IF NOT EXISTS edi_reconciliations (
    workspace     text NOT NULL,
    id            text NOT NULL,
    carrier       text NOT NULL,
    as_of         text NOT NULL,
    roster_sha256 text NOT NULL,
    at            text NOT NULL,
    summary_json  text NOT NULL,
    PRIMARY KEY (workspace, id)
);
CREATE TABLE IF NOT EXISTS edi_rosters (
    workspace         text NOT NULL,
    carrier           text NOT NULL,
    remote_name       text NOT NULL,
    size              bigint NOT NULL,
    sha256            text NOT NULL,
    fetched_at        text NOT NULL,
    reconciliation_id text,
    PRIMARY KEY (workspace, carrier, remote_name, size)
);
CREATE TABLE IF NOT EXISTS edi_workspace_roles (
    role_name name PRIMARY KEY,
    workspace text NOT NULL
);
CREATE TABLE IF NOT EXISTS edi_migrations (
    workspace       text PRIMARY KEY,
    migrated_at     timestamptz NOT NULL DEFAULT now(),
    control_numbers integer NOT NULL,
    baseline_rows   integer NOT NULL,
    log_entries     integer NOT NULL,
    log_head        text
);
"""

ROLES = f"""
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN
        CREATE ROLE {APP_ROLE} NOLOGIN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{EMPLOYER_ROLE}') THEN
        CREATE ROLE {EMPLOYER_ROLE} NOLOGIN;
    END IF;
END $$;
"""


def _policies() -> str:
    sees = (
        f"pg_has_role('{APP_ROLE}', 'MEMBER') OR EXISTS (SELECT 1 FROM edi_workspace_roles r "
        "WHERE r.role_name = current_user AND r.workspace = {table}.workspace)"
    )
    parts = [
        "CREATE OR REPLACE FUNCTION edi_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION 'the delivery log is append-only (% refused on %)', TG_OP, "
        "TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege'; END $$;",
        "CREATE OR REPLACE FUNCTION edi_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION '% is append-only (% refused)', TG_TABLE_NAME, TG_OP "
        "USING ERRCODE = 'insufficient_privilege'; END $$;",
        "ALTER TABLE edi_workspace_roles ENABLE ROW LEVEL SECURITY;",
        "DROP POLICY IF EXISTS edi_own_role ON edi_workspace_roles;",
        "CREATE POLICY edi_own_role ON edi_workspace_roles USING (role_name = current_user "
        f"OR pg_has_role('{APP_ROLE}', 'MEMBER'));",
        f"GRANT SELECT ON edi_workspace_roles TO {APP_ROLE}, {EMPLOYER_ROLE};",
    ]
    for table in (*LOG_TABLES, *STATE_TABLES):
        check = sees.format(table=table)
        parts += [
            f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;",
            f"DROP POLICY IF EXISTS edi_workspace ON {table};",
            f"CREATE POLICY edi_workspace ON {table} USING ({check}) WITH CHECK ({check});",
        ]
    for table in APPEND_ONLY_TABLES:
        refuse = "edi_log_append_only" if table in LOG_TABLES else "edi_append_only"
        parts += [
            f"REVOKE ALL ON {table} FROM PUBLIC, {APP_ROLE}, {EMPLOYER_ROLE};",
            f"GRANT SELECT, INSERT ON {table} TO {APP_ROLE}, {EMPLOYER_ROLE};",
            f"CREATE OR REPLACE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {refuse}();",
            f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {refuse}();",
        ]
    for table in STATE_TABLES:
        if table not in HISTORY_TABLES:
            parts.append(
                f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}, {EMPLOYER_ROLE};"
            )
    parts += [
        f"GRANT USAGE ON SEQUENCE edi_baseline_history_id_seq TO {APP_ROLE}, {EMPLOYER_ROLE};",
        f"GRANT SELECT, INSERT, UPDATE ON edi_runs TO {APP_ROLE};",
        f"GRANT USAGE ON SEQUENCE edi_runs_id_seq TO {APP_ROLE};",
        f"GRANT SELECT ON edi_migrations TO {APP_ROLE};",
    ]
    return "\n".join(parts)


def schema() -> str:
    """Our tables, roles, grants, policies and triggers; idempotent (`edi store init`)."""
    return TABLES + ROLES + _policies()


def grant_queue(conn: psycopg.Connection[Any]) -> None:
    """Workers (edi_app) use procrastinate's tables, sequences and functions."""
    conn.execute(
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {APP_ROLE}; "
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {APP_ROLE}; "
        + " ".join(
            f"REVOKE UPDATE, DELETE, TRUNCATE ON {table} FROM {APP_ROLE}, PUBLIC;"
            for table in APPEND_ONLY_TABLES
        )
        + f" REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON edi_workspace_roles, edi_migrations "
        f"FROM {APP_ROLE}, PUBLIC;"
    )


def reaches(conn: psycopg.Connection[Any], workspace: str) -> bool:
    """Whether the session's role may reach the workspace's rows (the workers' role, the
    employer's own login role, or the tables' owner): row-level security would show another
    employer's rows as none, and edi says so instead."""
    row = conn.execute(
        f"SELECT pg_has_role('{APP_ROLE}', 'MEMBER') OR EXISTS (SELECT 1 FROM "
        "edi_workspace_roles WHERE role_name = current_user AND workspace = %s) OR "
        "current_user = (SELECT tableowner FROM pg_tables WHERE tablename = "
        "'edi_log_entries' AND schemaname = current_schema())",
        (workspace,),
    ).fetchone()
    return bool(row and row[0])


def _lock_key(*parts: str) -> int:
    digest = hashlib.sha256("\0".join(("edi-store", *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextlib.contextmanager
def _connection(url: str, *, autocommit: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """A connection whose errors are edi errors: a store without our tables says so."""
    import psycopg
    from psycopg import errors

    from edi import store

    with store.connect(url, autocommit=autocommit) as conn:
        try:
            yield conn
        except errors.UndefinedTable:
            raise ConfigError(
                "store-not-initialized",
                f"the store at {store.redact(url)} has no edi tables yet",
                hint="Run `edi store init` once (as the store's owner).",
            ) from None
        except errors.InsufficientPrivilege as exc:
            raise RunFailed(
                "store-permission-denied",
                f"the store refused: {exc.diag.message_primary or type(exc).__name__}",
                hint="Check the role in the store URL (edi store grant).",
            ) from None
        except psycopg.OperationalError as exc:
            raise RunFailed(
                "store-unreachable",
                f"the store at {store.redact(url)} failed: {type(exc).__name__}",
                hint="Check that PostgreSQL is running; the run can be retried.",
            ) from None


@contextlib.contextmanager
def workspace_session(url: str, workspace: str, what: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection for one workspace's rows: another employer's role is refused, never shown
    none (row-level security alone would show another employer's rows as empty)."""
    with _connection(url) as conn:
        if not reaches(conn, workspace):
            raise RunFailed(
                "store-access-denied",
                f"this store role may not read the {what} of workspace {workspace!r}",
                hint="Use that employer's own credentials (edi store grant --workspace NAME).",
            )
        yield conn


# Control numbers ------------------------------------------------------------------------------


class PgControlNumbers:
    """`edi.x12.control.ControlNumbers` with rows keyed by workspace."""

    def __init__(self, url: str, workspace: str) -> None:
        self.url = url
        self.workspace = workspace

    def _lock(self, conn: psycopg.Connection[Any], carrier: str) -> None:
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s)", (_lock_key("control", self.workspace, carrier),)
        )

    def _highest(self, conn: psycopg.Connection[Any], carrier: str) -> int:
        row = conn.execute(
            "SELECT GREATEST(COALESCE((SELECT MAX(control_number) FROM edi_control_numbers "
            "WHERE workspace = %(w)s AND carrier = %(c)s), 0), COALESCE((SELECT highest FROM "
            "edi_control_floor WHERE workspace = %(w)s AND carrier = %(c)s), 0))",
            {"w": self.workspace, "c": carrier},
        ).fetchone()
        return int(row[0]) if row else 0

    def restore_from_log(self, carrier: str, logged: Iterable[LoggedNumber]) -> Restoration | None:
        numbers = list(logged)
        if not numbers:
            return None
        log_highest = max(n.control_number for n in numbers)
        with workspace_session(self.url, self.workspace, "control numbers") as conn:
            self._lock(conn, carrier)
            store_highest = self._highest(conn, carrier)
            if store_highest >= log_highest:
                return None
            restored = 0
            for number in numbers:
                if number.fingerprint and number.created_at:
                    restored += conn.execute(
                        "INSERT INTO edi_control_numbers VALUES (%s, %s, %s, %s, %s) "
                        "ON CONFLICT DO NOTHING",
                        (
                            self.workspace,
                            carrier,
                            number.fingerprint,
                            number.control_number,
                            number.created_at,
                        ),
                    ).rowcount
            conn.execute(
                "INSERT INTO edi_control_floor VALUES (%s, %s, %s) ON CONFLICT (workspace, "
                "carrier) DO UPDATE SET highest = EXCLUDED.highest",
                (self.workspace, carrier, log_highest),
            )
        return Restoration(restored, store_highest, log_highest)

    def allocate(self, carrier: str, fingerprint: str, now: datetime) -> Envelope:
        with workspace_session(self.url, self.workspace, "control numbers") as conn:
            self._lock(conn, carrier)
            row = conn.execute(
                "SELECT control_number, created_at FROM edi_control_numbers "
                "WHERE workspace = %s AND carrier = %s AND fingerprint = %s",
                (self.workspace, carrier, fingerprint),
            ).fetchone()
            if row is None:
                number = self._highest(conn, carrier) % MAX_CONTROL_NUMBER + 1
                created = now.astimezone(UTC).replace(second=0, microsecond=0).isoformat()
                conn.execute(
                    "INSERT INTO edi_control_numbers VALUES (%s, %s, %s, %s, %s)",
                    (self.workspace, carrier, fingerprint, number, created),
                )
                row = (number, created)
        return Envelope(control_number=int(row[0]), created_at=datetime.fromisoformat(row[1]))

    def lookup(self, carrier: str, control_number: int) -> str | None:
        with workspace_session(self.url, self.workspace, "control numbers") as conn:
            row = conn.execute(
                "SELECT fingerprint FROM edi_control_numbers "
                "WHERE workspace = %s AND carrier = %s AND control_number = %s",
                (self.workspace, carrier, control_number),
            ).fetchone()
        return None if row is None else str(row[0])


# Baselines ------------------------------------------------------------------------------------


class PgBaselineStore:
    """`edi.baseline.BaselineStore` with rows keyed by workspace."""

    def __init__(self, url: str, workspace: str, copies: Path) -> None:
        self.url = url
        self.workspace = workspace
        self.copies = copies  # where readers keep their local copies (PHI: the workspace's state)

    def _lock(self, conn: psycopg.Connection[Any], carrier: str) -> None:
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s)", (_lock_key("baseline", self.workspace, carrier),)
        )

    def has_baseline(self, carrier: str) -> bool:
        with workspace_session(self.url, self.workspace, "baselines") as conn:
            row = conn.execute(
                "SELECT 1 FROM edi_baseline_members WHERE workspace = %s AND carrier = %s LIMIT 1",
                (self.workspace, carrier),
            ).fetchone()
        return row is not None

    def get(self, carrier: str, member_key: str) -> Member | None:
        with workspace_session(self.url, self.workspace, "baselines") as conn:
            row = conn.execute(
                "SELECT state FROM edi_baseline_members "
                "WHERE workspace = %s AND carrier = %s AND member_key = %s",
                (self.workspace, carrier, member_key),
            ).fetchone()
        return None if row is None else member_from_state(row[0])

    def lookup(self, carrier: str) -> PgBaselineReader:
        return PgBaselineReader(self.url, self.workspace, carrier, self.copies)

    def proposal(self, carrier: str, token: str) -> PgProposalWriter:
        return PgProposalWriter(self.url, self.workspace, carrier, token)

    def propose(self, carrier: str, fingerprint: str, members: Iterable[Member]) -> int:
        writer = self.proposal(carrier, fingerprint + ".proposing")
        count = 0

        def counted() -> Iterator[Member]:
            nonlocal count
            for member in members:
                count += 1
                yield member

        try:
            for _ in writer.tee(counted()):
                pass
            writer.finish(fingerprint)
        except BaseException:
            writer.discard()
            raise
        return count

    def commit(self, carrier: str, fingerprint: str, now: datetime) -> bool:
        key = {"w": self.workspace, "c": carrier, "f": fingerprint}
        with workspace_session(self.url, self.workspace, "baselines") as conn:
            self._lock(conn, carrier)
            row = conn.execute(
                "SELECT COUNT(*) FROM edi_baseline_proposed "
                "WHERE workspace = %(w)s AND carrier = %(c)s AND fingerprint = %(f)s",
                key,
            ).fetchone()
            count = int(row[0]) if row else 0
            if count == 0:
                return False
            conn.execute(
                "DELETE FROM edi_baseline_members WHERE workspace = %(w)s AND carrier = %(c)s", key
            )
            conn.execute(
                "INSERT INTO edi_baseline_members SELECT workspace, carrier, member_key, state "
                "FROM edi_baseline_proposed "
                "WHERE workspace = %(w)s AND carrier = %(c)s AND fingerprint = %(f)s",
                key,
            )
            conn.execute(
                "DELETE FROM edi_baseline_proposed WHERE workspace = %(w)s AND carrier = %(c)s",
                key,
            )
            conn.execute(
                "INSERT INTO edi_baseline_history (workspace, carrier, fingerprint, action, at, "
                "members) VALUES (%s, %s, %s, 'commit', %s, %s)",
                (self.workspace, carrier, fingerprint, now.isoformat(), count),
            )
        return True

    def reset(self, carrier: str, reason: str, now: datetime) -> int:
        key = {"w": self.workspace, "c": carrier}
        with workspace_session(self.url, self.workspace, "baselines") as conn:
            self._lock(conn, carrier)
            row = conn.execute(
                "SELECT COUNT(*) FROM edi_baseline_members "
                "WHERE workspace = %(w)s AND carrier = %(c)s",
                key,
            ).fetchone()
            count = int(row[0]) if row else 0
            for table in ("edi_baseline_members", "edi_baseline_proposed"):
                conn.execute(
                    f"DELETE FROM {table} WHERE workspace = %(w)s AND carrier = %(c)s", key
                )
            conn.execute(
                "INSERT INTO edi_baseline_history (workspace, carrier, fingerprint, action, at, "
                "members, reason) VALUES (%s, %s, NULL, 'reset', %s, %s, %s)",
                (self.workspace, carrier, now.isoformat(), count, reason),
            )
        return count

    def show(self, carrier: str) -> dict[str, Any]:
        key = {"w": self.workspace, "c": carrier}
        with workspace_session(self.url, self.workspace, "baselines") as conn:
            keys = [
                str(k)
                for (k,) in conn.execute(
                    "SELECT member_key FROM edi_baseline_members "
                    "WHERE workspace = %(w)s AND carrier = %(c)s",
                    key,
                ).fetchall()
            ]
            history = conn.execute(
                "SELECT action, at, members, fingerprint, reason FROM edi_baseline_history "
                "WHERE workspace = %(w)s AND carrier = %(c)s ORDER BY id DESC LIMIT 10",
                key,
            ).fetchall()
        return {
            "carrier": carrier,
            "members": len(keys),
            "subscribers": sum(1 for k in keys if k.startswith("S")),
            "dependents": sum(1 for k in keys if k.startswith("D")),
            "history": [
                dict(zip(("action", "at", "members", "fingerprint", "reason"), h, strict=True))
                for h in history
            ],
        }


class PgProposalWriter:
    """`edi.baseline.ProposalWriter`: the proposal is written in one open transaction and
    filed under the file's fingerprint by `finish`."""

    def __init__(self, url: str, workspace: str, carrier: str, token: str) -> None:
        from edi import store

        self.workspace = workspace
        self.carrier = carrier
        self.token = token
        self._conn = store.connect(url)
        self._rows: list[tuple[str, str, str, str, str]] = []

    def tee(self, members: Iterable[Member]) -> Iterator[Member]:
        for member in members:
            self._rows.append(
                (self.workspace, self.carrier, self.token, member.key, member_state(member))
            )
            if len(self._rows) >= PROPOSAL_BATCH:
                self._insert()
            yield member
        self._insert()

    def keep(self, member: Member) -> None:
        self._rows.append(
            (self.workspace, self.carrier, self.token, member.key, member_state(member))
        )
        self._insert()

    def _insert(self) -> None:
        if not self._rows:
            return
        with self._conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO edi_baseline_proposed VALUES (%s, %s, %s, %s, %s) ON CONFLICT "
                "(workspace, carrier, fingerprint, member_key) DO UPDATE SET state = "
                "EXCLUDED.state",
                self._rows,
            )
        self._rows.clear()

    def finish(self, fingerprint: str) -> None:
        try:
            self._insert()
            key = {"w": self.workspace, "c": self.carrier, "f": fingerprint, "t": self.token}
            self._conn.execute(
                "DELETE FROM edi_baseline_proposed "
                "WHERE workspace = %(w)s AND carrier = %(c)s AND fingerprint = %(f)s",
                key,
            )
            self._conn.execute(
                "UPDATE edi_baseline_proposed SET fingerprint = %(f)s "
                "WHERE workspace = %(w)s AND carrier = %(c)s AND fingerprint = %(t)s",
                key,
            )
            self._conn.commit()
        finally:
            self._conn.close()

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.rollback()
        self._conn.close()


STALE_COPY_S = 24 * 3600


def _remove_stale(copies: Path) -> None:
    for leftover in copies.iterdir():
        with contextlib.suppress(OSError):
            if time.time() - leftover.stat().st_mtime > STALE_COPY_S:
                shutil.rmtree(leftover, ignore_errors=True)


class PgBaselineReader:
    """`edi.baseline.BaselineReader` over a private local copy of the carrier's baseline: one
    streamed query at the start instead of a round trip per member (a pass over 100k employees
    asks for some 170k), the same lookups as SQLite's afterwards. The copy holds PHI, as the
    baseline does: it lives in an owner-only folder under the workspace's state/scratch (never
    the system temp folder), is deleted by `close`, and a copy a killed process left behind is
    removed by the next reader after a day."""

    def __init__(self, url: str, workspace: str, carrier: str, copies: Path) -> None:
        self.workspace = workspace
        self.carrier = carrier
        private_dir(copies)
        _remove_stale(copies)
        self._folder = tempfile.TemporaryDirectory(prefix="baseline-", dir=copies)
        path = Path(self._folder.name) / "baseline.sqlite"
        private_file(path)
        try:
            with closing(sqlite3.connect(path, isolation_level=None)) as db:
                db.executescript(BASELINE_SCHEMA)
                db.execute("BEGIN")
                with (
                    workspace_session(url, workspace, "baselines") as conn,
                    conn.cursor(name="edi_baseline_copy") as cursor,
                ):
                    cursor.itersize = 5000
                    cursor.execute(
                        "SELECT carrier, member_key, state FROM edi_baseline_members "
                        "WHERE workspace = %s AND carrier = %s",
                        (workspace, carrier),
                    )
                    batch: list[tuple[str, str, str]] = []
                    for row in cursor:
                        batch.append((row[0], row[1], row[2]))
                        if len(batch) >= 5000:
                            db.executemany("INSERT INTO members VALUES (?, ?, ?)", batch)
                            batch.clear()
                    db.executemany("INSERT INTO members VALUES (?, ?, ?)", batch)
                db.execute("COMMIT")
            self._local = BaselineReader(path, carrier)
        except BaseException:
            self._folder.cleanup()
            raise

    def get(self, member_key: str) -> Member | None:
        return self._local.get(member_key)

    def others(self) -> Iterator[Member]:
        return self._local.others()

    def active_subscribers(self) -> int:
        return self._local.active_subscribers()

    def close(self) -> None:
        try:
            self._local.close()
        finally:
            self._folder.cleanup()


# The delivery log -----------------------------------------------------------------------------


class PgLogConnection:
    """`transmit.LogConnection` on one workspace's rows. `begin` takes the workspace's log lock
    for the transaction (SQLite's BEGIN IMMEDIATE)."""

    def __init__(self, conn: psycopg.Connection[Any], workspace: str, *, own: bool) -> None:
        self.conn = conn
        self.workspace = workspace
        self.own = own  # False: a caller's transaction (the migration): begin/commit do nothing

    def begin(self) -> None:
        if self.own:
            self.conn.execute("BEGIN")
        self.conn.execute(
            "SELECT pg_advisory_xact_lock(%s)", (_lock_key("log-append", self.workspace),)
        )

    def commit(self) -> None:
        if self.own:
            self.conn.execute("COMMIT")

    def rollback(self) -> None:
        if self.own:
            self.conn.execute("ROLLBACK")

    def _one(self, sql: str, *args: Any) -> tuple[Any, ...] | None:
        row = self.conn.execute(sql, (self.workspace, *args)).fetchone()
        return None if row is None else tuple(row)

    def head(self) -> transmit.Row | None:
        row = self._one(
            "SELECT seq, body, prev_hash, entry_hash FROM edi_log_entries WHERE workspace = %s "
            "ORDER BY seq DESC LIMIT 1"
        )
        return None if row is None else (int(row[0]), row[1], row[2], row[3])

    def entry(self, seq: int) -> transmit.Row | None:
        row = self._one(
            "SELECT seq, body, prev_hash, entry_hash FROM edi_log_entries "
            "WHERE workspace = %s AND seq = %s",
            seq,
        )
        return None if row is None else (int(row[0]), row[1], row[2], row[3])

    def entries(self) -> list[transmit.Row]:
        rows = self.conn.execute(
            "SELECT seq, body, prev_hash, entry_hash FROM edi_log_entries WHERE workspace = %s "
            "ORDER BY seq",
            (self.workspace,),
        ).fetchall()
        return [(int(r[0]), r[1], r[2], r[3]) for r in rows]

    def checkpoints(self) -> list[tuple[Any, ...]]:
        rows = self.conn.execute(
            "SELECT id, entry_count, head_hash, prev_hash, signed_at, signature "
            "FROM edi_log_checkpoints WHERE workspace = %s ORDER BY id",
            (self.workspace,),
        ).fetchall()
        return [(int(r[0]), int(r[1]), *r[2:]) for r in rows]

    @staticmethod
    def _point(row: tuple[Any, ...] | None) -> transmit.PointRow | None:
        return None if row is None else (int(row[0]), row[1], row[2], row[3], row[4])

    def last_checkpoint(self) -> transmit.PointRow | None:
        return self._point(
            self._one(
                "SELECT entry_count, head_hash, prev_hash, signed_at, signature "
                "FROM edi_log_checkpoints WHERE workspace = %s AND prev_hash IS NOT NULL "
                "ORDER BY id DESC LIMIT 1"
            )
        )

    def checkpoint_at(self, count: int) -> transmit.PointRow | None:
        return self._point(
            self._one(
                "SELECT entry_count, head_hash, prev_hash, signed_at, signature "
                "FROM edi_log_checkpoints WHERE workspace = %s AND prev_hash IS NOT NULL "
                "AND entry_count = %s ORDER BY id LIMIT 1",
                count,
            )
        )

    def checkpoints_after(self, count: int) -> list[transmit.PointRow]:
        rows = self.conn.execute(
            "SELECT entry_count, head_hash, prev_hash, signed_at, signature "
            "FROM edi_log_checkpoints WHERE workspace = %s AND prev_hash IS NOT NULL "
            "AND entry_count > %s ORDER BY id",
            (self.workspace, count),
        ).fetchall()
        return [(int(r[0]), r[1], r[2], r[3], r[4]) for r in rows]

    def insert_entry(self, seq: int, body: str, prev_hash: str, entry_hash: str) -> None:
        self.conn.execute(
            "INSERT INTO edi_log_entries VALUES (%s, %s, %s, %s, %s)",
            (self.workspace, seq, body, prev_hash, entry_hash),
        )

    def insert_checkpoint(
        self, count: int, head: str, signed_at: str, signature: str, prev_hash: str | None
    ) -> None:
        self.conn.execute(
            "INSERT INTO edi_log_checkpoints (workspace, id, entry_count, head_hash, signed_at, "
            "signature, prev_hash) VALUES (%(w)s, (SELECT COALESCE(MAX(id), 0) + 1 FROM "
            "edi_log_checkpoints WHERE workspace = %(w)s), %(n)s, %(h)s, %(s)s, %(g)s, %(p)s)",
            {
                "w": self.workspace,
                "n": count,
                "h": head,
                "s": signed_at,
                "g": signature,
                "p": prev_hash,
            },
        )


class PgLogBackend:
    """`transmit.LogBackend`: one workspace's delivery log in the store. The signing key and
    the witness stay files of the workspace (the witness on other storage), as with SQLite.

    `conn` (the migration) reads and writes inside a caller's open transaction."""

    def __init__(
        self, url: str, workspace: str, *, conn: psycopg.Connection[Any] | None = None
    ) -> None:
        self.url = url
        self.workspace = workspace
        self._conn = conn

    @property
    def where(self) -> str:
        from edi import store

        return f"of workspace {self.workspace!r} in the store {store.redact(self.url)}"

    @property
    def tables(self) -> tuple[str, str]:
        only = f"WHERE workspace = '{self.workspace}'"
        return (f"edi_log_entries {only}", f"edi_log_checkpoints {only}")

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        import psycopg

        if self._conn is not None:
            yield self._conn
            return
        from edi import store

        try:
            with store.connect(self.url, autocommit=True) as conn:
                yield conn
        except psycopg.errors.UndefinedTable:
            raise transmit.LogError(
                "log-store-not-initialized",
                f"the store {store.redact(self.url)} has no delivery log tables",
                hint="Run `edi store init` once (as the store's owner).",
            ) from None
        except psycopg.errors.InsufficientPrivilege as exc:
            raise transmit.LogError(
                "log-access-denied",
                f"the store refused: {exc.diag.message_primary or type(exc).__name__}",
                hint="The store URL's role may not read this workspace's log (edi store grant).",
            ) from None
        except psycopg.Error as exc:
            raise transmit.LogError(
                "log-unreadable",
                f"the delivery log {self.where} cannot be read: {type(exc).__name__}",
                hint="Check the store, then run `edi log verify`; never start a new log.",
            ) from None

    def _visible(self, conn: psycopg.Connection[Any]) -> None:
        """An employer's role may reach only its own workspace's log: another's is refused,
        not shown as empty."""
        if not reaches(conn, self.workspace):
            raise transmit.LogError(
                "log-access-denied",
                f"this store role may not read the delivery log of workspace {self.workspace!r}",
                hint="Use that employer's own credentials (edi store grant --workspace NAME).",
            )

    def exists(self) -> bool:
        with self._session() as conn:
            self._visible(conn)
            row = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM edi_log_entries WHERE workspace = %(w)s) OR EXISTS "
                "(SELECT 1 FROM edi_log_checkpoints WHERE workspace = %(w)s)",
                {"w": self.workspace},
            ).fetchone()
        return bool(row and row[0])

    def damage(self) -> str | None:
        return None

    @contextlib.contextmanager
    def connect(self, *, write: bool) -> Iterator[transmit.LogConnection | None]:
        with self._session() as conn:
            self._visible(conn)
            yield PgLogConnection(conn, self.workspace, own=self._conn is None)

    @contextlib.contextmanager
    def writer_lock(self) -> Iterator[None]:
        """The workspace's log writer lock, held by a session of its own: any machine."""
        if self._conn is not None:
            yield
            return
        with self._session() as conn:
            key = _lock_key("log-writer", self.workspace)
            conn.execute("SELECT pg_advisory_lock(%s)", (key,))
            try:
                yield
            finally:
                with contextlib.suppress(Exception):
                    conn.execute("SELECT pg_advisory_unlock(%s)", (key,))


# Employer roles -------------------------------------------------------------------------------


def role_name(workspace: str) -> str:
    return "edi_ws_" + workspace.replace("-", "_")[:56]


def grant_workspace(url: str, workspace: str, password: str | None) -> tuple[str, str]:
    """A login role that reaches only this workspace's rows; (role, password). Run again, it
    sets a new password."""
    from psycopg import sql

    role = role_name(workspace)
    secret = password or secrets.token_urlsafe(24)
    with _connection(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("edi-store-init", ""),))
        row = conn.execute(
            "SELECT workspace FROM edi_workspace_roles WHERE role_name = %s", (role,)
        ).fetchone()
        if row is not None and row[0] != workspace:
            raise UsageError(
                "store-role-taken",
                f"the role {role} already belongs to workspace {row[0]!r}",
                hint="Workspace names must be unique in a store.",
            )
        exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
        verb = "ALTER" if exists else "CREATE"
        conn.execute(
            sql.SQL(verb + " ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(secret)
            )
        )
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(sql.Identifier(EMPLOYER_ROLE), sql.Identifier(role))
        )
        conn.execute(
            "INSERT INTO edi_workspace_roles VALUES (%s, %s) ON CONFLICT DO NOTHING",
            (role, workspace),
        )
    return role, secret
