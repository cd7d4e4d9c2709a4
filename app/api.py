"""REST API (contract §1, §2, §5) and the OAuth 2.0 client-credentials token endpoint."""

from __future__ import annotations

import base64
import binascii
import functools

from flask import Blueprint, Response, current_app, g, jsonify, request

from callbacks import outbox
from callbacks.models import Event
from kernel.errors import PaygateError, ValidationFailed
from payments.clients import authenticate_client
from payments.idempotency import StoredResponse
from payments.models import PaymentSession
from payments.sessions import session_view
from payments.submission import CardInput
from tokenizer.cards import inspect_number

from . import error_response, services
from .openapi import openapi_document

bp = Blueprint("api", __name__, url_prefix="/v1")
oauth_bp = Blueprint("oauth", __name__)


# -- OAuth ---------------------------------------------------------------------------------------------
@oauth_bp.post("/oauth/token")
def token():
    """RFC 6749 §4.4 client credentials: HTTP Basic ``client_id:client_secret`` (or form fields) and
    ``grant_type=client_credentials`` → ``{"access_token", "token_type": "Bearer", "expires_in": 3600}``.
    Errors follow RFC 6749 §5.2: ``invalid_client`` (401), ``invalid_request`` / ``unsupported_grant_type`` (400)."""
    client_id, client_secret = _basic_credentials()
    if client_id is None:
        client_id, client_secret = request.form.get("client_id"), request.form.get("client_secret")
    if not client_id or not client_secret:
        return _oauth_error("invalid_client", 401)
    grant = request.form.get("grant_type")
    if grant is None:
        return _oauth_error("invalid_request", 400)
    if grant != "client_credentials":
        return _oauth_error("unsupported_grant_type", 400)
    svc = services()
    with svc.Session() as db:
        client = authenticate_client(db, client_id, client_secret)
    if client is None:
        return _oauth_error("invalid_client", 401)
    response = jsonify(svc.tokens.issue(client.id))
    response.headers["Pragma"] = "no-cache"
    return response


def _basic_credentials() -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)


def _oauth_error(code: str, status: int) -> Response:
    response = jsonify({"error": code})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="paygate"'
    return response


# -- auth + idempotency ------------------------------------------------------------------------------
@bp.before_request
def _authenticate():
    if request.endpoint == "api.openapi":
        return None
    header = request.headers.get("Authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    g.client_id = services().tokens.client_id_for(bearer)
    return None


def idempotent(view):
    """Applies contract §1's ``Idempotency-Key`` semantics to a POST view (keys scoped per API client)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        store = services().idempotency
        found = store.reserve(g.client_id, key, method=request.method, path=request.path,
                              body=request.get_data(cache=True))
        if isinstance(found, StoredResponse):
            response = Response(found.body, status=found.status, mimetype="application/json")
            response.headers["Idempotent-Replayed"] = "true"
            return response
        try:
            try:
                response = view(*args, **kwargs)
            except PaygateError as err:
                response = error_response(err)
            response = current_app.make_response(response)
        except BaseException:
            store.release(found)
            raise
        store.complete(found, response.status_code, response.get_data(as_text=True))
        return response

    return wrapper


def _json_body() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed("The request body must be a JSON object.", code="invalid_json")
    return body


# -- payment sessions --------------------------------------------------------------------------------
@bp.post("/payment-sessions")
@idempotent
def create_session():
    svc = services()
    s = svc.sessions.create(g.client_id, _json_body())
    return jsonify(svc.sessions.created_view(s)), 201


@bp.get("/payment-sessions/<session_id>")
def get_session(session_id: str):
    return jsonify(session_view(services().sessions.get(g.client_id, session_id)))


@bp.post("/payment-sessions/<session_id>/cancel")
@idempotent
def cancel_session(session_id: str):
    return jsonify(session_view(services().sessions.cancel(g.client_id, session_id)))


@bp.post("/payment-sessions/<session_id>/send-link")
@idempotent
def send_link(session_id: str):
    """Contract §4: texts the checkout link through Genesys's agentless messaging API (needs the client's
    Genesys settings, §6). 429 ``rate_limited`` carries ``Retry-After``."""
    sent = services().link_sender.send(g.client_id, session_id, request.get_json(silent=True))
    return jsonify(sent.as_dict())


# -- events -----------------------------------------------------------------------------------------
@bp.get("/events")
def list_events():
    """``GET /v1/events?session_id=`` → ``{"data": [event view, ...]}`` with delivery state and attempts."""
    session_id = request.args.get("session_id")
    svc = services()
    with svc.Session() as db:
        if session_id is not None:
            s = db.get(PaymentSession, session_id)
            if s is None or s.client_id != g.client_id:
                return jsonify({"data": []})
        data = outbox.list_events(db, client_id=g.client_id, session_id=session_id)
    return jsonify({"data": data})


@bp.post("/events/<event_id>/redeliver")
@idempotent
def redeliver_event(event_id: str):
    """Puts every delivery of the event back in the queue, due now (also for dead or delivered ones)."""
    svc = services()
    with svc.Session.begin() as db:
        event = db.get(Event, event_id)
        if event is None or event.client_id != g.client_id:
            raise PaygateError("No such event.", code="event_not_found", http_status=404)
        outbox.redeliver(db, event_id, svc.clock())
    outbox.wake(svc.redis)
    with svc.Session() as db:
        view = next(v for v in outbox.list_events(db, client_id=g.client_id, session_id=event.session_id)
                    if v["id"] == event_id)
    return jsonify(view), 202


# -- voice entry (DTMF from a Genesys secure flow, server to server) -----------------------------------
@bp.post("/cards/inspect")
@idempotent
def inspect_card():
    """Contract §4: which questions this card needs (brand, PAN lengths, CVC length, Luhn so far)."""
    number = _json_body().get("number")
    if not isinstance(number, str) or not number.isdigit() or not 6 <= len(number) <= 19:
        raise ValidationFailed("number must be 6 to 19 digits.", details={"fields": {"number": "invalid_number"}})
    return jsonify(inspect_number(number, services().settings.allowed_brands))


@bp.post("/payment-sessions/<session_id>/card")
@idempotent
def submit_card(session_id: str):
    """Contract §4: the same processing as the hosted page; business outcomes are HTTP 200 results,
    because a Genesys voice flow cannot read the body of a non-2xx answer."""
    body = _json_body()
    svc = services()
    result = svc.payments.submit(
        session_id, CardInput(body.get("number"), body.get("exp_month"), body.get("exp_year"), body.get("cvc"),
                              body.get("cardholder_name")),
        source="voice", client_ip=None, client_id=g.client_id)
    s = result.session
    return jsonify({"outcome": result.outcome, "status": s.status, "token": s.token, "card_brand": s.card_brand,
                    "card_last4": s.card_last4, "decline_code": s.decline_code, "message": s.message,
                    "field_errors": result.field_errors, "attempts_remaining": result.attempts_remaining})


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(services().settings.public_base_url))
