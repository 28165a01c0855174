"""PlanSource records as PlanSource names them.

Dates arrive as `YYYY/MM/DD`, ISO dates, datetimes or empty strings; ids and text as strings or
numbers; they are read leniently. Unknown extra fields are kept (`extra="allow"`) and ignored by
mapping.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Strict, StringConstraints, model_validator

_DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d", "%m/%d/%Y", "%Y%m%d")
_MASKED_SSN = re.compile(r"[Xx*]")


def _digits(*parts: str) -> bool:
    return all(part.isascii() and part.isdigit() for part in parts)


@lru_cache(maxsize=4096)
def parse_date(text: str) -> date | None:
    """A PlanSource date in any of the forms it sends; None when empty."""
    text = text.strip()
    if not text:
        return None
    year, month, day = text[:4], text[5:7], text[8:]
    if len(text) == 10 and text[4] == text[7] and text[4] in "/-" and _digits(year, month, day):
        try:  # the common forms, without strptime's cost
            return date(int(text[:4]), int(text[5:7]), int(text[8:]))
        except ValueError:
            pass
    head = text[:10]
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(head if len(head) >= 8 else text, fmt).date()
        except ValueError:
            continue
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        raise ValueError("unreadable date") from None


def _date_or_text(text: str) -> date | str:
    try:
        parsed = parse_date(text)
    except ValueError:
        return text  # left for the field's own validation, which names the field
    return text if parsed is None else parsed


def _amount_text(text: str) -> str:
    return text.replace(",", "").replace("$", "")


def _id_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _flag(text: str) -> bool:
    return text.strip().lower() in {"true", "1", "yes", "y"}


def _kept(text: str) -> str:
    return text


def real_ssn(value: str) -> str | None:
    """Nine digits, or None for masked (`XXX-XX-1234`), empty or malformed values."""
    if not value or _MASKED_SSN.search(value):
        return None
    digits = re.sub(r"[\s-]", "", value)
    return digits if len(digits) == 9 and digits.isdigit() else None


RecordId = Annotated[str, StringConstraints(min_length=1)]
# Strict: a string the hook could not read, or a number, is an error naming the field.
Day = Annotated[date, Strict()]


class PlanSourceRecord(BaseModel):
    """Validation is pydantic's own (fast) except for PlanSource's lenient forms, which one
    hook per record rewrites first: nulls mean "not given", blank dates/amounts/ids mean none,
    `YYYY/MM/DD` and datetimes are dates, `$1,234.50` is an amount, `"1,2"` is a list of ids.
    What the hook cannot read it leaves alone, so the field's own error names the field."""

    model_config = ConfigDict(
        extra="allow", frozen=True, str_strip_whitespace=True, coerce_numbers_to_str=True
    )
    _lenient: ClassVar[dict[str, Callable[[str], Any]]] = {}

    id: RecordId

    @model_validator(mode="before")
    @classmethod
    def _plansource_forms(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        if None in data.values():
            data = {name: value for name, value in data.items() if value is not None}
        else:
            data = dict(data)
        for name, read in cls._lenient.items():
            value = data.get(name)
            if type(value) is not str:
                continue
            if value.strip():
                data[name] = read(value)
            else:
                del data[name]
        return data


class Subscriber(PlanSourceRecord):
    _lenient: ClassVar[dict[str, Callable[[str], Any]]] = {
        "birthdate": _date_or_text,
        "hire_date": _date_or_text,
        "termination_date": _date_or_text,
        "benefits_start_date": _date_or_text,
        "benefits_end_date": _date_or_text,
        "retirement_date": _date_or_text,
        "date_of_death": _date_or_text,
        "test_employee": _flag,
    }

    subscriber_code: str = ""
    ssn: str = ""
    first_name: str
    middle_name: str = ""
    last_name: str
    address_1: str = ""
    address_2: str = ""
    city: str = ""
    state: str = ""
    zip_code: str = ""
    home_phone: str = ""
    work_phone: str = ""
    email: str = ""
    gender: str = ""
    birthdate: Day | None = None
    marital_status: str = ""
    hire_date: Day | None = None
    termination_date: Day | None = None
    termination_reason_id: str = ""
    benefits_start_date: Day | None = None
    benefits_end_date: Day | None = None
    employment_level: str = ""
    employment_status: str = ""
    org_class: str = ""
    division: str = ""
    location: str = ""
    org_payroll_id: str = ""
    test_employee: bool = False
    # Not in every PlanSource client's export; read when present (plansource.md).
    retirement_date: Day | None = None
    date_of_death: Day | None = None


class Dependent(PlanSourceRecord):
    _lenient: ClassVar[dict[str, Callable[[str], Any]]] = {
        "birthdate": _date_or_text,
        "termination_date": _date_or_text,
        "disabled": _flag,
        "student": _flag,
        "date_of_death": _date_or_text,
    }

    subscriber_id: RecordId
    ssn: str = ""
    first_name: str
    middle_name: str = ""
    last_name: str
    birthdate: Day | None = None
    gender: str = ""
    relationship_code: str
    termination_date: Day | None = None
    termination_reason: str = ""
    # PlanSource's dependent booleans (absent = false): an overage child stays covered when
    # disabled (INS10 Y) or a full-time student (INS09 F).
    disabled: bool = False
    student: bool = False
    date_of_death: Day | None = None  # optional; else a death reason's termination_date


class Coverage(PlanSourceRecord):
    _lenient: ClassVar[dict[str, Callable[[str], Any]]] = {
        "org_plan_id": _kept,
        "coverage_level_id": _kept,
        "original_effective_date": _date_or_text,
        "change_effective_date": _date_or_text,
        "termination_date": _date_or_text,
        "subscriber_premium": _amount_text,
        "org_premium": _amount_text,
        "volume": _amount_text,
        "dependent_ids": _id_list,
    }

    subscriber_id: RecordId
    benefit_name: str = ""
    benefit_lookup_code: str
    org_plan_id: str | None = None
    plan_name: str = ""
    coverage_level: str = ""
    coverage_level_id: str | None = None
    original_effective_date: Day | None = None
    change_effective_date: Day | None = None
    termination_date: Day | None = None
    termination_reason: str = ""
    subscriber_premium: Decimal | None = None
    org_premium: Decimal | None = None
    volume: Decimal | None = None
    plan_group_number: str = ""
    plan_partner_code_1: str = ""
    plan_partner_code_2: str = ""
    dependent_ids: tuple[RecordId, ...] = ()
    tax_treatment: str = ""

    @property
    def effective_date(self) -> date | None:
        return self.change_effective_date or self.original_effective_date

    @property
    def is_waiver(self) -> bool:
        return self.plan_name.strip().lower() == "decline" or (
            self.coverage_level.strip().lower() == "decline"
        )


@lru_cache(maxsize=4096)
def normalize_code(text: str) -> str:
    """`Employment Termination`, `employment_termination` and `EMPLOYMENT-TERMINATION` alike."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
