"""Sending due deliveries: claim under a lease, send concurrently, record each attempt.

A claim is one UPDATE that stamps ``locked_until``/``lock_token`` on up to ``limit`` due rows and is
committed before anything is sent. A worker that dies (even by SIGKILL) leaves only a lease that runs
out; another worker then claims the row again, so nothing is lost and delivery is at least once
(receivers dedupe on the event id; docs/api.md, "Events"). Results are written only while the row still carries
our ``lock_token``.

The claim works unchanged on SQLite (one writer at a time) and on PostgreSQL, where the lease condition
is repeated in the outer WHERE: a concurrent worker blocked on the same rows re-checks it after the
first commit and skips them. On PostgreSQL the inner SELECT also uses ``FOR UPDATE SKIP LOCKED`` so
concurrent workers take different rows instead of waiting.

Senders: ``kind -> callable(job) -> SendResult``. ``webhook`` is built in; the Genesys write-back kinds
of docs/api.md, "Genesys write-back" (:mod:`integrations.genesys.writeback`) plug in through ``senders=``. An unknown kind is dead at once.
A sender may return ``retry_after`` (a 429's ``Retry-After``): the next attempt is then not before it,
so a rate-limited destination is honoured by rescheduling, never by sleeping in the worker.
"""

from __future__ import annotations

import logging
import random
import secrets
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Callable, Iterable, Mapping, Sequence
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import sessionmaker

from kernel.clock import Clock, as_utc
from kernel.netguard import AddressNotAllowed, Resolver, guarded_transport, system_resolver

from . import retry
from .models import Delivery, DeliveryAttempt, Event
from .outbox import KIND_WEBHOOK, naive_utc
from .signing import EVENT_ID_HEADER, SIGNATURE_HEADER, sign

log = logging.getLogger("paygate.callbacks")

USER_AGENT = "paygate-callbacks/1"
_ERROR_MAX = 200


@dataclass(frozen=True)
class DeliveryJob:
    """What a sender needs for one attempt (read at claim time; no database access while sending).

    ``body`` is the event's stored JSON text, sent unchanged. ``signing_secrets`` are the client's active
    secrets, newest first. ``client_id`` lets a sender look up further per-client settings itself.
    """

    delivery_id: int
    kind: str
    target: str
    attempt: int
    event_id: str
    event_type: str
    event_created_at: datetime
    body: str = field(repr=False)
    client_id: str
    signing_secrets: tuple[str, ...] = field(repr=False)


@dataclass(frozen=True)
class SendResult:
    """One attempt's result: ``status_code`` (None without a response), ``transport_error`` (timeout or
    connection failure), a short ``error`` (never the response body), ``latency_ms`` and ``permanent``."""

    status_code: int | None
    transport_error: bool
    error: str | None
    latency_ms: float
    permanent: bool = False
    """True when retrying cannot help (unknown kind, no secret, invalid target): dead at once."""
    skipped: bool = False
    """True when the sender found nothing worth sending (e.g. a newer state was already written): the
    delivery counts as delivered without a request; ``error`` says why, in the attempt log."""
    retry_after: float | None = None
    """Seconds the destination asked us to wait (``Retry-After`` of a 429/503): a retry is scheduled no
    earlier than ``now + retry_after``; past the event's retry window the delivery is dead instead."""


Sender = Callable[[DeliveryJob], SendResult]
SecretsResolver = Callable[[Iterable[str]], Mapping[str, Sequence[str]]]
"""``client ids -> {client_id: active signing secrets, newest first}`` (the API clients live above this
layer, so the composition root supplies the lookup)."""


def safe_origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` — what logs may show of a target (no path, query or userinfo)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "invalid-url"
    return f"{parts.scheme}://{host}{port}"


class WebhookSender:
    """POSTs the event body to the target, signed with every active secret (docs/api.md, "Events").

    Headers: ``Content-Type: application/json``, ``Paygate-Event-Id``, ``Paygate-Signature``
    (``t`` = ``clock()`` at send time), ``User-Agent: paygate-callbacks/1``. Redirects are not followed
    (a 3xx is final). ``timeout`` (seconds) bounds connect, read, write and pool waits.

    In production (``http`` from :func:`guarded_client`; docs/api.md, "Callback URLs in production") each new
    connection resolves the target's host once and connects to the address it checked; a host that is or
    resolves to an address that is not global unicast raises :class:`~kernel.netguard.AddressNotAllowed` before
    any byte is sent, and the delivery is dead at once with ``callback_url_not_allowed: ...`` as its error.
    """

    def __init__(self, http: httpx.Client, *, clock: Clock, timeout: float):
        self.http = http
        self.clock = clock
        self.timeout = timeout

    def __call__(self, job: DeliveryJob) -> SendResult:
        body = job.body.encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            EVENT_ID_HEADER: job.event_id,
            SIGNATURE_HEADER: sign(body, job.signing_secrets, int(self.clock().timestamp())),
        }
        started = time.perf_counter()
        try:
            response = self.http.post(job.target, content=body, headers=headers, timeout=self.timeout,
                                      follow_redirects=False)
        except AddressNotAllowed as exc:
            return SendResult(None, False, f"callback_url_not_allowed: {exc}", _ms(started), permanent=True)
        except httpx.TimeoutException as exc:
            return SendResult(None, True, f"timeout: {type(exc).__name__}", _ms(started))
        except httpx.UnsupportedProtocol:
            return SendResult(None, False, "unsupported_url_scheme", _ms(started), permanent=True)
        except httpx.TransportError as exc:
            return SendResult(None, True, f"connection_error: {type(exc).__name__}", _ms(started))
        except httpx.InvalidURL:
            return SendResult(None, False, "invalid_url", _ms(started), permanent=True)
        latency = _ms(started)
        status = response.status_code
        return SendResult(status, False, None if 200 <= status < 300 else f"http_{status}", latency)


def guarded_client(timeout: float, *, resolver: Resolver = system_resolver) -> httpx.Client:
    """The webhook client of production: an ``httpx.Client`` on :func:`kernel.netguard.guarded_transport` (each
    connection resolved once, checked, opened to the checked address; TLS verifies the URL's host name), no
    proxies from the environment, no redirects, ``timeout`` seconds. ``resolver``: ``(host, port) -> [IP]``
    (tests)."""
    return httpx.Client(transport=guarded_transport(resolver=resolver), headers={"User-Agent": USER_AGENT},
                        follow_redirects=False, timeout=timeout, trust_env=False)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


class Deliverer:
    """Claims due deliveries and sends them (one :meth:`run_once` per worker loop turn).

    - ``sessionmaker``: SQLAlchemy sessionmaker on the paygate database.
    - ``http``: the ``httpx.Client`` the webhook sender uses (shared, thread-safe).
    - ``clock``: aware-UTC clock of the outbox (due times, leases, attempt times, the retry window): the
      deployment's business time, the time events are recorded in; ``rng``: jitter source.
    - ``real_clock``: the clock of the webhook signature's ``t`` (default ``clock``). Receivers compare ``t``
      with their own clock, so it stays real time even when business time was moved (the sandbox clock).
    - ``backoff_base``/``backoff_cap`` (s), ``max_age_seconds``: see :mod:`callbacks.retry`.
    - ``lease_seconds``: how long a claim blocks other workers; should exceed ``timeout_seconds``.
    - ``signing_secrets``: a :data:`SecretsResolver` for the clients whose events are claimed.
    - ``concurrency``: parallel sends per batch; ``senders``: extra or replacement kind → sender.
    - ``new_token``: lock-token factory (default 128 random bits as hex).
    - ``production``: webhooks go through their own :func:`guarded_client` instead of ``http`` (docs/api.md,
      "Callback URLs in production"); ``resolver`` is its host resolver (tests). :meth:`close` closes it.
    """

    def __init__(self, sessionmaker: sessionmaker, http: httpx.Client, *, clock: Clock, rng: random.Random,
                 backoff_base: float, backoff_cap: float, max_age_seconds: float, lease_seconds: float,
                 timeout_seconds: float, signing_secrets: SecretsResolver, concurrency: int = 8,
                 senders: Mapping[str, Sender] | None = None, real_clock: Clock | None = None,
                 new_token: Callable[[], str] = lambda: secrets.token_hex(16), production: bool = False,
                 resolver: Resolver = system_resolver):
        self.Session = sessionmaker
        self.clock = clock
        self.rng = rng
        self.policy = retry.RetryPolicy(base=backoff_base, cap=backoff_cap, max_age=max_age_seconds)
        self.lease_seconds = lease_seconds
        self.concurrency = max(1, concurrency)
        self.batch_cap = self.concurrency * max(1, int(lease_seconds // timeout_seconds))
        """The most rows one :meth:`run_once` claims: every send of a batch must end (and be recorded) within the
        batch's lease even when each runs to its timeout (``concurrency`` × ⌊lease ÷ timeout⌋). A bigger batch
        outlived its lease behind a slow receiver: another worker claimed the rows and sent them again, and the
        first worker's results were dropped as "lease lost" (tests/functional/test_scale_out.py: 114 lost leases
        and 181 callbacks for 40 events before this cap)."""
        self.new_token = new_token
        self.signing_secrets = signing_secrets
        self._own_http = guarded_client(timeout_seconds, resolver=resolver) if production else None
        self.senders: dict[str, Sender] = {KIND_WEBHOOK: WebhookSender(self._own_http or http,
                                                                       clock=real_clock or clock,
                                                                       timeout=timeout_seconds)}
        if senders:
            self.senders.update(senders)

    def close(self) -> None:
        """Closes the HTTP client the deliverer made for itself (production's guarded webhook client)."""
        if self._own_http is not None:
            self._own_http.close()

    # -- claiming -----------------------------------------------------------------------------------
    def claim(self, limit: int) -> tuple[str, list[DeliveryJob]]:
        """Leases up to ``limit`` due deliveries (committed) and returns ``(lock_token, jobs)``."""
        now = naive_utc(self.clock())
        lease_end = now + timedelta(seconds=self.lease_seconds)
        token = self.new_token()
        t = Delivery.__table__
        free = or_(t.c.locked_until.is_(None), t.c.locked_until < now)
        due = (select(t.c.id)
               .where(t.c.status == "pending", t.c.next_attempt_at <= now, free)
               .order_by(t.c.next_attempt_at, t.c.id)
               .limit(limit))
        with self.Session() as db:
            if db.get_bind().dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            claimed = db.execute(update(t)
                                 .where(t.c.id.in_(due.scalar_subquery()), t.c.status == "pending", free)
                                 .values(locked_until=lease_end, lock_token=token)
                                 .returning(t.c.id)).scalars().all()
            db.commit()
            if not claimed:
                return token, []
            rows = db.execute(
                select(Delivery, Event)
                .join(Event, Event.id == Delivery.event_id)
                .where(Delivery.id.in_(claimed), Delivery.lock_token == token)
                .order_by(Delivery.next_attempt_at, Delivery.id)).all()
            db.commit()
        secrets_by_client = self.signing_secrets({e.client_id for _, e in rows}) if rows else {}
        jobs = [DeliveryJob(delivery_id=d.id, kind=d.kind, target=d.target, attempt=d.attempts + 1,
                            event_id=e.id, event_type=e.type, event_created_at=e.created_at, body=e.body,
                            client_id=e.client_id, signing_secrets=tuple(secrets_by_client.get(e.client_id) or ()))
                for d, e in rows]
        return token, jobs

    # -- sending ------------------------------------------------------------------------------------
    def _send(self, job: DeliveryJob) -> tuple[datetime, SendResult]:
        started_at = self.clock()
        sender = self.senders.get(job.kind)
        if sender is None:
            return started_at, SendResult(None, False, f"unknown_delivery_kind: {job.kind}"[:_ERROR_MAX], 0.0,
                                          permanent=True)
        if job.kind == KIND_WEBHOOK and not job.signing_secrets:
            return started_at, SendResult(None, False, "client_has_no_signing_secret", 0.0, permanent=True)
        try:
            return started_at, sender(job)
        except Exception as exc:  # a sender bug must not take the batch down; retried within max age
            log.exception("callback sender failed", extra={"event_id": job.event_id, "delivery_id": job.delivery_id})
            return started_at, SendResult(None, True, f"sender_error: {type(exc).__name__}", 0.0)

    def run_once(self, limit: int = 50) -> int:
        """Claims up to ``limit`` due deliveries (at most :attr:`batch_cap`), sends them concurrently and records each
        result as soon as its send ends.

        Returns how many deliveries were processed (0 when nothing was due).
        """
        token, jobs = self.claim(min(limit, self.batch_cap))
        if not jobs:
            return 0
        if len(jobs) == 1 or self.concurrency == 1:
            for job in jobs:
                self._record(token, job, *self._send(job))
            return len(jobs)
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(jobs)),
                                thread_name_prefix="paygate-callback") as pool:
            futures = {pool.submit(self._send, job): job for job in jobs}
            for future in as_completed(futures):
                self._record(token, futures[future], *future.result())
        return len(jobs)

    # -- recording ----------------------------------------------------------------------------------
    def _honour_retry_after(self, decision: retry.Decision, retry_after: float, now: datetime,
                            job: DeliveryJob) -> retry.Decision:
        """The later of the backoff time and ``now + retry_after`` (RFC 9110 §10.2.3); dead when that is
        past the retry window (``max_age`` after the event), since the destination asked us to wait longer."""
        earliest = now + timedelta(seconds=max(0.0, retry_after))
        deadline = as_utc(job.event_created_at) + timedelta(seconds=self.policy.max_age)
        if earliest > deadline:
            return retry.Decision(retry.DEAD, None)
        return retry.Decision(retry.RETRY, max(earliest, decision.next_attempt_at or earliest))

    def _record(self, token: str, job: DeliveryJob, started_at: datetime, result: SendResult) -> None:
        now = self.clock()
        if result.skipped:
            decision = retry.Decision(retry.DELIVERED, None)
        elif result.permanent:
            decision = retry.Decision(retry.DEAD, None)
        else:
            decision = retry.decide(result.status_code, result.transport_error, job.attempt, now=now,
                                    event_created_at=as_utc(job.event_created_at), policy=self.policy,
                                    rng=self.rng)
            if decision.outcome == retry.RETRY and result.retry_after is not None:
                decision = self._honour_retry_after(decision, result.retry_after, now, job)
        error = result.error[:_ERROR_MAX] if result.error else None
        values = {"attempts": job.attempt, "last_status_code": result.status_code, "last_error": error,
                  "locked_until": None, "lock_token": None, "status": "pending"}
        if decision.outcome == retry.DELIVERED:
            values.update(status="delivered", delivered_at=naive_utc(now), last_error=None)
        elif decision.outcome == retry.DEAD:
            values.update(status="dead")
        else:
            values.update(next_attempt_at=naive_utc(decision.next_attempt_at))
        t = Delivery.__table__
        with self.Session() as db:
            changed = db.execute(update(t).where(and_(t.c.id == job.delivery_id, t.c.lock_token == token))
                                 .values(**values)).rowcount
            if changed:
                db.add(DeliveryAttempt(delivery_id=job.delivery_id, number=job.attempt,
                                       started_at=naive_utc(started_at), status_code=result.status_code,
                                       latency_ms=round(result.latency_ms, 3), error=error,
                                       outcome=decision.outcome))
            db.commit()
        extra = {"event_id": job.event_id, "delivery_id": job.delivery_id, "kind": job.kind,
                 "target": safe_origin(job.target), "attempt": job.attempt, "status_code": result.status_code,
                 "latency_ms": round(result.latency_ms, 1), "outcome": decision.outcome, "error": error}
        if not changed:
            log.warning("callback lease lost; result not recorded", extra=extra)
        elif decision.outcome == retry.DELIVERED:
            log.info("callback delivered", extra=extra)
        else:
            log.warning("callback attempt failed", extra=extra)
