"""The PlanSource export directory: `subscribers.json`, `dependents.json`, `coverages.json`.

Each file is a JSON array of records, one response envelope `{"status", "errors", "data"}`, or an
array of envelopes (pages). `edi pull` writes the same format.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ValidationError

from edi.errors import SourceDataError
from edi.plansource.models import Coverage, Dependent, PlanSourceRecord, Subscriber

EXPORT_FILES = {"subscribers": Subscriber, "dependents": Dependent, "coverages": Coverage}
MAX_REPORTED_PROBLEMS = 50

RecordT = TypeVar("RecordT", bound=PlanSourceRecord)


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


def raw_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of one export file, whatever its container shape."""
    try:
        document = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise SourceDataError(
            "source-missing-file",
            f"{path.name} is missing from the source directory {path.parent}",
            hint="A PlanSource export has subscribers.json, dependents.json and coverages.json.",
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SourceDataError(
            "source-not-json",
            f"{path.name} is not valid JSON (at position {exc.pos})"
            if isinstance(exc, json.JSONDecodeError)
            else f"{path.name} is not UTF-8 text",
        ) from None
    if _is_envelope(document):
        pages = [_envelope_records(document, path.name)]
    elif isinstance(document, list) and document and all(_is_envelope(i) for i in document):
        pages = [
            _envelope_records(page, f"{path.name} page {n}") for n, page in enumerate(document, 1)
        ]
    elif isinstance(document, list):
        pages = [document]
    else:
        raise SourceDataError(
            "source-bad-shape",
            f"{path.name} is neither a list of records, an envelope, nor a list of envelopes",
        )
    for page in pages:
        for record in page:
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
    return f"{kind[:-1]} id={record_id if record_id not in (None, '') else '?'}: " + "; ".join(
        problems
    )


def parse_records(
    path: Path, kind: str, model: type[RecordT], problems: list[str]
) -> list[RecordT]:
    records: list[RecordT] = []
    seen: set[str] = set()
    for raw in raw_records(path):
        try:
            record = model.model_validate(raw)
        except ValidationError as exc:
            problems.append(describe_validation_error(kind, raw, exc))
            continue
        if record.id in seen:
            problems.append(f"{kind[:-1]} id={record.id}: duplicate id in {path.name}")
            continue
        seen.add(record.id)
        records.append(record)
    return records


@dataclass(frozen=True, slots=True)
class SubscriberRecords:
    """One subscriber with the dependents and coverages that point at them."""

    subscriber: Subscriber
    dependents: tuple[Dependent, ...]
    coverages: tuple[Coverage, ...]


@dataclass(slots=True)
class SourceData:
    subscribers: list[Subscriber]
    dependents_by_subscriber: dict[str, list[Dependent]] = field(default_factory=dict)
    coverages_by_subscriber: dict[str, list[Coverage]] = field(default_factory=dict)

    def groups(self) -> Iterator[SubscriberRecords]:
        for subscriber in self.subscribers:
            yield SubscriberRecords(
                subscriber,
                tuple(self.dependents_by_subscriber.get(subscriber.id, ())),
                tuple(self.coverages_by_subscriber.get(subscriber.id, ())),
            )

    def __len__(self) -> int:
        return len(self.subscribers)


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


def read_export(source: Path) -> SourceData:
    """Reads and cross-checks an export directory; every problem names its record id."""
    if not source.is_dir():
        raise SourceDataError(
            "source-missing",
            f"source directory {source} does not exist",
            hint="Pass --source DIR or set `source` in edi.toml.",
        )
    problems: list[str] = []
    subscribers = parse_records(source / "subscribers.json", "subscribers", Subscriber, problems)
    dependents = parse_records(source / "dependents.json", "dependents", Dependent, problems)
    coverages = parse_records(source / "coverages.json", "coverages", Coverage, problems)
    known = {s.id for s in subscribers}
    data = SourceData(subscribers)
    dependents_by_id: dict[str, Dependent] = {}
    by_subscriber: defaultdict[str, list[Dependent]] = defaultdict(list)
    for dependent in dependents:
        if dependent.subscriber_id not in known:
            problems.append(
                f"dependent id={dependent.id}: subscriber_id={dependent.subscriber_id} not found"
            )
            continue
        dependents_by_id[dependent.id] = dependent
        by_subscriber[dependent.subscriber_id].append(dependent)
    coverage_groups: defaultdict[str, list[Coverage]] = defaultdict(list)
    for coverage in coverages:
        if coverage.subscriber_id not in known:
            problems.append(
                f"coverage id={coverage.id}: subscriber_id={coverage.subscriber_id} not found"
            )
            continue
        for dependent_id in coverage.dependent_ids:
            owner = dependents_by_id.get(dependent_id)
            if owner is None or owner.subscriber_id != coverage.subscriber_id:
                problems.append(
                    f"coverage id={coverage.id}: dependent id={dependent_id} is not a dependent "
                    f"of subscriber id={coverage.subscriber_id}"
                )
        coverage_groups[coverage.subscriber_id].append(coverage)
    _raise_if(problems, source)
    data.dependents_by_subscriber = dict(by_subscriber)
    data.coverages_by_subscriber = dict(coverage_groups)
    return data
