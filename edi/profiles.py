"""Carrier profiles: `carriers/*.toml`, one per carrier, validated here.

A profile only narrows 005010X220A1: it chooses codes from the guide's lists, never adds
segments. Unknown keys are errors naming the file and the key.
"""

from __future__ import annotations

import fnmatch
import re
from datetime import date
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)

from edi.errors import ConfigError, UsageError
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


@lru_cache(maxsize=4096)
def lookup_key(code: str) -> str:
    """How benefit lookup codes are compared: trimmed and case-folded."""
    return code.strip().casefold()


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
    # A first file (no baseline yet) sends terminations dated this recently, and no older ones.
    initial_lookback_days: int = Field(60, ge=0)
    # DTP*348 is the coverage's original_effective_date and a mid-year change goes in DTP*303;
    # "change_effective_date" asks for the old shape (DTP*348 = change date, no DTP*303).
    benefit_begin: Literal["original_effective_date", "change_effective_date"] = (
        "original_effective_date"
    )
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
    # decline_record: HD 001 + DTP*303 (the decline's date) and INS04 `decline_reason`; it ends
    # nothing (no HD 024, no DTP*349, never a member termination).
    send: Literal["omit", "decline_record"] = "omit"
    end_reason: ReasonCode = "14"
    decline_reason: ReasonCode = "26"


class CoverageRef(StrictModel):
    qualifier: CoverageRefQualifier
    value: Annotated[str, StringConstraints(min_length=1, max_length=50)]


# Who a plan's coverage is for: the employee alone, one kind of dependent, or a family.
Covers = Literal["employee", "spouse", "child", "employee_and_children", "family"]


class Plan(StrictModel):
    insurance_line: InsuranceLine
    plan_code: PlanCode
    coverage_levels: LevelTable = Field(default_factory=dict)
    coverage_level: CoverageLevelCode | None = None
    refs: list[CoverageRef] = Field(default_factory=list)
    premium: bool | None = None
    # PlanSource `volume` (e.g. a life benefit amount) in the 2750 reporting-category loop.
    volume: bool = False
    # A spouse or child plan's line belongs on the covered dependents' loops, not the employee's.
    covers: Covers = "family"

    @property
    def covers_employee(self) -> bool:
        return self.covers not in ("spouse", "child")


Severity = Literal["error", "warning"]


class RuleSetting(StrictModel):
    """One business edit: on or off, and its severity (None: the rule's own default)."""

    enabled: bool = True
    severity: Severity | None = None


class TierRule(RuleSetting):
    # "dependents": HD05 is derived from the dependents on the line; a disagreement warns.
    tier_from: Literal["profile", "dependents"] = "profile"


class OverageRule(RuleSetting):
    max_child_age: int = Field(26, ge=0, le=120)


class Rules(StrictModel):
    """The profile's `[rules]` table, keyed by rule code; every rule applies by default."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    tier_vs_dependents: TierRule = Field(default_factory=TierRule, alias="tier-vs-dependents")
    plan_does_not_cover: RuleSetting = Field(
        default_factory=RuleSetting, alias="plan-does-not-cover"
    )
    overage_dependent: OverageRule = Field(default_factory=OverageRule, alias="overage-dependent")
    overlapping_coverage: RuleSetting = Field(
        default_factory=RuleSetting, alias="overlapping-coverage"
    )
    termination_before_effective: RuleSetting = Field(
        default_factory=RuleSetting, alias="termination-before-effective"
    )
    missing_birth_date: RuleSetting = Field(default_factory=RuleSetting, alias="missing-birth-date")
    dependent_unidentified: RuleSetting = Field(
        default_factory=RuleSetting, alias="dependent-unidentified"
    )
    name_not_representable: RuleSetting = Field(
        default_factory=RuleSetting, alias="name-not-representable"
    )
    unclaimed_lookup_code: RuleSetting = Field(
        default_factory=RuleSetting, alias="unclaimed-lookup-code"
    )

    def setting(self, code: str) -> RuleSetting:
        value: RuleSetting = getattr(self, code.replace("-", "_"))
        return value


class RosterCsv(StrictModel):
    """A carrier's census spreadsheet: which column holds what (header names), one row per
    member and coverage line. Optional columns (ssn, address) are compared only when named."""

    member_id: str
    relationship: str
    first_name: str
    last_name: str
    birthdate: str
    gender: str | None = None
    plan_code: str
    coverage_level: str | None = None
    effective_date: str
    termination_date: str | None = None
    ssn: str | None = None
    address_1: str | None = None
    city: str | None = None
    state: str | None = None
    zip_code: str | None = None
    date_format: str = "%Y-%m-%d"
    delimiter: Separator = ","
    encoding: str = "utf-8-sig"
    # The carrier's relationship values → INS02 (default: INS02 codes, "employee"/"self" → 18,
    # then the profile's own [members.relationships]).
    relationships: dict[str, RelationshipCode] = Field(default_factory=dict)


class Roster(StrictModel):
    """Reconciliation: where the carrier's rosters come from and how to read them."""

    format: Literal["834", "csv"] = "834"
    remote_dir: str = "/outbound"
    pattern: str = "*roster*"
    delete_after_fetch: bool = False
    passphrase_env: str | None = None
    # Severity per kind, or per `demographic-mismatch:FIELD`; the rest use the built-in defaults.
    severity: dict[str, Severity] = Field(default_factory=dict)
    csv: RosterCsv | None = None


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
    # AMT*P3 once per coverage on the subscriber's loop, or repeated on every member's loop.
    premium_on: Literal["subscriber", "every_member"] = "subscriber"
    plans: dict[str, Plan] = Field(min_length=1)
    rules: Rules = Field(default_factory=Rules)
    # Sections owned by delivery, changes and acks are kept as raw tables until those stages
    # validate them with their own models.
    encryption: dict[str, object] | None = None
    delivery: dict[str, object] | None = None
    changes: dict[str, object] | None = None
    acks: dict[str, object] | None = None
    roster: Roster | None = None

    @model_validator(mode="after")
    def _plans_are_claimed(self) -> CarrierProfile:
        for code in self.plans:
            if not self.claims_code(code):
                raise ValueError(f"plans.{code}: not matched by any pattern in claims")
        return self

    def claims_code(self, lookup_code: str) -> bool:
        """Lookup codes match after trimming and case-folding (`COLONIAL_ACCIDENT_1 `)."""
        code = lookup_key(lookup_code)
        return any(fnmatch.fnmatchcase(code, pattern) for pattern in self.claim_patterns)

    @cached_property
    def claim_patterns(self) -> tuple[str, ...]:
        return tuple(lookup_key(pattern) for pattern in self.claims)

    def plan_for(self, lookup_code: str) -> Plan | None:
        plan = self.plans.get(lookup_code)
        if plan is None:
            plan = self.plans_by_key.get(lookup_key(lookup_code))
        return plan

    @cached_property
    def plans_by_key(self) -> dict[str, Plan]:
        return {lookup_key(code): plan for code, plan in self.plans.items()}

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
            hint="Compare with carriers/example.toml.sample (`edi init` writes one) and the "
            "README's section on carrier profiles.",
            details=lines[1:],
        ) from None
    _check_sections(profile, path)
    if profile.name != path.stem:
        raise ConfigError(
            "profile-name-mismatch",
            f"{path}: name = {profile.name!r} but the file is {path.name}",
            hint="A profile's name is its file name without .toml.",
        )
    return profile


def _check_sections(profile: CarrierProfile, path: Path) -> None:
    """The tables other stages own are validated at load too, so a typo in `[changes]` fails
    `edi carriers show`, not the first run that reads it."""
    from edi.acks import AcksConfig
    from edi.changes import ChangesConfig
    from edi.delivery_config import DeliveryConfig, EncryptionConfig

    models: dict[str, type[StrictModel]] = {
        "changes": ChangesConfig,
        "delivery": DeliveryConfig,
        "encryption": EncryptionConfig,
        "acks": AcksConfig,
    }
    for name, model in models.items():
        table = getattr(profile, name)
        if table is None:
            continue
        try:
            model.model_validate(table)
        except ValidationError as exc:
            lines = [
                line.replace(f"{path}: ", f"{path}: {name}.", 1)
                for line in format_validation_error(path, exc)
            ]
            raise ConfigError(
                f"profile-invalid-{name}",
                lines[0] + (f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""),
                hint="Fix the carrier profile; see README: delivery settings.",
                details=lines,
            ) from None


def profile_names(workspace: Workspace) -> list[str]:
    directory = workspace.carriers_dir
    return sorted(p.stem for p in directory.glob("*.toml")) if directory.is_dir() else []


CARRIER_NAME = re.compile(r"[a-z0-9_-]+")


def check_carrier_name(name: str) -> str:
    """Carrier names are file names under carriers/: nothing else can be loaded through one."""
    if not CARRIER_NAME.fullmatch(name):
        raise UsageError(
            "bad-carrier-name",
            f"carrier names are lower-case letters, digits, '_' and '-': {name!r} is not one",
            hint="`edi carriers list` shows the profiles in this workspace.",
        )
    return name


def load_profile(workspace: Workspace, name: str) -> CarrierProfile:
    return load_profile_file(profile_path(workspace, name))


def profile_path(workspace: Workspace, name: str) -> Path:
    """The profile file of carrier `name`; an unknown name is an error with "did you mean"."""
    path = workspace.carriers_dir / f"{check_carrier_name(name)}.toml"
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
    return path
