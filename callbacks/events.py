"""Event types (contract §5) and the exact JSON text of an event.

The body is built once, stored in ``events.body`` and sent byte for byte on every attempt, so the
signature a receiver checks always covers what was stored.
"""

from __future__ import annotations

import json

# sessions and payments (now)
PAYMENT_APPROVED = "payment.approved"
PAYMENT_DECLINED = "payment.declined"
PAYMENT_FAILED = "payment.failed"
PAYMENT_SESSION_REQUIRES_AGENT = "payment_session.requires_agent"
PAYMENT_SESSION_EXPIRED = "payment_session.expired"
PAYMENT_SESSION_CANCELED = "payment_session.canceled"
# as holds, refunds, subscriptions and disputes arrive
HOLD_AUTHORIZED = "hold.authorized"
HOLD_CAPTURED = "hold.captured"
HOLD_VOIDED = "hold.voided"
HOLD_EXPIRING = "hold.expiring"
REFUND_SUCCEEDED = "refund.succeeded"
REFUND_FAILED = "refund.failed"
SUBSCRIPTION_CREATED = "subscription.created"
SUBSCRIPTION_CANCELED = "subscription.canceled"
DISPUTE_OPENED = "dispute.opened"
DISPUTE_CLOSED = "dispute.closed"

EVENT_TYPES = frozenset({
    PAYMENT_APPROVED, PAYMENT_DECLINED, PAYMENT_FAILED, PAYMENT_SESSION_REQUIRES_AGENT, PAYMENT_SESSION_EXPIRED,
    PAYMENT_SESSION_CANCELED, HOLD_AUTHORIZED, HOLD_CAPTURED, HOLD_VOIDED, HOLD_EXPIRING, REFUND_SUCCEEDED,
    REFUND_FAILED, SUBSCRIPTION_CREATED, SUBSCRIPTION_CANCELED, DISPUTE_OPENED, DISPUTE_CLOSED,
})


def build_body(event_id: str, event_type: str, created_at: str, sequence: int, data: dict) -> str:
    """The event's JSON text: keys ``id, type, created_at, sequence, data`` in that order, compact separators.

    ``created_at`` is an RFC 3339 UTC string; ``data`` must be JSON-serialisable (the session view of §2,
    which never holds a card number or CVC). Non-ASCII text is kept as UTF-8, not escaped.
    Raises ``ValueError`` for an event type not listed in contract §5.
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    payload = {"id": event_id, "type": event_type, "created_at": created_at, "sequence": sequence, "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
