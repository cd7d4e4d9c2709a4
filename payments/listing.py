"""Lists with filters and cursor pagination, one shape for payments, sessions, refunds and disputes
(docs/api.md, "Lists").

``{"data": [views, newest first], "has_more": bool}``; ``limit`` 1–100 (default 20); ``starting_after`` is the
id of the last object of the previous page, as Stripe paginates (https://docs.stripe.com/api/pagination).
Order: ``created_at`` descending, then id descending, so objects created in the same second keep a stable
order across pages. Only the calling client's objects are ever listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import sessionmaker

from kernel.clock import naive_utc
from kernel.errors import ValidationFailed

from .models import Dispute, Payment, PaymentSession, Refund, Subscription

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

FILTERS: dict[type, tuple[str, ...]] = {
    Payment: ("conversation_id", "customer_account_id", "session_id", "subscription_id", "intent", "status"),
    PaymentSession: ("conversation_id", "customer_account_id", "status"),
    Refund: ("payment_id", "conversation_id", "status", "manual_review"),
    Dispute: ("payment_id", "status"),
    Subscription: ("customer_account_id", "status", "conversation_id"),
}
"""Which equality filters each list takes (besides ``created_after`` / ``created_before``)."""


@dataclass(frozen=True)
class ListQuery:
    """One list request: equality ``filters`` (names from :data:`FILTERS`), an optional created range
    (aware or naive UTC; ``created_after`` exclusive, ``created_before`` exclusive), ``limit`` and the
    ``starting_after`` cursor."""

    filters: dict[str, Any]
    created_after: datetime | None = None
    created_before: datetime | None = None
    limit: int = DEFAULT_LIMIT
    starting_after: str | None = None


def list_objects(Session: sessionmaker, model: type, client_id: str, query: ListQuery) -> tuple[list, bool]:
    """``(rows, has_more)`` of ``model`` for ``client_id``. Raises :class:`ValidationFailed` (field
    ``starting_after``: ``not_found``) for a cursor that is not one of this client's objects, and
    ``ValueError`` for a filter the model does not take."""
    limit = max(1, min(MAX_LIMIT, query.limit))
    unknown = set(query.filters) - set(FILTERS[model])
    if unknown:
        raise ValueError(f"unknown filters {sorted(unknown)}")
    stmt = select(model).where(model.client_id == client_id)
    for name, value in query.filters.items():
        if value is not None:
            stmt = stmt.where(getattr(model, name) == value)
    if query.created_after is not None:
        stmt = stmt.where(model.created_at > naive_utc(query.created_after))
    if query.created_before is not None:
        stmt = stmt.where(model.created_at < naive_utc(query.created_before))
    with Session() as db:
        if query.starting_after:
            cursor = db.get(model, query.starting_after)
            if cursor is None or cursor.client_id != client_id:
                raise ValidationFailed("starting_after is not an object of this list.",
                                       details={"fields": {"starting_after": "not_found"}})
            stmt = stmt.where(or_(model.created_at < cursor.created_at,
                                  and_(model.created_at == cursor.created_at, model.id < cursor.id)))
        rows = list(db.scalars(stmt.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit
