"""Merchant-initiated charges on a stored token (docs/api.md, "Merchant-initiated charges").

``POST /v1/payments`` charges (or, with ``capture: false``, holds) a card the customer entered before, without
the customer present. The token must belong to the calling client and come from a payment the customer
approved; the gateway charges the payment method it saved then (Stripe: off-session,
https://docs.stripe.com/payments/save-and-reuse#charge-saved-payment-method).

Exactly once per ``Idempotency-Key`` (required): the key's digest is part of the payment's unique
(client, request key) pair and of the gateway idempotency key, so a retry — even after the API's 24-hour replay
window — finds the same payment, and the gateway never charges twice. A decline is a result (``status:
declined`` with ``decline_code``), not an error; an unknown answer leaves the payment ``processing`` until the
reconciler looks it up.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from callbacks import events as ev
from callbacks import outbox
from kernel.clock import naive_utc
from kernel.errors import NotFound
from tokenizer.cards import authorization_validity
from tokenizer.declines import FAILED_MESSAGE, UNAVAILABLE_MESSAGE, customer_message
from tokenizer.gateways.base import GatewayResult, GatewayStatus, SavedCardChargeRequest
from tokenizer.models import VaultCard

from .amount_rules import AmountRules
from .context import Context
from .events import check_callback_url, payment_event
from .models import ApiClient, Payment
from .states import APPROVED, PaymentStatus
from .views import payment_view

log = logging.getLogger("paygate.payments")


@dataclass(frozen=True)
class MerchantChargeInput:
    """A validated ``POST /v1/payments`` body: ``amount`` minor units of ``currency`` (ISO 4217);
    ``capture`` False places a hold."""

    token: str
    amount: int
    currency: str
    customer_account_id: str
    capture: bool = True
    conversation_id: str | None = None
    participant_id: str | None = None
    reference: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    callback_url: str | None = None


def request_key(idempotency_key: str) -> str:
    """The digest of a client's ``Idempotency-Key`` kept on the payment (the key itself is not stored)."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()


def chargeable_card(Session, client_id: str, token: str) -> VaultCard:
    """The vault row of ``token`` when API client ``client_id`` may charge it merchant-initiated: its own token,
    from a payment the customer approved, saved at the gateway (``gateway_token``). Raises
    :class:`~kernel.errors.NotFound` ``token_not_found`` (404) otherwise. ``Session``: a sessionmaker."""
    with Session() as db:
        card = db.get(VaultCard, token)
        approved = db.scalar(select(Payment.id).where(
            Payment.token == token, Payment.client_id == client_id, Payment.initiator == "customer",
            Payment.status.in_([s.value for s in APPROVED])).limit(1))
    if card is None or card.client_id != client_id or approved is None or not card.gateway_token:
        raise NotFound("No such token for this client (a token comes from a payment the customer approved).",
                       code="token_not_found")
    return card


def settle_charge(db, client: ApiClient, p: Payment, result: GatewayResult, now, new_id) -> None:
    """Moves a ``processing`` merchant-initiated payment (a charge, a hold, or a subscription's renewal) by the
    gateway's known answer and records its event in ``db`` (the caller commits): approved → ``captured``
    (``payment.approved``), or ``authorized`` with ``capture_before`` for a hold (``hold.authorized``); declined or
    blocked → ``declined`` (``payment.declined``); anything else → ``failed`` (``payment.failed``). ``now`` is
    aware UTC business time."""
    p.updated_at = now.replace(tzinfo=None)
    p.gateway_reference = result.reference or p.gateway_reference
    if result.status is GatewayStatus.APPROVED:
        held = p.intent == "hold"
        p.status = PaymentStatus.AUTHORIZED if held else PaymentStatus.CAPTURED
        p.amount_capturable, p.amount_captured = (p.amount, 0) if held else (0, p.amount)
        p.decline_code, p.message = None, "Payment approved."
        if held:
            before = result.capture_before or (now + authorization_validity(p.card_brand, "merchant"))
            p.capture_before = naive_utc(before)
        event_type = ev.HOLD_AUTHORIZED if held else ev.PAYMENT_APPROVED
    elif result.status in (GatewayStatus.DECLINED, GatewayStatus.BLOCKED):
        p.status, p.decline_code = PaymentStatus.DECLINED, result.decline_code or "generic_decline"
        p.message = customer_message(p.decline_code)
        event_type = ev.PAYMENT_DECLINED
    else:
        p.status, p.decline_code, p.message = PaymentStatus.FAILED, result.decline_code, FAILED_MESSAGE
        event_type = ev.PAYMENT_FAILED
    payment_event(db, client=client, payment=p, event_type=event_type, data=payment_view(p), now=now, new_id=new_id)


class MerchantCharges:
    """Creates merchant-initiated payments and reconciles those left ``processing``."""

    def __init__(self, ctx: Context, *, reconcile_after_seconds: int = 120, amount_rules: AmountRules | None = None):
        self.ctx = ctx
        self.reconcile_after_seconds = reconcile_after_seconds
        self.amount_rules = amount_rules or AmountRules()

    def create(self, client_id: str, request: MerchantChargeInput, idempotency_key: str) -> tuple[Payment, bool]:
        """Charges the stored card. Returns ``(payment, created)``; ``created`` is False when this
        ``Idempotency-Key`` made a payment before (it is returned as it is now).

        Raises ``callback_url_not_allowed`` (400: an internal address in production) or ``validation_error`` (400,
        ``callback_url``: ``invalid_url``) for a callback URL production does
        not allow, and ``token_not_found`` (404) when the token is not this client's, never came from an approved
        customer payment, or was not saved at the gateway for merchant-initiated use. A new charge must keep the
        amount rules (:class:`payments.amount_rules.AmountRules`): 400 ``currency_not_allowed`` or
        ``amount_below_minimum``.
        """
        check_callback_url(request.callback_url, production=self.ctx.production)
        key = request_key(idempotency_key)
        existing = self._by_key(client_id, key)
        if existing is not None:
            return existing, False
        self.amount_rules.check(request.amount, request.currency)  # 400 currency_not_allowed / amount_below_minimum
        card = self._chargeable_card(client_id, request.token)
        now = self.ctx.naive_now()
        payment_id = self.ctx.new_id("pay")
        try:
            with self.ctx.Session.begin() as db:
                db.add(Payment(
                    id=payment_id, client_id=client_id, session_id=None, request_key=key, initiator="merchant",
                    intent="payment" if request.capture else "hold", status=PaymentStatus.PROCESSING,
                    amount=request.amount, amount_capturable=0, amount_captured=0, amount_refunded=0,
                    currency=request.currency, token=request.token, card_brand=card.brand, card_last4=card.last4,
                    card_exp_month=card.exp_month, card_exp_year=card.exp_year, card_fingerprint=card.fingerprint,
                    gateway=self.ctx.gateway.identifier, gateway_key=f"mit:{client_id}:{key}", entry_mode="stored",
                    moto=False,
                    hold_expiring_sent=False, conversation_id=request.conversation_id,
                    participant_id=request.participant_id, customer_account_id=request.customer_account_id,
                    reference=request.reference, metadata_=dict(request.metadata), callback_url=request.callback_url,
                    message=UNAVAILABLE_MESSAGE, event_sequence=0, created_at=now, updated_at=now))
        except IntegrityError:  # the same key raced us
            existing = self._by_key(client_id, key)
            if existing is None:
                raise
            return existing, False
        result = self.ctx.gateway.charge_saved_card(SavedCardChargeRequest(
            amount=request.amount, currency=request.currency, gateway_token=card.gateway_token,
            gateway_customer=card.gateway_customer, idempotency_key=f"mit:{client_id}:{key}",
            capture=request.capture, description=f"paygate merchant-initiated {request.reference or payment_id}",
            metadata={"paygate_payment_id": payment_id, "customer_account_id": request.customer_account_id[:500]}))
        return self._finish(payment_id, result), True

    def _by_key(self, client_id: str, key: str) -> Payment | None:
        with self.ctx.Session() as db:
            return db.scalar(select(Payment).where(Payment.client_id == client_id, Payment.request_key == key))

    def _chargeable_card(self, client_id: str, token: str) -> VaultCard:
        return chargeable_card(self.ctx.Session, client_id, token)

    def _finish(self, payment_id: str, result: GatewayResult) -> Payment:
        now = self.ctx.now()
        naive = now.replace(tzinfo=None)
        with self.ctx.Session.begin() as db:
            changed = db.execute(update(Payment).where(Payment.id == payment_id,
                                                       Payment.status == PaymentStatus.PROCESSING)
                                 .values(updated_at=naive)).rowcount
            p = db.get(Payment, payment_id)
            if not changed or result.status is GatewayStatus.UNAVAILABLE:
                return p  # settled meanwhile, or still unknown: the reconciler asks again
            settle_charge(db, db.get(ApiClient, p.client_id), p, result, now, self.ctx.new_id)
        outbox.wake(self.ctx.redis)
        return p

    def reconcile_due(self, limit: int = 50) -> int:
        """Looks up merchant-initiated payments left ``processing`` for ``reconcile_after_seconds`` by their
        gateway idempotency key: found → its outcome; none → ``failed`` (never charged); unreachable → next
        round. Returns how many moved."""
        cutoff = self.ctx.naive_now() - timedelta(seconds=self.reconcile_after_seconds)
        with self.ctx.Session() as db:
            rows = db.execute(select(Payment.id, Payment.gateway_key).where(
                Payment.status == PaymentStatus.PROCESSING, Payment.initiator == "merchant",
                Payment.updated_at <= cutoff).limit(limit)).all()
        moved = 0
        for payment_id, gateway_key in rows:
            found = self.ctx.gateway.lookup(gateway_key or "")
            if found is not None and found.status is GatewayStatus.UNAVAILABLE:
                continue
            if found is None:
                found = GatewayResult(GatewayStatus.FAILED, decline_code="gateway_no_payment")
            moved += self._finish(payment_id, found).status != PaymentStatus.PROCESSING
        return moved


