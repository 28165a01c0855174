"""`edi store migrate --from-sqlite`: a workspace's control numbers, baselines, delivery log and
reconciliation's discrepancies move from its SQLite files into the shared PostgreSQL store, in
one transaction.

The SQLite log is verified first (with its witness and key); the copy is verified again inside
the transaction, through the PostgreSQL backend, before it commits: a log that does not verify
leaves nothing in PostgreSQL. The signing key and the witness stay where they are (files of the
workspace); the PostgreSQL log continues the same chain, so the witness goes on as before. A
workspace already migrated, or with state of its own in the store, is refused. The SQLite files
are left untouched (no longer read while `[store]` is set).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import transmit
from edi import pgstore, store, stores
from edi.baseline import SCHEMA as BASELINE_SCHEMA
from edi.delivery_config import delivery_log
from edi.errors import ConfigError, DeliveryLogError, UsageError
from edi.private import private_dir, private_file
from edi.workspace import Workspace
from edi.x12.control import SCHEMA as CONTROL_SCHEMA
from transmit.log import SCHEMA as LOG_SCHEMA

COPY_BATCH = 2000


@dataclass(frozen=True, slots=True)
class Migration:
    workspace: str
    control_numbers: int
    baseline_rows: int
    log_entries: int
    log_checkpoints: int
    head: str | None
    discrepancies: int


@contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection | None]:
    if not path.exists():
        yield None
        return
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        yield db


def _rows(path: Path, sql: str) -> Iterator[tuple[Any, ...]]:
    with _sqlite(path) as db:
        if db is None:
            return
        try:
            yield from db.execute(sql)
        except sqlite3.OperationalError as exc:
            if "no such table" not in str(exc):
                raise


def log_rows(path: Path) -> Iterator[tuple[Any, ...]]:
    """The SQLite log's entries, oldest first (a seam for the test of the after-move check)."""
    return _rows(path, "SELECT seq, body, prev_hash, entry_hash FROM entries ORDER BY seq")


def _copy(conn: Any, table: str, columns: str, workspace: str, rows: Iterator[Any]) -> int:
    count = 0
    with conn.cursor().copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row((workspace, *row))
            count += 1
    return count


def _sqlite_log(workspace: Workspace) -> transmit.DeliveryLog:
    log = delivery_log(workspace)
    path = workspace.state_dir / "delivery-log.sqlite"
    return transmit.DeliveryLog(
        path,
        log.signing_key_path,
        witness_dir=log.witness_dir,
        backend=transmit.SqliteBackend(path),
    )


def _refuse_if_there(conn: Any, url: str, name: str) -> None:
    done = conn.execute(
        "SELECT migrated_at FROM edi_migrations WHERE workspace = %s", (name,)
    ).fetchone()
    if done is not None:
        raise UsageError(
            "migrate-already-done",
            f"workspace {name!r} was already migrated into {store.redact(url)} at "
            f"{done[0].isoformat(timespec='seconds')}; nothing was changed",
            hint="Its state lives in the store now; the SQLite files are no longer read.",
        )
    held = [
        table
        for table in (*pgstore.LOG_TABLES, *pgstore.STATE_TABLES)
        if conn.execute(f"SELECT 1 FROM {table} WHERE workspace = %s LIMIT 1", (name,)).fetchone()
    ]
    if held:
        raise UsageError(
            "migrate-store-not-empty",
            f"the store already holds state for workspace {name!r} ({', '.join(held)}); "
            "nothing was migrated",
            hint="Runs already used the store; migrating would fork its history.",
        )


def _copy_discrepancies(conn: Any, workspace: str, path: Path) -> int:
    """Reconciliation's discrepancies (with their details), runs and fetched rosters."""
    copied = _copy(
        conn,
        "edi_discrepancies",
        "workspace, id, carrier, kind, subscriber_id, member_id, dependent_id, coverage_id, "
        "field, severity, status, first_seen, last_seen, notes, detail, detail_run",
        workspace,
        _rows(
            path,
            "SELECT d.id, d.carrier, d.kind, d.subscriber_id, d.member_id, d.dependent_id, "
            "d.coverage_id, d.field, d.severity, d.status, d.first_seen, d.last_seen, "
            "COALESCE(d.notes, '[]'), x.detail, x.reconciliation_id "
            "FROM discrepancies d LEFT JOIN details x USING (id) ORDER BY d.id",
        ),
    )
    _copy(
        conn,
        "edi_reconciliations",
        "workspace, id, carrier, as_of, roster_sha256, at, summary_json",
        workspace,
        _rows(
            path,
            "SELECT id, carrier, as_of, roster_sha256, at, summary_json FROM reconciliations "
            "ORDER BY at",
        ),
    )
    _copy(
        conn,
        "edi_rosters",
        "workspace, carrier, remote_name, size, sha256, fetched_at, reconciliation_id",
        workspace,
        _rows(
            path,
            "SELECT carrier, remote_name, size, sha256, fetched_at, reconciliation_id FROM rosters",
        ),
    )
    return copied


def migrate(workspace: Workspace) -> Migration:
    target = stores.shared(workspace)
    if target is None:
        raise ConfigError(
            "store-not-configured",
            "this workspace has no [store] to migrate into",
            hint='Add name = "…" and [store] to edi.toml (see README: Running many employers).',
        )
    url, name = target
    state = workspace.state_dir
    sources = [state / f for f in ("control.sqlite", "baseline.sqlite", "delivery-log.sqlite")]
    reconciled = state / "discrepancies.sqlite"
    if not any(path.exists() for path in sources):
        raise UsageError(
            "migrate-nothing",
            f"{state} holds no control numbers, baselines or delivery log to migrate",
        )
    with pgstore._connection(url) as conn:
        _refuse_if_there(conn, url, name)  # before the SQLite log, which the store's outgrew
    source_log = _sqlite_log(workspace)
    before = source_log.verify()
    if not before.ok:
        raise DeliveryLogError(
            "migrate-source-log-broken",
            f"the SQLite delivery log does not verify ({before.problem}); nothing was migrated",
            hint="Run `edi log verify` and resolve it first; never migrate a tampered log.",
        )
    control, baseline, log_db = sources
    with pgstore._connection(url) as conn:
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (pgstore._lock_key("migrate", name),))
        _refuse_if_there(conn, url, name)  # again, under the lock: two migrations at once
        numbers = _copy(
            conn,
            "edi_control_numbers",
            "workspace, carrier, fingerprint, control_number, created_at",
            name,
            _rows(
                control,
                "SELECT carrier, fingerprint, control_number, created_at FROM control_numbers",
            ),
        )
        _copy(
            conn,
            "edi_control_floor",
            "workspace, carrier, highest",
            name,
            _rows(control, "SELECT carrier, highest FROM control_floor"),
        )
        baseline_rows = _copy(
            conn,
            "edi_baseline_members",
            "workspace, carrier, member_key, state",
            name,
            _rows(baseline, "SELECT carrier, member_key, state FROM members"),
        )
        _copy(
            conn,
            "edi_baseline_proposed",
            "workspace, carrier, fingerprint, member_key, state",
            name,
            _rows(baseline, "SELECT carrier, fingerprint, member_key, state FROM proposed"),
        )
        _copy(
            conn,
            "edi_baseline_history",
            "workspace, carrier, fingerprint, action, at, members, reason",
            name,
            _rows(
                baseline,
                "SELECT carrier, fingerprint, action, at, members, reason FROM history "
                "ORDER BY rowid",
            ),
        )
        discrepancies = _copy_discrepancies(conn, name, reconciled)
        entries = _copy(
            conn,
            "edi_log_entries",
            "workspace, seq, body, prev_hash, entry_hash",
            name,
            log_rows(log_db),
        )
        checkpoints = _copy(
            conn,
            "edi_log_checkpoints",
            "workspace, id, entry_count, head_hash, signed_at, signature, prev_hash",
            name,
            _rows(
                log_db,
                "SELECT id, entry_count, head_hash, signed_at, signature, prev_hash "
                "FROM checkpoints ORDER BY id",
            ),
        )
        moved = transmit.DeliveryLog(
            None,
            source_log.signing_key_path,
            witness_dir=source_log.witness_dir,
            backend=pgstore.PgLogBackend(url, name, conn=conn),
        )
        after = moved.verify()
        same = (after.entries, after.checkpoints, after.head) == (
            before.entries,
            before.checkpoints,
            before.head,
        )
        if not (after.ok and same):
            conn.rollback()
            raise DeliveryLogError(
                "migrate-verify-failed",
                "the delivery log copied into the store does not verify "
                f"({after.problem or 'it differs from the SQLite log'}); the store was left "
                "unchanged",
                hint="Nothing was committed; the SQLite files are as they were.",
            )
        head = after.head.text if after.head else None
        conn.execute(
            "INSERT INTO edi_migrations (workspace, control_numbers, baseline_rows, log_entries, "
            "log_head) VALUES (%s, %s, %s, %s, %s)",
            (name, numbers, baseline_rows, entries, head),
        )
    return Migration(name, numbers, baseline_rows, entries, checkpoints, head, discrepancies)


# The other way: a scratch copy for `edi run --dry-run` ----------------------------------------

# (SQLite file, its schema, [(SQLite table, columns, store table, order, the carrier's only)])
SCRATCH_COPIES: tuple[tuple[str, str, tuple[tuple[str, str, str, str, bool], ...]], ...] = (
    (
        "control.sqlite",
        CONTROL_SCHEMA,
        (
            (
                "control_numbers",
                "carrier, fingerprint, control_number, created_at",
                "edi_control_numbers",
                "control_number",
                False,
            ),
            ("control_floor", "carrier, highest", "edi_control_floor", "carrier", False),
        ),
    ),
    (
        "baseline.sqlite",
        BASELINE_SCHEMA,
        (
            ("members", "carrier, member_key, state", "edi_baseline_members", "member_key", True),
            (
                "history",
                "carrier, fingerprint, action, at, members, reason",
                "edi_baseline_history",
                "id",
                True,
            ),
        ),
    ),
    (
        "delivery-log.sqlite",
        LOG_SCHEMA,
        (
            ("entries", "seq, body, prev_hash, entry_hash", "edi_log_entries", "seq", False),
            (
                "checkpoints",
                "id, entry_count, head_hash, signed_at, signature, prev_hash",
                "edi_log_checkpoints",
                "id",
                False,
            ),
        ),
    ),
)


def copy_to_sqlite(workspace: Workspace, carrier: str, state: Path) -> None:
    """The store's rows of this workspace (of the baseline, the carrier's), as the SQLite files
    of a workspace without a store, under `state` (owner-only: the baseline holds PHI). Read in
    one repeatable-read transaction, so the copy is one moment of the store."""
    target = stores.shared(workspace)
    if target is None:
        raise ConfigError("store-not-configured", "this workspace has no [store] to copy from")
    url, name = target
    private_dir(state)
    with pgstore._connection(url) as conn:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        if not pgstore.reaches(conn, name):
            raise UsageError(
                "store-access-denied",
                f"this store role may not read the state of workspace {name!r}",
                hint="Use that employer's own credentials (edi store grant --workspace NAME).",
            )
        for file_name, schema, tables in SCRATCH_COPIES:
            path = private_file(state / file_name)
            with closing(sqlite3.connect(path)) as db:
                db.executescript(schema)
                for table, columns, source, order, per_carrier in tables:
                    where = "workspace = %s" + (" AND carrier = %s" if per_carrier else "")
                    rows = conn.execute(
                        f"SELECT {columns} FROM {source} WHERE {where} ORDER BY {order}",
                        (name, carrier) if per_carrier else (name,),
                    )
                    marks = ", ".join("?" for _ in columns.split(","))
                    db.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
                db.commit()
