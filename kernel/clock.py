"""Injected time and id sources.

Domain code never calls ``datetime.now()`` or ``secrets`` directly for values that
tests need to control; it receives a :class:`Clock` and an :class:`IdFactory`.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Callable, Protocol


class Clock(Protocol):
    """Returns the current time as an aware UTC ``datetime``."""

    def __call__(self) -> datetime: ...


def system_clock() -> datetime:
    """The real clock: aware UTC ``datetime`` with microseconds."""
    return datetime.now(timezone.utc)


class FrozenClock:
    """A settable clock for tests: ``clock()`` returns ``now``; ``advance(seconds)`` moves it."""

    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now = self.now + timedelta(seconds=seconds)


IdFactory = Callable[[str], str]
"""``new_id(prefix) -> "prefix_<random>"``; see :func:`random_id`."""


def random_id(prefix: str) -> str:
    """An opaque id with a type prefix and 128 bits of randomness, e.g. ``ps_3Jk...``.

    ``prefix`` is given without the underscore (``"ps"`` → ``"ps_..."``).
    """
    return f"{prefix}_{secrets.token_urlsafe(16).replace('-', 'x').replace('_', 'y')}"


def rfc3339(moment: datetime | None) -> str | None:
    """Formats an aware or naive-UTC datetime as ``2026-11-22T23:15:00Z`` (seconds precision)."""
    if moment is None:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.replace(microsecond=0).isoformat() + "Z"


def naive_utc(moment: datetime) -> datetime:
    """An aware datetime as the naive UTC value the tables store (naive input is assumed UTC already)."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def as_utc(moment: datetime) -> datetime:
    """Treats a naive datetime read back from the database as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


class ShiftedClock:
    """Business time: ``base()`` moved forward by ``offset()`` seconds (Stripe's test clocks, applied to the
    whole deployment; see :mod:`payments.sandbox_clock`). ``base`` is any :data:`Clock`; ``offset`` returns
    float seconds (0 until the clock is moved)."""

    def __init__(self, base: Clock, offset: Callable[[], float]):
        self.base = base
        self.offset = offset

    def __call__(self) -> datetime:
        from datetime import timedelta

        return self.base() + timedelta(seconds=self.offset())
