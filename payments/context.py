"""What every domain service needs, wired once by the composition root (:mod:`paygate.services`).

:class:`Context` carries the database sessionmaker, Redis, the gateway, business time and the id factory;
:class:`RedisLock` is the short per-object lease that keeps two requests from calling the gateway for the same
object at once (step 1 of the write path in docs/architecture.md; the compare-and-set in the database is what
makes it safe even when a lease is lost).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy.orm import sessionmaker

from kernel.blocking import blocking
from kernel.clock import Clock, IdFactory
from kernel.errors import NotFound
from tokenizer.gateways.base import Gateway

LOCK_TTL_MS = 60_000
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_LOCK_THEN = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[3]) then return 2 end
return 1
"""


class RedisLock:
    """A lease per key in Redis (``SET key token NX PX ttl``), released only by its holder (a Lua
    compare-and-delete). ``sleep`` is injected for waiting."""

    def __init__(self, redis, *, sleep: Callable[[float], None] = time.sleep):
        self.redis = redis
        self.sleep = sleep
        self._unlock = redis.register_script(_UNLOCK)
        self._lock_then = redis.register_script(_LOCK_THEN)

    def acquire(self, key: str, token: str, *, ttl_ms: int = LOCK_TTL_MS, wait_seconds: float = 0.0) -> bool:
        """Takes the lease ``key`` for ``token``; waits up to ``wait_seconds`` (polling every 50 ms) while
        another holder has it. Returns False when it could not be taken."""
        deadline = time.monotonic() + wait_seconds
        while True:
            if self.redis.set(key, token, nx=True, px=ttl_ms):
                return True
            if time.monotonic() >= deadline:
                return False
            with blocking():  # in the web tier: the request's admission slot is free while it only waits
                self.sleep(0.05)

    def acquire_then(self, key: str, token: str, *, ttl_ms: int, then: str, then_ttl_ms: int) -> tuple[bool, bool]:
        """Takes the lease ``key`` for ``token`` without waiting and, only when that succeeded, the lease ``then``
        for the same token, atomically in one round trip (a Lua script). Returns ``(key taken, then taken)``: a
        caller that did not get ``key`` never holds ``then``, so it has nothing to give back. Raises
        ``redis.RedisError`` like :meth:`acquire`."""
        taken = int(self._lock_then(keys=[key, then], args=[token, ttl_ms, then_ttl_ms]))
        return taken >= 1, taken == 2

    def release(self, key: str, token: str) -> None:
        """Gives the lease back if ``token`` still holds it (an expired lease taken by another is left alone)."""
        self._unlock(keys=[key], args=[token])

    def release_all(self, leases: list[tuple[str, str]], *, then: Callable[[object], object] | None = None) -> None:
        """:meth:`release` for each ``(key, token)``, in one round trip to Redis (a pipeline of the same
        compare-and-delete script, run by its SHA; a Redis that lost its script cache gets one release at a time,
        which loads it again). ``then(pipe)`` may queue more commands on the same pipeline
        (:func:`run_script_pipeline`). Raises ``redis.RedisError`` like :meth:`release`."""
        results = run_script_pipeline(self.redis, self._unlock, [([key], [token]) for key, token in leases],
                                      then=then)
        if results is None:
            for key, token in leases:
                self.release(key, token)


def run_script_pipeline(redis, script, calls: list[tuple[list, list]], *,
                        then: Callable[[object], object] | None = None) -> list | None:
    """Runs the registered Lua ``script`` (``redis.register_script``) once per ``(keys, args)`` of ``calls`` in one
    non-transactional pipeline by its SHA (``EVALSHA``), without redis-py's ``SCRIPT EXISTS`` round trip that a
    pipeline of :class:`redis.commands.core.Script` calls costs. ``then(pipe)``, when given, queues more commands
    after the scripts in the same round trip; when it returns a function, that function gets their answers (a
    list, an error as its exception object) once the scripts' are complete, else an error among them is raised.
    Returns the scripts' results, or None when Redis does not know the script (``NOSCRIPT``: no script ran; the
    caller runs them through ``script`` itself, which loads it). Other errors are raised."""
    from redis.exceptions import NoScriptError

    with redis.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        finish = then(pipe) if then is not None else None
        answers = pipe.execute(raise_on_error=False)
    results, extra = answers[:len(calls)], answers[len(calls):]
    if any(isinstance(r, NoScriptError) for r in results):
        if all(isinstance(r, NoScriptError) for r in results):
            results = None
        else:  # some ran (the cache was flushed in between): run only the rest through the script
            results = [script(keys=keys, args=args) if isinstance(r, NoScriptError) else r
                       for r, (keys, args) in zip(results, calls)]
    if callable(finish):
        finish(extra)
        extra = []
    for r in [*(results or ()), *extra]:
        if isinstance(r, Exception):
            raise r
    return results


@dataclass(frozen=True)
class Context:
    """The shared dependencies of the domain services. ``clock`` is business time (aware UTC)."""

    Session: sessionmaker
    redis: object
    gateway: Gateway
    clock: Clock
    new_id: IdFactory
    locks: RedisLock = field(repr=False)
    production: bool = False
    """``PAYGATE_ENV=production``: callback URLs must then be https (or loopback http)."""

    def owned(self, model: type, object_id: str, client_id: str | None, *, code: str, what: str):
        """The ``model`` row ``object_id`` of API client ``client_id`` (None skips the owner check). Raises
        :class:`~kernel.errors.NotFound` with ``code`` ("No such ``what``.") when it does not exist or belongs to
        another client: the two are indistinguishable from outside."""
        with self.Session() as db:
            row = db.get(model, object_id)
        if row is None or (client_id is not None and row.client_id != client_id):
            raise NotFound(f"No such {what}.", code=code)
        return row

    def now(self):
        """Business time, aware UTC."""
        return self.clock()

    def naive_now(self):
        """Business time as the naive UTC value the tables store."""
        return self.clock().replace(tzinfo=None)
