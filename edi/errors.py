"""The application's errors. This module imports nothing from `edi`.

    EdiError                 code, message, hint, record ids (PlanSource ids, never PHI)
    ├── ConfigError          a profile, schedule or workspace setting is wrong     → exit 2
    ├── UsageError           the command line asks for something impossible        → exit 2
    ├── SourceDataError      PlanSource data cannot be read or mapped              → exit 1
    ├── ValidationFailed     an 834 failed pyx12 or the profile's rules            → exit 1
    ├── GuardTripped         a safety limit (mass termination) stopped the run     → exit 1
    ├── DeliveryFailed       encryption or delivery failed (wraps transmit errors) → exit 1
    ├── PlanSourceApiError   the PlanSource API refused or failed                  → exit 1
    ├── RunFailed            anything else that stopped a run (disk, state, bug)   → exit 1
    ├── DeliveryLogError     the delivery log is unreadable or fails its checks    → exit 1
    └── NothingToSend        a change file would be empty: nothing to do            → exit 0

Messages name records by PlanSource id and fields by name; they never carry names, SSNs,
birthdates, addresses or field values.
"""

from __future__ import annotations

from collections.abc import Sequence


class EdiError(Exception):
    exit_code = 1

    def __init__(
        self,
        code: str,
        message: str,
        *,
        hint: str = "",
        record_ids: Sequence[str] = (),
        details: Sequence[str] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint
        self.record_ids = tuple(record_ids)
        self.details = tuple(details)

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class ConfigError(EdiError):
    exit_code = 2


class UsageError(EdiError):
    exit_code = 2


class SourceDataError(EdiError):
    pass


class ValidationFailed(EdiError):
    pass


class GuardTripped(EdiError):
    pass


class DeliveryFailed(EdiError):
    pass


class PlanSourceApiError(EdiError):
    pass


class RunFailed(EdiError):
    pass


class NothingToSend(EdiError):
    exit_code = 0


class DeliveryLogError(EdiError):
    """The delivery log, its signing key or its witness is unreadable or fails its checks."""
