"""Alerts: email (SMTP, STARTTLS, auth), generic JSON webhook, Slack-compatible webhook.

Content names carrier, file id, control numbers, counts and error class; never PHI. Sending
never raises: a failing channel becomes a failed outcome (and a log line), not a crashed run.
"""

from __future__ import annotations

import logging
import smtplib
from dataclasses import asdict, dataclass, field
from email.message import EmailMessage
from typing import Any, Protocol

log = logging.getLogger("transmit.alerts")

EVENTS = (
    "delivery-failed",
    "validation-failed",
    "ack-rejected",
    "ack-overdue",
    "run-missed",
    "mass-termination-guard",
    "delivery-succeeded",
    "log-head",
)


@dataclass(frozen=True, slots=True)
class AlertEvent:
    kind: str
    carrier: str
    message: str
    file_id: str | None = None
    control_numbers: dict[str, str] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)
    error_code: str | None = None
    error_class: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def subject(self) -> str:
        return f"[edi] {self.kind}: {self.carrier}" + (
            f" ISA13 {self.control_numbers['isa13']}" if "isa13" in self.control_numbers else ""
        )

    def render(self) -> str:
        from jinja2 import Environment, PackageLoader

        environment = Environment(loader=PackageLoader("transmit"), autoescape=False)
        return environment.get_template("alert.txt.j2").render(event=self)


@dataclass(frozen=True, slots=True)
class AlertOutcome:
    channel: str
    ok: bool
    error: str | None = None


class Channel(Protocol):
    @property
    def name(self) -> str: ...

    def send(self, event: AlertEvent) -> None: ...


@dataclass(frozen=True, slots=True)
class EmailChannel:
    host: str
    port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout_s: float = 10.0
    name: str = "email"

    def send(self, event: AlertEvent) -> None:
        message = EmailMessage()
        message["Subject"] = event.subject
        message["From"] = self.sender
        message["To"] = ", ".join(self.recipients)
        message.set_content(event.render())
        with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


@dataclass(frozen=True, slots=True)
class WebhookChannel:
    url: str
    timeout_s: float = 10.0
    name: str = "webhook"

    def send(self, event: AlertEvent) -> None:
        import httpx

        payload = {**asdict(event), "subject": event.subject, "text": event.render()}
        httpx.post(self.url, json=payload, timeout=self.timeout_s).raise_for_status()


@dataclass(frozen=True, slots=True)
class SlackChannel:
    url: str
    timeout_s: float = 10.0
    name: str = "slack"

    def send(self, event: AlertEvent) -> None:
        import httpx

        text = f"*{event.subject}*\n{event.render()}"
        httpx.post(self.url, json={"text": text}, timeout=self.timeout_s).raise_for_status()


class Alerter:
    def __init__(self, channels: list[Channel]) -> None:
        self.channels = channels

    def send(self, event: AlertEvent) -> list[AlertOutcome]:
        outcomes = []
        for channel in self.channels:
            try:
                channel.send(event)
                outcomes.append(AlertOutcome(channel.name, True))
            except Exception as exc:  # a broken channel must never break the run it reports on
                log.warning("alert channel %s failed: %s", channel.name, type(exc).__name__)
                outcomes.append(AlertOutcome(channel.name, False, type(exc).__name__))
        return outcomes
