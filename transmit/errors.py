"""Errors of secure delivery. This module imports nothing from `transmit`.

    TransmitError                   code, message, hint
    ├── EncryptionError             the file could not be encrypted as pinned
    │   └── KeyRefused              unknown fingerprint, expired, revoked, no encryption key
    ├── DeliveryError               the file did not reach the remote
    │   ├── TransientDeliveryError  connection refused/reset/timed out: retried
    │   └── PermanentDeliveryError  host key, authentication, permission, name conflict: never
    │                               retried (the policy decides when, the class decides whether)
    └── LogError                    the delivery log cannot be read or written

paramiko, socket and gnupg exceptions are converted where those libraries are called.
"""

from __future__ import annotations


class TransmitError(Exception):
    def __init__(self, code: str, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class EncryptionError(TransmitError):
    pass


class KeyRefused(EncryptionError):
    pass


class DeliveryError(TransmitError):
    pass


class TransientDeliveryError(DeliveryError):
    pass


class PermanentDeliveryError(DeliveryError):
    pass


class LogError(TransmitError):
    pass
