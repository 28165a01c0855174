"""The workspace: `$EDI_HOME` (or `--home`) with `edi.toml`, `carriers/`, `schedules/`, `state/`.

Relative paths inside workspace files are relative to the workspace home.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edi.errors import ConfigError

SETTINGS_FILE = "edi.toml"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertSettings(StrictModel):
    email_to: list[str] = Field(default_factory=list)
    webhook_url: str | None = None
    slack_webhook_url: str | None = None
    notify_success: bool = False


class SmtpSettings(StrictModel):
    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    username: str | None = None
    password_env: str | None = None
    from_: str = Field("edi@localhost", alias="from")
    timeout_s: float = 10.0


class PlanSourceSettings(StrictModel):
    base_url: str = "https://api.plansource.com/admin/v2"
    token_url: str = "https://api.plansource.com/oauth/v2/token"
    client_id: str = ""
    client_secret_env: str | None = "PLANSOURCE_CLIENT_SECRET"
    private_key_file: str | None = None
    per_page: int = Field(500, ge=1, le=500)
    concurrency: int = Field(4, ge=1, le=32)
    timeout_s: float = Field(30.0, gt=0)


class RunSettings(StrictModel):
    lock_wait_s: float = Field(600.0, ge=0)  # how long a run waits for another of its carrier


class LogSettings(StrictModel):
    """`[log]`: where the delivery log's witness lives and whether heads go to the alert channels.

    Put `witness_dir` on other storage (a WORM bucket mount, another host): a copy of every
    signed checkpoint there is what catches a log cut short or rolled back on this machine.
    """

    witness_dir: str = "state/witness"
    announce_heads: bool = False


class StoreSettings(StrictModel):
    """`[store]`: the shared PostgreSQL store (queue, job records, run locks).

    `url` may name the host and database but never carries a password (a file is no place for
    it); `url_env` names the environment variable holding the full URL.
    """

    url: str | None = None
    url_env: str = "EDI_STORE_URL"

    @field_validator("url")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        if value is None:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError("must be a postgresql:// URL")
        if parts.password:
            raise ValueError("must not carry a password: put the whole URL in url_env instead")
        return value


WORKSPACE_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"


class WorkspaceSettings(StrictModel):
    name: str | None = Field(None, pattern=WORKSPACE_NAME)
    store: StoreSettings | None = None
    source: str | None = None
    sample_data: bool = False
    alerts: AlertSettings = Field(default_factory=AlertSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    plansource: PlanSourceSettings = Field(default_factory=PlanSourceSettings)
    runs: RunSettings = Field(default_factory=RunSettings)
    log: LogSettings = Field(default_factory=LogSettings)

    @model_validator(mode="after")
    def _named_with_store(self) -> WorkspaceSettings:
        if self.store is not None and not self.name:
            raise ValueError(
                'a workspace with a [store] needs a name (name = "acme"), unique in the store'
            )
        return self


def format_validation_error(
    file: Path, exc: ValidationError, model: type[BaseModel] | None = None
) -> list[str]:
    """`file: key.path: problem` lines; never the offending values. With the model, an unknown
    key gets the closest known one (`sorce` → did you mean 'source'?)."""
    from edi.suggest import allowed_keys, did_you_mean

    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden" and error["loc"]:
            message = "unknown key"
            if model is not None:
                *parent, name = error["loc"]
                suggestion = did_you_mean(str(name), allowed_keys(model, parent))
                message += f", {suggestion}" if suggestion else ""
        lines.append(f"{file}: {key}: {message}")
    return lines


def load_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("toml-syntax", f"{path}: {exc}") from None


@dataclass(frozen=True)
class Workspace:
    home: Path
    settings: WorkspaceSettings

    @classmethod
    def open(cls, home: Path | None = None, *, must_exist: bool = False) -> Workspace:
        """With `must_exist`, a folder holding neither edi.toml nor carriers/ is refused before
        anything is written into it (a mistyped --home must not grow a state/ folder)."""
        root = (home or Path(os.environ.get("EDI_HOME") or Path.cwd())).resolve()
        settings_file = root / SETTINGS_FILE
        if must_exist and not (settings_file.is_file() or (root / "carriers").is_dir()):
            origin = "--home" if home else "EDI_HOME" if os.environ.get("EDI_HOME") else "."
            raise ConfigError(
                "workspace-missing",
                f"{root} is not an edi workspace (no {SETTINGS_FILE}, no carriers/); "
                f"it came from {origin}",
                hint=f"Create one with `edi init {root}`, or point --home / EDI_HOME at one.",
            )
        raw = load_toml(settings_file) if settings_file.exists() else {}
        try:
            settings = WorkspaceSettings.model_validate(raw)
        except ValidationError as exc:
            lines = format_validation_error(settings_file, exc, WorkspaceSettings)
            raise ConfigError(
                "workspace-invalid",
                lines[0],
                details=lines[1:],
                hint="The keys edi.toml takes are listed in README.md, section Workspace settings.",
            ) from None
        return cls(root, settings)

    def path(self, relative: str | Path) -> Path:
        candidate = Path(relative)
        return candidate if candidate.is_absolute() else self.home / candidate

    @property
    def carriers_dir(self) -> Path:
        return self.home / "carriers"

    @property
    def schedules_dir(self) -> Path:
        return self.home / "schedules"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @property
    def snapshots_dir(self) -> Path:
        return self.state_dir / "snapshots"

    @property
    def gnupg_home(self) -> Path:
        return self.state_dir / "gnupg"

    def ensure_state(self) -> Path:
        """state/ holds PHI (baseline, scratch) and keys: only its owner may enter it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        return self.state_dir

    def newest_snapshot(self) -> Path | None:
        """The newest complete pull; a partial pull is never published under snapshots/."""
        if not self.snapshots_dir.is_dir():
            return None
        complete = sorted(
            p
            for p in self.snapshots_dir.iterdir()
            if p.is_dir() and not p.name.startswith(".") and (p / "manifest.json").exists()
        )
        return complete[-1] if complete else None

    def default_source(self) -> tuple[Path, bool]:
        """(source directory, is sample data): the settings' `source`, else the newest snapshot."""
        if self.settings.source:
            return self.path(self.settings.source), self.settings.sample_data
        snapshot = self.newest_snapshot()
        if snapshot is None:
            raise ConfigError(
                "source-not-configured",
                "no --source given, no `source` in edi.toml and no pulled snapshot",
                hint="Run `edi pull`, pass --source DIR, or set source in edi.toml.",
            )
        return snapshot, False
