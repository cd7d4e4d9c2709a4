"""The agent view (``agent_url``): a signed, expiring page made to sit in the agent's Genesys Script.

It shows the status in words, the amount, attempts and, once known, brand and last four digits —
never more of the card (docs/api.md, "Payment sessions" and "Voice"). While the session can still change it follows the status
live (``status.json`` polled by ``agent.js``; a meta refresh when scripts are off). The agent can
cancel a pending session and send the link again to the number it was last sent to.

Every route needs the view's signature (``?e=<unix expiry>&t=<token>``, :meth:`LinkSigner.check_expiring`);
a missing, altered or expired signature is the same 404 as an unknown session. The two actions are
HTML forms with a CSRF token (Flask-WTF) and answer with a 303 back to the view (post/redirect/get),
carrying a notice code that selects one of the fixed messages below.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from flask_wtf import FlaskForm

from integrations.genesys.messaging import mask_address
from kernel.errors import NotFound, PaygateError
from payments.links import last_send_of
from payments.models import PaymentSession
from payments.sessions import display_amount, session_view
from tokenizer.cards import BRANDS

from . import services
from .checkout import INTENT_LABELS, _unavailable
from .i18n import use_language

bp = Blueprint("agent", __name__)

LIVE_STATUSES = ("pending", "processing")
MESSENGER_NAMES = {"sms": "SMS", "whatsapp": "WhatsApp"}
NOTICES = {
    "canceled": ("ok", "The payment was canceled. No card was charged."),
    "link_sent": ("ok", "The link was sent again."),
    "session_not_cancelable": ("error", "This payment can no longer be canceled."),
    "session_not_pending": ("error", "The link can only be sent while the payment is waiting for the card."),
    "no_previous_send": ("error", "The link was never sent by message, so there is no number to send it to."),
    "rate_limited": ("error", "The link was sent several times in the last few minutes. Please wait a moment."),
    "genesys_not_configured": ("error", "Sending messages is not set up for this account."),
    "genesys_unavailable": ("error", "Genesys could not send the message. Please try again."),
    "expired_form": ("error", "The page was open too long. Please try again."),
}
"""Notice code (``?notice=``) → (kind, text). Unknown codes show nothing."""


class AgentActionForm(FlaskForm):
    """The cancel and resend buttons: no fields besides the CSRF token."""


def _signed_session(session_id: str) -> PaymentSession | None:
    """The session when the request carries a valid, unexpired agent signature; else None."""
    svc = services()
    if not svc.links.check_expiring(session_id, request.args.get("t"), request.args.get("e"),
                                    svc.clock().timestamp()):
        return None
    try:
        return svc.sessions.get(None, session_id)
    except NotFound:
        return None


def _here(session_id: str, endpoint: str = "agent.view", **extra) -> str:
    return url_for(endpoint, session_id=session_id, e=request.args.get("e"), t=request.args.get("t"), **extra)


def _status(s: PaymentSession) -> dict:
    """What the page shows and ``status.json`` returns: no card data beyond brand and last4."""
    return {"status": s.status, "attempts": s.attempts, "max_attempts": s.max_attempts,
            "card_brand_name": BRANDS[s.card_brand].name if s.card_brand in BRANDS else None,
            "card_last4": s.card_last4, "decline_code": s.decline_code, "message": session_view(s)["message"],
            "live": s.status in LIVE_STATUSES}


def _last_send(s: PaymentSession) -> dict | None:
    """The last send as the page shows it (number masked), read from the already loaded session."""
    sent = last_send_of(s)
    if sent is None:
        return None
    when = datetime.fromisoformat(sent.sent_at.replace("Z", "+00:00"))
    return {"to": mask_address(sent.to), "messenger": MESSENGER_NAMES.get(sent.messenger_type, sent.messenger_type),
            "at": when.strftime("%H:%M UTC")}


@bp.get("/agent/<session_id>")
def view(session_id: str):
    s = _signed_session(session_id)
    if s is None:
        return _unavailable()
    use_language("en")  # the agent view's words are English for now: its lang says so
    notice = NOTICES.get(request.args.get("notice", ""))
    page = {**_status(s), "amount_display": display_amount(s), "intent_label": INTENT_LABELS[s.intent],
            "reference": s.reference, "locale": "en", "last_send": _last_send(s),
            "can_cancel": s.status == "pending", "notice": notice,
            "status_url": _here(s.id, "agent.status"), "cancel_url": _here(s.id, "agent.cancel"),
            "resend_url": _here(s.id, "agent.resend")}
    page["can_resend"] = s.status == "pending" and page["last_send"] is not None
    return render_template("agent/view.html", view=page, form=AgentActionForm())


@bp.get("/agent/<session_id>/status.json")
def status(session_id: str):
    """``{"status", "attempts", "max_attempts", "card_brand_name", "card_last4", "decline_code", "message",
    "live"}`` for the live page; 404 ``not_found`` without a valid signature."""
    s = _signed_session(session_id)
    if s is None:
        raise NotFound("Not found.", code="not_found")
    return jsonify(_status(s))


def _action(session_id: str, act) -> object:
    """Runs ``act(session)`` for a signed session and a valid CSRF token, then 303s back to the view
    with the notice code ``act`` returned (or the code of the :class:`PaygateError` it raised)."""
    s = _signed_session(session_id)
    if s is None:
        return _unavailable()
    if not AgentActionForm().validate_on_submit():
        return redirect(_here(session_id, notice="expired_form"), 303)
    try:
        notice = act(s)
    except PaygateError as err:
        notice = err.code
    return redirect(_here(session_id, notice=notice), 303)


@bp.post("/agent/<session_id>/cancel")
def cancel(session_id: str):
    """Cancels a pending session (docs/api.md, "Payment sessions": ``canceled``; the event goes out as usual)."""
    def act(s: PaymentSession) -> str:
        services().sessions.cancel(None, s.id)
        return "canceled"

    return _action(session_id, act)


@bp.post("/agent/<session_id>/resend")
def resend(session_id: str):
    """Sends the link again to the number and messenger of the last send (rate limited per session)."""
    def act(s: PaymentSession) -> str:
        services().link_sender.resend(None, s.id)
        return "link_sent"

    return _action(session_id, act)
