"""The compliance delivery log: append-only, hash-chained, with Ed25519-signed checkpoints.

Each entry is a JSON object of delivery facts (never file contents). Its hash is
`SHA-256(prev_hash || canonical JSON of the entry)`, where the canonical JSON has sorted keys,
no spaces, UTF-8, and includes `seq` and `recorded_at`; the first entry's prev_hash is 64 zeros.
A checkpoint signs `"<entry count>:<head hash>"` with the workspace's Ed25519 key, so an entry
cut from the end is caught too. Nothing is updated or deleted: triggers refuse it, and `verify`
catches whoever drops the triggers.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from transmit.errors import LogError

GENESIS = "0" * 64
CHECKPOINT_EVERY = 10
EXPORT_FIELDS = [
    "seq",
    "recorded_at",
    "event",
    "outcome",
    "carrier",
    "file_id",
    "isa13",
    "gs06",
    "st02",
    "member_count",
    "coverage_count",
    "plaintext_sha256",
    "ciphertext_sha256",
    "plaintext_size",
    "ciphertext_size",
    "recipient_fingerprint",
    "signer_fingerprint",
    "remote_host",
    "remote_port",
    "host_key_fingerprint",
    "remote_temp_path",
    "remote_final_path",
    "attempt",
    "error_class",
    "error_code",
    "error_message",
    "verification",
    "ack_status",
    "alerts_sent",
    "actor_host",
    "actor_user",
    "schedule_id",
    "entry_hash",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    entry_count INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    signature TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the delivery log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the delivery log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'the delivery log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'the delivery log is append-only'); END;
"""


def canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(body)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    body: dict[str, Any]
    prev_hash: str
    entry_hash: str

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    entries: int
    checkpoints: int
    first_bad_seq: int | None = None
    problem: str = ""


class DeliveryLog:
    def __init__(self, db_path: Path, signing_key_path: Path) -> None:
        self.db_path = db_path
        self.signing_key_path = signing_key_path
        db_path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.db_path, timeout=30, isolation_level=None)) as db:
                db.execute("PRAGMA journal_mode=WAL")
                yield db
        except sqlite3.DatabaseError as exc:
            raise LogError(
                "log-unreadable", f"the delivery log {self.db_path} failed: {exc}"
            ) from exc

    # Signing key -----------------------------------------------------------------------------

    def _private_key(self) -> Ed25519PrivateKey:
        if not self.signing_key_path.exists():
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self.signing_key_path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.signing_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
        loaded = serialization.load_pem_private_key(self.signing_key_path.read_bytes(), None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise LogError("log-key-invalid", f"{self.signing_key_path} is not an Ed25519 key")
        return loaded

    def public_key(self) -> Ed25519PublicKey:
        return self._private_key().public_key()

    def export_public_key(self) -> str:
        """PEM for auditors: with it and the database they can verify without the tool."""
        return (
            self.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    # Writing ---------------------------------------------------------------------------------

    def append(self, event: str, now: datetime | None = None, **facts: Any) -> LogEntry:
        """Appends one entry; two processes appending at once cannot fork the chain."""
        recorded = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                head = db.execute(
                    "SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                seq, prev = (head[0] + 1, head[1]) if head else (1, GENESIS)
                body = {
                    "seq": seq,
                    "recorded_at": recorded,
                    "event": event,
                    **{k: v for k, v in facts.items() if v is not None},
                }
                entry_hash = chain_hash(prev, body)
                db.execute(
                    "INSERT INTO entries VALUES (?, ?, ?, ?)",
                    (seq, canonical(body), prev, entry_hash),
                )
                if seq % CHECKPOINT_EVERY == 0:
                    self._sign(db, seq, entry_hash, recorded)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        return LogEntry(seq, body, prev, entry_hash)

    def _sign(self, db: sqlite3.Connection, count: int, head: str, when: str) -> None:
        signature = self._private_key().sign(f"{count}:{head}".encode())
        db.execute(
            "INSERT INTO checkpoints (entry_count, head_hash, signed_at, signature) "
            "VALUES (?, ?, ?, ?)",
            (count, head, when, base64.b64encode(signature).decode()),
        )

    def checkpoint(self, now: datetime | None = None) -> int:
        """Signs the current head (the pipeline does this after every run); returns its count."""
        when = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            head = db.execute(
                "SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1"
            ).fetchone()
            last = db.execute("SELECT MAX(entry_count) FROM checkpoints").fetchone()[0]
            if head and head[0] != last:
                self._sign(db, head[0], head[1], when)
            db.execute("COMMIT")
        return int(head[0]) if head else 0

    # Reading ---------------------------------------------------------------------------------

    def entries(
        self,
        *,
        carrier: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        outcome: str | None = None,
        event: str | None = None,
    ) -> list[LogEntry]:
        with self._connection() as db:
            rows = db.execute(
                "SELECT seq, body, prev_hash, entry_hash FROM entries ORDER BY seq"
            ).fetchall()
        found = []
        for seq, body, prev, entry_hash in rows:
            facts = json.loads(body)
            when = datetime.fromisoformat(facts["recorded_at"])
            if (
                (carrier and facts.get("carrier") != carrier)
                or (outcome and facts.get("outcome") != outcome)
                or (event and facts.get("event") != event)
                or (since and when < since)
                or (until and when > until)
            ):
                continue
            found.append(LogEntry(seq, facts, prev, entry_hash))
        return found

    def get(self, seq: int) -> LogEntry | None:
        with self._connection() as db:
            row = db.execute(
                "SELECT seq, body, prev_hash, entry_hash FROM entries WHERE seq = ?", (seq,)
            ).fetchone()
        return None if row is None else LogEntry(row[0], json.loads(row[1]), row[2], row[3])

    def last_delivery(self, carrier: str, plaintext_sha256: str) -> LogEntry | None:
        """The entry that recorded this file (carrier + content) as delivered, if any."""
        for entry in reversed(self.entries(carrier=carrier)):
            if entry.get("plaintext_sha256") == plaintext_sha256 and entry.get("outcome") in (
                "delivered",
                "already-delivered",
            ):
                return entry
        return None

    # Verification ----------------------------------------------------------------------------

    def verify(self) -> VerifyReport:
        with self._connection() as db:
            rows = db.execute(
                "SELECT seq, body, prev_hash, entry_hash FROM entries ORDER BY seq"
            ).fetchall()
            checkpoints = db.execute(
                "SELECT entry_count, head_hash, signature FROM checkpoints ORDER BY id"
            ).fetchall()
        hashes: dict[int, str] = {}
        previous = GENESIS
        for expected, (seq, body, prev, entry_hash) in enumerate(rows, start=1):
            problem = self._entry_problem(expected, seq, body, prev, entry_hash, previous)
            if problem:
                return VerifyReport(False, len(rows), len(checkpoints), expected, problem)
            hashes[seq] = previous = entry_hash
        public = self.public_key() if checkpoints else None
        for count, head, signature in checkpoints:
            try:
                public.verify(base64.b64decode(signature), f"{count}:{head}".encode())  # type: ignore[union-attr]
            except (InvalidSignature, ValueError):
                return VerifyReport(
                    False,
                    len(rows),
                    len(checkpoints),
                    count,
                    f"checkpoint at entry {count} has a bad signature",
                )
            if hashes.get(count) != head:
                bad = count if count in hashes else len(rows) + 1
                return VerifyReport(
                    False,
                    len(rows),
                    len(checkpoints),
                    bad,
                    f"entry {count} is missing or differs from its signed checkpoint",
                )
        return VerifyReport(True, len(rows), len(checkpoints))

    @staticmethod
    def _entry_problem(
        expected: int, seq: int, body: str, prev: str, entry_hash: str, previous: str
    ) -> str:
        if seq != expected:
            return f"entry {expected} is missing (next entry is {seq})"
        try:
            facts = json.loads(body)
        except json.JSONDecodeError:
            return f"entry {seq} is not readable"
        if facts.get("seq") != seq:
            return f"entry {seq} carries another sequence number"
        if prev != previous:
            return f"entry {seq} does not follow entry {seq - 1}"
        if chain_hash(prev, facts) != entry_hash:
            return f"entry {seq} was altered (its hash does not match its content)"
        return ""

    # Export ----------------------------------------------------------------------------------

    def export_csv(self, stream: IO[str], entries: list[LogEntry]) -> None:
        writer = csv.DictWriter(stream, fieldnames=EXPORT_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for entry in entries:
            writer.writerow({**_flat(entry.body), "entry_hash": entry.entry_hash})

    def export_json(self, stream: IO[str], entries: list[LogEntry]) -> None:
        json.dump(
            [
                {**entry.body, "prev_hash": entry.prev_hash, "entry_hash": entry.entry_hash}
                for entry in entries
            ],
            stream,
            indent=2,
            default=str,
        )
        stream.write("\n")

    def render_html(
        self,
        path: Path,
        entries: list[LogEntry],
        report: VerifyReport,
        now: datetime,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> Path:
        """An HTML page for auditors: the period, a summary per carrier, every entry with its
        labelled hashes, the chain verification and the public key. A period with no entries
        says so in words."""
        from jinja2 import Environment, PackageLoader, select_autoescape

        environment = Environment(loader=PackageLoader("transmit"), autoescape=select_autoescape())
        by_carrier: dict[str, list[dict[str, Any]]] = {}
        for entry in entries:
            by_carrier.setdefault(str(entry.get("carrier", "-")), []).append(
                {**entry.body, "entry_hash": entry.entry_hash}
            )
        html = environment.get_template("log_report.html.j2").render(
            by_carrier=by_carrier,
            summary={carrier: _summary(rows) for carrier, rows in by_carrier.items()},
            report=report,
            generated_at=now.isoformat(),
            since=since.isoformat() if since else None,
            until=until.isoformat() if until else None,
            public_key=self.export_public_key(),
        )
        partial = path.with_name(f".{path.name}.part")
        partial.write_text(html)
        partial.replace(path)
        return path


def _summary(rows: list[dict[str, Any]]) -> dict[str, int]:
    """Per carrier: files delivered, re-runs that sent nothing, failures, attempts, acks."""
    counts = {
        "delivered": 0,
        "already_delivered": 0,
        "failed": 0,
        "attempts": 0,
        "acks_accepted": 0,
        "acks_rejected": 0,
        "other": 0,
    }
    for row in rows:
        event, outcome = row.get("event"), row.get("outcome")
        if event == "delivery" and outcome == "delivered":
            counts["delivered"] += 1
        elif event == "delivery" and outcome == "already-delivered":
            counts["already_delivered"] += 1
        elif event == "attempt":
            counts["attempts"] += 1
        elif event == "ack":
            rejected = row.get("ack_status") == "rejected"
            counts["acks_rejected" if rejected else "acks_accepted"] += 1
        elif outcome == "failed":
            counts["failed"] += 1
        else:
            counts["other"] += 1
    return counts


def _flat(body: dict[str, Any]) -> dict[str, Any]:
    actor = body.get("actor") or {}
    return {
        **body,
        "actor_host": actor.get("host"),
        "actor_user": actor.get("user"),
        "schedule_id": actor.get("schedule_id") or body.get("schedule_id"),
    }
