"""Subscriptions: recurring charges of a stored token, and the sandbox helper that makes a token's next charges
decline (docs/api.md, "Subscriptions")."""

from __future__ import annotations

from typing import Annotated, Literal

from flask import g, jsonify
from pydantic import ConfigDict, Field

from kernel.errors import NotFound
from payments.models import Subscription as SubscriptionRow
from payments.subscriptions import SubscriptionInput, subscription_view

from .. import services
from ..schemas import (
    PATH_PARAMETERS,
    Body,
    CallbackUrl,
    Currency,
    ErrorCode,
    Metadata,
    MinorUnits,
    RequestDatetime,
    Text200,
    Timestamp,
    View,
)
from . import get, post, required_idempotency_key
from .listing import ListParams, list_answer, page_of

TAGS = ["subscriptions"]
PATH_PARAMETERS.setdefault("subscription_id", "Subscription id (sub_...).")
PATH_PARAMETERS.setdefault("token", "Vault token (tok_...) of this API client.")

SubscriptionStatus = Literal["active", "past_due", "canceled"]
Interval = Literal["day", "week", "month", "year"]


class SubscriptionView(View):
    """The subscription view: ``GET /v1/subscriptions/{subscription_id}``, and the ``data`` of ``subscription.*``
    events."""

    subscription_id: str
    object: Literal["subscription"]
    status: SubscriptionStatus = Field(description="active; past_due after a failed charge (retried on schedule); "
                                                   "canceled (no charge after this).")
    token: str
    amount: int = Field(description="Minor units charged every period.")
    currency: str
    interval: Interval
    interval_count: int
    current_period_start: Timestamp | None = Field(description="Start of the last period paid (null before the "
                                                               "first charge).")
    current_period_end: Timestamp | None
    next_charge_at: Timestamp | None = Field(description="When the next charge (renewal or retry) is made; null "
                                                         "once canceled.")
    failed_attempts: int = Field(description="Failed charges of the period now due.")
    last_payment_id: str | None = Field(description="The payment of the last charge (approved or not).")
    customer_account_id: str
    reference: str | None
    cancel_reason: Literal["requested", "payment_failed"] | None
    created_at: Timestamp
    canceled_at: Timestamp | None
    period: int = Field(description="How many periods have been paid (the first period is 1).")
    session_id: str | None = Field(description="The session whose approval created it, else null.")
    conversation_id: str | None
    participant_id: str | None
    metadata: dict[str, str]
    updated_at: Timestamp


SubscriptionList = page_of(SubscriptionView, "SubscriptionList", "subscriptions")


class SubscriptionsQuery(ListParams):
    """Filters of ``GET /v1/subscriptions`` (besides the paging and created range of every list)."""

    customer_account_id: Text200 | None = None
    status: SubscriptionStatus | None = None
    conversation_id: Text200 | None = None


class CreateSubscription(Body):
    """Body of ``POST /v1/subscriptions``: charge a stored card every period."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"token": "tok_4eC39HqLyjWDarjtT1zdp7dc", "amount": 1999, "currency": "USD", "interval": "month",
         "interval_count": 1, "customer_account_id": "ACME-1001", "reference": "PLAN-PREMIUM"},
        {"token": "tok_4eC39HqLyjWDarjtT1zdp7dc", "amount": 5000, "currency": "EUR", "interval": "year",
         "interval_count": 1, "customer_account_id": "ACME-1001", "start_at": "2027-01-31T00:00:00Z"},
    ]})

    token: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="tok_... of a payment the customer approved (this API client's).")
    amount: Annotated[MinorUnits, ErrorCode("invalid_amount")]
    currency: Currency
    interval: Interval
    interval_count: Annotated[int, Field(ge=1, le=12), ErrorCode("out_of_range")] = Field(
        1, description="Periods of 1 to 12 intervals.")
    customer_account_id: Text200
    reference: Annotated[str, Field(max_length=64)] | None = None
    conversation_id: Text200 | None = None
    participant_id: Text200 | None = None
    start_at: RequestDatetime | None = Field(
        None, description="The first charge and the anchor of the calendar periods (RFC 3339; a time without "
                          "offset is UTC). Default, or a past moment: now, charged in this request.")
    metadata: Metadata | None = None
    callback_url: CallbackUrl | None = Field(
        None, json_schema_extra={"format": "uri"}, description="Where this subscription's events go (default: "
                                                               "the API client's endpoint).")


class Cancel(Body):
    """Body of ``POST /v1/subscriptions/{subscription_id}/cancel`` (empty)."""


class DeclineNext(Body):
    """Body of ``POST /v1/sandbox/tokens/{token}/decline_next``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"count": 1}, {"count": 4, "decline_code":
                                                                             "card_declined"}]})

    count: Annotated[int, Field(ge=1, le=100), ErrorCode("out_of_range")] = Field(
        description="How many of the token's next merchant-initiated charges decline (1 to 100).")
    decline_code: Annotated[str, Field(min_length=1, max_length=60, pattern="^[a-z0-9_]+$")] = Field(
        "insufficient_funds", description="The decline code they report (Stripe's values).")


class DeclineNextView(View):
    """What the sandbox will do with the token's next merchant-initiated charges."""

    token: str
    count: int
    decline_code: str


@get("/subscriptions/<subscription_id>", operation_id="getSubscription", tags=TAGS,
     ok={200: (SubscriptionView, "The subscription view.")}, errors={404: ["subscription_not_found"]})
def get_subscription(subscription_id: str):
    """Read a subscription."""
    return jsonify(subscription_view(services().subscriptions.get(g.client_id, subscription_id)))


@get("/subscriptions", operation_id="listSubscriptions", tags=TAGS,
     ok={200: (SubscriptionList, "Subscriptions, newest first.")})
def list_subscriptions(query: SubscriptionsQuery):
    """List subscriptions.

    Filters combine; only the calling client's subscriptions are listed. Renewal payments are listed by
    `GET /v1/payments?subscription_id=`."""
    return list_answer(SubscriptionRow, subscription_view, query)


@post("/subscriptions", operation_id="createSubscription", tags=TAGS,
      ok={201: (SubscriptionView, "Created (a declined first charge is status past_due, not an error)."),
          200: (SubscriptionView, "This Idempotency-Key made a subscription before: it as it is now.")},
      errors={400: ["idempotency_key_required", "currency_not_allowed", "amount_below_minimum",
                   "callback_url_not_allowed"],
              404: ["token_not_found"]})
def create_subscription(json: CreateSubscription):
    """Subscribe a stored card.

    The token must belong to this API client and come from a payment the customer approved. The
    `Idempotency-Key` header is required: the same key always finds the same subscription, so nothing is
    charged twice. Without `start_at` (or with a past one) the first period is charged now and the answer
    shows its result; otherwise the first charge is at `start_at`."""
    key = required_idempotency_key()
    sub, created = services().subscriptions.create_from_token(g.client_id, SubscriptionInput(
        token=json.token, amount=json.amount, currency=json.currency, interval=json.interval,
        interval_count=json.interval_count, customer_account_id=json.customer_account_id,
        reference=json.reference or None, conversation_id=json.conversation_id, participant_id=json.participant_id,
        start_at=json.start_at, metadata=json.metadata or {}, callback_url=json.callback_url), key)
    return jsonify(subscription_view(sub)), 201 if created else 200


@post("/subscriptions/<subscription_id>/cancel", operation_id="cancelSubscription", tags=TAGS,
      ok={200: (SubscriptionView, "Canceled (subscription.canceled), or already canceled.")},
      errors={404: ["subscription_not_found"]})
def cancel_subscription(subscription_id: str, json: Cancel):
    """Cancel a subscription.

    No charge is made after this; canceling again answers the canceled subscription."""
    return jsonify(subscription_view(services().subscriptions.cancel(g.client_id, subscription_id)))


@post("/sandbox/tokens/<token>/decline_next", operation_id="declineNextSandboxCharges", tags=["sandbox"],
      ok={200: (DeclineNextView, "The token's next merchant-initiated charges will decline.")},
      errors={404: ["token_not_found", "not_found"]})
def decline_next(token: str, json: DeclineNext):
    """Make a token's next charges decline (sandbox only).

    The next `count` merchant-initiated charges of the token (renewals, retries, `POST /v1/payments`) decline
    with `decline_code`, so failed renewals and their recovery can be tested and shown. 404 in production or
    with another gateway."""
    svc = services()
    if svc.sandbox_clock is None:
        raise NotFound("The sandbox helpers exist only with the sandbox gateway outside production.",
                       code="not_found")
    count = svc.subscriptions.sandbox_decline_next(g.client_id, token, json.count, json.decline_code)
    return jsonify({"token": token, "count": count, "decline_code": json.decline_code})
