"""Events (the signed callbacks) with their delivery state and attempts; redelivery."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import g, jsonify
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from spectree import Tag

from callbacks import outbox
from callbacks.events import EVENT_TYPES, OBJECTS
from callbacks.models import Event as EventRow
from kernel.errors import NotFound
from payments.models import Payment as PaymentRow
from payments.models import PaymentSession as SessionRow

from .. import services
from ..schemas import Params, PaymentSession, Timestamp, View
from . import get, post

TAGS = [Tag(name="events", description="The signed callbacks, their deliveries and attempts.")]


class EventsQuery(Params):
    """Query of ``GET /v1/events``."""

    session_id: Annotated[str, Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None, description="Only this payment session's events (its payment's, refunds' and disputes' included), "
                          "in sequence order (none for an unknown session). Without it or payment_id: the "
                          "client's 100 most recent events, oldest first.")
    payment_id: Annotated[str, Field(min_length=1)] | SkipJsonSchema[None] = Field(
        None, description="Only the events numbered with this payment: its session's when it has one, else its "
                          "own (a merchant-initiated payment's).")


class DeliveryAttempt(View):
    """One HTTP attempt of a delivery."""

    number: int
    started_at: Timestamp
    status_code: int | None
    latency_ms: float
    error: str | None
    outcome: Literal["delivered", "retry", "dead"]


class Delivery(View):
    """Where an event goes, and how that went."""

    id: int
    kind: str = Field(description="webhook, genesys_attributes (participant attributes) or genesys_workflow "
                                  "(Architect workflow start).")
    target: str = Field(description="The webhook URL, genesys:attributes or genesys:flow:<workflow id>.")
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None = Field(description="null unless pending.")
    delivered_at: Timestamp | None
    attempt_log: list[DeliveryAttempt]


class Event(View):
    """An event as delivered (``id``, ``type``, ``object``, ``created_at``, ``sequence``, ``data``) plus its
    session and deliveries."""

    id: str
    type: Literal[tuple(sorted(EVENT_TYPES))]  # type: ignore[valid-type]
    object: Literal[tuple(sorted(OBJECTS))] = Field(  # type: ignore[valid-type]
        description="What data is the view of.")
    created_at: Timestamp
    sequence: int = Field(description="Increases by one per root (the session, with its payment, refunds and "
                                      "disputes), so receivers can order events.")
    session_id: str | None
    data: PaymentSession | dict[str, Any] = Field(
        description="The view of the object at that moment: the session view for payment_session.")
    deliveries: list[Delivery]


class EventList(View):
    """``{"data": [event, ...]}``."""

    data: list[Event]


@get("/events", operation_id="listEvents", tags=TAGS, ok={200: (EventList, "Events with their delivery state.")})
def list_events(query: EventsQuery):
    """List events and their deliveries."""
    session_id = query.session_id
    svc = services()
    with svc.Session() as db:
        root_id = None
        if session_id is None and query.payment_id is not None:
            p = db.get(PaymentRow, query.payment_id)
            if p is None or p.client_id != g.client_id:
                return jsonify({"data": []})
            session_id, root_id = p.session_id, (None if p.session_id else p.id)
        if session_id is not None:
            s = db.get(SessionRow, session_id)
            if s is None or s.client_id != g.client_id:
                return jsonify({"data": []})
        data = outbox.list_events(db, client_id=g.client_id, session_id=session_id, root_id=root_id)
    return jsonify({"data": data})


@post("/events/<event_id>/redeliver", operation_id="redeliverEvent", tags=TAGS,
      ok={202: (Event, "Queued for delivery again.")}, errors={404: ["event_not_found"]})
def redeliver_event(event_id: str):
    """Deliver an event again.

    Puts every delivery of the event back in the queue, due now (also dead or delivered ones)."""
    svc = services()
    with svc.Session.begin() as db:
        event = db.get(EventRow, event_id)
        if event is None or event.client_id != g.client_id:
            raise NotFound("No such event.", code="event_not_found")
        outbox.redeliver(db, event_id, svc.clock())
    outbox.wake(svc.redis)
    with svc.Session() as db:
        view = next(v for v in outbox.list_events(db, client_id=g.client_id, session_id=event.session_id)
                    if v["id"] == event_id)
    return jsonify(view), 202
