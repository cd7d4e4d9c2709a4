"""Pushing results into Genesys Cloud (contract §6): participant attributes and workflow starts.

- :func:`participant_attributes` / :func:`workflow_input` — what is written for an event, copied field by
  field from its data (the object's view, which never holds a card number or CVC).
- :class:`ParticipantAttributesSender` / :class:`WorkflowSender` — the outbox senders of the kinds
  ``genesys_attributes`` (``PATCH /api/v2/conversations/{cid}/participants/{pid}/attributes``, string
  values only) and ``genesys_workflow`` (``POST /api/v2/flows/executions`` with ``Flow.``-prefixed
  ``inputData``); :func:`build_senders` wires both for a :class:`~callbacks.delivery.Deliverer`.
- :func:`destinations` — which of those deliveries an event of a client gets.

API references: https://developer.genesys.cloud/devapps/api-explorer#patch-api-v2-conversations--conversationId--participants--participantId--attributes
and https://developer.genesys.cloud/devapps/api-explorer#post-api-v2-flows-executions.
"""

from __future__ import annotations

import json
from typing import Callable, Mapping

import httpx
from sqlalchemy import select

from callbacks.delivery import DeliveryJob, Sender, SendResult
from callbacks.models import Delivery, Event
from callbacks.outbox import Destination
from kernel.clock import Clock

from .client import DEFAULT_TIMEOUT_SECONDS, Credentials, GenesysApi, GenesysResponse, TokenProvider
from .settings import GenesysSettings, SecretBox

KIND_ATTRIBUTES = "genesys_attributes"
KIND_WORKFLOW = "genesys_workflow"
ATTRIBUTES_TARGET = "genesys:attributes"
WORKFLOW_TARGET_PREFIX = "genesys:flow:"

ATTRIBUTE_NAMES = ("paymentStatus", "paymentOutcome", "paymentToken", "paymentCardBrand", "paymentCardLast4",
                   "paymentId", "paymentDeclineCode", "paymentMessage", "paymentSessionId")
"""Participant attribute names written per event (contract §6), all string-valued."""

WORKFLOW_INPUTS = ("Flow.eventType", "Flow.eventId", "Flow.eventSequence", "Flow.eventCreatedAt",
                   "Flow.sessionId", "Flow.conversationId", "Flow.participantId", "Flow.customerAccountId",
                   "Flow.intent", "Flow.amount", "Flow.currency", "Flow.status", "Flow.outcome", "Flow.token",
                   "Flow.paymentId", "Flow.cardBrand", "Flow.cardLast4", "Flow.reference", "Flow.declineCode",
                   "Flow.message", "Flow.channel")
"""``inputData`` keys of a workflow start (declare them as string inputs in the Architect workflow)."""


def destinations(settings: GenesysSettings | None, *, event_type: str, conversation_id: str | None,
                 participant_id: str | None) -> list[Destination]:
    """The Genesys deliveries of one event of type ``event_type`` for a client with ``settings`` (none
    without settings): the participant attributes when ``write_attributes`` is on and the event names a
    conversation and participant (target ``genesys:attributes:<conversation id>/<participant id>``), and the
    workflow start when ``start_workflow`` is on with a ``workflow_id`` (target ``genesys:flow:<flow id>``)."""
    if settings is None:
        return []
    out = []
    if settings.write_attributes and conversation_id and participant_id:
        out.append(Destination(KIND_ATTRIBUTES, attributes_target(conversation_id, participant_id)))
    if settings.workflow_enabled:
        out.append(Destination(KIND_WORKFLOW, WORKFLOW_TARGET_PREFIX + settings.workflow_id))
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


# -- payload builders ---------------------------------------------------------------------------------
def _text(value) -> str:
    """Genesys attribute/input values are strings: None → "", everything else ``str()``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def participant_attributes(data: Mapping) -> dict[str, str]:
    """``{"paymentStatus", ..., "paymentSessionId"}`` (:data:`ATTRIBUTE_NAMES`) from a session view
    (contract §2). Every value is a string (None → ``""``) because Genesys participant attributes are
    ``dict(str, str)`` (reference §2a). Card data beyond brand and last4 is never read."""
    card = data.get("card") or {}
    return {
        "paymentStatus": _text(data.get("status")),
        "paymentOutcome": _text(data.get("outcome")),
        "paymentToken": _text(data.get("token")),
        "paymentCardBrand": _text(card.get("brand")),
        "paymentCardLast4": _text(card.get("last4")),
        "paymentId": _text(data.get("payment_id")),
        "paymentDeclineCode": _text(data.get("decline_code")),
        "paymentMessage": _text(data.get("message")),
        "paymentSessionId": _text(data.get("session_id")),
    }


def workflow_input(event: Mapping) -> dict[str, str]:
    """The ``inputData`` of a workflow start (:data:`WORKFLOW_INPUTS`) from a parsed event body
    (``{"id", "type", "created_at", "sequence", "data"}``). Keys carry the ``Flow.`` prefix Genesys
    requires (reference §2b); values are strings, ``Flow.amount`` the integer minor units as text
    (USD 2500 → ``"2500"``). ``Flow.eventId`` lets the workflow drop a repeated delivery."""
    data = event.get("data") or {}
    card = data.get("card") or {}
    values = {
        "Flow.eventType": event.get("type"), "Flow.eventId": event.get("id"),
        "Flow.eventSequence": event.get("sequence"), "Flow.eventCreatedAt": event.get("created_at"),
        "Flow.sessionId": data.get("session_id"), "Flow.conversationId": data.get("conversation_id"),
        "Flow.participantId": data.get("participant_id"),
        "Flow.customerAccountId": data.get("customer_account_id"), "Flow.intent": data.get("intent"),
        "Flow.amount": data.get("amount"), "Flow.currency": data.get("currency"),
        "Flow.status": data.get("status"), "Flow.outcome": data.get("outcome"), "Flow.token": data.get("token"),
        "Flow.paymentId": data.get("payment_id"), "Flow.cardBrand": card.get("brand"),
        "Flow.cardLast4": card.get("last4"), "Flow.reference": data.get("reference"),
        "Flow.declineCode": data.get("decline_code"), "Flow.message": data.get("message"),
        "Flow.channel": data.get("channel"),
    }
    return {key: _text(values[key]) for key in WORKFLOW_INPUTS}


def workflow_target(flow_id: str) -> str:
    """The delivery ``target`` of a workflow start: ``genesys:flow:<flow id>``."""
    return WORKFLOW_TARGET_PREFIX + flow_id


# -- outbox senders -----------------------------------------------------------------------------------
SettingsLoader = Callable[[str], GenesysSettings | None]
"""``client_id -> GenesysSettings | None``, read at send time (the composition root supplies it)."""


class _GenesysSender:
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


class ParticipantAttributesSender(_GenesysSender):
    """Outbox sender of kind ``genesys_attributes``: writes :func:`participant_attributes` of the event's
    session view onto the session's participant of its conversation. An event without a conversation or
    participant is dead at once (``no_participant``).

    Attributes hold the latest state, and Genesys merges them, so an older event retried after a newer
    one of the same session was written would put a stale status back on the conversation: when
    ``superseded`` (given a ``Session``) finds a delivered ``genesys_attributes`` delivery of a later event
    of the session, nothing is sent and the attempt is recorded as delivered with error
    ``superseded_by_newer_event``.
    """

    def __init__(self, api: GenesysApi, load_settings: SettingsLoader, box: SecretBox, Session=None):
        super().__init__(api, load_settings, box)
        self.Session = Session

    def superseded(self, session_id: str, sequence: int) -> bool:
        """True when a later event of ``session_id`` already had its attributes written."""
        if self.Session is None:
            return False
        with self.Session() as db:
            return db.scalar(select(Delivery.id).join(Event, Event.id == Delivery.event_id).where(
                Event.session_id == session_id, Event.sequence > sequence,
                Delivery.kind == KIND_ATTRIBUTES, Delivery.status == "delivered").limit(1)) is not None

    def __call__(self, job: DeliveryJob) -> SendResult:
        event = json.loads(job.body)
        data = event.get("data") or {}
        named = parse_attributes_target(job.target)
        conversation_id, participant_id = named or (data.get("conversation_id"), data.get("participant_id"))
        if not conversation_id or not participant_id:
            return SendResult(None, False, "no_participant", 0.0, permanent=True)
        if data.get("session_id") and isinstance(event.get("sequence"), int) and \
                self.superseded(data["session_id"], event["sequence"]):
            return SendResult(None, False, "superseded_by_newer_event", 0.0, skipped=True)
        creds = self._credentials(job)
        if isinstance(creds, SendResult):
            return creds
        return self._result(self.api.patch_participant_attributes(
            creds, str(conversation_id), str(participant_id), participant_attributes(data)))


class WorkflowSender(_GenesysSender):
    """Outbox sender of kind ``genesys_workflow``: starts the flow named by the delivery target
    (``genesys:flow:<flow id>``) with :func:`workflow_input` of the event, named
    ``paygate <event type> <session id>``."""

    def __call__(self, job: DeliveryJob) -> SendResult:
        if not job.target.startswith(WORKFLOW_TARGET_PREFIX) or len(job.target) == len(WORKFLOW_TARGET_PREFIX):
            return SendResult(None, False, "invalid_workflow_target", 0.0, permanent=True)
        flow_id = job.target[len(WORKFLOW_TARGET_PREFIX):]
        creds = self._credentials(job)
        if isinstance(creds, SendResult):
            return creds
        event = json.loads(job.body)
        session_id = (event.get("data") or {}).get("session_id") or ""
        name = f"paygate {job.event_type} {session_id}".strip()[:200]
        return self._result(self.api.start_workflow(creds, flow_id, name, workflow_input(event)))


def build_senders(Session, http: httpx.Client, *, clock: Clock, box: SecretBox, load_settings: SettingsLoader,
                  timeout: float = DEFAULT_TIMEOUT_SECONDS, tokens: TokenProvider | None = None) -> dict[str, Sender]:
    """The Genesys senders for :class:`~callbacks.delivery.Deliverer` (``senders=``), sharing one token
    cache. ``Session`` is the sessionmaker on the outbox tables (to skip superseded attribute writes);
    ``load_settings`` reads a client's settings at send time; ``box`` opens the sealed OAuth secrets
    (:class:`~integrations.genesys.settings.SecretBox` of ``PAYGATE_SECRET_KEY``)."""
    api = GenesysApi(http, tokens or TokenProvider(http, clock, timeout=timeout), timeout=timeout)
    load = load_settings
    return {KIND_ATTRIBUTES: ParticipantAttributesSender(api, load, box, Session),
            KIND_WORKFLOW: WorkflowSender(api, load, box)}
