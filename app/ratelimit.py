"""Rate limits (docs/api.md, "Rate limits") with Flask-Limiter (https://flask-limiter.readthedocs.io), counted
in Redis so every instance of a deployment shares them.

Scopes, each a ``PAYGATE_RATE_LIMIT_*`` setting holding rates like ``3000 per minute; 100 per second``
(several rates: all of them apply):

=============================  ======================================  =============================================
setting                        counts                                  keyed by
=============================  ======================================  =============================================
``RATE_LIMIT_API``             every ``/v1`` request                   the bearer token's API client (the IP address
                                                                       without a valid token)
``RATE_LIMIT_TOKEN``           every ``POST /oauth/token``             the client id it names (the IP without one)
``RATE_LIMIT_TOKEN_FAILURES_   token requests answered 400/401         the client id it names
CLIENT``
``RATE_LIMIT_TOKEN_FAILURES_   token requests answered 400/401         the IP address
IP``
``RATE_LIMIT_CHECKOUT_         ``POST /checkout/<session_id>``         the session
SESSION``
``RATE_LIMIT_CHECKOUT_IP``     ``POST /checkout/<session_id>``         the IP address
=============================  ======================================  =============================================

The failure limits count only failed token requests (a successful one never uses them up) and are checked
before the secret is: once a client id, or an address, has failed that many times in the window, token
requests for it answer 429 without running the password hash. A client's token requests are not held up by
other clients' failures from other addresses.

Moving windows (``moving-window``: every hit is timestamped, so "N per minute" holds for any 60 seconds, not
per calendar minute). Over a limit: 429 with ``Retry-After`` (seconds until a slot frees) and the error
envelope ``rate_limited``; ``/oauth/token`` keeps RFC 6749's shape ``{"error": "rate_limited"}`` like its
other errors; the checkout page's path answers an HTML page (as its other errors do). ``/healthz`` and
``/readyz`` are never limited. When the limits' Redis cannot be reached the request is served unlimited (fail
open) and a warning is logged (``rate limits not enforced``); limits apply again as soon as Redis answers.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

import redis.exceptions
from flask import Flask, jsonify, request
from flask_limiter import Limit, Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded
from limits.errors import StorageError

from kernel.errors import PaygateError
from kernel.settings import Settings

log = logging.getLogger("paygate.ratelimit")

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
"""Health endpoints: a load balancer's probes are never limited."""
KEY_PREFIX = "paygate"
"""Prefix of the limits' keys in Redis (after ``limits``' own ``LIMITS:``)."""
REDIS_TIMEOUT_SECONDS = 0.5
"""How long a limit check waits on Redis before failing open."""
STORAGE_ERRORS = (redis.exceptions.RedisError, StorageError, ConnectionError, TimeoutError)
FAILED_TOKEN_STATUSES = frozenset({400, 401})


def init_rate_limits(app: Flask, settings: Settings) -> Limiter | None:
    """Registers this app's :class:`~flask_limiter.Limiter` (None when ``PAYGATE_RATE_LIMITS_ENABLED`` is
    false). One limiter per app: each app counts in its own settings' Redis."""
    if not settings.rate_limits_enabled:
        return None
    limits = [
        _ParsedOnce(settings.rate_limit_api, key_function=_api_client, scope="api", shared=True,
                     exempt_when=lambda: request.blueprint != "api"),
        _ParsedOnce(settings.rate_limit_token, key_function=_token_client_or_ip, scope="token", shared=True,
                     exempt_when=_not_token_request),
        _ParsedOnce(settings.rate_limit_token_failures_client, key_function=_token_client_id,
                     scope="token-failures-client", shared=True, exempt_when=_not_token_request, deduct_when=_failed),
        _ParsedOnce(settings.rate_limit_token_failures_ip, key_function=_ip, scope="token-failures-ip", shared=True,
                     exempt_when=_not_token_request, deduct_when=_failed),
        _ParsedOnce(settings.rate_limit_checkout_session, key_function=_checkout_session, scope="checkout-session",
                     shared=True, exempt_when=_not_checkout_post),
        _ParsedOnce(settings.rate_limit_checkout_ip, key_function=_ip, scope="checkout-ip", shared=True,
                     exempt_when=_not_checkout_post),
    ]
    limiter = Limiter(
        _ip, default_limits=limits, strategy="moving-window", key_prefix=KEY_PREFIX,
        storage_uri=settings.rate_limit_redis_url or settings.redis_url,
        storage_options={"socket_timeout": REDIS_TIMEOUT_SECONDS, "socket_connect_timeout": REDIS_TIMEOUT_SECONDS},
        swallow_errors=True,  # fail open: Flask-Limiter logs and serves the request (see _FailOpenLog)
        headers_enabled=False,  # Retry-After on a 429 only: no extra Redis round trip on every answer
        on_breach=_answer,
    )
    limiter.request_filter(_no_limit_applies)
    limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, _rate_limited)
    _install_fail_open_log()
    return limiter


class _ParsedOnce(Limit):
    """A :class:`~flask_limiter.Limit` whose rates (a fixed string from the settings) are parsed into Flask-Limiter's
    runtime limits once: Flask-Limiter parses the string and builds them again on every request otherwise."""

    def __iter__(self):
        parsed = self.__dict__.get("_parsed")
        if parsed is None:
            parsed = self.__dict__["_parsed"] = tuple(super().__iter__())
        return iter(parsed)

    def bind(self, limiter):
        self.__dict__.pop("_parsed", None)
        return super().bind(limiter)


LIMITED_ENDPOINTS = frozenset({"oauth.token", "checkout.submit"})
"""The endpoints outside the ``/v1`` blueprint that a limit counts (every ``/v1`` request is counted)."""


def _no_limit_applies() -> bool:
    """Flask-Limiter's request filter: True (nothing evaluated) for the health endpoints and for every request
    no scope counts (the checkout page's GET, the agent view, static files), so only the requests a limit can
    hold up pay for evaluating the limits."""
    if request.path in EXEMPT_PATHS:
        return True
    return request.blueprint != "api" and request.endpoint not in LIMITED_ENDPOINTS


# -- keys ------------------------------------------------------------------------------------------------------
def _bounded(value: str) -> str:
    """A caller-chosen key part as a Redis key part: kept when short printable ASCII, else its digest."""
    if len(value) <= 64 and value.isascii() and value.isprintable():
        return value
    return "sha256-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def _ip() -> str:
    return "ip-" + (request.remote_addr or "unknown")


def _api_client() -> str:
    """The API client of a valid bearer token (:func:`app.api.bearer_client_id`, the check authentication then
    reuses), else the IP address."""
    from .api import bearer_client_id

    if request.headers.get("Authorization", "").lower().startswith("bearer "):
        try:
            return "client-" + _bounded(bearer_client_id())
        except Exception:  # an invalid token (401 follows), or a dependency down (503 follows)
            pass
    return _ip()


def _token_client_id() -> str:
    from .api.oauth import requested_client_id

    try:
        client_id = requested_client_id()
    except Exception:  # an unreadable form (e.g. over 64 KiB): the view answers it
        client_id = None
    return "client-" + _bounded(client_id) if client_id else "no-client"


def _token_client_or_ip() -> str:
    key = _token_client_id()
    return _ip() if key == "no-client" else key


def _checkout_session() -> str:
    return "session-" + _bounded(str((request.view_args or {}).get("session_id", "")))


def _not_token_request() -> bool:
    return request.endpoint != "oauth.token"


def _not_checkout_post() -> bool:
    return request.endpoint != "checkout.submit"


def _failed(response) -> bool:
    return response.status_code in FAILED_TOKEN_STATUSES


# -- answers ---------------------------------------------------------------------------------------------------
def _retry_after(limit: RequestLimit) -> int:
    """Whole seconds until the breached window has room again (at least 1)."""
    try:
        reset_at = limit.window[0]
    except Exception:  # the storage went away between the check and now
        return int(limit.limit.get_expiry())
    return max(1, math.ceil(reset_at - time.time()))


def _answer(limit: RequestLimit):
    """Flask-Limiter's ``on_breach``: the 429 answer for this request's path (returned, so it is raised inside
    :class:`~flask_limiter.errors.RateLimitExceeded` and :func:`_rate_limited` sends it)."""
    retry_after = _retry_after(limit)
    scope = limit.request_args[-1] if limit.request_args else "?"
    log.warning("rate limited", extra={"scope": scope, "limit": str(limit.limit), "path": request.path,
                                       "retry_after": retry_after})
    return rate_limited_response(retry_after)


def rate_limited_response(retry_after: int):
    """429 ``rate_limited`` with ``Retry-After: retry_after``: RFC 6749's ``{"error": "rate_limited"}`` on
    ``/oauth/token`` (like its other errors), else :func:`app.error_response` (the error envelope; an HTML page
    on the checkout page's path)."""
    from . import error_response

    if request.endpoint == "oauth.token":
        response = jsonify({"error": "rate_limited"})
        response.status_code = 429
        response.headers["Retry-After"] = str(retry_after)
        response.headers["Cache-Control"] = "no-store"
        return response
    return error_response(PaygateError("Too many requests. Wait Retry-After seconds and try again.",
                                       code="rate_limited", http_status=429, details={"retry_after": retry_after}))


def _rate_limited(err: RateLimitExceeded):
    """The handler of :class:`~flask_limiter.errors.RateLimitExceeded`: :func:`_answer`'s response, or (a
    breach without one) the same answer with the window's length as ``Retry-After``."""
    if err.response is not None:
        return err.response
    return rate_limited_response(int(err.limit.limit.get_expiry()))


# -- failing open ----------------------------------------------------------------------------------------------
class _FailOpenLog(logging.Filter):
    """On the ``flask-limiter`` logger: a swallowed storage error (Redis unreachable: the request is served
    unlimited) becomes one warning line without a traceback; other errors pass unchanged."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and isinstance(exc, STORAGE_ERRORS):
            record.msg = "rate limits not enforced: their Redis is unreachable (%s: %s); serving the request"
            record.args = (type(exc).__name__, str(exc)[:200])
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            record.exc_info, record.exc_text = None, None
        return True


_FAIL_OPEN_LOG = _FailOpenLog()


def _install_fail_open_log() -> None:
    logger = logging.getLogger("flask-limiter")
    if _FAIL_OPEN_LOG not in logger.filters:
        logger.addFilter(_FAIL_OPEN_LOG)
