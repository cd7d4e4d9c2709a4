"""Voice entry: card digits keyed by DTMF in a Genesys secure flow, sent server to server.

The card fields are judged by the domain (:func:`tokenizer.cards.validate_card`), not by the request
model: a malformed number, expiry or CVC is an HTTP 200 ``outcome: "invalid"`` with ``field_errors``,
because a Genesys flow takes its Failure path on any non-2xx and cannot read why. So the model of
``POST .../card`` only fixes the JSON types it accepts (a string or an integer, or null).
"""

from __future__ import annotations

from typing import Annotated, Literal

from flask import g, jsonify
from pydantic import ConfigDict, Field
from spectree import Tag

from payments.submission import CardInput
from tokenizer.cards import inspect_number

from .. import services
from ..schemas import SESSION_STATUSES, Body, ErrorCode, OpenBody, View
from . import post

TAGS = [Tag(name="voice", description="Card entry by DTMF from a Genesys secure flow, server to server.")]
OUTCOMES = ("approved", "declined", "invalid", "requires_agent", "failed", "processing", "busy", "expired",
            "canceled")
"""``outcome`` of a card submission: :class:`payments.submission.SubmitResult`'s, plus ``busy`` (another
payment of the same customer is processing: nothing was tried)."""


class InspectCard(Body):
    """Body of ``POST /v1/cards/inspect``: the digits keyed so far."""

    model_config = ConfigDict(extra="ignore", json_schema_extra={"examples": [{"number": "378282246310005"},
                                                                               {"number": "424242"}]})

    number: Annotated[str, Field(pattern="^[0-9]{6,19}$"), ErrorCode("invalid_number")] = Field(
        repr=False, description="6 to 19 digits, digits only.")


class CardInspection(View):
    """What the flow has to ask for this card."""

    brand: str | None = Field(description="null when the digits match no known brand.")
    allowed: bool = Field(description="Whether this deployment accepts the brand.")
    pan_lengths: list[int] = Field(description="Card number lengths the brand uses.")
    cvc_length: int | None
    requires_expiry: bool
    requires_cvc: bool
    luhn_valid: bool | None = Field(description="null while fewer digits than the brand's shortest length "
                                                "were given.")


class SubmitCard(OpenBody):
    """Body of ``POST /v1/payment-sessions/{session_id}/card``. A missing or malformed value is an
    ``invalid`` outcome with ``field_errors`` (HTTP 200), not a 400."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"number": "378282246310005", "exp_month": "12", "exp_year": "30", "cvc": "1234",
         "ani": "tel:+13175550100", "call_id": "5e2bd4f7-7a3f-4f0e-9a53-0d3c1f0b8e21"},
        {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123",
         "cardholder_name": "Ada Lovelace"},
    ]})

    number: str | int | None = Field(None, repr=False, description="The card number's digits.")
    exp_month: str | int | None = Field(None, repr=False, description="1 to 12; DTMF gives a string.")
    exp_year: str | int | None = Field(None, repr=False, description="2 or 4 digits.")
    cvc: str | int | None = Field(None, repr=False, description="As many digits as cvc_length from inspect.")
    cardholder_name: str | None = Field(None, repr=False, description="Optional.")
    ani: str | None = Field(None, description=(
        "Optional: the caller's number as Genesys's Call.Ani gives it: E.164 (+13175550100) or a tel: or sip: URI "
        "holding one (tel:+13175550100, sip:+13175550100@host;user=phone). Kept in E.164 and counted by the "
        "fraud screen per caller (attempts and distinct cards per hour). A value that is not such a number "
        "(anonymous, a national number without +) is not an error: the card is processed and no caller is "
        "counted."))
    call_id: Annotated[str, Field(max_length=200)] | None = Field(
        None, description="Optional: the Genesys conversation or call id, kept with the attempt (empty: none).")


class CardOutcome(View):
    """The result of a card submission: business outcomes are 200 results."""

    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    status: Literal[SESSION_STATUSES]  # type: ignore[valid-type]
    token: str | None
    card_brand: str | None
    card_last4: str | None
    decline_code: str | None
    message: str | None
    field_errors: dict[str, str] = Field(description="For outcome invalid: field → code (number "
                                                     "invalid_number / incorrect_number / unsupported_brand, "
                                                     "exp_month invalid_expiry_month, exp_year expired_card, "
                                                     "cvc invalid_cvc, any of them required; amount "
                                                     "amount_required before a customer-entered amount is set).")
    attempts_remaining: int


@post("/cards/inspect", operation_id="inspectCard", tags=TAGS, ok={200: (CardInspection, "What to ask for this card.")})
def inspect_card(json: InspectCard):
    """Inspect a card number: brand, lengths, CVC length, Luhn so far.

    Lets a voice flow ask only the questions this card needs."""
    return jsonify(inspect_number(json.number, services().settings.allowed_brands))


@post("/payment-sessions/<session_id>/card", operation_id="submitCard", tags=TAGS,
      ok={200: (CardOutcome, "The outcome; declines, fraud blocks and invalid cards are 200 results.")},
      errors={404: ["session_not_found"]})
def submit_card(session_id: str, json: SubmitCard):
    """Submit a card for a payment session.

    The same processing, locking, fraud screening and events as the hosted page."""
    result = services().payments.submit(
        session_id, CardInput(json.number, json.exp_month, json.exp_year, json.cvc, json.cardholder_name),
        source="voice", client_ip=None, client_id=g.client_id, ani=json.ani, call_id=json.call_id or None)
    s = result.session
    return jsonify({"outcome": result.outcome, "status": s.status, "token": s.token, "card_brand": s.card_brand,
                    "card_last4": s.card_last4, "decline_code": s.decline_code, "message": result.message or s.message,
                    "field_errors": result.field_errors, "attempts_remaining": result.attempts_remaining})
