"""Human-facing pages: what the receiver got (``GET /``) and an agent-desktop mock-up that frames the
checkout page (``GET /embed?url=...``), to show the page working inside an iframe on an allowed origin."""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import unquote, urlparse

from babel.numbers import UnknownCurrencyError, format_currency, get_currency_precision
from flask import Blueprint, abort, current_app, render_template, request

from .store import ReceiverStore

bp = Blueprint("pages", __name__)


def format_minor(amount, currency) -> str:
    """``2500, "USD"`` → ``"$25.00"``: integer minor units shown with the currency's ISO 4217 exponent
    (as published in CLDR, through Babel). Anything unexpected is shown as given."""
    if not isinstance(amount, int) or not isinstance(currency, str):
        return "" if amount is None else f"{amount} {currency or ''}".strip()
    try:
        major = Decimal(amount).scaleb(-get_currency_precision(currency))
        return format_currency(major, currency, locale="en_US")
    except (UnknownCurrencyError, ValueError):
        return f"{amount} {currency} (minor units)"


def _row(item: dict) -> dict:
    """Flattens one record for the table: the event's summary plus the session view's card fields."""
    body = item.get("body") if isinstance(item.get("body"), dict) else {}
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    card = data.get("card") if isinstance(data.get("card"), dict) else {}
    return {
        **item,
        "status": data.get("status"),
        "amount": format_minor(data.get("amount"), data.get("currency")),
        "token": data.get("token"),
        "brand": card.get("brand") or data.get("card_brand"),
        "last4": card.get("last4") or data.get("card_last4"),
        "message": data.get("message"),
    }


@bp.get("/")
def index():
    """The received callbacks, newest first; the page reloads itself every 2 s."""
    store: ReceiverStore = current_app.extensions["integrations.genesys.emulator"]
    rows = [_row(i) for i in reversed(store.items())]
    return render_template("received.html", rows=rows, behaviour=store.behaviour(),
                           secrets_configured=len(store.secrets))


def _embed_target() -> str:
    """The URL to frame. Accepts ``?url=`` URL-encoded or not: a checkout link pasted as is carries its
    own ``?t=...`` query, so the raw query string after ``url=`` is taken whole."""
    raw = request.query_string.decode("latin-1")
    if raw.startswith("url="):
        return unquote(raw[4:])
    return request.args.get("url", "")


@bp.get("/embed")
def embed():
    """A mock agent desktop with a chat and a payment modal whose iframe shows ``url`` (http/https only).

    The modal follows the page's iframe messages (docs/embedding.md), accepted only from the frame's window and
    from ``url``'s origin: ``paygate:resize`` sets the iframe's height (within the window), ``paygate:outcome``
    closes the modal and says the outcome in the conversation."""
    url = _embed_target()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        abort(400, description="pass ?url=<an absolute http(s) checkout URL>")
    return render_template("embed.html", url=url, origin=f"{parsed.scheme}://{parsed.netloc}".lower())
