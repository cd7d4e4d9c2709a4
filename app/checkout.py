"""The hosted checkout page (docs/api.md, "Checkout page"): one card form per pending session, outcome page otherwise.

POST → process → 303 back to the GET (post/redirect/get), so a refresh never
re-submits; field errors re-render the form without echoing the card number or CVC.
"""

from __future__ import annotations

import json
import secrets

from flask import Blueprint, redirect, render_template, request, url_for

from kernel.errors import NotFound
from payments.models import PaymentSession
from payments.sessions import display_amount
from payments.submission import CardInput, brand_rules_json
from tokenizer.cards import BRANDS, parse_expiry_text

from . import services
from .forms import CheckoutForm, field_messages

bp = Blueprint("checkout", __name__)

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


def _view(s: PaymentSession) -> dict:
    svc = services()
    remaining = max(0, s.max_attempts - s.attempts)
    notice = s.message if (s.status == "pending" and s.decline_code and s.attempts) else None
    if notice and remaining:
        notice = f"{notice} You can try {remaining} more time{'s' if remaining != 1 else ''}."
    return {"session_id": s.id, "status": s.status, "amount_display": display_amount(s), "currency": s.currency,
            "intent": s.intent, "intent_label": INTENT_LABELS[s.intent], "reference": s.reference,
            "attempts": s.attempts, "max_attempts": s.max_attempts, "attempts_remaining": remaining,
            "notice": notice, "locale": s.locale or "en",
            "refresh_url": svc.sessions.checkout_url(s.id)}


def _unavailable():
    return render_template("checkout/unavailable.html", title="This payment link is not valid",
                           message="The link may be incomplete or no longer active. Please ask the agent "
                                   "or the chat for a new link."), 404


def _render(s: PaymentSession, form: CheckoutForm | None = None, field_errors=None, status=200):
    view = _view(s)
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
    if not form.validate():  # only the CSRF token has validators
        return _render(s, form, {"form": "This page expired. Please enter your card details again."}, 400)
    month, year = parse_expiry_text(form.expiry.data or "") or (None, None)
    if form.expiry.data and month is None:
        month, year = "invalid", "invalid"
    result = services().payments.submit(
        session_id,
        CardInput(form.number.data, month, year, form.cvc.data, form.cardholder_name.data),
        source="checkout", client_ip=request.remote_addr, submission_id=form.submission_id.data or None,
        require_name=True)
    if result.outcome == "invalid":
        return _render(result.session, form, field_messages(result.field_errors), 422)
    return redirect(url_for("checkout.page", session_id=session_id, t=request.args.get("t")), code=303)
