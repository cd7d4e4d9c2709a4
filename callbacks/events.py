"""Event types and the exact JSON text of an event (the webhook body of docs/api.md, "Events").

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
# holds, refunds, disputes, subscriptions (docs/api.md)
HOLD_AUTHORIZED = "hold.authorized"
HOLD_CAPTURED = "hold.captured"
HOLD_VOIDED = "hold.voided"
HOLD_EXPIRING = "hold.expiring"
HOLD_EXPIRED = "hold.expired"
REFUND_SUCCEEDED = "refund.succeeded"
REFUND_FAILED = "refund.failed"
DISPUTE_OPENED = "dispute.opened"
DISPUTE_UPDATED = "dispute.updated"
DISPUTE_CLOSED = "dispute.closed"
SUBSCRIPTION_CREATED = "subscription.created"
SUBSCRIPTION_RENEWED = "subscription.renewed"
SUBSCRIPTION_PAYMENT_FAILED = "subscription.payment_failed"
SUBSCRIPTION_CANCELED = "subscription.canceled"

EVENT_TYPES = frozenset({
    PAYMENT_APPROVED, PAYMENT_DECLINED, PAYMENT_FAILED, PAYMENT_SESSION_REQUIRES_AGENT, PAYMENT_SESSION_EXPIRED,
    PAYMENT_SESSION_CANCELED, HOLD_AUTHORIZED, HOLD_CAPTURED, HOLD_VOIDED, HOLD_EXPIRING, HOLD_EXPIRED,
    REFUND_SUCCEEDED, REFUND_FAILED, DISPUTE_OPENED, DISPUTE_UPDATED, DISPUTE_CLOSED, SUBSCRIPTION_CREATED,
    SUBSCRIPTION_RENEWED, SUBSCRIPTION_PAYMENT_FAILED, SUBSCRIPTION_CANCELED,
})

OBJECTS = frozenset({"payment_session", "payment", "refund", "dispute", "subscription"})
"""What an event's ``data`` is the view of (the body's ``object`` key; docs/api.md, "Events")."""


def build_body(event_id: str, event_type: str, created_at: str, sequence: int, data: dict,
               object_type: str = "payment_session") -> str:
    """The event's JSON text: keys ``id, type, object, created_at, sequence, data`` in that order, compact
    separators.

    ``created_at`` is an RFC 3339 UTC string; ``object_type`` one of :data:`OBJECTS`; ``data`` that object's
    view (JSON-serialisable; never a card number or CVC). Non-ASCII text is kept as UTF-8, not escaped.
    Raises ``ValueError`` for an event type or object not listed in docs/api.md ("Events").
    """
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    if object_type not in OBJECTS:
        raise ValueError(f"unknown event object {object_type!r}")
    payload = {"id": event_id, "type": event_type, "object": object_type, "created_at": created_at,
               "sequence": sequence, "data": data}
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
