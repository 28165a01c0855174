"""The PlanSource export directory: `subscribers.json`, `dependents.json`, `coverages.json`.

Each file is a JSON array of records, one response envelope `{"status", "errors", "data"}`, or an
array of envelopes (pages). `edi pull` writes the same format.

Memory stays flat in the size of the export: files are read element by element, each record's
ids and cross-references are checked and the record spilled to a scratch SQLite database, and
`SourceData.groups()` validates and hands out one subscriber with their dependents and coverages
at a time.
"""

from __future__ import annotations

import json
import marshal
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from edi.errors import SourceDataError
from edi.plansource.models import Coverage, Dependent, Subscriber
from edi.private import private_file

MAX_REPORTED_PROBLEMS = 50
READ_BLOCK = 1 << 20

RecordT = TypeVar("RecordT", bound=BaseModel)
_decoder = json.JSONDecoder()


def _is_envelope(item: Any) -> bool:
    return isinstance(item, dict) and "data" in item and "status" in item


def _envelope_records(envelope: dict[str, Any], where: str) -> list[Any]:
    if envelope.get("status") != "success":
        raise SourceDataError(
            "source-envelope-failure",
            f"{where}: the PlanSource response envelope says status {envelope.get('status')!r}",
            hint="Pull the data again; a failed response is never treated as data.",
        )
    data = envelope.get("data")
    if not isinstance(data, list):
        raise SourceDataError("source-bad-shape", f"{where}: envelope 'data' is not a list")
    return data


class _ElementReader:
    """Reads a JSON document's top-level array one element at a time (or the whole document when
    it is not an array), holding at most one element plus one block in memory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.stream = path.open("r", encoding="utf-8")
        self.buffer = ""
        self.pos = 0
        self.eof = False

    def close(self) -> None:
        self.stream.close()

    def _fill(self) -> bool:
        block = self.stream.read(READ_BLOCK)
        if not block:
            self.eof = True
            return False
        self.buffer = self.buffer[self.pos :] + block
        self.pos = 0
        return True

    def _skip_space(self) -> str:
        while True:
            while self.pos < len(self.buffer) and self.buffer[self.pos] in " \t\r\n":
                self.pos += 1
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self._fill():
                return ""

    def _value(self) -> Any:
        self._skip_space()
        while True:
            try:
                value, end = _decoder.raw_decode(self.buffer, self.pos)
            except json.JSONDecodeError as exc:
                if self._fill():
                    continue
                raise SourceDataError(
                    "source-not-json",
                    f"{self.path.name} is not valid JSON (near character {exc.pos})",
                ) from None
            self.pos = end
            return value

    def _expect_end(self) -> None:
        """One document per file: anything after it (a second document, a truncated copy
        appended by a bad download) is refused, not ignored."""
        if self._skip_space() != "":
            raise SourceDataError(
                "source-not-json",
                f"{self.path.name} has data after the end of its JSON document",
                hint="Pull the data again; the file holds more than one JSON document.",
            )

    def elements(self) -> Iterator[Any]:
        """Yields the array's elements; a non-array document is yielded whole."""
        first = self._skip_space()
        if first != "[":
            if first == "":
                raise SourceDataError("source-not-json", f"{self.path.name} is empty")
            yield self._value()
            self._expect_end()
            return
        self.pos += 1
        if self._skip_space() == "]":
            self.pos += 1
            self._expect_end()
            return
        while True:
            yield self._value()
            separator = self._skip_space()
            self.pos += 1
            if separator == "]":
                self._expect_end()
                return
            if separator != ",":
                raise SourceDataError(
                    "source-not-json", f"{self.path.name} is not valid JSON (expected , or ])"
                )


def raw_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of one export file, whatever its container shape, streamed."""
    if not path.exists():
        raise SourceDataError(
            "source-missing-file",
            f"{path.name} is missing from the source directory {path.parent}",
            hint="A PlanSource export has subscribers.json, dependents.json and coverages.json.",
        )
    reader = _ElementReader(path)
    try:
        pages_seen = 0
        for element in reader.elements():
            if _is_envelope(element):
                pages_seen += 1
                yield from _checked(
                    _envelope_records(element, f"{path.name} page {pages_seen}"), path
                )
            elif isinstance(element, list):
                yield from _checked(element, path)
            else:
                yield from _checked([element], path)
    except UnicodeDecodeError:
        raise SourceDataError("source-not-json", f"{path.name} is not UTF-8 text") from None
    finally:
        reader.close()


def _checked(records: list[Any], path: Path) -> Iterator[dict[str, Any]]:
    for record in records:
        if not isinstance(record, dict):
            raise SourceDataError("source-bad-shape", f"{path.name} holds a non-object record")
        yield record


_REASONS = {
    "missing": "missing required field",
    "string_type": "expected text",
    "string_too_short": "must not be empty",
    "date_type": "unreadable date",
    "decimal_parsing": "unreadable amount",
    "decimal_type": "unreadable amount",
    "bool_parsing": "expected true or false",
}


def describe_validation_error(kind: str, record: dict[str, Any], exc: ValidationError) -> str:
    """Field names and problem kinds only: pydantic's own text would echo the values (PHI)."""
    record_id = record.get("id")
    problems = []
    for error in exc.errors(include_input=False, include_url=False, include_context=False):
        field_name = ".".join(str(part) for part in error["loc"]) or "record"
        reason = _REASONS.get(error["type"], error["type"].replace("_", " "))
        problems.append(f"{field_name}: {reason}")
    shown_id = record_id if record_id not in (None, "") else "?"
    return f"{kind[:-1]} id={shown_id}: " + "; ".join(problems)


@dataclass(frozen=True, slots=True)
class SubscriberRecords:
    """One subscriber with the dependents and coverages that point at them."""

    subscriber: Subscriber
    dependents: tuple[Dependent, ...]
    coverages: tuple[Coverage, ...]


# Subscribers in file order; dependents and coverages staged as read, then (once every subscriber
# is known) checked and copied into tables clustered by their subscriber's position, so that
# `groups()` is three ordered scans merged. Ids and owners stay on disk: memory does not grow
# with the export.
SCHEMA = """
CREATE TABLE subscribers (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, body BLOB NOT NULL);
CREATE TABLE staged (
    kind INTEGER NOT NULL, seq INTEGER NOT NULL, id TEXT NOT NULL, owner_id TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE covered (
    seq INTEGER NOT NULL, coverage_id TEXT NOT NULL, dependent_id TEXT NOT NULL,
    owner_id TEXT NOT NULL
);
CREATE TABLE unclaimed (
    seq INTEGER PRIMARY KEY, coverage_id TEXT NOT NULL, owner_id TEXT NOT NULL
);
CREATE TABLE dependents (
    owner INTEGER NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (owner, seq)
) WITHOUT ROWID;
CREATE TABLE coverages (
    owner INTEGER NOT NULL, seq INTEGER NOT NULL, body BLOB NOT NULL, PRIMARY KEY (owner, seq)
) WITHOUT ROWID;
"""
CROSS_CHECKS = {
    "duplicate subscribers": """
        SELECT 'subscriber', id, 'duplicate id in subscribers.json' FROM subscribers
        GROUP BY id HAVING COUNT(*) > 1 ORDER BY MIN(seq)""",
    "duplicates": """
        SELECT CASE kind WHEN 1 THEN 'dependent' ELSE 'coverage' END, id,
               'duplicate id in ' || CASE kind WHEN 1 THEN 'dependents' ELSE 'coverages' END
               || '.json'
        FROM staged GROUP BY kind, id HAVING COUNT(*) > 1 ORDER BY kind, MIN(seq)""",
    "orphans": """
        SELECT CASE kind WHEN 1 THEN 'dependent' ELSE 'coverage' END, id,
               'subscriber_id=' || owner_id || ' not found'
        FROM staged st WHERE NOT EXISTS (SELECT 1 FROM subscribers s WHERE s.id = st.owner_id)
        ORDER BY kind, seq""",
    "covered dependents": """
        SELECT 'coverage', coverage_id, 'dependent id=' || dependent_id
               || ' is not a dependent of subscriber id=' || owner_id
        FROM covered c WHERE NOT EXISTS (
            SELECT 1 FROM staged d
            WHERE d.kind = 1 AND d.id = c.dependent_id AND d.owner_id = c.owner_id
        ) ORDER BY seq""",
}
CLUSTER = """
CREATE INDEX subscriber_ids ON subscribers (id);
CREATE INDEX staged_ids ON staged (kind, id, owner_id);
INSERT INTO dependents SELECT s.seq, st.seq, st.body FROM staged st
    JOIN subscribers s ON s.id = st.owner_id WHERE st.kind = 1;
INSERT INTO coverages SELECT s.seq, st.seq, st.body FROM staged st
    JOIN subscribers s ON s.id = st.owner_id WHERE st.kind = 2
"""
KINDS = ("subscribers", "dependents", "coverages")
INSERT_BATCH = 5000


def _raw_id(value: Any) -> str | None:
    kind = type(value)
    if kind is int:
        return str(value)
    if kind is not str:
        return None
    text: str = value.strip()
    return text or None


def _raw_id_list(value: Any) -> list[str | None]:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list):
        return [_raw_id(item) for item in value]
    return []


class SourceData:
    """A read export, spilled to a scratch database; iterate `groups()` once or many times.

    Records are spilled as read (marshal of the JSON object) and validated once, as `groups()`
    hands them out; invalid records are all listed, by id, when the iteration ends, and their
    subscriber's group is never handed out."""

    def __init__(self, db: sqlite3.Connection, scratch: Path, counts: dict[str, int]) -> None:
        self._db = db
        self._scratch = scratch
        self.counts = counts
        self._unclaimed_indexed = False

    @property
    def unclaimed_count(self) -> int:
        """Coverages no carrier profile claims (when `read_export` was told every claim)."""
        (count,) = self._db.execute("SELECT COUNT(*) FROM unclaimed").fetchone()
        return int(count)

    def unclaimed(self, limit: int | None = None) -> list[tuple[str, str]]:
        """(coverage id, subscriber id) of the coverages nobody claims, in source order."""
        rows = self._db.execute(
            "SELECT coverage_id, owner_id FROM unclaimed ORDER BY seq LIMIT ?",
            (-1 if limit is None else limit,),
        )
        return [(str(c), str(o)) for c, o in rows]

    def unclaimed_of(self, subscriber_id: str) -> list[str]:
        if not self._unclaimed_indexed:
            self._db.execute("CREATE INDEX IF NOT EXISTS unclaimed_owner ON unclaimed (owner_id)")
            self._unclaimed_indexed = True
        rows = self._db.execute(
            "SELECT coverage_id FROM unclaimed WHERE owner_id = ? ORDER BY seq", (subscriber_id,)
        )
        return [str(c) for (c,) in rows]

    def __len__(self) -> int:
        return self.counts["subscribers"]

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> SourceData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def groups(self) -> Iterator[SubscriberRecords]:
        problems: list[str] = []
        yield from self._walk(problems)
        _raise_if(problems, "the source data")

    def field_problems(self) -> list[str]:
        """Every invalid field of every record, without handing out any group."""
        problems: list[str] = []
        for _ in self._walk(problems):
            pass
        return problems

    def _walk(self, problems: list[str]) -> Iterator[SubscriberRecords]:
        dependents = _Owned(self._db, "dependents", Dependent)
        coverages = _Owned(self._db, "coverages", Coverage)
        for seq, body in self._db.execute("SELECT seq, body FROM subscribers ORDER BY seq"):
            before = len(problems)
            subscriber = _validated(Subscriber, "subscribers", body, problems)
            their_dependents = dependents.take(seq, problems)
            their_coverages = coverages.take(seq, problems)
            if subscriber is not None and len(problems) == before:
                yield SubscriberRecords(subscriber, their_dependents, their_coverages)


class _Owned(Generic[RecordT]):
    """One kind's records in owner order; `take` validates one subscriber's."""

    def __init__(self, db: sqlite3.Connection, kind: str, model: type[RecordT]) -> None:
        self.kind = kind
        self.model = model
        self._rows: Iterator[tuple[int, bytes]] = iter(
            db.execute(f"SELECT owner, body FROM {kind} ORDER BY owner, seq")
        )
        self._next = next(self._rows, None)

    def take(self, owner: int, problems: list[str]) -> tuple[RecordT, ...]:
        mine = []
        while self._next is not None and self._next[0] == owner:
            record = _validated(self.model, self.kind, self._next[1], problems)
            if record is not None:
                mine.append(record)
            self._next = next(self._rows, None)
        return tuple(mine)


def _validated(model: type[RecordT], kind: str, body: bytes, problems: list[str]) -> RecordT | None:
    raw = marshal.loads(body)
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.append(describe_validation_error(kind, raw, exc))
        return None


@dataclass(slots=True)
class _Loader:
    """The first pass: records spilled unvalidated, then ids, owners and cross-references checked
    in the database."""

    db: sqlite3.Connection
    claims: Callable[[str], bool]
    claimed_by_any: Callable[[str], bool] | None = None
    problems: list[str] = field(default_factory=list)
    claimed_codes: dict[str, bool] = field(default_factory=dict)

    def load(self, source: Path) -> None:
        for kind_number, kind in enumerate(KINDS):
            rows: list[tuple[Any, ...]] = []
            covered: list[tuple[int, str, str, str]] = []
            for seq, raw in enumerate(raw_records(source / f"{kind}.json")):
                row = self._row(kind_number, seq, raw, covered)
                if row is not None:
                    rows.append(row)
                if len(rows) >= INSERT_BATCH:
                    self._insert(kind_number, rows, covered)
            self._insert(kind_number, rows, covered)
        for statement in CLUSTER.split(";"):
            self.db.execute(statement)
        for query in CROSS_CHECKS.values():
            for name, record_id, problem in self.db.execute(query):
                self.problems.append(f"{name} id={record_id}: {problem}")

    def counts(self) -> dict[str, int]:
        return {
            kind: self.db.execute(f"SELECT COUNT(*) FROM {kind}").fetchone()[0] for kind in KINDS
        }

    def _insert(
        self, kind: int, rows: list[tuple[Any, ...]], covered: list[tuple[int, str, str, str]]
    ) -> None:
        if kind == 0:
            self.db.executemany("INSERT INTO subscribers VALUES (?, ?, ?)", rows)
        else:
            self.db.executemany("INSERT INTO staged VALUES (?, ?, ?, ?, ?)", rows)
        self.db.executemany("INSERT INTO covered VALUES (?, ?, ?, ?)", covered)
        rows.clear()
        covered.clear()

    def _row(
        self,
        kind: int,
        seq: int,
        raw: dict[str, Any],
        covered: list[tuple[int, str, str, str]],
    ) -> tuple[Any, ...] | None:
        if kind == 2 and not self._claimed(raw):
            self._note_unclaimed(raw)
            return None  # another carrier's coverage: its own run judges it
        name = KINDS[kind][:-1]
        record_id = _raw_id(raw.get("id"))
        if record_id is None:
            self.problems.append(f"{name} id=?: id: missing or not an id")
            return None
        if kind == 0:
            return (seq, record_id, marshal.dumps(raw))
        owner_id = _raw_id(raw.get("subscriber_id"))
        if owner_id is None:
            self.problems.append(f"{name} id={record_id}: subscriber_id: missing or not an id")
            return None
        if kind == 2:
            covered.extend(
                (seq, record_id, dependent_id or "?", owner_id)
                for dependent_id in _raw_id_list(raw.get("dependent_ids"))
            )
        return (kind, seq, record_id, owner_id, marshal.dumps(raw))

    def _note_unclaimed(self, coverage: dict[str, Any]) -> None:
        """A coverage no profile claims is listed by id (a stray space must not hide it)."""
        if self.claimed_by_any is None:
            return
        code = str(coverage.get("benefit_lookup_code") or "")
        if self.claimed_by_any(code):
            return
        record_id, owner_id = _raw_id(coverage.get("id")), _raw_id(coverage.get("subscriber_id"))
        if record_id is not None and owner_id is not None:
            self.db.execute(
                "INSERT INTO unclaimed (coverage_id, owner_id) VALUES (?, ?)", (record_id, owner_id)
            )

    def _claimed(self, coverage: dict[str, Any]) -> bool:
        code = str(coverage.get("benefit_lookup_code") or "")
        claimed = self.claimed_codes.get(code)
        if claimed is None:
            claimed = self.claimed_codes[code] = self.claims(code)
        return claimed


def _raise_if(problems: list[str], source: Path | str) -> None:
    if not problems:
        return
    shown = problems[:MAX_REPORTED_PROBLEMS]
    more = len(problems) - len(shown)
    raise SourceDataError(
        "source-invalid-records",
        f"{len(problems)} invalid record(s) in {source}"
        + (f" (first {len(shown)} listed)" if more else ""),
        hint="Fix the records in PlanSource (or the export) and run again; nothing was written.",
        record_ids=[p.split(":", 1)[0] for p in shown],
        details=shown,
    )


def _every_code(code: str) -> bool:
    return True


def read_export(
    source: Path,
    scratch_parent: Path,
    *,
    claims: Callable[[str], bool] = _every_code,
    claimed_by_any: Callable[[str], bool] | None = None,
) -> SourceData:
    """Reads and cross-checks an export directory; every problem names its record id.

    `claims` (a carrier's lookup-code test) keeps only the coverages that carrier claims: the
    others are other carriers' runs' business, and neither kept nor judged here;
    `claimed_by_any` (every profile's test) lists the ones nobody claims in `unclaimed`.

    Raises before anything is written when a record has no id, is duplicated, or points at a
    subscriber or dependent that is not there (listing field problems too); otherwise field
    problems are all listed by `groups()` when it ends, having handed out only valid groups."""
    if not source.is_dir():
        raise SourceDataError(
            "source-missing",
            f"source directory {source} does not exist",
            hint="Pass --source DIR or set `source` in edi.toml.",
        )
    # The index holds PHI: it lives in the caller's private scratch (a run's, under state/).
    scratch = Path(tempfile.mkdtemp(prefix="edi-source-", dir=scratch_parent))
    records = scratch / "records.sqlite"
    private_file(records)
    db = sqlite3.connect(records, isolation_level=None)
    try:
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
        db.execute("BEGIN")
        loader = _Loader(db, claims, claimed_by_any)
        loader.load(source)
        db.execute("COMMIT")
        data = SourceData(db, scratch, loader.counts())
        if loader.problems:  # then list the field problems too, so one round of fixes will do
            _raise_if(loader.problems + data.field_problems(), source)
    except BaseException:
        db.close()
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return data
