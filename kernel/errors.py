"""The error root shared by every layer.

Exception tree::

    PaygateError(code, message, http_status)
    ├── ConfigError                 start-up configuration is invalid (never caught by views)
    ├── NotFound                    404 not_found
    ├── Unauthorized                401 unauthorized
    ├── ValidationFailed            400 validation_error (with per-field codes)
    ├── Conflict                    409 (invalid_state, idempotency_key_in_use, payment_not_capturable, ...)
    ├── Unprocessable               422 (amount_exceeds_capturable, amount_exceeds_refundable)
    ├── IdempotencyKeyReused        422 idempotency_key_reused
    └── ServiceUnavailable          503 service_unavailable (the database or Redis is down; Retry-After)

Business outcomes (a decline, a fraud block, an invalid card typed by DTMF) are
*results*, never exceptions: see :mod:`payments.submission`.
Messages never contain card data.
"""

from __future__ import annotations


class PaygateError(Exception):
    """Base error: a stable snake_case ``code``, a human ``message`` and the HTTP status to use."""

    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None,
                 details: dict | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.details = details or {}


class ConfigError(PaygateError):
    code = "configuration_error"


class NotFound(PaygateError):
    code = "not_found"
    http_status = 404


class Unauthorized(PaygateError):
    code = "unauthorized"
    http_status = 401


class ValidationFailed(PaygateError):
    """Request body failed validation; ``details["fields"]`` maps field name → error code."""

    code = "validation_error"
    http_status = 400


class Conflict(PaygateError):
    code = "invalid_state"
    http_status = 409


class Unprocessable(PaygateError):
    """The request is well formed but asks for more than the object allows (e.g. capturing more than is held)."""

    code = "unprocessable"
    http_status = 422


class IdempotencyKeyReused(PaygateError):
    code = "idempotency_key_reused"
    http_status = 422


class ServiceUnavailable(PaygateError):
    """A dependency (the database or Redis) cannot be reached, so nothing was done: try again after
    ``details["retry_after"]`` seconds (the ``Retry-After`` header; docs/api.md, "Readiness")."""

    code = "service_unavailable"
    http_status = 503
