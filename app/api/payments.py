"""Payments: read and list them, merchant-initiated charges on a stored token, capture and void of holds
(docs/api.md, "Payments", "Holds", "Merchant-initiated charges")."""

from __future__ import annotations

from typing import Annotated, Literal

from flask import g, jsonify
from pydantic import ConfigDict, Field

from payments.merchant import MerchantChargeInput
from payments.models import Payment as PaymentRow
from payments.states import PaymentStatus
from payments.views import payment_view

from .. import services
from ..schemas import (
    PATH_PARAMETERS,
    Body,
    CallbackUrl,
    Currency,
    ErrorCode,
    Metadata,
    MinorUnits,
    Text200,
    Timestamp,
    View,
)
from . import get, post, required_idempotency_key
from .listing import ListParams, list_answer, page_of

TAGS = ["payments"]
PATH_PARAMETERS.setdefault("payment_id", "Payment id (pay_...).")

PaymentStatusName = Literal[tuple(s.value for s in PaymentStatus)]  # type: ignore[valid-type]


class CardView(View):
    """What is shown of a card: brand, last four digits, expiry and fingerprint; never more."""

    brand: str
    last4: str
    exp_month: int | None
    exp_year: int | None
    fingerprint: str | None


class PaymentView(View):
    """The payment view: ``GET /v1/payments/{payment_id}``, and the ``data`` of ``hold.*`` and
    merchant-initiated ``payment.*`` events."""

    payment_id: str
    object: Literal["payment"]
    session_id: str | None = Field(description="null for a merchant-initiated payment.")
    status: PaymentStatusName = Field(description="authorized (held), captured, partially_refunded, refunded, "
                                                  "voided, expired (a hold that lapsed), declined, failed, "
                                                  "processing (the gateway's answer is not known yet).")
    intent: str
    amount: int = Field(description="Minor units authorized.")
    amount_capturable: int = Field(description="Minor units still held.")
    amount_captured: int
    amount_refunded: int = Field(description="Minor units given back by succeeded refunds.")
    currency: str
    token: str
    card: CardView | None
    gateway: str
    gateway_reference: str | None
    capture_before: Timestamp | None = Field(description="When an uncaptured hold lapses.")
    conversation_id: str | None
    participant_id: str | None
    customer_account_id: str | None
    reference: str | None
    subscription_id: str | None
    dispute_id: str | None
    decline_code: str | None
    message: str | None
    initiator: Literal["customer", "merchant"]
    entry_mode: Literal["page", "dtmf", "stored"] = Field(
        description="How the card was entered: page (the hosted checkout page), dtmf (keyed on the phone in a "
                    "voice flow), stored (a merchant-initiated charge of a saved token).")
    moto: bool = Field(description="Sent to the gateway as a mail-order/telephone-order payment: DTMF entry "
                                   "with PAYGATE_STRIPE_MOTO on Stripe, and every DTMF entry in the sandbox.")
    metadata: dict[str, str]
    pending_operation: Literal["capture", "void", "lapse"] | None = Field(
        description="A capture or void whose gateway answer is not known yet (reconciled by paygate; the same "
                    "request retried with the same Idempotency-Key settles it at once).")
    created_at: Timestamp
    updated_at: Timestamp


PaymentList = page_of(PaymentView, "PaymentList", "payments")


class PaymentsQuery(ListParams):
    """Filters of ``GET /v1/payments`` (besides the paging and created range of every list)."""

    conversation_id: Text200 | None = None
    customer_account_id: Text200 | None = None
    session_id: Text200 | None = None
    subscription_id: Text200 | None = None
    intent: Literal["payment", "topup", "subscription", "hold"] | None = None
    status: PaymentStatusName | None = None


class MerchantCharge(Body):
    """Body of ``POST /v1/payments``: charge a stored card without the customer present."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"token": "tok_4eC39HqLyjWDarjtT1zdp7dc", "amount": 1200, "currency": "USD",
         "customer_account_id": "ACME-1001", "reference": "RENEWAL-2027-01"},
        {"token": "tok_4eC39HqLyjWDarjtT1zdp7dc", "amount": 5000, "currency": "EUR", "capture": False,
         "customer_account_id": "ACME-1001", "conversation_id": "c-123", "metadata": {"reason": "deposit"}},
    ]})

    token: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="tok_... of a payment the customer approved (this API client's).")
    amount: Annotated[MinorUnits, ErrorCode("invalid_amount")]
    currency: Currency
    capture: bool = Field(True, description="false places a hold (capture or void it later).")
    customer_account_id: Text200
    conversation_id: Text200 | None = None
    participant_id: Text200 | None = None
    reference: Annotated[str, Field(max_length=64)] | None = None
    metadata: Metadata | None = None
    callback_url: CallbackUrl | None = Field(
        None, json_schema_extra={"format": "uri"}, description="Where this payment's events go (default: the "
                                                               "API client's endpoint).")


class Capture(Body):
    """Body of ``POST /v1/payments/{payment_id}/capture`` (may be empty)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{}, {"amount": 1000}]})

    amount: Annotated[MinorUnits, ErrorCode("invalid_amount")] | None = Field(
        None, description="Minor units to capture; default all that is held. Less releases the rest.")


class Void(Body):
    """Body of ``POST /v1/payments/{payment_id}/void`` (empty)."""


def _capture_or_void_answer(outcome):
    return jsonify(payment_view(outcome.payment)), 202 if outcome.pending else 200


@get("/payments/<payment_id>", operation_id="getPayment", tags=TAGS, ok={200: (PaymentView, "The payment view.")},
     errors={404: ["payment_not_found"]})
def get_payment(payment_id: str):
    """Read a payment."""
    return jsonify(payment_view(services().holds.get(g.client_id, payment_id)))


@get("/payments", operation_id="listPayments", tags=TAGS, ok={200: (PaymentList, "Payments, newest first.")})
def list_payments(query: PaymentsQuery):
    """List payments.

    Filters combine; only the calling client's payments are listed."""
    return list_answer(PaymentRow, payment_view, query)


@post("/payments", operation_id="createPayment", tags=TAGS,
      ok={201: (PaymentView, "Created (a decline is status declined, not an error)."),
          200: (PaymentView, "This Idempotency-Key made a payment before: that payment as it is now.")},
      errors={400: ["idempotency_key_required", "currency_not_allowed", "amount_below_minimum",
                   "callback_url_not_allowed"],
              404: ["token_not_found"]})
def create_payment(json: MerchantCharge):
    """Charge a stored card (merchant-initiated).

    The token must belong to this API client and come from a payment the customer approved. The
    `Idempotency-Key` header is required: the same key always finds the same payment, so the card is never
    charged twice. With `capture: false` the card is held (hold.authorized)."""
    key = required_idempotency_key()
    p, created = services().merchant.create(g.client_id, MerchantChargeInput(
        token=json.token, amount=json.amount, currency=json.currency, capture=json.capture,
        customer_account_id=json.customer_account_id, conversation_id=json.conversation_id,
        participant_id=json.participant_id, reference=json.reference or None, metadata=json.metadata or {},
        callback_url=json.callback_url), key)
    return jsonify(payment_view(p)), 201 if created else 200


@post("/payments/<payment_id>/capture", operation_id="capturePayment", tags=TAGS + ["holds"],
      ok={200: (PaymentView, "Captured (hold.captured)."),
          202: (PaymentView, "The gateway's answer is not known yet: pending_operation is capture. Retry the same "
                             "request with the same Idempotency-Key, or wait for hold.captured.")},
      errors={404: ["payment_not_found"], 409: ["payment_not_capturable", "operation_in_progress"],
              422: ["amount_exceeds_capturable"]})
def capture_payment(payment_id: str, json: Capture):
    """Capture a hold, in full or in part.

    Only an authorized payment can be captured; capturing less than is held releases the rest, as the
    gateway's partial capture does. paygate never captures on its own."""
    return _capture_or_void_answer(services().holds.capture(g.client_id, payment_id, json.amount))


@post("/payments/<payment_id>/void", operation_id="voidPayment", tags=TAGS + ["holds"],
      ok={200: (PaymentView, "Voided (hold.voided)."),
          202: (PaymentView, "The gateway's answer is not known yet: pending_operation is void.")},
      errors={404: ["payment_not_found"], 409: ["payment_not_voidable", "operation_in_progress"]})
def void_payment(payment_id: str, json: Void):
    """Release a hold."""
    return _capture_or_void_answer(services().holds.void(g.client_id, payment_id))
