"""Helpers for the tests of payments and what follows them (holds, refunds, disputes, merchant charges)."""

from __future__ import annotations

import json
import time

from callbacks.models import Event
from paygate.worker import SandboxWebhookPoster
from tokenizer.gateways.stripe_webhooks import sign_payload

VISA = "4242424242424242"
DISPUTED = "4000000000000259"
REFUND_FAILS = "4000000000005126"
OFF_SESSION_AUTH = "4000002760003184"


def paid(stack, number=VISA, *, token=None, **session) -> tuple[str, str]:
    """A session paid by the voice API (approved); returns ``(session_id, payment_id)``."""
    created = stack.create_session(**session)
    sid = created["session_id"]
    r = stack.http.post(f"/v1/payment-sessions/{sid}/card", headers=stack.auth(token),
                        json={"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123"})
    assert r.status_code == 200 and r.get_json()["outcome"] == "approved", r.get_json()
    view = stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth(token)).get_json()
    return sid, view["payment_id"]


def payment(stack, payment_id, token=None) -> dict:
    r = stack.http.get(f"/v1/payments/{payment_id}", headers=stack.auth(token))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def post(stack, path, body=None, *, key=None, token=None):
    headers = stack.auth(token)
    if key:
        headers["Idempotency-Key"] = key
    return stack.http.post(path, json=body if body is not None else {}, headers=headers)


def events(stack, root_id) -> list[tuple[str, dict]]:
    """``(type, body)`` of the events numbered under ``root_id`` (a session or a payment), in order."""
    with stack.services.Session() as db:
        return [(e.type, json.loads(e.body)) for e in
                db.query(Event).filter_by(root_id=root_id).order_by(Event.sequence)]


def types(stack, root_id) -> list[str]:
    return [t for t, _ in events(stack, root_id)]


def deliver_sandbox_webhooks(stack) -> int:
    """Posts the sandbox's due Stripe-shaped events to the app's /webhooks/stripe, as the worker does."""

    def post_webhook(payload: bytes, signature: str) -> bool:
        r = stack.http.post("/webhooks/stripe", data=payload,
                            headers={"Content-Type": "application/json", "Stripe-Signature": signature})
        return 200 <= r.status_code < 300

    poster = SandboxWebhookPoster(stack.services.gateway.webhooks, stack.services.clock,
                                  stack.services.settings.stripe_webhook_secret, post=post_webhook)
    return poster()


def signed_webhook(stack, event: dict, *, secret=None, at=None):
    """POSTs ``event`` to /webhooks/stripe signed like Stripe (``secret`` default: the app's)."""
    payload = json.dumps(event).encode()
    signature = sign_payload(payload, secret or stack.services.settings.stripe_webhook_secret,
                             int(at if at is not None else time.time()))
    return stack.http.post("/webhooks/stripe", data=payload,
                           headers={"Content-Type": "application/json", "Stripe-Signature": signature})


def advance(stack, seconds: int) -> dict:
    r = post(stack, "/v1/sandbox/clock", {"advance_seconds": seconds})
    assert r.status_code == 200, r.get_json()
    return r.get_json()
