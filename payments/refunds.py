"""Refunds by disposition (docs/api.md, "Refunds"; the trap of seed 004: a refund issued twice, issued as
zero, or failing silently).

* **Exactly once per disposition.** A refund is identified by (payment, disposition code, conversation,
  reference), absent values counting as equal; its digest is the unique ``refunds.dedupe_key``. However many
  requests arrive at once, with whatever ``Idempotency-Key``, one row is inserted: the others hit the unique
  constraint (or find the row under the payment's lock) and answer with that refund (HTTP 200).
* **Never zero, never more than refundable.** Amounts are validated before (:func:`kernel.money.parse_minor_units`);
  here the refundable amount is the captured amount minus succeeded and pending refunds, computed under a lock
  on the payment row, so two dispositions cannot over-refund together.
* **Never silent.** A refusal by the gateway, or a refund the gateway later reports failed (Stripe refunds can
  fail after ``succeeded``, https://docs.stripe.com/refunds#failed-refunds), sets ``status: failed``,
  ``manual_review: required`` and ``review_disposition: Refund_Failed_Manual_Review``, sends ``refund.failed``
  (webhook, Genesys write-back and, when configured, a workitem) and puts the refund in the review queue
  (``GET /v1/refunds?manual_review=required``, ``paygate refunds review``).
* **Retry never refunds twice.** A retry is a new gateway attempt of the same refund with its own idempotency
  key (``<refund>:<attempt>``), allowed only for a failed refund awaiting review (a failure means nothing was
  refunded, or the money came back); a refund whose answer is unknown stays ``pending`` and is reconciled by
  repeating the same attempt with the same key.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from callbacks import events as ev
from callbacks import outbox
from kernel.errors import Conflict, Unprocessable
from tokenizer.gateways.base import GatewayStatus, RefundRequest, RefundResult, RefundStatus

from .context import Context
from .events import check_callback_url, payment_event
from .models import ApiClient, Payment, Refund
from .states import REFUNDABLE, REVIEW_DISPOSITION, ManualReview, RefundState, status_after_refunds
from .views import refund_view

log = logging.getLogger("paygate.payments")

KEY_WINDOW_SECONDS = 23 * 3600
"""A refund attempt is repeated with its key only within this window (gateways keep keys 24 hours)."""

REASONS = ("requested_by_customer", "duplicate", "fraudulent")
"""Stripe's refund reasons (https://docs.stripe.com/api/refunds/create#create_refund-reason)."""


@dataclass(frozen=True)
class RefundInput:
    """A validated ``POST /v1/refunds`` body: ``amount`` minor units or None for everything refundable;
    ``reason`` one of :data:`REASONS` or None; the rest as documented."""

    payment_id: str
    disposition_code: str
    amount: int | None = None
    reason: str | None = None
    conversation_id: str | None = None
    participant_id: str | None = None
    reference: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    callback_url: str | None = None


def dedupe_key(payment_id: str, disposition_code: str, conversation_id: str | None, reference: str | None) -> str:
    """The digest that makes a disposition refund unique: SHA-256 over (payment, disposition code,
    conversation, reference), where absent and empty values are the same."""
    parts = [payment_id, disposition_code, conversation_id or None, reference or None]
    return hashlib.sha256(json.dumps(parts, separators=(",", ":")).encode()).hexdigest()


def refund_gateway_key(refund_id: str, attempt: int) -> str:
    """The gateway idempotency key of one attempt of a refund."""
    return f"{refund_id}:{attempt}"


class RefundService:
    """Creates, reads, resolves and retries refunds, and applies the gateway's late answers.
    ``reconcile_after_seconds``: how long a refund with an unknown answer waits before the worker asks again."""

    def __init__(self, ctx: Context, *, reconcile_after_seconds: int = 120):
        self.ctx = ctx
        self.reconcile_after_seconds = reconcile_after_seconds

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, client_id: str | None, refund_id: str) -> Refund:
        """The refund (``client_id`` None skips the owner check). Raises :class:`NotFound` ``refund_not_found``."""
        return self.ctx.owned(Refund, refund_id, client_id, code="refund_not_found", what="refund")

    # -- create --------------------------------------------------------------------------------------
    def create(self, client_id: str, request: RefundInput) -> tuple[Refund, bool]:
        """Refunds a captured payment by disposition. Returns ``(refund, created)``: ``created`` is False when the
        same disposition was refunded before (that refund is returned, whatever its state).

        Raises ``callback_url_not_allowed`` (400: an internal address in production) or ``validation_error`` (400,
        ``callback_url``: ``invalid_url``), ``payment_not_found`` (404),
        ``payment_not_refundable`` (409: not captured or partially refunded;
        void a hold instead), ``amount_exceeds_refundable`` (422). A gateway refusal is not an error: the refund
        is returned with ``status: failed`` and awaits review.
        """
        check_callback_url(request.callback_url, production=self.ctx.production)
        payment = self.ctx.owned(Payment, request.payment_id, client_id, code="payment_not_found", what="payment")
        key = dedupe_key(payment.id, request.disposition_code, request.conversation_id, request.reference)
        existing = self._by_key(key)
        if existing is not None:
            return existing, False
        try:
            refund, inserted = self._insert(client_id, payment.id, key, request)
        except IntegrityError:  # another request inserted the same disposition first
            existing = self._by_key(key)
            if existing is None:
                raise
            return existing, False
        if not inserted:
            return refund, False
        return self._attempt(refund.id, refund.attempts), True

    def _by_key(self, key: str) -> Refund | None:
        with self.ctx.Session() as db:
            return db.scalar(select(Refund).where(Refund.dedupe_key == key))

    def _insert(self, client_id: str, payment_id: str, key: str, request: RefundInput) -> tuple[Refund, bool]:
        now = self.ctx.naive_now()
        with self.ctx.Session.begin() as db:
            payment = db.get(Payment, payment_id, with_for_update=True)  # serializes refunds of one payment
            existing = db.scalar(select(Refund).where(Refund.dedupe_key == key))
            if existing is not None:
                return existing, False
            if payment.status not in REFUNDABLE:
                raise Conflict(f"A payment that is {payment.status} cannot be refunded"
                               f"{' (void the hold instead)' if payment.status == 'authorized' else ''}.",
                               code="payment_not_refundable")
            refundable = payment.amount_captured - self._committed(db, payment.id)
            amount = refundable if request.amount is None else request.amount
            if amount <= 0 or amount > refundable:
                raise Unprocessable(f"At most {max(0, refundable)} can still be refunded.",
                                    code="amount_exceeds_refundable")
            refund_id = self.ctx.new_id("re")
            refund = Refund(
                id=refund_id, client_id=client_id, payment_id=payment_id, dedupe_key=key,
                status=RefundState.PENDING, amount=amount, currency=payment.currency, reason=request.reason,
                disposition_code=request.disposition_code, conversation_id=request.conversation_id or None,
                participant_id=request.participant_id or None, reference=request.reference or None,
                manual_review=ManualReview.NONE, gateway_key=refund_gateway_key(refund_id, 1), attempts=1,
                metadata_=dict(request.metadata), callback_url=request.callback_url, created_at=now,
                updated_at=now)
            db.add(refund)
            db.flush()  # the unique dedupe_key is checked here
        return refund, True

    @staticmethod
    def _committed(db, payment_id: str) -> int:
        """Minor units already refunded or being refunded (succeeded and pending refunds)."""
        return int(db.scalar(select(func.coalesce(func.sum(Refund.amount), 0)).where(
            Refund.payment_id == payment_id, Refund.status.in_([RefundState.PENDING, RefundState.SUCCEEDED]))))

    # -- gateway attempts ----------------------------------------------------------------------------
    def _attempt(self, refund_id: str, attempt: int) -> Refund:
        """Calls the gateway for attempt ``attempt`` of a pending refund and applies the answer."""
        with self.ctx.Session() as db:
            refund = db.get(Refund, refund_id)
            payment = db.get(Payment, refund.payment_id)
        metadata = {"paygate_refund_id": refund.id, "paygate_payment_id": payment.id,
                    "disposition_code": refund.disposition_code[:500]}
        result = self.ctx.gateway.refund(RefundRequest(
            reference=payment.gateway_reference or "", idempotency_key=refund_gateway_key(refund.id, attempt),
            amount=refund.amount, currency=refund.currency, reason=refund.reason, metadata=metadata))
        return self._apply_result(refund.id, attempt, result)

    def _apply_result(self, refund_id: str, attempt: int, result: RefundResult) -> Refund:
        now = self.ctx.now()
        with self.ctx.Session.begin() as db:
            refund = db.get(Refund, refund_id, with_for_update=True)  # a webhook may settle it at the same time
            if refund.status != RefundState.PENDING or refund.attempts != attempt:
                return refund  # settled meanwhile (a webhook, the reconciler)
            if result.reference:
                refund.gateway_reference = result.reference
            if result.status is GatewayStatus.UNAVAILABLE:
                log.warning("gateway answer unknown; the refund stays pending", extra={"refund_id": refund.id})
                refund.updated_at = now.replace(tzinfo=None)
                return refund
            if result.status is not GatewayStatus.APPROVED:
                self.fail(db, refund, result.failure_code or "refund_refused", now)
            elif result.refund_status is RefundStatus.SUCCEEDED:
                self.succeed(db, refund, now)
            elif result.refund_status in (RefundStatus.FAILED, RefundStatus.CANCELED):
                self.fail(db, refund, result.failure_code or "refund_failed", now)
            else:  # pending or requires_action at the gateway: its webhook, or the reconciler, settles it
                refund.updated_at = now.replace(tzinfo=None)
        outbox.wake(self.ctx.redis)
        return refund

    # -- state changes (also used by the gateway's webhooks) -----------------------------------------
    def succeed(self, db, refund: Refund, now: datetime) -> None:
        """Marks ``refund`` succeeded inside ``db``'s transaction: the payment's ``amount_refunded`` and status
        follow, a review in progress is resolved, ``refund.succeeded`` is sent. No-op when already succeeded."""
        if refund.status == RefundState.SUCCEEDED:
            return
        payment = db.get(Payment, refund.payment_id, with_for_update=True)
        refund.status, refund.failure_code = RefundState.SUCCEEDED, None
        if refund.manual_review == ManualReview.REQUIRED:
            refund.manual_review = ManualReview.RESOLVED
        refund.updated_at = now.replace(tzinfo=None)
        payment.amount_refunded += refund.amount
        payment.status = status_after_refunds(payment.amount_captured, payment.amount_refunded)
        payment.updated_at = now.replace(tzinfo=None)
        self._event(db, payment, refund, ev.REFUND_SUCCEEDED, now)

    def fail(self, db, refund: Refund, failure_code: str, now: datetime) -> None:
        """Marks ``refund`` failed inside ``db``'s transaction (also after it had succeeded: the payment's
        refunded amount is given back), puts it in the review queue and sends ``refund.failed``. No-op when
        already failed."""
        if refund.status == RefundState.FAILED:
            return
        payment = db.get(Payment, refund.payment_id, with_for_update=True)
        if refund.status == RefundState.SUCCEEDED:
            payment.amount_refunded = max(0, payment.amount_refunded - refund.amount)
            payment.status = status_after_refunds(payment.amount_captured, payment.amount_refunded)
            payment.updated_at = now.replace(tzinfo=None)
        refund.status, refund.failure_code = RefundState.FAILED, failure_code[:60]
        refund.manual_review, refund.review_disposition = ManualReview.REQUIRED, REVIEW_DISPOSITION
        refund.updated_at = now.replace(tzinfo=None)
        log.warning("refund failed; it awaits manual review",
                    extra={"refund_id": refund.id, "payment_id": payment.id, "failure_code": refund.failure_code})
        self._event(db, payment, refund, ev.REFUND_FAILED, now)

    def _event(self, db, payment: Payment, refund: Refund, event_type: str, now: datetime) -> None:
        db.flush()
        payment_event(db, client=db.get(ApiClient, refund.client_id), payment=payment, event_type=event_type,
                      data=refund_view(refund), now=now, new_id=self.ctx.new_id, object_type="refund",
                      callback_url=refund.callback_url, conversation_id=refund.conversation_id,
                      participant_id=refund.participant_id)

    # -- the review queue ----------------------------------------------------------------------------
    def resolve(self, client_id: str, refund_id: str, note: str | None) -> Refund:
        """Marks a refund awaiting review as dealt with by a person (``manual_review: resolved``, ``note`` kept).
        Raises ``refund_not_found`` (404) or ``refund_not_in_review`` (409)."""
        self.get(client_id, refund_id)
        now = self.ctx.naive_now()
        with self.ctx.Session.begin() as db:
            changed = db.execute(update(Refund).where(Refund.id == refund_id,
                                                      Refund.manual_review == ManualReview.REQUIRED)
                                 .values(manual_review=ManualReview.RESOLVED, review_note=(note or None),
                                         updated_at=now)).rowcount
        if not changed:
            raise Conflict("This refund is not awaiting review.", code="refund_not_in_review")
        return self.get(client_id, refund_id)

    def retry(self, client_id: str, refund_id: str) -> Refund:
        """A new gateway attempt of a failed refund awaiting review, with its own idempotency key. Raises
        ``refund_not_found`` (404), ``refund_not_in_review`` (409), ``amount_exceeds_refundable`` (422: the
        payment was refunded otherwise meanwhile)."""
        refund = self.get(client_id, refund_id)
        if refund.status != RefundState.FAILED or refund.manual_review != ManualReview.REQUIRED:
            raise Conflict("Only a failed refund awaiting review can be retried.", code="refund_not_in_review")
        attempt = refund.attempts + 1
        with self.ctx.Session.begin() as db:
            payment = db.get(Payment, refund.payment_id, with_for_update=True)
            refundable = payment.amount_captured - self._committed(db, payment.id)
            if payment.status not in REFUNDABLE or refund.amount > refundable:
                raise Unprocessable(f"At most {max(0, refundable)} can still be refunded.",
                                    code="amount_exceeds_refundable")
            won = db.execute(update(Refund).where(
                Refund.id == refund_id, Refund.status == RefundState.FAILED,
                Refund.manual_review == ManualReview.REQUIRED, Refund.attempts == refund.attempts)
                .values(status=RefundState.PENDING, attempts=attempt, failure_code=None,
                        gateway_key=refund_gateway_key(refund_id, attempt),
                        updated_at=self.ctx.naive_now())).rowcount
        if not won:
            raise Conflict("This refund is not awaiting review.", code="refund_not_in_review")
        return self._attempt(refund_id, attempt)

    # -- reconciliation ------------------------------------------------------------------------------
    def reconcile_due(self, limit: int = 50) -> int:
        """Repeats, with the same key, each attempt whose answer has been unknown for
        ``reconcile_after_seconds`` (the gateway returns its first answer, or does it now). Returns how many
        refunds left ``pending``."""
        now = self.ctx.now()
        cutoff = now.replace(tzinfo=None) - timedelta(seconds=self.reconcile_after_seconds)
        with self.ctx.Session() as db:
            rows = db.execute(select(Refund.id, Refund.attempts, Refund.created_at).where(
                Refund.status == RefundState.PENDING, Refund.manual_review == ManualReview.NONE,
                Refund.updated_at <= cutoff).limit(limit)).all()
        settled = 0
        for refund_id, attempt, created_at in rows:
            if created_at <= now.replace(tzinfo=None) - timedelta(seconds=KEY_WINDOW_SECONDS):
                self._needs_review(refund_id, now)
                continue
            settled += self._attempt(refund_id, attempt).status != RefundState.PENDING
        return settled

    def _needs_review(self, refund_id: str, now: datetime) -> None:
        """A refund whose answer stayed unknown for almost a day goes to a person instead of being repeated:
        gateways keep idempotency keys for 24 hours only (https://docs.stripe.com/api/idempotent_requests), so
        a later repeat could refund twice. It stays ``pending`` (``retry`` refuses it) until resolved."""
        with self.ctx.Session.begin() as db:
            refund = db.get(Refund, refund_id, with_for_update=True)
            if refund.status != RefundState.PENDING or refund.manual_review != ManualReview.NONE:
                return
            refund.manual_review, refund.review_disposition = ManualReview.REQUIRED, REVIEW_DISPOSITION
            refund.failure_code, refund.updated_at = "gateway_answer_unknown", now.replace(tzinfo=None)
            log.warning("refund answer unknown for a day; it awaits manual review", extra={"refund_id": refund_id})
