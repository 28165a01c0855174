"""The discrepancy lifecycle store: `state/discrepancies.sqlite` (0600, folder 0700).

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
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

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


def _note(at: str, status: str, note: str) -> dict[str, str]:
    return {"at": at, "status": status, "note": note}


class DiscrepancyStore:
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
                db.execute("CREATE TEMP TABLE seen (id TEXT PRIMARY KEY)")
                db.executemany("INSERT OR IGNORE INTO seen VALUES (?)", [(d.id,) for d in found])
                before = {
                    row["id"]: row["status"]
                    for row in db.execute(
                        "SELECT d.id, d.status FROM discrepancies d JOIN seen USING (id)"
                    )
                }
                new, reopened = [], []
                statuses: dict[str, str] = {}
                opened_note = json.dumps([_note(at, "open", f"found by reconciliation {run_id}")])
                for d in found:
                    previous = before.get(d.id)
                    if previous is None:
                        new.append(d.id)
                        statuses[d.id] = "open"
                        db.execute(
                            "INSERT INTO discrepancies VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                            (
                                d.id,
                                carrier,
                                d.kind,
                                d.subscriber_id,
                                d.member_id,
                                d.dependent_id,
                                d.coverage_id,
                                d.field,
                                d.severity,
                                "open",
                                at,
                                at,
                                opened_note,
                            ),
                        )
                    elif previous == "resolved":
                        reopened.append(d.id)
                        statuses[d.id] = "open"
                        self._set(db, d.id, "open", f"found again by reconciliation {run_id}", at)
                        db.execute(
                            "UPDATE discrepancies SET last_seen = ?, severity = ? WHERE id = ?",
                            (at, d.severity, d.id),
                        )
                    else:
                        statuses[d.id] = previous
                        db.execute(
                            "UPDATE discrepancies SET last_seen = ?, severity = ? WHERE id = ?",
                            (at, d.severity, d.id),
                        )
                    db.execute(
                        "INSERT OR REPLACE INTO details VALUES (?, ?, ?)", (d.id, d.detail, run_id)
                    )
                gone = [
                    str(row["id"])
                    for row in db.execute(
                        "SELECT id FROM discrepancies WHERE carrier = ? AND status != 'resolved' "
                        "AND id NOT IN (SELECT id FROM seen)",
                        (carrier,),
                    )
                ]
                for discrepancy_id in gone:
                    self._set(db, discrepancy_id, "resolved", AUTO_RESOLVED, at)
                db.execute(
                    "INSERT INTO reconciliations VALUES (?, ?, ?, ?, ?, ?)",
                    (run_id, carrier, as_of, roster_sha256, at, json.dumps(summary)),
                )
                db.execute("DROP TABLE seen")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return RunChanges(statuses, new, gone, reopened)

    @staticmethod
    def _set(db: sqlite3.Connection, discrepancy_id: str, status: str, note: str, at: str) -> None:
        row = db.execute("SELECT notes FROM discrepancies WHERE id = ?", (discrepancy_id,))
        notes = json.loads(row.fetchone()["notes"] or "[]")
        notes.append(_note(at, status, note))
        db.execute(
            "UPDATE discrepancies SET status = ?, notes = ? WHERE id = ?",
            (status, json.dumps(notes), discrepancy_id),
        )

    # Reading and the people's actions ---------------------------------------------------------

    def select(self, carrier: str | None = None, status: str = "open") -> list[dict[str, Any]]:
        if status not in (*STATUSES, "all"):
            raise UsageError("bad-status", "--status must be open, resolved, ignored or all")
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
        if not rows:
            raise UsageError("discrepancy-unknown", f"no discrepancy {discrepancy_id}")
        if len(rows) > 1:
            raise UsageError(
                "discrepancy-ambiguous", f"{discrepancy_id} is the start of {len(rows)} ids"
            )
        return self._row(rows[0])

    def set_status(
        self, discrepancy_id: str, status: str, note: str, now: datetime
    ) -> dict[str, Any]:
        if not note.strip():
            raise UsageError("note-required", "a note is required (--note TEXT)")
        found = self.get(discrepancy_id)
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            self._set(db, found["id"], status, note.strip(), now.isoformat())
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
