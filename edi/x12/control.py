"""Interchange control numbers: allocated once per file content, persisted before writing.

A file is identified by carrier + content fingerprint (envelope excluded). Asking again for the
same content returns the same number and creation time, so a retry or a regeneration writes the
same bytes under the same ISA13; new content always gets a number never used before.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from edi.x12.writer import Envelope

MAX_CONTROL_NUMBER = 999_999_999

SCHEMA = """
CREATE TABLE IF NOT EXISTS control_numbers (
    carrier TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    control_number INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (carrier, fingerprint),
    UNIQUE (carrier, control_number)
)
"""


class ControlNumbers:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def _connect(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(SCHEMA)
        return connection

    def allocate(self, carrier: str, fingerprint: str, now: datetime) -> Envelope:
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    "SELECT control_number, created_at FROM control_numbers "
                    "WHERE carrier = ? AND fingerprint = ?",
                    (carrier, fingerprint),
                ).fetchone()
                if row is None:
                    (highest,) = db.execute(
                        "SELECT COALESCE(MAX(control_number), 0) FROM control_numbers "
                        "WHERE carrier = ?",
                        (carrier,),
                    ).fetchone()
                    number = highest % MAX_CONTROL_NUMBER + 1
                    created = now.astimezone(UTC).replace(second=0, microsecond=0)
                    db.execute(
                        "INSERT INTO control_numbers VALUES (?, ?, ?, ?)",
                        (carrier, fingerprint, number, created.isoformat()),
                    )
                    row = (number, created.isoformat())
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return Envelope(control_number=int(row[0]), created_at=datetime.fromisoformat(row[1]))

    def lookup(self, carrier: str, control_number: int) -> str | None:
        """The fingerprint a control number was given to (ack matching, audits)."""
        with closing(self._connect()) as db:
            row = db.execute(
                "SELECT fingerprint FROM control_numbers WHERE carrier = ? AND control_number = ?",
                (carrier, control_number),
            ).fetchone()
        return None if row is None else str(row[0])
