"""The one context object of a run, built once: the workspace, the clock's reading, the
validated carrier profile and its change settings, the stores, who asked for the run, and
how it alerts. Every stage after it takes the context instead of re-deriving these."""

from __future__ import annotations

import getpass
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import transmit
from edi import delivery_config
from edi.changes import ChangesConfig, changes_config
from edi.pipeline.stores import Stores
from edi.profiles import CarrierProfile, check_carrier_name, load_profile
from edi.workspace import Workspace


@dataclass(frozen=True)
class RunContext:
    workspace: Workspace
    profile: CarrierProfile
    changes: ChangesConfig
    now: datetime
    schedule_id: str | None = None
    stores: Stores = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "stores", Stores(self.workspace))

    @classmethod
    def open(
        cls, workspace: Workspace, carrier: str, *, now: datetime, schedule_id: str | None = None
    ) -> RunContext:
        """Loads and validates the carrier's profile (a bad one is a ConfigError naming it)."""
        profile = load_profile(workspace, check_carrier_name(carrier))
        config = changes_config(profile, profile_file(workspace, carrier))
        return cls(workspace, profile, config, now, schedule_id)

    @property
    def carrier(self) -> str:
        return self.profile.name

    @property
    def log(self) -> transmit.DeliveryLog:
        return self.stores.log

    def actor(self) -> dict[str, object]:
        return actor(self.schedule_id)

    def alert(self, event: transmit.AlertEvent) -> list[str]:
        return delivery_config.send_alert(self.workspace, event)


def profile_file(workspace: Workspace, carrier: str) -> Path:
    return workspace.carriers_dir / f"{carrier}.toml"


def actor(schedule_id: str | None) -> dict[str, object]:
    """Who started a run: host, user and schedule (no PHI)."""
    return {"host": socket.gethostname(), "user": getpass.getuser(), "schedule_id": schedule_id}


def lock_wait_s(workspace: Workspace) -> float:
    return workspace.settings.runs.lock_wait_s
