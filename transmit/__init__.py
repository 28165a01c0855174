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
from transmit.log import (
    Checkpoint,
    DeliveryLog,
    LogBackend,
    LogConnection,
    LogEntry,
    PointRow,
    Row,
    SqliteBackend,
    VerifyReport,
    load_public_key,
    parse_head,
)
from transmit.loopback import LoopbackServer, LoopbackSftpServer
from transmit.pgp import (
    DecryptionResult,
    EncryptionResult,
    EncryptionSpec,
    KeyFacts,
    check_key_file,
    create_key,
    decrypt_file,
    encrypt_file,
    export_public_key,
    is_encrypted,
    sha256_file,
    stop_gpg_agent,
)
from transmit.retry import RetryPolicy
from transmit.sftp import SftpDestination, SftpSettings

__all__ = [
    "AlertEvent",
    "AlertOutcome",
    "Alerter",
    "AttemptRecord",
    "Channel",
    "Checkpoint",
    "DecryptionResult",
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
    "LogBackend",
    "LogConnection",
    "LogEntry",
    "LogError",
    "LoopbackServer",
    "LoopbackSftpServer",
    "PermanentDeliveryError",
    "PointRow",
    "RemoteStat",
    "RetryPolicy",
    "Row",
    "SftpDestination",
    "SftpSettings",
    "SlackChannel",
    "SqliteBackend",
    "TransientDeliveryError",
    "TransmitError",
    "VerifyReport",
    "WebhookChannel",
    "check_key_file",
    "create_key",
    "decrypt_file",
    "deliver",
    "encrypt_file",
    "export_public_key",
    "is_encrypted",
    "load_public_key",
    "parse_head",
    "sha256_file",
    "stop_gpg_agent",
    "temp_name",
]
