"""The retry policy shared by backends: exponential backoff with full jitter, honouring ``Retry-After``.

A backend's single attempt raises ``TransientError`` for what is worth retrying (HTTP 429 / 5xx, timeouts,
connection errors) and ``BackendError`` for what is not (e.g. 400, 401). ``with_retries`` runs the attempt
until it succeeds or ``max_retries`` retries are spent, then raises ``BackendError`` with the last reason.
A ``TransientError(failover=True)`` (a replica did not answer and another one can) is re-sent at once,
without waiting and without spending a retry, at most ``failovers`` times per call.

A runner sets ``retry_wait`` in the context of its workers: each wait before a retry then goes through
it, so that the runner can lend the waiting call's slot to another item (``run_calls`` does).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TypeVar

from modelcalls.base import BackendError

T = TypeVar("T")

#: How a call waits out a retry delay: ``await retry_wait.get()(delay)``, ``delay`` being the sleep itself.
#: Unset (the default), the delay is simply awaited.
retry_wait: ContextVar[Callable[[Awaitable[None]], Awaitable[None]] | None] = ContextVar("retry_wait", default=None)


class TransientError(Exception):
    """A failure worth retrying; ``retry_after`` (seconds) comes from the server when it said so."""

    def __init__(self, reason: str, *, status: int | None = None, retry_after: float | None = None,
                 failover: bool = False):
        super().__init__(reason)
        self.status = status
        self.retry_after = retry_after
        self.failover = failover  # another replica can take the request now: re-send without waiting


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; ``None`` if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 30.0  # cap on any single wait, Retry-After included

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ValueError("retry delays must be >= 0")

    def delay(self, retry: int, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (0-based): the server's ``Retry-After`` when given,
        else full jitter ``uniform(0, base * 2**retry)``; always capped at ``max_delay_s``."""
        if retry_after is not None:
            return min(self.max_delay_s, retry_after)
        ceiling = min(self.max_delay_s, self.base_delay_s * (2**retry))
        return (rng or random).uniform(0.0, ceiling)


async def with_retries(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    failovers: int = 0,
    first_error: TransientError | None = None,
) -> T:
    """Run ``attempt()`` until it returns, retrying ``TransientError`` up to ``policy.max_retries`` times
    (plus up to ``failovers`` immediate re-sends of ``failover`` errors). ``first_error``: the caller made
    the first attempt itself (the common case costs no retry machinery) and it failed with this."""
    retry = 0
    attempts = 0 if first_error is None else 1
    error = first_error
    while True:
        if error is None:
            attempts += 1
            try:
                return await attempt()
            except TransientError as caught:
                error = caught
        if error.failover and failovers > 0:
            failovers -= 1
        elif retry == policy.max_retries:
            raise BackendError(
                f"{what}: gave up after {attempts} attempts; last error: {error}",
                status=error.status,
                attempts=attempts,
            ) from None
        else:
            delay = sleep(policy.delay(retry, error.retry_after))
            wait = retry_wait.get()
            await (delay if wait is None else wait(delay))
            retry += 1
        error = None
