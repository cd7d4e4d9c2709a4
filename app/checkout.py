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
from functools import lru_cache
from urllib.parse import urlsplit

from babel.lists import format_list
from babel.numbers import get_decimal_symbol
from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext, ngettext
from markupsafe import Markup

from kernel.errors import Conflict, NotFound
from kernel.i18n import N_, ascii_digits, catalog_name
from kernel.money import exponent, format_amount
from payments.amount_rules import major_units_text, parse_major_units
from payments.models import TERMINAL_STATUSES, PaymentSession
from payments.sessions import display_amount
from payments.submission import BUSY_MESSAGE, CardInput, brand_rules_json
from tokenizer.cards import BRANDS, parse_expiry_text

from . import services
from .forms import FIELD_MESSAGES, CheckoutForm, amount_message, field_messages
from .i18n import ltr, page_language, use_language
from .merchant import intent_label, page_title, use_merchant

bp = Blueprint("checkout", __name__)
_SUBMISSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""The hidden ``submission_id`` nonce as :func:`_render` makes it (``secrets.token_urlsafe``), at most the column's
64 characters."""

INTENT_LABELS = {"payment": N_("Payment"), "topup": N_("Prepaid top-up"), "subscription": N_("Subscription"),
                 "hold": N_("Authorization hold")}
"""Intent → its name on the page, in English (``gettext`` gives the page's language)."""
OUTCOME_TEXT = {
    "approved": (N_("Payment approved"), N_("Thank you. Your payment of %(amount)s was approved.")),
    "requires_agent": (N_("An agent will help you"), N_("We could not complete this payment online. "
                                                        "An agent will help you finish it.")),
    "failed": (N_("Payment not completed"), N_("The payment could not be completed because of a technical problem. "
                                               "You have not been charged.")),
    "expired": (N_("This payment link has expired"), N_("Please ask the agent or the chat for a new link.")),
    "canceled": (N_("This payment was canceled"), N_("No payment was taken. Please ask the agent if you need help.")),
    "processing": (N_("Confirming your payment"), N_("We are still confirming your payment with your bank. "
                                                     "You will not be charged twice. Refresh this page in a moment.")),
}
"""Status → (title, message) of the outcome page, in English (``gettext`` gives the page's language)."""

DECLINE_FIELDS = {"incorrect_cvc": "cvc", "invalid_cvc": "cvc", "expired_card": "expiry",
                  "invalid_expiry_month": "expiry", "invalid_expiry_year": "expiry", "incorrect_number": "number",
                  "invalid_number": "number"}
"""Decline code → the form field it is about (marked ``aria-invalid`` and described by the decline message); any
other decline is about the card as a whole and describes the card number field without marking it invalid."""


def frame_origins(frame_ancestors: tuple[str, ...]) -> tuple[str, ...]:
    """The parents the page posts its iframe messages to (docs/embedding.md): each ``PAYGATE_FRAME_ANCESTORS``
    entry that names one exact origin, as ``scheme://host[:port]`` (lower case, default port dropped), and
    ``'self'`` kept as is (checkout.js reads it as the page's own origin, which a proxy in front cannot change).
    Entries that are not one origin cannot be a ``postMessage`` target and are skipped: wildcards
    (``https://*.example.com``, ``*``), bare schemes (``https:``), hosts without a scheme, ``'none'``.
    See https://html.spec.whatwg.org/multipage/web-messaging.html#dom-window-postmessage (targetOrigin)."""
    out: list[str] = []
    for entry in frame_ancestors:
        if entry.lower() == "'self'":
            origin = "'self'"
        else:
            try:
                parts = urlsplit(entry)
                port = parts.port
            except ValueError:
                continue
            host = (parts.hostname or "").lower()
            if parts.scheme.lower() not in ("http", "https") or not host or "*" in entry or parts.username \
                    or parts.password or parts.query or parts.fragment or parts.path not in ("", "/"):
                continue
            scheme = parts.scheme.lower()
            default = {"http": 80, "https": 443}[scheme]
            host = f"[{host}]" if ":" in host else host
            origin = f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")
        if origin not in out:
            out.append(origin)
    return tuple(out)


@bp.app_context_processor
def _frame_context() -> dict:
    """``frame_origins_json`` for checkout/base.html (every checkout page, error pages included)."""
    try:
        ancestors = tuple(services().settings.frame_ancestors)
    except (KeyError, AttributeError):  # an app without paygate's services (never framed)
        ancestors = ()
    return {"frame_origins_json": _frame_origins_json(ancestors)}


@lru_cache(maxsize=16)
def _frame_origins_json(ancestors: tuple[str, ...]) -> str:
    """:func:`frame_origins` of ``ancestors`` as a JSON list (made once per setting: every page carries it)."""
    return json.dumps(list(frame_origins(ancestors)))


def _load(session_id: str) -> PaymentSession | None:
    svc = services()
    if not svc.links.check(session_id, request.args.get("t")):
        return None
    try:
        s = svc.sessions.get(None, session_id)
    except NotFound:
        return None
    use_language(s.locale)  # the session's language, else the browser's (docs/api.md, "Languages")
    use_merchant(s.client_id)  # whom the customer pays (docs/api.md, "Merchant identity")
    return s




def _view(s: PaymentSession, *, busy: bool = False) -> dict:
    svc = services()
    remaining = max(0, s.max_attempts - s.attempts)
    notice = gettext(s.message) if (s.status == "pending" and s.decline_code and s.attempts and s.message) else None
    if notice and remaining:
        notice = notice + " " + ngettext("You can try %(num)d more time.", "You can try %(num)d more times.",
                                         remaining)
    amount_field = s.amount_min is not None and s.amount_max is not None
    known = ltr(format_amount(s.amount, s.currency, s.locale)) if s.amount is not None else None
    view = {"session_id": s.id, "status": s.status, "amount_display": ltr(display_amount(s)), "currency": s.currency,
            "intent": s.intent, "intent_label": intent_label(s.intent, INTENT_LABELS), "reference": s.reference,
            "attempts": s.attempts, "max_attempts": s.max_attempts, "attempts_remaining": remaining,
            "notice": gettext(BUSY_MESSAGE) if busy else notice, "notice_kind": "busy" if busy else "decline",
            "locale": s.locale or "en", "refresh_url": svc.sessions.checkout_url(s.id),
            "amount_known": known, "amount_field": amount_field, "page_title": page_title(s.intent, known),
            # what the notes under the form call the amount: the customer may still change it on the page
            "note_amount": None if amount_field or known is None else known,
            "subscription_note": _subscription_note(s, known, amount_field)}
    if amount_field:
        locale_id = (s.locale or "en_US").replace("-", "_")
        try:
            decimal_symbol = get_decimal_symbol(locale_id)
        except Exception:  # a locale CLDR does not know: the amount field reads English notation
            decimal_symbol = "."
        view.update(amount_min=s.amount_min, amount_max=s.amount_max, amount_exponent=exponent(s.currency),
                    amount_min_display=ltr(format_amount(s.amount_min, s.currency, s.locale)),
                    amount_max_display=ltr(format_amount(s.amount_max, s.currency, s.locale)),
                    amount_example=major_units_text(s.amount or s.amount_min, s.currency, s.locale),
                    amount_decimal_symbol=decimal_symbol)
    return view


def _subscription_note(s: PaymentSession, known: str | None, amount_field: bool) -> str | None:
    """The sentence under a subscription's form: what is charged today and how often after."""
    if s.intent != "subscription" or not s.subscription_interval:
        return None
    count = s.subscription_interval_count or 1
    every = _every(s.subscription_interval, count)
    kept = gettext("Your card will be kept on file for this subscription.")
    if s.subscription_amount is not None and s.subscription_amount != s.amount:
        renewal = ltr(format_amount(s.subscription_amount, s.currency, s.locale))
        if amount_field or known is None:
            first = gettext("You pay this amount today, then %(renewal)s %(every)s.",
                            renewal=renewal, every=every)
        else:
            first = gettext("You pay %(amount)s today, then %(renewal)s %(every)s.", amount=known,
                            renewal=renewal, every=every)
    elif amount_field or known is None:
        first = gettext("You pay this amount today and then %(every)s.", every=every)
    else:
        first = gettext("You pay %(amount)s today and then %(every)s.", amount=known, every=every)
    return f"{first} {kept}"


def _every(interval: str, count: int) -> str:
    """"every month", "every 3 weeks"... in the page's language."""
    if interval == "day":
        return ngettext("every day", "every %(num)d days", count)
    if interval == "week":
        return ngettext("every week", "every %(num)d weeks", count)
    if interval == "year":
        return ngettext("every year", "every %(num)d years", count)
    return ngettext("every month", "every %(num)d months", count)


def _unavailable():
    return error_page(404)[:2]


def dependency_down_page(retry_after: int):
    """The page (HTTP 503, ``Retry-After``) for a checkout request that met the database or Redis down: nothing
    was charged and the link still works once they are back (docs/api.md, "Readiness")."""
    return error_page(503, {"Retry-After": str(retry_after)})


ERROR_PAGES = {
    400: (N_("This request could not be understood"), N_("Please open the payment link again.")),
    404: (N_("This payment link is not valid"), N_("The link may be incomplete or no longer active. Please ask the "
                                                   "agent or the chat for a new link.")),
    405: (N_("This page cannot be used this way"), N_("Please open the payment link again.")),
    413: (N_("The form was too large"), N_("Please check the details you entered and try again.")),
    429: (N_("Too many attempts"), N_("Please wait a moment and try again.")),
    503: (N_("Payment temporarily unavailable"), N_("We could not take your payment just now. Your card was not "
                                                    "charged. Please try again in a moment.")),
    500: (N_("Something went wrong"), N_("We could not complete this request. You will not be charged twice: please "
                                         "refresh this page in a moment.")),
}
"""HTTP status → (title, message) of :func:`error_page`, in English (shown in the page's language); another 4xx
reads as 400, a 5xx as 500."""


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
    return (render_template("checkout/unavailable.html", title=gettext(title), message=gettext(message)), status,
            dict(headers or {}))


def _render(s: PaymentSession, form: CheckoutForm | None = None, field_errors=None, status=200, *,
            busy: bool = False, declined: bool = False):
    """The form (pending) or the outcome page. ``declined``: the answer to the POST that was just declined — the
    form keeps the name and expiry the customer typed (never the number or the CVC) and the decline message takes
    the focus."""
    view = _view(s, busy=busy)
    view["terminal"] = s.status in TERMINAL_STATUSES
    if s.status != "pending":
        key = s.status if s.status in OUTCOME_TEXT else "processing"
        title, message = OUTCOME_TEXT[key]
        view.update(status_title=gettext(title), status_message=gettext(message, amount=view["amount_display"]),
                    card_brand_name=BRANDS[s.card_brand].name if s.card_brand in BRANDS else None,
                    card_last4=s.card_last4 if s.status == "approved" else None)
        return render_template("checkout/outcome.html", view=view), status
    form = form or CheckoutForm()
    if view["notice"] and view["notice_kind"] == "decline":
        field = DECLINE_FIELDS.get(s.decline_code or "")
        view.update(notice_field=field or "number", notice_invalid=field is not None, focus_notice=declined)
    form.submission_id.data = secrets.token_urlsafe(16)
    form.number.data = None  # never echo card data back into the page
    form.cvc.data = None
    if form.amount.data is None:  # a fresh form: the amount set so far, or the suggested one
        form.amount.data = major_units_text(s.amount, s.currency, s.locale)
    fresh = not (field_errors or view["notice"] or view.get("amount_field") or form.cardholder_name.data
                 or form.expiry.data)
    return render_template("checkout/form.html", view=view, form=form, field_errors=field_errors or {},
                           action_url=url_for("checkout.page", session_id=s.id, t=request.args.get("t")),
                           card_fields_html=_fresh_fields(view, form) if fresh else None,
                           **_brand_context(services().settings.allowed_brands)), status


_FRESH_FIELDS_CACHE: dict[str, Markup] = {}


def _fresh_fields(view: dict, form: CheckoutForm) -> Markup:
    """checkout/_fields.html for a fresh form (no field error, no notice, no amount to type, nothing typed): the
    same HTML for every session in a language, so it is rendered once per language."""
    key = page_language()
    html = _FRESH_FIELDS_CACHE.get(key)
    if html is None:
        html = _FRESH_FIELDS_CACHE[key] = Markup(render_template("checkout/_fields.html", view=view, form=form,
                                                                 field_errors={}))
    return html


_BRAND_CONTEXT_CACHE: dict[tuple[str, tuple[str, ...]], dict] = {}


def _brand_context(allowed_brands) -> dict:
    """The form's brand and script context for the page's language and ``allowed_brands`` (made once per both):
    ``brands`` (list of (id, name)), ``accepted_text``, ``brands_json`` (the brand rules as JSON) and
    ``js_messages`` (checkout.js's messages as JSON)."""
    key = (page_language(), tuple(allowed_brands))
    cached = _BRAND_CONTEXT_CACHE.get(key)
    if cached is None:
        messages = _js_messages(allowed_brands)
        cached = _BRAND_CONTEXT_CACHE[key] = dict(
            brands=[(b, BRANDS[b].name) for b in allowed_brands if b in BRANDS],
            accepted_text=messages.get("accepted"),
            brands_json=json.dumps(brand_rules_json(allowed_brands)),
            js_messages=json.dumps(messages, ensure_ascii=False))
    return cached


_JS_FIELD_MESSAGES = {
    "nameRequired": ("cardholder_name", "required"), "nameInvalid": ("cardholder_name", "invalid_name"),
    "numberRequired": ("number", "required"), "numberLength": ("number", "invalid_number"),
    "numberIncorrect": ("number", "incorrect_number"), "numberBrand": ("number", "unsupported_brand"),
    "expiryRequired": ("expiry", "required"), "expiryMonth": ("expiry", "invalid_expiry_month"),
    "expiryYear": ("expiry", "invalid_expiry_year"), "expiryPast": ("expiry", "expired_card"),
    "cvcRequired": ("cvc", "required"), "cvcInvalid": ("cvc", "invalid_cvc"),
}
"""checkout.js message key → the :data:`app.forms.FIELD_MESSAGES` entry it shows, so both read alike."""


def _js_messages(allowed_brands) -> dict[str, str]:
    """checkout.js's messages in the page's language: the field messages, the amount ones as templates with
    ``{low}``, ``{high}`` and ``{example}``, the accepted brands sentence and the processing status (built by
    :func:`_brand_context`, which keeps them per language and brand list)."""
    out = {key: gettext(FIELD_MESSAGES[entry]) for key, entry in _JS_FIELD_MESSAGES.items()}
    out.update(
        amountRequired=gettext("Enter the amount you want to pay, between %(low)s and %(high)s.",
                               low="{low}", high="{high}"),
        amountInvalid=gettext("Enter the amount as a number, for example %(example)s.", example="{example}"),
        amountLow=gettext("The amount must be at least %(low)s.", low="{low}"),
        amountHigh=gettext("The amount can be at most %(high)s.", high="{high}"),
        processing=gettext("Processing your payment. Please wait and do not close this page."),
        cvcHintBack=gettext("3 digits on the back"), cvcHintFront=gettext("4 digits on the front"))
    names = [BRANDS[b].name for b in allowed_brands if b in BRANDS]
    if names:
        out["accepted"] = gettext("We accept %(brands)s.",
                                  brands=format_list(names, locale=catalog_name(page_language())))
    return out


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
        return _render(s, form, {"form": gettext("This page expired. Please enter your card details again.")}, 400)
    loaded = s  # the row this request read: the processor need not read it again (unless the amount changes)
    if s.status == "pending" and s.amount_min is not None:
        loaded = None
        problem = _set_amount(s, form.amount.data)
        if problem:
            return _render(services().sessions.get(None, session_id), form, {"amount": problem}, 422)
    # digits typed in Arabic-Indic form are the same digits (the API's card fields take ASCII only)
    form.number.data, form.expiry.data, form.cvc.data = (ascii_digits(form.number.data), ascii_digits(form.expiry.data),
                                                         ascii_digits(form.cvc.data))
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
    if result.outcome == "declined" and result.session.status == "pending":
        # answered here rather than by a redirect, so the name and expiry the customer typed stay in the form
        # without being kept anywhere (a re-POST of this form is a duplicate: it reports this decline again)
        return _render(result.session, form, declined=True)
    return redirect(url_for("checkout.page", session_id=session_id, t=request.args.get("t")), code=303)


def _set_amount(s: PaymentSession, typed: str | None) -> str | None:
    """Sets the amount the customer typed (major units, the session's locale) on an ``amount_range`` session;
    returns the plain-words problem for the amount field, or None when it was set (or the session moved on:
    the card submission then reports that)."""
    if not (typed or "").strip():
        return amount_message("required", s)
    entered = parse_major_units(ascii_digits(typed), s.currency, s.locale)
    if entered is None:
        return amount_message("invalid", s)
    try:
        answer = services().sessions.set_amount(None, s.id, entered)
    except Conflict:
        return None
    return None if answer["outcome"] == "ok" else amount_message(answer["outcome"], s)
