"""Reconciliation's discrepancies, runs and fetched rosters in the shared PostgreSQL store.

The same rows and lifecycle (`edi.discrepancies.lifecycle`) as state/discrepancies.sqlite, keyed
by workspace name; a run holds a transaction-scoped advisory lock per (workspace, carrier) where
SQLite had `BEGIN IMMEDIATE`, so two reconciliations of one feed never interleave. Row-level
security (edi.pgstore) keeps one employer's discrepancies from another's login role, and such a
role is refused rather than shown none.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from edi.discrepancies import (
    AUTO_RESOLVED,
    COLUMNS,
    RunChanges,
    check_note,
    check_status,
    identity_columns,
    lifecycle,
    note_entry,
    one_match,
    opened_notes,
    reopened_note,
)
from edi.pgstore import _lock_key, workspace_session
from edi.reconcile import Discrepancy

if TYPE_CHECKING:
    import psycopg

SELECTED = ", ".join(COLUMNS) + ", detail"


class PgDiscrepancies:
    """`edi.discrepancies.SqliteDiscrepancies` with rows keyed by workspace."""

    def __init__(self, url: str, workspace: str) -> None:
        self.url = url
        self.workspace = workspace

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection[Any]]:
        with workspace_session(self.url, self.workspace, "discrepancies") as conn:
            yield conn

    def _lock(self, conn: psycopg.Connection[Any], carrier: str) -> None:
        conn.execute(
            "SELECT pg_advisory_xact_lock(%s)",
            (_lock_key("discrepancies", self.workspace, carrier),),
        )

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
        with self._session() as conn:
            self._lock(conn, carrier)
            stored = {
                str(row[0]): str(row[1])
                for row in conn.execute(
                    "SELECT id, status FROM edi_discrepancies "
                    "WHERE workspace = %s AND carrier = %s",
                    (self.workspace, carrier),
                )
            }
            changes = lifecycle(found, stored)
            opened = opened_notes(at, run_id)
            new = set(changes.new)
            with conn.cursor() as cursor:
                cursor.executemany(
                    "INSERT INTO edi_discrepancies VALUES "
                    "(%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s::jsonb,%s,%s)",
                    [
                        (
                            self.workspace,
                            *identity_columns(carrier, d),
                            *("open", at, at, opened, d.detail, run_id),
                        )
                        for d in found
                        if d.id in new
                    ],
                )
                cursor.executemany(
                    "UPDATE edi_discrepancies SET last_seen = %s, severity = %s, detail = %s, "
                    "detail_run = %s WHERE workspace = %s AND id = %s",
                    [
                        (at, d.severity, d.detail, run_id, self.workspace, d.id)
                        for d in found
                        if d.id not in new
                    ],
                )
            for discrepancy_id in changes.reopened:
                self._set(conn, discrepancy_id, "open", reopened_note(run_id), at)
            for discrepancy_id in changes.resolved:
                self._set(conn, discrepancy_id, "resolved", AUTO_RESOLVED, at)
            conn.execute(
                "INSERT INTO edi_reconciliations VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (self.workspace, run_id, carrier, as_of, roster_sha256, at, json.dumps(summary)),
            )
        return changes

    def _set(
        self, conn: psycopg.Connection[Any], discrepancy_id: str, status: str, note: str, at: str
    ) -> None:
        conn.execute(
            "UPDATE edi_discrepancies SET status = %s, notes = notes || %s::jsonb "
            "WHERE workspace = %s AND id = %s",
            (status, json.dumps([note_entry(at, status, note)]), self.workspace, discrepancy_id),
        )

    def select(self, carrier: str | None = None, status: str = "open") -> list[dict[str, Any]]:
        check_status(status)
        query = f"SELECT {SELECTED} FROM edi_discrepancies WHERE workspace = %s"
        args: list[str] = [self.workspace]
        if carrier:
            query += " AND carrier = %s"
            args.append(carrier)
        if status != "all":
            query += " AND status = %s"
            args.append(status)
        query += " ORDER BY carrier, kind, subscriber_id, member_id, id"
        with self._session() as conn:
            return [_row(row) for row in conn.execute(query, args)]

    def get(self, discrepancy_id: str) -> dict[str, Any]:
        with self._session() as conn:
            rows = conn.execute(
                f"SELECT {SELECTED} FROM edi_discrepancies WHERE workspace = %s "
                "AND starts_with(id, %s) ORDER BY id",
                (self.workspace, discrepancy_id),
            ).fetchall()
        return one_match(discrepancy_id, [_row(row) for row in rows])

    def set_status(
        self, discrepancy_id: str, status: str, note: str, now: datetime
    ) -> dict[str, Any]:
        note = check_note(note)
        found = self.get(discrepancy_id)
        with self._session() as conn:
            self._lock(conn, str(found["carrier"]))
            self._set(conn, found["id"], status, note, now.isoformat())
        return self.get(found["id"])

    def open_errors(self, carrier: str | None = None) -> int:
        query = (
            "SELECT COUNT(*) FROM edi_discrepancies WHERE workspace = %s "
            "AND status = 'open' AND severity = 'error'"
        )
        args = [self.workspace]
        if carrier:
            query += " AND carrier = %s"
            args.append(carrier)
        with self._session() as conn:
            row = conn.execute(query, args).fetchone()
        return int(row[0]) if row else 0

    def runs(self, carrier: str | None = None) -> list[dict[str, Any]]:
        query = (
            "SELECT id, carrier, as_of, roster_sha256, at, summary_json "
            "FROM edi_reconciliations WHERE workspace = %s"
        )
        args = [self.workspace]
        if carrier:
            query += " AND carrier = %s"
            args.append(carrier)
        with self._session() as conn:
            rows = conn.execute(query + " ORDER BY at", args).fetchall()
        names = ("id", "carrier", "as_of", "roster_sha256", "at", "summary_json")
        return [
            {**dict(zip(names, row, strict=True)), "summary": json.loads(row[5])} for row in rows
        ]

    def fetched(self, carrier: str, remote_name: str, size: int) -> bool:
        with self._session() as conn:
            row = conn.execute(
                "SELECT 1 FROM edi_rosters WHERE workspace = %s AND carrier = %s "
                "AND remote_name = %s AND size = %s",
                (self.workspace, carrier, remote_name, size),
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
        with self._session() as conn:
            conn.execute(
                "INSERT INTO edi_rosters VALUES (%s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (workspace, carrier, remote_name, size) DO UPDATE SET "
                "sha256 = EXCLUDED.sha256, fetched_at = EXCLUDED.fetched_at, "
                "reconciliation_id = EXCLUDED.reconciliation_id",
                (
                    self.workspace,
                    carrier,
                    remote_name,
                    size,
                    sha256,
                    now.isoformat(),
                    reconciliation_id,
                ),
            )


def _row(row: tuple[Any, ...]) -> dict[str, Any]:
    found = dict(zip((*COLUMNS, "detail"), row, strict=True))
    found["notes"] = list(found["notes"] or [])
    return found
