"""The transactional outbox: events and their deliveries are written with the state change they describe.

:func:`record_event` only adds rows to the caller's SQLAlchemy session; the caller commits them in the
same transaction as the state change, so either both exist or neither does (no event is lost when a
process dies between the two; docs/api.md, "Events"). After the commit the caller calls :func:`wake` so a worker
picks the delivery up at once instead of on its next poll.

Delivery kinds: ``webhook`` (the signed POST of docs/api.md, "Events") is built in; other kinds (the Genesys
write-backs of :mod:`integrations.genesys.writeback`) are senders plugged into the
:class:`~callbacks.delivery.Deliverer`. The outbox does not decide where an event goes: the domain passes
its :class:`Destination` list.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

import redis as redis_lib
from sqlalchemy import insert, select
from sqlalchemy.orm import Session as DbSession

from kernel.clock import IdFactory, naive_utc, rfc3339
from kernel.db import insert_row
from kernel.errors import NotFound

from .events import build_body
from .models import Delivery, DeliveryAttempt, Event

log = logging.getLogger("paygate.callbacks")

WAKE_KEY = "paygate:outbox:wake"
WAKE_LIST_MAX = 10
KIND_WEBHOOK = "webhook"


@dataclass(frozen=True)
class Destination:
    """Where one delivery of an event goes: ``kind`` (``webhook``, or a kind a plugged-in sender handles,
    e.g. ``genesys_attributes``) and ``target`` (a URL, or a destination that sender understands)."""

    kind: str
    target: str


def record_event(db: DbSession, *, client_id: str, event_type: str, data: dict, now: datetime,
                 new_id: IdFactory, sequence: int, root_id: str | None = None, session_id: str | None = None,
                 object_type: str = "payment_session", destinations: Sequence[Destination] = ()) -> Event:
    """Adds an event and one pending delivery per destination to ``db`` without committing.

    - ``id``: ``new_id("evt")``; ``created_at``: ``now`` (aware UTC); ``sequence``: given by the caller,
      who numbers the events of one root (``root_id``: 1, 2, ...) atomically. The unique (root_id,
      sequence) constraint turns a race into an IntegrityError rather than a duplicate. ``session_id`` (the
      session the event belongs to, if any) is kept for listing by session.
    - ``object_type`` and ``data``: which object the event describes and its view; the view must hold no
      card number or CVC.
    - every destination gets a Delivery due at ``now`` in the same transaction (an event with none is still
      kept and listed).
    """
    event_id = new_id("evt")
    body = build_body(event_id, event_type, rfc3339(now), sequence, data, object_type)
    values = dict(id=event_id, client_id=client_id, session_id=session_id, root_id=root_id or session_id,
                  object=object_type, type=event_type, sequence=sequence, body=body, created_at=naive_utc(now))
    # Core INSERTs (the event, then its deliveries in one executemany) in the caller's transaction, cheaper than
    # the ORM's unit of work; the returned Event is then attached to ``db`` as the persistent row it now is. Pending
    # ORM changes are flushed first (insert_row does not flush them): the rows the event refers to exist.
    db.flush()
    event = insert_row(db, Event, values)
    if destinations:
        due = naive_utc(now)
        db.execute(insert(Delivery.__table__), [
            dict(event_id=event_id, kind=d.kind, target=d.target, status="pending", attempts=0, next_attempt_at=due,
                 created_at=due) for d in destinations])
    db.add(event)
    return event


def add_delivery(db: DbSession, event: Event, *, kind: str, target: str, now: datetime) -> Delivery:
    """Adds one pending Delivery of ``event`` (``kind`` e.g. ``webhook``; ``target`` a URL or, for the
    Genesys kinds, a destination the matching sender understands), due at ``now``. ``event`` must already
    be flushed. Does not commit."""
    delivery = Delivery(event_id=event.id, kind=kind, target=target, status="pending", attempts=0,
                        next_attempt_at=naive_utc(now), created_at=naive_utc(now))
    db.add(delivery)
    return delivery


def wake(redis: redis_lib.Redis) -> None:
    """Nudges a waiting worker (call after the commit). Best effort: a Redis failure is logged, not raised,
    because the state change is already committed and the worker polls anyway. One round trip
    (:func:`add_wake`'s two commands in a plain pipeline: the list only has to stay short, not exact)."""
    try:
        with redis.pipeline(transaction=False) as pipe:
            add_wake(pipe)
            pipe.execute()
    except redis_lib.RedisError as exc:
        log.warning("outbox wake failed", extra={"error": type(exc).__name__})


def add_wake(pipe) -> None:
    """Queues :func:`wake`'s commands on a redis-py pipeline ``pipe`` the caller executes after its commit (so a
    write path that talks to Redis then anyway sends the nudge in the same round trip): ``LPUSH`` onto
    :data:`WAKE_KEY` and ``LTRIM`` it to :data:`WAKE_LIST_MAX` entries."""
    pipe.lpush(WAKE_KEY, b"1")
    pipe.ltrim(WAKE_KEY, 0, WAKE_LIST_MAX - 1)


def redeliver(db: DbSession, event_id: str, now: datetime) -> list[Delivery]:
    """Queues every delivery of ``event_id`` again, due at ``now``, whatever its state (dead, delivered,
    pending or in flight — a lease is released so the next worker sends it again). Does not commit.

    Attempt counts and the attempt log are kept. Raises :class:`kernel.errors.NotFound`
    (``event_not_found``) for an unknown event. Returns the deliveries (possibly empty when the event had
    no target).
    """
    if db.get(Event, event_id) is None:
        raise NotFound("No such event.", code="event_not_found")
    deliveries = list(db.scalars(select(Delivery).where(Delivery.event_id == event_id).order_by(Delivery.id)))
    for d in deliveries:
        d.status = "pending"
        d.next_attempt_at = naive_utc(now)
        d.locked_until = None
        d.lock_token = None
        d.delivered_at = None
    db.flush()
    return deliveries


def _latency(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def event_view(event: Event, deliveries_with_attempts: Iterable[tuple[Delivery, Sequence[DeliveryAttempt]]]) -> dict:
    """The public view of one event for ``GET /v1/events``::

        {"id", "type", "object", "created_at", "sequence", "session_id", "data",
         "deliveries": [{"id", "kind", "target", "status", "attempts", "last_status_code", "last_error",
                         "next_attempt_at", "delivered_at",
                         "attempt_log": [{"number", "started_at", "status_code", "latency_ms", "error",
                                          "outcome"}]}]}

    Times are RFC 3339 UTC; ``next_attempt_at`` is null unless the delivery is pending. No secret appears.
    """
    deliveries = []
    for d, attempts in deliveries_with_attempts:
        deliveries.append({
            "id": d.id, "kind": d.kind, "target": d.target, "status": d.status, "attempts": d.attempts,
            "last_status_code": d.last_status_code, "last_error": d.last_error,
            "next_attempt_at": rfc3339(d.next_attempt_at) if d.status == "pending" else None,
            "delivered_at": rfc3339(d.delivered_at),
            "attempt_log": [{"number": a.number, "started_at": rfc3339(a.started_at),
                             "status_code": a.status_code, "latency_ms": _latency(a.latency_ms),
                             "error": a.error, "outcome": a.outcome}
                            for a in sorted(attempts, key=lambda a: (a.number, a.id))],
        })
    return {"id": event.id, "type": event.type, "object": event.object, "created_at": rfc3339(event.created_at),
            "sequence": event.sequence, "session_id": event.session_id,
            "data": json.loads(event.body).get("data"), "deliveries": deliveries}


def list_events(db: DbSession, *, client_id: str, session_id: str | None, limit: int = 100,
                root_id: str | None = None) -> list[dict]:
    """Views (:func:`event_view`) of ``client_id``'s events.

    With ``session_id``: that session's events in sequence order (its payment's, refunds' and disputes'
    included: they are numbered with the session). With ``root_id``: the events numbered under that root
    (a session, or a payment without session) in sequence order. Without either: the client's ``limit``
    most recent events, oldest first (ties: by root, then sequence). Events of other clients are never
    returned.
    """
    query = select(Event).where(Event.client_id == client_id)
    if session_id is not None:
        events = list(db.scalars(query.where(Event.session_id == session_id).order_by(Event.sequence)))
    elif root_id is not None:
        events = list(db.scalars(query.where(Event.root_id == root_id).order_by(Event.sequence)))
    else:
        events = list(db.scalars(query.order_by(Event.created_at.desc(), Event.root_id.desc(),
                                                    Event.sequence.desc(), Event.id.desc()).limit(limit)))
        events.reverse()
    if not events:
        return []
    deliveries = list(db.scalars(select(Delivery).where(Delivery.event_id.in_([e.id for e in events]))
                                 .order_by(Delivery.id)))
    attempts: dict[int, list[DeliveryAttempt]] = {d.id: [] for d in deliveries}
    if deliveries:
        for a in db.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id.in_(list(attempts)))):
            attempts[a.delivery_id].append(a)
    by_event: dict[str, list[tuple[Delivery, list[DeliveryAttempt]]]] = {e.id: [] for e in events}
    for d in deliveries:
        by_event[d.event_id].append((d, attempts[d.id]))
    return [event_view(e, by_event[e.id]) for e in events]
