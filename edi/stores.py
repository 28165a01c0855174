"""The store interface: control numbers, baselines, the delivery log's tables and
reconciliation's discrepancies, each with two implementations, chosen from the workspace's
settings.

A workspace without `[store]` keeps today's SQLite files under `state/` (control.sqlite,
baseline.sqlite, delivery-log.sqlite); one with `[store]` keeps the same rows in the shared
PostgreSQL store, keyed by its `name` (`edi.pgstore`). The delivery log's chain, checkpoints,
signing key and witness are `transmit.DeliveryLog`'s whatever the backend.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

import transmit
from edi.baseline import BaselineStore
from edi.members import Member
from edi.workspace import Workspace
from edi.x12.control import ControlNumbers, LoggedNumber, Restoration
from edi.x12.writer import Envelope

if TYPE_CHECKING:
    from edi.discrepancies import DiscrepancyStore


class ControlNumberStore(Protocol):
    def restore_from_log(
        self, carrier: str, logged: Iterable[LoggedNumber]
    ) -> Restoration | None: ...

    def allocate(self, carrier: str, fingerprint: str, now: datetime) -> Envelope: ...

    def lookup(self, carrier: str, control_number: int) -> str | None: ...


class BaselineLookup(Protocol):
    def get(self, member_key: str) -> Member | None: ...

    def others(self) -> Iterator[Member]: ...

    def active_subscribers(self) -> int: ...

    def close(self) -> None: ...


class BaselineProposal(Protocol):
    def tee(self, members: Iterable[Member]) -> Iterator[Member]: ...

    def keep(self, member: Member) -> None: ...

    def finish(self, fingerprint: str) -> None: ...

    def discard(self) -> None: ...


class Baselines(Protocol):
    def has_baseline(self, carrier: str) -> bool: ...

    def get(self, carrier: str, member_key: str) -> Member | None: ...

    def lookup(self, carrier: str) -> BaselineLookup: ...

    def proposal(self, carrier: str, token: str) -> BaselineProposal: ...

    def propose(self, carrier: str, fingerprint: str, members: Iterable[Member]) -> int: ...

    def commit(self, carrier: str, fingerprint: str, now: datetime) -> bool: ...

    def reset(self, carrier: str, reason: str, now: datetime) -> int: ...

    def show(self, carrier: str) -> dict[str, Any]: ...


def shared(workspace: Workspace) -> tuple[str, str] | None:
    """(store URL, workspace name) for a workspace with `[store]`, else None (SQLite)."""
    from edi import store

    url = store.workspace_url(workspace)
    if url is None or workspace.settings.name is None:
        return None
    return url, workspace.settings.name


def control_numbers(workspace: Workspace) -> ControlNumberStore:
    target = shared(workspace)
    if target is None:
        return ControlNumbers(workspace.state_dir / "control.sqlite")
    from edi.pgstore import PgControlNumbers

    return PgControlNumbers(*target)


def baselines(workspace: Workspace) -> Baselines:
    target = shared(workspace)
    if target is None:
        return BaselineStore(workspace.state_dir / "baseline.sqlite")
    from edi.pgstore import PgBaselineStore

    return PgBaselineStore(*target, workspace.state_dir / "scratch" / ".baseline-copies")


def discrepancies(workspace: Workspace) -> DiscrepancyStore:
    target = shared(workspace)
    if target is None:
        from edi.discrepancies import SqliteDiscrepancies, store_path

        return SqliteDiscrepancies(store_path(workspace.ensure_state()))
    from edi.pgdiscrepancies import PgDiscrepancies

    return PgDiscrepancies(*target)


def log_backend(workspace: Workspace) -> transmit.LogBackend:
    target = shared(workspace)
    if target is None:
        return transmit.SqliteBackend(workspace.state_dir / "delivery-log.sqlite")
    from edi.pgstore import PgLogBackend

    return PgLogBackend(*target)
