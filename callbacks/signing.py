"""The ``Paygate-Signature`` header: ``t=<unix seconds>,v1=<hex>[,v1=<hex>...]`` (docs/api.md, "Events").

Each ``v1`` is the lower-case hex HMAC-SHA256, keyed with one of the endpoint's signing secrets, of the
bytes ``b"<t>." + raw body``. While a secret is being rotated the header carries one ``v1`` per active
secret, so a receiver holding either the old or the new secret can verify. This is the scheme Stripe
uses for its own webhooks (``stripe/_webhook.py``: any listed ``v1`` may match, constant-time comparison,
300 s default tolerance, timestamps in the future accepted).

Errors: :class:`SignatureError` with ``code`` one of ``signature_missing``, ``signature_malformed``,
``signature_mismatch``, ``signature_expired``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Sequence

SIGNATURE_HEADER = "Paygate-Signature"
EVENT_ID_HEADER = "Paygate-Event-Id"
SCHEME = "v1"
DEFAULT_TOLERANCE = 300


class SignatureError(Exception):
    """A callback signature that cannot be accepted; ``code`` is a stable snake_case reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def compute(body: bytes, secret: str, timestamp: int) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` keyed with ``secret`` (UTF-8)."""
    signed = str(int(timestamp)).encode("ascii") + b"." + body
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """Returns the ``Paygate-Signature`` header value for ``body`` sent at ``timestamp`` (unix seconds).

    One ``v1=`` element per secret, in the order given (newest first by convention).
    Raises ``ValueError`` when ``secrets`` is empty: an unsigned callback is never sent.
    """
    if not secrets:
        raise ValueError("at least one signing secret is required")
    parts = [f"t={int(timestamp)}"]
    parts.extend(f"{SCHEME}={compute(body, s, timestamp)}" for s in secrets)
    return ",".join(parts)


def parse(header: str) -> tuple[int, list[str]]:
    """Splits a header into ``(t, [v1 signatures])``; unknown schemes are ignored.

    Raises :class:`SignatureError` ``signature_malformed`` when ``t`` is missing or not an integer,
    or when no ``v1`` is present.
    """
    timestamp: int | None = None
    signatures: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("signature_malformed", "the t= element is not an integer") from None
        elif key == SCHEME and value:
            signatures.append(value)
    if timestamp is None:
        raise SignatureError("signature_malformed", "the header has no t= element")
    if not signatures:
        raise SignatureError("signature_malformed", f"the header has no {SCHEME}= signature")
    return timestamp, signatures


def verify(body: bytes, header: str | None, secrets: Sequence[str], *, now: int,
           tolerance: int = DEFAULT_TOLERANCE) -> int:
    """Checks ``header`` against the raw ``body`` and returns its timestamp ``t``.

    ``secrets`` are the receiver's accepted secrets (any may match any ``v1``); ``now`` is the current unix
    time in seconds. A ``t`` more than ``tolerance`` seconds in the past raises ``signature_expired``; a ``t``
    in the future is accepted. ``tolerance=0`` disables the age check. Comparisons are constant-time.
    """
    if not header:
        raise SignatureError("signature_missing", f"no {SIGNATURE_HEADER} header")
    timestamp, signatures = parse(header)
    expected = [compute(body, s, timestamp) for s in secrets]
    matched = False
    for candidate in signatures:
        for exp in expected:
            # evaluate every pair so the time taken does not depend on which one matched
            matched |= hmac.compare_digest(exp.encode("ascii"), candidate.encode("ascii", "replace"))
    if not matched:
        raise SignatureError("signature_mismatch", "no signature matches the body with an accepted secret")
    if tolerance and timestamp < now - tolerance:
        raise SignatureError("signature_expired", f"the signature timestamp is older than {tolerance} s")
    return timestamp
