"""Pushing results into Genesys Cloud (contract §6) and texting the checkout link (contract §4).

Pieces, each usable alone:

- :class:`TokenProvider` — OAuth 2.0 client-credentials tokens from the region's login host
  (``POST /oauth/token``, HTTP Basic ``client_id:client_secret``, form ``grant_type=client_credentials``;
  reference genesys.md §3.1), cached per Genesys client until 60 s before ``expires_in`` runs out.
  There is no refresh token for this grant, so :meth:`TokenProvider.invalidate` drops a token Genesys
  answered 401 to and the next call fetches a new one.
- :class:`GenesysApi` — one Platform API call with the bearer token: on 401 it invalidates the token,
  fetches a new one and repeats the call once. It never sleeps: a 429's ``Retry-After`` (header, else
  the ``[42] seconds`` of Genesys's normalized 429 body, reference §3.2) is returned to the caller.
- :class:`ParticipantAttributesSender` / :class:`WorkflowSender` — the outbox senders of the kinds
  ``genesys_attributes`` (``PATCH /api/v2/conversations/{cid}/participants/{pid}/attributes`` with
  string values only, reference §2a) and ``genesys_workflow`` (``POST /api/v2/flows/executions`` with
  ``Flow.``-prefixed ``inputData``, reference §2b). :func:`build_senders` wires both for a Deliverer.
- :func:`link_message` — the text of the agentless SMS/WhatsApp message (reference §5.1: 765 characters
  at most for SMS, 2000 otherwise).

What is sent comes only from the event's data (the session view), which never holds a card number or
CVC; the builders below copy named fields and nothing else. Nothing here imports Flask, logs a token,
a secret or a response body.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Callable, Mapping
from urllib.parse import quote

import httpx
from sqlalchemy import select

from paygate.clock import Clock, IdFactory, as_utc, rfc3339
from paygate.errors import Conflict, PaygateError, ValidationFailed
from paygate.genesys_settings import GenesysNotConfigured, GenesysSettings, SecretBox, settings_of
from paygate.models import ApiClient, Delivery, Event
from paygate.money import format_amount

from .delivery import DeliveryJob, SendResult, Sender
from .outbox import (GENESYS_ATTRIBUTES_TARGET, GENESYS_WORKFLOW_TARGET_PREFIX, KIND_GENESYS_ATTRIBUTES,
                     KIND_GENESYS_WORKFLOW)

log = logging.getLogger("paygate.genesys")

TOKEN_MARGIN_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 10.0
SMS_MAX_CHARS = 765
OTHER_MAX_CHARS = 2000
ATTRIBUTES_TARGET = GENESYS_ATTRIBUTES_TARGET
WORKFLOW_TARGET_PREFIX = GENESYS_WORKFLOW_TARGET_PREFIX
USER_AGENT = "paygate-genesys/1"

ATTRIBUTE_NAMES = ("paymentStatus", "paymentOutcome", "paymentToken", "paymentCardBrand", "paymentCardLast4",
                   "paymentId", "paymentDeclineCode", "paymentMessage", "paymentSessionId")
"""Participant attribute names written per event (contract §6), all string-valued."""

WORKFLOW_INPUTS = ("Flow.eventType", "Flow.eventId", "Flow.eventSequence", "Flow.eventCreatedAt",
                   "Flow.sessionId", "Flow.conversationId", "Flow.participantId", "Flow.customerAccountId",
                   "Flow.intent", "Flow.amount", "Flow.currency", "Flow.status", "Flow.outcome", "Flow.token",
                   "Flow.paymentId", "Flow.cardBrand", "Flow.cardLast4", "Flow.reference", "Flow.declineCode",
                   "Flow.message", "Flow.channel")
"""``inputData`` keys of a workflow start (declare them as string inputs in the Architect workflow)."""

_RETRY_IN_BODY = re.compile(r"\[(\d{1,6})\]\s*seconds")
_CODE_RE = re.compile(r"^[A-Za-z0-9._-]{1,80}$")


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


def link_message(checkout_url: str, amount_text: str, expires_text: str, messenger_type: str) -> str:
    """The agentless message text: a short friendly sentence with the link, or the bare link when the
    sentence would not fit. Limits (reference §5.1): 765 characters for ``sms``, 2000 otherwise.
    Raises ``ValueError`` when even the bare link is too long."""
    limit = SMS_MAX_CHARS if messenger_type == "sms" else OTHER_MAX_CHARS
    text = (f"Here is your secure payment link for {amount_text}: {checkout_url} "
            f"It works until {expires_text}. We will never ask for your card details by message.")
    if len(text) <= limit:
        return text
    bare = f"Pay securely: {checkout_url}"
    if len(bare) <= limit:
        return bare
    raise ValueError("the checkout link does not fit in one message")


def parse_retry_after(header: str | None, body: bytes | None, now: datetime) -> float | None:
    """Seconds to wait from a 429: the ``Retry-After`` header (delta-seconds or HTTP-date, RFC 9110
    §10.2.3), else Genesys's normalized body ``"Retry the request in [42] seconds"`` (reference §3.2).
    None when neither says; never negative."""
    if header:
        value = header.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return max(0.0, (as_utc(when) - now).total_seconds())
    if body:
        match = _RETRY_IN_BODY.search(body[:2000].decode("utf-8", "replace"))
        if match:
            return float(match.group(1))
    return None


# -- credentials and tokens ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Credentials:
    """Where and as whom to call Genesys: base URLs (no trailing slash), OAuth client id and secret."""

    api_url: str
    login_url: str
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def of(cls, settings: GenesysSettings, box: SecretBox) -> "Credentials":
        """From stored settings; the sealed secret is opened with ``box`` (errors as
        :meth:`GenesysSettings.secret`)."""
        return cls(settings.api_url, settings.login_url, settings.client_id, settings.secret(box))

    @property
    def cache_key(self) -> tuple[str, str, str]:
        # the secret takes part through a digest, so a changed secret gets a new token
        return self.login_url, self.client_id, hashlib.sha256(self.client_secret.encode()).hexdigest()


class TokenError(Exception):
    """The login host did not give a token. ``reason`` is a short code (``genesys_oauth_rejected``,
    ``genesys_oauth_unavailable``, ``genesys_oauth_timeout``, ...), ``status_code`` the login host's
    HTTP status (None without an answer), ``retry_after`` seconds from a 429."""

    def __init__(self, reason: str, status_code: int | None = None, retry_after: float | None = None,
                 transport_error: bool = False):
        super().__init__(reason if status_code is None else f"{reason}: http_{status_code}")
        self.reason = reason
        self.status_code = status_code
        self.retry_after = retry_after
        self.transport_error = transport_error


@dataclass
class _Cached:
    token: str = field(repr=False)
    good_until: datetime


class TokenProvider:
    """Client-credentials tokens, cached in memory per (login host, client id, secret).

    A token is reused until ``margin`` seconds (60) before its ``expires_in`` ends (for a very short
    lifetime, until half of it). Concurrent callers for the same client wait for one fetch. Thread-safe.
    ``clock`` is the injected aware-UTC clock; ``timeout`` bounds each login request (seconds).
    """

    def __init__(self, http: httpx.Client, clock: Clock, *, margin: float = TOKEN_MARGIN_SECONDS,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self.http = http
        self.clock = clock
        self.margin = margin
        self.timeout = timeout
        self._cache: dict[tuple, _Cached] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetches = 0
        """How many tokens were requested from a login host (for tests and metrics)."""

    def __repr__(self) -> str:
        return f"TokenProvider(cached={len(self._cache)})"

    def token(self, creds: Credentials) -> str:
        """A valid access token for ``creds``. Raises :class:`TokenError` when none can be had."""
        key = creds.cache_key
        cached = self._cache.get(key)
        if cached is not None and self.clock() < cached.good_until:
            return cached.token
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._cache.get(key)
            if cached is not None and self.clock() < cached.good_until:
                return cached.token
            token, lifetime = self._fetch(creds)
            keep = lifetime - self.margin if lifetime > 2 * self.margin else lifetime / 2
            self._cache[key] = _Cached(token, self.clock() + timedelta(seconds=max(0.0, keep)))
            return token

    def invalidate(self, creds: Credentials, token: str | None = None) -> None:
        """Forgets the cached token of ``creds`` (only if it is still ``token``, when given), so a token
        another thread already replaced is kept."""
        key = creds.cache_key
        with self._guard:
            cached = self._cache.get(key)
            if cached is not None and (token is None or cached.token == token):
                del self._cache[key]

    def _fetch(self, creds: Credentials) -> tuple[str, float]:
        self.fetches += 1
        try:
            response = self.http.post(f"{creds.login_url}/oauth/token", data={"grant_type": "client_credentials"},
                                      auth=(creds.client_id, creds.client_secret), timeout=self.timeout,
                                      headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                                      follow_redirects=False)
        except httpx.TimeoutException:
            raise TokenError("genesys_oauth_timeout", transport_error=True) from None
        except (httpx.TransportError, httpx.InvalidURL):
            raise TokenError("genesys_oauth_unreachable", transport_error=True) from None
        status = response.status_code
        if status == 429:
            raise TokenError("genesys_oauth_rate_limited", status,
                             parse_retry_after(response.headers.get("Retry-After"), response.content, self.clock()))
        if status in (400, 401, 403):
            raise TokenError("genesys_oauth_rejected", status)
        if not 200 <= status < 300:
            raise TokenError("genesys_oauth_unavailable", status)
        try:
            payload = response.json()
            token = payload["access_token"]
            lifetime = float(payload.get("expires_in") or 300)
        except (ValueError, KeyError, TypeError):
            raise TokenError("genesys_oauth_bad_response", status) from None
        if not isinstance(token, str) or not token:
            raise TokenError("genesys_oauth_bad_response", status)
        return token, lifetime


# -- API calls ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenesysResponse:
    """The result of one :meth:`GenesysApi.call` (including a token refresh and repeat on 401).

    ``status_code`` of the API answer (None when there was none: transport failure or no token);
    ``ok`` for 2xx; ``error`` a short code without any body text (``http_429``,
    ``http_400: bad.request``, ``timeout``, ``genesys_oauth_rejected: http_401``, ...);
    ``retry_after`` seconds from a 429; ``payload`` the parsed JSON answer of a 2xx (or None).
    """

    status_code: int | None
    error: str | None
    latency_ms: float
    transport_error: bool = False
    retry_after: float | None = None
    payload: object = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class GenesysApi:
    """Calls the Genesys Cloud Platform API as an OAuth client (client credentials).

    ``tokens`` supplies and caches tokens; ``timeout`` bounds each request (seconds). Redirects are not
    followed. Thread-safe when the ``httpx.Client`` is (it is).
    """

    def __init__(self, http: httpx.Client, tokens: TokenProvider, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self.http = http
        self.tokens = tokens
        self.timeout = timeout

    def call(self, creds: Credentials, method: str, path: str, body: dict | None = None) -> GenesysResponse:
        """``method`` ``creds.api_url + path`` with JSON ``body`` and ``Authorization: Bearer``.

        On 401 the token is dropped, a new one fetched and the call made once more (Genesys has no
        refresh token for client credentials, reference §3.2). Never raises for HTTP or transport
        failures and never sleeps; see :class:`GenesysResponse`.
        """
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                token = self.tokens.token(creds)
            except TokenError as err:
                return GenesysResponse(None, str(err)[:200], _ms(started), transport_error=err.transport_error,
                                       retry_after=err.retry_after)
            try:
                response = self.http.request(method, creds.api_url + path, json=body, timeout=self.timeout,
                                             follow_redirects=False,
                                             headers={"Authorization": f"Bearer {token}",
                                                      "Accept": "application/json", "User-Agent": USER_AGENT})
            except httpx.TimeoutException as exc:
                return GenesysResponse(None, f"timeout: {type(exc).__name__}", _ms(started), transport_error=True)
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                return GenesysResponse(None, f"connection_error: {type(exc).__name__}", _ms(started),
                                       transport_error=True)
            if response.status_code == 401 and attempt == 1:
                self.tokens.invalidate(creds, token)
                continue
            return _response_of(response, started, self.tokens.clock)
        raise AssertionError("unreachable")

    def patch_participant_attributes(self, creds: Credentials, conversation_id: str, participant_id: str,
                                     attributes: Mapping[str, str]) -> GenesysResponse:
        """``PATCH /api/v2/conversations/{conversationId}/participants/{participantId}/attributes``
        ``{"attributes": {...}}`` (reference §2a; the generic endpoint works for every media type).
        Raises ``TypeError`` for a non-string value (Genesys would answer 400)."""
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
            raise TypeError("participant attributes must be strings")
        path = (f"/api/v2/conversations/{quote(conversation_id, safe='')}/participants/"
                f"{quote(participant_id, safe='')}/attributes")
        return self.call(creds, "PATCH", path, {"attributes": dict(attributes)})

    def start_workflow(self, creds: Credentials, flow_id: str, name: str,
                       input_data: Mapping[str, str]) -> GenesysResponse:
        """``POST /api/v2/flows/executions`` ``{"flowId", "name", "inputData"}`` (reference §2b); the
        answer's ``id`` is the flow execution id. Raises ``ValueError`` for an input key without the
        ``Flow.`` prefix."""
        if not all(k.startswith("Flow.") for k in input_data):
            raise ValueError("workflow input names must start with 'Flow.'")
        return self.call(creds, "POST", "/api/v2/flows/executions",
                         {"flowId": flow_id, "name": name, "inputData": dict(input_data)})

    def send_agentless_message(self, creds: Credentials, *, from_address: str, to_address: str,
                               messenger_type: str, text: str) -> GenesysResponse:
        """``POST /api/v2/conversations/messages/agentless`` (reference §5.1) with ``fromAddress``,
        ``toAddress``, ``toAddressMessengerType`` and ``textBody``; the answer's ``id`` is the message id.
        ``to_address`` must already be in the messenger's format (E.164 for SMS, digits for WhatsApp)."""
        return self.call(creds, "POST", "/api/v2/conversations/messages/agentless",
                         {"fromAddress": from_address, "toAddress": to_address,
                          "toAddressMessengerType": messenger_type, "textBody": text,
                          "useExistingActiveConversation": False})


def _response_of(response: httpx.Response, started: float, clock: Clock) -> GenesysResponse:
    status = response.status_code
    latency = _ms(started)
    if 200 <= status < 300:
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None
        return GenesysResponse(status, None, latency, payload=payload)
    error = f"http_{status}"
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        code = None
    if isinstance(code, str) and _CODE_RE.match(code):
        error = f"{error}: {code}"
    retry_after = None
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), response.content, clock())
    return GenesysResponse(status, error, latency, retry_after=retry_after)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0


# -- outbox senders -----------------------------------------------------------------------------------
SettingsLoader = Callable[[str], GenesysSettings | None]


def settings_loader(Session) -> SettingsLoader:
    """``client_id -> GenesysSettings | None`` read from ``api_clients.genesys`` at send time."""

    def load(client_id: str) -> GenesysSettings | None:
        with Session() as db:
            return settings_of(db.get(ApiClient, client_id))

    return load


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
                Delivery.kind == KIND_GENESYS_ATTRIBUTES, Delivery.status == "delivered").limit(1)) is not None

    def __call__(self, job: DeliveryJob) -> SendResult:
        event = json.loads(job.body)
        data = event.get("data") or {}
        conversation_id, participant_id = data.get("conversation_id"), data.get("participant_id")
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


def build_senders(Session, http: httpx.Client, *, clock: Clock, box: SecretBox,
                  timeout: float = DEFAULT_TIMEOUT_SECONDS, tokens: TokenProvider | None = None) -> dict[str, Sender]:
    """The two Genesys senders for :class:`~callbacks.delivery.Deliverer` (``senders=``), sharing one
    token cache. ``Session`` is the sessionmaker the settings are read through; ``box`` opens the sealed
    OAuth secrets (:class:`paygate.genesys_settings.SecretBox` of ``PAYGATE_SECRET_KEY``)."""
    api = GenesysApi(http, tokens or TokenProvider(http, clock, timeout=timeout), timeout=timeout)
    load = settings_loader(Session)
    return {KIND_GENESYS_ATTRIBUTES: ParticipantAttributesSender(api, load, box, Session),
            KIND_GENESYS_WORKFLOW: WorkflowSender(api, load, box)}


# -- sending the checkout link (contract §4, send-link) ---------------------------------------------
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
MESSENGER_TYPES = ("sms", "whatsapp")
SEND_LINK_LIMIT = 3
SEND_LINK_WINDOW_SECONDS = 600
_SEND_KEY = "paygate:sendlink:{sid}:sent"


def mask_address(address: str) -> str:
    """A phone number as logs may show it: country prefix and last four digits (``+1555***4567``)."""
    if len(address) <= 8:
        return "***"
    return f"{address[:5]}***{address[-4:]}"


@dataclass(frozen=True)
class LinkSent:
    """The result of :meth:`LinkSender.send`: the Genesys message id and what was sent where.
    :meth:`as_dict` is the 200 body of ``POST /v1/payment-sessions/{id}/send-link``."""

    session_id: str
    message_id: str
    to: str
    messenger_type: str
    from_address: str
    sent_at: str

    def as_dict(self) -> dict:
        return {"sent": True, "message_id": self.message_id, "to": self.to, "messenger_type": self.messenger_type}


def last_send_of(s) -> LinkSent | None:
    """The last accepted send recorded on a :class:`~paygate.models.PaymentSession` row (``link_*``
    columns, written by ``SessionService.record_link_sent``), or None when the link was never sent."""
    if not s.link_sends or not s.link_sent_to:
        return None
    return LinkSent(s.id, s.link_message_id or "", s.link_sent_to, s.link_messenger_type or "sms",
                    s.link_from_address or "", rfc3339(s.link_sent_at))


class LinkSender:
    """Texts a pending session's checkout link through Genesys's agentless messaging API, synchronously.

    Dependencies: ``sessions`` (a :class:`paygate.sessions.SessionService`: ``get``, ``checkout_url``),
    ``redis`` (rate limit and the last send), ``api`` (:class:`GenesysApi`), ``box`` (opens the stored
    OAuth secret), ``load_settings`` (``client_id -> GenesysSettings | None``), ``clock``, ``new_id``.

    Per session at most ``limit`` sends (3) per ``window`` seconds (600), counted in a Redis sorted set
    (attempts count, whether or not Genesys accepted them). Each accepted send is recorded on the
    session (``link_sends``, ``link_sent_at`` and the last recipient, messenger, sender and Genesys
    message id: :meth:`paygate.sessions.SessionService.record_link_sent`) and logged as
    ``checkout link sent`` with the number masked, so the agent view can send it again (:meth:`resend`).
    """

    def __init__(self, *, sessions, redis, api: GenesysApi, box: SecretBox, load_settings: SettingsLoader,
                 clock: Clock, new_id: IdFactory, limit: int = SEND_LINK_LIMIT,
                 window: int = SEND_LINK_WINDOW_SECONDS):
        self.sessions = sessions
        self.redis = redis
        self.api = api
        self.box = box
        self.load_settings = load_settings
        self.clock = clock
        self.new_id = new_id
        self.limit = limit
        self.window = window

    @staticmethod
    def validate(body) -> tuple[str, str, str | None]:
        """``(to, messenger_type, from_address)`` of a send-link body, or :class:`ValidationFailed` with
        per-field codes: ``to`` must be E.164 (``+`` and 7–15 digits, ITU-T E.164), ``messenger_type``
        ``sms`` or ``whatsapp``, ``from_address`` an optional non-empty string ≤ 200 characters."""
        if not isinstance(body, dict):
            raise ValidationFailed("The request body must be a JSON object.", code="invalid_json")
        errors: dict[str, str] = {}
        to, kind, sender = body.get("to"), body.get("messenger_type"), body.get("from_address")
        if to is None:
            errors["to"] = "required"
        elif not isinstance(to, str) or not E164_RE.match(to):
            errors["to"] = "invalid_phone_number"
        if kind is None:
            errors["messenger_type"] = "required"
        elif kind not in MESSENGER_TYPES:
            errors["messenger_type"] = "invalid_choice"
        if sender is not None and (not isinstance(sender, str) or not sender.strip() or len(sender) > 200):
            errors["from_address"] = "invalid"
        for name in sorted(set(body) - {"to", "messenger_type", "from_address"}):
            errors[name] = "unknown_field"
        if errors:
            raise ValidationFailed("The send-link request is invalid.", details={"fields": errors})
        return to, kind, sender

    def send(self, client_id: str | None, session_id: str, body) -> LinkSent:
        """Validates ``body`` and sends the link of ``session_id`` (owned by ``client_id``; None skips the
        owner check, for the signed agent view).

        Raises (all :class:`paygate.errors.PaygateError`): ``session_not_found`` 404, ``validation_error``
        400, ``session_not_pending`` 409, ``genesys_not_configured`` 409, ``rate_limited`` 429
        (``details["retry_after"]`` seconds), ``genesys_unavailable`` 502 (Genesys answered non-2xx,
        timed out or gave no token).
        """
        s = self.sessions.get(client_id, session_id)
        to, kind, sender = self.validate(body)
        if s.status != "pending":
            raise Conflict(f"The link of a session that is {s.status} cannot be sent.", code="session_not_pending")
        settings = self.load_settings(s.client_id)
        if settings is None:
            raise GenesysNotConfigured("This API client has no Genesys settings (see `paygate clients genesys`).")
        sender = sender or (settings.sms_from_address if kind == "sms" else None)
        if not sender:
            raise ValidationFailed("from_address is required (no default SMS sender is configured).",
                                   details={"fields": {"from_address": "required"}})
        creds = Credentials.of(settings, self.box)
        expires = as_utc(s.expires_at)
        text = link_message(self.sessions.checkout_url(s.id), format_amount(s.amount, s.currency, s.locale),
                            expires.strftime("%H:%M UTC on %d %b %Y"), kind)
        self._take_slot(s.id)
        response = self.api.send_agentless_message(creds, from_address=sender,
                                                   to_address=to if kind == "sms" else to.lstrip("+"),
                                                   messenger_type=kind, text=text)
        payload = response.payload if isinstance(response.payload, dict) else {}
        message_id = payload.get("id")
        if not response.ok or not isinstance(message_id, str) or not message_id:
            log.warning("checkout link not sent", extra={"session_id": s.id, "messenger_type": kind,
                                                         "to": mask_address(to), "status_code": response.status_code,
                                                         "error": response.error or "no_message_id"})
            raise PaygateError("Genesys could not send the message; try again later.", code="genesys_unavailable",
                               http_status=502)
        now = self.clock()
        sent = LinkSent(s.id, message_id, to, kind, sender, rfc3339(now))
        self.sessions.record_link_sent(s.id, to=to, messenger_type=kind, from_address=sender,
                                       message_id=message_id, now=now)
        log.info("checkout link sent", extra={"session_id": s.id, "message_id": message_id, "messenger_type": kind,
                                              "to": mask_address(to), "latency_ms": round(response.latency_ms, 1)})
        return sent

    def last_sent(self, session_id: str) -> LinkSent | None:
        """The session's most recent accepted send (from the session row), or None when there was none.
        Raises ``session_not_found``."""
        return last_send_of(self.sessions.get(None, session_id))

    def resend(self, client_id: str | None, session_id: str) -> LinkSent:
        """Sends the link again to the last recipient (same messenger and sender). Raises ``no_previous_send``
        409 when the link was never sent, plus everything :meth:`send` raises."""
        last = self.last_sent(session_id)
        if last is None:
            raise Conflict("The link was never sent, so there is nobody to send it to again.",
                           code="no_previous_send")
        return self.send(client_id, session_id, {"to": last.to, "messenger_type": last.messenger_type,
                                                 "from_address": last.from_address})

    def _take_slot(self, session_id: str) -> None:
        """Counts one send in the sliding window, or raises ``rate_limited`` (429) when it is full."""
        key = _SEND_KEY.format(sid=session_id)
        now = self.clock().timestamp()
        member = f"{now:.6f}:{self.new_id('snd')}"
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.zremrangebyscore(key, "-inf", now - self.window)
            pipe.zadd(key, {member: now})
            pipe.zcard(key)
            pipe.expire(key, self.window)
            _, _, count, _ = pipe.execute()
        if count > self.limit:
            self.redis.zrem(key, member)
            oldest = self.redis.zrange(key, 0, 0, withscores=True)
            wait = self.window - (now - oldest[0][1]) if oldest else self.window
            raise PaygateError(f"The link was sent {self.limit} times in the last {self.window // 60} minutes; "
                               "wait before sending it again.", code="rate_limited", http_status=429,
                               details={"retry_after": max(1, int(wait + 0.999))})
