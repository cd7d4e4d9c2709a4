"""The delivery worker process: ``python -m paygate.worker`` (``paygate worker`` adds periodic tasks).

Loop: deliver a batch (:meth:`~callbacks.delivery.Deliverer.run_once`); run each periodic task whose
interval has passed; when nothing was due, wait on the Redis wake list (:data:`callbacks.outbox.WAKE_KEY`)
for at most half a second, so a committed event goes out well under a second later and retries that
come due are noticed promptly. SIGTERM and SIGINT stop the loop after the current batch.

Killing the process outright loses nothing: the claimed rows' leases run out and any worker claims them
again (contract §5, "no event is lost when a process dies").
"""

from __future__ import annotations

import logging
import random
import signal
import threading
import time
from typing import Callable, Sequence

import httpx
import redis as redis_lib

from callbacks.delivery import USER_AGENT, Deliverer
from callbacks.outbox import WAKE_KEY
from integrations.genesys.settings import SecretBox
from integrations.genesys.writeback import build_senders
from kernel.clock import system_clock
from kernel.db import make_engine, make_sessionmaker
from kernel.settings import Settings
from payments.clients import genesys_settings_loader, signing_secrets_resolver

log = logging.getLogger("paygate.callbacks")

WAIT_SECONDS = 0.5
BATCH_SIZE = 50
_ERROR_PAUSE_MAX = 10.0


def build_deliverer(settings: Settings, Session, http: httpx.Client, **overrides) -> Deliverer:
    """A :class:`Deliverer` configured from the settings' ``delivery_*`` fields (system clock, fresh RNG),
    sending webhooks and the Genesys write-backs of contract §6 (:func:`integrations.genesys.writeback.build_senders`,
    secrets opened with a :class:`~integrations.genesys.settings.SecretBox` of ``PAYGATE_SECRET_KEY``)."""
    kwargs = dict(clock=system_clock, rng=random.Random(), backoff_base=settings.delivery_backoff_base,
                  backoff_cap=settings.delivery_backoff_cap, max_age_seconds=settings.delivery_max_age_seconds,
                  lease_seconds=settings.delivery_lease_seconds,
                  timeout_seconds=settings.delivery_timeout_seconds,
                  signing_secrets=signing_secrets_resolver(Session))
    kwargs.update(overrides)
    if "senders" not in overrides:
        kwargs["senders"] = build_senders(Session, http, clock=kwargs["clock"], box=SecretBox(settings.secret_key),
                                          load_settings=genesys_settings_loader(Session),
                                          timeout=settings.delivery_timeout_seconds)
    return Deliverer(Session, http, **kwargs)


def run_worker(settings: Settings, *, stop: threading.Event | None = None,
               periodic: Sequence[tuple[float, Callable[[], object]]] = ()) -> None:
    """Runs the delivery loop until ``stop`` is set (or SIGTERM/SIGINT arrives, when called from the main
    thread). ``periodic`` is a list of ``(interval_seconds, task)``; each task runs first at start-up,
    then whenever its interval has passed; its exceptions are logged and never stop the worker.
    """
    stop = stop or threading.Event()
    engine = make_engine(settings.database_url)
    Session = make_sessionmaker(engine)
    redis = redis_lib.Redis.from_url(settings.redis_url, socket_timeout=WAIT_SECONDS + 5,
                                     socket_connect_timeout=5)
    http = httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=False,
                        timeout=settings.delivery_timeout_seconds)
    deliverer = build_deliverer(settings, Session, http)

    previous = {}
    if threading.current_thread() is threading.main_thread():
        def _graceful(signum, _frame):
            log.info("worker stopping", extra={"signal": signal.Signals(signum).name})
            stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _graceful)

    last_run = [float("-inf")] * len(periodic)
    error_pause = 0.5
    log.info("worker started", extra={"lease_seconds": settings.delivery_lease_seconds,
                                      "periodic_tasks": len(periodic)})
    try:
        while not stop.is_set():
            try:
                processed = deliverer.run_once(BATCH_SIZE)
                error_pause = 0.5
            except Exception:
                log.exception("delivery batch failed")
                processed = 0
                stop.wait(error_pause)
                error_pause = min(error_pause * 2, _ERROR_PAUSE_MAX)
            for i, (interval, task) in enumerate(periodic):
                if stop.is_set():
                    break
                if time.monotonic() - last_run[i] >= interval:
                    last_run[i] = time.monotonic()
                    try:
                        task()
                    except Exception:
                        log.exception("periodic task failed",
                                      extra={"task": getattr(task, "__qualname__", repr(task))})
            if processed == 0 and not stop.is_set():
                _wait_for_wake(redis, stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        http.close()
        redis.close()
        engine.dispose()
        log.info("worker stopped")


def _wait_for_wake(redis: redis_lib.Redis, stop: threading.Event) -> None:
    """Blocks up to :data:`WAIT_SECONDS` on the wake list; falls back to a plain wait if Redis is down."""
    try:
        redis.blpop([WAKE_KEY], timeout=WAIT_SECONDS)
    except redis_lib.RedisError as exc:
        log.warning("wake wait failed", extra={"error": type(exc).__name__})
        stop.wait(WAIT_SECONDS)


def main() -> None:
    """Entry point of ``python -m paygate.worker``: settings from the environment, JSON logs, run."""
    from kernel.logging import configure_logging
    from paygate.migrate import upgrade

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url, lock_dir=settings.instance_path)
    run_worker(settings)


if __name__ == "__main__":
    main()
