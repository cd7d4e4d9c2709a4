"""Refunds by disposition and their review queue (docs/api.md, "Refunds")."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import g, jsonify
from pydantic import ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from kernel.errors import ValidationFailed
from kernel.money import parse_minor_units
from payments.models import Refund as RefundRow
from payments.refunds import REASONS, RefundInput
from payments.views import refund_view

from .. import error_response, services
from ..schemas import PATH_PARAMETERS, Body, CallbackUrl, Metadata, Text200, Timestamp, View
from . import get, post
from .listing import ListParams, list_answer, page_of

TAGS = ["refunds"]
PATH_PARAMETERS.setdefault("refund_id", "Refund id (re_...).")


class RefundView(View):
    """The refund view: ``GET /v1/refunds/{refund_id}``, and the ``data`` of ``refund.*`` events."""

    refund_id: str
    object: Literal["refund"]
    payment_id: str
    status: Literal["pending", "succeeded", "failed"]
    amount: int = Field(description="Minor units.")
    currency: str
    reason: str | None
    disposition_code: str
    conversation_id: str | None
    participant_id: str | None
    reference: str | None
    failure_code: str | None = Field(description="Why it failed (the gateway's code), else null.")
    manual_review: Literal["none", "required", "resolved"]
    review_disposition: Literal["Refund_Failed_Manual_Review"] | None = Field(
        description="The disposition to record for a failed refund (a Genesys wrap-up code cannot be changed "
                    "afterwards, so it is written back instead).")
    review_note: str | None
    gateway_reference: str | None
    attempts: int = Field(description="Gateway attempts (a review retry is a new attempt).")
    metadata: dict[str, str]
    created_at: Timestamp
    updated_at: Timestamp


RefundList = page_of(RefundView, "RefundList", "refunds")


class RefundsQuery(ListParams):
    """Filters of ``GET /v1/refunds``; ``manual_review=required`` is the review queue."""

    payment_id: Text200 | None = None
    conversation_id: Text200 | None = None
    status: Literal["pending", "succeeded", "failed"] | None = None
    manual_review: Literal["none", "required", "resolved"] | None = None


def _amount(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return parse_minor_units(value)
    except ValueError:
        raise PydanticCustomError("invalid_amount", "The amount is not a positive integer of minor units.") from None


class CreateRefund(Body):
    """Body of ``POST /v1/refunds``."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"payment_id": "pay_3Jk9", "disposition_code": "REFUND_FULL", "conversation_id": "c-123",
         "participant_id": "p-9", "reason": "requested_by_customer"},
        {"payment_id": "pay_3Jk9", "amount": "1250", "disposition_code": "REFUND_PARTIAL",
         "reference": "RMA-77"},
    ]})

    payment_id: Text200
    amount: Annotated[Any, Field(json_schema_extra={
        "oneOf": [{"type": "integer", "minimum": 1, "maximum": 10**12},
                  {"type": "string", "pattern": "^[0-9]{1,13}$"}, {"type": "null"}]})] = Field(
        None, description="Minor units, as an integer or a string of digits (Genesys variables are strings); "
                          "omitted or null: everything still refundable. 0, negative, decimal or anything else "
                          "is 400 invalid_amount.")
    reason: Literal[REASONS] | None = None  # type: ignore[valid-type]
    disposition_code: Text200 = Field(description="The wrap-up (disposition) code that asked for the refund.")
    conversation_id: Text200 | None = None
    participant_id: Text200 | None = None
    reference: Annotated[str, Field(max_length=64)] | None = None
    metadata: Metadata | None = None
    callback_url: CallbackUrl | None = Field(
        None, json_schema_extra={"format": "uri"})

    @field_validator("amount", mode="before")
    @classmethod
    def _minor_units(cls, value):
        return _amount(value)


class Resolve(Body):
    """Body of ``POST /v1/refunds/{refund_id}/resolve``."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"note": "Refunded by bank transfer, ticket 4411."},
                                                               {}]})

    note: Annotated[str, Field(max_length=1000)] | None = Field(None, description="What was done about it.")


class Retry(Body):
    """Body of ``POST /v1/refunds/{refund_id}/retry`` (empty)."""


def _invalid_amount_first(err):
    """A refund's bad amount is answered with the code docs/api.md names, ``invalid_amount``, at the top of the
    envelope (the per-field codes stay beside it): a refund is never silently zero."""
    if err.fields.get("amount") == "invalid_amount":
        err = ValidationFailed("amount must be a positive integer of minor units, or a string of its digits.",
                               code="invalid_amount", details={"fields": err.fields})
    return error_response(err)


@post("/refunds", operation_id="createRefund", tags=TAGS, on_invalid=_invalid_amount_first,
      ok={201: (RefundView, "A new refund (also when the gateway refused it: its status says failed)."),
          200: (RefundView, "This disposition was refunded before: that refund, whatever the Idempotency-Key.")},
      errors={400: ["invalid_amount", "callback_url_not_allowed"], 404: ["payment_not_found"],
              409: ["payment_not_refundable"],
              422: ["amount_exceeds_refundable"]})
def create_refund(json: CreateRefund):
    """Refund a payment by disposition.

    Exactly once per (payment_id, disposition_code, conversation_id, reference): repeated or concurrent
    requests get the first refund. A failure is never silent: refund.failed, the review queue and the
    review disposition Refund_Failed_Manual_Review."""
    r, created = services().refunds.create(g.client_id, RefundInput(
        payment_id=json.payment_id, disposition_code=json.disposition_code, amount=json.amount,
        reason=json.reason, conversation_id=json.conversation_id, participant_id=json.participant_id,
        reference=json.reference or None, metadata=json.metadata or {}, callback_url=json.callback_url))
    return jsonify(refund_view(r)), 201 if created else 200


@get("/refunds/<refund_id>", operation_id="getRefund", tags=TAGS, ok={200: (RefundView, "The refund view.")},
     errors={404: ["refund_not_found"]})
def get_refund(refund_id: str):
    """Read a refund."""
    return jsonify(refund_view(services().refunds.get(g.client_id, refund_id)))


@get("/refunds", operation_id="listRefunds", tags=TAGS, ok={200: (RefundList, "Refunds, newest first.")})
def list_refunds(query: RefundsQuery):
    """List refunds (`manual_review=required`: the review queue)."""
    return list_answer(RefundRow, refund_view, query)


@post("/refunds/<refund_id>/resolve", operation_id="resolveRefund", tags=TAGS,
      ok={200: (RefundView, "manual_review is resolved.")},
      errors={404: ["refund_not_found"], 409: ["refund_not_in_review"]})
def resolve_refund(refund_id: str, json: Resolve):
    """Mark a refund awaiting review as dealt with."""
    return jsonify(refund_view(services().refunds.resolve(g.client_id, refund_id, json.note)))


@post("/refunds/<refund_id>/retry", operation_id="retryRefund", tags=TAGS,
      ok={200: (RefundView, "The new attempt's result (it may be pending, succeeded or failed again).")},
      errors={404: ["refund_not_found"], 409: ["refund_not_in_review"], 422: ["amount_exceeds_refundable"]})
def retry_refund(refund_id: str, json: Retry):
    """Try a failed refund again.

    A new gateway attempt of the same refund with its own idempotency key; only a failed refund awaiting
    review can be retried, so a refund never succeeds twice."""
    return jsonify(refund_view(services().refunds.retry(g.client_id, refund_id)))
