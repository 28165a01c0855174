"""What a change file would say now, without writing, proposing or reserving anything."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from pathlib import Path

from edi import stores
from edi.changes import ChangeSet, DiffContext, MemberChange, StreamingDiff
from edi.mapping import MappingContext
from edi.members import MappingReport, Member
from edi.pipeline.build import resolve_source
from edi.pipeline.context import RunContext
from edi.plansource.export import SubscriberRecords, read_export
from edi.rules import RulesReport, screen
from edi.runs import preview_scratch
from edi.workspace import Workspace


def _keep_held(reader: stores.BaselineLookup, records: SubscriberRecords) -> None:
    for key in (f"S{records.subscriber.id}", *(f"D{d.id}" for d in records.dependents)):
        reader.get(key)


def preview(
    workspace: Workspace,
    carrier: str,
    *,
    now: datetime,
    as_of: date | None = None,
    source: Path | None = None,
) -> ChangeSet:
    """What a change file would say now, without writing or proposing anything."""
    ctx = RunContext.open(workspace, carrier, now=now)
    profile, config = ctx.profile, ctx.changes
    effective = as_of or now.date()
    store = ctx.stores.baselines
    has_baseline = store.has_baseline(carrier)
    reader = store.lookup(carrier)
    source_dir, _ = resolve_source(workspace, source)
    try:
        differ = StreamingDiff(
            DiffContext(profile, config, effective),
            reader.get,
            reader.others,
            reader.active_subscribers() if has_baseline else 0,
            has_baseline,
        )
        with (
            preview_scratch(workspace.state_dir) as scratch,
            read_export(source_dir, scratch, claims=profile.claims_code) as data,
        ):
            mapped = screen(
                MappingContext(profile, effective, first_file=not has_baseline),
                data.groups(),
                MappingReport(),
                RulesReport(),
                on_held=lambda records: _keep_held(reader, records),
            )
            if not has_baseline:
                return first_file_preview(mapped)
            for _ in differ.members(mapped):
                pass
    finally:
        reader.close()
    return differ.result


FIRST_FILE_KINDS = {"021": "addition", "024": "termination", "025": "reinstatement"}


def first_file_preview(members: Iterable[Member]) -> ChangeSet:
    """With no baseline the first file is a full file of every member as mapped, so the preview
    counts exactly what `edi generate` writes (its INS03 per member)."""
    result = ChangeSet(has_baseline=False)
    for member in members:
        kind = FIRST_FILE_KINDS.get(member.maintenance, "change")
        result.changes.append(
            MemberChange(kind, member, len(member.coverages))  # type: ignore[arg-type]
        )
    return result
