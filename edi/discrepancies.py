"""The discrepancy lifecycle store: `state/discrepancies.sqlite` (0600, folder 0700), or the
same rows in the shared PostgreSQL store (`edi.pgdiscrepancies`); `lifecycle` is both's.

The `discrepancies` table is a contract (the console reads it): ids, kinds, fields, severity,
status, first/last seen and notes (a JSON list of {at, status, note}); never a PHI value.
`reconciliations` records each run (counts by kind, roster hash), `details` the non-PHI detail
of each discrepancy (plan codes, coverage dates), `rosters` the remote files already fetched.

Re-running reconcile: still present → keeps its status (`last_seen` moves); gone → resolved
("fixed at source or carrier"); new → open; a resolved one that comes back is reopened. An
ignored discrepancy stays ignored while it persists.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from edi.errors import UsageError
from edi.private import private_dir, private_file
from edi.reconcile import Discrepancy

SCHEMA = """
CREATE TABLE IF NOT EXISTS discrepancies (
    id TEXT PRIMARY KEY,
    carrier TEXT,
    kind TEXT,
    subscriber_id TEXT,
    member_id TEXT,
    dependent_id TEXT,
    coverage_id TEXT,
    field TEXT,
    severity TEXT,
    status TEXT,
    first_seen TEXT,
    last_seen TEXT,
    notes TEXT
);
CREATE INDEX IF NOT EXISTS discrepancies_carrier ON discrepancies (carrier, status);
CREATE TABLE IF NOT EXISTS reconciliations (
    id TEXT PRIMARY KEY,
    carrier TEXT,
    as_of TEXT,
    roster_sha256 TEXT,
    at TEXT,
    summary_json TEXT
);
CREATE TABLE IF NOT EXISTS details (
    id TEXT PRIMARY KEY,
    detail TEXT,
    reconciliation_id TEXT
);
CREATE TABLE IF NOT EXISTS rosters (
    carrier TEXT,
    remote_name TEXT,
    size INTEGER,
    sha256 TEXT,
    fetched_at TEXT,
    reconciliation_id TEXT,
    PRIMARY KEY (carrier, remote_name, size)
);
"""
STATUSES = ("open", "resolved", "ignored")
COLUMNS = (
    "id",
    "carrier",
    "kind",
    "subscriber_id",
    "member_id",
    "dependent_id",
    "coverage_id",
    "field",
    "severity",
    "status",
    "first_seen",
    "last_seen",
    "notes",
)
AUTO_RESOLVED = "fixed at source or carrier"


@dataclass(frozen=True, slots=True)
class RunChanges:
    statuses: dict[str, str]
    new: list[str]
    resolved: list[str]
    reopened: list[str]


def note_entry(at: str, status: str, note: str) -> dict[str, str]:
    return {"at": at, "status": status, "note": note}


def opened_notes(at: str, run_id: str) -> str:
    """A new discrepancy's notes (JSON)."""
    return json.dumps([note_entry(at, "open", f"found by reconciliation {run_id}")])


def reopened_note(run_id: str) -> str:
    return f"found again by reconciliation {run_id}"


def lifecycle(found: Sequence[Discrepancy], stored: Mapping[str, str]) -> RunChanges:
    """What a run does to a carrier's discrepancies, whatever the store: `stored` maps each
    stored id of the carrier to its status. Found and not stored: new (open); found and
    resolved: reopened; found otherwise: keeps its status (an ignored one stays ignored); stored,
    not resolved and not found: resolved."""
    statuses: dict[str, str] = {}
    new: list[str] = []
    reopened: list[str] = []
    for d in found:
        previous = stored.get(d.id)
        if previous is None:
            new.append(d.id)
        elif previous == "resolved":
            reopened.append(d.id)
        statuses[d.id] = "open" if previous in (None, "resolved") else str(previous)
    gone = sorted(i for i, status in stored.items() if status != "resolved" and i not in statuses)
    return RunChanges(statuses, new, gone, reopened)


def identity_columns(carrier: str, d: Discrepancy) -> tuple[str | None, ...]:
    """The stored columns from id to severity (the contract's order)."""
    return (
        d.id,
        carrier,
        d.kind,
        d.subscriber_id,
        d.member_id,
        d.dependent_id,
        d.coverage_id,
        d.field,
        d.severity,
    )


class DiscrepancyStore(Protocol):
    """Where reconciliation's discrepancies, runs and fetched rosters live: `SqliteDiscrepancies`
    (state/discrepancies.sqlite) or `edi.pgdiscrepancies.PgDiscrepancies`; see `edi.stores`."""

    def record_run(
        self,
        carrier: str,
        found: list[Discrepancy],
        *,
        run_id: str,
        now: datetime,
        as_of: str,
        roster_sha256: str,
        summary: dict[str, Any],
    ) -> RunChanges: ...

    def select(self, carrier: str | None = None, status: str = "open") -> list[dict[str, Any]]: ...

    def get(self, discrepancy_id: str) -> dict[str, Any]: ...

    def set_status(
        self, discrepancy_id: str, status: str, note: str, now: datetime
    ) -> dict[str, Any]: ...

    def open_errors(self, carrier: str | None = None) -> int: ...

    def runs(self, carrier: str | None = None) -> list[dict[str, Any]]: ...

    def fetched(self, carrier: str, remote_name: str, size: int) -> bool: ...

    def record_fetch(
        self,
        carrier: str,
        remote_name: str,
        size: int,
        sha256: str,
        now: datetime,
        reconciliation_id: str | None,
    ) -> None: ...


def check_status(status: str) -> None:
    if status not in (*STATUSES, "all"):
        raise UsageError("bad-status", "--status must be open, resolved, ignored or all")


def check_note(note: str) -> str:
    if not note.strip():
        raise UsageError("note-required", "a note is required (--note TEXT)")
    return note.strip()


def one_match(discrepancy_id: str, rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The one discrepancy whose id starts with `discrepancy_id`."""
    if not rows:
        raise UsageError("discrepancy-unknown", f"no discrepancy {discrepancy_id}")
    if len(rows) > 1:
        raise UsageError(
            "discrepancy-ambiguous", f"{discrepancy_id} is the start of {len(rows)} ids"
        )
    return rows[0]


class SqliteDiscrepancies:
    """The embedded store: state/discrepancies.sqlite (0600, folder 0700)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_dir(path.parent)
        private_file(path)
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30)) as db:
            db.row_factory = sqlite3.Row
            yield db

    # A reconciliation run ----------------------------------------------------------------------

    def record_run(
        self,
        carrier: str,
        found: list[Discrepancy],
        *,
        run_id: str,
        now: datetime,
        as_of: str,
        roster_sha256: str,
        summary: dict[str, Any],
    ) -> RunChanges:
        at = now.isoformat()
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                stored = {
                    str(row["id"]): str(row["status"])
                    for row in db.execute(
                        "SELECT id, status FROM discrepancies WHERE carrier = ?", (carrier,)
                    )
                }
                changes = lifecycle(found, stored)
                opened = opened_notes(at, run_id)
                new = set(changes.new)
                for d in found:
                    if d.id in new:
                        db.execute(
                            "INSERT INTO discrepancies VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            (*identity_columns(carrier, d), "open", at, at, opened),
                        )
                    else:
                        db.execute(
                            "UPDATE discrepancies SET last_seen = ?, severity = ? WHERE id = ?",
                            (at, d.severity, d.id),
                        )
                    db.execute(
                        "INSERT OR REPLACE INTO details VALUES (?, ?, ?)", (d.id, d.detail, run_id)
                    )
                for discrepancy_id in changes.reopened:
                    self._set(db, discrepancy_id, "open", reopened_note(run_id), at)
                for discrepancy_id in changes.resolved:
                    self._set(db, discrepancy_id, "resolved", AUTO_RESOLVED, at)
                db.execute(
                    "INSERT INTO reconciliations VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, carrier, as_of, roster_sha256, at, json.dumps(summary)),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return changes

    @staticmethod
    def _set(db: sqlite3.Connection, discrepancy_id: str, status: str, note: str, at: str) -> None:
        row = db.execute("SELECT notes FROM discrepancies WHERE id = ?", (discrepancy_id,))
        notes = json.loads(row.fetchone()["notes"] or "[]")
        notes.append(note_entry(at, status, note))
        db.execute(
            "UPDATE discrepancies SET status = ?, notes = ? WHERE id = ?",
            (status, json.dumps(notes), discrepancy_id),
        )

    # Reading and the people's actions ---------------------------------------------------------

    def select(self, carrier: str | None = None, status: str = "open") -> list[dict[str, Any]]:
        check_status(status)
        query = "SELECT d.*, x.detail FROM discrepancies d LEFT JOIN details x USING (id) WHERE 1=1"
        args: list[str] = []
        if carrier:
            query += " AND d.carrier = ?"
            args.append(carrier)
        if status != "all":
            query += " AND d.status = ?"
            args.append(status)
        query += " ORDER BY d.carrier, d.kind, d.subscriber_id, d.member_id, d.id"
        with self._db() as db:
            return [self._row(row) for row in db.execute(query, args)]

    @staticmethod
    def _row(row: sqlite3.Row) -> dict[str, Any]:
        found = {name: row[name] for name in COLUMNS}
        found["notes"] = json.loads(found["notes"] or "[]")
        found["detail"] = row["detail"] if "detail" in row.keys() else None  # noqa: SIM118
        return found

    def get(self, discrepancy_id: str) -> dict[str, Any]:
        with self._db() as db:
            rows = db.execute(
                "SELECT d.*, x.detail FROM discrepancies d LEFT JOIN details x USING (id) "
                "WHERE d.id LIKE ? ORDER BY d.id",
                (discrepancy_id + "%",),
            ).fetchall()
        return one_match(discrepancy_id, [self._row(row) for row in rows])

    def set_status(
        self, discrepancy_id: str, status: str, note: str, now: datetime
    ) -> dict[str, Any]:
        note = check_note(note)
        found = self.get(discrepancy_id)
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            self._set(db, found["id"], status, note, now.isoformat())
            db.execute("COMMIT")
        return self.get(found["id"])

    def open_errors(self, carrier: str | None = None) -> int:
        query = "SELECT COUNT(*) FROM discrepancies WHERE status = 'open' AND severity = 'error'"
        args = [carrier] if carrier else []
        if carrier:
            query += " AND carrier = ?"
        with self._db() as db:
            return int(db.execute(query, args).fetchone()[0])

    def runs(self, carrier: str | None = None) -> list[dict[str, Any]]:
        with self._db() as db:
            rows = db.execute(
                "SELECT * FROM reconciliations"
                + (" WHERE carrier = ?" if carrier else "")
                + " ORDER BY at",
                [carrier] if carrier else [],
            ).fetchall()
        return [{**dict(row), "summary": json.loads(row["summary_json"])} for row in rows]

    # Fetched rosters ----------------------------------------------------------------------------

    def fetched(self, carrier: str, remote_name: str, size: int) -> bool:
        with self._db() as db:
            row = db.execute(
                "SELECT 1 FROM rosters WHERE carrier = ? AND remote_name = ? AND size = ?",
                (carrier, remote_name, size),
            ).fetchone()
        return row is not None

    def record_fetch(
        self,
        carrier: str,
        remote_name: str,
        size: int,
        sha256: str,
        now: datetime,
        reconciliation_id: str | None,
    ) -> None:
        with self._db() as db:
            db.execute(
                "INSERT OR REPLACE INTO rosters VALUES (?, ?, ?, ?, ?, ?)",
                (carrier, remote_name, size, sha256, now.isoformat(), reconciliation_id),
            )
            db.commit()


def store_path(state_dir: Path) -> Path:
    return state_dir / "discrepancies.sqlite"
