"""The PlanSource export directory: `subscribers.json`, `dependents.json`, `coverages.json`.

Each file is a JSON array of records, one response envelope `{"status", "errors", "data"}`, or an
array of envelopes (pages). `edi pull` writes the same format.

Memory stays flat in the size of the export: files are read element by element, each record is
validated and its text spilled to a scratch SQLite database, and `SourceData.groups()` hands out
one subscriber with their dependents and coverages at a time.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from edi.errors import SourceDataError
from edi.plansource.models import Coverage, Dependent, PlanSourceRecord, Subscriber

EXPORT_FILES: dict[str, type[PlanSourceRecord]] = {
    "subscribers": Subscriber,
    "dependents": Dependent,
    "coverages": Coverage,
}
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

    def elements(self) -> Iterator[Any]:
        """Yields the array's elements; a non-array document is yielded whole."""
        first = self._skip_space()
        if first != "[":
            if first == "":
                raise SourceDataError("source-not-json", f"{self.path.name} is empty")
            yield self._value()
            return
        self.pos += 1
        if self._skip_space() == "]":
            return
        while True:
            yield self._value()
            separator = self._skip_space()
            self.pos += 1
            if separator == "]":
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


def describe_validation_error(kind: str, record: dict[str, Any], exc: ValidationError) -> str:
    """Field names and problem kinds only: pydantic's own text would echo the values (PHI)."""
    record_id = record.get("id")
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        field_name = ".".join(str(part) for part in error["loc"]) or "record"
        reason = {
            "missing": "missing required field",
            "value_error": str(error.get("ctx", {}).get("error", "invalid value")),
        }.get(error["type"], error["type"].replace("_", " "))
        problems.append(f"{field_name}: {reason}")
    shown_id = record_id if record_id not in (None, "") else "?"
    return f"{kind[:-1]} id={shown_id}: " + "; ".join(problems)


@dataclass(frozen=True, slots=True)
class SubscriberRecords:
    """One subscriber with the dependents and coverages that point at them."""

    subscriber: Subscriber
    dependents: tuple[Dependent, ...]
    coverages: tuple[Coverage, ...]


SCHEMA = """
CREATE TABLE records (
    kind INTEGER NOT NULL,  -- 0 subscriber, 1 dependent, 2 coverage
    seq INTEGER NOT NULL,
    id TEXT NOT NULL,
    subscriber_id TEXT NOT NULL,
    body TEXT NOT NULL
);
"""
KINDS = ("subscribers", "dependents", "coverages")


class SourceData:
    """A read export, spilled to a scratch database; iterate `groups()` once or many times."""

    def __init__(self, db: sqlite3.Connection, scratch: Path, counts: dict[str, int]) -> None:
        self._db = db
        self._scratch = scratch
        self.counts = counts

    def __len__(self) -> int:
        return self.counts["subscribers"]

    def close(self) -> None:
        self._db.close()
        shutil.rmtree(self._scratch, ignore_errors=True)

    def __enter__(self) -> SourceData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _members_of(
        self, kind: int, subscriber_id: str, model: type[RecordT]
    ) -> tuple[RecordT, ...]:
        rows = self._db.execute(
            "SELECT body FROM records WHERE kind = ? AND subscriber_id = ? ORDER BY seq",
            (kind, subscriber_id),
        )
        return tuple(model.model_validate_json(body) for (body,) in rows)

    def groups(self) -> Iterator[SubscriberRecords]:
        subscribers = self._db.execute("SELECT body FROM records WHERE kind = 0 ORDER BY seq")
        for (body,) in subscribers:
            subscriber = Subscriber.model_validate_json(body)
            yield SubscriberRecords(
                subscriber,
                self._members_of(1, subscriber.id, Dependent),
                self._members_of(2, subscriber.id, Coverage),
            )


def _load(db: sqlite3.Connection, source: Path, problems: list[str]) -> dict[str, int]:
    counts = {}
    for kind_number, kind in enumerate(KINDS):
        model = EXPORT_FILES[kind]
        path = source / f"{kind}.json"
        batch: list[tuple[int, int, str, str, str]] = []
        count = 0
        for raw in raw_records(path):
            try:
                record = model.model_validate(raw)
            except ValidationError as exc:
                problems.append(describe_validation_error(kind, raw, exc))
                continue
            owner = record.id if kind_number == 0 else str(getattr(record, "subscriber_id", ""))
            batch.append((kind_number, count, record.id, owner, json.dumps(raw)))
            count += 1
            if len(batch) >= 5000:
                db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", batch)
                batch.clear()
        db.executemany("INSERT INTO records VALUES (?, ?, ?, ?, ?)", batch)
        counts[kind] = count
    db.execute("CREATE INDEX by_owner ON records (kind, subscriber_id, seq)")
    db.execute("CREATE INDEX by_id ON records (kind, id)")
    return counts


def _cross_check(db: sqlite3.Connection, problems: list[str]) -> None:
    duplicates = db.execute(
        "SELECT kind, id FROM records GROUP BY kind, id HAVING COUNT(*) > 1 ORDER BY kind, id"
    )
    for kind, record_id in duplicates:
        problems.append(f"{KINDS[kind][:-1]} id={record_id}: duplicate id in {KINDS[kind]}.json")
    orphans = db.execute(
        "SELECT kind, id, subscriber_id FROM records r WHERE kind > 0 AND NOT EXISTS "
        "(SELECT 1 FROM records s WHERE s.kind = 0 AND s.id = r.subscriber_id) ORDER BY kind, seq"
    )
    for kind, record_id, subscriber_id in orphans:
        problems.append(
            f"{KINDS[kind][:-1]} id={record_id}: subscriber_id={subscriber_id} not found"
        )
    _check_covered_dependents(db, problems)


def _check_covered_dependents(db: sqlite3.Connection, problems: list[str]) -> None:
    owners = dict(db.execute("SELECT id, subscriber_id FROM records WHERE kind = 1"))
    coverages = db.execute("SELECT body FROM records WHERE kind = 2 ORDER BY seq")
    for (body,) in coverages:
        raw = json.loads(body)
        if not raw.get("dependent_ids"):
            continue
        coverage = Coverage.model_validate(raw)
        for dependent_id in coverage.dependent_ids:
            if owners.get(dependent_id) != coverage.subscriber_id:
                problems.append(
                    f"coverage id={coverage.id}: dependent id={dependent_id} is not a dependent "
                    f"of subscriber id={coverage.subscriber_id}"
                )


def _raise_if(problems: list[str], source: Path) -> None:
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


def read_export(source: Path, scratch_parent: Path | None = None) -> SourceData:
    """Reads and cross-checks an export directory; every problem names its record id.

    Raises before anything is written when any record is invalid, duplicated, or points at a
    subscriber or dependent that is not there."""
    if not source.is_dir():
        raise SourceDataError(
            "source-missing",
            f"source directory {source} does not exist",
            hint="Pass --source DIR or set `source` in edi.toml.",
        )
    scratch = Path(tempfile.mkdtemp(prefix="edi-source-", dir=scratch_parent))
    db = sqlite3.connect(scratch / "records.sqlite", isolation_level=None)
    try:
        db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;" + SCHEMA)
        db.execute("BEGIN")
        problems: list[str] = []
        counts = _load(db, source, problems)
        db.execute("COMMIT")
        _cross_check(db, problems)
        _raise_if(problems, source)
    except BaseException:
        db.close()
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return SourceData(db, scratch, counts)
