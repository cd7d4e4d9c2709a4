"""The figures of the operator's HTML report (``paygate report html``; docs/operations.md, "The operator report").

Pure aggregation: :func:`summarize` turns rows (:class:`AttemptRow`, :class:`RefundRow`, :class:`DisputeRow`)
into an :class:`OperatorReport`; :func:`load` reads those rows from the database and :func:`build_report` does
both. Time is injected (``generated_at``); nothing here reads a clock. Charts and HTML are drawn from the result by
:mod:`paygate.report_html`.

What is counted, for rows *created* in [``since``, ``until``) (``since`` inclusive, ``until`` exclusive, UTC):

* **Card submissions** (``payment_attempts``: hosted page and voice; merchant-initiated charges and renewals are
  not submissions and are not counted). An attempt's ``outcome`` is ``approved``, ``declined``,
  ``requires_agent`` (a block: the fraud pre-screen, ``decline_code: fraud_prescreen``, the gateway's own fraud
  block, or the open circuit breaker, ``automation_unavailable``), ``failed``, or ``unknown``/None while the
  gateway's answer is not known yet. The **approval rate** is approved / (approved + declined + requires_agent +
  failed): attempts still in flight count nowhere. ``None`` when no attempt ended.
* **Declines by code**: declined attempts by their gateway ``decline_code`` (Stripe's codes,
  https://docs.stripe.com/declines/codes).
* **Fraud blocks by rule**: blocked attempts other than ``automation_unavailable``. A pre-screen block counts
  once for each rule that fired (its stored ``fraud_reasons`` codes: ``session_attempts``, ``ip_velocity``, ...;
  docs/api.md, "Fraud screening"), so the rules can add up to more than the blocks; a gateway block counts as
  ``gateway:<decline_code>`` (``gateway:fraudulent`` for Stripe Radar).
* **Gateway latency**: ``payment_attempts.gateway_latency_ms`` (real time around the authorization call; None for
  attempts that never reached the gateway and for attempts recorded before that column existed). Percentiles
  are nearest-rank (https://en.wikipedia.org/wiki/Percentile#The_nearest-rank_method): p50 and p99 of a bucket.
* **Refunds** by ``status`` (pending | succeeded | failed), failures by ``failure_code``, ``manual_review``
  (required: in the review queue; resolved), and amounts per currency and status (minor units).
* **Disputes** by ``status`` and ``reason`` (Stripe's values), and amounts per currency (minor units).

Buckets of the time series: ``hour`` for a range of at most two days, ``day`` up to 92 days, ``week`` (Mondays)
beyond, unless one is asked for. Card data: none is read (no brand, no last four, no token).
Memory: counters per bucket, plus every latency of the range (one integer per attempt) for the percentiles.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from kernel.clock import naive_utc

from .models import Dispute, PaymentAttempt, PaymentSession, Refund

__all__ = [
    "BUCKETS",
    "AttemptRow",
    "Bucket",
    "DisputeRow",
    "OperatorReport",
    "RefundRow",
    "bucket_start",
    "build_report",
    "choose_bucket",
    "load",
    "percentile",
    "summarize",
]

BUCKETS = ("hour", "day", "week")
"""Sizes of the time series' buckets."""
FRAUD_PRESCREEN = "fraud_prescreen"
AUTOMATION_UNAVAILABLE = "automation_unavailable"
ENDED = ("approved", "declined", "requires_agent", "failed")
"""Attempt outcomes that count in the approval rate."""


@dataclass(frozen=True)
class AttemptRow:
    """One card submission: ``created_at`` (naive or aware UTC), ``outcome``, ``decline_code``, ``fraud_reasons``
    (``[{"code", ...}]``) and ``gateway_latency_ms`` (None: not measured)."""

    created_at: datetime
    outcome: str | None
    decline_code: str | None = None
    fraud_reasons: list = field(default_factory=list)
    gateway_latency_ms: int | None = None


@dataclass(frozen=True)
class RefundRow:
    """One refund: ``status``, ``failure_code``, ``manual_review`` (none | required | resolved), ``amount`` in
    minor units of ``currency``."""

    created_at: datetime
    status: str
    failure_code: str | None
    manual_review: str
    amount: int
    currency: str


@dataclass(frozen=True)
class DisputeRow:
    """One dispute: Stripe's ``status`` and ``reason``, ``amount`` in minor units of ``currency``."""

    created_at: datetime
    status: str
    reason: str
    amount: int
    currency: str


@dataclass(frozen=True)
class Bucket:
    """One step of the time series starting at ``start`` (naive UTC): attempts by outcome, the approval rate
    (0..1, None when no attempt ended) and the gateway latency percentiles in ms (None when none was measured)."""

    start: datetime
    attempts: int
    approved: int
    declined: int
    blocked: int
    failed: int
    approval_rate: float | None
    latency_p50_ms: int | None
    latency_p99_ms: int | None
    latency_count: int


@dataclass(frozen=True)
class OperatorReport:
    """The report's figures; see the module docstring. Counts are ints; ``*_by_*`` are lists of ``(name, count)``,
    largest first (then by name); amounts are ``{currency: {status: minor units}}``."""

    since: datetime
    until: datetime
    generated_at: datetime
    bucket: str
    client_id: str | None
    series: list[Bucket]
    attempts: int
    in_flight: int
    approved: int
    declined: int
    fraud_blocks: int
    breaker_blocks: int
    failed: int
    approval_rate: float | None
    latency_p50_ms: int | None
    latency_p99_ms: int | None
    latency_count: int
    declines_by_code: list[tuple[str, int]]
    fraud_blocks_by_rule: list[tuple[str, int]]
    refunds: int
    refunds_by_status: dict[str, int]
    refund_failures_by_code: list[tuple[str, int]]
    refunds_manual_review: dict[str, int]
    refund_amounts: dict[str, dict[str, int]]
    disputes: int
    disputes_by_status: list[tuple[str, int]]
    disputes_by_reason: list[tuple[str, int]]
    dispute_amounts: dict[str, int]


def choose_bucket(since: datetime, until: datetime) -> str:
    """``hour`` for a range of at most 2 days, ``day`` up to 92 days, else ``week``."""
    span = until - since
    if span <= timedelta(days=2):
        return "hour"
    if span <= timedelta(days=92):
        return "day"
    return "week"


def bucket_start(moment: datetime, bucket: str) -> datetime:
    """The start (naive UTC) of the ``bucket`` (hour | day | week starting Monday 00:00) holding ``moment``."""
    moment = naive_utc(moment)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if bucket == "day":
        return day
    if bucket == "week":
        return day - timedelta(days=day.weekday())
    raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")


def _step(bucket: str) -> timedelta:
    return {"hour": timedelta(hours=1), "day": timedelta(days=1), "week": timedelta(weeks=1)}[bucket]


def percentile(values: list[int] | list[float], p: float) -> int | None:
    """The nearest-rank ``p``-th percentile (0 < p ≤ 100) of ``values`` (None when empty), rounded to an int."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return round(ordered[rank - 1])


def _ranked(counter: Counter) -> list[tuple[str, int]]:
    return sorted(counter.items(), key=lambda item: (-item[1], item[0]))


def _rate(approved: int, ended: int) -> float | None:
    return approved / ended if ended else None


def _block_rules(row: AttemptRow) -> list[str]:
    if row.decline_code == FRAUD_PRESCREEN:
        codes = [r.get("code") for r in (row.fraud_reasons or []) if isinstance(r, dict) and r.get("code")]
        return codes or [FRAUD_PRESCREEN]
    return [f"gateway:{row.decline_code or 'blocked'}"]


def _within(rows: Iterable, since: datetime, until: datetime) -> Iterator:
    """The rows whose ``created_at`` (UTC) is in ``[since, until)``."""
    return (row for row in rows if since <= naive_utc(row.created_at) < until)


def summarize(attempts: Iterable[AttemptRow], refunds: Iterable[RefundRow], disputes: Iterable[DisputeRow], *,
              since: datetime, until: datetime, generated_at: datetime, bucket: str | None = None,
              client_id: str | None = None) -> OperatorReport:
    """The report of the rows (already limited to [``since``, ``until``) by the caller; rows outside are ignored).
    ``bucket`` None: :func:`choose_bucket`. Raises ValueError when ``since`` is not before ``until`` or ``bucket``
    is not one of :data:`BUCKETS`."""
    since, until = naive_utc(since), naive_utc(until)
    if since >= until:
        raise ValueError("since must be before until")
    bucket = bucket or choose_bucket(since, until)
    if bucket not in BUCKETS:
        raise ValueError(f"bucket must be one of {', '.join(BUCKETS)}")

    per_bucket: dict[datetime, Counter] = defaultdict(Counter)
    latencies: dict[datetime, list[int]] = defaultdict(list)
    outcomes: Counter = Counter()
    declines: Counter = Counter()
    rules: Counter = Counter()
    for row in attempts:
        created = naive_utc(row.created_at)
        if not since <= created < until:
            continue
        start = bucket_start(created, bucket)
        outcome = row.outcome if row.outcome in ENDED else "in_flight"
        if outcome == "requires_agent":
            outcome = "breaker" if row.decline_code == AUTOMATION_UNAVAILABLE else "fraud"
            if outcome == "fraud":
                rules.update(_block_rules(row))
        elif outcome == "declined":
            declines[row.decline_code or "generic_decline"] += 1
        outcomes[outcome] += 1
        per_bucket[start][outcome] += 1
        if row.gateway_latency_ms is not None:
            latencies[start].append(row.gateway_latency_ms)

    series = []
    start = bucket_start(since, bucket)
    while start < until:
        c = per_bucket.get(start, Counter())
        blocked = c["fraud"] + c["breaker"]
        ended = c["approved"] + c["declined"] + blocked + c["failed"]
        lat = latencies.get(start, [])
        series.append(Bucket(start=start, attempts=sum(c.values()), approved=c["approved"], declined=c["declined"],
                             blocked=blocked, failed=c["failed"], approval_rate=_rate(c["approved"], ended),
                             latency_p50_ms=percentile(lat, 50), latency_p99_ms=percentile(lat, 99),
                             latency_count=len(lat)))
        start += _step(bucket)

    refunds_by_status: Counter = Counter()
    failures: Counter = Counter()
    review: Counter = Counter()
    refund_amounts: dict[str, Counter] = defaultdict(Counter)
    refund_count = 0
    for r in _within(refunds, since, until):
        refund_count += 1
        refunds_by_status[r.status] += 1
        refund_amounts[r.currency][r.status] += r.amount
        if r.status == "failed":
            failures[r.failure_code or "unknown"] += 1
        if r.manual_review in ("required", "resolved"):
            review[r.manual_review] += 1

    dispute_status: Counter = Counter()
    dispute_reason: Counter = Counter()
    dispute_amounts: Counter = Counter()
    dispute_count = 0
    for d in _within(disputes, since, until):
        dispute_count += 1
        dispute_status[d.status] += 1
        dispute_reason[d.reason] += 1
        dispute_amounts[d.currency] += d.amount

    all_latencies = [v for values in latencies.values() for v in values]
    blocked = outcomes["fraud"] + outcomes["breaker"]
    ended = outcomes["approved"] + outcomes["declined"] + blocked + outcomes["failed"]
    return OperatorReport(
        since=since, until=until, generated_at=naive_utc(generated_at), bucket=bucket, client_id=client_id,
        series=series, attempts=sum(outcomes.values()), in_flight=outcomes["in_flight"],
        approved=outcomes["approved"], declined=outcomes["declined"], fraud_blocks=outcomes["fraud"],
        breaker_blocks=outcomes["breaker"], failed=outcomes["failed"],
        approval_rate=_rate(outcomes["approved"], ended),
        latency_p50_ms=percentile(all_latencies, 50), latency_p99_ms=percentile(all_latencies, 99),
        latency_count=len(all_latencies), declines_by_code=_ranked(declines), fraud_blocks_by_rule=_ranked(rules),
        refunds=refund_count,
        refunds_by_status={s: refunds_by_status.get(s, 0) for s in ("succeeded", "pending", "failed")},
        refund_failures_by_code=_ranked(failures),
        refunds_manual_review={s: review.get(s, 0) for s in ("required", "resolved")},
        refund_amounts={cur: dict(sorted(v.items())) for cur, v in sorted(refund_amounts.items())},
        disputes=dispute_count, disputes_by_status=_ranked(dispute_status), disputes_by_reason=_ranked(dispute_reason),
        dispute_amounts=dict(sorted(dispute_amounts.items())))


def load(Session: sessionmaker, since: datetime, until: datetime, client_id: str | None = None
         ) -> tuple[Iterator[AttemptRow], list[RefundRow], list[DisputeRow]]:
    """The rows created in [``since``, ``until``) (of one API client's, or every client's when None): attempts
    streamed (1,000 per fetch, one read session held while they are consumed), refunds and disputes as lists. Only
    the columns the report needs are selected: never a card column."""
    lo, hi = naive_utc(since), naive_utc(until)

    def attempts() -> Iterator[AttemptRow]:
        stmt = select(PaymentAttempt.created_at, PaymentAttempt.outcome, PaymentAttempt.decline_code,
                      PaymentAttempt.fraud_reasons, PaymentAttempt.gateway_latency_ms
                      ).where(PaymentAttempt.created_at >= lo, PaymentAttempt.created_at < hi)
        if client_id is not None:
            stmt = stmt.join(PaymentSession, PaymentSession.id == PaymentAttempt.session_id).where(
                PaymentSession.client_id == client_id)
        with Session() as db:
            for row in db.execute(stmt.execution_options(yield_per=1000)):
                yield AttemptRow(row.created_at, row.outcome, row.decline_code, row.fraud_reasons or [],
                                 row.gateway_latency_ms)

    with Session() as db:
        rq = select(Refund.created_at, Refund.status, Refund.failure_code, Refund.manual_review, Refund.amount,
                    Refund.currency).where(Refund.created_at >= lo, Refund.created_at < hi)
        dq = select(Dispute.created_at, Dispute.status, Dispute.reason, Dispute.amount, Dispute.currency).where(
            Dispute.created_at >= lo, Dispute.created_at < hi)
        if client_id is not None:
            rq, dq = rq.where(Refund.client_id == client_id), dq.where(Dispute.client_id == client_id)
        refunds = [RefundRow(*row) for row in db.execute(rq)]
        disputes = [DisputeRow(*row) for row in db.execute(dq)]
    return attempts(), refunds, disputes


def build_report(Session: sessionmaker, since: datetime, until: datetime, *, generated_at: datetime,
                 client_id: str | None = None, bucket: str | None = None) -> OperatorReport:
    """:func:`load` then :func:`summarize`. Raises ValueError as :func:`summarize` does."""
    if naive_utc(since) >= naive_utc(until):
        raise ValueError("since must be before until")
    attempts, refunds, disputes = load(Session, since, until, client_id)
    return summarize(attempts, refunds, disputes, since=since, until=until, generated_at=generated_at,
                     bucket=bucket, client_id=client_id)

