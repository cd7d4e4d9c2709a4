"""The agent view (``agent_url``): a signed, expiring page made to sit in the agent's Genesys Script.

It shows, in the agent's language (``?locale=``, else the browser's ``Accept-Language``), the status and the
decline reason in words, whom the customer pays, the amount, the link's expiry, a timeline of the attempts with
their times (UTC, labelled), a hold's capture deadline and the refunds, and, once known, brand and last four
digits — never more of the card (docs/api.md, "Payment sessions" and "Voice"). While the session can still change it follows the status
live (``status.json`` polled by ``agent.js``; a meta refresh when scripts are off). The agent can
cancel a pending session and send the link again to the number it was last sent to.

Every route needs the view's signature (``?e=<unix expiry>&t=<token>``, :meth:`LinkSigner.check_expiring`);
a missing, altered or expired signature is the same 404 as an unknown session. The two actions are
HTML forms with a CSRF token (Flask-WTF) and answer with a 303 back to the view (post/redirect/get),
carrying a notice code that selects one of the fixed messages below.
"""

from __future__ import annotations

from datetime import datetime, timezone

from babel.dates import format_skeleton
from flask import Blueprint, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_wtf import FlaskForm

from integrations.genesys.messaging import mask_address
from kernel.clock import as_utc, rfc3339
from kernel.errors import NotFound, PaygateError
from kernel.i18n import N_, catalog_name, text_direction
from kernel.money import format_amount
from payments.agent_facts import facts_of
from payments.links import last_send_of
from payments.models import PaymentSession
from payments.sessions import display_amount
from tokenizer.cards import BRANDS

from . import services
from .checkout import INTENT_LABELS, _unavailable
from .i18n import ltr, page_language, use_language

bp = Blueprint("agent", __name__)

LIVE_STATUSES = ("pending", "processing")
MESSENGER_NAMES = {"sms": "SMS", "whatsapp": "WhatsApp"}
NOTICES = {
    "canceled": ("ok", N_("The payment was canceled. No card was charged.")),
    "link_sent": ("ok", N_("The link was sent again.")),
    "session_not_cancelable": ("error", N_("This payment can no longer be canceled.")),
    "session_not_pending": ("error", N_("The link can only be sent while the payment is waiting for the card.")),
    "no_previous_send": ("error", N_("The link was never sent by message, so there is no number to send it to.")),
    "rate_limited": ("error", N_("The link was sent several times in the last few minutes. Please wait a moment.")),
    "genesys_not_configured": ("error", N_("Sending messages is not set up for this account.")),
    "genesys_unavailable": ("error", N_("Genesys could not send the message. Please try again.")),
    "expired_form": ("error", N_("The page was open too long. Please try again.")),
}
"""Notice code (``?notice=``) → (kind, text in English; shown in the agent's language). Unknown codes show nothing."""

STATUS_WORDS = {
    "pending": N_("Waiting for the customer to enter a card"),
    "processing": N_("Confirming the payment with the bank"),
    "approved": N_("Approved"),
    "requires_agent": N_("Needs your help: the customer cannot finish online"),
    "failed": N_("Failed because of a technical problem; the customer was not charged"),
    "expired": N_("The link expired before the customer paid"),
    "canceled": N_("Canceled; no card was charged"),
}
"""Session status → the agent's words (English source; shown in the agent's language)."""

OUTCOME_WORDS = {
    "approved": N_("Approved"),
    "declined": N_("Declined"),
    "requires_agent": N_("Stopped for review"),
    "failed": N_("Technical failure, not charged"),
    "unknown": N_("Waiting for the bank's answer"),
    None: N_("In progress"),
}
"""An attempt's outcome → words."""

_BANK_DECLINED = N_("The bank declined the card without giving a reason")
DECLINE_WORDS = {
    "generic_decline": _BANK_DECLINED,
    "insufficient_funds": N_("Not enough funds on the card"),
    "expired_card": N_("The card has expired"),
    "incorrect_cvc": N_("Wrong security code"),
    "invalid_cvc": N_("Wrong security code"),
    "incorrect_number": N_("Wrong card number"),
    "invalid_number": N_("Wrong card number"),
    "invalid_expiry_month": N_("Wrong expiry date"),
    "invalid_expiry_year": N_("Wrong expiry date"),
    "processing_error": N_("The bank could not process the card just now; trying again may work"),
    "try_again_later": N_("The bank could not process the card just now; trying again may work"),
    "card_velocity_exceeded": N_("The card has reached its limit"),
    "authentication_required": N_("The bank asks for a verification this page cannot do"),
    "card_not_supported": N_("The card does not allow this kind of payment"),
    "currency_not_supported": N_("The card does not allow this currency"),
    "fraud_prescreen": N_("Stopped by the risk checks before reaching the bank"),
    "fraud_suspected": N_("Stopped by the risk checks before reaching the bank"),
    "automation_unavailable": N_("The card service was unavailable; nothing was charged"),
    "gateway_no_payment": N_("The bank has no record of this payment; nothing was charged"),
}
"""Decline or failure code → the agent's words. Fraud-flavoured bank codes read as a plain decline, as the
customer is told (tokenizer/declines.py): the agent repeats what they see."""
for _code in ("fraudulent", "lost_card", "stolen_card", "merchant_blacklist", "pickup_card", "restricted_card",
              "security_violation", "do_not_honor", "do_not_try_again"):
    DECLINE_WORDS[_code] = _BANK_DECLINED

PAYMENT_WORDS = {
    "authorized": N_("Authorized, not captured yet"),
    "captured": N_("Captured"),
    "partially_refunded": N_("Partly refunded"),
    "refunded": N_("Refunded in full"),
    "voided": N_("Hold released, nothing taken"),
    "expired": N_("Hold expired, nothing taken"),
}
"""The session's payment status → words (only the statuses after an approval)."""

REFUND_WORDS = {"pending": N_("Refund in progress"), "succeeded": N_("Refunded"), "failed": N_("Refund failed")}


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


def _use_agent_language() -> str:
    """The agent's language: ``?locale=`` (a BCP 47 tag, best shipped match) when given, else the browser's
    ``Accept-Language`` (docs/api.md, "Languages")."""
    return use_language((request.args.get("locale") or "")[:35] or None)


def _here(session_id: str, endpoint: str = "agent.view", **extra) -> str:
    locale = request.args.get("locale")
    if locale:
        extra["locale"] = locale[:35]
    return url_for(endpoint, session_id=session_id, e=request.args.get("e"), t=request.args.get("t"), **extra)


def when(moment: datetime | None) -> str | None:
    """A moment as the agent reads it: date and time in UTC with the label (``Dec 1, 14:05 UTC``, in the agent's
    language's date format). UTC, not the agent's zone, which the server does not know; not "2 min ago", which
    would go stale on a page that is only re-rendered when something changes."""
    if moment is None:
        return None
    language = page_language()
    locale, moment = catalog_name(language), as_utc(moment)
    separator = "، " if text_direction(language) == "rtl" else ", "  # the Arabic comma in Arabic
    text = (format_skeleton("MMMd", moment, tzinfo=timezone.utc, locale=locale) + separator
            + format_skeleton("Hm", moment, tzinfo=timezone.utc, locale=locale))
    return gettext("%(time)s UTC", time=text)


def _decline_words(code: str | None) -> str | None:
    if not code:
        return None
    words = DECLINE_WORDS.get(code)
    return gettext(words) if words else gettext("Declined (code %(code)s)", code=code)


def _card_words(brand: str | None, last4: str | None) -> str | None:
    """"Visa ending 4242": brand and last four digits only."""
    if not last4:
        return None
    name = BRANDS[brand].name if brand in BRANDS else gettext("Card")
    return gettext("%(brand)s ending %(last4)s", brand=name, last4=ltr(last4))


def _status(s: PaymentSession) -> dict:
    """What the page shows and ``status.json`` returns: codes and, in the agent's language, words; no card data
    beyond brand and last4."""
    svc = services()
    merchant = svc.merchants.get(s.client_id) if svc.merchants is not None else None
    attempts, payment = facts_of(svc.Session, s)
    timeline = [{"number": a.number, "at": rfc3339(a.at), "at_text": when(a.at), "outcome": a.outcome,
                 "outcome_text": gettext(OUTCOME_WORDS.get(a.outcome, OUTCOME_WORDS[None])),
                 "decline_code": a.decline_code if a.outcome != "approved" else None,
                 "decline_text": _decline_words(a.decline_code) if a.outcome != "approved" else None,
                 "card_text": _card_words(a.card_brand, a.card_last4),
                 "via": gettext("by phone keypad") if a.source == "voice" else gettext("on the payment page")}
                for a in attempts]
    live = s.status in LIVE_STATUSES
    status_text = gettext(STATUS_WORDS.get(s.status, s.status))
    out = {"status": s.status, "attempts": s.attempts, "max_attempts": s.max_attempts,
           "card_brand_name": BRANDS[s.card_brand].name if s.card_brand in BRANDS else None,
           "card_last4": s.card_last4, "decline_code": s.decline_code,
           "message": gettext(s.message) if s.message else status_text,
           "live": live,
           "status_text": status_text,
           "decline_text": _decline_words(s.decline_code) if s.status != "approved" else None,
           "attempts_text": gettext("%(num)d of %(max)d", num=s.attempts, max=s.max_attempts),
           "card_text": _card_words(s.card_brand, s.card_last4),
           "merchant_name": merchant.name if merchant else None,
           "expires_at": rfc3339(s.expires_at) if s.status == "pending" else None,
           "expires_text": when(s.expires_at) if s.status == "pending" else None,
           "timeline": timeline, "payment": None}
    if payment is not None:
        out["payment"] = {
            "status": payment.status,
            "status_text": gettext(PAYMENT_WORDS[payment.status]) if payment.status in PAYMENT_WORDS else None,
            "capture_before": rfc3339(payment.capture_before) if payment.status == "authorized" else None,
            "capture_before_text": when(payment.capture_before) if payment.status == "authorized" else None,
            "refunds": [{"status": r.status, "amount": r.amount, "currency": r.currency, "at": rfc3339(r.at),
                         "text": gettext("%(amount)s: %(status)s", amount=ltr(format_amount(r.amount, r.currency,
                                                                                         page_language())),
                                         status=gettext(REFUND_WORDS.get(r.status, r.status))),
                         "at_text": when(r.at)}
                        for r in payment.refunds]}
    return out


def _last_send(s: PaymentSession) -> dict | None:
    """The last send as the page shows it (number masked), read from the already loaded session."""
    sent = last_send_of(s)
    if sent is None:
        return None
    at = when(datetime.fromisoformat(sent.sent_at.replace("Z", "+00:00")))
    messenger, to = MESSENGER_NAMES.get(sent.messenger_type, sent.messenger_type), mask_address(sent.to)
    return {"to": to, "messenger": messenger, "at": at,
            "text": gettext("By %(messenger)s to %(to)s, %(time)s", messenger=messenger, to=ltr(to), time=at)}


@bp.get("/agent/<session_id>")
def view(session_id: str):
    s = _signed_session(session_id)
    if s is None:
        return _unavailable()
    _use_agent_language()
    notice = NOTICES.get(request.args.get("notice", ""))
    facts = _status(s)
    plain_intent = gettext(INTENT_LABELS[s.intent])
    page = {**facts, "amount_display": ltr(display_amount(s)), "intent_label": plain_intent,
            "reference": s.reference, "locale": page_language(), "last_send": _last_send(s),
            "can_cancel": s.status == "pending", "notice": (notice[0], gettext(notice[1])) if notice else None,
            "status_url": _here(s.id, "agent.status"), "cancel_url": _here(s.id, "agent.cancel"),
            "resend_url": _here(s.id, "agent.resend")}
    page["can_resend"] = s.status == "pending" and page["last_send"] is not None
    return render_template("agent/view.html", view=page, form=AgentActionForm())


@bp.get("/agent/<session_id>/status.json")
def status(session_id: str):
    """``{"status", "attempts", "max_attempts", "card_brand_name", "card_last4", "decline_code", "message",
    "live"}`` for the live page, plus the words in the agent's language (``status_text``, ``decline_text``,
    ``attempts_text``, ``card_text``, ``merchant_name``, ``expires_at``/``expires_text``, ``timeline`` of attempts,
    ``payment`` with hold deadline and refunds: docs/api.md, "Agent view"); 404 ``not_found`` without a valid
    signature."""
    s = _signed_session(session_id)
    if s is None:
        raise NotFound("Not found.", code="not_found")
    _use_agent_language()
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
