"""Generic secure delivery: OpenPGP, SFTP, retry, alerts and the compliance delivery log.

Knows nothing about X12 or PlanSource: it takes files plus metadata. Applications import only
the names below.
"""

from transmit.alerts import (
    Alerter,
    AlertEvent,
    AlertOutcome,
    Channel,
    EmailChannel,
    SlackChannel,
    WebhookChannel,
)
from transmit.deliver import AttemptRecord, DeliveryResult, deliver, temp_name
from transmit.destination import Destination, LocalFolderDestination, RemoteStat
from transmit.errors import (
    DeliveryError,
    EncryptionError,
    KeyRefused,
    LogError,
    PermanentDeliveryError,
    TransientDeliveryError,
    TransmitError,
)
from transmit.log import DeliveryLog, LogEntry, VerifyReport
from transmit.loopback import LoopbackServer, LoopbackSftpServer
from transmit.pgp import (
    EncryptionResult,
    EncryptionSpec,
    KeyFacts,
    check_key_file,
    create_key,
    encrypt_file,
    export_public_key,
    sha256_file,
)
from transmit.retry import RetryPolicy
from transmit.sftp import SftpDestination, SftpSettings

__all__ = [
    "AlertEvent",
    "AlertOutcome",
    "Alerter",
    "AttemptRecord",
    "Channel",
    "DeliveryError",
    "DeliveryLog",
    "DeliveryResult",
    "Destination",
    "EmailChannel",
    "EncryptionError",
    "EncryptionResult",
    "EncryptionSpec",
    "KeyFacts",
    "KeyRefused",
    "LocalFolderDestination",
    "LogEntry",
    "LogError",
    "LoopbackServer",
    "LoopbackSftpServer",
    "PermanentDeliveryError",
    "RemoteStat",
    "RetryPolicy",
    "SftpDestination",
    "SftpSettings",
    "SlackChannel",
    "TransientDeliveryError",
    "TransmitError",
    "VerifyReport",
    "WebhookChannel",
    "check_key_file",
    "create_key",
    "deliver",
    "encrypt_file",
    "export_public_key",
    "sha256_file",
    "temp_name",
]
