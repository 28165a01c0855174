"""Where a workspace's run state lives: control numbers, baselines and the delivery log.

A run asks for its stores here, in one place; edi.stores chooses the implementation (SQLite
files under `state/`, or the shared PostgreSQL store of a workspace with `[store]`).
"""

from __future__ import annotations

from functools import cached_property

import transmit
from edi import delivery_config, stores
from edi.workspace import Workspace


def control_numbers(workspace: Workspace) -> stores.ControlNumberStore:
    return stores.control_numbers(workspace)


def baselines(workspace: Workspace) -> stores.Baselines:
    return stores.baselines(workspace)


class Stores:
    """A workspace's stores, each opened the first time a run needs it (opening a baseline
    store creates its file)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    @cached_property
    def control(self) -> stores.ControlNumberStore:
        return control_numbers(self.workspace)

    @cached_property
    def baselines(self) -> stores.Baselines:
        return baselines(self.workspace)

    @cached_property
    def log(self) -> transmit.DeliveryLog:
        return delivery_config.delivery_log(self.workspace)
