"""Where the domain's events go: numbering per root, destinations, then the outbox.

Every event is written through :func:`record_for` (or :func:`record` for a session's own events) in the
transaction of the state change it describes (:func:`callbacks.outbox.record_event`).

* **Root and sequence** (docs/api.md, "Events"): a session numbers its own events and those of its payment,
  refunds and disputes (1, 2, ...); a payment without a session (merchant-initiated, or a subscription's
  renewal) numbers its own; a subscription numbers its own ``subscription.*`` events. The
  counter is incremented with one ``UPDATE ... RETURNING`` on the root row, so concurrent transactions
  (a refund and a dispute webhook at once) wait on the row lock instead of reading the same value.
* **Destinations**: the signed webhook to the object's ``callback_url`` (a refund's, else its payment's or
  session's), else the client's; and, for a client with Genesys settings, the participant attributes (on
  the conversation and participant the event names) and the workflow start
  (:func:`integrations.genesys.writeback.destinations`).
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlparse, urlsplit

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm.attributes import set_committed_value

from callbacks.models import Event
from callbacks.outbox import KIND_WEBHOOK, Destination, record_event
from integrations.genesys import writeback
from integrations.genesys.settings import settings_of
from kernel.blocking import blocking
from kernel.clock import IdFactory
from kernel.errors import ValidationFailed
from kernel.netguard import AddressNotAllowed, Resolver, check_host, system_resolver

from .models import ApiClient, Payment, PaymentSession, Subscription

_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


CALLBACK_URL_NOT_ALLOWED = "callback_url_not_allowed"


def callback_url_allowed(url: str, *, production: bool) -> bool:
    """Whether ``url`` has the shape of an events endpoint (docs/api.md, "Payment sessions": ``callback_url``):
    an absolute https URL, or http to a loopback host, or any http outside production. In production the host's
    addresses are checked too (:func:`callback_url_problem`), which refuses the loopback hosts again."""
    try:
        parsed = urlparse(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return False
    if not parsed.netloc:
        return False
    if parsed.scheme == "https":
        return True
    return parsed.scheme == "http" and (not production or parsed.hostname in _LOOPBACK_HOSTS)


def callback_url_problem(url: str, *, production: bool, resolver: Resolver = system_resolver) -> str | None:
    """What is wrong with ``url`` as an events endpoint, as a field code, or None when it may be used.

    ``"invalid_url"``: :func:`callback_url_allowed` refuses its shape (or it names no host or a bad port).
    ``"callback_url_not_allowed"`` (production only; docs/api.md, "Callback URLs in production"): its host is,
    or resolves to, an address that is not global unicast (:func:`kernel.netguard.check_host`). A host that does
    not resolve now is accepted: every delivery resolves and checks it again before connecting."""
    if not callback_url_allowed(url, production=production):
        return "invalid_url"
    if not production:
        return None
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return "invalid_url"
    if not host:
        return "invalid_url"
    try:
        with blocking():  # a DNS lookup: the web request's admission slot is free meanwhile (kernel/blocking.py)
            check_host(host, port, resolver=resolver)
    except AddressNotAllowed:
        return CALLBACK_URL_NOT_ALLOWED
    except UnicodeError:  # a name IDNA cannot encode can never be connected to
        return "invalid_url"
    except OSError:  # does not resolve now (socket.gaierror): checked again before each delivery
        return None
    return None


def callback_url_error(problem: str) -> ValidationFailed:
    """The 400 for a :func:`callback_url_problem` code: ``validation_error`` with field ``callback_url``:
    ``invalid_url``, or ``callback_url_not_allowed`` as both the error code and the field code."""
    if problem == CALLBACK_URL_NOT_ALLOWED:
        return ValidationFailed("callback_url must be a public address: its host is, or resolves to, a private, "
                                "loopback, link-local, multicast or reserved address.", code=CALLBACK_URL_NOT_ALLOWED,
                                details={"fields": {"callback_url": CALLBACK_URL_NOT_ALLOWED}})
    return ValidationFailed("callback_url is not allowed here.", details={"fields": {"callback_url": problem}})


def check_callback_url(url: str | None, *, production: bool, resolver: Resolver = system_resolver) -> None:
    """Raises :class:`~kernel.errors.ValidationFailed` for a given URL that :func:`callback_url_problem` refuses:
    400 ``validation_error`` (field ``callback_url``: ``invalid_url``), or in production 400
    ``callback_url_not_allowed`` (field ``callback_url``: ``callback_url_not_allowed``) for a host that is or
    resolves to an address that is not global unicast."""
    if url:
        problem = callback_url_problem(url, production=production, resolver=resolver)
        if problem:
            raise callback_url_error(problem)


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


_NEXT_SEQUENCE: dict = {}
""":func:`next_sequence`'s ``UPDATE ... RETURNING`` per table."""


def next_sequence(db: DbSession, root: PaymentSession | Payment | Subscription) -> int:
    """Increments ``root.event_sequence`` in the database (one ``UPDATE ... RETURNING``) and returns the new
    value; the ORM object is updated to match. Pending ORM changes are flushed first."""
    table = type(root).__table__
    statement = _NEXT_SEQUENCE.get(table)
    if statement is None:  # built once per table
        statement = _NEXT_SEQUENCE[table] = (update(table).where(table.c.id == bindparam("root_id"))
                                             .values(event_sequence=table.c.event_sequence + 1)
                                             .returning(table.c.event_sequence))
    value = db.execute(statement, {"root_id": root.id}).scalar_one()
    set_committed_value(root, "event_sequence", value)
    return value


def record_for(db: DbSession, *, client: ApiClient, root: PaymentSession | Payment | Subscription, event_type: str,
               object_type: str, data: dict, now: datetime, new_id: IdFactory, callback_url: str | None,
               conversation_id: str | None, participant_id: str | None) -> Event:
    """Adds one event numbered under ``root`` (a session, a payment without session, or a subscription) and its
    deliveries to ``db`` without committing. ``object_type``/``data``: the object the event describes and its view (no
    card number or CVC). ``callback_url`` overrides the client's endpoint; ``conversation_id`` and
    ``participant_id`` say whose Genesys attributes to write (none without both)."""
    session_id = root.id if isinstance(root, PaymentSession) else None
    return record_event(db, client_id=client.id, event_type=event_type, data=data, now=now, new_id=new_id,
                        sequence=next_sequence(db, root), root_id=root.id, session_id=session_id,
                        object_type=object_type,
                        destinations=destinations_for(client, event_type=event_type, callback_url=callback_url,
                                                      conversation_id=conversation_id,
                                                      participant_id=participant_id))


def record(db: DbSession, *, client: ApiClient, session: PaymentSession, event_type: str, data: dict,
           now: datetime, new_id: IdFactory) -> Event:
    """A session's own event (``object: payment_session``, ``data`` its session view), numbered under the
    session, sent to its ``callback_url`` (else the client's) and written back to its participant."""
    return record_for(db, client=client, root=session, event_type=event_type, object_type="payment_session",
                      data=data, now=now, new_id=new_id, callback_url=session.callback_url,
                      conversation_id=session.conversation_id, participant_id=session.participant_id)


def root_of(db: DbSession, payment: Payment) -> tuple[PaymentSession | Payment, PaymentSession | None]:
    """``(root, session)`` for events about ``payment``: its session when it has one, else the payment (a
    merchant-initiated charge or a subscription's renewal numbers its own events)."""
    session = db.get(PaymentSession, payment.session_id) if payment.session_id else None
    return (session if session is not None else payment), session


def payment_event(db: DbSession, *, client: ApiClient, payment: Payment, event_type: str, data: dict,
                  now: datetime, new_id: IdFactory, object_type: str = "payment",
                  callback_url: str | None = None, conversation_id: str | None = None,
                  participant_id: str | None = None) -> Event:
    """An event about ``payment`` or one of its refunds or disputes (``object_type``, ``data`` that object's
    view), numbered under the payment's root. It goes to ``callback_url`` if given, else the payment's, else its
    session's (else the client's); attributes are written on ``conversation_id``/``participant_id`` when both are
    given, else on the payment's."""
    root, session = root_of(db, payment)
    target = callback_url or payment.callback_url or (session.callback_url if session is not None else None)
    if not (conversation_id and participant_id):
        conversation_id, participant_id = payment.conversation_id, payment.participant_id
    return record_for(db, client=client, root=root, event_type=event_type, object_type=object_type, data=data,
                      now=now, new_id=new_id, callback_url=target, conversation_id=conversation_id,
                      participant_id=participant_id)
