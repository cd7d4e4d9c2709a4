"""``Idempotency-Key`` for every POST (docs/api.md, "Conventions"), stored in Redis per API client.

* The first completed response (status and body) is kept 24 h and replayed for a
  retry with the same key and the same request.
* The same key with a different request → 422 ``idempotency_key_reused``.
* The same key while the first request still runs → 409 ``idempotency_key_in_use``.
* Server errors (5xx), 429 rate_limited and 202 (an operation whose gateway answer is not known yet) are not
  stored: the key is released so a retry runs again.

The request is remembered only as a keyed HMAC-SHA256 of method, path and body —
a request body may hold a card number (voice entry), and PCI DSS accepts only
keyed cryptographic hashes of a PAN. Modelled on Stripe's documented semantics
(docs.stripe.com/idempotency).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

from kernel.errors import Conflict, IdempotencyKeyReused, ValidationFailed

TTL_SECONDS = 24 * 3600
IN_FLIGHT_SECONDS = 120
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    """A response to replay: HTTP ``status`` and the JSON ``body`` text."""

    status: int
    body: str


@dataclass(frozen=True)
class Reservation:
    """Proof that this request owns ``key`` until it completes or releases it."""

    redis_key: str
    token: str
    fingerprint: str


class IdempotencyStore:
    """Reserve → (run the request) → complete/release, per ``(client_id, key)``.

    ``redis``: a redis-py client; ``secret``: bytes for the request HMAC; ``previous_secrets``: the HMAC keys of
    earlier secret keys, so a request first made before a rotation of ``PAYGATE_SECRET_KEY`` and retried after it
    is still recognised (docs/operations.md, "Rotating the secret key").
    """

    _RELEASE = """
    local v = redis.call('GET', KEYS[1])
    if v and cjson.decode(v)['token'] == ARGV[1] then return redis.call('DEL', KEYS[1]) end
    return 0
    """

    def __init__(self, redis, secret: bytes, *, ttl_seconds: int = TTL_SECONDS,
                 in_flight_seconds: int = IN_FLIGHT_SECONDS, previous_secrets: tuple[bytes, ...] = ()):
        self.redis = redis
        self.secret = secret
        self.previous_secrets = tuple(previous_secrets)
        self.ttl_seconds = ttl_seconds
        self.in_flight_seconds = in_flight_seconds
        self._release = redis.register_script(self._RELEASE)

    def reserve(self, client_id: str, key: str, *, method: str, path: str,
                body: bytes) -> Reservation | StoredResponse:
        """Claims ``key`` for this request, or returns the stored response to replay.

        Raises :class:`ValidationFailed` (``invalid_idempotency_key``) for a key outside
        1–255 characters, :class:`IdempotencyKeyReused` (422) for another request under the
        same key, :class:`Conflict` (``idempotency_key_in_use``, 409) while the first still runs.
        """
        if not 1 <= len(key) <= MAX_KEY_LENGTH or not key.isprintable():
            raise ValidationFailed("Idempotency-Key must be 1 to 255 printable characters.",
                                   code="invalid_idempotency_key")
        request = b"\n".join([method.encode(), path.encode(), body])
        fingerprint = hmac.new(self.secret, request, hashlib.sha256).hexdigest()
        redis_key = f"paygate:idem:{client_id}:{hashlib.sha256(key.encode()).hexdigest()}"
        token = secrets.token_hex(16)
        for _ in range(3):
            claimed = self.redis.set(redis_key, json.dumps({"state": "running", "fp": fingerprint, "token": token}),
                                     nx=True, ex=self.in_flight_seconds)
            if claimed:
                return Reservation(redis_key, token, fingerprint)
            raw = self.redis.get(redis_key)
            if raw is None:  # expired between SET and GET: try again
                continue
            stored = json.loads(raw)
            if stored["fp"] != fingerprint and not any(
                    hmac.compare_digest(stored["fp"], hmac.new(old, request, hashlib.sha256).hexdigest())
                    for old in self.previous_secrets):
                raise IdempotencyKeyReused(
                    "This Idempotency-Key was already used with a different request.")
            if stored["state"] == "running":
                raise Conflict("A request with this Idempotency-Key is still being processed.",
                               code="idempotency_key_in_use")
            return StoredResponse(stored["status"], stored["body"])
        raise Conflict("A request with this Idempotency-Key is still being processed.",
                       code="idempotency_key_in_use")

    def complete(self, reservation: Reservation, status: int, body: str) -> None:
        """Stores the response for replay (24 h), or releases the key for a 5xx, a 429 or a 202: none of them
        finished the work (a 202 is an operation whose gateway answer is still unknown), so the client may
        retry with the same key and get the settled result (Stripe likewise saves no result for a request
        refused before it ran)."""
        if status >= 500 or status in (202, 429):
            self.release(reservation)
            return
        self.redis.set(reservation.redis_key,
                       json.dumps({"state": "done", "fp": reservation.fingerprint, "token": reservation.token,
                                   "status": status, "body": body}),
                       ex=self.ttl_seconds)

    def release(self, reservation: Reservation) -> None:
        """Forgets the key (the request failed before completing) if we still own it."""
        self._release(keys=[reservation.redis_key], args=[reservation.token])
