"""Holds: capture, void and lapse of an authorized payment (docs/api.md, "Holds"), and the reconciliation of
a capture or void whose gateway answer was lost.

Each operation follows the write path of docs/architecture.md:

1. a Redis lease on the payment (``paygate:lock:payment:<id>``);
2. a compare-and-set that claims the operation in the database: ``UPDATE payments SET pending_operation = ...
   WHERE id = ? AND status = 'authorized' AND pending_operation IS NULL``. A second request (or a lost lease)
   finds the claim taken and is answered from the payment's state;
3. the gateway call with a key derived from the payment and the operation (``<payment>:capture``,
   ``<payment>:void``), so any retry gets the gateway's first answer;
4. one transaction with the new status, the cleared claim and the event (``hold.captured``, ``hold.voided``,
   ``hold.expired``).

An unknown gateway answer (timeout) leaves the payment ``authorized`` with ``pending_operation`` set; the
worker's :meth:`HoldService.reconcile_due` (or the same request retried) repeats the gateway call with the same
key and settles it. The lapse never voids a payment with a capture pending, and paygate never captures on its
own. Lapse timing: ``hold.expiring`` once, ``PAYGATE_HOLD_EXPIRING_NOTICE_SECONDS`` before ``capture_before``;
at ``capture_before`` the hold is voided at the gateway and the payment becomes ``expired`` (``hold.expired``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update

from callbacks import events as ev
from callbacks import outbox
from kernel.errors import Conflict, Unprocessable
from tokenizer.gateways.base import CaptureRequest, GatewayStatus, OperationResult, VoidRequest

from .context import Context
from .events import payment_event
from .models import ApiClient, Payment
from .states import PaymentStatus
from .views import payment_view

log = logging.getLogger("paygate.payments")

LOCK_WAIT_SECONDS = 5.0


@dataclass(frozen=True)
class OperationOutcome:
    """What a capture or void call did: the payment afterwards and whether the gateway's answer is still
    unknown (``pending``: the API answers 202 and the request may be retried with the same key)."""

    payment: Payment
    pending: bool = False


def payment_key(payment_id: str, operation: str) -> str:
    """The gateway idempotency key of ``operation`` (``capture`` | ``void``) on a payment: one of each per
    payment ever, so every retry, reconciliation or lapse reuses it."""
    return f"{payment_id}:{operation}"


class HoldService:
    """Capture, void, lapse and reconciliation of holds. ``notice_seconds``: how long before ``capture_before``
    ``hold.expiring`` is sent (``PAYGATE_HOLD_EXPIRING_NOTICE_SECONDS``); ``reconcile_after_seconds``: how long
    an unknown answer waits before the worker asks again."""

    def __init__(self, ctx: Context, *, notice_seconds: int = 86400, reconcile_after_seconds: int = 120):
        self.ctx = ctx
        self.notice_seconds = notice_seconds
        self.reconcile_after_seconds = reconcile_after_seconds

    # -- reads ---------------------------------------------------------------------------------------
    def get(self, client_id: str | None, payment_id: str) -> Payment:
        """The payment (``client_id`` None skips the owner check). Raises :class:`NotFound`
        ``payment_not_found``, also for another client's payment."""
        return self.ctx.owned(Payment, payment_id, client_id, code="payment_not_found", what="payment")

    # -- capture / void ------------------------------------------------------------------------------
    def capture(self, client_id: str, payment_id: str, amount: int | None = None) -> OperationOutcome:
        """Captures ``amount`` minor units (default: all that is held; less releases the rest) of an authorized
        payment. Raises ``payment_not_found`` (404), ``payment_not_capturable`` (409: voided, expired,
        captured...), ``operation_in_progress`` (409: a void is pending, or a capture of another amount),
        ``amount_exceeds_capturable`` (422). Returns ``pending=True`` when the gateway's answer is unknown."""
        return self._operate(client_id, payment_id, "capture", amount)

    def void(self, client_id: str, payment_id: str) -> OperationOutcome:
        """Releases an authorized payment's hold. Raises ``payment_not_found`` (404), ``payment_not_voidable``
        (409) or ``operation_in_progress`` (409). Returns ``pending=True`` when the gateway's answer is unknown."""
        return self._operate(client_id, payment_id, "void", None)

    def _operate(self, client_id: str, payment_id: str, operation: str, amount: int | None) -> OperationOutcome:
        p = self.get(client_id, payment_id)
        lock_key, token = f"paygate:lock:payment:{payment_id}", self.ctx.new_id("lock")
        if not self.ctx.locks.acquire(lock_key, token, wait_seconds=LOCK_WAIT_SECONDS):
            raise Conflict("Another operation on this payment is in progress; try again shortly.",
                           code="operation_in_progress")
        try:
            p = self.get(client_id, payment_id)
            if p.pending_operation == operation and (amount is None or amount == p.pending_amount):
                return self._settle(p.id, self._call(p, operation, p.pending_amount))  # retry the lost call
            if p.pending_operation is not None:
                raise Conflict(f"A {p.pending_operation} of this payment is waiting for the gateway's answer.",
                               code="operation_in_progress")
            if p.status != PaymentStatus.AUTHORIZED:
                raise Conflict(f"A payment that is {p.status} cannot be {'captured' if operation == 'capture' else 'voided'}.",
                               code=f"payment_not_{'capturable' if operation == 'capture' else 'voidable'}")
            if operation == "capture":
                amount = p.amount_capturable if amount is None else amount
                if amount > p.amount_capturable:
                    raise Unprocessable(f"At most {p.amount_capturable} can be captured.",
                                        code="amount_exceeds_capturable")
            if not self._claim(p.id, operation, amount):
                return self._operate_after_race(client_id, payment_id, operation)
            return self._settle(p.id, self._call(p, operation, amount))
        finally:
            self.ctx.locks.release(lock_key, token)

    def _operate_after_race(self, client_id: str, payment_id: str, operation: str) -> OperationOutcome:
        p = self.get(client_id, payment_id)
        if p.pending_operation is not None:
            raise Conflict("Another operation on this payment is in progress.", code="operation_in_progress")
        raise Conflict(f"A payment that is {p.status} cannot be {'captured' if operation == 'capture' else 'voided'}.",
                       code=f"payment_not_{'capturable' if operation == 'capture' else 'voidable'}")

    def _claim(self, payment_id: str, operation: str, amount: int | None) -> bool:
        """The compare-and-set that makes this request the one to call the gateway."""
        now = self.ctx.naive_now()
        with self.ctx.Session.begin() as db:
            return bool(db.execute(
                update(Payment).where(Payment.id == payment_id, Payment.status == PaymentStatus.AUTHORIZED,
                                      Payment.pending_operation.is_(None))
                .values(pending_operation=operation, pending_amount=amount,
                        pending_key=payment_key(payment_id, "void" if operation == "lapse" else operation),
                        pending_since=now)).rowcount)

    def _call(self, p: Payment, operation: str, amount: int | None) -> OperationResult:
        if operation == "capture":
            return self.ctx.gateway.capture(CaptureRequest(p.gateway_reference or "", payment_key(p.id, "capture"),
                                                           amount))
        reason = "abandoned" if operation == "lapse" else "requested_by_customer"
        return self.ctx.gateway.void(VoidRequest(p.gateway_reference or "", payment_key(p.id, "void"), reason))

    def _settle(self, payment_id: str, result: OperationResult) -> OperationOutcome:
        """Applies a gateway answer to the claimed operation (in one transaction with its events)."""
        now = self.ctx.now()
        naive = now.replace(tzinfo=None)
        refused: Conflict | None = None
        with self.ctx.Session.begin() as db:
            p = db.get(Payment, payment_id, with_for_update=True)  # a webhook may settle it at the same time
            operation = p.pending_operation
            if operation is None:  # settled meanwhile (the reconciler or a webhook)
                return OperationOutcome(p)
            if result.status is GatewayStatus.UNAVAILABLE:
                log.warning("gateway answer unknown; the operation stays pending",
                            extra={"payment_id": p.id, "operation": operation})
                return OperationOutcome(p, pending=True)
            client = db.get(ApiClient, p.client_id)
            p.pending_operation = p.pending_amount = p.pending_key = p.pending_since = None
            p.updated_at = naive
            if result.status is not GatewayStatus.APPROVED:
                log.warning("gateway refused the operation",
                            extra={"payment_id": p.id, "operation": operation, "error_code": result.error_code})
                if operation == "lapse" and result.error_code == "payment_intent_unexpected_state":
                    self._expire(db, client, p, now)  # the gateway already let it go
                    return OperationOutcome(p)
                code = "payment_not_capturable" if operation == "capture" else "payment_not_voidable"
                refused = _Refused(f"The gateway refused the {operation} ({result.error_code or 'refused'}).",
                                   code=code)
            elif operation == "capture":
                captured = result.amount if result.amount is not None else p.amount_capturable
                p.status, p.amount_captured, p.amount_capturable = PaymentStatus.CAPTURED, captured, 0
                p.message = "Payment captured."
                payment_event(db, client=client, payment=p, event_type=ev.HOLD_CAPTURED, data=payment_view(p),
                              now=now, new_id=self.ctx.new_id)
            elif operation == "void":
                p.status, p.amount_capturable, p.message = PaymentStatus.VOIDED, 0, "The hold was released."
                payment_event(db, client=client, payment=p, event_type=ev.HOLD_VOIDED, data=payment_view(p),
                              now=now, new_id=self.ctx.new_id)
            else:
                self._expire(db, client, p, now)
        if refused is not None:
            raise refused  # the cleared claim is committed: the payment can be operated on again
        outbox.wake(self.ctx.redis)
        return OperationOutcome(p)

    # -- lapse ---------------------------------------------------------------------------------------
    def lapse_due(self, limit: int = 100) -> int:
        """Sends ``hold.expiring`` for holds within the notice period and voids holds past ``capture_before``
        (``hold.expiring`` first if one jump of the clock passed both moments). Run by the worker every second.
        Returns how many payments changed."""
        now = self.ctx.now()
        naive = now.replace(tzinfo=None)
        notice_edge = naive + timedelta(seconds=self.notice_seconds)
        with self.ctx.Session() as db:
            notify = db.scalars(select(Payment.id).where(
                Payment.status == PaymentStatus.AUTHORIZED, Payment.hold_expiring_sent.is_(False),
                Payment.capture_before.is_not(None), Payment.capture_before <= notice_edge).limit(limit)).all()
            lapse = db.scalars(select(Payment.id).where(
                Payment.status == PaymentStatus.AUTHORIZED, Payment.pending_operation.is_(None),
                Payment.capture_before.is_not(None), Payment.capture_before <= naive).limit(limit)).all()
        changed = sum(self._notify_expiring(pid, now) for pid in notify)
        for pid in lapse:
            self._notify_expiring(pid, now)
            if self._claim(pid, "lapse", None):
                try:
                    self._settle(pid, self._call(self.get(None, pid), "lapse", None))
                    changed += 1
                except _Refused:
                    changed += 1
        return changed

    def _notify_expiring(self, payment_id: str, now: datetime) -> int:
        with self.ctx.Session.begin() as db:
            won = db.execute(update(Payment).where(Payment.id == payment_id, Payment.hold_expiring_sent.is_(False),
                                                   Payment.status == PaymentStatus.AUTHORIZED)
                             .values(hold_expiring_sent=True)).rowcount
            if won:
                p = db.get(Payment, payment_id)
                payment_event(db, client=db.get(ApiClient, p.client_id), payment=p, event_type=ev.HOLD_EXPIRING,
                              data=payment_view(p), now=now, new_id=self.ctx.new_id)
        if won:
            outbox.wake(self.ctx.redis)
        return int(bool(won))

    def _expire(self, db, client: ApiClient, p: Payment, now: datetime) -> None:
        p.status, p.amount_capturable = PaymentStatus.EXPIRED, 0
        p.message = "The hold lapsed before it was captured; nothing was taken."
        p.updated_at = now.replace(tzinfo=None)
        payment_event(db, client=client, payment=p, event_type=ev.HOLD_EXPIRED, data=payment_view(p), now=now,
                      new_id=self.ctx.new_id)

    # -- reconciliation ------------------------------------------------------------------------------
    def reconcile_due(self, limit: int = 50) -> int:
        """Repeats, with the same idempotency key, every capture, void or lapse whose gateway answer has been
        unknown for ``reconcile_after_seconds``, and settles it. Returns how many were settled."""
        cutoff = self.ctx.naive_now() - timedelta(seconds=self.reconcile_after_seconds)
        with self.ctx.Session() as db:
            rows = db.execute(select(Payment.id, Payment.pending_operation, Payment.pending_amount).where(
                Payment.pending_operation.is_not(None), Payment.pending_since <= cutoff).limit(limit)).all()
        settled = 0
        for payment_id, operation, amount in rows:
            lock_key, token = f"paygate:lock:payment:{payment_id}", self.ctx.new_id("lock")
            if not self.ctx.locks.acquire(lock_key, token):
                continue
            try:
                p = self.get(None, payment_id)
                if p.pending_operation != operation:
                    continue
                try:
                    outcome = self._settle(payment_id, self._call(p, operation, amount))
                except _Refused:
                    settled += 1
                    continue
                settled += 0 if outcome.pending else 1
            finally:
                self.ctx.locks.release(lock_key, token)
        return settled


class _Refused(Conflict):
    """The gateway refused a claimed operation (its claim is cleared and committed before this is raised)."""
