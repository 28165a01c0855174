"""Interchange control numbers: allocated once per file content, persisted before writing.

A file is identified by carrier + content fingerprint (envelope excluded). Asking again for the
same content returns the same number and creation time, so a retry or a regeneration writes the
same bytes under the same ISA13; new content always gets a number never used before.

The store can be lost or rolled back while the delivery log survives: before allocating, the
pipeline hands in what the log knows (`LoggedNumber`s); numbers the store lacks are restored
from it, and new numbers always start above the highest ever logged for the carrier.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from edi.private import private_file
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
);
CREATE TABLE IF NOT EXISTS control_floor (
    carrier TEXT PRIMARY KEY,
    highest INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class LoggedNumber:
    """A control number the delivery log recorded, with the content it was given to when known."""

    control_number: int
    fingerprint: str | None = None
    created_at: str | None = None


@dataclass(frozen=True, slots=True)
class Restoration:
    restored: int  # numbers put back with their content fingerprints
    store_highest: int  # the store's highest number before
    log_highest: int


class ControlNumbers:
    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    def _connect(self) -> sqlite3.Connection:
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        private_file(self.db_path)
        connection = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.executescript(SCHEMA)
        return connection

    @staticmethod
    def _highest(db: sqlite3.Connection, carrier: str) -> int:
        """The highest number the carrier ever had: allocated here, or restored as a floor."""
        (highest,) = db.execute(
            "SELECT MAX(COALESCE((SELECT MAX(control_number) FROM control_numbers "
            "WHERE carrier = ?1), 0), COALESCE((SELECT highest FROM control_floor "
            "WHERE carrier = ?1), 0))",
            (carrier,),
        ).fetchone()
        return int(highest)

    def restore_from_log(self, carrier: str, logged: Iterable[LoggedNumber]) -> Restoration | None:
        """Put back what the log knows and the store lacks; None when the store was complete."""
        numbers = list(logged)
        if not numbers:
            return None
        log_highest = max(n.control_number for n in numbers)
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                store_highest = self._highest(db, carrier)
                restored = 0
                if store_highest < log_highest:
                    for number in numbers:
                        if number.fingerprint and number.created_at:
                            restored += db.execute(
                                "INSERT OR IGNORE INTO control_numbers VALUES (?, ?, ?, ?)",
                                (
                                    carrier,
                                    number.fingerprint,
                                    number.control_number,
                                    number.created_at,
                                ),
                            ).rowcount
                    db.execute(
                        "INSERT OR REPLACE INTO control_floor VALUES (?, ?)",
                        (carrier, log_highest),
                    )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        if store_highest >= log_highest:
            return None
        return Restoration(restored, int(store_highest), log_highest)

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
                    highest = self._highest(db, carrier)
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
