"""Subscriptions: recurring merchant-initiated charges of a stored token (docs/api.md, "Subscriptions").

paygate schedules the charges itself from the vault token, so the same flow works on every gateway (Stripe:
off-session charges of the saved payment method, https://docs.stripe.com/payments/save-and-reuse).

* **Creation.** From a session with ``intent: "subscription"``: :func:`create_for_session` runs inside the
  approval's own transaction, so a card is never charged without its subscription existing, and the first
  period is the session's payment (seed 001's trap: never charged twice). From a stored token:
  :meth:`SubscriptionService.create_from_token` (``POST /v1/subscriptions``, ``Idempotency-Key`` required; its
  digest is unique per client on the subscription row, so a retry — even after the API's 24-hour replay window —
  finds the same subscription and never charges again).
* **Periods** are calendar intervals anchored on ``anchor_at`` (:func:`period_bounds`): period *N* runs from
  anchor + (N-1)·interval to anchor + N·interval, each computed from the anchor (a month after 31 January is the
  last day of February, the next one 31 March), never by adding to the previous end.
* **Charges** (the first one at creation, and every renewal or retry by the worker, :meth:`renew_due`) follow
  the write path of docs/architecture.md: a Redis lease per subscription; a compare-and-set claim
  (``pending_key``) on (period, failed attempts, no claim, due); the gateway call with the idempotency key
  ``sub:<id>:<period>:<retry>`` — also the renewal payment's ``request_key``, unique per client — so any number of
  concurrent ticks make one charge and one payment; then one transaction with the payment's and the
  subscription's new state and their events. An unknown answer (timeout) keeps the claim until
  :meth:`reconcile_due` looks the charge up by its key.
* **Outcomes.** Approved → the period advances, ``active``, ``subscription.renewed``. Declined or failed →
  ``past_due``, ``subscription.payment_failed``, retried ``PAYGATE_SUBSCRIPTION_RETRY_DAYS`` (1, 3, 5) days
  after the due date; after the last retry fails → ``canceled`` (``cancel_reason: payment_failed``,
  ``subscription.canceled``). ``subscription.created`` is sent once: at creation, or — when the first period is
  charged by the creating request — with that charge's result.
* **Events**: ``subscription.*`` events are numbered under the subscription (``sequence`` 1, 2, ... per
  subscription); a renewal payment numbers its own ``payment.*`` events like any payment without a session, and
  the first payment of a session-created subscription stays under its session (docs/api.md, "Events").
"""

from __future__ import annotations

import calendar
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session as DbSession

from callbacks import events as ev
from callbacks import outbox
from kernel.clock import IdFactory, naive_utc, rfc3339
from kernel.errors import NotFound
from tokenizer.declines import FAILED_MESSAGE, UNAVAILABLE_MESSAGE
from tokenizer.gateways.base import GatewayResult, GatewayStatus, SavedCardChargeRequest
from tokenizer.models import VaultCard

from .amount_rules import AmountRules
from .context import Context
from .events import check_callback_url, record_for
from .merchant import chargeable_card, request_key, settle_charge
from .models import ApiClient, Payment, PaymentSession, Subscription
from .states import APPROVED, PaymentStatus

log = logging.getLogger("paygate.payments")

INTERVALS = ("day", "week", "month", "year")
ACTIVE, PAST_DUE, CANCELED = "active", "past_due", "canceled"
CHARGEABLE = (ACTIVE, PAST_DUE)
"""The statuses the worker charges; a canceled subscription is never charged again."""


# -- calendar periods ------------------------------------------------------------------------------------
def shift(anchor: datetime, interval: str, steps: int) -> datetime:
    """``anchor`` moved by ``steps`` calendar ``interval``\\ s (``day`` | ``week`` | ``month`` | ``year``). Months and
    years keep the anchor's day of month, clamped to the month's last day (31 January + 1 month = 28 or 29
    February; + 2 months = 31 March); the time of day is kept. Raises ``ValueError`` for another interval."""
    if interval == "day":
        return anchor + timedelta(days=steps)
    if interval == "week":
        return anchor + timedelta(weeks=steps)
    if interval not in ("month", "year"):
        raise ValueError(f"unknown interval {interval!r}")
    months = steps * (12 if interval == "year" else 1)
    year, month0 = divmod(anchor.year * 12 + anchor.month - 1 + months, 12)
    day = min(anchor.day, calendar.monthrange(year, month0 + 1)[1])
    return anchor.replace(year=year, month=month0 + 1, day=day)


def period_bounds(anchor: datetime, interval: str, interval_count: int, number: int) -> tuple[datetime, datetime]:
    """``(start, end)`` of period ``number`` (the first is 1) of a subscription anchored on ``anchor`` that renews
    every ``interval_count`` ``interval``\\ s. Both come from the anchor (:func:`shift`), so clamping in one
    month never shortens the next ones. Raises ``ValueError`` for ``number`` < 1."""
    if number < 1:
        raise ValueError("periods are numbered from 1")
    return (shift(anchor, interval, (number - 1) * interval_count),
            shift(anchor, interval, number * interval_count))


def charge_key(subscription_id: str, period: int, retry: int) -> str:
    """The gateway idempotency key (and the payment's ``request_key``) of the charge of ``period`` at retry
    number ``retry`` (0 for the first try): ``sub:<id>:<period>:<retry>``."""
    return f"sub:{subscription_id}:{period}:{retry}"


# -- view ------------------------------------------------------------------------------------------------
def subscription_view(s: Subscription) -> dict:
    """The subscription view (``object: "subscription"``; docs/api.md, "Subscriptions"). Additions to the
    documented fields: ``period`` (periods charged so far), ``session_id``, ``conversation_id``,
    ``participant_id``, ``metadata``, ``updated_at``. Times are RFC 3339 UTC (business time)."""
    return {
        "subscription_id": s.id, "object": "subscription", "status": s.status, "token": s.token,
        "amount": s.amount, "currency": s.currency, "interval": s.interval, "interval_count": s.interval_count,
        "current_period_start": rfc3339(s.current_period_start), "current_period_end": rfc3339(s.current_period_end),
        "next_charge_at": rfc3339(s.next_charge_at), "failed_attempts": s.failed_attempts,
        "last_payment_id": s.last_payment_id, "customer_account_id": s.customer_account_id,
        "reference": s.reference, "cancel_reason": s.cancel_reason, "created_at": rfc3339(s.created_at),
        "canceled_at": rfc3339(s.canceled_at), "period": s.period, "session_id": s.session_id,
        "conversation_id": s.conversation_id, "participant_id": s.participant_id,
        "metadata": dict(s.metadata_ or {}), "updated_at": rfc3339(s.updated_at),
    }


def subscription_event(db: DbSession, *, client: ApiClient, subscription: Subscription, event_type: str,
                       now: datetime, new_id: IdFactory) -> None:
    """Records ``event_type`` (``subscription.*``) with the subscription view as ``data``, numbered under the
    subscription, sent to its ``callback_url`` (else the client's) and written back to its conversation and
    participant when both are known. Does not commit."""
    record_for(db, client=client, root=subscription, event_type=event_type, object_type="subscription",
               data=subscription_view(subscription), now=now, new_id=new_id, callback_url=subscription.callback_url,
               conversation_id=subscription.conversation_id, participant_id=subscription.participant_id)


def create_for_session(db: DbSession, client: ApiClient, session: PaymentSession, payment: Payment, now: datetime,
                       new_id: IdFactory) -> Subscription:
    """Creates the subscription of an approved ``intent: "subscription"`` session inside the approval's own
    transaction ``db`` (not committed here): anchored at ``now`` (aware UTC), period 1 already charged by
    ``payment`` (which gets ``subscription_id``, as does the session), then ``subscription.created``.
    Terms from the session: ``subscription_interval`` (default ``month``), ``subscription_interval_count``
    (default 1), ``subscription_amount`` (default the payment's amount), in minor units of the payment's
    currency. ``Subscription.session_id`` is unique: a second approval of one session cannot make a second one."""
    naive = naive_utc(now)
    interval = session.subscription_interval or "month"
    count = session.subscription_interval_count or 1
    start, end = period_bounds(naive, interval, count, 1)
    sub = Subscription(
        id=new_id("sub"), client_id=session.client_id, session_id=session.id, request_key=None, status=ACTIVE,
        token=payment.token, amount=session.subscription_amount or payment.amount, currency=payment.currency,
        interval=interval, interval_count=count, anchor_at=naive, period=1, current_period_start=start,
        current_period_end=end, next_charge_at=end, failed_attempts=0, last_payment_id=payment.id,
        customer_account_id=session.customer_account_id, conversation_id=session.conversation_id,
        participant_id=session.participant_id, reference=session.reference,
        metadata_=dict(session.metadata_ or {}), callback_url=session.callback_url, event_sequence=0,
        created_at=naive, updated_at=naive)
    db.add(sub)
    payment.subscription_id = sub.id
    session.subscription_id = sub.id
    db.flush()  # the row must exist before its event sequence is counted on it
    subscription_event(db, client=client, subscription=sub, event_type=ev.SUBSCRIPTION_CREATED, now=now,
                       new_id=new_id)
    return sub


# -- the service -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SubscriptionInput:
    """A validated ``POST /v1/subscriptions`` body: ``amount`` minor units of ``currency`` (ISO 4217) every
    ``interval_count`` ``interval``\\ s; ``start_at`` (aware or naive UTC) is the first charge, None or a past
    moment meaning now."""

    token: str
    amount: int
    currency: str
    interval: str
    interval_count: int
    customer_account_id: str
    reference: str | None = None
    conversation_id: str | None = None
    participant_id: str | None = None
    start_at: datetime | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    callback_url: str | None = None


class SubscriptionService:
    """Creates, charges, renews, reconciles and cancels subscriptions (module docstring).

    ``retry_days``: days after a period's due date at which a failed charge is retried
    (``PAYGATE_SUBSCRIPTION_RETRY_DAYS``); ``reconcile_after_seconds``: how long an unknown gateway answer waits
    before it is looked up; ``amount_rules``: ``PAYGATE_ALLOWED_CURRENCIES`` and ``PAYGATE_MIN_AMOUNTS``
    (:class:`payments.amount_rules.AmountRules`; none by default)."""

    def __init__(self, ctx: Context, *, retry_days: tuple[int, ...] = (1, 3, 5), reconcile_after_seconds: int = 120,
                 amount_rules: AmountRules | None = None):
        self.ctx = ctx
        self.retry_days = tuple(retry_days)
        self.reconcile_after_seconds = reconcile_after_seconds
        self.amount_rules = amount_rules or AmountRules()

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, client_id: str | None, subscription_id: str) -> Subscription:
        """The subscription (``client_id`` None skips the owner check). Raises :class:`NotFound`
        ``subscription_not_found`` (404), also for another client's."""
        return self.ctx.owned(Subscription, subscription_id, client_id, code="subscription_not_found",
                              what="subscription")

    # -- create from a stored token --------------------------------------------------------------------
    def create_from_token(self, client_id: str, request: SubscriptionInput,
                          idempotency_key: str) -> tuple[Subscription, bool]:
        """Creates a subscription on a stored token. Returns ``(subscription, created)``; ``created`` is False
        when this ``Idempotency-Key`` made one before (returned as it is now, nothing charged again).

        When ``start_at`` is not in the future, the first period is charged in this call (anchored now) and the
        returned subscription shows the result: ``active`` with period 1 and ``last_payment_id``, or
        ``past_due`` after a decline (retried on schedule), or period 0 while the gateway's answer is unknown.
        Otherwise the first charge is at ``start_at`` (the anchor) by the worker.

        Raises ``callback_url_not_allowed`` (400: an internal address in production) or ``validation_error`` (400,
        ``callback_url``: ``invalid_url``), the amount rules' errors (400
        ``currency_not_allowed``, ``amount_below_minimum``) and ``token_not_found`` (404: not this client's
        token, or not from an approved customer payment saved at the gateway).
        """
        check_callback_url(request.callback_url, production=self.ctx.production)
        if request.interval not in INTERVALS:
            raise ValueError(f"unknown interval {request.interval!r}")
        key = request_key(idempotency_key)
        existing = self._by_key(client_id, key)
        if existing is not None:
            return existing, False
        chargeable_card(self.ctx.Session, client_id, request.token)
        self.amount_rules.check(request.amount, request.currency)  # 400 currency_not_allowed / amount_below_minimum
        now = self.ctx.now()
        naive = now.replace(tzinfo=None)
        start = naive_utc(request.start_at) if request.start_at is not None else naive
        immediate = start <= naive
        anchor = naive if immediate else start
        sub_id = self.ctx.new_id("sub")
        first_key = charge_key(sub_id, 1, 0) if immediate else None
        try:
            with self.ctx.Session.begin() as db:
                sub = Subscription(
                    id=sub_id, client_id=client_id, session_id=None, request_key=key, status=ACTIVE,
                    token=request.token, amount=request.amount, currency=request.currency, interval=request.interval,
                    interval_count=request.interval_count, anchor_at=anchor, period=0, current_period_start=None,
                    current_period_end=None, next_charge_at=anchor, failed_attempts=0, last_payment_id=None,
                    pending_key=first_key, pending_since=naive if immediate else None,
                    customer_account_id=request.customer_account_id, conversation_id=request.conversation_id,
                    participant_id=request.participant_id, reference=request.reference,
                    metadata_=dict(request.metadata), callback_url=request.callback_url, event_sequence=0,
                    created_at=naive, updated_at=naive)
                db.add(sub)
                if not immediate:  # announced now; an immediate first charge announces it with its result
                    db.flush()
                    subscription_event(db, client=db.get(ApiClient, client_id), subscription=sub,
                                       event_type=ev.SUBSCRIPTION_CREATED, now=now, new_id=self.ctx.new_id)
        except IntegrityError:  # the same key raced us
            existing = self._by_key(client_id, key)
            if existing is None:
                raise
            return existing, False
        if not immediate:
            outbox.wake(self.ctx.redis)
            return self.get(None, sub_id), True
        lock_key, token = _lock_key(sub_id), self.ctx.new_id("lock")
        held = self.ctx.locks.acquire(lock_key, token)
        try:
            return self._charge(self.get(None, sub_id), first_key), True
        finally:
            if held:
                self.ctx.locks.release(lock_key, token)

    def _by_key(self, client_id: str, key: str) -> Subscription | None:
        with self.ctx.Session() as db:
            return db.scalar(select(Subscription).where(Subscription.client_id == client_id,
                                                        Subscription.request_key == key))


    # -- renewals ------------------------------------------------------------------------------------
    def renew_due(self, limit: int = 50) -> int:
        """Charges every active or past-due subscription whose ``next_charge_at`` has come (business time), at
        most ``limit`` per call, oldest due first. Run by the worker every second; safe to run from any number of
        processes at once (one charge per period and retry). Returns how many charges were made."""
        now = self.ctx.naive_now()
        with self.ctx.Session() as db:
            ids = list(db.scalars(select(Subscription.id).where(
                Subscription.status.in_(CHARGEABLE), Subscription.next_charge_at <= now,
                Subscription.pending_key.is_(None)).order_by(Subscription.next_charge_at).limit(limit)))
        return sum(self._renew_one(sub_id) for sub_id in ids)

    def _renew_one(self, sub_id: str) -> int:
        lock_key, token = _lock_key(sub_id), self.ctx.new_id("lock")
        if not self.ctx.locks.acquire(lock_key, token):
            return 0  # another tick is charging it
        try:
            sub = self.get(None, sub_id)
            now = self.ctx.naive_now()
            if sub.status not in CHARGEABLE or sub.pending_key is not None or sub.next_charge_at is None \
                    or sub.next_charge_at > now:
                return 0
            key = charge_key(sub.id, sub.period + 1, sub.failed_attempts)
            with self.ctx.Session.begin() as db:
                won = db.execute(update(Subscription).where(
                    Subscription.id == sub.id, Subscription.status.in_(CHARGEABLE), Subscription.period == sub.period,
                    Subscription.failed_attempts == sub.failed_attempts, Subscription.pending_key.is_(None),
                    Subscription.next_charge_at <= now).values(pending_key=key, pending_since=now,
                                                                updated_at=now)).rowcount
            if not won:
                return 0
            self._charge(self.get(None, sub_id), key)
            return 1
        finally:
            self.ctx.locks.release(lock_key, token)

    def _charge(self, sub: Subscription, key: str) -> Subscription:
        """Charges the claimed period (``sub.pending_key == key``) and settles it."""
        with self.ctx.Session() as db:
            card = db.get(VaultCard, sub.token)
        payment = self._payment_for(sub, key, card)
        if card is None or not card.gateway_token:
            result = GatewayResult(GatewayStatus.FAILED, decline_code="resource_missing", message=FAILED_MESSAGE)
        else:
            number = sub.period + 1
            result = self.ctx.gateway.charge_saved_card(SavedCardChargeRequest(
                amount=sub.amount, currency=sub.currency, gateway_token=card.gateway_token,
                gateway_customer=card.gateway_customer, idempotency_key=key, capture=True,
                description=f"paygate subscription {sub.reference or sub.id} period {number}",
                metadata={"paygate_payment_id": payment.id, "paygate_subscription_id": sub.id,
                          "customer_account_id": sub.customer_account_id[:500]}))
        return self._settle(sub.id, key, payment.id, result)

    def _payment_for(self, sub: Subscription, key: str, card: VaultCard | None) -> Payment:
        """The charge's payment row (``processing`` until settled), created once per charge key."""
        existing = self._payment_by_key(sub.client_id, key)
        if existing is not None:
            return existing
        now = self.ctx.naive_now()
        try:
            with self.ctx.Session.begin() as db:
                p = Payment(
                    id=self.ctx.new_id("pay"), client_id=sub.client_id, session_id=None, request_key=key,
                    initiator="merchant", intent="subscription", status=PaymentStatus.PROCESSING, amount=sub.amount,
                    amount_capturable=0, amount_captured=0, amount_refunded=0, currency=sub.currency, token=sub.token,
                    card_brand=card.brand if card else None, card_last4=card.last4 if card else None,
                    card_exp_month=card.exp_month if card else None, card_exp_year=card.exp_year if card else None,
                    card_fingerprint=card.fingerprint if card else None, gateway=self.ctx.gateway.identifier,
                    gateway_key=key, entry_mode="stored", moto=False, hold_expiring_sent=False,
                    conversation_id=sub.conversation_id, participant_id=sub.participant_id,
                    customer_account_id=sub.customer_account_id, reference=sub.reference, subscription_id=sub.id,
                    metadata_=dict(sub.metadata_ or {}), callback_url=sub.callback_url, message=UNAVAILABLE_MESSAGE,
                    event_sequence=0, created_at=now, updated_at=now)
                db.add(p)
            return p
        except IntegrityError:  # made by a run of the same claim that raced us
            existing = self._payment_by_key(sub.client_id, key)
            if existing is None:
                raise
            return existing

    def _payment_by_key(self, client_id: str, key: str) -> Payment | None:
        with self.ctx.Session() as db:
            return db.scalar(select(Payment).where(Payment.client_id == client_id, Payment.request_key == key))

    def _settle(self, sub_id: str, key: str, payment_id: str, result: GatewayResult) -> Subscription:
        """Applies a gateway answer to the claimed charge ``key``: the payment (unless settled meanwhile by the
        merchant-charge reconciler), then the subscription, with their events, in one transaction. An unknown
        answer leaves both as they are (the claim stays for :meth:`reconcile_due`)."""
        now = self.ctx.now()
        naive = now.replace(tzinfo=None)
        with self.ctx.Session.begin() as db:
            claimed = db.execute(update(Subscription).where(Subscription.id == sub_id,
                                                            Subscription.pending_key == key)
                                 .values(updated_at=naive)).rowcount  # also takes the row lock
            sub = db.get(Subscription, sub_id)
            p = db.get(Payment, payment_id)
            if not claimed:
                return sub  # settled meanwhile
            if p.status == PaymentStatus.PROCESSING and result.status is GatewayStatus.UNAVAILABLE:
                log.warning("gateway answer unknown; the subscription charge stays pending",
                            extra={"subscription_id": sub_id, "payment_id": payment_id})
                return sub
            client = db.get(ApiClient, sub.client_id)
            announce = sub.event_sequence == 0  # the creating request's first charge: subscription.created
            if p.status == PaymentStatus.PROCESSING:
                settle_charge(db, client, p, result, now, self.ctx.new_id)
            self._apply_to_subscription(db, client, sub, p, now, announce=announce)
        outbox.wake(self.ctx.redis)
        return sub

    def _apply_to_subscription(self, db: DbSession, client: ApiClient, sub: Subscription, p: Payment,
                               now: datetime, *, announce: bool) -> None:
        naive = now.replace(tzinfo=None)
        number = sub.period + 1
        sub.pending_key = sub.pending_since = None
        sub.last_payment_id = p.id
        sub.updated_at = naive
        was_canceled = sub.status == CANCELED
        if p.status in APPROVED:
            sub.period = number
            sub.current_period_start, sub.current_period_end = period_bounds(
                sub.anchor_at, sub.interval, sub.interval_count, number)
            sub.failed_attempts = 0
            _log_charge("subscription charge approved", sub, p, canceled=was_canceled)
            if was_canceled:  # canceled while this charge was with the gateway: it was paid, nothing follows
                return
            sub.status, sub.next_charge_at = ACTIVE, sub.current_period_end
            self._event(db, client, sub, ev.SUBSCRIPTION_CREATED if announce else ev.SUBSCRIPTION_RENEWED, now)
            return
        if was_canceled:
            _log_charge("subscription charge not approved", sub, p, canceled=True)
            return
        sub.failed_attempts += 1
        due, _ = period_bounds(sub.anchor_at, sub.interval, sub.interval_count, number)
        if announce:
            self._event(db, client, sub, ev.SUBSCRIPTION_CREATED, now)
        if sub.failed_attempts > len(self.retry_days):
            sub.status, sub.cancel_reason, sub.canceled_at, sub.next_charge_at = CANCELED, "payment_failed", naive, None
            _log_charge("subscription canceled after its last failed charge", sub, p, level=logging.WARNING)
            self._event(db, client, sub, ev.SUBSCRIPTION_CANCELED, now)
            return
        sub.status = PAST_DUE
        sub.next_charge_at = due + timedelta(days=self.retry_days[sub.failed_attempts - 1])
        _log_charge("subscription charge not approved; retried on schedule", sub, p)
        self._event(db, client, sub, ev.SUBSCRIPTION_PAYMENT_FAILED, now)

    def _event(self, db: DbSession, client: ApiClient, sub: Subscription, event_type: str, now: datetime) -> None:
        subscription_event(db, client=client, subscription=sub, event_type=event_type, now=now,
                           new_id=self.ctx.new_id)

    def reconcile_due(self, limit: int = 50) -> int:
        """Looks up charges whose gateway answer has been unknown for ``reconcile_after_seconds`` (business time)
        by their idempotency key: found → its outcome; none → a failed charge (nothing was taken; retried on
        schedule); unreachable → next round. Returns how many were settled."""
        cutoff = self.ctx.naive_now() - timedelta(seconds=self.reconcile_after_seconds)
        with self.ctx.Session() as db:
            rows = db.execute(select(Subscription.id, Subscription.pending_key).where(
                Subscription.pending_key.is_not(None), Subscription.pending_since <= cutoff).limit(limit)).all()
        settled = 0
        for sub_id, key in rows:
            lock_key, token = _lock_key(sub_id), self.ctx.new_id("lock")
            if not self.ctx.locks.acquire(lock_key, token):
                continue
            try:
                sub = self.get(None, sub_id)
                if sub.pending_key != key:
                    continue
                found = self.ctx.gateway.lookup(key)
                if found is not None and found.status is GatewayStatus.UNAVAILABLE:
                    continue
                if found is None:
                    found = GatewayResult(GatewayStatus.FAILED, decline_code="gateway_no_payment",
                                          message=FAILED_MESSAGE)
                with self.ctx.Session() as db:
                    card = db.get(VaultCard, sub.token)
                payment = self._payment_for(sub, key, card)
                after = self._settle(sub_id, key, payment.id, found)
                settled += after.pending_key is None
            finally:
                self.ctx.locks.release(lock_key, token)
        return settled

    # -- cancel --------------------------------------------------------------------------------------
    def cancel(self, client_id: str, subscription_id: str) -> Subscription:
        """Cancels the subscription (``cancel_reason: requested``, ``subscription.canceled``): no charge is made
        after this. Already canceled → returned as it is (idempotent). A charge already with the gateway is
        still settled (its payment is recorded) but the subscription stays canceled. Raises
        ``subscription_not_found`` (404)."""
        sub = self.get(client_id, subscription_id)
        if sub.status == CANCELED:
            return sub
        now = self.ctx.now()
        naive = now.replace(tzinfo=None)
        with self.ctx.Session.begin() as db:
            changed = db.execute(update(Subscription).where(
                Subscription.id == subscription_id, Subscription.status != CANCELED).values(
                status=CANCELED, cancel_reason="requested", canceled_at=naive, next_charge_at=None,
                updated_at=naive)).rowcount
            sub = db.get(Subscription, subscription_id)
            if changed:
                self._event(db, db.get(ApiClient, sub.client_id), sub, ev.SUBSCRIPTION_CANCELED, now)
        outbox.wake(self.ctx.redis)
        return sub

    # -- sandbox helper ------------------------------------------------------------------------------
    def sandbox_decline_next(self, client_id: str, token: str, count: int,
                             decline_code: str = "insufficient_funds") -> int:
        """Makes the next ``count`` merchant-initiated charges of this client's ``token`` decline with
        ``decline_code`` (sandbox gateway only). Returns how many declines are now queued for it. Raises
        ``not_found`` (404) with another gateway and ``token_not_found`` (404) for a token that is not this
        client's or was never saved at the gateway."""
        gateway = self.ctx.gateway
        if not hasattr(gateway, "decline_next"):
            raise NotFound("The sandbox helpers exist only with the sandbox gateway outside production.",
                           code="not_found")
        with self.ctx.Session() as db:
            card = db.get(VaultCard, token)
        if card is None or card.client_id != client_id or not card.gateway_token:
            raise NotFound("No such token for this client.", code="token_not_found")
        try:
            return gateway.decline_next(card.gateway_token, count, decline_code)
        except ValueError:  # the sandbox no longer knows the saved card (its Redis was emptied)
            raise NotFound("The sandbox no longer has this token's saved card.", code="token_not_found") from None


def _log_charge(message: str, sub: Subscription, p: Payment, *, canceled: bool = False,
                level: int = logging.INFO) -> None:
    """The operator's line for a settled subscription charge: ids, period, outcome and what comes next (no card
    data: the payment's status and decline code only)."""
    log.log(level, message, extra={
        "subscription_id": sub.id, "payment_id": p.id, "period": sub.period + (0 if p.status in APPROVED else 1),
        "payment_status": p.status, "decline_code": p.decline_code, "failed_attempts": sub.failed_attempts,
        "subscription_status": CANCELED if canceled else sub.status, "next_charge_at": rfc3339(sub.next_charge_at)})


def _lock_key(subscription_id: str) -> str:
    return f"paygate:lock:subscription:{subscription_id}"
