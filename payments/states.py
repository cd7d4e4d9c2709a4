"""The states of a payment and of a refund, and the rules that move them (docs/api.md, "Payments").

A payment's status (:class:`PaymentStatus`)::

    processing ──▶ authorized ──capture──▶ captured ──refund──▶ partially_refunded ──▶ refunded
        │              ├──void──▶ voided                    └──────────refund (all)──────▶ refunded
        │              └──capture_before passed──▶ expired
        ├──▶ captured  (a charge, captured at once)
        ├──▶ declined  (merchant-initiated charges only; a session's declines are attempts, not payments)
        └──▶ failed

``processing`` means the gateway's answer is unknown; it is reconciled, never assumed. Operations that may
start from each status are listed in :data:`CAPTURABLE`, :data:`VOIDABLE` and :data:`REFUNDABLE`.
"""

from __future__ import annotations

from enum import StrEnum


class PaymentStatus(StrEnum):
    """Where a payment is (the payment view's ``status``)."""

    PROCESSING = "processing"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    EXPIRED = "expired"
    DECLINED = "declined"
    FAILED = "failed"


CAPTURABLE = frozenset({PaymentStatus.AUTHORIZED})
VOIDABLE = frozenset({PaymentStatus.AUTHORIZED})
REFUNDABLE = frozenset({PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED})
APPROVED = frozenset({PaymentStatus.AUTHORIZED, PaymentStatus.CAPTURED, PaymentStatus.PARTIALLY_REFUNDED,
                      PaymentStatus.REFUNDED, PaymentStatus.VOIDED, PaymentStatus.EXPIRED})
"""Statuses of a payment the gateway approved at some point (its card may be charged again by the merchant)."""


def status_after_refunds(amount_captured: int, amount_refunded: int) -> PaymentStatus:
    """A captured payment's status from its succeeded refunds: ``captured`` (none), ``partially_refunded`` or
    ``refunded`` (all of ``amount_captured``). Amounts in minor units."""
    if amount_refunded <= 0:
        return PaymentStatus.CAPTURED
    if amount_refunded >= amount_captured:
        return PaymentStatus.REFUNDED
    return PaymentStatus.PARTIALLY_REFUNDED


class RefundState(StrEnum):
    """A refund's ``status``: ``pending`` until the gateway's answer is known, then ``succeeded`` or
    ``failed`` (a succeeded refund can still fail later: the gateway reports it by webhook)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ManualReview(StrEnum):
    """A refund's ``manual_review``: ``required`` after a failure (the review queue), ``resolved`` once a person
    dealt with it or a retry succeeded."""

    NONE = "none"
    REQUIRED = "required"
    RESOLVED = "resolved"


REVIEW_DISPOSITION = "Refund_Failed_Manual_Review"
"""The disposition a failed refund asks the contact center to record (seed 004): Genesys wrap-up codes cannot be
changed after the fact, so paygate writes it back as ``paymentRefundReviewDisposition`` and on the workitem."""
