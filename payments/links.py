"""Sending the checkout link by SMS or WhatsApp (docs/api.md, "Voice": send-link) and sending it again from the agent view.

The domain decides whether a link may be sent (the session is pending, the client has Genesys settings, the
per-session limit is not reached) and records each accepted send on the session; the message itself goes
through Genesys's agentless messaging API (:mod:`integrations.genesys.messaging`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from integrations.genesys.client import Credentials, GenesysApi
from integrations.genesys.messaging import E164_RE, MESSENGER_TYPES, link_message, mask_address, send_link_message
from integrations.genesys.settings import GenesysNotConfigured, GenesysSettings, SecretBox
from kernel.blocking import blocking
from kernel.clock import Clock, IdFactory, as_utc, rfc3339
from kernel.errors import Conflict, PaygateError, ValidationFailed
from kernel.i18n import best_match

from .sessions import display_amount

log = logging.getLogger("paygate.genesys")

SettingsLoader = Callable[[str], GenesysSettings | None]
SEND_LINK_LIMIT = 3
SEND_LINK_WINDOW_SECONDS = 600
_SEND_KEY = "paygate:sendlink:{sid}:sent"


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
    """The last accepted send recorded on a :class:`~payments.models.PaymentSession` row (``link_*``
    columns, written by ``SessionService.record_link_sent``), or None when the link was never sent."""
    if not s.link_sends or not s.link_sent_to:
        return None
    return LinkSent(s.id, s.link_message_id or "", s.link_sent_to, s.link_messenger_type or "sms",
                    s.link_from_address or "", rfc3339(s.link_sent_at))


class LinkSender:
    """Texts a pending session's checkout link through Genesys's agentless messaging API, synchronously.

    Dependencies: ``sessions`` (a :class:`payments.sessions.SessionService`: ``get``, ``checkout_url``),
    ``redis`` (rate limit and the last send), ``api`` (:class:`GenesysApi`), ``box`` (opens the stored
    OAuth secret), ``load_settings`` (``client_id -> GenesysSettings | None``), ``clock``, ``new_id``,
    ``merchants`` (a :class:`payments.clients.MerchantDirectory`: the message names the client's display name).

    Per session at most ``limit`` sends (3) per ``window`` seconds (600), counted in a Redis sorted set
    (attempts count, whether or not Genesys accepted them). Each accepted send is recorded on the
    session (``link_sends``, ``link_sent_at`` and the last recipient, messenger, sender and Genesys
    message id: :meth:`payments.sessions.SessionService.record_link_sent`) and logged as
    ``checkout link sent`` with the number masked, so the agent view can send it again (:meth:`resend`).
    """

    def __init__(self, *, sessions, redis, api: GenesysApi, box: SecretBox, load_settings: SettingsLoader,
                 clock: Clock, new_id: IdFactory, limit: int = SEND_LINK_LIMIT,
                 window: int = SEND_LINK_WINDOW_SECONDS, merchants=None):
        self.sessions = sessions
        self.redis = redis
        self.api = api
        self.box = box
        self.load_settings = load_settings
        self.clock = clock
        self.new_id = new_id
        self.limit = limit
        self.window = window
        self.merchants = merchants

    def send(self, client_id: str | None, session_id: str, *, to: str, messenger_type: str,
             from_address: str | None = None) -> LinkSent:
        """Sends the link of ``session_id`` (owned by ``client_id``; None skips the owner check, for the signed
        agent view) to ``to`` (E.164, ITU-T E.164: ``+`` and 7–15 digits) by ``messenger_type`` (``sms`` or
        ``whatsapp``) from ``from_address`` (a Genesys SMS number or WhatsApp integration id; None: the
        client's configured SMS sender). The API validates the request's shape (the ``SendLink`` model of
        ``GET /v1/openapi.json``) before calling this.

        Raises (all :class:`kernel.errors.PaygateError`): ``session_not_found`` 404, ``validation_error``
        400 (``to`` / ``messenger_type`` malformed, or ``from_address`` required: no default SMS sender),
        ``session_not_pending`` 409, ``genesys_not_configured`` 409, ``rate_limited`` 429
        (``details["retry_after"]`` seconds), ``genesys_unavailable`` 502 (Genesys answered non-2xx,
        timed out or gave no token).
        """
        s = self.sessions.get(client_id, session_id)
        errors: dict[str, str] = {}  # defensive: the API's request model checked both already
        if not isinstance(to, str) or not E164_RE.match(to):
            errors["to"] = "invalid_phone_number"
        if messenger_type not in MESSENGER_TYPES:
            errors["messenger_type"] = "invalid_choice"
        if errors:
            raise ValidationFailed("The send-link request is invalid.", details={"fields": errors})
        kind, sender = messenger_type, from_address
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
        valid_seconds = max(0, int((as_utc(s.expires_at) - as_utc(self.clock())).total_seconds()))
        merchant = self.merchants.get(s.client_id) if self.merchants is not None else None
        text = link_message(self.sessions.checkout_url(s.id), display_amount(s), valid_seconds, kind,
                            best_match(s.locale), merchant=merchant.name if merchant else None)
        self._take_slot(s.id)
        with blocking():  # Genesys's API: the web request's admission slot is free meanwhile (kernel/blocking.py)
            response = send_link_message(self.api, creds, to=to, messenger_type=kind, from_address=sender,
                                         text=text)
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
        return self.send(client_id, session_id, to=last.to, messenger_type=last.messenger_type,
                         from_address=last.from_address or None)

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
