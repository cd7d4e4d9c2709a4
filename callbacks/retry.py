"""The delivery retry policy, as pure functions (docs/api.md, "Events").

- A 2xx answer means delivered.
- 408, 425, 429, every 5xx, timeouts and connection errors are retried with exponential backoff and jitter.
- Every other status (1xx, 3xx — redirects are not followed — and the remaining 4xx) is final: dead.
- Retries stop once the event is older than ``max_age`` seconds (24 h by default): the delivery is dead
  and can be redelivered by hand.

The retryable set follows RFC 9110 (408 Request Timeout, 5xx server errors), RFC 8470 (425 Too Early) and
RFC 6585 (429 Too Many Requests); "do not retry 3xx/4xx" is the rule saleor's webhook transport uses.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

Outcome = Literal["delivered", "retry", "dead"]
DELIVERED: Outcome = "delivered"
RETRY: Outcome = "retry"
DEAD: Outcome = "dead"

RETRYABLE_STATUSES = frozenset({408, 425, 429})


def classify(status_code: int | None, transport_error: bool) -> Outcome:
    """What one attempt's answer means.

    ``status_code`` is the HTTP status received (None when there was no response); ``transport_error``
    is True for timeouts and connection failures (then ``status_code`` is ignored).
    """
    if transport_error or status_code is None:
        return RETRY
    if 200 <= status_code < 300:
        return DELIVERED
    if status_code in RETRYABLE_STATUSES or 500 <= status_code < 600:
        return RETRY
    return DEAD


def backoff_seconds(attempt: int, *, base: float, cap: float, rng: random.Random) -> float:
    """Delay in seconds before the attempt after attempt number ``attempt`` (1-based).

    Exponential ``min(cap, base * 2**(attempt-1))`` with "equal jitter": uniformly drawn from
    [50 %, 100 %] of that value, so many failing deliveries do not retry in lock step.
    Raises ``ValueError`` for ``attempt < 1``.
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    # cap the exponent before computing so a large attempt number cannot overflow a float
    exponent = min(attempt - 1, 62)
    delay = min(cap, base * (2.0 ** exponent))
    return delay * rng.uniform(0.5, 1.0)


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff parameters (seconds): ``base`` first delay, ``cap`` largest delay, ``max_age`` retry window."""

    base: float
    cap: float
    max_age: float


@dataclass(frozen=True)
class Decision:
    """The result of one attempt: ``outcome`` and, for ``retry``, when to try next (same tz as ``now``)."""

    outcome: Outcome
    next_attempt_at: datetime | None


def decide(status_code: int | None, transport_error: bool, attempt: int, *, now: datetime,
           event_created_at: datetime, policy: RetryPolicy, rng: random.Random) -> Decision:
    """Combines :func:`classify`, :func:`backoff_seconds` and the maximum age.

    A retryable failure at or after ``event_created_at + max_age`` is dead; otherwise the next attempt is
    ``now + backoff``, but never later than that deadline, so the last try happens right at it.
    ``now`` and ``event_created_at`` must both be aware or both naive.
    """
    outcome = classify(status_code, transport_error)
    if outcome != RETRY:
        return Decision(outcome, None)
    deadline = event_created_at + timedelta(seconds=policy.max_age)
    if now >= deadline:
        return Decision(DEAD, None)
    delay = backoff_seconds(attempt, base=policy.base, cap=policy.cap, rng=rng)
    return Decision(RETRY, min(now + timedelta(seconds=delay), deadline))
