"""Where the domain's events go: numbering per root and the list of destinations, then the outbox.

Every event is written through :func:`record` in the transaction of the state change it describes
(:func:`callbacks.outbox.record_event`). Destinations: the signed webhook to the session's
``callback_url``, else the client's; and, for a client with Genesys settings, the participant attributes
and the workflow start (:func:`integrations.genesys.writeback.destinations`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session as DbSession

from callbacks.models import Event
from callbacks.outbox import KIND_WEBHOOK, Destination, record_event
from integrations.genesys import writeback
from integrations.genesys.settings import settings_of
from kernel.clock import IdFactory

from .models import ApiClient, PaymentSession


def destinations_for(client: ApiClient, *, event_type: str, callback_url: str | None,
                     conversation_id: str | None, participant_id: str | None) -> list[Destination]:
    """The deliveries of one event: the webhook (``callback_url`` or the client's, when either is set) and the
    client's Genesys write-backs (:func:`integrations.genesys.writeback.destinations`; attributes only when
    the event names a conversation and participant)."""
    out = []
    target = callback_url or client.callback_url
    if target:
        out.append(Destination(KIND_WEBHOOK, target))
    out.extend(writeback.destinations(settings_of(client), event_type=event_type, conversation_id=conversation_id,
                                      participant_id=participant_id))
    return out


def record(db: DbSession, *, client: ApiClient, session: PaymentSession | None, event_type: str, data: dict,
           now: datetime, new_id: IdFactory) -> Event:
    """Adds an event and its deliveries to ``db`` without committing.

    ``sequence``: ``session.event_sequence`` is incremented and its new value used (1, 2, ... per session);
    the caller holds the session row for writing (SQLite's BEGIN IMMEDIATE, or a ``SELECT ... FOR UPDATE``
    on PostgreSQL). An event without a session has sequence 1. ``data`` must hold no card number or CVC:
    pass the object's view.
    """
    if session is not None:
        session.event_sequence = (session.event_sequence or 0) + 1
        sequence = session.event_sequence
    else:
        sequence = 1
    return record_event(db, client_id=client.id, event_type=event_type, data=data, now=now, new_id=new_id,
                        sequence=sequence, session_id=session.id if session is not None else None,
                        destinations=destinations_for(
                            client, event_type=event_type,
                            callback_url=session.callback_url if session is not None else None,
                            conversation_id=session.conversation_id if session is not None else None,
                            participant_id=session.participant_id if session is not None else None))
