"""The public views of payments, refunds and disputes (docs/api.md; the OpenAPI document's schemas).

Each view is what ``GET /v1/<objects>/{id}`` answers and what an event about that object carries as ``data``.
Card data is brand, last four digits, expiry month/year and fingerprint only.
"""

from __future__ import annotations

from kernel.clock import rfc3339

from .models import Dispute, Payment, Refund


def card_of(p: Payment) -> dict | None:
    """``{"brand", "last4", "exp_month", "exp_year", "fingerprint"}`` of a payment's card, or None."""
    if not p.card_last4:
        return None
    return {"brand": p.card_brand, "last4": p.card_last4, "exp_month": p.card_exp_month,
            "exp_year": p.card_exp_year, "fingerprint": p.card_fingerprint}


def payment_view(p: Payment) -> dict:
    """The payment view (``object: "payment"``). ``pending_operation`` (an addition) names a capture or void
    whose gateway answer is not known yet, else null. ``entry_mode`` is how the card was entered (``page`` |
    ``dtmf`` | ``stored``) and ``moto`` whether it went to the gateway as a mail-order/telephone-order payment
    (docs/api.md, "Voice signals and MOTO")."""
    return {
        "payment_id": p.id, "object": "payment", "session_id": p.session_id, "status": p.status,
        "intent": p.intent, "amount": p.amount, "amount_capturable": p.amount_capturable,
        "amount_captured": p.amount_captured, "amount_refunded": p.amount_refunded, "currency": p.currency,
        "token": p.token, "card": card_of(p), "gateway": p.gateway, "gateway_reference": p.gateway_reference,
        "capture_before": rfc3339(p.capture_before), "conversation_id": p.conversation_id,
        "participant_id": p.participant_id, "customer_account_id": p.customer_account_id,
        "reference": p.reference, "subscription_id": p.subscription_id, "dispute_id": p.dispute_id,
        "decline_code": p.decline_code, "message": p.message, "initiator": p.initiator,
        "entry_mode": p.entry_mode or ("stored" if p.initiator == "merchant" else "page"), "moto": bool(p.moto),
        "metadata": dict(p.metadata_ or {}), "pending_operation": p.pending_operation,
        "created_at": rfc3339(p.created_at), "updated_at": rfc3339(p.updated_at),
    }


def refund_view(r: Refund) -> dict:
    """The refund view (``object: "refund"``); ``attempts`` (an addition) counts gateway attempts."""
    return {
        "refund_id": r.id, "object": "refund", "payment_id": r.payment_id, "status": r.status, "amount": r.amount,
        "currency": r.currency, "reason": r.reason, "disposition_code": r.disposition_code,
        "conversation_id": r.conversation_id, "participant_id": r.participant_id, "reference": r.reference,
        "failure_code": r.failure_code, "manual_review": r.manual_review,
        "review_disposition": r.review_disposition, "review_note": r.review_note,
        "gateway_reference": r.gateway_reference, "attempts": r.attempts, "metadata": dict(r.metadata_ or {}),
        "created_at": rfc3339(r.created_at), "updated_at": rfc3339(r.updated_at),
    }


def dispute_view(d: Dispute) -> dict:
    """The dispute view (``object: "dispute"``); ``status`` and ``reason`` are Stripe's values."""
    return {
        "dispute_id": d.id, "object": "dispute", "payment_id": d.payment_id, "status": d.status, "reason": d.reason,
        "amount": d.amount, "currency": d.currency, "evidence_due_by": rfc3339(d.evidence_due_by),
        "gateway_reference": d.gateway_reference, "conversation_id": d.conversation_id,
        "customer_account_id": d.customer_account_id, "created_at": rfc3339(d.created_at),
        "updated_at": rfc3339(d.updated_at),
    }
