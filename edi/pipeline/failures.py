"""One failure boundary for every run: any exception, ours or not, is logged and alerted
(codes and ids, never PHI) and becomes an EdiError with a code and hint."""

from __future__ import annotations

import contextlib
import errno
import logging
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime

import transmit
from edi import delivery_config
from edi.errors import (
    ConfigError,
    DeliveryFailed,
    EdiError,
    GuardTripped,
    NothingToSend,
    RunFailed,
    SourceDataError,
    ValidationFailed,
)
from edi.pipeline.context import actor
from edi.pipeline.delivery import FileFacts
from edi.runs import RunLocked
from edi.workspace import Workspace

logger = logging.getLogger("edi")


def record_failure(
    workspace: Workspace,
    carrier: str,
    error: EdiError | transmit.TransmitError,
    *,
    kind: str,
    now: datetime,
    facts: FileFacts | None = None,
    schedule_id: str | None = None,
) -> None:
    """No failure goes unlogged and unalerted; the alert names codes and ids, never PHI. The
    log may be what failed (a read-only or corrupt state): then a second alert says so."""
    control = {"isa13": facts.isa13, "gs06": facts.gs06, "st02": facts.st02} if facts else {}
    event = transmit.AlertEvent(
        kind=kind,
        carrier=carrier,
        message=error.message,
        file_id=facts.path.name if facts else None,
        control_numbers={k: v for k, v in control.items() if v},
        counts={"members": facts.members, "coverage_lines": facts.coverage_lines} if facts else {},
        error_code=error.code,
        error_class=type(error).__name__,
    )
    sent = delivery_config.send_alert(workspace, event)
    try:
        log = delivery_config.delivery_log(workspace)
        log.append(
            kind,
            now=now,
            carrier=carrier,
            outcome="failed",
            actor=actor(schedule_id),
            error_class=type(error).__name__,
            error_code=error.code,
            error_message=error.message,
            alerts_sent=sent,
            **(facts.log_facts() if facts else {}),
        )
        log.checkpoint(now=now)
    except Exception as exc:  # the boundary must report even when the log is what broke
        problem = unexpected_failure(exc)
        delivery_config.send_alert(
            workspace,
            transmit.AlertEvent(
                kind="log-unwritable",
                carrier=carrier,
                message=f"the delivery log could not record a {kind} failure: {problem.message}",
                error_code=problem.code,
                error_class=type(exc).__name__,
            ),
        )


def unexpected_failure(exc: BaseException) -> RunFailed:
    """An exception from outside our error classes, in our words, without PHI: OS and SQLite
    messages name files and conditions; anything else is named by its class only."""
    if isinstance(exc, transmit.TransmitError):
        return RunFailed(exc.code, exc.message, hint=exc.hint)
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return RunFailed(
            "state-database-locked",
            f"a state database stayed locked: {exc}",
            hint="Another process holds it; retry, or look for a stuck edi process.",
        )
    if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
        return RunFailed(
            "disk-full",
            f"a state database could not grow: {exc}",
            hint=OS_FAILURES[errno.ENOSPC][1],
        )
    if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
        return RunFailed(
            "read-only-filesystem",
            f"a state database is read-only: {exc}",
            hint=OS_FAILURES[errno.EROFS][1],
        )
    if isinstance(exc, sqlite3.Error):
        return RunFailed(
            "state-database-error",
            f"a state database under state/ failed: {exc}",
            hint="The file may be corrupt or truncated: restore state/ from backup; the "
            "delivery log is verified with `edi log verify`.",
        )
    if isinstance(exc, OSError):
        code, hint = OS_FAILURES.get(
            exc.errno or 0, ("os-error", "Check the disk and the permissions of the workspace.")
        )
        where = f" ({exc.filename})" if exc.filename else ""
        return RunFailed(code, f"{exc.strerror or type(exc).__name__}{where}", hint=hint)
    return RunFailed(
        "unexpected-error",
        f"the run failed with {type(exc).__name__}",
        hint="Rerun with --debug for the traceback, and report it.",
    )


OS_FAILURES = {
    errno.ENOSPC: ("disk-full", "Free space on the disk that holds the workspace or out/."),
    errno.EDQUOT: ("disk-full", "Free space on the disk that holds the workspace or out/."),
    errno.EROFS: ("read-only-filesystem", "The workspace's state/ or out/ is mounted read-only."),
    errno.EACCES: ("permission-denied", "Check the owner and mode of the workspace's files."),
    errno.EPERM: ("permission-denied", "Check the owner and mode of the workspace's files."),
}


def warn_without_alert_channels(workspace: Workspace) -> None:
    if not delivery_config.alerter(workspace).channels:
        logger.warning(
            "no alert channel is configured: failures of this run reach no one "
            "(set [alerts] email_to, webhook_url or slack_webhook_url in edi.toml)"
        )


FAILURE_KINDS: tuple[tuple[type[BaseException], str], ...] = (
    (GuardTripped, "mass-termination-guard"),
    (SourceDataError, "validation-failed"),
    (ValidationFailed, "validation-failed"),
    (DeliveryFailed, "delivery-failed"),
    (RunLocked, "run-locked"),
    (ConfigError, "config-error"),
)


def failure_kind(error: BaseException) -> str:
    for error_class, kind in FAILURE_KINDS:
        if isinstance(error, error_class):
            return kind
    return "run-failed"


@contextlib.contextmanager
def failure_boundary(
    workspace: Workspace,
    carrier: str,
    *,
    now: datetime,
    schedule_id: str | None,
    facts: Callable[[], FileFacts | None] = lambda: None,
) -> Iterator[None]:
    """Every exception of a run, ours or not, becomes a logged and alerted failure and an
    EdiError with a code and hint (the CLI prints one line; --debug adds the traceback)."""
    try:
        yield
    except NothingToSend:
        raise
    except Exception as exc:
        error = exc if isinstance(exc, EdiError) else unexpected_failure(exc)
        record_failure(
            workspace,
            carrier,
            error,
            kind=failure_kind(error),
            now=now,
            facts=facts(),
            schedule_id=schedule_id,
        )
        if error is exc:
            raise
        raise error from exc
    finally:
        transmit.stop_gpg_agent(workspace.gnupg_home)
