"""Admission control in the web tier: a few slots per process for the requests that burn CPU, none for polls.

Why (docs/architecture.md, "Serving"; docs/benchmarks.md): a gthread worker hands each ready request to a pool of
``PAYGATE_WEB_THREADS`` threads in arrival order. When customers keep every thread busy (hundreds waiting on a slow
gateway, or simply more work than the two cores do), a Genesys flow's ``GET /v1/payment-sessions/{id}`` poll waits in
that queue behind them, and once it has a thread it shares the interpreter lock with every runnable thread. So:

- the shipped ``gunicorn.conf.py`` gives each worker many threads (a thread waiting costs a little memory, no CPU),
  so a poll practically never waits for a thread;
- a *heavy* request — every request except a read of the API or a health check, i.e. any ``POST``/``PUT``/
  ``PATCH``/``DELETE`` and the pages (checkout, agent view) — must hold one of ``PAYGATE_ADMISSION_SLOTS`` slots of
  its process while it runs. The other heavy requests wait for a slot blocked (no CPU, no database connection), so
  at most that many of them compete with a poll for the CPU;
- page renders (``GET`` of the checkout page or the agent view) have their own ``PAYGATE_ADMISSION_SLOTS`` slots,
  apart from the writes': a customer opening the page never queues behind a burst of card submissions (each a few
  times a page's CPU), only behind other page renders;
- while a request waits on the payment gateway (:func:`kernel.blocking.blocking`, around every money-moving
  gateway call in :class:`payments.breaker.CircuitBreaker`), it gives its slot back, so hundreds of submissions can
  wait on a slow gateway at once while the CPU keeps working; afterwards it takes a slot again, ahead of requests
  that have not started (finishing started work first keeps latency and memory bounded).

A request that waits longer than ``PAYGATE_ADMISSION_WAIT_SECONDS`` for its first slot is answered 503
``service_unavailable`` with ``Retry-After`` (an HTML page on the page paths) before anything was done. A request
resuming after the gateway call always waits for its slot: the money operation must finish.

Light requests (``GET``/``HEAD``/``OPTIONS`` outside the page paths: API reads and polls, ``status.json``, health,
static files, the OpenAPI document) never take a slot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator

from flask import Flask, g, request

from kernel import blocking
from kernel.errors import ServiceUnavailable
from kernel.settings import Settings

log = logging.getLogger("paygate.admission")

__all__ = ["Slots", "init_admission", "is_heavy", "is_page_render"]

LIGHT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Slots:
    """A counting semaphore whose waiters are served in order, those resuming (``resume=True``: after a gateway
    call) before those starting. A released slot is handed straight to the next waiter, so a thread that did not
    wait cannot overtake one that did. Thread-safe."""

    def __init__(self, count: int):
        if count < 1:
            raise ValueError("count must be at least 1")
        self.count = count
        self._lock = threading.Lock()
        self._free = count
        self._resuming: deque[threading.Lock] = deque()
        self._starting: deque[threading.Lock] = deque()

    def acquire(self, timeout: float | None = None, *, resume: bool = False) -> bool:
        """Takes a slot, waiting up to ``timeout`` seconds (None: for ever). True when taken."""
        with self._lock:
            if self._free and not self._resuming and (resume or not self._starting):
                self._free -= 1
                return True
            waiter = threading.Lock()
            waiter.acquire()
            line = self._resuming if resume else self._starting
            line.append(waiter)
        if waiter.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            return True
        with self._lock:
            try:
                line.remove(waiter)
            except ValueError:  # a release handed us the slot just as the wait ran out: keep it
                return True
        return False

    def release(self) -> None:
        """Gives a slot back: to the first resuming waiter, else the first starting one, else to the pool."""
        with self._lock:
            for line in (self._resuming, self._starting):
                if line:
                    line.popleft().release()
                    return
            if self._free >= self.count:
                raise RuntimeError("released more slots than were taken")
            self._free += 1

    def waiting(self) -> int:
        """How many threads wait for a slot (a snapshot)."""
        with self._lock:
            return len(self._resuming) + len(self._starting)


def is_heavy(method: str, path: str) -> bool:
    """Whether a request must hold a slot: every method but ``GET``/``HEAD``/``OPTIONS``, and those on the page
    paths (:func:`app.checkout.is_page_path`)."""
    from .checkout import is_page_path

    return method not in LIGHT_METHODS or is_page_path(path)


def is_page_render(method: str, path: str) -> bool:
    """Whether a heavy request is a page render (``GET``/``HEAD``/``OPTIONS`` on the page paths), which takes its
    slot from the pages' own slots rather than the writes'."""
    from .checkout import is_page_path

    return method in LIGHT_METHODS and is_page_path(path)


def init_admission(app: Flask, settings: Settings) -> Slots | None:
    """Installs admission control on ``app`` when ``settings.admission_slots`` > 0; returns the process's
    :class:`Slots` for writes (also ``app.extensions["paygate.admission"]``; the page renders' slots are
    ``app.extensions["paygate.admission.pages"]``), or None when it is off. Register it before the
    ``before_request`` functions that do work (the rate limiter's Redis calls run inside the slot)."""
    if settings.admission_slots <= 0:
        return None
    slots = Slots(settings.admission_slots)
    page_slots = Slots(settings.admission_slots)
    wait = settings.admission_wait_seconds
    app.extensions["paygate.admission"] = slots
    app.extensions["paygate.admission.pages"] = page_slots

    @contextmanager
    def released() -> Iterator[None]:
        # only a request that holds its slot gives it back; nested or slot-less calls pass through
        lane = g.get("admission_held")
        if not lane:
            yield
            return
        g.admission_held = None
        lane.release()
        try:
            yield
        finally:
            lane.acquire(resume=True)
            g.admission_held = lane

    @app.before_request
    def _admit():
        g.admission_token = blocking.use_hook(released)
        if not is_heavy(request.method, request.path):
            return None
        lane = page_slots if is_page_render(request.method, request.path) else slots
        started = time.perf_counter()
        if not lane.acquire(wait):
            log.warning("no admission slot", extra={"path": request.path, "waited_s": round(wait, 1)})
            raise ServiceUnavailable("The service is busy; nothing was done. Please try again shortly.",
                                     details={"retry_after": max(1, round(wait / 4))})
        g.admission_held = lane
        g.admission_wait_ms = round((time.perf_counter() - started) * 1000, 2)
        return None

    @app.teardown_request
    def _leave(_exc):
        lane = g.pop("admission_held", None)
        if lane:
            lane.release()
        token = g.pop("admission_token", None)
        if token is not None:
            try:
                blocking.reset_hook(token)
            except ValueError:  # set in another context (should not happen): leave it
                pass

    return slots
