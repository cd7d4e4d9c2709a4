"""A customer-entered amount: ``POST /v1/payment-sessions/{session_id}/amount`` (docs/api.md, "Contact-center
rules").

For a session created with ``amount_range``, a voice flow collects the amount by DTMF (Genesys CE08: "the system
checks if the entered amount is within allowed values before proceeding",
https://all.docs.genesys.com/UseCases/Public/GenesysCloud/CE08) and sets it here before the card. What the caller
keyed is judged, never refused: every answer for a known pending session is HTTP 200 with an ``outcome``, because
a Genesys flow takes its Failure path on any non-2xx and could not tell the caller what to fix. Only a session
that is no longer pending is 409 ``session_not_pending``.
"""

from __future__ import annotations

from typing import Any, Literal

from flask import g, jsonify
from pydantic import ConfigDict, Field

from payments.amount_rules import OUTCOMES

from .. import services
from ..schemas import OpenBody, View
from . import post
from .voice import TAGS


class SetAmount(OpenBody):
    """Body of ``POST /v1/payment-sessions/{session_id}/amount``. The value is judged by the endpoint, not by the
    request model: letters, a sign, decimals, an empty or too long value are an ``invalid`` outcome (HTTP 200)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"amount": "2500"}, {"amount": 2500}]})

    amount: Any = Field(None, json_schema_extra={"type": ["integer", "string", "number", "boolean", "null"]},
                        description="Minor units (USD 2500 = $25.00): an integer, or a string of digits as DTMF "
                                    "gives it.")


class AmountOutcome(View):
    """What was made of the entered amount."""

    outcome: Literal[OUTCOMES] = Field(  # type: ignore[valid-type]
        description="ok (set) · below_minimum · above_maximum · invalid (not an amount, or the amount is fixed).")
    amount: int | None = Field(description="The session's amount after this call (minor units); null until set.")
    entered: int | None = Field(description="The amount understood from the input; null when invalid.")
    min: int | None = Field(description="amount_range.min; null when the session's amount is fixed.")
    max: int | None = Field(description="amount_range.max; null when the session's amount is fixed.")
    currency: str
    message: str = Field(description="Plain words a flow can read to the caller.")


@post("/payment-sessions/<session_id>/amount", operation_id="setPaymentAmount", tags=TAGS,
      ok={200: (AmountOutcome, "The outcome; an amount out of range or not understood is a 200 result.")},
      errors={404: ["session_not_found"], 409: ["session_not_pending"]})
def set_amount(session_id: str, json: SetAmount):
    """Set the amount the customer entered (amount_range sessions).

    Digits as DTMF gives them ("2500") or an integer, in minor units. Outcomes: ok (the amount is stored on the
    session), below_minimum, above_maximum, invalid (also for a session whose amount is fixed). Only a session
    that is processing or finished is 409."""
    return jsonify(services().sessions.set_amount(g.client_id, session_id, json.amount))
