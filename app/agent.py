"""The agent view (``agent_url``): a signed, expiring status page for the agent's Genesys Script.

It shows the status in words, the amount, attempts and, once known, brand and last four digits —
never more of the card (contract §2, §4)."""

from __future__ import annotations

from flask import Blueprint, render_template, request

from paygate.errors import NotFound
from paygate.sessions import display_amount, session_view
from tokenizer.cards import BRANDS

from . import services
from .checkout import INTENT_LABELS, _unavailable

bp = Blueprint("agent", __name__)


@bp.get("/agent/<session_id>")
def view(session_id: str):
    svc = services()
    if not svc.links.check_expiring(session_id, request.args.get("t"), request.args.get("e"),
                                    svc.clock().timestamp()):
        return _unavailable()
    try:
        s = svc.sessions.get(None, session_id)
    except NotFound:
        return _unavailable()
    v = session_view(s)
    page = {"status": s.status, "amount_display": display_amount(s), "intent_label": INTENT_LABELS[s.intent],
            "reference": s.reference, "attempts": s.attempts, "max_attempts": s.max_attempts,
            "card_brand_name": BRANDS[s.card_brand].name if s.card_brand in BRANDS else None,
            "card_last4": s.card_last4, "decline_code": s.decline_code, "message": v["message"],
            "live": s.status in ("pending", "processing"), "locale": "en"}
    return render_template("agent/view.html", view=page)
