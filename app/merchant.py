"""The merchant on the customer's page (docs/api.md, "Merchant identity"): whom the customer pays, in the page's
title and heading, the support phone and the accent colour.

The identity comes from :class:`payments.clients.MerchantDirectory` (cached per process). A view that knows the
session calls :func:`use_merchant`; templates then get ``merchant`` (a :class:`~payments.clients.MerchantIdentity`
or None) and ``merchant_accent_css`` (the URL of the accent stylesheet, or None).

The accent colour under the page's strict CSP (``style-src 'self'``, no ``'unsafe-inline'``; app/security.py):
the colour is not written into the page at all. The page links ``/theme/accent-<rrggbb>.css``, a two-line
stylesheet this module generates from the colour in its path, so it is served from our own origin like
``checkout.css``; it only redefines the ``--accent`` / ``--accent-hover`` custom properties that checkout.css
already uses for the pay button, links and focus rings. The route answers only colours that pass the same
contrast rule as ``paygate clients update --accent-color`` (white text at 4.5:1 or more), so no one can make
the page serve a colour a merchant could not set. No nonce is needed and the CSP stays the same for every page.
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, g, url_for
from flask_babel import gettext

from kernel.errors import NotFound, ValidationFailed
from kernel.i18n import N_
from payments.clients import MerchantIdentity, clean_accent_color

from . import services

bp = Blueprint("merchant", __name__)
_HEX6 = re.compile(r"[0-9a-f]{6}")

MERCHANT_INTENT_LABELS = {
    "payment": N_("Payment to %(merchant)s"),
    "topup": N_("Prepaid top-up for %(merchant)s"),
    "subscription": N_("Subscription to %(merchant)s"),
    "hold": N_("Authorization hold for %(merchant)s"),
}
"""Intent → the heading's label naming the merchant, in English (``gettext`` gives the page's language)."""


def use_merchant(client_id: str) -> MerchantIdentity | None:
    """Loads the identity of API client ``client_id`` for this request (templates: ``merchant``); None when the
    client is gone."""
    directory = services().merchants
    g.merchant = directory.get(client_id) if directory is not None else None
    return g.merchant


def intent_label(intent: str, plain_labels: dict[str, str]) -> str:
    """The heading label of a session in the page's language: "Payment to Acme Mobile" when the request's merchant is
    known (:func:`use_merchant`), else the plain label (``plain_labels[intent]``, e.g. "Payment")."""
    merchant = g.get("merchant")
    if merchant is None or intent not in MERCHANT_INTENT_LABELS:
        return gettext(plain_labels[intent])
    return gettext(MERCHANT_INTENT_LABELS[intent], merchant=merchant.name)


def page_title(intent: str, amount: str | None) -> str:
    """The form page's ``<title>``: "Pay Acme Mobile $25.00" ("Authorize $25.00 for Acme Mobile" for a hold, "Pay
    Acme Mobile" while the customer still enters the amount); without a known merchant "Pay $25.00" / "Secure
    payment" as before."""
    merchant = g.get("merchant")
    if merchant is None:
        if amount is None:
            return gettext("Secure payment")
        return gettext("Authorize %(amount)s", amount=amount) if intent == "hold" else gettext("Pay %(amount)s",
                                                                                            amount=amount)
    if amount is None:
        return gettext("Pay %(merchant)s", merchant=merchant.name)
    if intent == "hold":
        return gettext("Authorize %(amount)s for %(merchant)s", amount=amount, merchant=merchant.name)
    return gettext("Pay %(merchant)s %(amount)s", merchant=merchant.name, amount=amount)


def _darker(color: str, factor: float = 0.82) -> str:
    """``#rrggbb`` with each channel scaled by ``factor`` (the hover shade: darker, so its contrast only grows)."""
    return "#" + "".join(f"{int(int(color[i:i + 2], 16) * factor):02x}" for i in (1, 3, 5))


def accent_css_url(merchant: MerchantIdentity | None) -> str | None:
    """The URL of the accent stylesheet of ``merchant``, or None without an accent colour."""
    if merchant is None or not merchant.accent_color:
        return None
    return url_for("merchant.accent_css", color=merchant.accent_color[1:].lower())


ACCENT_CACHE_CONTROL = "public, max-age=31536000, immutable"
""":func:`accent_css`'s caching: a colour's stylesheet never changes (another colour is another URL)."""


@bp.get("/theme/accent-<color>.css")
def accent_css(color: str):
    """``:root { --accent: #rrggbb; --accent-hover: ... }`` for a colour that passes the accent contrast rule
    (:func:`payments.clients.clean_accent_color`); 404 ``not_found`` for anything else. The body depends on the URL
    alone, so browsers may keep it for a year without asking again (``immutable``, RFC 8246)."""
    if not _HEX6.fullmatch(color):
        raise NotFound("Not found.", code="not_found")
    try:
        accent = clean_accent_color("#" + color)
    except ValidationFailed:
        raise NotFound("Not found.", code="not_found") from None
    body = (f"/* the merchant's accent colour (docs/api.md, \"Merchant identity\") */\n"
            f":root {{ --accent: {accent}; --accent-hover: {_darker(accent)}; }}\n")
    return Response(body, mimetype="text/css", headers={"Cache-Control": ACCENT_CACHE_CONTROL})


def init_merchant(app) -> None:
    """Registers the accent stylesheet route and the ``merchant`` / ``merchant_accent_css`` template values."""
    app.register_blueprint(bp)

    @app.context_processor
    def _merchant():
        merchant = g.get("merchant")
        return {"merchant": merchant, "merchant_accent_css": accent_css_url(merchant)}
