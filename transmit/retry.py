"""When to try again: exponential backoff with jitter, bounded by attempts and total time.

Whether to try again is the error's class: only TransientDeliveryError is retried.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_exponential_jitter,
)

from transmit.errors import TransientDeliveryError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_backoff_s: float = 2.0
    max_backoff_s: float = 300.0
    max_total_s: float = 3600.0
    jitter_s: float = 1.0

    def run(self, attempt: Callable[[int], T]) -> T:
        """Calls attempt(1), attempt(2), ... until one returns or the policy gives up; the last
        error is raised as it was."""
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts) | stop_after_delay(self.max_total_s),
            wait=wait_exponential_jitter(
                multiplier=self.initial_backoff_s, max=self.max_backoff_s, jitter=self.jitter_s
            ),
            retry=retry_if_exception_type(TransientDeliveryError),
            reraise=True,
        )
        for round_ in retrying:
            with round_:
                result = attempt(round_.retry_state.attempt_number)
            if not round_.retry_state.outcome or not round_.retry_state.outcome.failed:
                return result
        raise AssertionError("tenacity ended without an outcome")  # pragma: no cover
