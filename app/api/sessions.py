"""Payment sessions (the checkout link): create, read, cancel, and text the link (send-link)."""

from __future__ import annotations

from typing import Annotated, Literal

from flask import g, jsonify
from pydantic import AfterValidator, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from spectree import Tag

from integrations.genesys.messaging import MESSENGER_TYPES, message_address
from kernel.i18n import TAG_PATTERN
from kernel.phone import MAX_INPUT_LENGTH
from payments.models import CHANNELS, INTENTS
from payments.models import PaymentSession as SessionRow
from payments.sessions import session_view

from .. import services
from ..schemas import Body, Currency, ErrorCode, Metadata, MinorUnits, PaymentSession, SessionStatus, Timestamp, View
from . import get, post
from .listing import ListParams, list_answer, page_of

TAGS = [Tag(name="payment sessions", description="Checkout links: create, read, cancel, text to the customer.")]
LOCALE_PATTERN = TAG_PATTERN
"""A BCP 47 language tag's shape (RFC 5646): language, then subtags (``en``, ``pt-BR``, ``zh-Hant-TW``); the page
serves its best shipped match (docs/api.md, "Languages")."""

RequiredText = Annotated[str, Field(min_length=1, max_length=200), ErrorCode(string_too_short="required")]
OptionalText = Annotated[str, Field(max_length=200)] | None
Amount = Annotated[MinorUnits, ErrorCode("invalid_amount")]


class AmountRangeRequest(Body):
    """``amount_range`` of ``POST /v1/payment-sessions``: the customer enters the amount, ``min`` to ``max``
    inclusive (minor units). ``min`` ≤ ``max`` (``invalid_range`` otherwise) and ``min`` at least the configured
    minimum of the currency (``amount_below_minimum``)."""

    min: Amount
    max: Amount


class SubscriptionTerms(Body):
    """``subscription`` of ``POST /v1/payment-sessions`` (only with ``intent: "subscription"``): what the
    approval enrolls the customer in. The first period is charged by the approval itself."""

    interval: Literal["day", "week", "month", "year"]
    interval_count: Annotated[int, Field(ge=1, le=12), ErrorCode("out_of_range")] = Field(
        1, description="Periods between charges, 1 to 12 (default 1).")
    amount: Amount | None = Field(None, description="Minor units of each renewal; null: the session's amount.")


class CreatePaymentSession(Body):
    """Body of ``POST /v1/payment-sessions``: what the payment is for and where its results go."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"conversation_id": "c-123", "participant_id": "p-9", "customer_account_id": "ACME-1001",
         "intent": "payment", "amount": 2500, "currency": "USD", "channel": "messaging", "reference": "INV-991",
         "locale": "en-US", "ttl_seconds": 900, "metadata": {"crm_case": "42"}},
        {"conversation_id": "c-124", "customer_account_id": "ACME-1002", "amount": 2500, "currency": "JPY"},
        {"conversation_id": "c-125", "customer_account_id": "ACME-1003", "intent": "topup", "currency": "USD",
         "amount_range": {"min": 500, "max": 20000}, "amount": 2000, "channel": "voice", "max_attempts": 2},
        {"conversation_id": "c-126", "customer_account_id": "ACME-1004", "intent": "subscription", "amount": 1500,
         "currency": "USD", "subscription": {"interval": "month", "interval_count": 1}},
    ], "anyOf": [{"required": ["amount"]}, {"required": ["amount_range"]}]})

    conversation_id: RequiredText = Field(description="Genesys conversation id the payment belongs to.")
    participant_id: OptionalText = Field(
        None, description="The customer participant, for writing results back to the conversation.")
    customer_account_id: RequiredText = Field(description="The account in the billing system or CRM.")
    intent: Literal[(*INTENTS, "")] | None = Field(  # type: ignore[valid-type]
        "payment", description="What approval means; empty or null is the default, payment.")
    amount_range: AmountRangeRequest | None = Field(
        None, description="Let the customer enter the amount, within these bounds (the page shows an amount field; "
                          "a voice flow sets it with POST .../amount). amount is then optional: a suggestion.")
    amount: Amount | None = Field(
        None, validate_default=True,
        description="Minor units. Required unless amount_range is given; then within it, as the suggested value.")
    currency: Currency
    channel: Literal[CHANNELS] | None = Field(  # type: ignore[valid-type]
        None, description="How the customer reached the contact center.")
    reference: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="Your own order, invoice or dispute id.")
    callback_url: Annotated[str, Field(max_length=2000, pattern="^$|^https?://[^/?#\\s]+"),
                            ErrorCode(string_pattern_mismatch="invalid_url")] | None = Field(
        None, json_schema_extra={"format": "uri"},
        description="Where this session's events are POSTed (empty or null: the API client's endpoint). https; "
                    "plain http only to loopback hosts in production (invalid_url otherwise).")
    locale: Annotated[str, Field(max_length=35, pattern=f"^$|{LOCALE_PATTERN}"),
                      ErrorCode(string_pattern_mismatch="invalid_locale",
                                string_too_long="invalid_locale")] | None = Field(
        None, description="BCP 47 language of the checkout page and the SMS (en-US, es-MX, pt-BR, ar): served in its "
                          "best match among en, es, fr, de, pt-BR and ar, else en; empty or null: the browser's "
                          "Accept-Language. Malformed: invalid_locale.")
    ttl_seconds: Annotated[int, Field(ge=60, le=86400), ErrorCode("out_of_range")] | None = Field(
        None, description="Link lifetime in seconds; null: the configured default (900).")
    metadata: Metadata | None = Field(
        None, description="Up to 50 string values (keys ≤ 40, values ≤ 500 characters), echoed in every event.")
    max_attempts: Annotated[int, Field(ge=1, le=10), ErrorCode("out_of_range")] | None = Field(
        None, description="Card attempts before an agent takes over, 1 to 10; null: PAYGATE_MAX_ATTEMPTS (3).")
    subscription: SubscriptionTerms | None = Field(
        None, description="Only with intent subscription (requires_subscription_intent otherwise); that intent "
                          "without it is monthly: {\"interval\": \"month\", \"interval_count\": 1}.")

    @field_validator("participant_id", "intent", "reference", "callback_url", "locale")
    @classmethod
    def _empty_is_absent(cls, value: str | None) -> str | None:
        return value or None  # as before the models: an empty optional string means "not given"

    @field_validator("amount")
    @classmethod
    def _amount_or_range(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is None and info.data.get("amount_range", False) is None:  # False: amount_range was invalid
            raise PydanticCustomError("missing", "amount is required unless amount_range is given")
        return value


class PaymentSessionCreated(View):
    """The 201 answer of ``POST /v1/payment-sessions``."""

    session_id: str
    status: Literal["pending"]
    checkout_url: str = Field(json_schema_extra={"format": "uri"},
                              description="Signed, unguessable link to send to the customer.")
    agent_url: str = Field(json_schema_extra={"format": "uri"},
                           description="Signed, expiring status page for the agent's Script; never shows card data.")
    expires_at: Timestamp
    conversation_id: str
    intent: str
    amount: int | None = Field(description="Minor units; null until the customer enters it (amount_range).")
    currency: str


class SendLink(Body):
    """Body of ``POST /v1/payment-sessions/{session_id}/send-link``."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"to": "+15551234567", "messenger_type": "sms"},
        {"to": "+15551234567", "messenger_type": "whatsapp", "from_address": "wa-integration-1"},
        {"to": "tel:+13175550100", "messenger_type": "sms"},
    ]})

    to: Annotated[str, Field(min_length=1, max_length=MAX_INPUT_LENGTH), AfterValidator(message_address),
                  ErrorCode("invalid_phone_number")] = Field(
        description="The customer's number: E.164 (+13175550100), or a tel: or sip: URI holding one as "
                    "Genesys's Call.Ani gives it (tel:+13175550100, sip:+13175550100@host;user=phone); spaces "
                    "and - . ( ) separators are ignored. A number without + is refused (no region is guessed). "
                    "Normalized to E.164, which the answer's to echoes (for WhatsApp it is sent without the +).")
    messenger_type: Literal[MESSENGER_TYPES]  # type: ignore[valid-type]
    from_address: Annotated[str, Field(min_length=1, max_length=200, pattern="\\S"), ErrorCode("invalid")] \
        | None = Field(None, description="Genesys SMS number or WhatsApp integration id; for SMS defaults to "
                                         "the client's configured SMS sender (required otherwise).")


class LinkSent(View):
    """Genesys accepted the message."""

    sent: Literal[True]
    message_id: str = Field(description="Genesys agentless message id.")
    to: str
    messenger_type: Literal[MESSENGER_TYPES]  # type: ignore[valid-type]


@post("/payment-sessions", operation_id="createPaymentSession", tags=TAGS,
      ok={201: (PaymentSessionCreated, "Created; send checkout_url to the customer.")},
      errors={400: ["currency_not_allowed", "amount_below_minimum", "callback_url_not_allowed"]})
def create_session(json: CreatePaymentSession):
    """Create a payment session (a checkout link).

    With amount_range the customer enters the amount (the page's amount field, or POST .../amount by voice).
    The amount rules apply: currency_not_allowed (PAYGATE_ALLOWED_CURRENCIES), amount_below_minimum
    (PAYGATE_MIN_AMOUNTS) for amount, amount_range.min and subscription.amount."""
    svc = services()
    s = svc.sessions.create(g.client_id, json.model_dump())
    return jsonify(svc.sessions.created_view(s)), 201


PaymentSessionList = page_of(PaymentSession, "PaymentSessionList", "payment sessions")


class PaymentSessionsQuery(ListParams):
    """Filters of ``GET /v1/payment-sessions`` (besides the paging and created range of every list)."""

    conversation_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    customer_account_id: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    status: SessionStatus | None = None


@get("/payment-sessions", operation_id="listPaymentSessions", tags=TAGS,
     ok={200: (PaymentSessionList, "Payment sessions, newest first.")})
def list_sessions(query: PaymentSessionsQuery):
    """List payment sessions.

    For example a conversation's sessions, or a customer's sessions still processing."""
    return list_answer(SessionRow, session_view, query)


@get("/payment-sessions/<session_id>", operation_id="getPaymentSession", tags=TAGS,
     ok={200: (PaymentSession, "The session view.")}, errors={404: ["session_not_found"]})
def get_session(session_id: str):
    """Read a payment session.

    A pending session past its expiry is expired by this read."""
    return jsonify(session_view(services().sessions.get(g.client_id, session_id)))


@post("/payment-sessions/<session_id>/cancel", operation_id="cancelPaymentSession", tags=TAGS,
      ok={200: (PaymentSession, "Canceled (also when it already was).")},
      errors={404: ["session_not_found"], 409: ["session_not_cancelable"]})
def cancel_session(session_id: str):
    """Cancel a pending payment session.

    Safe to repeat; a session that is processing or already finished otherwise is 409."""
    return jsonify(session_view(services().sessions.cancel(g.client_id, session_id)))


@post("/payment-sessions/<session_id>/send-link", operation_id="sendPaymentLink", tags=TAGS,
      ok={200: (LinkSent, "Genesys accepted the message.")}, rate_limited=True,
      errors={404: ["session_not_found"], 409: ["session_not_pending", "genesys_not_configured"],
              502: ["genesys_unavailable"]})
def send_link(session_id: str, json: SendLink):
    """Text the checkout link through Genesys agentless messaging (SMS ≤ 765 characters).

    Needs the API client's Genesys settings. Only for pending sessions; at most 3 sends per session in
    10 minutes (429 rate_limited with Retry-After)."""
    sent = services().link_sender.send(g.client_id, session_id, to=json.to, messenger_type=json.messenger_type,
                                       from_address=json.from_address)
    return jsonify(sent.as_dict())
