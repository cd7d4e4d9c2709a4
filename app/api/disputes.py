"""Disputes (chargebacks) reported by the gateway, and the sandbox's helpers: the business clock and closing a
dispute (docs/api.md, "Disputes", "Sandbox")."""

from __future__ import annotations

import time
from typing import Annotated, Literal

from flask import g, jsonify
from pydantic import ConfigDict, Field

from kernel.clock import rfc3339
from kernel.errors import NotFound
from payments.models import Dispute as DisputeRow
from payments.sandbox_clock import MAX_ADVANCE_SECONDS
from payments.views import dispute_view
from tokenizer.gateways.stripe_webhooks import sign_payload

from .. import services
from ..schemas import PATH_PARAMETERS, Body, ErrorCode, Timestamp, View
from . import get, post
from .listing import ListParams, list_answer, page_of

TAGS = ["disputes"]
PATH_PARAMETERS.setdefault("dispute_id", "Dispute id (dsp_...).")


class DisputeView(View):
    """The dispute view: ``GET /v1/disputes/{dispute_id}``, and the ``data`` of ``dispute.*`` events."""

    dispute_id: str
    object: Literal["dispute"]
    payment_id: str
    status: str = Field(description="Stripe's value: warning_needs_response, warning_under_review, warning_closed, "
                                     "needs_response, under_review, won, lost, prevented.")
    reason: str = Field(description="Stripe's value (fraudulent, product_not_received, duplicate, ...).")
    amount: int
    currency: str
    evidence_due_by: Timestamp | None
    gateway_reference: str
    conversation_id: str | None
    customer_account_id: str | None
    created_at: Timestamp
    updated_at: Timestamp


DisputeList = page_of(DisputeView, "DisputeList", "disputes")


class DisputesQuery(ListParams):
    """Filters of ``GET /v1/disputes``."""

    payment_id: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    status: Annotated[str, Field(min_length=1, max_length=40)] | None = None


class AdvanceClock(Body):
    """Body of ``POST /v1/sandbox/clock``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"advance_seconds": 604800}]})

    advance_seconds: Annotated[int, Field(ge=1, le=MAX_ADVANCE_SECONDS), ErrorCode("out_of_range")] = Field(
        description="Seconds to move business time forward (1 to 31536000).")


class ClockNow(View):
    """The sandbox's business time after the move."""

    now: Timestamp


class CloseDispute(Body):
    """Body of ``POST /v1/sandbox/disputes/{dispute_id}/close``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "won"}, {"status": "lost"}]})

    status: Literal["won", "lost"]


def _sandbox():
    svc = services()
    if svc.sandbox_clock is None or not hasattr(svc.gateway, "close_dispute"):
        raise NotFound("The sandbox helpers exist only with the sandbox gateway outside production.",
                       code="not_found")
    return svc


@get("/disputes/<dispute_id>", operation_id="getDispute", tags=TAGS, ok={200: (DisputeView, "The dispute view.")},
     errors={404: ["dispute_not_found"]})
def get_dispute(dispute_id: str):
    """Read a dispute."""
    return jsonify(dispute_view(services().disputes.get(g.client_id, dispute_id)))


@get("/disputes", operation_id="listDisputes", tags=TAGS, ok={200: (DisputeList, "Disputes, newest first.")})
def list_disputes(query: DisputesQuery):
    """List disputes."""
    return list_answer(DisputeRow, dispute_view, query)


@post("/sandbox/clock", operation_id="advanceSandboxClock", tags=["sandbox"],
      ok={200: (ClockNow, "Business time moved.")}, errors={404: ["not_found"]})
def advance_clock(json: AdvanceClock):
    """Move business time forward (sandbox only).

    Like Stripe's test clocks, for the whole deployment: session expiry, hold lapse and the sandbox's dispute
    delay follow it. 404 in production or with another gateway."""
    svc = _sandbox()
    return jsonify({"now": rfc3339(svc.sandbox_clock.advance(json.advance_seconds))})


@post("/sandbox/disputes/<dispute_id>/close", operation_id="closeSandboxDispute", tags=["sandbox"],
      ok={200: (DisputeView, "Closed, through the signed webhook path (dispute.closed).")},
      errors={404: ["dispute_not_found", "not_found"]})
def close_dispute(dispute_id: str, json: CloseDispute):
    """Close a dispute as won or lost (sandbox only), the way Stripe's charge.dispute.closed would."""
    svc = _sandbox()
    secret = svc.settings.stripe_webhook_secret or ""
    dispute = svc.disputes.sandbox_close(g.client_id, dispute_id, json.status,
                                         sign=lambda payload: sign_payload(payload, secret, int(time.time())))
    return jsonify(dispute_view(dispute))
