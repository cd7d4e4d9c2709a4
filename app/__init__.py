"""The Flask web app: hosted checkout page, REST API and OAuth token endpoint.

``gunicorn 'app:create_app()'`` serves it. Configuration is read once from the
environment (:meth:`kernel.settings.Settings.from_env`) and every service is built
by :func:`paygate.services.build_services`; views only parse, call a service and
render.
"""

from __future__ import annotations

import logging
import time

import structlog
from flask import Flask, g, jsonify, request

from kernel.clock import random_id
from kernel.errors import PaygateError
from kernel.logging import configure_logging
from kernel.settings import Settings
from paygate.migrate import upgrade
from paygate.services import Services, build_services

log = logging.getLogger("paygate.http")


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
    )
    app.json.sort_keys = False
    app.extensions["paygate"] = services

    from . import agent, api, checkout, security, webhooks

    security.init_app(app, settings.frame_ancestors)
    app.register_blueprint(api.bp)
    app.register_blueprint(api.oauth_bp)
    app.register_blueprint(checkout.bp)
    app.register_blueprint(agent.bp)
    app.register_blueprint(webhooks.bp)

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

    @app.get("/healthz")
    def healthz():
        return jsonify({"ok": True})

    return app


def error_response(err: PaygateError):
    """The error envelope of docs/api.md, "Conventions", ``{"error": {"code", "message", "request_id"}}`` (+ ``fields`` for
    validation errors); ``details["retry_after"]`` (seconds) becomes a ``Retry-After`` header."""
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


def services() -> Services:
    """The current app's services."""
    from flask import current_app

    return current_app.extensions["paygate"]
