"""Payment sessions: creation, the session view, cancel and expiry (docs/api.md, "Payment sessions").

State machine::

    pending ──submit──▶ processing ──▶ approved
       ▲                    │     ├──▶ declined ──(attempts < max)──▶ pending
       │                    │     ├──▶ requires_agent   (max declines, fraud block)
       │                    │     ├──▶ failed           (technical, never charged)
       │                    │     └──(gateway unreachable: stays processing until reconciled)
       ├──cancel──▶ canceled            (cancel_reason "requested")
       ├──conversation closed──▶ canceled (cancel_reason "conversation_ended")
       └──past expires_at──▶ expired

A session closed with its conversation while ``processing`` is marked (``cancel_reason``) and left to finish;
should that attempt be declined, the session does not wait for another card: the next read (or the worker's
:meth:`SessionService.expire_due`) cancels it.

Every transition that matters writes its event to the outbox in the same
database transaction (:func:`payments.events.record`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from callbacks import events as ev
from callbacks import outbox
from kernel.clock import Clock, IdFactory, as_utc, rfc3339
from kernel.db import insert_row
from kernel.errors import Conflict, NotFound, ValidationFailed
from kernel.money import format_amount, is_currency

from . import events
from .amount_rules import AmountRules
from .events import CALLBACK_URL_NOT_ALLOWED, callback_url_error, callback_url_problem
from .models import ApiClient, PaymentSession

log = logging.getLogger("paygate.payments")

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

    The session id alone does not open the page (docs/api.md, "Payment sessions"). ``previous_keys``
    (``PAYGATE_PREVIOUS_SECRET_KEYS``): retired secret keys whose links still check during a rotation
    (docs/operations.md, "Rotating the secret key"); new tokens are always signed with ``secret_key``.
    """

    def __init__(self, secret_key: str, previous_keys: tuple[str, ...] | list[str] = ()):
        self._keys = tuple(hashlib.sha256(b"paygate.links|" + k.encode()).digest()
                           for k in (secret_key, *previous_keys))
        self._key = self._keys[0]

    @staticmethod
    def _mac(key: bytes, session_id: str, purpose: str) -> str:
        mac = hmac.new(key, f"{purpose}|{session_id}".encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def token(self, session_id: str, purpose: str = "checkout") -> str:
        return self._mac(self._key, session_id, purpose)

    def check(self, session_id: str, token: str | None, purpose: str = "checkout") -> bool:
        """True when ``token`` was signed for (``session_id``, ``purpose``) by the current or a previous key."""
        if not token:
            return False
        matches = [hmac.compare_digest(self._mac(key, session_id, purpose), token) for key in self._keys]
        return any(matches)

    def expiring_token(self, session_id: str, expires: int, purpose: str = "agent") -> str:
        """A token that also signs ``expires`` (unix seconds), for links that must stop working."""
        return self.token(f"{session_id}|{expires}", purpose)

    def check_expiring(self, session_id: str, token: str | None, expires: str | None, now: float,
                       purpose: str = "agent") -> bool:
        """True when ``token`` signs (``session_id``, ``expires``) and ``expires`` is still ahead of ``now``."""
        if not expires or len(expires) > 12 or not (expires.isascii() and expires.isdigit()) or int(expires) < now:
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


CONVERSATION_ENDED = "conversation_ended"
SUBSCRIPTION_DEFAULTS = {"interval": "month", "interval_count": 1}
"""What an ``intent: "subscription"`` session without a ``subscription`` object gets: monthly."""


def session_view(s: PaymentSession, *, status: str | None = None) -> dict:
    """The session view of docs/api.md, "Payment sessions" (``status`` overrides the stored one, for event snapshots).

    ``amount`` is null until a customer-entered amount is set (``amount_range`` sessions); ``amount_range`` is
    ``{"min", "max"}`` or null; ``cancel_reason`` (``requested`` | ``conversation_ended``) only while canceled;
    ``subscription`` is ``{"interval", "interval_count", "amount"}`` (``amount`` null: the session's amount) for
    ``intent: "subscription"``, else null; ``subscription_id`` once the approval created the subscription."""
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
        "currency": s.currency,
        "amount_range": {"min": s.amount_min, "max": s.amount_max} if s.amount_min is not None else None,
        "reference": s.reference, "channel": s.channel,
        "attempts": s.attempts, "max_attempts": s.max_attempts, "token": s.token, "card": card,
        "payment_id": s.payment_id, "gateway": s.gateway, "gateway_reference": s.gateway_reference,
        "decline_code": s.decline_code, "message": s.message or _STATUS_MESSAGES.get(shown_status),
        "metadata": dict(s.metadata_ or {}), "created_at": rfc3339(s.created_at),
        "updated_at": rfc3339(s.updated_at), "expires_at": rfc3339(s.expires_at),
        "link_sends": s.link_sends or 0,
        "link_last_sent_at": rfc3339(s.link_sent_at),
        "cancel_reason": s.cancel_reason if shown_status == "canceled" else None,
        "subscription": ({"interval": s.subscription_interval, "interval_count": s.subscription_interval_count,
                          "amount": s.subscription_amount} if s.subscription_interval else None),
        "subscription_id": s.subscription_id,
    }


def emit(db: DbSession, client: ApiClient, session: PaymentSession, event_type: str, now: datetime,
         new_id: IdFactory, *, status: str | None = None):
    """Writes ``event_type`` with the session view as data into the outbox (caller commits)."""
    return events.record(db, client=client, session=session, event_type=event_type,
                         data=session_view(session, status=status), now=now, new_id=new_id)


_OTHER_PROCESSING = select(PaymentSession.id).where(
    PaymentSession.client_id == bindparam("client_id"),
    PaymentSession.customer_account_id == bindparam("customer_account_id"),
    PaymentSession.status == "processing", PaymentSession.id != bindparam("excluding")).limit(1)
""":meth:`SessionService.other_processing`'s lookup, built once (every card submission runs it)."""


class SessionService:
    """Creates, reads, cancels and expires sessions. ``Session`` is a SQLAlchemy sessionmaker."""

    def __init__(self, Session: sessionmaker, redis, defaults: SessionDefaults, links: LinkSigner, *,
                 clock: Clock, new_id: IdFactory, amount_rules: AmountRules | None = None):
        self.Session = Session
        self.redis = redis
        self.defaults = defaults
        self.links = links
        self.clock = clock
        self.new_id = new_id
        self.amount_rules = amount_rules or AmountRules()

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
        ``customer_account_id``, ``amount`` (minor units; optional with ``amount_range``), ``currency``
        (ISO 4217); optional ``participant_id``, ``intent`` (None → ``payment``), ``channel``, ``reference``,
        ``callback_url``, ``locale``, ``ttl_seconds`` (None → the configured default), ``metadata`` (str → str),
        ``amount_range`` (``{"min", "max"}`` minor units: the customer enters the amount, ``amount`` is then a
        suggestion), ``max_attempts`` (1–10, None → ``PAYGATE_MAX_ATTEMPTS``) and ``subscription``
        (``{"interval", "interval_count", "amount"?}``, only with ``intent: "subscription"``; that intent
        without it means monthly, :data:`SUBSCRIPTION_DEFAULTS`).

        ``client_id`` is the authenticated API client's id. Raises :class:`ValidationFailed` with
        ``details["fields"]`` (field → code) for what depends on configuration or on several fields:
        ``callback_url`` ``invalid_url`` (plain http to a host other than loopback in production) or
        ``callback_url_not_allowed`` (production: a host that is or resolves to an address that is not global
        unicast; alone, it is also the error's code),
        ``amount`` ``required`` (neither ``amount`` nor ``amount_range``) / ``invalid_amount`` / ``out_of_range``
        (outside ``amount_range``), ``amount_range`` ``invalid_range`` (``min`` > ``max``), ``currency``
        ``invalid_currency``, ``max_attempts`` ``out_of_range``, ``subscription``
        ``requires_subscription_intent``; then the amount rules (:class:`payments.amount_rules.AmountRules`):
        ``error.code`` ``currency_not_allowed``, or ``amount_below_minimum`` for ``amount``,
        ``amount_range.min`` or ``subscription.amount``.
        """
        values = dict(fields)
        ttl = values.pop("ttl_seconds", None) or self.defaults.ttl_seconds
        values["metadata_"] = dict(values.pop("metadata", None) or {})
        values["intent"] = values.get("intent") or "payment"
        amount_range = values.pop("amount_range", None)
        subscription = values.pop("subscription", None)
        max_attempts = values.pop("max_attempts", None) or self.defaults.max_attempts
        errors: dict[str, str] = {}
        amount = values.get("amount")
        if amount is None:
            if not amount_range:
                errors["amount"] = "required"
        elif not _positive_int(amount):
            errors["amount"] = "invalid_amount"
        low = high = None
        if amount_range:
            low, high = amount_range.get("min"), amount_range.get("max")
            if not (_positive_int(low) and _positive_int(high)):
                errors["amount_range"] = "invalid_amount"
            elif low > high:
                errors["amount_range"] = "invalid_range"
            elif "amount" not in errors and amount is not None and not low <= amount <= high:
                errors["amount"] = "out_of_range"
        if not is_currency(values.get("currency")):
            errors["currency"] = "invalid_currency"
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or not 1 <= max_attempts <= 10:
            errors["max_attempts"] = "out_of_range"
        if subscription and values["intent"] != "subscription":
            errors["subscription"] = "requires_subscription_intent"
        if values.get("callback_url"):
            problem = callback_url_problem(values["callback_url"], production=self.defaults.production)
            if problem:
                errors["callback_url"] = problem
        if errors:
            if errors == {"callback_url": CALLBACK_URL_NOT_ALLOWED}:
                raise callback_url_error(CALLBACK_URL_NOT_ALLOWED)
            raise ValidationFailed("The payment session request is invalid.", details={"fields": errors})
        currency = values["currency"]
        self.amount_rules.check_currency(currency)
        if amount is not None:
            self.amount_rules.check(amount, currency)
        if low is not None:
            self.amount_rules.check(low, currency, field_name="amount_range.min")
        if values["intent"] == "subscription":
            subscription = {**SUBSCRIPTION_DEFAULTS, **{k: v for k, v in (subscription or {}).items() if v is not None}}
            if subscription.get("amount") is not None:
                self.amount_rules.check(subscription["amount"], currency, field_name="subscription.amount")
            values.update(subscription_interval=subscription["interval"],
                          subscription_interval_count=subscription["interval_count"],
                          subscription_amount=subscription.get("amount"))
        now = self.clock()
        naive_now = now.replace(tzinfo=None)
        with self.Session() as db:  # a single INSERT: no read first, so a deferred BEGIN is enough
            s = insert_row(db, PaymentSession, dict(
                id=self.new_id("ps"), client_id=client_id, status="pending", attempts=0,
                max_attempts=max_attempts, gateway=self.defaults.gateway, event_sequence=0,
                amount_min=low, amount_max=high,
                created_at=naive_now, updated_at=naive_now,
                expires_at=naive_now + timedelta(seconds=ttl), **values))
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
        elif s.status == "pending" and s.cancel_reason == CONVERSATION_ENDED:
            self._cancel_one(s.id, CONVERSATION_ENDED)  # closed with its conversation while processing, then declined
            with self.Session() as db:
                s = db.get(PaymentSession, session_id)
        return s

    def other_processing(self, client_id: str, customer_account_id: str, excluding: str) -> str | None:
        """The id of a session of API client ``client_id`` and ``customer_account_id`` other than ``excluding``
        that is ``processing``, or None: one indexed lookup (``ix_payment_sessions_customer_status``), the
        "one payment in flight per customer" check (docs/api.md, "Contact-center rules")."""
        with self.Session() as db:
            return db.scalar(_OTHER_PROCESSING, {"client_id": client_id, "customer_account_id": customer_account_id,
                                                 "excluding": excluding})

    # -- a customer-entered amount -------------------------------------------------------------
    def set_amount(self, client_id: str | None, session_id: str, value) -> dict:
        """Sets the amount of a pending ``amount_range`` session from what the customer entered: ``value`` is an
        integer or a string of digits (DTMF), minor units. Returns ``{"outcome", "amount", "entered", "min",
        "max", "currency", "message"}``: ``outcome`` ``ok`` (stored, with a compare-and-set on ``pending``),
        ``below_minimum`` / ``above_maximum`` (outside ``amount_range``), or ``invalid`` (not an amount, or the
        session's amount is fixed: no ``amount_range``); ``amount`` is the session's amount after the call (null
        until one is set), ``entered`` what was understood of ``value`` (null when invalid).

        Raises :class:`NotFound` (``session_not_found``) and :class:`Conflict` (``session_not_pending``) when the
        session is processing or finished: caller input is never an error, a session that moved on is.
        """
        s = self.get(client_id, session_id)
        if s.status != "pending":
            raise Conflict(f"The amount of a session that is {s.status} cannot be set.", code="session_not_pending")
        answer = {"outcome": "invalid", "amount": s.amount, "entered": None, "min": s.amount_min,
                  "max": s.amount_max, "currency": s.currency}
        if s.amount_min is None or s.amount_max is None:
            return {**answer, "message": f"The amount of this payment is fixed at {display_amount(s)}."}
        judged = self.amount_rules.judge(value, currency=s.currency, minimum=s.amount_min, maximum=s.amount_max,
                                         locale=s.locale)
        answer.update(outcome=judged.outcome, entered=judged.amount, message=judged.message)
        if judged.outcome != "ok":
            return answer
        now = self.clock().replace(tzinfo=None)
        with self.Session.begin() as db:
            changed = db.execute(
                update(PaymentSession).where(PaymentSession.id == session_id, PaymentSession.status == "pending",
                                             PaymentSession.expires_at > now)
                .values(amount=judged.amount, updated_at=now)).rowcount
        if not changed:
            s = self.get(client_id, session_id)
            raise Conflict(f"The amount of a session that is {s.status} cannot be set.", code="session_not_pending")
        return {**answer, "amount": judged.amount}

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
        """Cancels a pending session (idempotent for an already canceled one), ``cancel_reason: "requested"``.

        Raises :class:`NotFound`, or :class:`Conflict` (``session_not_cancelable``) when it is
        processing or already finished otherwise.
        """
        s = self.get(client_id, session_id)
        if s.status == "canceled":
            return s
        if not self._cancel_one(session_id, "requested"):
            s = self.get(client_id, session_id)
            if s.status != "canceled":
                raise Conflict(f"A session that is {s.status} cannot be canceled.", code="session_not_cancelable")
            return s
        return self.get(client_id, session_id)

    def _cancel_one(self, session_id: str, reason: str) -> bool:
        """Moves one pending session to ``canceled`` with ``reason`` and its ``payment_session.canceled`` event, in
        one transaction (compare-and-set on ``pending``). True when this call canceled it."""
        return self._end_pending(session_id, "canceled", ev.PAYMENT_SESSION_CANCELED, cancel_reason=reason)

    def _end_pending(self, session_id: str, status: str, event_type: str, *, only_if_expired: bool = False,
                     **values) -> bool:
        """Moves one ``pending`` session to ``status`` (``canceled`` | ``expired``) with its status message and
        ``values``, and records ``event_type``, in one transaction: a compare-and-set on ``pending`` (and, with
        ``only_if_expired``, on ``expires_at`` having passed). True when this call moved it."""
        now = self.clock()
        naive = now.replace(tzinfo=None)
        conditions = [PaymentSession.id == session_id, PaymentSession.status == "pending"]
        if only_if_expired:
            conditions.append(PaymentSession.expires_at <= naive)
        with self.Session.begin() as db:
            changed = db.execute(update(PaymentSession).where(*conditions).values(
                status=status, updated_at=naive, message=_STATUS_MESSAGES[status], **values)).rowcount
            if changed:
                s = db.get(PaymentSession, session_id)
                db.refresh(s)
                emit(db, db.get(ApiClient, s.client_id), s, event_type, now, self.new_id)
        if changed:
            outbox.wake(self.redis)
        return bool(changed)

    # -- the conversation ended -------------------------------------------------------------------
    def close_conversation(self, client_id: str, conversation_id: str) -> dict:
        """The conversation ``conversation_id`` ended (docs/api.md, "Contact-center rules"): cancels every pending
        session of it that belongs to API client ``client_id`` (``cancel_reason: "conversation_ended"``, event
        ``payment_session.canceled`` in the same transaction, compare-and-set on ``pending``) and leaves the
        ``processing`` ones to finish, marked so that a decline ends them canceled instead of waiting for
        another card. A pending session already past its expiry is expired instead (and not listed).

        Returns ``{"canceled": [session ids], "processing": [session ids]}`` (empty lists when nothing matched),
        oldest first. Safe to repeat.
        """
        now = self.clock()
        naive = now.replace(tzinfo=None)
        with self.Session() as db:
            ids = db.scalars(select(PaymentSession.id).where(
                PaymentSession.client_id == client_id, PaymentSession.conversation_id == conversation_id,
                PaymentSession.status.in_(("pending", "processing")))
                .order_by(PaymentSession.created_at, PaymentSession.id)).all()
        canceled: list[str] = []
        processing: list[str] = []
        for session_id in ids:
            for _ in range(5):  # a session may move between pending and processing while we look
                with self.Session() as db:
                    row = db.execute(select(PaymentSession.status, PaymentSession.expires_at)
                                     .where(PaymentSession.id == session_id)).one()
                if row.status == "pending":
                    if row.expires_at <= naive:
                        self.expire_one(session_id)
                        break
                    if self._cancel_one(session_id, CONVERSATION_ENDED):
                        canceled.append(session_id)
                        break
                elif row.status == "processing":
                    with self.Session.begin() as db:
                        marked = db.execute(
                            update(PaymentSession).where(PaymentSession.id == session_id,
                                                         PaymentSession.status == "processing")
                            .values(cancel_reason=CONVERSATION_ENDED)).rowcount
                    if marked:
                        processing.append(session_id)
                        break
                else:
                    break
        log.info("conversation closed", extra={"conversation_id": conversation_id[:200], "canceled": canceled,
                                               "processing": processing})
        return {"canceled": canceled, "processing": processing}

    # -- expiry -------------------------------------------------------------------------------
    def expire_one(self, session_id: str) -> bool:
        """Moves one pending session past its ``expires_at`` to ``expired`` with its event."""
        return self._end_pending(session_id, "expired", ev.PAYMENT_SESSION_EXPIRED, only_if_expired=True)

    def expire_due(self, limit: int = 200) -> int:
        """Expires every pending session past ``expires_at`` (the worker runs this every second),
        even when nobody opens the link, and cancels the pending ones whose conversation was closed while they
        were processing. Returns how many moved."""
        now = self.clock().replace(tzinfo=None)
        with self.Session() as db:
            ids = db.scalars(select(PaymentSession.id).where(PaymentSession.status == "pending",
                                                             PaymentSession.expires_at <= now)
                             .limit(limit)).all()
        expired = sum(self.expire_one(sid) for sid in ids)
        with self.Session() as db:  # closed with their conversation while processing, then declined
            ended = db.scalars(select(PaymentSession.id).where(PaymentSession.status == "pending",
                                                               PaymentSession.cancel_reason == CONVERSATION_ENDED)
                               .limit(limit)).all()
        return expired + sum(self._cancel_one(sid, CONVERSATION_ENDED) for sid in ended)


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def display_amount(s: PaymentSession) -> str:
    """The session's amount for people, in its locale (``$25.00``); while a customer-entered amount is not set
    yet, its range (``$5.00–$100.00``)."""
    if s.amount is None:
        if s.amount_min is not None and s.amount_max is not None:
            return f"{format_amount(s.amount_min, s.currency, s.locale)}–{format_amount(s.amount_max, s.currency, s.locale)}"
        return s.currency
    return format_amount(s.amount, s.currency, s.locale)
