"""The Flask web app: hosted checkout page, REST API and OAuth token endpoint.

``gunicorn 'app:create_app()'`` serves it. Configuration is read once from the
environment (:meth:`kernel.settings.Settings.from_env`) and every service is built
by :func:`paygate.services.build_services`; views only parse, call a service and
render.
"""

from __future__ import annotations

import logging
import time

import redis.exceptions
import sqlalchemy.exc
import structlog
from flask import Flask, current_app, g, has_request_context, jsonify, request, url_for

from kernel.clock import random_id
from kernel.errors import PaygateError, ServiceUnavailable
from kernel.logging import configure_logging
from kernel.settings import Settings
from paygate.migrate import upgrade
from paygate.services import Services, build_services

log = logging.getLogger("paygate.http")

DEPENDENCY_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                     sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError)
"""Redis or the database cannot be reached (or its pool is exhausted): answered 503 ``service_unavailable``
with ``Retry-After`` (docs/api.md, "Readiness"), an HTML page on the checkout path."""
RETRY_AFTER_SECONDS = 5


def create_app(settings: Settings | None = None, *, services: Services | None = None) -> Flask:
    """Builds the app. ``settings`` default: the environment; ``services`` lets tests inject a clock/gateway."""
    settings = settings or (services.settings if services else Settings.from_env())
    configure_logging(settings.log_level)
    if settings.database_url.startswith("sqlite"):
        upgrade(settings.database_url, lock_dir=settings.instance_path)  # a fresh SQLite file migrates itself
    services = services or build_services(settings)

    app = Flask(__name__, instance_path=str(settings.instance_path))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        # Flask's session cookie (it holds the agent view's CSRF token) still opens under a retired key
        SECRET_KEY_FALLBACKS=list(settings.previous_secret_keys),
        WTF_CSRF_TIME_LIMIT=86400,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_NAME="paygate_session",
        # in production the page lives in a cross-site iframe (Genesys): the CSRF session cookie must be
        # SameSite=None; Secure, partitioned per top-level site (CHIPS)
        SESSION_COOKIE_SAMESITE="None" if settings.production else "Lax",
        SESSION_COOKIE_SECURE=settings.production,
        SESSION_COOKIE_PARTITIONED=settings.production,
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=64 * 1024,
        # WTForms' own messages are never shown (the checkout page words its errors itself, in its language);
        # with this on, Flask-WTF reads WTForms' catalog from disk on every request that builds a form
        WTF_I18N_ENABLED=False,
    )
    app.json.sort_keys = False
    app.extensions["paygate"] = services

    from . import agent, api, apidocs, checkout, security, webhooks
    from .i18n import init_i18n

    init_i18n(app)  # the page's language: Flask-Babel over kernel/translations (docs/api.md, "Languages")
    security.init_app(app, settings.frame_ancestors, hsts=settings.production)
    if settings.trusted_proxies:  # request.remote_addr (fraud IP rule, limits) = the client, not the balancer
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxies, x_proto=settings.trusted_proxies)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.oauth_bp)
    app.register_blueprint(checkout.bp)
    app.register_blueprint(agent.bp)
    app.register_blueprint(webhooks.bp)
    app.register_blueprint(apidocs.bp)  # GET /docs: the browsable API reference
    static_urls: dict[tuple[str, str], str] = {}

    @app.template_global()
    def static_url(filename: str) -> str:
        """``url_for("static", filename=filename)``, built once per (script root, file): the pages name the same
        few static files on every render and building a URL is one of a render's costlier steps."""
        key = (request.script_root if has_request_context() else "", filename)
        url = static_urls.get(key)
        if url is None:
            url = static_urls[key] = url_for("static", filename=filename)
        return url

    from .merchant import init_merchant

    init_merchant(app)  # the merchant's name, support phone and accent stylesheet on the page

    @app.before_request
    def _request_id():
        g.request_id = "req_" + random_id("r")[2:18]
        g.started = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=g.request_id)

    @app.after_request
    def _access_log(response):
        response.headers["Request-Id"] = getattr(g, "request_id", "")
        log.info("request", extra={"method": request.method, "path": request.path, "status": response.status_code,
                                   "duration_ms": round((time.perf_counter() - g.get("started", time.perf_counter())) * 1000, 2)})
        return response

    from .admission import init_admission
    from .ratelimit import init_rate_limits

    init_admission(app, settings)  # after _request_id, before the limiter: heavy requests wait for a slot first
    init_rate_limits(app, settings)  # after _request_id: a 429 carries its request id

    @app.errorhandler(PaygateError)
    def _paygate_error(err: PaygateError):
        return error_response(err)

    @app.errorhandler(404)
    def _not_found(_err):
        return error_response(PaygateError("Not found.", code="not_found", http_status=404))

    @app.errorhandler(405)
    def _method(err):
        response = error_response(PaygateError("Method not allowed.", code="method_not_allowed", http_status=405))
        if getattr(err, "valid_methods", None):  # RFC 9110 §15.5.6: a 405 names the methods the target has
            response.headers["Allow"] = ", ".join(sorted(err.valid_methods))
        return response

    @app.errorhandler(413)
    def _too_large(_err):
        return error_response(PaygateError("The request body is too large.", code="request_too_large",
                                           http_status=413))

    @app.errorhandler(500)
    def _internal(_err):
        log.exception("unhandled error")
        return error_response(PaygateError("Something went wrong on our side.", code="internal_error",
                                           http_status=500))

    def _dependency_down(err):
        log.warning("dependency unavailable", extra={"error": type(err).__name__, "path": request.path})
        if request.path.startswith("/checkout/"):
            from .checkout import dependency_down_page

            return dependency_down_page(RETRY_AFTER_SECONDS)
        return error_response(ServiceUnavailable(
            "The service is temporarily unavailable; nothing was done. Please try again shortly.",
            details={"retry_after": RETRY_AFTER_SECONDS}))

    for dependency_error in DEPENDENCY_ERRORS:
        app.register_error_handler(dependency_error, _dependency_down)

    @app.get("/healthz")
    def healthz():
        """Liveness: 200 while the process runs (dependencies are /readyz's business)."""
        return jsonify({"ok": True})

    @app.get("/readyz")
    def readyz():
        """Readiness (docs/api.md, "Readiness"): 200 ``{"database": "ok", "redis": "ok", "gateway": <breaker
        state>}``, or 503 with ``"unavailable"`` for what is down. An open breaker is reported, not a 503."""
        return readiness(app.extensions["paygate"])

    return app


def error_response(err: PaygateError):
    """The error envelope of docs/api.md, "Conventions", ``{"error": {"code", "message", "request_id"}}`` (+ ``fields`` for
    validation errors); ``details["retry_after"]`` (seconds) becomes a ``Retry-After`` header. On the paths a browser
    opens (checkout page, agent view: :func:`app.checkout.is_page_path`) the answer is an HTML page instead."""
    from .checkout import error_page, is_page_path

    if has_request_context() and is_page_path(request.path):
        response = current_app.make_response(error_page(err.http_status))
    else:
        body = {"code": err.code, "message": err.message, "request_id": getattr(g, "request_id", None)}
        if err.details.get("fields"):
            body["fields"] = err.details["fields"]
        response = jsonify({"error": body})
        response.status_code = err.http_status
    if err.http_status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="paygate"'
    if err.details.get("retry_after") is not None:  # e.g. 429 rate_limited (RFC 9110 §10.2.3)
        response.headers["Retry-After"] = str(int(err.details["retry_after"]))
    return response


def readiness(svc: Services):
    """The ``/readyz`` answer for ``svc``: each dependency checked once (database ``SELECT 1``, Redis ``PING``,
    the breaker's state, ``"unknown"`` while Redis is down)."""
    from sqlalchemy import text

    body = {"database": "ok", "redis": "ok", "gateway": "unknown"}
    try:
        with svc.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to answer is "not ready"
        log.warning("readiness: database unavailable", extra={"error": type(exc).__name__})
        body["database"] = "unavailable"
    try:
        svc.redis.ping()
        body["gateway"] = svc.breaker.state() if svc.breaker is not None else "closed"
    except Exception as exc:
        log.warning("readiness: redis unavailable", extra={"error": type(exc).__name__})
        body["redis"] = "unavailable"
    response = jsonify(body)
    if "unavailable" in (body["database"], body["redis"]):
        response.status_code = 503
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def services() -> Services:
    """The current app's services."""
    from flask import current_app

    return current_app.extensions["paygate"]
