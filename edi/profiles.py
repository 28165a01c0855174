"""Carrier profiles: `carriers/*.toml`, one per carrier, validated here.

A profile only narrows 005010X220A1: it chooses codes from the guide's lists, never adds
segments. Unknown keys are errors naming the file and the key.
"""

from __future__ import annotations

import fnmatch
from datetime import date
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import AfterValidator, Field, StringConstraints, ValidationError, model_validator

from edi.errors import ConfigError
from edi.plansource.models import normalize_code
from edi.workspace import StrictModel, Workspace, format_validation_error, load_toml
from edi.x12.grammar import segment_spec


def guide_codes(loop: str, seg_id: str, ref: str, qualifier: str | None = None) -> AfterValidator:
    """A profile value must be one of the implementation guide's codes for that element."""

    def check(value: str) -> str:
        spec = segment_spec(loop, seg_id, qualifier)
        element = next(e for e in spec.elements if e is not None and e.ref == ref)
        if element.codes is not None and value not in element.codes:
            raise ValueError(f"{value!r} is not a {ref} code of 005010X220A1")
        return value

    return AfterValidator(check)


RelationshipCode = Annotated[str, guide_codes("2000", "INS", "INS02")]
ReasonCode = Annotated[str, guide_codes("2000", "INS", "INS04")]
InsuranceLine = Annotated[str, guide_codes("2300", "HD", "HD03")]
CoverageLevelCode = Annotated[str, guide_codes("2300", "HD", "HD05")]
EmploymentStatusCode = Annotated[str, guide_codes("2000", "INS", "INS08")]
CoverageRefQualifier = Annotated[str, guide_codes("2300", "REF", "REF01", "1L")]
IdQualifier = Literal["01", "14", "20", "27", "28", "29", "30", "33", "ZZ"]

Id15 = Annotated[str, StringConstraints(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9 ]+$")]
GsId = Annotated[str, StringConstraints(min_length=2, max_length=15, pattern=r"^[A-Za-z0-9 ]+$")]
Separator = Annotated[str, StringConstraints(min_length=1, max_length=1)]
# X12 basic character set, without the delimiters: what the carrier sees is what the profile says.
PlanCode = Annotated[
    str, StringConstraints(min_length=1, max_length=50, pattern=r"^[A-Z0-9][A-Z0-9 \-./]*$")
]


V = TypeVar("V")


def _normalized_keys(table: dict[str, V]) -> dict[str, V]:
    """PlanSource values are client-configured: match them case- and separator-insensitively."""
    return {normalize_code(key): value for key, value in table.items()}


RelationshipTable = Annotated[dict[str, RelationshipCode], AfterValidator(_normalized_keys)]
ReasonTable = Annotated[dict[str, ReasonCode], AfterValidator(_normalized_keys)]
LevelTable = Annotated[dict[str, CoverageLevelCode], AfterValidator(_normalized_keys)]
EmploymentTable = Annotated[dict[str, EmploymentStatusCode], AfterValidator(_normalized_keys)]


class Interchange(StrictModel):
    sender_qualifier: IdQualifier = "ZZ"
    sender_id: Id15
    receiver_qualifier: IdQualifier = "ZZ"
    receiver_id: Id15
    gs_sender: GsId
    gs_receiver: GsId
    usage: Literal["P", "T"] = "T"
    ack_requested: bool = True


class Delimiters(StrictModel):
    element: Separator = "*"
    component: Separator = ":"
    repetition: Separator = "^"
    segment: Separator = "~"
    line_breaks: bool = True

    @model_validator(mode="after")
    def _distinct(self) -> Delimiters:
        chosen = [self.element, self.component, self.repetition, self.segment]
        if len(set(chosen)) != 4:
            raise ValueError("element, component, repetition and segment must all differ")
        if any(c.isalnum() or c == " " for c in chosen):
            raise ValueError("delimiters must not be letters, digits or spaces")
        return self


class Party(StrictModel):
    name: Annotated[str, StringConstraints(min_length=1, max_length=60)]
    id_qualifier: Literal["24", "94", "FI", "XV"] = "FI"
    id: Annotated[str, StringConstraints(min_length=2, max_length=80)]


class Policy(StrictModel):
    master_policy: str | None = None
    group_number: str | None = None


class FileNaming(StrictModel):
    # Fields: carrier, sponsor, isa13, date (file creation date), file_type.
    name_pattern: str = "{carrier}_834_{date:%Y%m%d}_{isa13}.834"

    @model_validator(mode="after")
    def _pattern_renders(self) -> FileNaming:
        try:
            name = self.name_pattern.format(
                carrier="c", sponsor="s", isa13="000000001", date=date(2026, 1, 1), file_type="f"
            )
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"name_pattern cannot be rendered: {exc}") from None
        if "/" in name or name.startswith("."):
            raise ValueError("name_pattern must give a plain file name")
        return self


class Members(StrictModel):
    identifier: Literal["subscriber_code", "ssn", "plansource_id"] = "subscriber_code"
    termination_date_is: Literal["last_covered_day", "first_uncovered_day"] = "last_covered_day"
    send_future_coverages: bool = True
    send_contact: bool = True
    # A full file repeats terminations whose last covered day is this recent; older ones were sent.
    termination_lookback_days: int = Field(120, ge=0)
    on_bad_record: Literal["fail", "quarantine"] = "fail"
    relationships: RelationshipTable
    employment_status: EmploymentTable = Field(
        default_factory=lambda: {
            "active_f": "FT",
            "active_p": "PT",
            "active": "AC",
            "terminated": "TE",
            "retired": "RT",
            "leave_of_absence": "L1",
        }
    )

    def relationship_code(self, plansource_code: str) -> str | None:
        return self.relationships.get(normalize_code(plansource_code))

    def employment_code(self, status: str, level: str) -> str | None:
        key = normalize_code(status)
        with_level = normalize_code(f"{status} {level}")
        return self.employment_status.get(with_level) or self.employment_status.get(key)


class TerminationReasons(StrictModel):
    reasons: ReasonTable = Field(default_factory=dict)
    default: ReasonCode = "AI"
    employment_default: ReasonCode = "08"

    def code_for(self, reason: str, *, employment: bool = False) -> str:
        found = self.reasons.get(normalize_code(reason)) if reason else None
        if found:
            return found
        return self.employment_default if employment else self.default


class Declines(StrictModel):
    send: Literal["omit", "decline_record"] = "omit"
    end_reason: ReasonCode = "14"
    decline_reason: ReasonCode = "26"


class CoverageRef(StrictModel):
    qualifier: CoverageRefQualifier
    value: Annotated[str, StringConstraints(min_length=1, max_length=50)]


class Plan(StrictModel):
    insurance_line: InsuranceLine
    plan_code: PlanCode
    coverage_levels: LevelTable = Field(default_factory=dict)
    coverage_level: CoverageLevelCode | None = None
    refs: list[CoverageRef] = Field(default_factory=list)
    premium: bool | None = None
    # PlanSource `volume` (e.g. a life benefit amount) in the 2750 reporting-category loop.
    volume: bool = False


class CarrierProfile(StrictModel):
    name: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*$")]
    display_name: str
    claims: list[str] = Field(min_length=1)
    interchange: Interchange
    delimiters: Delimiters = Field(default_factory=Delimiters)
    sponsor: Party
    payer: Party
    policy: Policy = Field(default_factory=Policy)
    file: FileNaming = Field(default_factory=FileNaming)
    members: Members
    termination_reasons: TerminationReasons = Field(default_factory=TerminationReasons)
    declines: Declines = Field(default_factory=Declines)
    coverage_levels: LevelTable
    premium: bool = False
    plans: dict[str, Plan] = Field(min_length=1)
    # Sections owned by delivery, changes and acks are kept as raw tables until those stages
    # validate them with their own models.
    encryption: dict[str, object] | None = None
    delivery: dict[str, object] | None = None
    changes: dict[str, object] | None = None
    acks: dict[str, object] | None = None

    @model_validator(mode="after")
    def _plans_are_claimed(self) -> CarrierProfile:
        for code in self.plans:
            if not self.claims_code(code):
                raise ValueError(f"plans.{code}: not matched by any pattern in claims")
        return self

    def claims_code(self, lookup_code: str) -> bool:
        return any(fnmatch.fnmatchcase(lookup_code, pattern) for pattern in self.claims)

    def plan_for(self, lookup_code: str) -> Plan | None:
        return self.plans.get(lookup_code)

    def coverage_level_code(self, plan: Plan, level_name: str) -> str | None:
        if plan.coverage_level:
            return plan.coverage_level
        key = normalize_code(level_name)
        return plan.coverage_levels.get(key) or self.coverage_levels.get(key)

    def wants_premium(self, plan: Plan) -> bool:
        return self.premium if plan.premium is None else plan.premium


def load_profile_file(path: Path) -> CarrierProfile:
    raw = load_toml(path)
    try:
        profile = CarrierProfile.model_validate(raw)
    except ValidationError as exc:
        lines = format_validation_error(path, exc, CarrierProfile)
        raise ConfigError(
            "profile-invalid",
            lines[0] + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""),
            hint="Compare with a working profile, e.g. carriers/*.toml in the edi-834 repository.",
            details=lines[1:],
        ) from None
    if profile.name != path.stem:
        raise ConfigError(
            "profile-name-mismatch",
            f"{path}: name = {profile.name!r} but the file is {path.name}",
            hint="A profile's name is its file name without .toml.",
        )
    return profile


def profile_names(workspace: Workspace) -> list[str]:
    directory = workspace.carriers_dir
    return sorted(p.stem for p in directory.glob("*.toml")) if directory.is_dir() else []


def load_profile(workspace: Workspace, name: str) -> CarrierProfile:
    path = workspace.carriers_dir / f"{name}.toml"
    if not path.exists():
        from edi.suggest import did_you_mean

        names = profile_names(workspace)
        known = ", ".join(names) or "none"
        suggestion = did_you_mean(name, names)
        raise ConfigError(
            "profile-unknown",
            f"no carrier profile {name!r} in {workspace.carriers_dir}"
            + (f", {suggestion}" if suggestion else "")
            + f" (known: {known})",
            hint="Add carriers/NAME.toml; `edi carriers list` shows the profiles.",
        )
    return load_profile_file(path)
