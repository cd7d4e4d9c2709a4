"""The delivery worker process: ``python -m paygate.worker`` (``paygate worker`` adds periodic tasks).

Loop: deliver a batch (:meth:`~callbacks.delivery.Deliverer.run_once`); run each periodic task whose
interval has passed; when nothing was due, wait on the Redis wake list (:data:`callbacks.outbox.WAKE_KEY`)
for at most half a second, so a committed event goes out well under a second later and retries that
come due are noticed promptly. SIGTERM and SIGINT stop the loop after the current batch.

Killing the process outright loses nothing: the claimed rows' leases run out and any worker claims them
again (docs/api.md, "Events": no event is lost when a process dies).
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
from kernel.settings import Settings
from payments.clients import genesys_settings_loader, signing_secrets_resolver
from tokenizer.gateways.stripe_webhooks import sign_payload

from .services import Services, build_services

log = logging.getLogger("paygate.callbacks")

WAIT_SECONDS = 0.5
BATCH_SIZE = 50
_ERROR_PAUSE_MAX = 10.0


def build_deliverer(settings: Settings, Session, http: httpx.Client, **overrides) -> Deliverer:
    """A :class:`Deliverer` configured from the settings' ``delivery_*`` fields (fresh RNG), sending webhooks and
    the Genesys write-backs of docs/api.md, "Genesys write-back" (:func:`integrations.genesys.writeback.build_senders`,
    secrets opened with a :class:`~integrations.genesys.settings.SecretBox` of ``PAYGATE_SECRET_KEY`` and
    ``PAYGATE_PREVIOUS_SECRET_KEYS``).

    ``clock`` (default the system clock) must be the deployment's business time — the services' clock, which the
    sandbox clock moves — because events and their deliveries are recorded in it: on another clock, deliveries
    recorded after a move would wait for real time to catch up. Signatures and Genesys OAuth tokens keep real
    time (``real_clock``, default the system clock).

    In production (``settings.production``) webhooks go through the deliverer's own guarded client, which
    refuses hosts that are or resolve to addresses that are not global unicast and connects to the address it
    checked (docs/api.md, "Callback URLs in production"); close the deliverer when done."""
    kwargs = dict(clock=system_clock, real_clock=system_clock, rng=random.Random(), production=settings.production,
                  backoff_base=settings.delivery_backoff_base,
                  backoff_cap=settings.delivery_backoff_cap, max_age_seconds=settings.delivery_max_age_seconds,
                  lease_seconds=settings.delivery_lease_seconds,
                  timeout_seconds=settings.delivery_timeout_seconds,
                  signing_secrets=signing_secrets_resolver(Session))
    kwargs.update(overrides)
    if "senders" not in overrides:
        box = SecretBox(settings.secret_key, settings.previous_secret_keys)
        kwargs["senders"] = build_senders(Session, http, clock=kwargs["real_clock"], box=box,
                                          load_settings=genesys_settings_loader(Session),
                                          timeout=settings.delivery_timeout_seconds)
    return Deliverer(Session, http, **kwargs)


def periodic_tasks(svc: Services, http: httpx.Client) -> list[tuple[float, Callable[[], object]]]:
    """The worker's scheduled work, ``(interval seconds, task)``: expire sessions past their TTL and lapse holds
    (every second), post the sandbox's due Stripe-shaped webhooks (every second, sandbox only), charge due
    subscription renewals and retries (every second), and reconcile unknown gateway answers of card submissions,
    merchant-initiated charges, captures/voids, refunds and subscription charges (every 5 s)."""
    tasks: list[tuple[float, Callable[[], object]]] = [
        (1.0, svc.sessions.expire_due), (1.0, svc.holds.lapse_due), (5.0, svc.payments.reconcile_due),
        (5.0, svc.merchant.reconcile_due), (5.0, svc.holds.reconcile_due), (5.0, svc.refunds.reconcile_due),
        (1.0, svc.subscriptions.renew_due), (5.0, svc.subscriptions.reconcile_due)]
    queue = getattr(svc.gateway, "webhooks", None)
    if queue is not None and svc.settings.stripe_webhook_secret:
        tasks.append((1.0, SandboxWebhookPoster(queue, svc.clock, svc.settings.stripe_webhook_secret,
                                                post=_http_poster(http, svc.settings.public_base_url))))
    return tasks


def _http_poster(http: httpx.Client, base_url: str) -> Callable[[bytes, str], bool]:
    url = f"{base_url}/webhooks/stripe"

    def post(payload: bytes, signature: str) -> bool:
        try:
            response = http.post(url, content=payload, headers={"Content-Type": "application/json",
                                                                "Stripe-Signature": signature})
        except httpx.HTTPError as exc:
            log.warning("sandbox webhook not delivered", extra={"error": type(exc).__name__})
            return False
        return 200 <= response.status_code < 300

    return post


class SandboxWebhookPoster:
    """Posts the sandbox gateway's due Stripe-shaped events to the app's own ``/webhooks/stripe``, signed with
    the webhook secret the way Stripe signs (real time in the signature), so they take the path a real Stripe
    event takes. ``post(payload, signature) -> bool`` sends one (True on 2xx); an event that could not be
    delivered is queued again 5 s (business time) later. Calling it returns how many were delivered."""

    RETRY_SECONDS = 5.0

    def __init__(self, queue, clock, secret: str, *, post: Callable[[bytes, str], bool],
                 real_time: Callable[[], float] = time.time):
        self.queue = queue
        self.clock = clock
        self.secret = secret
        self.post = post
        self.real_time = real_time

    def __call__(self) -> int:
        now = self.clock().timestamp()
        delivered = 0
        for body in self.queue.take_due(now):
            payload = body.encode("utf-8")
            if self.post(payload, sign_payload(payload, self.secret, int(self.real_time()))):
                delivered += 1
            else:
                self.queue.schedule(body, now + self.RETRY_SECONDS)
        return delivered


def run_worker(settings: Settings, *, services: Services | None = None, stop: threading.Event | None = None,
               periodic: Sequence[tuple[float, Callable[[], object]]] = ()) -> None:
    """Runs the delivery loop until ``stop`` is set (or SIGTERM/SIGINT arrives, when called from the main
    thread). ``services``: the composition root's :class:`~paygate.services.Services` (built from ``settings``
    when not given). ``periodic`` is a list of ``(interval_seconds, task)``; each task runs first at start-up,
    then whenever its interval has passed; its exceptions are logged and never stop the worker.
    """
    stop = stop or threading.Event()
    owned = services is None
    services = services or build_services(settings)
    Session, redis = services.Session, services.redis
    http = httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=False,
                        timeout=settings.delivery_timeout_seconds)
    deliverer = build_deliverer(settings, Session, http, clock=services.clock)

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
        deliverer.close()
        http.close()
        if owned:
            services.close()
        log.info("worker stopped")


def _wait_for_wake(redis: redis_lib.Redis, stop: threading.Event) -> None:
    """Blocks up to :data:`WAIT_SECONDS` on the wake list; falls back to a plain wait if Redis is down."""
    try:
        redis.blpop([WAKE_KEY], timeout=WAIT_SECONDS)
    except redis_lib.RedisError as exc:
        log.warning("wake wait failed", extra={"error": type(exc).__name__})
        stop.wait(WAIT_SECONDS)


def serve(settings: Settings) -> None:
    """The ``paygate worker`` process: migrates a fresh SQLite file, then delivers the outbox and runs
    :func:`periodic_tasks` until SIGTERM/SIGINT."""
    from paygate.migrate import upgrade

    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url, lock_dir=settings.instance_path)
    svc = build_services(settings)
    with httpx.Client(headers={"User-Agent": USER_AGENT}, follow_redirects=False,
                      timeout=settings.delivery_timeout_seconds) as http:
        try:
            run_worker(settings, services=svc, periodic=periodic_tasks(svc, http))
        finally:
            svc.close()


def main() -> None:
    """Entry point of ``python -m paygate.worker``: settings from the environment, JSON logs, run."""
    from kernel.logging import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_level)
    serve(settings)


if __name__ == "__main__":
    main()
