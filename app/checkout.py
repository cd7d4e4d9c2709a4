"""The hosted checkout page (docs/api.md, "Checkout page"): one card form per pending session, outcome page otherwise.

POST → process → 303 back to the GET (post/redirect/get), so a refresh never
re-submits; field errors re-render the form without echoing the card number or CVC.

A session with an ``amount_range`` also shows an amount field (major units in the session's locale, prefilled
with the suggested amount): one POST sets the amount first (:meth:`payments.sessions.SessionService.set_amount`,
the rule the voice endpoint uses) and then submits the card. A ``busy`` answer (another payment of the same
customer is processing; nothing was tried) re-renders the form with a notice.
"""

from __future__ import annotations

import json
import re
import secrets

from babel.numbers import get_decimal_symbol
from flask import Blueprint, redirect, render_template, request, url_for

from kernel.errors import Conflict, NotFound
from kernel.money import exponent, format_amount
from payments.amount_rules import major_units_text, parse_major_units
from payments.models import PaymentSession
from payments.sessions import display_amount
from payments.submission import BUSY_MESSAGE, CardInput, brand_rules_json
from tokenizer.cards import BRANDS, parse_expiry_text

from . import services
from .forms import CheckoutForm, amount_message, field_messages

bp = Blueprint("checkout", __name__)
_SUBMISSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""The hidden ``submission_id`` nonce as :func:`_render` makes it (``secrets.token_urlsafe``), at most the column's
64 characters."""

INTENT_LABELS = {"payment": "Payment", "topup": "Prepaid top-up", "subscription": "Subscription",
                 "hold": "Authorization hold"}
OUTCOME_TEXT = {
    "approved": ("Payment approved", "Thank you. Your payment of {amount} was approved."),
    "requires_agent": ("An agent will help you", "We could not complete this payment online. "
                                                 "An agent will help you finish it."),
    "failed": ("Payment not completed", "The payment could not be completed because of a technical problem. "
                                        "You have not been charged."),
    "expired": ("This payment link has expired", "Please ask the agent or the chat for a new link."),
    "canceled": ("This payment was canceled", "No payment was taken. Please ask the agent if you need help."),
    "processing": ("Confirming your payment", "We are still confirming your payment with your bank. "
                                              "You will not be charged twice. Refresh this page in a moment."),
}


def _load(session_id: str) -> PaymentSession | None:
    svc = services()
    if not svc.links.check(session_id, request.args.get("t")):
        return None
    try:
        return svc.sessions.get(None, session_id)
    except NotFound:
        return None


INTERVAL_WORDS = {"day": ("day", "days"), "week": ("week", "weeks"), "month": ("month", "months"),
                  "year": ("year", "years")}


def _view(s: PaymentSession, *, busy: bool = False) -> dict:
    svc = services()
    remaining = max(0, s.max_attempts - s.attempts)
    notice = s.message if (s.status == "pending" and s.decline_code and s.attempts) else None
    if notice and remaining:
        notice = f"{notice} You can try {remaining} more time{'s' if remaining != 1 else ''}."
    amount_field = s.amount_min is not None and s.amount_max is not None
    known = format_amount(s.amount, s.currency, s.locale) if s.amount is not None else None
    view = {"session_id": s.id, "status": s.status, "amount_display": display_amount(s), "currency": s.currency,
            "intent": s.intent, "intent_label": INTENT_LABELS[s.intent], "reference": s.reference,
            "attempts": s.attempts, "max_attempts": s.max_attempts, "attempts_remaining": remaining,
            "notice": BUSY_MESSAGE if busy else notice, "notice_kind": "busy" if busy else "decline",
            "locale": s.locale or "en", "refresh_url": svc.sessions.checkout_url(s.id),
            "amount_known": known, "amount_field": amount_field,
            # what the notes under the form call the amount: the customer may still change it on the page
            "note_amount": "this amount" if amount_field or known is None else known,
            "subscription_note": _subscription_note(s, known, amount_field)}
    if amount_field:
        locale_id = (s.locale or "en_US").replace("-", "_")
        try:
            decimal_symbol = get_decimal_symbol(locale_id)
        except Exception:  # a locale CLDR does not know: the amount field reads English notation
            decimal_symbol = "."
        view.update(amount_min=s.amount_min, amount_max=s.amount_max, amount_exponent=exponent(s.currency),
                    amount_min_display=format_amount(s.amount_min, s.currency, s.locale),
                    amount_max_display=format_amount(s.amount_max, s.currency, s.locale),
                    amount_example=major_units_text(s.amount or s.amount_min, s.currency, s.locale),
                    amount_decimal_symbol=decimal_symbol)
    return view


def _subscription_note(s: PaymentSession, known: str | None, amount_field: bool) -> str | None:
    """The sentence under a subscription's form: what is charged today and how often after."""
    if s.intent != "subscription" or not s.subscription_interval:
        return None
    count = s.subscription_interval_count or 1
    one, many = INTERVAL_WORDS.get(s.subscription_interval, (s.subscription_interval, s.subscription_interval))
    every = f"every {one}" if count == 1 else f"every {count} {many}"
    first = "this amount" if amount_field or known is None else known
    if s.subscription_amount is not None and s.subscription_amount != s.amount:
        renewal = format_amount(s.subscription_amount, s.currency, s.locale)
        return (f"You pay {first} today, then {renewal} {every}. "
                "Your card will be kept on file for this subscription.")
    return f"You pay {first} today and then {every}. Your card will be kept on file for this subscription."


def _unavailable():
    return render_template("checkout/unavailable.html", title="This payment link is not valid",
                           message="The link may be incomplete or no longer active. Please ask the agent "
                                   "or the chat for a new link."), 404


def dependency_down_page(retry_after: int):
    """The page (HTTP 503, ``Retry-After``) for a checkout request that met the database or Redis down: nothing
    was charged and the link still works once they are back (docs/api.md, "Readiness")."""
    body = render_template("checkout/unavailable.html", title="Payment temporarily unavailable",
                           message="We could not take your payment just now. Your card was not charged. "
                                   "Please try again in a moment.")
    return body, 503, {"Retry-After": str(retry_after)}


ERROR_PAGES = {
    400: ("This request could not be understood", "Please open the payment link again."),
    404: ("This payment link is not valid", "The link may be incomplete or no longer active. Please ask the agent "
                                            "or the chat for a new link."),
    405: ("This page cannot be used this way", "Please open the payment link again."),
    413: ("The form was too large", "Please check the details you entered and try again."),
    429: ("Too many attempts", "Please wait a moment and try again."),
    503: ("Payment temporarily unavailable", "We could not take your payment just now. Your card was not charged. "
                                             "Please try again in a moment."),
    500: ("Something went wrong", "We could not complete this request. You will not be charged twice: please "
                                  "refresh this page in a moment."),
}
"""HTTP status → (title, message) of :func:`error_page`; another 4xx reads as 400, a 5xx as 500."""


def is_page_path(path: str) -> bool:
    """Whether ``path`` is one a browser opens (the checkout page and the agent view, not ``status.json``):
    its errors are HTML pages, not the API's JSON envelope."""
    return path.startswith(("/checkout/", "/agent/")) and not path.endswith("/status.json") \
        or path in ("/checkout", "/agent")


def error_page(status: int, headers: dict | None = None):
    """The HTML answer (the ``checkout/unavailable.html`` template) for an error ``status`` on a page path:
    ``(body, status, headers)`` with fixed words per status (:data:`ERROR_PAGES`), never the error's own text."""
    key = status if status in ERROR_PAGES else (500 if status >= 500 else 400)
    title, message = ERROR_PAGES[key]
    return render_template("checkout/unavailable.html", title=title, message=message), status, dict(headers or {})


def _render(s: PaymentSession, form: CheckoutForm | None = None, field_errors=None, status=200, *,
            busy: bool = False):
    view = _view(s, busy=busy)
    if s.status != "pending":
        key = s.status if s.status in OUTCOME_TEXT else "processing"
        title, message = OUTCOME_TEXT[key]
        view.update(status_title=title, status_message=message.format(amount=view["amount_display"]),
                    card_brand_name=BRANDS[s.card_brand].name if s.card_brand in BRANDS else None,
                    card_last4=s.card_last4 if s.status == "approved" else None)
        return render_template("checkout/outcome.html", view=view), status
    form = form or CheckoutForm()
    form.submission_id.data = secrets.token_urlsafe(16)
    form.number.data = None  # never echo card data back into the page
    form.cvc.data = None
    if form.amount.data is None:  # a fresh form: the amount set so far, or the suggested one
        form.amount.data = major_units_text(s.amount, s.currency, s.locale)
    allowed = services().settings.allowed_brands
    return render_template("checkout/form.html", view=view, form=form, field_errors=field_errors or {},
                           action_url=url_for("checkout.page", session_id=s.id, t=request.args.get("t")),
                           brands_json=json.dumps(brand_rules_json(allowed))), status


@bp.get("/checkout/<session_id>")
def page(session_id: str):
    s = _load(session_id)
    return _unavailable() if s is None else _render(s)


@bp.post("/checkout/<session_id>")
def submit(session_id: str):
    s = _load(session_id)
    if s is None:
        return _unavailable()
    form = CheckoutForm()
    if not form.validate() or not _SUBMISSION_ID.fullmatch(form.submission_id.data or "-"):
        # only the CSRF token has validators; a nonce that is not one the page rendered is an altered form
        return _render(s, form, {"form": "This page expired. Please enter your card details again."}, 400)
    loaded = s  # the row this request read: the processor need not read it again (unless the amount changes)
    if s.status == "pending" and s.amount_min is not None:
        loaded = None
        problem = _set_amount(s, form.amount.data)
        if problem:
            return _render(services().sessions.get(None, session_id), form, {"amount": problem}, 422)
    month, year = parse_expiry_text(form.expiry.data or "") or (None, None)
    if form.expiry.data and month is None:
        month, year = "invalid", "invalid"
    result = services().payments.submit(
        session_id,
        CardInput(form.number.data, month, year, form.cvc.data, form.cardholder_name.data),
        source="checkout", client_ip=request.remote_addr, submission_id=form.submission_id.data or None,
        require_name=True, loaded=loaded)
    if result.outcome == "invalid":
        return _render(result.session, form, field_messages(result.field_errors), 422)
    if result.outcome == "busy":  # nothing was tried and no attempt used: the customer may try again shortly
        return _render(result.session, form, status=409, busy=True)
    return redirect(url_for("checkout.page", session_id=session_id, t=request.args.get("t")), code=303)


def _set_amount(s: PaymentSession, typed: str | None) -> str | None:
    """Sets the amount the customer typed (major units, the session's locale) on an ``amount_range`` session;
    returns the plain-words problem for the amount field, or None when it was set (or the session moved on:
    the card submission then reports that)."""
    if not (typed or "").strip():
        return amount_message("required", s)
    entered = parse_major_units(typed, s.currency, s.locale)
    if entered is None:
        return amount_message("invalid", s)
    try:
        answer = services().sessions.set_amount(None, s.id, entered)
    except Conflict:
        return None
    return None if answer["outcome"] == "ok" else amount_message(answer["outcome"], s)
