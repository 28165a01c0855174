"""PlanSource records as PlanSource names them.

Dates arrive as `YYYY/MM/DD`, ISO dates, datetimes or empty strings; they are read leniently.
Unknown extra fields are kept (`extra="allow"`) and ignored by mapping.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, field_validator

_DATE_FORMATS = ("%Y/%m/%d", "%Y-%m-%d", "%m/%d/%Y", "%Y%m%d")
_MASKED_SSN = re.compile(r"[Xx*]")


@lru_cache(maxsize=65536)
def parse_date(text: str) -> date | None:
    """A PlanSource date in any of the forms it sends; None when empty."""
    text = text.strip()
    if not text:
        return None
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


def _lenient_date(value: Any) -> date | None:
    if value is None or isinstance(value, date):
        return value
    if isinstance(value, str):
        return parse_date(value)
    raise ValueError("unreadable date")


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float | Decimal):
        return str(value)
    raise ValueError("expected text")


def _amount(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value).replace(",", "").replace("$", ""))
    except InvalidOperation:
        raise ValueError("unreadable amount") from None


def _record_id(value: Any) -> str:
    if value is None or value == "":
        raise ValueError("missing id")
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError("expected an id")
    return str(value)


def _optional_id(value: Any) -> str | None:
    return None if value is None or value == "" else _record_id(value)


def real_ssn(value: str) -> str | None:
    """Nine digits, or None for masked (`XXX-XX-1234`), empty or malformed values."""
    if not value or _MASKED_SSN.search(value):
        return None
    digits = re.sub(r"[\s-]", "", value)
    return digits if len(digits) == 9 and digits.isdigit() else None


LenientDate = Annotated[date | None, BeforeValidator(_lenient_date)]
Text = Annotated[str, BeforeValidator(_text)]
Amount = Annotated[Decimal | None, BeforeValidator(_amount)]
RecordId = Annotated[str, BeforeValidator(_record_id)]
OptionalId = Annotated[str | None, BeforeValidator(_optional_id)]


class PlanSourceRecord(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, str_strip_whitespace=True)

    id: RecordId


class Subscriber(PlanSourceRecord):
    subscriber_code: Text = ""
    ssn: Text = ""
    first_name: Text
    middle_name: Text = ""
    last_name: Text
    address_1: Text = ""
    address_2: Text = ""
    city: Text = ""
    state: Text = ""
    zip_code: Text = ""
    home_phone: Text = ""
    work_phone: Text = ""
    email: Text = ""
    gender: Text = ""
    birthdate: LenientDate = None
    marital_status: Text = ""
    hire_date: LenientDate = None
    termination_date: LenientDate = None
    termination_reason_id: Text = ""
    benefits_start_date: LenientDate = None
    benefits_end_date: LenientDate = None
    employment_level: Text = ""
    employment_status: Text = ""
    org_class: Text = ""
    division: Text = ""
    location: Text = ""
    org_payroll_id: Text = ""
    test_employee: bool = False

    @field_validator("test_employee", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> bool:
        if isinstance(value, str):
            return value.strip().lower() in {"true", "1", "yes", "y"}
        return bool(value)


class Dependent(PlanSourceRecord):
    subscriber_id: RecordId
    ssn: Text = ""
    first_name: Text
    middle_name: Text = ""
    last_name: Text
    birthdate: LenientDate = None
    gender: Text = ""
    relationship_code: Text
    termination_date: LenientDate = None
    termination_reason: Text = ""


class Coverage(PlanSourceRecord):
    subscriber_id: RecordId
    benefit_name: Text = ""
    benefit_lookup_code: Text
    org_plan_id: OptionalId = None
    plan_name: Text = ""
    coverage_level: Text = ""
    coverage_level_id: OptionalId = None
    original_effective_date: LenientDate = None
    change_effective_date: LenientDate = None
    termination_date: LenientDate = None
    termination_reason: Text = ""
    subscriber_premium: Amount = None
    org_premium: Amount = None
    volume: Amount = None
    plan_group_number: Text = ""
    plan_partner_code_1: Text = ""
    plan_partner_code_2: Text = ""
    dependent_ids: tuple[str, ...] = ()
    tax_treatment: Text = ""

    @field_validator("dependent_ids", mode="before")
    @classmethod
    def _ids(cls, value: Any) -> tuple[str, ...]:
        if value is None or value == "":
            return ()
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, list | tuple):
            return tuple(_record_id(item) for item in value)
        raise ValueError("expected a list of dependent ids")

    @property
    def effective_date(self) -> date | None:
        return self.change_effective_date or self.original_effective_date

    @property
    def is_waiver(self) -> bool:
        return self.plan_name.strip().lower() == "decline" or (
            self.coverage_level.strip().lower() == "decline"
        )


def normalize_code(text: str) -> str:
    """`Employment Termination`, `employment_termination` and `EMPLOYMENT-TERMINATION` alike."""
    return re.sub(r"[^a-z0-9]+", "_", text.strip().lower()).strip("_")
