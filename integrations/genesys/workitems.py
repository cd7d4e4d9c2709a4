"""Review workitems for failed refunds, in Genesys Cloud Task Management.

A refund requested from a wrap-up code cannot take another disposition once it failed (the agent's wrap-up
is saved), so paygate puts the failure in front of people itself: every ``refund.failed`` event of a client
whose Genesys settings name a worktype (``worktype_id``) gets one delivery of kind ``genesys_workitem``
(target ``genesys:workitem:<worktype id>``, :func:`integrations.genesys.writeback.destinations`).
:class:`WorkitemSender` turns it into exactly one workitem per refund:

1. ``POST /api/v2/taskmanagement/workitems/query`` with the filters ``typeId EQ <worktype>`` and
   ``externalTag EQ <refund id>`` (a query needs one single-value ``EQ`` filter on ``typeId``, ``workbinId``,
   ``queueId`` or ``assigneeId``);
2. only when that finds none, ``POST /api/v2/taskmanagement/workitems`` with ``name`` (``Refund review
   re_…``), ``typeId``, ``description`` (:func:`workitem_description`: refund and payment ids, amount,
   currency, disposition code, failure code, review disposition — never card data) and ``externalTag`` =
   the refund id. No ``customFields``: their keys must exist in the worktype's schema, which paygate cannot
   know.

A second ``refund.failed`` for the same refund (a retried refund that failed again), a redelivery or a
create whose answer was lost finds the first workitem and creates nothing (the attempt is recorded as
delivered with error ``workitem_exists``). The check-then-create is not atomic on Genesys's side: two
deliveries for the same refund running at the same moment could both create one; a delivery is leased to
one worker at a time, so that takes two failed events of one refund delivered concurrently.

Errors behave as for the other Genesys senders: a 401 is retried once with a new token, a 429 is
rescheduled at its ``Retry-After``, 5xx and transport failures are retried with backoff, other 4xx (400
invalid worktype id, 404 unknown worktype) are final.

API: https://developer.genesys.cloud/devapps/api-explorer#post-api-v2-taskmanagement-workitems and
https://developer.genesys.cloud/devapps/api-explorer#post-api-v2-taskmanagement-workitems-query.
"""

from __future__ import annotations

import json
from typing import Mapping

from callbacks.delivery import DeliveryJob, SendResult
from kernel.logging import redact_text

from .writeback import OBJECT_REFUND, REVIEW_DISPOSITION, WORKITEM_TARGET_PREFIX, GenesysSender, object_of

NAME_MAX = 256
DESCRIPTION_MAX = 512


def workitem_name(refund_id: str) -> str:
    """The workitem's name: ``Refund review re_…`` (Genesys: 3 to 256 characters)."""
    return f"Refund review {refund_id}"[:NAME_MAX]


def workitem_description(refund: Mapping) -> str:
    """The workitem's description from a refund view (docs/api.md, "Refunds"), at most 512 characters::

        Refund re_1 of payment pay_1 failed: 2500 USD (minor units), disposition code REFUND,
        failure code expired_or_canceled_card. Review disposition: Refund_Failed_Manual_Review.
        Conversation conv-1. Reference INV-1.

    Only ids, the amount, codes and the reference are used; anything that looks like a card number is
    masked anyway (:func:`kernel.logging.redact_text`), since codes and references come from outside."""
    def text(key: str, fallback: str = "none") -> str:
        value = refund.get(key)
        return fallback if value in (None, "") else str(value)

    parts = [(f"Refund {text('refund_id')} of payment {text('payment_id')} failed: "
              f"{text('amount', '?')} {text('currency', '')} (minor units), "
              f"disposition code {text('disposition_code')}, failure code {text('failure_code')}."),
             f"Review disposition: {text('review_disposition', REVIEW_DISPOSITION)}."]
    if refund.get("conversation_id"):
        parts.append(f"Conversation {refund['conversation_id']}.")
    if refund.get("reference"):
        parts.append(f"Reference {refund['reference']}.")
    description = redact_text(" ".join(parts).replace("  ", " "))
    return description if len(description) <= DESCRIPTION_MAX else description[:DESCRIPTION_MAX - 1] + "…"


def external_tag_filters(worktype_id: str, refund_id: str) -> list[dict]:
    """The query filters finding the refund's workitem: ``typeId EQ`` and ``externalTag EQ`` (SDK
    ``WorkitemFilter``: ``{"name", "type": "String", "operator", "values"}``)."""
    return [{"name": "typeId", "type": "String", "operator": "EQ", "values": [worktype_id]},
            {"name": "externalTag", "type": "String", "operator": "EQ", "values": [refund_id]}]


class WorkitemSender(GenesysSender):
    """Outbox sender of kind ``genesys_workitem`` (see the module docstring). Dead at once for a target
    without a worktype id (``invalid_workitem_target``) or an event that is not a refund's
    (``not_a_refund_event``); a 2xx query answer without an ``entities`` list is retried
    (``genesys_bad_response``)."""

    def __call__(self, job: DeliveryJob) -> SendResult:
        worktype_id = job.target[len(WORKITEM_TARGET_PREFIX):] if job.target.startswith(WORKITEM_TARGET_PREFIX) else ""
        if not worktype_id:
            return SendResult(None, False, "invalid_workitem_target", 0.0, permanent=True)
        event = json.loads(job.body)
        refund = event.get("data") or {}
        refund_id = refund.get("refund_id")
        if object_of(event) != OBJECT_REFUND or not isinstance(refund_id, str) or not refund_id:
            return SendResult(None, False, "not_a_refund_event", 0.0, permanent=True)
        creds = self._credentials(job)
        if isinstance(creds, SendResult):
            return creds
        found = self.api.query_workitems(creds, external_tag_filters(worktype_id, refund_id))
        if not found.ok:
            return self._result(found)
        entities = found.payload.get("entities") if isinstance(found.payload, dict) else None
        if not isinstance(entities, list):
            return SendResult(None, True, "genesys_bad_response", found.latency_ms)
        if entities:  # the filters already matched this refund's tag on this worktype
            return SendResult(found.status_code, False, "workitem_exists", found.latency_ms, skipped=True)
        created = self.api.create_workitem(creds, name=workitem_name(refund_id), type_id=worktype_id,
                                           description=workitem_description(refund), external_tag=refund_id)
        result = self._result(created)
        return SendResult(result.status_code, result.transport_error, result.error,
                          found.latency_ms + result.latency_ms, retry_after=result.retry_after)
