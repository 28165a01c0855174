"""The compliance delivery log: append-only, hash-chained, with chained Ed25519-signed checkpoints.

Each entry is a JSON object of delivery facts (never file contents). Its hash is
`SHA-256(prev_hash || canonical JSON of the entry)`, where the canonical JSON has sorted keys,
no spaces, UTF-8, and includes `seq` and `recorded_at`; the first entry's prev_hash is 64 zeros.

Every append also signs a checkpoint in the same transaction, so no entry is ever unsigned: a
checkpoint signs `"<entry count>:<head hash>:<previous checkpoint's hash>"` with the workspace's
Ed25519 key, where a checkpoint's hash is `SHA-256` of that message (the first one's previous
hash is 64 zeros). Deleting, reordering or re-chaining entries breaks the signed heads; deleting
checkpoints breaks the checkpoint chain; an entry after the newest checkpoint is a forgery.

Every checkpoint is also appended to a *witness* outside the database (one JSON line per
checkpoint, in a directory meant to live on other storage). The log must reach the newest
witnessed head and agree with every witnessed one, so cutting the tail together with its
checkpoints, or rolling the database back to an older copy, is caught. The signing key is
created only by the first append of a workspace that has neither a log nor a witness; a missing
key, a missing or zero-length log, or a log shorter than its witness are tampering, never a
reason to start a fresh log. Nothing is updated or deleted: triggers refuse it, and `verify`
catches whoever drops the triggers.
"""

from __future__ import annotations

import base64
import csv
import fcntl
import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, closing, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from transmit.errors import LogError

GENESIS = "0" * 64
WITNESS_FILE = "delivery-log.witness.jsonl"
# A checkpoint commits before its witness line is written: a process killed in between leaves
# the witness one line behind (the next write catches up). More than this is not a crash.
WITNESS_LAG = 1
TAMPER_HINT = (
    "Treat this as tampering: compare with the witness copy and the heads your auditors hold; "
    "never replace the log or the key with fresh ones (see README: the witness)."
)
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

TABLES = """
CREATE TABLE entries (
    seq INTEGER PRIMARY KEY,
    body TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    entry_hash TEXT NOT NULL
);
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    entry_count INTEGER NOT NULL,
    head_hash TEXT NOT NULL,
    signed_at TEXT NOT NULL,
    signature TEXT NOT NULL,
    prev_hash TEXT
);
"""
TRIGGERS = """
CREATE TRIGGER IF NOT EXISTS entries_no_update BEFORE UPDATE ON entries
BEGIN SELECT RAISE(ABORT, 'the delivery log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS entries_no_delete BEFORE DELETE ON entries
BEGIN SELECT RAISE(ABORT, 'the delivery log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_update BEFORE UPDATE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'the delivery log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS checkpoints_no_delete BEFORE DELETE ON checkpoints
BEGIN SELECT RAISE(ABORT, 'the delivery log is append-only'); END;
"""
SCHEMA = TABLES + TRIGGERS
HEAD_SQL = "SELECT seq, body, prev_hash, entry_hash FROM entries ORDER BY seq DESC LIMIT 1"


def canonical(body: dict[str, Any]) -> str:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def chain_hash(prev_hash: str, body: dict[str, Any]) -> str:
    return hashlib.sha256((prev_hash + canonical(body)).encode()).hexdigest()


def checkpoint_message(count: int, head: str, prev: str) -> bytes:
    return f"{count}:{head}:{prev}".encode()


def checkpoint_hash(count: int, head: str, prev: str) -> str:
    return hashlib.sha256(checkpoint_message(count, head, prev)).hexdigest()


def key_id(public: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key: names the key in the witness and in `log head`."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_public_key(path: Path) -> Ed25519PublicKey:
    """An auditor's pinned key: a PEM public key (`edi log public-key`) or the private key."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise LogError("log-public-key-unreadable", f"{path}: {exc.strerror}") from None
    loaded: object
    try:
        loaded = serialization.load_pem_public_key(data)
    except ValueError:
        try:
            private = serialization.load_pem_private_key(data, None)
        except (ValueError, TypeError):
            raise LogError("log-public-key-invalid", f"{path} is not a PEM Ed25519 key") from None
        loaded = private.public_key()
    if not isinstance(loaded, Ed25519PublicKey):
        raise LogError("log-public-key-invalid", f"{path} is not an Ed25519 key")
    return loaded


def parse_head(text: str) -> tuple[int, str]:
    """`COUNT:HASH` as printed by `edi log head`."""
    count, _, head = text.strip().partition(":")
    if not count.isdigit() or len(head) != 64 or any(c not in "0123456789abcdef" for c in head):
        raise ValueError("a head is COUNT:HASH (an entry count and a 64-digit hex SHA-256)")
    return int(count), head


@dataclass(frozen=True, slots=True)
class LogEntry:
    seq: int
    body: dict[str, Any]
    prev_hash: str
    entry_hash: str

    def get(self, key: str, default: Any = None) -> Any:
        return self.body.get(key, default)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed head: `count` entries whose newest hash is `head`, chained to `prev`."""

    count: int
    head: str
    prev: str
    signed_at: str
    signature: str
    key: str = ""

    @property
    def hash(self) -> str:
        return checkpoint_hash(self.count, self.head, self.prev)

    @property
    def text(self) -> str:
        return f"{self.count}:{self.head}"

    def signed_by(self, public: Ed25519PublicKey) -> bool:
        try:
            public.verify(
                base64.b64decode(self.signature, validate=True),
                checkpoint_message(self.count, self.head, self.prev),
            )
        except (InvalidSignature, ValueError):
            return False
        return True

    def as_json(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "head": self.head,
            "prev": self.prev,
            "signature": self.signature,
            "signed_at": self.signed_at,
            "key": self.key,
            "checkpoint_hash": self.hash,
        }


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    entries: int
    checkpoints: int
    first_bad_seq: int | None = None
    problem: str = ""
    problems: tuple[str, ...] = ()
    witnessed: int | None = None
    head: Checkpoint | None = None
    notes: tuple[str, ...] = field(default=())


Row = tuple[int, str, str, str]  # seq, body, prev_hash, entry_hash
PointRow = tuple[int, str, str, str, str]  # entry_count, head_hash, prev_hash, signed_at, signature


class LogConnection(Protocol):
    """One connection to a log's two tables. `begin` starts the one writer's transaction
    (nobody else appends until `commit` or `rollback`)."""

    def begin(self) -> None: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def head(self) -> Row | None: ...

    def entry(self, seq: int) -> Row | None: ...

    def entries(self) -> list[Row]: ...

    def checkpoints(self) -> list[tuple[Any, ...]]:
        """(id, entry_count, head_hash, prev_hash, signed_at, signature), oldest first."""
        ...

    def last_checkpoint(self) -> PointRow | None:
        """The newest chained checkpoint."""
        ...

    def checkpoint_at(self, count: int) -> PointRow | None:
        """The chained checkpoint at this entry count."""
        ...

    def checkpoints_after(self, count: int) -> list[PointRow]:
        """Chained checkpoints past this entry count, oldest first."""
        ...

    def insert_entry(self, seq: int, body: str, prev_hash: str, entry_hash: str) -> None: ...

    def insert_checkpoint(
        self, count: int, head: str, signed_at: str, signature: str, prev_hash: str
    ) -> None: ...


class LogBackend(Protocol):
    """Where a log's entries and checkpoints live: a SQLite file (the default) or a shared
    database (edi's PostgreSQL store). The chain, signatures, witness and checks are the
    DeliveryLog's, the same whatever the backend."""

    @property
    def where(self) -> str:
        """How messages name the log (a path, or the store and workspace)."""
        ...

    @property
    def tables(self) -> tuple[str, str]:
        """Where an auditor finds the entries and the checkpoints, e.g. to check them without
        the tool: table names, with the filter that selects this log's rows if any."""
        ...

    def exists(self) -> bool:
        """Whether the log was ever started (reading never starts one)."""
        ...

    def damage(self) -> str | None:
        """A log that exists but cannot be one (a zero-length file), else None."""
        ...

    def connect(self, *, write: bool) -> AbstractContextManager[LogConnection | None]:
        """A connection; None when reading a log that does not exist. `write` creates it."""
        ...

    def writer_lock(self) -> AbstractContextManager[None]:
        """One writer at a time, from the checks through the witness line."""
        ...


class SqliteConnection:
    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def begin(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        self.db.execute("ROLLBACK")

    def head(self) -> Row | None:
        row = self.db.execute(HEAD_SQL).fetchone()
        return None if row is None else (int(row[0]), row[1], row[2], row[3])

    def entry(self, seq: int) -> Row | None:
        row = self.db.execute(
            "SELECT seq, body, prev_hash, entry_hash FROM entries WHERE seq = ?", (seq,)
        ).fetchone()
        return None if row is None else (int(row[0]), row[1], row[2], row[3])

    def entries(self) -> list[Row]:
        return self.db.execute(
            "SELECT seq, body, prev_hash, entry_hash FROM entries ORDER BY seq"
        ).fetchall()

    def checkpoints(self) -> list[tuple[Any, ...]]:
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(checkpoints)")}
        prev = "prev_hash" if "prev_hash" in columns else "NULL"
        return self.db.execute(
            f"SELECT id, entry_count, head_hash, {prev}, signed_at, signature "
            "FROM checkpoints ORDER BY id"
        ).fetchall()

    def last_checkpoint(self) -> PointRow | None:
        row = self.db.execute(
            "SELECT entry_count, head_hash, prev_hash, signed_at, signature FROM checkpoints "
            "WHERE prev_hash IS NOT NULL ORDER BY id DESC LIMIT 1"
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], row[4])

    def checkpoint_at(self, count: int) -> PointRow | None:
        row = self.db.execute(
            "SELECT entry_count, head_hash, prev_hash, signed_at, signature FROM checkpoints "
            "WHERE prev_hash IS NOT NULL AND entry_count = ?",
            (count,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], row[4])

    def checkpoints_after(self, count: int) -> list[PointRow]:
        return self.db.execute(
            "SELECT entry_count, head_hash, prev_hash, signed_at, signature FROM checkpoints "
            "WHERE prev_hash IS NOT NULL AND entry_count > ? ORDER BY id",
            (count,),
        ).fetchall()

    def insert_entry(self, seq: int, body: str, prev_hash: str, entry_hash: str) -> None:
        self.db.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?)", (seq, body, prev_hash, entry_hash)
        )

    def insert_checkpoint(
        self, count: int, head: str, signed_at: str, signature: str, prev_hash: str
    ) -> None:
        self.db.execute(
            "INSERT INTO checkpoints (entry_count, head_hash, signed_at, signature, prev_hash) "
            "VALUES (?, ?, ?, ?, ?)",
            (count, head, signed_at, signature, prev_hash),
        )


class SqliteBackend:
    """The log in one SQLite file (the default): triggers refuse UPDATE and DELETE, and a
    writer restores them when dropped."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = db_path

    @property
    def where(self) -> str:
        return str(self.db_path)

    @property
    def tables(self) -> tuple[str, str]:
        return ("entries", "checkpoints")

    def exists(self) -> bool:
        return self.db_path.exists()

    def damage(self) -> str | None:
        if not self.db_path.exists():
            return None
        try:
            size = self.db_path.stat().st_size
        except OSError as exc:
            raise LogError("log-unreadable", f"the delivery log {self.db_path}: {exc}") from None
        if size == 0:
            return f"the delivery log {self.db_path} is zero-length (truncated or replaced)"
        return None

    @contextmanager
    def connect(self, *, write: bool) -> Iterator[LogConnection | None]:
        if not self.db_path.exists():
            if not write:
                yield None
                return
            self._create()
        try:
            with closing(
                sqlite3.connect(
                    f"file:{self.db_path}?mode=rw", uri=True, timeout=30, isolation_level=None
                )
            ) as db:
                db.execute("PRAGMA journal_mode=WAL")
                tables = {
                    row[0]
                    for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
                if not {"entries", "checkpoints"} <= tables:
                    raise LogError(
                        "log-not-a-log",
                        f"{self.db_path} has no delivery log tables",
                        hint=TAMPER_HINT,
                    )
                if write:
                    self._upgrade(db)
                yield SqliteConnection(db)
        except sqlite3.DatabaseError as exc:
            raise LogError(
                "log-unreadable",
                f"the delivery log {self.db_path} cannot be read: {exc}",
                hint="Restore it from a backup and run `edi log verify`; never start a new one.",
            ) from None

    def _create(self) -> None:
        """A new log appears complete (schema in place) or not at all; the first append only."""
        self.db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fresh = self.db_path.with_name(f".{self.db_path.name}.{uuid.uuid4().hex}.new")
        try:
            with closing(sqlite3.connect(fresh, isolation_level=None)) as db:
                db.executescript(SCHEMA)
                db.execute("PRAGMA journal_mode=WAL")
            os.chmod(fresh, 0o600)
            with suppress(FileExistsError):  # never replaces a log another process created
                os.link(fresh, self.db_path)
        finally:
            fresh.unlink(missing_ok=True)

    @staticmethod
    def _upgrade(db: sqlite3.Connection) -> None:
        """Restores dropped triggers; gives an older log the checkpoint chain column."""
        columns = {row[1] for row in db.execute("PRAGMA table_info(checkpoints)")}
        if "prev_hash" not in columns:
            db.execute("ALTER TABLE checkpoints ADD COLUMN prev_hash TEXT")
        db.executescript(TRIGGERS)

    @contextmanager
    def writer_lock(self) -> Iterator[None]:
        self.db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = self.db_path.with_name(f".{self.db_path.name}.lock")
        descriptor = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            yield
        finally:
            os.close(descriptor)


class _Tables:
    """What one read of the database found."""

    def __init__(
        self, rows: list[tuple[int, str, str, str]], checkpoints: list[tuple[Any, ...]]
    ) -> None:
        self.rows = rows
        self.checkpoints = checkpoints


class DeliveryLog:
    """The log in `db_path` (or in `backend`), signed with `signing_key_path`, witnessed in
    `witness_dir`.

    Constructing one touches nothing on disk: reading never creates a log, a key or a witness.
    `announce` (optional) receives the signed head after each `checkpoint()` (the end of a run).
    `backend` replaces the SQLite file with another home for the two tables (edi's PostgreSQL
    store); the chain, checkpoints, witness and every check stay the same.
    """

    def __init__(
        self,
        db_path: Path | None,
        signing_key_path: Path,
        *,
        witness_dir: Path | None = None,
        announce: Callable[[Checkpoint], object] | None = None,
        backend: LogBackend | None = None,
    ) -> None:
        if backend is None:
            if db_path is None:
                raise ValueError("a DeliveryLog needs a db_path or a backend")
            backend = SqliteBackend(db_path)
        self.db_path = db_path
        self.backend = backend
        self.signing_key_path = signing_key_path
        self.witness_dir = witness_dir
        self.announce = announce

    @property
    def witness_path(self) -> Path | None:
        return None if self.witness_dir is None else self.witness_dir / WITNESS_FILE

    @property
    def where(self) -> str:
        return self.backend.where

    @property
    def tables(self) -> tuple[str, str]:
        return self.backend.tables

    # The database ----------------------------------------------------------------------------

    def _fail(self, code: str, message: str) -> LogError:
        return LogError(code, message, hint=TAMPER_HINT)

    def _state_problem(self) -> LogError | None:
        """A log that is gone or emptied while something says it existed."""
        if self.backend.exists():
            damage = self.backend.damage()
            return None if damage is None else self._fail("log-zero-length", damage)
        witnessed = self._witness_tail()
        if witnessed is not None:
            return self._fail(
                "log-missing",
                f"the delivery log {self.where} is missing while its witness "
                f"{self.witness_path} records {witnessed.count} entries",
            )
        return None

    @contextmanager
    def _connection(self, *, write: bool = False) -> Iterator[LogConnection | None]:
        """A connection to the existing log, or None when there is no log (yet) to read."""
        problem = self._state_problem()
        if problem is not None:
            raise problem
        with self.backend.connect(write=write) as db:
            yield db

    def _read(self) -> _Tables:
        with self._connection() as db:
            if db is None:
                return _Tables([], [])
            rows = db.entries()
            checkpoints = db.checkpoints()
        return _Tables(rows, checkpoints)

    # Signing key -----------------------------------------------------------------------------

    def _private_key(self, *, create: bool = False) -> Ed25519PrivateKey:
        if not self.signing_key_path.exists():
            if not create:
                raise self._fail(
                    "log-key-missing",
                    f"the delivery log's signing key {self.signing_key_path} is missing",
                )
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            self.signing_key_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                descriptor = os.open(
                    self.signing_key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
                )
            except FileExistsError:
                pass  # another process created it first: use theirs
            else:
                with os.fdopen(descriptor, "wb") as handle:
                    handle.write(pem)
                    handle.flush()
                    os.fsync(handle.fileno())
        if self.signing_key_path.stat().st_mode & 0o077:
            raise LogError(
                "log-key-readable-by-others",
                f"the delivery log's signing key {self.signing_key_path} can be read by other "
                "users; it was not used",
                hint=f"chmod 600 {self.signing_key_path}, and consider the key exposed: "
                "auditors should check heads against their pinned public key.",
            )
        try:
            loaded = serialization.load_pem_private_key(self.signing_key_path.read_bytes(), None)
        except (OSError, ValueError, TypeError) as exc:
            raise self._fail(
                "log-key-invalid",
                f"the signing key {self.signing_key_path} cannot be read: "
                f"{getattr(exc, 'strerror', None) or type(exc).__name__}",
            ) from None
        if not isinstance(loaded, Ed25519PrivateKey):
            raise self._fail("log-key-invalid", f"{self.signing_key_path} is not an Ed25519 key")
        return loaded

    def public_key(self) -> Ed25519PublicKey:
        return self._private_key().public_key()

    def export_public_key(self) -> str:
        """PEM for auditors: with it, the database and the witness they verify without the tool."""
        return (
            self.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode()
        )

    def _public_pem_or_note(self) -> str:
        try:
            return self.export_public_key()
        except LogError as error:
            return error.message

    # The witness -----------------------------------------------------------------------------

    def _witness_tail(self) -> Checkpoint | None:
        """The newest witnessed checkpoint (the last line), read from the end of the file."""
        path = self.witness_path
        if path is None or not path.exists():
            return None
        try:
            with path.open("rb") as handle:
                handle.seek(0, os.SEEK_END)
                end = position = handle.tell()
                chunk = b""
                while position > 0 and chunk.rstrip(b"\n").count(b"\n") < 1:
                    position = max(0, position - 4096)
                    handle.seek(position)
                    chunk = handle.read(end - position)
        except OSError as exc:
            raise LogError(
                "log-witness-unreadable", f"the witness {path}: {exc.strerror}"
            ) from None
        lines = [line for line in chunk.split(b"\n") if line.strip()]
        if not lines:
            return None
        try:
            return _witness_line(lines[-1].decode())
        except ValueError:
            raise self._fail(
                "log-witness-corrupt", f"the last line of the witness {path} is not a checkpoint"
            ) from None

    def witnessed(self) -> list[Checkpoint]:
        """Every checkpoint in the witness, oldest first (a corrupt line raises LogError)."""
        path = self.witness_path
        if path is None or not path.exists():
            return []
        found = []
        try:
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, start=1):
                    if not line.strip():
                        continue
                    try:
                        found.append(_witness_line(line))
                    except ValueError:
                        raise self._fail(
                            "log-witness-corrupt",
                            f"line {number} of the witness {path} is not a checkpoint",
                        ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise LogError("log-witness-unreadable", f"the witness {path}: {exc}") from None
        return found

    def _witness_catch_up(self, db: LogConnection, public: Ed25519PublicKey) -> None:
        """Appends every signed checkpoint the witness has not seen yet, in order."""
        path = self.witness_path
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(descriptor, "a", encoding="utf-8") as handle:
            tail = self._witness_tail()
            rows = db.checkpoints_after(tail.count if tail else 0)
            previous = tail.hash if tail else None
            identity = key_id(public)
            for count, head, prev, signed_at, signature in rows:
                if previous is not None and prev != previous:
                    break  # not a continuation of what was witnessed: verify will say so
                point = Checkpoint(count, head, prev, signed_at, signature, identity)
                handle.write(json.dumps(point.as_json(), sort_keys=True) + "\n")
                previous = point.hash
            handle.flush()
            os.fsync(handle.fileno())

    # Writing ---------------------------------------------------------------------------------

    def _may_start(self) -> bool:
        """A brand-new log (and key) only in a workspace that has neither a log nor a witness."""
        return not self.backend.exists() and self._witness_tail() is None

    def append(self, event: str, now: datetime | None = None, **facts: Any) -> LogEntry:
        """Appends and signs one entry; two processes appending at once cannot fork the chain.

        Refuses (LogError) to write on a log that fails the checks `verify` makes of its newest
        part: an unsigned or altered tail, a checkpoint not signed by the key, a log behind its
        witness; otherwise the next run would sign over the tampering.
        """
        recorded = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        with self._writer_lock():
            problem = self._state_problem()
            if problem is not None:
                raise problem
            key = self._private_key(create=self._may_start())
            with self._connection(write=True) as db:
                assert db is not None
                db.begin()
                try:
                    head = db.head()
                    last = self._last_checkpoint(db)
                    self._check_tail(db, head, last, key.public_key())
                    seq, prev = (head[0] + 1, head[3]) if head else (1, GENESIS)
                    body = {
                        "seq": seq,
                        "recorded_at": recorded,
                        "event": event,
                        **{k: v for k, v in facts.items() if v is not None},
                    }
                    entry_hash = chain_hash(prev, body)
                    db.insert_entry(seq, canonical(body), prev, entry_hash)
                    self._sign(db, key, seq, entry_hash, last, recorded)
                    db.commit()
                except BaseException:
                    db.rollback()
                    raise
                self._witness_catch_up(db, key.public_key())
        return LogEntry(seq, body, prev, entry_hash)

    def _writer_lock(self) -> AbstractContextManager[None]:
        """One writer at a time (on this host for SQLite, on the store for PostgreSQL), from
        the checks through the witness line, so the witness trails the log by at most what a
        killed writer leaves (WITNESS_LAG)."""
        return self.backend.writer_lock()

    @staticmethod
    def _last_checkpoint(db: LogConnection) -> Checkpoint | None:
        row = db.last_checkpoint()
        return None if row is None else Checkpoint(*row)

    def _check_tail(
        self,
        db: LogConnection,
        head: Row | None,
        last: Checkpoint | None,
        public: Ed25519PublicKey,
    ) -> None:
        """The checks of `verify` that cost O(1): the newest entry, checkpoint and witness line."""
        path = self.witness_path
        if path is not None and not path.exists():
            if last is not None:
                raise self._fail(
                    "log-witness-missing",
                    f"the witness {path} is missing while the log has signed checkpoints",
                )
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        witnessed = self._witness_tail()
        count = head[0] if head else 0
        if witnessed is not None:
            if witnessed.count > count:
                raise self._fail(
                    "log-behind-witness",
                    f"the delivery log ends at entry {count} but its witness records "
                    f"{witnessed.count} (entries cut or rolled back)",
                )
            row = db.checkpoint_at(witnessed.count)
            if row is None or Checkpoint(*row).hash != witnessed.hash:
                raise self._fail(
                    "log-witness-mismatch",
                    f"the log's checkpoint at entry {witnessed.count} is missing or differs "
                    "from the witnessed one",
                )
        unwitnessed = len(db.checkpoints_after(witnessed.count if witnessed else 0))
        if path is not None and unwitnessed > WITNESS_LAG:
            raise self._fail(
                "log-witness-behind",
                f"the witness {path} lacks {unwitnessed} of the log's checkpoints (truncated or "
                "replaced by an older copy?)",
            )
        if last is None:
            if witnessed is not None:
                raise self._fail(
                    "log-checkpoints-missing",
                    "the delivery log has no signed checkpoint but its witness has "
                    f"{witnessed.count}",
                )
            if head is not None:
                self._check_legacy(db, public)
            return
        if head is None or last.count != count or last.head != head[3]:
            raise self._fail(
                "log-unsigned-tail",
                f"entries after {last.count} are not covered by a signed checkpoint "
                "(forged, or the chain was rewritten)",
            )
        if chain_hash(head[2], json.loads(head[1])) != head[3]:
            raise self._fail("log-entry-altered", f"entry {count} was altered")
        if not last.signed_by(public):
            raise self._fail(
                "log-bad-signature",
                f"the checkpoint at entry {last.count} is not signed by {self.signing_key_path}",
            )

    def _check_legacy(self, db: LogConnection, public: Ed25519PublicKey) -> None:
        """A log from before chained checkpoints gets its first link only if it is intact."""
        rows = db.entries()
        checkpoints = db.checkpoints()
        report = _Verification(self, public, None).check_tables(_Tables(rows, checkpoints))
        if report:
            raise self._fail("log-tampered", report[0][1])

    @staticmethod
    def _sign(
        db: LogConnection,
        key: Ed25519PrivateKey,
        count: int,
        head: str,
        last: Checkpoint | None,
        when: str,
    ) -> None:
        prev = last.hash if last else GENESIS
        signature = key.sign(checkpoint_message(count, head, prev))
        db.insert_checkpoint(count, head, when, base64.b64encode(signature).decode(), prev)

    def checkpoint(self, now: datetime | None = None) -> int:
        """Makes sure the head is signed and witnessed, then announces it (end of every run).

        Returns the entry count; 0 for a workspace with no log (nothing is created then).
        """
        when = (now or datetime.now(UTC)).astimezone(UTC).isoformat()
        if self._may_start():
            return 0
        with self._writer_lock():
            key = self._private_key()
            with self._connection(write=True) as db:
                assert db is not None
                db.begin()
                try:
                    head = db.head()
                    last = self._last_checkpoint(db)
                    if head and (last is None or last.count != head[0]):
                        self._check_tail(db, head, last, key.public_key())  # raises unless legacy
                        self._sign(db, key, head[0], head[3], last, when)
                    db.commit()
                except BaseException:
                    db.rollback()
                    raise
                self._witness_catch_up(db, key.public_key())
                signed = self._last_checkpoint(db)
        if signed is not None and self.announce is not None:
            self.announce(
                Checkpoint(
                    signed.count,
                    signed.head,
                    signed.prev,
                    signed.signed_at,
                    signed.signature,
                    key_id(key.public_key()),
                )
            )
        return signed.count if signed else 0

    def head(self) -> Checkpoint | None:
        """The newest signed checkpoint (read-only: creates nothing)."""
        tables = self._read()
        chained = [row for row in tables.checkpoints if row[3] is not None]
        if not chained:
            return None
        _, count, head, prev, signed_at, signature = chained[-1]
        return Checkpoint(count, head, prev, signed_at, signature, key_id(self.public_key()))

    # Reading ---------------------------------------------------------------------------------

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint row, oldest first (read-only; none without a log)."""
        return [
            Checkpoint(count, head, prev or "", signed_at, signature)
            for _, count, head, prev, signed_at, signature in self._read().checkpoints
        ]

    def entries(
        self,
        *,
        carrier: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        outcome: str | None = None,
        event: str | None = None,
    ) -> list[LogEntry]:
        found = []
        for seq, body, prev, entry_hash in self._read().rows:
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
            if db is None:
                return None
            row = db.entry(seq)
        return None if row is None else LogEntry(row[0], json.loads(row[1]), row[2], row[3])

    def last_delivery(self, carrier: str, plaintext_sha256: str) -> LogEntry | None:
        """The entry that recorded this file (carrier + content) as delivered, if any."""
        # Only a delivery entry says so: an attempt's "delivered" may be all a killed run logged.
        for entry in reversed(self.entries(carrier=carrier, event="delivery")):
            if entry.get("plaintext_sha256") == plaintext_sha256 and entry.get("outcome") in (
                "delivered",
                "already-delivered",
            ):
                return entry
        return None

    # Verification ----------------------------------------------------------------------------

    def verify(
        self,
        *,
        public_key: Ed25519PublicKey | None = None,
        auditor_head: tuple[int, str] | None = None,
    ) -> VerifyReport:
        """Every check, read-only; never raises for a broken log, it reports it.

        `public_key` is the auditor's pinned key (default: the workspace key's public half);
        `auditor_head` a `(count, hash)` the auditor recorded from `edi log head`.
        """
        return _Verification(self, public_key, auditor_head).run()

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
            public_key=self._public_pem_or_note(),
        )
        partial = path.with_name(f".{path.name}.part")
        partial.write_text(html)
        partial.replace(path)
        return path


def _witness_line(text: str) -> Checkpoint:
    data = json.loads(text)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    try:
        point = Checkpoint(
            int(data["count"]),
            str(data["head"]),
            str(data["prev"]),
            str(data["signed_at"]),
            str(data["signature"]),
            str(data.get("key", "")),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(str(exc)) from None
    return point


class _Verification:
    """One `verify`: collects every problem found, each with the first entry it concerns."""

    def __init__(
        self,
        log: DeliveryLog,
        pinned: Ed25519PublicKey | None,
        auditor_head: tuple[int, str] | None,
    ) -> None:
        self.log = log
        self.pinned = pinned
        self.public = pinned
        self.auditor_head = auditor_head
        self.problems: list[tuple[int | None, str]] = []
        self.hashes: dict[int, str] = {}
        self.chained: list[Checkpoint] = []

    def bad(self, seq: int | None, text: str) -> None:
        self.problems.append((seq, text))

    @staticmethod
    def collapse(problems: list[tuple[int | None, str]]) -> list[tuple[int | None, str]]:
        """The first of a run of same-kind problems, saying how many more there are."""
        collapsed: list[tuple[int | None, str]] = []
        kinds: dict[str, int] = {}
        for seq, text in problems:
            kind = "".join(c for c in text if not c.isdigit())
            if kind in kinds:
                index = kinds[kind]
                first_seq, first_text, more = *collapsed[index], 0
                if first_text.endswith(" more)"):
                    first_text, _, tail = first_text.rpartition(" (and ")
                    more = int(tail.split()[0])
                collapsed[index] = (first_seq, f"{first_text} (and {more + 1} more)")
                continue
            kinds[kind] = len(collapsed)
            collapsed.append((seq, text))
        return collapsed

    def run(self) -> VerifyReport:
        log = self.log
        witnessed: list[Checkpoint] = []
        try:
            witnessed = log.witnessed()
        except LogError as error:
            self.bad(None, error.message)
        try:
            exists = log.backend.exists()
        except LogError as error:  # a store that refuses this reader, or cannot be reached
            self.bad(None, error.message)
            return self.report(0, 0, witnessed)
        present = exists or bool(witnessed) or log.signing_key_path.exists()
        if present:
            try:
                workspace_key = log.public_key()
            except LogError as error:
                self.bad(None, error.message)
            else:
                if self.pinned is None:
                    self.public = workspace_key
                elif key_id(workspace_key) != key_id(self.pinned):
                    self.bad(None, "the workspace signing key is not the auditor's pinned key")
        try:
            tables = log._read()
        except LogError as error:
            self.bad(None, error.message)
            return self.report(0, 0, witnessed)
        self.problems.extend(self.check_tables(tables))
        self.check_witness(len(tables.rows), witnessed, tables)
        self.check_auditor_head(len(tables.rows))
        return self.report(len(tables.rows), len(tables.checkpoints), witnessed)

    def report(self, entries: int, checkpoints: int, witnessed: list[Checkpoint]) -> VerifyReport:
        self.problems = self.collapse(self.problems)
        first = self.problems[0] if self.problems else (None, "")
        return VerifyReport(
            ok=not self.problems,
            entries=entries,
            checkpoints=checkpoints,
            first_bad_seq=first[0],
            problem=first[1],
            problems=tuple(text for _, text in self.problems),
            witnessed=witnessed[-1].count if witnessed else None,
            head=self.chained[-1] if self.chained else None,
        )

    def check_tables(self, tables: _Tables) -> list[tuple[int | None, str]]:
        """The entry chain, the checkpoint chain, every signature, and that all is signed."""
        problems: list[tuple[int | None, str]] = []
        previous = GENESIS
        for expected, (seq, body, prev, entry_hash) in enumerate(tables.rows, start=1):
            self.hashes[seq] = entry_hash
            problem = _entry_problem(expected, seq, body, prev, entry_hash, previous)
            if problem:
                problems.append((expected, problem))
                break
            previous = entry_hash
        for seq, _, _, entry_hash in tables.rows:
            self.hashes[seq] = entry_hash
        count = len(tables.rows)
        previous_point, last_count = GENESIS, 0
        for _, entry_count, head, prev, signed_at, signature in tables.checkpoints:
            point = Checkpoint(entry_count, head, prev or "", signed_at, signature)
            if prev is None:  # written before checkpoints were chained
                if self.chained:
                    problems.append(
                        (entry_count, f"checkpoint at entry {entry_count} is not chained")
                    )
                elif self.public is not None and not _legacy_signed(point, self.public):
                    problems.append(
                        (entry_count, f"checkpoint at entry {entry_count} has a bad signature")
                    )
            else:
                if prev != previous_point:
                    problems.append(
                        (
                            entry_count,
                            f"checkpoint at entry {entry_count} does not follow the checkpoint "
                            "before it (checkpoints deleted, reordered or forged)",
                        )
                    )
                if self.public is not None and not point.signed_by(self.public):
                    whose = "the auditor's pinned key" if self.pinned else "the workspace key"
                    problems.append(
                        (
                            entry_count,
                            f"checkpoint at entry {entry_count} has a bad signature "
                            f"(not signed by {whose})",
                        )
                    )
                self.chained.append(point)
                previous_point = point.hash
            if entry_count <= last_count:
                problems.append((entry_count, f"checkpoint at entry {entry_count} goes backwards"))
            last_count = max(last_count, entry_count)
            if entry_count > count:
                problems.append(
                    (
                        count + 1,
                        f"checkpoint at entry {entry_count} but the log ends at entry {count} "
                        "(entries cut from the end)",
                    )
                )
            elif self.hashes.get(entry_count) != head:
                problems.append(
                    (entry_count, f"entry {entry_count} differs from its signed checkpoint")
                )
        if count and not tables.checkpoints:
            problems.append(
                (1, f"no signed checkpoint covers the log's {count} entries (checkpoints deleted)")
            )
        elif count > last_count:
            problems.append(
                (
                    last_count + 1,
                    f"entries {last_count + 1}-{count} are not covered by a signed checkpoint "
                    "(a forged or unsigned tail)",
                )
            )
        return problems

    def check_witness(self, count: int, witnessed: list[Checkpoint], tables: _Tables) -> None:
        path = self.log.witness_path
        if path is not None and not path.exists() and self.chained:
            self.bad(None, f"the witness {path} is missing while the log has signed checkpoints")
            return
        newest_count = witnessed[-1].count if witnessed else 0
        unwitnessed = sum(1 for point in self.chained if point.count > newest_count)
        if path is not None and unwitnessed > WITNESS_LAG:
            self.bad(
                None,
                f"the witness {path} lacks {unwitnessed} of the log's checkpoints (truncated or "
                "replaced by an older copy?)",
            )
        if not witnessed:
            return
        newest = witnessed[-1]
        if newest.count > count:
            self.bad(
                count + 1,
                f"the log ends at entry {count} but its witness records {newest.count} entries "
                "(entries cut from the end, or an older copy restored)",
            )
        in_log = {point.count: point.hash for point in self.chained}
        previous = GENESIS
        for number, point in enumerate(witnessed, start=1):
            if point.prev != previous:
                self.bad(point.count, f"witness line {number} does not follow the line before it")
            previous = point.hash
            if self.public is not None and not point.signed_by(self.public):
                self.bad(
                    point.count,
                    f"the witnessed checkpoint at entry {point.count} has a bad signature",
                )
            if point.count > count:
                continue
            if self.hashes.get(point.count) != point.head:
                self.bad(point.count, f"entry {point.count} differs from the witnessed head")
            elif in_log.get(point.count) != point.hash:
                self.bad(
                    point.count,
                    f"the witnessed checkpoint at entry {point.count} is missing from the log",
                )

    def check_auditor_head(self, count: int) -> None:
        if self.auditor_head is None:
            return
        at, head = self.auditor_head
        if at > count:
            self.bad(count + 1, f"the log ends at entry {count}, before the auditor's head {at}")
        elif self.hashes.get(at) != head:
            self.bad(at, f"entry {at} differs from the auditor's head {at}:{head[:12]}…")


def _legacy_signed(point: Checkpoint, public: Ed25519PublicKey) -> bool:
    try:
        public.verify(
            base64.b64decode(point.signature, validate=True), f"{point.count}:{point.head}".encode()
        )
    except (InvalidSignature, ValueError):
        return False
    return True


def _entry_problem(
    expected: int, seq: int, body: str, prev: str, entry_hash: str, previous: str
) -> str:
    if seq != expected:
        return f"entry {expected} is missing (next entry is {seq})"
    try:
        facts = json.loads(body)
    except json.JSONDecodeError:
        return f"entry {seq} is not readable"
    if not isinstance(facts, dict) or facts.get("seq") != seq:
        return f"entry {seq} carries another sequence number"
    if prev != previous:
        return f"entry {seq} does not follow entry {seq - 1}"
    if chain_hash(prev, facts) != entry_hash:
        return f"entry {seq} was altered (its hash does not match its content)"
    return ""


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
