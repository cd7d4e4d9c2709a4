"""The sandbox clock (docs/api.md, "Sandbox clock"): business time that can be moved forward.

Like Stripe's test clocks (https://docs.stripe.com/billing/testing/test-clocks), but one per deployment:
``POST /v1/sandbox/clock {"advance_seconds"}`` adds to an offset kept in Redis, so every process (web
instances, workers) sees the same business time. Session expiry, hold lapse, the sandbox's dispute delay and
every ``created_at`` / ``expires_at`` / ``capture_before`` / event time use business time; access tokens, link
signatures and callback signatures keep real time. Only with the sandbox gateway outside production.

Each process caches the offset for ``cache_seconds`` (1 s), so another process sees a move within a second;
the process that moved it sees it at once. While Redis is unreachable the last known offset is kept.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from typing import Callable

import redis as redis_lib

from kernel.clock import Clock, ShiftedClock, system_clock

OFFSET_KEY = "paygate:sandbox:clock:offset"
MAX_ADVANCE_SECONDS = 31_536_000
"""One call may move the clock at most a year (docs/api.md)."""


class SandboxClock(ShiftedClock):
    """Business time = ``base()`` + the shared offset. ``redis``: a redis-py client; ``monotonic``: the
    cache's time source (tests may replace it)."""

    def __init__(self, redis, base: Clock = system_clock, *, cache_seconds: float = 1.0,
                 monotonic: Callable[[], float] = time.monotonic):
        super().__init__(base, self._offset)
        self.redis = redis
        self.cache_seconds = cache_seconds
        self.monotonic = monotonic
        self._cached = 0.0
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def _offset(self) -> float:
        now = self.monotonic()
        if now - self._read_at < self.cache_seconds:
            return self._cached
        try:
            raw = self.redis.get(OFFSET_KEY)
        except redis_lib.RedisError:
            return self._cached
        with self._lock:
            self._cached = float(raw) if raw is not None else 0.0
            self._read_at = now
        return self._cached

    def advance(self, seconds: int) -> datetime:
        """Moves business time forward by ``seconds`` (1 to :data:`MAX_ADVANCE_SECONDS`) for every process and
        returns the new business time. Raises ``ValueError`` outside that range."""
        if isinstance(seconds, bool) or not isinstance(seconds, int) or not 1 <= seconds <= MAX_ADVANCE_SECONDS:
            raise ValueError("advance_seconds must be an integer from 1 to 31536000")
        value = float(self.redis.incrbyfloat(OFFSET_KEY, seconds))
        with self._lock:
            self._cached = value
            self._read_at = self.monotonic()
        return self()
