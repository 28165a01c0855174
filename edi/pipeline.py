"""The pipeline: the one place, with the CLI, that touches disk, network and clock.

generate: read source → map (profile) → write body → allocate control number → write file →
validate → rename. A file that fails validation is deleted; nothing half-written is left.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import TypeVar

from edi.errors import SourceDataError, ValidationFailed
from edi.mapping import MappingContext, map_members
from edi.members import FileType, MappingReport, Member
from edi.plansource.export import read_export
from edi.profiles import CarrierProfile, load_profile
from edi.validate import ValidationReport, validate_file
from edi.workspace import Workspace
from edi.x12.control import ControlNumbers
from edi.x12.writer import Body, Envelope, content_fingerprint, write_body, write_file

Progress = Callable[[int, int], None]
T = TypeVar("T")


@dataclass(slots=True)
class GeneratedFile:
    carrier: str
    path: Path
    file_type: FileType
    envelope: Envelope
    fingerprint: str
    body: Body
    se01: int
    report: MappingReport
    validation: ValidationReport
    source: Path
    sample_data: bool
    as_of: date
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def isa13(self) -> str:
        return self.envelope.isa13

    def summary(self) -> dict[str, object]:
        """Counts and ids only: this goes to screens, logs and alerts."""
        r = self.report
        return {
            "carrier": self.carrier,
            "file": str(self.path),
            "file_type": self.file_type,
            "isa13": self.isa13,
            "gs06": str(self.envelope.control_number),
            "st02": "0001",
            "as_of": self.as_of.isoformat(),
            "members": self.body.members,
            "subscribers": self.body.subscribers,
            "dependents": self.body.dependents,
            "additions": r.additions,
            "changes": r.changes,
            "terminations": r.terminations,
            "coverage_lines": self.body.coverage_lines,
            "elections_ended": r.elections_ended,
            "declines_skipped": r.declines_skipped,
            "declines_sent": r.declines_sent,
            "future_coverages": r.future_coverages,
            "test_employees_skipped": r.test_employees_skipped,
            "quarantined": list(r.quarantined),
            "segments": self.se01,
            "sample_data": self.sample_data,
            "valid": self.validation.valid,
        }


def tracked(items: Iterable[T], total: int, progress: Progress | None) -> Iterator[T]:
    for done, item in enumerate(items, start=1):
        yield item
        if progress is not None and (done % 500 == 0 or done == total):
            progress(done, total)


def control_numbers(workspace: Workspace) -> ControlNumbers:
    return ControlNumbers(workspace.state_dir / "control.sqlite")


def resolve_source(workspace: Workspace, source: Path | None) -> tuple[Path, bool]:
    if source is not None:
        return source, False
    return workspace.default_source()


def write_834(
    workspace: Workspace,
    profile: CarrierProfile,
    members: Iterable[Member],
    *,
    out_dir: Path,
    file_type: FileType,
    now: datetime,
) -> tuple[Path, Envelope, str, Body, int, ValidationReport]:
    """Members → a validated 834 under its final name in out_dir, or nothing at all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    scratch = out_dir / f".{profile.name}.{uuid.uuid4().hex}"
    body_path, part_path = scratch.with_suffix(".body"), scratch.with_suffix(".part")
    try:
        body = write_body(members, profile, body_path)
        if body.members == 0:
            raise SourceDataError(
                "nothing-to-send",
                f"no member of carrier {profile.name!r} is in the source data",
                hint="Check the profile's `claims` patterns against the coverages' lookup codes.",
            )
        fingerprint = content_fingerprint(profile, file_type, body)
        envelope = control_numbers(workspace).allocate(profile.name, fingerprint, now)
        se01 = write_file(profile, file_type, body, envelope, part_path)
        validation = validate_file(part_path, profile)
        if not validation.valid:
            raise ValidationFailed(
                "file-invalid",
                f"the {profile.name} 834 (ISA13 {envelope.isa13}) failed validation with "
                f"{len(validation.findings)} finding(s); it was deleted and nothing was sent",
                hint="The findings name segment numbers; fix the profile or the records.",
                details=[f.line() for f in validation.findings[:50]],
            )
        final = out_dir / profile.file.name_pattern.format(
            carrier=profile.name,
            sponsor=profile.interchange.sender_id.strip(),
            isa13=envelope.isa13,
            date=envelope.created_at,
            file_type=file_type,
        )
        part_path.replace(final)
        return final, envelope, fingerprint, body, se01, validation
    finally:
        for leftover in (body_path, part_path):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def generate(
    workspace: Workspace,
    carrier: str,
    *,
    now: datetime,
    as_of: date | None = None,
    source: Path | None = None,
    out_dir: Path | None = None,
    file_type: FileType = "full",
    progress: Progress | None = None,
) -> GeneratedFile:
    profile = load_profile(workspace, carrier)
    source_dir, sample = resolve_source(workspace, source)
    effective = as_of or now.date()
    report = MappingReport()
    target = out_dir or workspace.home / "out" / carrier
    with read_export(source_dir) as data:
        groups = tracked(data.groups(), len(data), progress)
        members = map_members(MappingContext(profile, effective, file_type), groups, report)
        path, envelope, fingerprint, body, se01, validation = write_834(
            workspace, profile, members, out_dir=target, file_type=file_type, now=now
        )
    return GeneratedFile(
        carrier=carrier,
        path=path,
        file_type=file_type,
        envelope=envelope,
        fingerprint=fingerprint,
        body=body,
        se01=se01,
        report=report,
        validation=validation,
        source=source_dir,
        sample_data=sample,
        as_of=effective,
    )
