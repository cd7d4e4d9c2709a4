"""Inbound gateway webhooks: ``POST /webhooks/stripe`` (docs/api.md, "Disputes"), and the disputes they bring.

Every event is verified with the stripe SDK's signature check against ``PAYGATE_STRIPE_WEBHOOK_SECRET``
(tolerance 300 s; :func:`tokenizer.gateways.stripe_webhooks.construct_event`); a bad or missing signature is a
400. A verified event is recorded by its id in ``gateway_webhook_events`` **in the same transaction** as the
work it causes, so a replay (same id) finds the row and does nothing, and a crash never marks an event handled
without its effects. Everything that can fail afterwards (callbacks, Genesys write-back) goes through the
outbox, so the answer is quick.

Handled (https://docs.stripe.com/api/events/types):

* ``charge.dispute.created`` / ``.updated`` / ``.closed`` (and ``.funds_withdrawn`` / ``.funds_reinstated``):
  a dispute row per Stripe dispute (``dp_...``, unique), linked to the payment by its PaymentIntent; events
  ``dispute.opened``, ``dispute.updated`` (only when something changed), ``dispute.closed`` (``won`` | ``lost``
  | ``warning_closed``); the payment view's ``dispute_id`` points to it. Events arriving out of order still end
  in the latest state (an ``updated`` before its ``created`` opens the dispute).
* ``charge.refund.updated`` / ``refund.updated`` / ``refund.failed``: a refund's late result. Our refund is found
  by its gateway id or by the ``paygate_refund_id`` metadata we send (a webhook can arrive before the refund
  request's own answer): ``failed`` → review queue and ``refund.failed``; ``succeeded`` after ``pending`` →
  ``refund.succeeded``.
* ``payment_intent.canceled``: an authorization the gateway canceled on its own (it lapsed:
  ``cancellation_reason`` ``automatic`` or ``expired``) → ``expired`` and ``hold.expired``; canceled otherwise →
  ``voided`` and ``hold.voided``. A payment with a capture pending is left to the reconciler.

Other event types are acknowledged and ignored.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from callbacks import events as ev
from callbacks import outbox
from kernel.errors import NotFound
from tokenizer.gateways.stripe_webhooks import WebhookSignatureError, construct_event

from .context import Context
from .events import payment_event
from .models import ApiClient, Dispute, GatewayWebhookEvent, Payment, Refund
from .refunds import RefundService
from .states import PaymentStatus, RefundState
from .views import dispute_view, payment_view

log = logging.getLogger("paygate.webhooks")

DISPUTE_EVENTS = ("charge.dispute.created", "charge.dispute.updated", "charge.dispute.closed",
                  "charge.dispute.funds_withdrawn", "charge.dispute.funds_reinstated")
REFUND_EVENTS = ("charge.refund.updated", "refund.updated", "refund.failed")
CLOSED_DISPUTE_STATUSES = frozenset({"won", "lost", "warning_closed"})


@dataclass(frozen=True)
class WebhookOutcome:
    """What one delivery did: ``duplicate`` for a replayed event id, ``handled`` when it changed something,
    ``ignored`` otherwise."""

    event_id: str
    event_type: str
    result: str


def _at(unix) -> datetime | None:
    """A unix time (seconds) as a naive UTC datetime; None for anything that is not one a datetime holds."""
    if isinstance(unix, bool) or not isinstance(unix, (int, float)) or not unix:
        return None
    try:
        return datetime.fromtimestamp(int(unix), timezone.utc).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError):  # NaN, infinity, outside years 1-9999
        return None


def _text(value, limit: int) -> str | None:
    """``value`` when it is a non-empty string of at most ``limit`` characters, else None."""
    return value if isinstance(value, str) and 0 < len(value) <= limit else None


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _unstorable_text(event) -> bool:
    """Whether a string anywhere in ``event`` (keys too) holds U+0000 or a lone UTF-16 surrogate: text no
    database column (PostgreSQL) or UTF-8 encoder takes, and that no gateway sends. Walks without recursion."""
    stack = [event]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if _UNSTORABLE.search(value):
                return True
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


class _Replayed(Exception):
    """The event id was handled before (its row exists)."""


class GatewayWebhooks:
    """Receives the gateway's webhooks. ``secret``: ``PAYGATE_STRIPE_WEBHOOK_SECRET`` (None refuses every
    delivery); ``refunds``: the :class:`~payments.refunds.RefundService` whose state changes a refund's late
    result applies."""

    def __init__(self, ctx: Context, refunds: RefundService, secret: str | None):
        self.ctx = ctx
        self.refunds = refunds
        self.secret = secret

    def receive(self, payload: bytes, signature_header: str | None) -> WebhookOutcome:
        """Verifies and handles one delivery. Raises
        :class:`~tokenizer.gateways.stripe_webhooks.WebhookSignatureError` (400) for a bad or missing signature
        or a body that is not an event; everything else is a :class:`WebhookOutcome`."""
        event = construct_event(payload, signature_header, self.secret or "")
        if _unstorable_text(event):
            raise WebhookSignatureError("The webhook body is not a JSON event.", code="invalid_payload")
        event_id, event_type = _text(event.get("id"), 100) or "", _text(event.get("type"), 100) or ""
        data = event.get("data")
        obj = (data.get("object") if isinstance(data, dict) else None) or {}
        if not event_id or not isinstance(obj, dict):
            return WebhookOutcome(event_id, event_type, "ignored")
        now = self.ctx.now()
        try:
            with self.ctx.Session.begin() as db:
                db.add(GatewayWebhookEvent(id=event_id, type=event_type, received_at=now.replace(tzinfo=None)))
                try:
                    db.flush()  # a replay stops here, on the primary key
                except IntegrityError:
                    raise _Replayed() from None
                handled = self._dispatch(db, event_type, obj, now)
        except _Replayed:
            log.info("gateway webhook replayed; ignored", extra={"gateway_event_id": event_id, "type": event_type})
            return WebhookOutcome(event_id, event_type, "duplicate")
        if handled:
            outbox.wake(self.ctx.redis)
        log.info("gateway webhook", extra={"gateway_event_id": event_id, "type": event_type,
                                           "result": "handled" if handled else "ignored"})
        return WebhookOutcome(event_id, event_type, "handled" if handled else "ignored")

    def _dispatch(self, db, event_type: str, obj: dict, now: datetime) -> bool:
        if event_type in DISPUTE_EVENTS:
            return self._dispute(db, event_type, obj, now)
        if event_type in REFUND_EVENTS:
            return self._refund(db, obj, now)
        if event_type == "payment_intent.canceled":
            return self._canceled(db, obj, now)
        return False

    # -- disputes --------------------------------------------------------------------------------------
    def _dispute(self, db, event_type: str, obj: dict, now: datetime) -> bool:
        reference, intent = _text(obj.get("id"), 100), obj.get("payment_intent")
        if isinstance(intent, dict):
            intent = intent.get("id")
        intent = _text(intent, 100)
        if reference is None or intent is None:
            return False
        payment = db.scalar(select(Payment).where(Payment.gateway_reference == intent).with_for_update())
        if payment is None:
            log.warning("dispute for an unknown payment", extra={"gateway_reference": intent})
            return False
        status, reason = _text(obj.get("status"), 40) or "needs_response", _text(obj.get("reason"), 60) or "general"
        evidence = obj.get("evidence_details")
        due = _at(evidence.get("due_by")) if isinstance(evidence, dict) else None
        given = obj.get("amount")
        amount = given if isinstance(given, int) and not isinstance(given, bool) and 0 <= given <= 10**12 \
            else payment.amount_captured
        currency = obj.get("currency")
        currency = currency.upper() if isinstance(currency, str) and len(currency) == 3 and currency.isascii() \
            and currency.isalpha() else payment.currency
        naive = now.replace(tzinfo=None)
        dispute = db.scalar(select(Dispute).where(Dispute.gateway_reference == reference))
        client = db.get(ApiClient, payment.client_id)
        events: list[str] = []
        if dispute is None:
            dispute = Dispute(id=self.ctx.new_id("dsp"), client_id=payment.client_id, payment_id=payment.id,
                              gateway_reference=reference, status=status, reason=reason, amount=amount,
                              currency=currency, evidence_due_by=due,
                              conversation_id=payment.conversation_id,
                              customer_account_id=payment.customer_account_id, created_at=naive, updated_at=naive)
            db.add(dispute)
            payment.dispute_id, payment.updated_at = dispute.id, naive
            events.append(ev.DISPUTE_OPENED)
            if status in CLOSED_DISPUTE_STATUSES:
                events.append(ev.DISPUTE_CLOSED)
        elif event_type == "charge.dispute.created":
            return False  # the creation delivered after an update: what it says is older
        elif (dispute.status, dispute.reason, dispute.amount, dispute.evidence_due_by) != (status, reason, amount, due):
            was_closed = dispute.status in CLOSED_DISPUTE_STATUSES
            if was_closed and status not in CLOSED_DISPUTE_STATUSES:
                return False  # a stale update delivered after the close
            dispute.status, dispute.reason, dispute.amount, dispute.evidence_due_by = status, reason, amount, due
            dispute.updated_at = naive
            closing = status in CLOSED_DISPUTE_STATUSES and not was_closed
            events.append(ev.DISPUTE_CLOSED if closing else ev.DISPUTE_UPDATED)
        if not events:
            return False
        db.flush()
        for event in events:
            payment_event(db, client=client, payment=payment, event_type=event, data=dispute_view(dispute), now=now,
                          new_id=self.ctx.new_id, object_type="dispute")
        return True

    # -- refunds ---------------------------------------------------------------------------------------
    def _refund(self, db, obj: dict, now: datetime) -> bool:
        reference = _text(obj.get("id"), 100)
        ours = _text(obj["metadata"].get("paygate_refund_id"), 40) if isinstance(obj.get("metadata"), dict) else None
        refund = None
        if isinstance(reference, str):
            refund = db.scalar(select(Refund).where(Refund.gateway_reference == reference).with_for_update())
        if refund is None and isinstance(ours, str):
            refund = db.get(Refund, ours, with_for_update=True)
        if refund is None:
            return False
        if isinstance(reference, str) and not refund.gateway_reference:
            refund.gateway_reference = reference
        status = obj.get("status")
        if status in ("failed", "canceled") and refund.status != RefundState.FAILED:
            self.refunds.fail(db, refund, _text(obj.get("failure_reason"), 60) or "refund_failed", now)
            return True
        if status == "succeeded" and refund.status == RefundState.PENDING:
            self.refunds.succeed(db, refund, now)
            return True
        return False

    # -- authorizations the gateway canceled -----------------------------------------------------------
    def _canceled(self, db, obj: dict, now: datetime) -> bool:
        reference = _text(obj.get("id"), 100)
        if not isinstance(reference, str):
            return False
        payment = db.scalar(select(Payment).where(Payment.gateway_reference == reference).with_for_update())
        if payment is None or payment.status != PaymentStatus.AUTHORIZED or payment.pending_operation == "capture":
            return False
        lapsed = obj.get("cancellation_reason") in ("automatic", "expired")
        payment.status = PaymentStatus.EXPIRED if lapsed else PaymentStatus.VOIDED
        payment.amount_capturable = 0
        payment.pending_operation = payment.pending_amount = payment.pending_key = payment.pending_since = None
        payment.message = ("The hold lapsed before it was captured; nothing was taken." if lapsed
                           else "The hold was released.")
        payment.updated_at = now.replace(tzinfo=None)
        payment_event(db, client=db.get(ApiClient, payment.client_id), payment=payment,
                      event_type=ev.HOLD_EXPIRED if lapsed else ev.HOLD_VOIDED, data=payment_view(payment), now=now,
                      new_id=self.ctx.new_id)
        return True


class DisputeService:
    """Reads disputes and, in the sandbox, closes them the way Stripe's ``charge.dispute.closed`` would."""

    def __init__(self, ctx: Context, webhooks: GatewayWebhooks):
        self.ctx = ctx
        self.webhooks = webhooks

    def get(self, client_id: str | None, dispute_id: str) -> Dispute:
        """The dispute. Raises :class:`NotFound` ``dispute_not_found`` (also for another client's)."""
        return self.ctx.owned(Dispute, dispute_id, client_id, code="dispute_not_found", what="dispute")

    def sandbox_close(self, client_id: str, dispute_id: str, status: str, *, sign) -> Dispute:
        """Sandbox only: closes the dispute as ``won`` or ``lost`` at the sandbox gateway and delivers the
        resulting ``charge.dispute.closed`` event, signed by ``sign(payload) -> header``, through
        :meth:`GatewayWebhooks.receive` — the same path a real Stripe event takes. Raises ``dispute_not_found``."""
        dispute = self.get(client_id, dispute_id)
        body = self.ctx.gateway.close_dispute(dispute.gateway_reference, status)
        if body is None:
            raise NotFound("The gateway does not know this dispute.", code="dispute_not_found")
        payload = body.encode("utf-8")
        self.webhooks.receive(payload, sign(payload))
        return self.get(client_id, dispute_id)
