"""What the agent view shows besides the session row (docs/api.md, "Agent view"): the attempts in order, and the
payment a session's approval created with its hold deadline and refunds.

Codes and times only (the app words them in the agent's language); card data is brand and last four digits, never
more.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from .models import Payment, PaymentAttempt, PaymentSession, Refund


@dataclass(frozen=True)
class AttemptFact:
    """One card submission: ``number`` (1, 2...), ``at`` (naive UTC), ``outcome`` (approved | declined |
    requires_agent | failed | unknown | None while in flight), ``decline_code``, ``source`` (checkout | voice),
    ``card_brand`` / ``card_last4`` (or None)."""

    number: int
    at: datetime
    outcome: str | None
    decline_code: str | None
    source: str
    card_brand: str | None
    card_last4: str | None


@dataclass(frozen=True)
class RefundFact:
    """A refund of the session's payment: ``status`` (pending | succeeded | failed), ``amount`` (minor units of
    ``currency``), ``at`` (naive UTC, when it was asked for)."""

    status: str
    amount: int
    currency: str
    at: datetime


@dataclass(frozen=True)
class PaymentFact:
    """The session's payment: ``status`` (:class:`payments.states.PaymentStatus` value), ``capture_before`` (naive
    UTC, a hold's capture deadline, or None), ``amount_refunded`` (minor units) and its refunds, oldest first."""

    status: str
    capture_before: datetime | None
    amount_refunded: int
    refunds: tuple[RefundFact, ...]


def facts_of(Session, s: PaymentSession) -> tuple[list[AttemptFact], PaymentFact | None]:
    """The attempts of session ``s``, oldest first, and the payment its approval created with its refunds (None
    before approval), read in one database session (``Session``: sessionmaker); no query for what ``s`` says does
    not exist yet (no attempts, no payment)."""
    with Session() as db:
        return (_attempts(db, s.id) if s.attempts else []), (_payment(db, s.payment_id) if s.payment_id else None)


def _attempts(db, session_id: str) -> list[AttemptFact]:
    query = (select(PaymentAttempt.number, PaymentAttempt.created_at, PaymentAttempt.outcome,
                    PaymentAttempt.decline_code, PaymentAttempt.source, PaymentAttempt.card_brand,
                    PaymentAttempt.card_last4)
             .where(PaymentAttempt.session_id == session_id).order_by(PaymentAttempt.number))
    return [AttemptFact(r.number, r.created_at, r.outcome, r.decline_code, r.source, r.card_brand, r.card_last4)
            for r in db.execute(query)]


def _payment(db, payment_id: str) -> PaymentFact | None:
    p = db.get(Payment, payment_id)
    if p is None:
        return None
    refunds = db.execute(select(Refund.status, Refund.amount, Refund.currency, Refund.created_at)
                         .where(Refund.payment_id == p.id).order_by(Refund.created_at, Refund.id)).all()
    return PaymentFact(p.status, p.capture_before, p.amount_refunded or 0,
                       tuple(RefundFact(r.status, r.amount, r.currency, r.created_at) for r in refunds))
