"""The baseline: per carrier, each member as the carrier last received them.

It moves forward only when a file built from it was delivered: a file's members are proposed
under the file's content fingerprint, and `commit` (called by the pipeline after a successful
delivery) makes them the baseline. A failed or unsent file leaves the baseline where it was, so
the next run sends the same changes again. It lives in the workspace state beside the 834s it
describes (it holds the same data they do) and is never printed.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from edi.members import CoverageLine, Member, Person
from edi.private import private_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS members (
    carrier TEXT NOT NULL, member_key TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (carrier, member_key)
);
CREATE TABLE IF NOT EXISTS proposed (
    carrier TEXT NOT NULL, fingerprint TEXT NOT NULL, member_key TEXT NOT NULL, state TEXT NOT NULL,
    PRIMARY KEY (carrier, fingerprint, member_key)
);
CREATE TABLE IF NOT EXISTS history (
    carrier TEXT NOT NULL, fingerprint TEXT, action TEXT NOT NULL, at TEXT NOT NULL,
    members INTEGER NOT NULL, reason TEXT
);
"""
PROPOSAL_BATCH = 1000
LOOKUP_BATCH = 5000


def _iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _fields(value: Any) -> dict[str, Any]:
    """A dataclass's fields, shallow and in sorted order (so the JSON is sorted without
    `sort_keys`): `dataclasses.asdict` deep-copies every value and was the slowest step of
    writing a large file."""
    return {name: getattr(value, name) for name in sorted(value.__dataclass_fields__)}


def _line_state(line: CoverageLine) -> dict[str, Any]:
    raw = _fields(line)
    raw.update(
        begin=_iso(line.begin),
        end=_iso(line.end),
        premium=_text(line.premium),
        volume=_text(line.volume),
        changed=_iso(line.changed),
    )
    return raw


def member_state(member: Member) -> str:
    """Sorted JSON of every field; dates ISO, amounts as text."""
    raw = _fields(member)
    person = _fields(member.person)
    person["birthdate"] = _iso(member.person.birthdate)
    raw.update(
        death_date=_iso(member.death_date),
        person=person,
        dates=[(qualifier, day.isoformat()) for qualifier, day in member.dates],
        coverages=[_line_state(line) for line in member.coverages],
    )
    return json.dumps(raw)


def _day(text: str | None) -> date | None:
    return date.fromisoformat(text) if text else None


def _amount(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def member_from_state(text: str) -> Member:
    raw = json.loads(text)
    person = raw.pop("person")
    person["birthdate"] = _day(person["birthdate"])
    lines = [
        CoverageLine(
            **{
                **line,
                "begin": _day(line["begin"]),
                "end": _day(line["end"]),
                "premium": _amount(line["premium"]),
                "volume": _amount(line.get("volume")),
                "changed": _day(line.get("changed")),
                "refs": tuple(tuple(ref) for ref in line["refs"]),
            }
        )
        for line in raw.pop("coverages")
    ]
    dates = tuple((qualifier, date.fromisoformat(day)) for qualifier, day in raw.pop("dates"))
    raw["death_date"] = _day(raw.get("death_date"))
    return Member(**raw, person=Person(**person), dates=dates, coverages=tuple(lines))


class BaselineStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        private_file(path)  # it holds PHI
        with self._db() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as db:
            db.execute("PRAGMA journal_mode=WAL")
            yield db

    def has_baseline(self, carrier: str) -> bool:
        with self._db() as db:
            return (
                db.execute("SELECT 1 FROM members WHERE carrier = ? LIMIT 1", (carrier,)).fetchone()
                is not None
            )

    def get(self, carrier: str, member_key: str) -> Member | None:
        with self._db() as db:
            row = db.execute(
                "SELECT state FROM members WHERE carrier = ? AND member_key = ?",
                (carrier, member_key),
            ).fetchone()
        return None if row is None else member_from_state(row[0])

    def lookup(self, carrier: str) -> BaselineReader:
        return BaselineReader(self.path, carrier)

    def proposal(self, carrier: str, token: str) -> ProposalWriter:
        return ProposalWriter(self.path, carrier, token)

    def propose(self, carrier: str, fingerprint: str, members: Iterable[Member]) -> int:
        """Stores the members a file will leave the carrier with; nothing moves yet."""
        count = 0
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            db.execute(
                "DELETE FROM proposed WHERE carrier = ? AND fingerprint = ?", (carrier, fingerprint)
            )
            for member in members:
                db.execute(
                    "INSERT OR REPLACE INTO proposed VALUES (?, ?, ?, ?)",
                    (carrier, fingerprint, member.key, member_state(member)),
                )
                count += 1
            db.execute("COMMIT")
        return count

    def commit(self, carrier: str, fingerprint: str, now: datetime) -> bool:
        """The file with this fingerprint was delivered: its proposal becomes the baseline."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            (count,) = db.execute(
                "SELECT COUNT(*) FROM proposed WHERE carrier = ? AND fingerprint = ?",
                (carrier, fingerprint),
            ).fetchone()
            if count == 0:
                db.execute("ROLLBACK")
                return False
            db.execute("DELETE FROM members WHERE carrier = ?", (carrier,))
            db.execute(
                "INSERT INTO members SELECT carrier, member_key, state FROM proposed "
                "WHERE carrier = ? AND fingerprint = ?",
                (carrier, fingerprint),
            )
            db.execute("DELETE FROM proposed WHERE carrier = ?", (carrier,))
            db.execute(
                "INSERT INTO history VALUES (?, ?, 'commit', ?, ?, NULL)",
                (carrier, fingerprint, now.isoformat(), count),
            )
            db.execute("COMMIT")
        return True

    def reset(self, carrier: str, reason: str, now: datetime) -> int:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            (count,) = db.execute(
                "SELECT COUNT(*) FROM members WHERE carrier = ?", (carrier,)
            ).fetchone()
            db.execute("DELETE FROM members WHERE carrier = ?", (carrier,))
            db.execute("DELETE FROM proposed WHERE carrier = ?", (carrier,))
            db.execute(
                "INSERT INTO history VALUES (?, NULL, 'reset', ?, ?, ?)",
                (carrier, now.isoformat(), count, reason),
            )
            db.execute("COMMIT")
        return int(count)

    def show(self, carrier: str) -> dict[str, Any]:
        """Counts and history, no member data."""
        with self._db() as db:
            rows = db.execute(
                "SELECT member_key FROM members WHERE carrier = ?", (carrier,)
            ).fetchall()
            history = db.execute(
                "SELECT action, at, members, fingerprint, reason FROM history "
                "WHERE carrier = ? ORDER BY rowid DESC LIMIT 10",
                (carrier,),
            ).fetchall()
        keys = [key for (key,) in rows]
        return {
            "carrier": carrier,
            "members": len(keys),
            "subscribers": sum(1 for key in keys if key.startswith("S")),
            "dependents": sum(1 for key in keys if key.startswith("D")),
            "history": [
                dict(zip(("action", "at", "members", "fingerprint", "reason"), h, strict=True))
                for h in history
            ],
        }


class ProposalWriter:
    """Writes the members passing through `tee` as the proposal of a file not yet finished;
    `finish` files it under the file's fingerprint, `discard` drops it."""

    def __init__(self, path: Path, carrier: str, token: str) -> None:
        self.carrier = carrier
        self.token = token
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._db.execute("BEGIN IMMEDIATE")

    def tee(self, members: Iterable[Member]) -> Iterator[Member]:
        rows: list[tuple[str, str, str, str]] = []
        for member in members:
            rows.append((self.carrier, self.token, member.key, member_state(member)))
            if len(rows) >= PROPOSAL_BATCH:
                self._insert(rows)
            yield member
        self._insert(rows)

    def keep(self, member: Member) -> None:
        """A member held out of the file stays in the proposal as the carrier last had them."""
        self._insert([(self.carrier, self.token, member.key, member_state(member))])

    def _insert(self, rows: list[tuple[str, str, str, str]]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO proposed VALUES (?, ?, ?, ?)", rows)
        rows.clear()

    def finish(self, fingerprint: str) -> None:
        self._db.execute(
            "DELETE FROM proposed WHERE carrier = ? AND fingerprint = ?",
            (self.carrier, fingerprint),
        )
        self._db.execute(
            "UPDATE proposed SET fingerprint = ? WHERE carrier = ? AND fingerprint = ?",
            (fingerprint, self.carrier, self.token),
        )
        self._db.execute("COMMIT")
        self._db.close()

    def discard(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._db.close()


class BaselineReader:
    """Keyed lookups, and afterwards the members no lookup asked for, over one open connection.

    The keys asked for are kept in a temporary table, not in memory: a pass over 100k employees
    asks for some 170k."""

    def __init__(self, path: Path, carrier: str) -> None:
        self.carrier = carrier
        self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
        self._db.execute("CREATE TEMP TABLE asked (member_key TEXT PRIMARY KEY) WITHOUT ROWID")
        self._asked: list[tuple[str]] = []

    def get(self, member_key: str) -> Member | None:
        self._asked.append((member_key,))
        if len(self._asked) >= LOOKUP_BATCH:
            self._remember_asked()
        row = self._db.execute(
            "SELECT state FROM members WHERE carrier = ? AND member_key = ?",
            (self.carrier, member_key),
        ).fetchone()
        return None if row is None else member_from_state(row[0])

    def _remember_asked(self) -> None:
        self._db.execute("BEGIN")
        self._db.executemany("INSERT OR IGNORE INTO temp.asked VALUES (?)", self._asked)
        self._db.execute("COMMIT")
        self._asked.clear()

    def others(self) -> Iterator[Member]:
        """The baseline's members that no `get` asked for, in key order."""
        self._remember_asked()
        rows = self._db.execute(
            "SELECT state FROM members m WHERE carrier = ? AND NOT EXISTS "
            "(SELECT 1 FROM temp.asked a WHERE a.member_key = m.member_key) ORDER BY member_key",
            (self.carrier,),
        )
        for (state,) in rows:
            yield member_from_state(state)

    def active_subscribers(self) -> int:
        """Subscribers with an active line: the guard's denominator, in the unit of its
        numerator (terminated subscribers)."""
        count = 0
        for (state,) in self._db.execute(
            "SELECT state FROM members WHERE carrier = ?", (self.carrier,)
        ):
            member = json.loads(state)
            if member["dependent_id"] is None and any(
                line["maintenance"] != "024" for line in member["coverages"]
            ):
                count += 1
        return count

    def close(self) -> None:
        self._db.close()
