"""`schedules/*.toml`: one file per scheduled transmission, validated with clear errors."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator

from edi.errors import ConfigError
from edi.workspace import StrictModel, Workspace, format_validation_error, load_toml

_DURATION = re.compile(r"^\s*(\d+)\s*([mhd])\s*$")
_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat", "sun")


def crontab_weekdays(field: str) -> str:
    """Crontab weekdays (0 or 7 = Sunday, 1 = Monday) as APScheduler names: APScheduler 3.x
    counts 0 = Monday, so a literal `1` there would fire on Tuesdays."""
    parts = []
    for part in field.split(","):
        if part in ("0-6", "0-7", "1-7"):
            parts.append("*")
        elif re.fullmatch(r"0-[1-6]", part):
            parts.append(f"sun,mon-{_WEEKDAY_NAMES[int(part[2])]}" if part[2] != "1" else "sun,mon")
        else:
            parts.append(
                re.sub(r"(?<!/)\b([0-7])\b", lambda m: _WEEKDAY_NAMES[int(m.group(1))], part)
            )
    return ",".join(parts)


def parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match:
        raise ValueError("a duration like '90m', '48h' or '2d'")
    amount, unit = int(match.group(1)), match.group(2)
    return {
        "m": timedelta(minutes=amount),
        "h": timedelta(hours=amount),
        "d": timedelta(days=amount),
    }[unit]


class Schedule(StrictModel):
    carrier: str
    cron: str
    timezone: str = "UTC"
    file_type: Literal["changes", "full", "audit"] | None = None
    expected_ack_within: str | None = None
    # A run counts as missed when no delivery is logged this long after its due time.
    run_deadline: str = "2h"
    # Fetch the carrier's new rosters ([roster] in the profile) and reconcile them, at each check.
    reconcile: bool = False
    enabled: bool = True
    id: str = Field("", exclude=True)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("expected_ack_within", "run_deadline")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _cron(self) -> Schedule:
        self.trigger()
        return self

    def trigger(self) -> Any:
        from apscheduler.triggers.cron import CronTrigger

        fields = self.cron.split()
        if len(fields) != 5:
            raise ValueError(f"cron {self.cron!r} needs 5 fields: minute hour day month weekday")
        minute, hour, day, month, weekday = fields
        try:
            return CronTrigger(
                minute=minute,
                hour=hour,
                day=day,
                month=month,
                day_of_week=crontab_weekdays(weekday),
                timezone=ZoneInfo(self.timezone),
            )
        except ValueError as exc:
            raise ValueError(f"cron {self.cron!r} is not a crontab expression: {exc}") from None

    @property
    def ack_window(self) -> timedelta | None:
        return parse_duration(self.expected_ack_within) if self.expected_ack_within else None

    @property
    def deadline(self) -> timedelta:
        return parse_duration(self.run_deadline)

    def next_run(self, now: datetime) -> datetime | None:
        fire: datetime | None = self.trigger().get_next_fire_time(None, now)
        return fire

    def last_due(self, now: datetime, lookback: timedelta = timedelta(days=35)) -> datetime | None:
        """The latest fire time whose deadline has passed by `now`."""
        trigger, cutoff = self.trigger(), now - self.deadline
        fire, last = trigger.get_next_fire_time(None, now - lookback), None
        while fire is not None and fire <= cutoff:
            last = fire
            fire = trigger.get_next_fire_time(fire, fire + timedelta(seconds=1))
        return last


def load_schedule(path: Path) -> Schedule:
    try:
        schedule = Schedule.model_validate(load_toml(path))
    except ValidationError as exc:
        lines = format_validation_error(path, exc)
        raise ConfigError("schedule-invalid", lines[0], details=lines) from None
    return schedule.model_copy(update={"id": path.stem})


def load_schedules(workspace: Workspace) -> list[Schedule]:
    directory = workspace.schedules_dir
    if not directory.is_dir():
        return []
    return [load_schedule(path) for path in sorted(directory.glob("*.toml"))]
