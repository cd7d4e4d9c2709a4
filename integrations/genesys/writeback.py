"""Pushing results into Genesys Cloud: participant attributes, workflow starts and review workitems.

- :func:`participant_attributes` / :func:`workflow_input` — what is written for an event, copied field by
  field from its parsed body (``{"id", "type", "object", "created_at", "sequence", "data"}``; ``data`` is
  the view of ``object``, which never holds a card number or CVC). Every object type is handled: payment
  sessions, payments (holds and merchant-initiated charges), refunds, disputes and subscriptions.
- :class:`ParticipantAttributesSender` / :class:`WorkflowSender` — the outbox senders of the kinds
  ``genesys_attributes`` (``PATCH /api/v2/conversations/{cid}/participants/{pid}/attributes``, string
  values only) and ``genesys_workflow`` (``POST /api/v2/flows/executions`` with ``Flow.``-prefixed
  ``inputData``); :func:`build_senders` wires them, and the ``genesys_workitem`` sender of
  :mod:`integrations.genesys.workitems`, for a :class:`~callbacks.delivery.Deliverer`.
- :func:`destinations` — which of those deliveries an event of a client gets.

Attributes per event object (``""`` stands for a null field of the view; a key not listed for an object is
never written by its events, so an event never overwrites an attribute with a value that means something
else — a refund's status never lands in ``paymentStatus``):

==========================  ==============================================================================
object (event types)        attributes written
==========================  ==============================================================================
``payment_session``         ``paymentStatus`` (the session status), ``paymentOutcome``, ``paymentToken``,
(``payment.*`` of a         ``paymentCardBrand``, ``paymentCardLast4``, ``paymentId``,
session,                    ``paymentDeclineCode``, ``paymentMessage``, ``paymentSessionId``,
``payment_session.*``)      ``paymentGatewayReference``; ``paymentSubscriptionId`` once a session with
                            intent ``subscription`` created its subscription
``payment``:                ``paymentStatus`` and ``paymentOutcome`` = ``approved`` | ``declined`` |
``hold.authorized`` and     ``failed`` (the charge's result in the session vocabulary: ``hold.authorized`` is
merchant-initiated          an approval, docs/api.md, "Holds"), ``paymentDeclineCode``, ``paymentMessage``,
``payment.*``               ``paymentId``, ``paymentToken``, ``paymentCardBrand``, ``paymentCardLast4``,
                            ``paymentGatewayReference``, ``paymentSessionId`` (``""`` for a merchant-initiated
                            payment); ``paymentHoldStatus`` (``authorized``) for ``hold.authorized``;
                            ``paymentSubscriptionId`` when the payment belongs to a subscription
``payment``: ``hold.``      ``paymentHoldStatus`` (the payment status: ``authorized`` while held, then
``captured`` / ``voided``   ``captured``, ``voided`` or ``expired``), ``paymentId``,
/ ``expiring`` /            ``paymentGatewayReference``
``expired``
``refund`` (``refund.*``)   ``paymentRefundId``, ``paymentRefundStatus`` (``pending`` | ``succeeded`` |
                            ``failed``), ``paymentRefundReviewDisposition`` (``Refund_Failed_Manual_Review``
                            after a failure, else ``""``), ``paymentId`` (the refunded payment)
``dispute``                 ``paymentDisputeStatus`` (Stripe's dispute status), ``paymentId``
``subscription``            ``paymentSubscriptionId``, ``paymentSubscriptionStatus``, ``paymentId`` (its
                            ``last_payment_id``, when there is one)
==========================  ==============================================================================

The seed-002 hold states map onto ``paymentHoldStatus``: HELD = ``authorized``, CHARGED = ``captured``,
RELEASED = ``voided`` or ``expired`` (docs/architect-recipes.md, recipe 5).

Workflow inputs: every key of :data:`WORKFLOW_INPUTS`, always (``""`` when it does not apply to the
object), so a workflow can declare them all; ``Flow.status`` and ``Flow.amount`` are those of the event's
object (a refund's status and amount for ``refund.*``), and ``Flow.objectType`` says which object that is.

API references: https://developer.genesys.cloud/devapps/api-explorer#patch-api-v2-conversations--conversationId--participants--participantId--attributes
and https://developer.genesys.cloud/devapps/api-explorer#post-api-v2-flows-executions.
"""

from __future__ import annotations

import json
from typing import Callable, Mapping

import httpx
from sqlalchemy import and_, or_, select

from callbacks import events as ev
from callbacks.delivery import DeliveryJob, Sender, SendResult
from callbacks.models import Delivery, Event
from callbacks.outbox import Destination
from kernel.clock import Clock

from .client import DEFAULT_TIMEOUT_SECONDS, Credentials, GenesysApi, GenesysResponse, TokenProvider
from .settings import GenesysSettings, SecretBox

KIND_ATTRIBUTES = "genesys_attributes"
KIND_WORKFLOW = "genesys_workflow"
KIND_WORKITEM = "genesys_workitem"
ATTRIBUTES_TARGET = "genesys:attributes"
WORKFLOW_TARGET_PREFIX = "genesys:flow:"
WORKITEM_TARGET_PREFIX = "genesys:workitem:"

OBJECT_SESSION = "payment_session"
OBJECT_PAYMENT = "payment"
OBJECT_REFUND = "refund"
OBJECT_DISPUTE = "dispute"
OBJECT_SUBSCRIPTION = "subscription"
OBJECTS = (OBJECT_SESSION, OBJECT_PAYMENT, OBJECT_REFUND, OBJECT_DISPUTE, OBJECT_SUBSCRIPTION)
"""The ``object`` values of an event body (docs/api.md, "Events")."""

REVIEW_DISPOSITION = "Refund_Failed_Manual_Review"
"""The review disposition a failed refund carries (docs/api.md, "Refunds")."""

ATTRIBUTE_NAMES = (
    # docs/api.md, "Genesys write-back"
    "paymentStatus", "paymentOutcome", "paymentToken", "paymentCardBrand", "paymentCardLast4", "paymentId",
    "paymentDeclineCode", "paymentMessage", "paymentSessionId",
    # added for holds, refunds, disputes and subscriptions (docs/api.md, "Genesys write-back")
    "paymentGatewayReference", "paymentHoldStatus", "paymentRefundId", "paymentRefundStatus",
    "paymentRefundReviewDisposition", "paymentDisputeStatus", "paymentSubscriptionId", "paymentSubscriptionStatus",
)
"""Every participant attribute name paygate may write (all string-valued). Which of them an event writes
depends on its object: see the table in the module docstring. Dicts returned by
:func:`participant_attributes` keep this order."""

WORKFLOW_INPUTS = (
    # docs/api.md, "Genesys write-back"
    "Flow.eventType", "Flow.eventId", "Flow.eventSequence", "Flow.eventCreatedAt", "Flow.sessionId",
    "Flow.conversationId", "Flow.participantId", "Flow.customerAccountId", "Flow.intent", "Flow.amount",
    "Flow.currency", "Flow.status", "Flow.outcome", "Flow.token", "Flow.paymentId", "Flow.cardBrand",
    "Flow.cardLast4", "Flow.reference", "Flow.declineCode", "Flow.message", "Flow.channel",
    # added for holds, refunds, disputes and subscriptions (docs/api.md, "Genesys write-back")
    "Flow.objectType", "Flow.refundId", "Flow.disputeId", "Flow.subscriptionId", "Flow.dispositionCode",
    "Flow.reviewDisposition",
    # additions: a refund's failure code, a hold's deadline
    "Flow.failureCode", "Flow.captureBefore",
)
"""``inputData`` keys of a workflow start, every one always present and string-valued (``""`` when it does
not apply); declare them all as string inputs of the Architect workflow. Meaning:

- ``Flow.eventType``, ``Flow.eventId`` (``evt_…``, the dedupe key), ``Flow.eventSequence`` (per root),
  ``Flow.eventCreatedAt`` (RFC 3339), ``Flow.objectType`` (``payment_session`` | ``payment`` | ``refund`` |
  ``dispute`` | ``subscription``);
- ``Flow.status``, ``Flow.amount`` (integer minor units as text, ``"2500"`` = USD 25.00), ``Flow.currency``:
  of the event's object;
- ``Flow.outcome``: a session's outcome; for ``payment.*`` and ``hold.authorized`` of a payment
  ``approved`` / ``declined`` / ``failed``; else ``""``;
- ids: ``Flow.sessionId``, ``Flow.paymentId`` (for a subscription its ``last_payment_id``),
  ``Flow.refundId``, ``Flow.disputeId`` (also on a disputed payment), ``Flow.subscriptionId``, ``Flow.token``;
- the conversation: ``Flow.conversationId``, ``Flow.participantId``, ``Flow.customerAccountId``,
  ``Flow.channel``, ``Flow.intent`` (``topup`` for a top-up's session and payment events: the workflow applies
  the top-up on ``payment.approved`` keyed by ``Flow.eventId``; ``subscription`` for subscription events),
  ``Flow.reference``;
- results: ``Flow.declineCode``, ``Flow.message``, ``Flow.cardBrand``, ``Flow.cardLast4``;
- refunds: ``Flow.dispositionCode``, ``Flow.reviewDisposition``, ``Flow.failureCode``;
- holds: ``Flow.captureBefore`` (RFC 3339, when the authorization lapses).
"""


# -- where an event goes ------------------------------------------------------------------------------
def destinations(settings: GenesysSettings | None, *, event_type: str, conversation_id: str | None,
                 participant_id: str | None) -> list[Destination]:
    """The Genesys deliveries of one event of type ``event_type`` for a client with ``settings`` (none
    without settings):

    - the participant attributes when ``write_attributes`` is on and the caller names a conversation and
      participant (target ``genesys:attributes:<conversation id>/<participant id>``; the domain passes the
      refund's conversation and participant for ``refund.*`` events, else the payment's or the session's);
    - the workflow start when ``start_workflow`` is on with a ``workflow_id`` (target ``genesys:flow:<flow id>``);
    - for ``refund.failed``, a review workitem when a ``worktype_id`` is set (target
      ``genesys:workitem:<worktype id>``, :mod:`integrations.genesys.workitems`).
    """
    if settings is None:
        return []
    out = []
    if settings.write_attributes and conversation_id and participant_id:
        out.append(Destination(KIND_ATTRIBUTES, attributes_target(conversation_id, participant_id)))
    if settings.workflow_enabled:
        out.append(Destination(KIND_WORKFLOW, workflow_target(settings.workflow_id)))
    if settings.workitems_enabled and event_type == ev.REFUND_FAILED:
        out.append(Destination(KIND_WORKITEM, workitem_target(settings.worktype_id)))
    return out


def attributes_target(conversation_id: str, participant_id: str) -> str:
    """The delivery target naming whose attributes to write: ``genesys:attributes:<conversation>/<participant>``
    (ids are UUIDs in Genesys; ``/`` never occurs in them)."""
    return f"{ATTRIBUTES_TARGET}:{conversation_id}/{participant_id}"


def parse_attributes_target(target: str) -> tuple[str, str] | None:
    """``(conversation_id, participant_id)`` of an :func:`attributes_target`, or None for the bare
    ``genesys:attributes`` of deliveries written before targets named the participant (the sender then
    reads both from the event's data)."""
    prefix = ATTRIBUTES_TARGET + ":"
    if not target.startswith(prefix):
        return None
    conversation_id, sep, participant_id = target[len(prefix):].partition("/")
    return (conversation_id, participant_id) if sep and conversation_id and participant_id else None


def workflow_target(flow_id: str) -> str:
    """The delivery ``target`` of a workflow start: ``genesys:flow:<flow id>``."""
    return WORKFLOW_TARGET_PREFIX + flow_id


def workitem_target(worktype_id: str) -> str:
    """The delivery ``target`` of a review workitem: ``genesys:workitem:<worktype id>``."""
    return WORKITEM_TARGET_PREFIX + worktype_id


# -- payload builders ---------------------------------------------------------------------------------
def _text(value) -> str:
    """Genesys attribute/input values are strings: None → "", everything else ``str()``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def object_of(event: Mapping) -> str:
    """The event's object (``payment_session``, ``payment``, ``refund``, ``dispute``, ``subscription``):
    the body's ``object`` key, else the view's own ``object`` key, else ``payment_session`` (bodies written
    before events named their object are session views)."""
    declared = event.get("object")
    if declared in OBJECTS:
        return declared
    data = event.get("data") or {}
    inner = data.get("object")  # payment, refund, dispute and subscription views name themselves (docs/api.md)
    return inner if inner in OBJECTS else OBJECT_SESSION


def object_id(event: Mapping) -> str:
    """The id of the event's object (``ps_…``, ``pay_…``, ``re_…``, ``dsp_…``, ``sub_…``), or ``""``."""
    data = event.get("data") or {}
    key = {OBJECT_SESSION: "session_id", OBJECT_PAYMENT: "payment_id", OBJECT_REFUND: "refund_id",
           OBJECT_DISPUTE: "dispute_id", OBJECT_SUBSCRIPTION: "subscription_id"}[object_of(event)]
    return _text(data.get(key))


def charge_outcome(event_type: str) -> str | None:
    """For an event of a payment object, the charge's result in the session vocabulary: ``approved`` for
    ``payment.approved`` and ``hold.authorized``, ``declined``, ``failed``; None for the hold's later events."""
    if event_type == ev.HOLD_AUTHORIZED:
        return "approved"
    if event_type in (ev.PAYMENT_APPROVED, ev.PAYMENT_DECLINED, ev.PAYMENT_FAILED):
        return event_type.split(".", 1)[1]
    return None


def _ordered(values: Mapping[str, object]) -> dict[str, str]:
    return {name: _text(values[name]) for name in ATTRIBUTE_NAMES if name in values}


def participant_attributes(event: Mapping) -> dict[str, str]:
    """The participant attributes one event writes, from its parsed body (``{"type", "object", "data", ...}``),
    in :data:`ATTRIBUTE_NAMES` order. Which names depends on the object (table in the module docstring);
    every value is a string (None → ``""``) because Genesys participant attributes are ``dict(str, str)``
    (https://developer.genesys.cloud/devapps/api-explorer#patch-api-v2-conversations--conversationId--participants--participantId--attributes).
    Card data beyond brand and last4 is never read."""
    data = event.get("data") or {}
    card = data.get("card") or {}
    kind = object_of(event)
    if kind == OBJECT_SESSION:
        return _ordered({
            "paymentStatus": data.get("status"), "paymentOutcome": data.get("outcome"),
            "paymentToken": data.get("token"), "paymentCardBrand": card.get("brand"),
            "paymentCardLast4": card.get("last4"), "paymentId": data.get("payment_id"),
            "paymentDeclineCode": data.get("decline_code"), "paymentMessage": data.get("message"),
            "paymentSessionId": data.get("session_id"), "paymentGatewayReference": data.get("gateway_reference"),
            # an approved session with intent "subscription" names the subscription it created
            **({"paymentSubscriptionId": data["subscription_id"]} if data.get("subscription_id") else {}),
        })
    if kind == OBJECT_PAYMENT:
        event_type = str(event.get("type") or "")
        values: dict[str, object] = {"paymentId": data.get("payment_id"),
                                     "paymentGatewayReference": data.get("gateway_reference")}
        outcome = charge_outcome(event_type)
        if outcome is not None:
            values.update({
                "paymentStatus": outcome, "paymentOutcome": outcome, "paymentToken": data.get("token"),
                "paymentCardBrand": card.get("brand"), "paymentCardLast4": card.get("last4"),
                "paymentDeclineCode": data.get("decline_code"), "paymentMessage": data.get("message"),
                "paymentSessionId": data.get("session_id"),
            })
            if data.get("subscription_id"):
                values["paymentSubscriptionId"] = data["subscription_id"]
        if event_type.startswith("hold."):
            values["paymentHoldStatus"] = data.get("status")
        return _ordered(values)
    if kind == OBJECT_REFUND:
        return _ordered({"paymentRefundId": data.get("refund_id"), "paymentRefundStatus": data.get("status"),
                         "paymentRefundReviewDisposition": data.get("review_disposition"),
                         "paymentId": data.get("payment_id")})
    if kind == OBJECT_DISPUTE:
        return _ordered({"paymentDisputeStatus": data.get("status"), "paymentId": data.get("payment_id")})
    values = {"paymentSubscriptionId": data.get("subscription_id"),
              "paymentSubscriptionStatus": data.get("status")}
    if data.get("last_payment_id"):
        values["paymentId"] = data["last_payment_id"]
    return _ordered(values)


def workflow_input(event: Mapping) -> dict[str, str]:
    """The ``inputData`` of a workflow start (:data:`WORKFLOW_INPUTS`, all present) from a parsed event body
    (``{"id", "type", "object", "created_at", "sequence", "data"}``). Keys carry the ``Flow.`` prefix Genesys
    requires (https://developer.genesys.cloud/devapps/api-explorer#post-api-v2-flows-executions); values are
    strings, ``Flow.amount`` the integer minor units as text (USD 1999 → ``"1999"``), ``""`` where a field
    does not apply to the object. ``Flow.eventId`` lets the workflow drop a repeated delivery."""
    data = event.get("data") or {}
    card = data.get("card") or {}
    kind = object_of(event)
    event_type = str(event.get("type") or "")
    if kind == OBJECT_SESSION:
        outcome = data.get("outcome")
    elif kind == OBJECT_PAYMENT:
        outcome = charge_outcome(event_type)
    else:
        outcome = None
    payment_id = data.get("last_payment_id") if kind == OBJECT_SUBSCRIPTION else data.get("payment_id")
    values = {
        "Flow.eventType": event_type, "Flow.eventId": event.get("id"),
        "Flow.eventSequence": event.get("sequence"), "Flow.eventCreatedAt": event.get("created_at"),
        "Flow.sessionId": data.get("session_id"), "Flow.conversationId": data.get("conversation_id"),
        "Flow.participantId": data.get("participant_id"),
        "Flow.customerAccountId": data.get("customer_account_id"),
        # a subscription view has no intent field: its events are about a subscription
        "Flow.intent": "subscription" if kind == OBJECT_SUBSCRIPTION else data.get("intent"),
        "Flow.amount": data.get("amount"), "Flow.currency": data.get("currency"),
        "Flow.status": data.get("status"), "Flow.outcome": outcome, "Flow.token": data.get("token"),
        "Flow.paymentId": payment_id, "Flow.cardBrand": card.get("brand"),
        "Flow.cardLast4": card.get("last4"), "Flow.reference": data.get("reference"),
        "Flow.declineCode": data.get("decline_code"), "Flow.message": data.get("message"),
        "Flow.channel": data.get("channel"),
        "Flow.objectType": kind, "Flow.refundId": data.get("refund_id"), "Flow.disputeId": data.get("dispute_id"),
        "Flow.subscriptionId": data.get("subscription_id"), "Flow.dispositionCode": data.get("disposition_code"),
        "Flow.reviewDisposition": data.get("review_disposition"), "Flow.failureCode": data.get("failure_code"),
        "Flow.captureBefore": data.get("capture_before"),
    }
    return {key: _text(values[key]) for key in WORKFLOW_INPUTS}


# -- outbox senders -----------------------------------------------------------------------------------
SettingsLoader = Callable[[str], GenesysSettings | None]
"""``client_id -> GenesysSettings | None``, read at send time (the composition root supplies it)."""


class GenesysSender:
    """Base of the Genesys outbox senders: the client's credentials read at send time, and the mapping of a
    :class:`~integrations.genesys.client.GenesysResponse` onto a :class:`~callbacks.delivery.SendResult`
    (429 ``retry_after`` kept, so the deliverer reschedules instead of sleeping; 401 was already retried
    once with a new token by :class:`~integrations.genesys.client.GenesysApi`)."""

    def __init__(self, api: GenesysApi, load_settings: SettingsLoader, box: SecretBox):
        self.api = api
        self.load_settings = load_settings
        self.box = box

    def _credentials(self, job: DeliveryJob) -> Credentials | SendResult:
        settings = self.load_settings(job.client_id)
        if settings is None:
            return SendResult(None, False, "genesys_not_configured", 0.0, permanent=True)
        try:
            return Credentials.of(settings, self.box)
        except Exception as exc:  # a missing or unreadable secret: fixable by configuring again
            code = getattr(exc, "code", type(exc).__name__)
            return SendResult(None, False, str(code), 0.0, permanent=True)

    @staticmethod
    def _result(response: GenesysResponse) -> SendResult:
        return SendResult(response.status_code, response.transport_error, response.error, response.latency_ms,
                          retry_after=response.retry_after)


class ParticipantAttributesSender(GenesysSender):
    """Outbox sender of kind ``genesys_attributes``: writes :func:`participant_attributes` of the event onto
    the participant its target names (``genesys:attributes:<conversation>/<participant>``; for a bare legacy
    target, the view's ``conversation_id``/``participant_id``). Without either it is dead at once
    (``no_participant``).

    Attributes hold the latest state and Genesys merges them, so an older event retried after a newer one
    was written must not put stale values back (``superseded``, given a sessionmaker ``Session``). Events of
    one root (``Event.root_id``: the session, or the payment without a session, or the subscription) are
    numbered together; among the ``delivered`` attribute writes of later events of the same root to the same
    target:

    - one of the same ``object`` supersedes the whole write: nothing is sent and the attempt is recorded as
      delivered with error ``superseded_by_newer_event``;
    - those of other objects only take away the keys they already wrote (e.g. a late retry of a session's
      decline does not overwrite the card and status a later ``hold.authorized`` wrote), so a later refund
      event never suppresses an earlier hold event's ``paymentHoldStatus``.
    """

    def __init__(self, api: GenesysApi, load_settings: SettingsLoader, box: SecretBox, Session=None):
        super().__init__(api, load_settings, box)
        self.Session = Session

    def newer_writes(self, event_id: str, target: str) -> tuple[bool, frozenset[str]]:
        """``(superseded, keys)`` for the event ``event_id`` written to ``target``: ``superseded`` when a later
        event of the same root and object already had its attributes delivered there, else the attribute
        names later events of other objects of that root already wrote there."""
        if self.Session is None:
            return False, frozenset()
        with self.Session() as db:
            row = db.execute(select(Event.root_id, Event.session_id, Event.object, Event.sequence)
                             .where(Event.id == event_id)).one_or_none()
            if row is None or not (row.root_id or row.session_id):
                return False, frozenset()
            root = row.root_id or row.session_id
            same_root = or_(Event.root_id == root, and_(Event.root_id.is_(None), Event.session_id == root))
            later = db.execute(select(Event.object, Event.body).join(Delivery, Delivery.event_id == Event.id).where(
                same_root, Event.sequence > row.sequence, Delivery.kind == KIND_ATTRIBUTES,
                Delivery.status == "delivered", Delivery.target == target)).all()
        keys: set[str] = set()
        for obj, body in later:
            if (obj or OBJECT_SESSION) == (row.object or OBJECT_SESSION):
                return True, frozenset()
            try:
                keys.update(participant_attributes(json.loads(body)))
            except (ValueError, TypeError, AttributeError):
                continue
        return False, frozenset(keys)

    def superseded(self, event_id: str, target: str) -> bool:
        """True when a later event of the same root and object already had its attributes written to ``target``."""
        return self.newer_writes(event_id, target)[0]

    def __call__(self, job: DeliveryJob) -> SendResult:
        event = json.loads(job.body)
        data = event.get("data") or {}
        named = parse_attributes_target(job.target)
        conversation_id, participant_id = named or (data.get("conversation_id"), data.get("participant_id"))
        if not conversation_id or not participant_id:
            return SendResult(None, False, "no_participant", 0.0, permanent=True)
        attributes = participant_attributes(event)
        superseded, newer = self.newer_writes(job.event_id, job.target)
        attributes = {k: v for k, v in attributes.items() if k not in newer}
        if superseded or not attributes:
            return SendResult(None, False, "superseded_by_newer_event", 0.0, skipped=True)
        creds = self._credentials(job)
        if isinstance(creds, SendResult):
            return creds
        return self._result(self.api.patch_participant_attributes(
            creds, str(conversation_id), str(participant_id), attributes))


class WorkflowSender(GenesysSender):
    """Outbox sender of kind ``genesys_workflow``: starts the flow named by the delivery target
    (``genesys:flow:<flow id>``) with :func:`workflow_input` of the event, named
    ``paygate <event type> <object id>`` (e.g. ``paygate refund.failed re_…``)."""

    def __call__(self, job: DeliveryJob) -> SendResult:
        if not job.target.startswith(WORKFLOW_TARGET_PREFIX) or len(job.target) == len(WORKFLOW_TARGET_PREFIX):
            return SendResult(None, False, "invalid_workflow_target", 0.0, permanent=True)
        flow_id = job.target[len(WORKFLOW_TARGET_PREFIX):]
        creds = self._credentials(job)
        if isinstance(creds, SendResult):
            return creds
        event = json.loads(job.body)
        name = f"paygate {job.event_type} {object_id(event)}".strip()[:200]
        return self._result(self.api.start_workflow(creds, flow_id, name, workflow_input(event)))


def build_senders(Session, http: httpx.Client, *, clock: Clock, box: SecretBox, load_settings: SettingsLoader,
                  timeout: float = DEFAULT_TIMEOUT_SECONDS, tokens: TokenProvider | None = None) -> dict[str, Sender]:
    """The Genesys senders for :class:`~callbacks.delivery.Deliverer` (``senders=``) — kinds
    ``genesys_attributes``, ``genesys_workflow`` and ``genesys_workitem`` — sharing one token cache.
    ``Session`` is the sessionmaker on the outbox tables (to skip superseded attribute writes);
    ``load_settings`` reads a client's settings at send time; ``box`` opens the sealed OAuth secrets
    (:class:`~integrations.genesys.settings.SecretBox` of ``PAYGATE_SECRET_KEY``)."""
    from .workitems import WorkitemSender

    api = GenesysApi(http, tokens or TokenProvider(http, clock, timeout=timeout), timeout=timeout)
    load = load_settings
    return {KIND_ATTRIBUTES: ParticipantAttributesSender(api, load, box, Session),
            KIND_WORKFLOW: WorkflowSender(api, load, box),
            KIND_WORKITEM: WorkitemSender(api, load, box)}
