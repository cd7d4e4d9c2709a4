"""Payment sessions: creation, the session view, cancel and expiry (docs/api.md, "Payment sessions").

State machine::

    pending ──submit──▶ processing ──▶ approved
       ▲                    │     ├──▶ declined ──(attempts < max)──▶ pending
       │                    │     ├──▶ requires_agent   (max declines, fraud block)
       │                    │     ├──▶ failed           (technical, never charged)
       │                    │     └──(gateway unreachable: stays processing until reconciled)
       ├──cancel──▶ canceled
       └──past expires_at──▶ expired

Every transition that matters writes its event to the outbox in the same
database transaction (:func:`payments.events.record`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from callbacks import events as ev
from callbacks import outbox
from kernel.clock import Clock, IdFactory, as_utc, rfc3339
from kernel.errors import Conflict, NotFound, ValidationFailed
from kernel.money import format_amount, is_currency

from . import events
from .events import callback_url_allowed
from .models import ApiClient, PaymentSession

AGENT_VIEW_GRACE_SECONDS = 86400
_STATUS_MESSAGES = {
    "pending": "Waiting for the customer to enter a card.",
    "processing": "The payment is being confirmed.",
    "approved": "Payment approved.",
    "requires_agent": "An agent will help complete this payment.",
    "failed": "The payment could not be completed. The customer was not charged.",
    "expired": "The payment link expired.",
    "canceled": "The payment session was canceled.",
}


class LinkSigner:
    """Signs checkout links: ``t`` = base64url(HMAC-SHA256(secret, purpose|session id)), 128 bits kept.

    The session id alone does not open the page (docs/api.md, "Payment sessions").
    """

    def __init__(self, secret_key: str):
        self._key = hashlib.sha256(b"paygate.links|" + secret_key.encode()).digest()

    def token(self, session_id: str, purpose: str = "checkout") -> str:
        mac = hmac.new(self._key, f"{purpose}|{session_id}".encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def check(self, session_id: str, token: str | None, purpose: str = "checkout") -> bool:
        return bool(token) and hmac.compare_digest(self.token(session_id, purpose), token)

    def expiring_token(self, session_id: str, expires: int, purpose: str = "agent") -> str:
        """A token that also signs ``expires`` (unix seconds), for links that must stop working."""
        return self.token(f"{session_id}|{expires}", purpose)

    def check_expiring(self, session_id: str, token: str | None, expires: str | None, now: float,
                       purpose: str = "agent") -> bool:
        """True when ``token`` signs (``session_id``, ``expires``) and ``expires`` is still ahead of ``now``."""
        if not expires or not expires.isdigit() or int(expires) < now:
            return False
        return self.check(f"{session_id}|{expires}", token, purpose)


@dataclass(frozen=True)
class SessionDefaults:
    """Configuration the service needs: ``max_attempts``, ``ttl_seconds`` default, gateway identifier,
    ``public_base_url`` and whether http callback URLs are allowed (outside production)."""

    max_attempts: int
    ttl_seconds: int
    gateway: str
    public_base_url: str
    production: bool


def outcome_of(session: PaymentSession) -> str | None:
    """The ``outcome`` field of the view: the last finished attempt's result, or the terminal status."""
    if session.status in ("approved", "requires_agent", "failed"):
        return session.status
    if session.status in ("pending", "processing") and session.decline_code and session.attempts:
        return "declined"
    return None


def session_view(s: PaymentSession, *, status: str | None = None) -> dict:
    """The session view of docs/api.md, "Payment sessions" (``status`` overrides the stored one, for event snapshots)."""
    card = None
    if s.card_last4:
        card = {"brand": s.card_brand, "last4": s.card_last4, "exp_month": s.card_exp_month,
                "exp_year": s.card_exp_year, "fingerprint": s.card_fingerprint}
    shown_status = status or s.status
    outcome = "declined" if shown_status == "declined" else outcome_of(s)
    return {
        "session_id": s.id, "status": shown_status, "outcome": outcome,
        "conversation_id": s.conversation_id, "participant_id": s.participant_id,
        "customer_account_id": s.customer_account_id, "intent": s.intent, "amount": s.amount,
        "currency": s.currency, "reference": s.reference, "channel": s.channel,
        "attempts": s.attempts, "max_attempts": s.max_attempts, "token": s.token, "card": card,
        "payment_id": s.payment_id, "gateway": s.gateway, "gateway_reference": s.gateway_reference,
        "decline_code": s.decline_code, "message": s.message or _STATUS_MESSAGES.get(shown_status),
        "metadata": dict(s.metadata_ or {}), "created_at": rfc3339(s.created_at),
        "updated_at": rfc3339(s.updated_at), "expires_at": rfc3339(s.expires_at),
        "link_sends": s.link_sends or 0,
        "link_last_sent_at": rfc3339(s.link_sent_at),
    }


def emit(db: DbSession, client: ApiClient, session: PaymentSession, event_type: str, now: datetime,
         new_id: IdFactory, *, status: str | None = None):
    """Writes ``event_type`` with the session view as data into the outbox (caller commits)."""
    return events.record(db, client=client, session=session, event_type=event_type,
                         data=session_view(session, status=status), now=now, new_id=new_id)


class SessionService:
    """Creates, reads, cancels and expires sessions. ``Session`` is a SQLAlchemy sessionmaker."""

    def __init__(self, Session: sessionmaker, redis, defaults: SessionDefaults, links: LinkSigner, *,
                 clock: Clock, new_id: IdFactory):
        self.Session = Session
        self.redis = redis
        self.defaults = defaults
        self.links = links
        self.clock = clock
        self.new_id = new_id

    # -- urls ---------------------------------------------------------------------------------
    def checkout_url(self, session_id: str) -> str:
        """Absolute, signed checkout link on ``PAYGATE_PUBLIC_BASE_URL``."""
        return f"{self.defaults.public_base_url}/checkout/{session_id}?t={self.links.token(session_id)}"

    def agent_url(self, s: PaymentSession) -> str:
        """Signed status page for the agent's Script; works until a day after the link expires."""
        expires = int(as_utc(s.expires_at).timestamp()) + AGENT_VIEW_GRACE_SECONDS
        return (f"{self.defaults.public_base_url}/agent/{s.id}?e={expires}"
                f"&t={self.links.expiring_token(s.id, expires)}")

    def created_view(self, s: PaymentSession) -> dict:
        """The 201 body of ``POST /v1/payment-sessions``."""
        return {"session_id": s.id, "status": s.status, "checkout_url": self.checkout_url(s.id),
                "agent_url": self.agent_url(s),
                "expires_at": rfc3339(s.expires_at), "conversation_id": s.conversation_id, "intent": s.intent,
                "amount": s.amount, "currency": s.currency}

    # -- create -------------------------------------------------------------------------------
    def create(self, client_id: str, fields: Mapping[str, Any]) -> PaymentSession:
        """Creates a pending session from request values whose shape the API already validated (the
        ``CreatePaymentSession`` model of ``GET /v1/openapi.json``): ``conversation_id``,
        ``customer_account_id``, ``amount`` (minor units), ``currency`` (ISO 4217); optional
        ``participant_id``, ``intent`` (None → ``payment``), ``channel``, ``reference``, ``callback_url``,
        ``locale``, ``ttl_seconds`` (None → the configured default) and ``metadata`` (str → str).

        ``client_id`` is the authenticated API client's id. Raises :class:`ValidationFailed` with
        ``details["fields"]`` (field → code) for what depends on configuration or slipped past the API:
        ``callback_url`` ``invalid_url`` (plain http to a host other than loopback in production),
        ``amount`` ``invalid_amount``, ``currency`` ``invalid_currency``.
        """
        values = dict(fields)
        ttl = values.pop("ttl_seconds", None) or self.defaults.ttl_seconds
        values["metadata_"] = dict(values.pop("metadata", None) or {})
        values["intent"] = values.get("intent") or "payment"
        errors: dict[str, str] = {}
        amount = values.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            errors["amount"] = "invalid_amount"
        if not is_currency(values.get("currency")):
            errors["currency"] = "invalid_currency"
        if values.get("callback_url") and not callback_url_allowed(values["callback_url"],
                                                                   production=self.defaults.production):
            errors["callback_url"] = "invalid_url"
        if errors:
            raise ValidationFailed("The payment session request is invalid.", details={"fields": errors})
        now = self.clock()
        naive_now = now.replace(tzinfo=None)
        with self.Session() as db:  # a single INSERT: no read first, so a deferred BEGIN is enough
            s = PaymentSession(
                id=self.new_id("ps"), client_id=client_id, status="pending", attempts=0,
                max_attempts=self.defaults.max_attempts, gateway=self.defaults.gateway, event_sequence=0,
                created_at=naive_now, updated_at=naive_now,
                expires_at=naive_now + timedelta(seconds=ttl), **values)
            db.add(s)
            db.commit()
        return s

    # -- read ---------------------------------------------------------------------------------
    def get(self, client_id: str | None, session_id: str) -> PaymentSession:
        """The session (expired first if it is past ``expires_at``). ``client_id`` None skips the owner check.
        Raises :class:`NotFound` (also for another client's session)."""
        with self.Session() as db:
            s = db.get(PaymentSession, session_id)
        if s is None or (client_id is not None and s.client_id != client_id):
            raise NotFound("No such payment session.", code="session_not_found")
        if s.status == "pending" and as_utc(s.expires_at) <= self.clock():
            self.expire_one(s.id)
            with self.Session() as db:
                s = db.get(PaymentSession, session_id)
        return s

    # -- link sends -----------------------------------------------------------------------------
    def record_link_sent(self, session_id: str, *, to: str, messenger_type: str, from_address: str,
                         message_id: str, now: datetime) -> None:
        """Counts one accepted send of the checkout link (``link_sends`` + 1) and keeps it as the last send:
        recipient (E.164), ``messenger_type`` (``sms``/``whatsapp``), sender and the Genesys message id.
        A single UPDATE, so concurrent sends never lose a count. Does not change ``updated_at``: the
        payment's state did not move."""
        with self.Session() as db:
            db.execute(update(PaymentSession).where(PaymentSession.id == session_id).values(
                link_sends=PaymentSession.link_sends + 1, link_sent_at=as_utc(now).replace(tzinfo=None),
                link_sent_to=to, link_messenger_type=messenger_type, link_from_address=from_address[:200],
                link_message_id=message_id[:100]))
            db.commit()

    # -- cancel -------------------------------------------------------------------------------
    def cancel(self, client_id: str, session_id: str) -> PaymentSession:
        """Cancels a pending session (idempotent for an already canceled one).

        Raises :class:`NotFound`, or :class:`Conflict` (``session_not_cancelable``) when it is
        processing or already finished otherwise.
        """
        s = self.get(client_id, session_id)
        if s.status == "canceled":
            return s
        now = self.clock()
        with self.Session.begin() as db:
            s = db.get(PaymentSession, session_id)
            changed = db.execute(
                update(PaymentSession).where(PaymentSession.id == session_id, PaymentSession.status == "pending")
                .values(status="canceled", updated_at=now.replace(tzinfo=None),
                        message=_STATUS_MESSAGES["canceled"])).rowcount
            if changed:
                db.refresh(s)
                emit(db, db.get(ApiClient, s.client_id), s, ev.PAYMENT_SESSION_CANCELED, now, self.new_id)
        if not changed:
            s = self.get(client_id, session_id)
            if s.status != "canceled":
                raise Conflict(f"A session that is {s.status} cannot be canceled.", code="session_not_cancelable")
            return s
        outbox.wake(self.redis)
        return s

    # -- expiry -------------------------------------------------------------------------------
    def expire_one(self, session_id: str) -> bool:
        """Moves one pending session past its ``expires_at`` to ``expired`` with its event."""
        now = self.clock()
        with self.Session.begin() as db:
            changed = db.execute(
                update(PaymentSession).where(PaymentSession.id == session_id, PaymentSession.status == "pending",
                                             PaymentSession.expires_at <= now.replace(tzinfo=None))
                .values(status="expired", updated_at=now.replace(tzinfo=None),
                        message=_STATUS_MESSAGES["expired"])).rowcount
            if changed:
                s = db.get(PaymentSession, session_id)
                db.refresh(s)
                emit(db, db.get(ApiClient, s.client_id), s, ev.PAYMENT_SESSION_EXPIRED, now, self.new_id)
        if changed:
            outbox.wake(self.redis)
        return bool(changed)

    def expire_due(self, limit: int = 200) -> int:
        """Expires every pending session past ``expires_at`` (the worker runs this every second),
        even when nobody opens the link. Returns how many expired."""
        now = self.clock().replace(tzinfo=None)
        with self.Session() as db:
            ids = db.scalars(select(PaymentSession.id).where(PaymentSession.status == "pending",
                                                             PaymentSession.expires_at <= now)
                             .limit(limit)).all()
        return sum(self.expire_one(sid) for sid in ids)


def display_amount(s: PaymentSession) -> str:
    """The session's amount for people, in its locale (``$25.00``)."""
    return format_amount(s.amount, s.currency, s.locale)
