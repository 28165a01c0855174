"""Where a workspace's run state lives: control numbers, baselines and the delivery log.

One factory per store, so a run asks for its stores in one place. Today's implementation is
the SQLite files under `state/` (and the log's own files); a shared-store implementation
plugs in here.
"""

from __future__ import annotations

from functools import cached_property

import transmit
from edi import delivery_config
from edi.baseline import BaselineStore
from edi.workspace import Workspace
from edi.x12.control import ControlNumbers


def control_numbers(workspace: Workspace) -> ControlNumbers:
    return ControlNumbers(workspace.state_dir / "control.sqlite")


def baselines(workspace: Workspace) -> BaselineStore:
    return BaselineStore(workspace.state_dir / "baseline.sqlite")


class Stores:
    """A workspace's stores, each opened the first time a run needs it (opening a baseline
    store creates its file)."""

    def __init__(self, workspace: Workspace) -> None:
        self.workspace = workspace

    @cached_property
    def control(self) -> ControlNumbers:
        return control_numbers(self.workspace)

    @cached_property
    def baselines(self) -> BaselineStore:
        return baselines(self.workspace)

    @cached_property
    def log(self) -> transmit.DeliveryLog:
        return delivery_config.delivery_log(self.workspace)
