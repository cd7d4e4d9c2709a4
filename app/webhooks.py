"""Inbound gateway webhooks: ``POST /webhooks/stripe`` (docs/api.md, "Disputes").

The body is read raw (the signature covers the exact bytes) and handed to
:meth:`payments.gateway_events.GatewayWebhooks.receive`: a bad or missing ``Stripe-Signature`` is 400 with the
error envelope (``invalid_signature``); every verified event is 200 ``{"received": true}``, a replay included.
No bearer token: the signature is the authentication.
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from . import services

bp = Blueprint("webhooks", __name__)


@bp.post("/webhooks/stripe")
def stripe_webhook():
    """Receives one Stripe (or sandbox) event; see the module docstring."""
    outcome = services().webhooks.receive(request.get_data(cache=False), request.headers.get("Stripe-Signature"))
    return jsonify({"received": True, "id": outcome.event_id, "result": outcome.result})
