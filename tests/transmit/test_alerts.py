"""Alerts reach a real SMTP server and a real HTTP endpoint; a dead channel never raises."""

from __future__ import annotations

import transmit
from tests.support.servers import SmtpServer, WebhookServer

EVENT = transmit.AlertEvent(
    kind="delivery-failed",
    carrier="colonial",
    message="host key mismatch",
    file_id="ACME_colonial_834_20261124_000000007.834",
    control_numbers={"isa13": "000000007"},
    counts={"members": 89},
    error_code="host-key-mismatch",
    error_class="PermanentDeliveryError",
)


def test_email_webhook_and_slack(smtp_server: SmtpServer, webhook_server: WebhookServer) -> None:
    alerter = transmit.Alerter(
        [
            transmit.EmailChannel(
                smtp_server.host, smtp_server.port, "edi@test.invalid", ("ops@test.invalid",)
            ),
            transmit.WebhookChannel(webhook_server.url),
            transmit.SlackChannel(webhook_server.url),
        ]
    )
    outcomes = alerter.send(EVENT)
    assert [o.ok for o in outcomes] == [True, True, True]
    (mail,) = smtp_server.messages
    assert mail["Subject"] == "[edi] delivery-failed: colonial ISA13 000000007"
    assert "host-key-mismatch" in mail.get_payload() and "members: 89" in mail.get_payload()
    webhook, slack = webhook_server.payloads
    assert webhook["kind"] == "delivery-failed" and webhook["control_numbers"] == {
        "isa13": "000000007"
    }
    assert slack["text"].startswith("*[edi] delivery-failed: colonial")


def test_a_dead_channel_is_reported_not_raised(webhook_server: WebhookServer) -> None:
    free = transmit.loopback.free_port()
    alerter = transmit.Alerter(
        [
            transmit.EmailChannel(
                "127.0.0.1", free, "edi@test.invalid", ("ops@test.invalid",), timeout_s=2
            ),
            transmit.WebhookChannel(webhook_server.url),
        ]
    )
    outcomes = alerter.send(EVENT)
    assert [(o.channel, o.ok) for o in outcomes] == [("email", False), ("webhook", True)]
    assert outcomes[0].error == "ConnectionRefusedError"
