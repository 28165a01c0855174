"""A profile's `[encryption]` and `[delivery]` tables (key names are a contract other tools use).

Secrets never live in TOML: a password is named by `password_env`; keys are files relative to the
workspace. Errors name the profile file and the key.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import Field, StringConstraints, ValidationError, model_validator

import transmit
from edi.errors import ConfigError
from edi.profiles import CarrierProfile
from edi.workspace import StrictModel, Workspace, format_validation_error

ModelT = TypeVar("ModelT", bound=StrictModel)

Fingerprint = Annotated[
    str, StringConstraints(pattern=r"^[0-9A-Fa-f]{40}$", to_upper=True, strip_whitespace=True)
]


class EncryptionConfig(StrictModel):
    recipient_fingerprint: Fingerprint
    public_key_file: str
    armor: bool = False
    sign: bool = False
    signer_fingerprint: Fingerprint | None = None
    signer_passphrase_env: str | None = None
    extension: Literal[".pgp", ".gpg", ".asc"] = ".pgp"


class DeliveryConfig(StrictModel):
    host: str
    port: int = Field(22, ge=1, le=65535)
    username: str
    private_key_file: str | None = None
    password_env: str | None = None
    host_key: str = Field(min_length=8)
    remote_dir: str = "/"
    upload_mode: Literal["rename", "direct"] = "rename"
    max_attempts: int = Field(5, ge=1, le=50)
    initial_backoff_s: float = Field(2.0, ge=0)
    max_backoff_s: float = Field(300.0, ge=0)
    max_total_s: float = Field(3600.0, gt=0)
    connect_timeout_s: float = Field(30.0, gt=0)
    timeout_s: float = Field(120.0, gt=0)
    disabled_algorithms: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_credential(self) -> DeliveryConfig:
        if not self.private_key_file and not self.password_env:
            raise ValueError("set private_key_file or password_env")
        if not (self.host_key.startswith("SHA256:") or " " in self.host_key):
            raise ValueError("host_key must be 'SHA256:<base64>' or a known_hosts line")
        return self


def _section(profile: CarrierProfile, workspace: Workspace, name: str) -> dict[str, object]:
    table = getattr(profile, name)
    if not table:
        raise ConfigError(
            f"profile-no-{name}",
            f"{workspace.carriers_dir / (profile.name + '.toml')}: has no [{name}] table",
            hint=f"Add [{name}] to the carrier profile (see README: delivery settings).",
        )
    return dict(table)


def _validated(
    model: type[ModelT], profile: CarrierProfile, workspace: Workspace, name: str
) -> ModelT:
    path = workspace.carriers_dir / f"{profile.name}.toml"
    try:
        return model.model_validate(_section(profile, workspace, name))
    except ValidationError as exc:
        lines = [
            line.replace(f"{path}: ", f"{path}: {name}.", 1)
            for line in format_validation_error(path, exc)
        ]
        raise ConfigError(f"profile-invalid-{name}", lines[0], details=lines) from None


def encryption_config(profile: CarrierProfile, workspace: Workspace) -> EncryptionConfig:
    return _validated(EncryptionConfig, profile, workspace, "encryption")


def delivery_config(profile: CarrierProfile, workspace: Workspace) -> DeliveryConfig:
    return _validated(DeliveryConfig, profile, workspace, "delivery")


ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def secret_from_env(variable: str | None, what: str) -> str | None:
    if variable is None:
        return None
    if not ENV_NAME.fullmatch(variable):
        raise ConfigError(
            "secret-env-name-invalid",
            f"{what} must be named by an environment variable, and the setting does not hold a "
            "variable name (it may hold the secret itself: it is not shown)",
            hint="Put the secret in an environment variable and name that variable in TOML.",
        )
    value = os.environ.get(variable)
    if not value:
        raise ConfigError(
            "secret-missing",
            f"{what} is read from the environment variable {variable}, which is not set",
            hint=f"export {variable}=... (secrets never live in TOML)",
        )
    return value


def workspace_file(workspace: Workspace, relative: str, what: str) -> Path:
    path = workspace.path(relative)
    if not path.is_file():
        raise ConfigError("file-missing", f"{what} {path} does not exist")
    return path


def private_key_path(workspace: Workspace, relative: str, what: str) -> Path:
    """A private key file that only its owner can read; anything looser is refused."""
    path = workspace_file(workspace, relative, what)
    if path.stat().st_mode & 0o077:
        raise ConfigError(
            "key-readable-by-others",
            f"{what} {path} can be read by other users; it was not used",
            hint=f"chmod 600 {path}",
        )
    return path


def encryption_spec(profile: CarrierProfile, workspace: Workspace) -> transmit.EncryptionSpec:
    config = encryption_config(profile, workspace)
    return transmit.EncryptionSpec(
        recipient_fingerprint=config.recipient_fingerprint,
        public_key_file=workspace_file(
            workspace, config.public_key_file, "encryption.public_key_file"
        ),
        armor=config.armor,
        sign=config.sign,
        signer_fingerprint=config.signer_fingerprint,
        signer_passphrase=secret_from_env(config.signer_passphrase_env, "the signing passphrase"),
    )


def sftp_settings(profile: CarrierProfile, workspace: Workspace) -> transmit.SftpSettings:
    config = delivery_config(profile, workspace)
    key = (
        private_key_path(workspace, config.private_key_file, "delivery.private_key_file")
        if config.private_key_file
        else None
    )
    return transmit.SftpSettings(
        host=config.host,
        port=config.port,
        username=config.username,
        host_key=config.host_key,
        remote_dir=config.remote_dir,
        private_key_file=key,
        password=secret_from_env(config.password_env, "the SFTP password") if not key else None,
        connect_timeout_s=config.connect_timeout_s,
        timeout_s=config.timeout_s,
        disabled_algorithms=config.disabled_algorithms,
    )


def retry_policy(profile: CarrierProfile, workspace: Workspace) -> transmit.RetryPolicy:
    config = delivery_config(profile, workspace)
    return transmit.RetryPolicy(
        max_attempts=config.max_attempts,
        initial_backoff_s=config.initial_backoff_s,
        max_backoff_s=config.max_backoff_s,
        max_total_s=config.max_total_s,
        jitter_s=min(1.0, config.initial_backoff_s),
    )


def delivery_log_path(workspace: Workspace) -> Path:
    return workspace.state_dir / "delivery-log.sqlite"


def delivery_log(workspace: Workspace) -> transmit.DeliveryLog:
    """The workspace's log; opening it creates nothing (the first append creates log and key)."""
    state = workspace.state_dir
    settings = workspace.settings.log
    from edi import stores

    backend = stores.log_backend(workspace)
    return transmit.DeliveryLog(
        getattr(backend, "db_path", None),
        state / "keys" / "log-ed25519.pem",
        witness_dir=workspace.path(settings.witness_dir),
        announce=(lambda head: announce_head(workspace, head)) if settings.announce_heads else None,
        backend=backend,
    )


def announce_head(workspace: Workspace, head: transmit.Checkpoint) -> list[str]:
    """`[log] announce_heads`: the signed head to every alert channel (hashes only, no PHI)."""
    return send_alert(
        workspace,
        transmit.AlertEvent(
            kind="log-head",
            carrier="delivery-log",
            message=f"delivery log signed head {head.text} (record it: `edi log verify --head`)",
            counts={"entries": head.count},
            extra={
                "head": head.text,
                "prev_checkpoint": head.prev,
                "signature": head.signature,
                "signed_at": head.signed_at,
                "key": head.key,
            },
        ),
    )


def alerter(workspace: Workspace) -> transmit.Alerter:
    alerts, smtp = workspace.settings.alerts, workspace.settings.smtp
    channels: list[transmit.Channel] = []
    if alerts.email_to:
        password = os.environ.get(smtp.password_env) if smtp.password_env else None
        channels.append(
            transmit.EmailChannel(
                host=smtp.host,
                port=smtp.port,
                sender=smtp.from_,
                recipients=tuple(alerts.email_to),
                starttls=smtp.starttls,
                username=smtp.username,
                password=password,
                timeout_s=smtp.timeout_s,
            )
        )
    if alerts.webhook_url:
        channels.append(transmit.WebhookChannel(alerts.webhook_url))
    if alerts.slack_webhook_url:
        channels.append(transmit.SlackChannel(alerts.slack_webhook_url))
    return transmit.Alerter(channels)


def send_alert(workspace: Workspace, event: transmit.AlertEvent) -> list[str]:
    """Sends to every configured channel; returns `channel:sent|failed` for the log entry."""
    return [f"{o.channel}:{'sent' if o.ok else 'failed'}" for o in alerter(workspace).send(event)]
