"""Stripe webhook signatures: verifying inbound events and signing Stripe-shaped ones.

Stripe signs every webhook delivery with the endpoint's secret (``whsec_...``) in the ``Stripe-Signature``
header: ``t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`` — several ``v1`` entries while a
secret is being rolled, ``v0`` entries are ignored. A receiver verifies against the **raw bytes** of the body
and rejects a timestamp older than a tolerance (the SDK's default, 300 s) to stop replays; a timestamp in the
future is accepted (https://docs.stripe.com/webhooks#verify-events).

:func:`construct_event` verifies with the stripe SDK's own verifier (``stripe.Webhook.construct_event``), so
the rules above are Stripe's code, not a re-implementation. :func:`sign_payload` produces the same header
(the sandbox gateway posts its own Stripe-shaped events with it; tests use it too).

Neither function logs anything: the header, the secret and the payload stay out of log lines and error
messages.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from kernel.errors import PaygateError

__all__ = ["DEFAULT_TOLERANCE", "SIGNATURE_HEADER", "WebhookSignatureError", "construct_event", "sign_payload"]

SIGNATURE_HEADER = "Stripe-Signature"
"""The HTTP header Stripe puts the signature in."""

DEFAULT_TOLERANCE = 300
"""Seconds a signature's timestamp may lag behind now (``stripe.Webhook.DEFAULT_TOLERANCE``)."""


class WebhookSignatureError(PaygateError):
    """An inbound Stripe webhook that must be refused with HTTP 400.

    ``code`` is ``invalid_signature`` (missing header, no ``v1`` entry, no matching signature, timestamp
    older than the tolerance, no secret configured) or ``invalid_payload`` (a correctly signed body that is
    not a JSON object, or not UTF-8). The message never contains the header, the secret or the body.
    """

    code = "invalid_signature"
    http_status = 400


def construct_event(payload: bytes, signature_header: str | None, secret: str, *,
                    tolerance: int = DEFAULT_TOLERANCE) -> dict[str, Any]:
    """Verifies ``signature_header`` (the ``Stripe-Signature`` value) over the raw body ``payload`` with
    ``secret`` and returns the event as a plain dict (``{"id": "evt_...", "type": ..., "data": {"object":
    ...}, ...}``, exactly the JSON Stripe sent).

    ``tolerance``: seconds; a signature timestamp older than ``now - tolerance`` is refused (0 turns the
    age check off, as in the SDK). Raises :class:`WebhookSignatureError` — code ``invalid_signature`` for
    a missing, malformed, wrong or stale signature (or an empty ``secret``), code ``invalid_payload`` when
    the signature is valid but the body is not a UTF-8 JSON object.
    """
    if not signature_header:
        raise WebhookSignatureError("The Stripe-Signature header is missing.")
    if not secret:
        raise WebhookSignatureError("No webhook signing secret is configured.")
    import stripe  # here, not at import time: the SDK (and requests under it) is ~25 MB a process without Stripe

    try:
        stripe.Webhook.construct_event(payload, signature_header, secret, tolerance)
    except stripe.SignatureVerificationError:
        raise WebhookSignatureError("The Stripe-Signature header does not verify.") from None
    except (ValueError, TypeError, AttributeError, RecursionError):
        # the SDK verifies before it parses (RecursionError: JSON nested deeper than the parser goes): we only get here with a valid signature (or a body that is not
        # UTF-8, which cannot be verified at all)
        raise WebhookSignatureError("The webhook body is not a JSON event.", code="invalid_payload") from None
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):  # pragma: no cover - the SDK parsed the same bytes just above
        raise WebhookSignatureError("The webhook body is not a JSON event.", code="invalid_payload") from None
    if not isinstance(event, dict):
        raise WebhookSignatureError("The webhook body is not a JSON event.", code="invalid_payload")
    return event


def sign_payload(payload: bytes, secret: str, timestamp: int) -> str:
    """The ``Stripe-Signature`` header value for ``payload`` (raw body bytes) signed with ``secret`` at
    ``timestamp`` (unix seconds): ``"t=<timestamp>,v1=<hex HMAC-SHA256(secret, b"<timestamp>." + payload)>"``.

    Equal to the SDK's ``stripe.WebhookSignature.generate_signature_header`` for a UTF-8 payload; verifies
    with :func:`construct_event`.
    """
    signed = f"{int(timestamp)}.".encode("ascii") + payload
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"t={int(timestamp)},v1={digest}"
