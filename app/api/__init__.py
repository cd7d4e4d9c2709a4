"""The REST API (``/v1``) and the OAuth 2.0 token endpoint, one module per resource (the rules behind it:
``docs/api.md``).

Layout::

    app/api/__init__.py   the blueprints, bearer authentication, Idempotency-Key, route() (this module)
    app/api/spec.py       the spectree instance, request validation, pydantic error type → field code
    app/api/sessions.py   payment sessions: create, get, cancel, send-link
    app/api/voice.py      DTMF card entry: inspect a number, submit a card
    app/api/amounts.py    a customer-entered amount (amount_range sessions)
    app/api/conversations.py  closing a conversation's payment links
    app/api/events.py     events and their deliveries, redeliver
    app/api/payments.py   payments: get, list, merchant-initiated charges, capture and void of holds
    app/api/refunds.py    refunds by disposition and their review queue
    app/api/disputes.py   disputes, and the sandbox's clock and dispute close
    app/api/subscriptions.py  subscriptions: create, get, list, cancel; the sandbox's decline_next
    app/api/reports.py    GET /v1/reports/payments.csv: payments as CSV for reconciliation
    app/api/listing.py    the paging and created range every list shares
    app/api/oauth.py      POST /oauth/token (RFC 6749 §4.4)
    app/api/document.py   GET /v1/openapi.json
    app/schemas.py        model bases, field types, error codes and the views several modules return

An endpoint is declared once, by :func:`route` and its view's signature: the request models are the
view's annotated ``json`` / ``query`` / ``form`` / ``headers`` parameters, the response models and the
error codes are :func:`route`'s arguments. The same declaration validates the request (HTTP 400
``validation_error`` with per-field codes, before the view runs) and writes the OpenAPI 3.1 document
(:mod:`app.openapi`). A new resource is a new module here, imported at the bottom of this file::

    class CreateRefund(Body):                      # app/schemas.py's bases and field types
        amount: Annotated[MinorUnits, ErrorCode("invalid_amount")] | None = None
        reason: Literal["requested_by_customer", "duplicate", "fraudulent"]

    class RefundsQuery(Params):
        payment_id: Annotated[str, Field(min_length=1)] | SkipJsonSchema[None] = None

    @post("/payments/<payment_id>/refunds", operation_id="createRefund", tags=["refunds"],
          ok={201: (RefundView, "Created."), 200: (RefundView, "The refund this disposition already made.")},
          errors={404: ["payment_not_found"], 409: ["payment_not_refundable"]})
    def create_refund(payment_id: str, json: CreateRefund):
        '''Refund a captured payment.

        The description of the operation in the document.'''
        return jsonify(services().refunds.create(g.client_id, payment_id, json.model_dump())), 201

    @get("/refunds", operation_id="listRefunds", tags=["refunds"], ok={200: (RefundList, "Refunds.")})
    def list_refunds(query: RefundsQuery): ...

:func:`route` adds the statuses every endpoint of its kind can answer, each with the error envelope:
400 (when something is validated), 401 (unless ``public``), 404 (path parameters), 409 and 422 (POST:
Idempotency-Key), 413 (a body over 64 KiB), 429 (every endpoint: the rate limits of :mod:`app.ratelimit`)
and 500. Path parameter descriptions come from :data:`app.schemas.PATH_PARAMETERS`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping, Sequence
from http import HTTPStatus

from flask import Blueprint, Response, current_app, g, request
from spectree.utils import get_request_model_hints

from kernel.errors import PaygateError, ValidationFailed
from payments.idempotency import StoredResponse

from .. import error_response, services
from ..schemas import PATH_PARAMETERS, Error, IdempotencyKeyHeader
from .spec import RequestInvalid, Responses, request_invalid, spec, validate_model

bp = Blueprint("api", __name__, url_prefix="/v1")
oauth_bp = Blueprint("oauth", __name__)
PUBLIC_ENDPOINTS = {"api.openapi"}


@bp.before_request
def _authenticate():
    """Every ``/v1`` route but :data:`PUBLIC_ENDPOINTS` needs ``Authorization: Bearer <token>`` (401
    ``invalid_token`` / ``token_expired`` otherwise); sets ``g.client_id``."""
    if request.endpoint not in PUBLIC_ENDPOINTS:
        g.client_id = bearer_client_id()


def bearer_client_id() -> str:
    """The API client of this request's ``Authorization: Bearer`` token, checked once per request (the rate
    limits of :mod:`app.ratelimit` key on it before :func:`_authenticate` runs). Raises
    :class:`~kernel.errors.Unauthorized` like :meth:`payments.clients.TokenIssuer.client_id_for`."""
    if "bearer_check" not in g:
        header = request.headers.get("Authorization", "")
        bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
        try:
            g.bearer_check = services().tokens.client_id_for(bearer)
        except PaygateError as err:
            g.bearer_check = err
    if isinstance(g.bearer_check, PaygateError):
        raise g.bearer_check
    return g.bearer_check


@bp.before_request
def _refuse_nul_in_path():
    """A path parameter holding U+0000 names no object (PostgreSQL text cannot even hold it): 404 ``not_found``
    on every engine, after authentication, instead of a database error."""
    if any(isinstance(v, str) and "\x00" in v for v in (request.view_args or {}).values()):
        raise PaygateError("Not found.", code="not_found", http_status=404)


def required_idempotency_key() -> str:
    """The request's ``Idempotency-Key`` header, for operations that cannot run without one (a merchant-initiated
    charge, a subscription). Raises ``idempotency_key_required`` (400) when it is missing or empty."""
    key = request.headers.get("Idempotency-Key")
    if not key:
        raise ValidationFailed(f"{request.method} {request.path} requires an Idempotency-Key header.",
                               code="idempotency_key_required")
    return key


def idempotent(view):
    """``Idempotency-Key`` for a POST view, keys scoped per API client (:mod:`payments.idempotency`).

    The header is validated by :class:`app.schemas.IdempotencyKeyHeader` (400 ``invalid_idempotency_key``);
    the first completed response is replayed (``Idempotent-Replayed: true``), validation errors included;
    the same key with another body is 422, while the first request runs 409.
    """

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        key = request.headers.get("Idempotency-Key")
        if key is None:
            return view(*args, **kwargs)
        _, fields = validate_model(IdempotencyKeyHeader, {"Idempotency-Key": key})
        if fields:
            raise request_invalid(fields, code="invalid_idempotency_key",
                                  message="Idempotency-Key must be 1 to 255 printable characters.")
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


ErrorSpec = Sequence[str] | tuple[type, str]
"""What :func:`route`'s ``errors`` maps a status to: the error codes it answers with (in the error
envelope), or ``(model, description)`` for another body (``/oauth/token``'s RFC 6749 errors)."""

_TITLES = {
    400: "Bad request",
    401: "Missing, invalid or expired bearer token",
    404: "Not found for this API client",
    409: "Conflict",
    413: "The request body is over 64 KiB",
    422: "Unprocessable",
    429: "Rate limited; wait Retry-After seconds",
    500: "Something went wrong on our side",
    503: "The database or Redis is unavailable; nothing was done, retry after Retry-After seconds",
}
_BODY_METHODS = {"POST", "PUT", "PATCH"}
_PATH_PARAMETER = re.compile(r"<(?:[^:>]+:)?([^>]+)>")


def _error_statuses(method: str, rule: str, *, validated: bool, has_json: bool, idempotent_: bool,
                    public: bool, rate_limited: bool, errors: Mapping[int, ErrorSpec]) -> dict[str, tuple]:
    codes: dict[int, list[str]] = {500: ["internal_error"]}
    if validated:
        codes[400] = ["validation_error"] + (["invalid_json"] if has_json else [])
        if idempotent_:
            codes[400].append("invalid_idempotency_key")
    if not public:
        codes[401] = ["invalid_token", "token_expired"]
    if _PATH_PARAMETER.search(rule):
        codes[404] = ["not_found"]  # also a path parameter no object can have (U+0000)
    if idempotent_:
        codes[409] = ["idempotency_key_in_use"]
        codes[422] = ["idempotency_key_reused"]
    if method in _BODY_METHODS:
        codes[413] = ["request_too_large"]
    codes[429] = ["rate_limited"]  # every operation is rate limited (app/ratelimit.py); send-link has its own too
    if not public or method == "POST":  # everything but the public document reads the database or Redis
        codes[503] = ["service_unavailable"]
    out: dict[str, tuple] = {}
    for status, answer in errors.items():
        if isinstance(answer, tuple) and len(answer) == 2 and isinstance(answer[0], type):
            out[f"HTTP_{status}"] = answer
        else:
            codes[status] = list(answer) + [c for c in codes.get(status, []) if c not in answer]
    for status, listed in sorted(codes.items()):
        if f"HTTP_{status}" in out:
            continue
        title = _TITLES.get(status) or HTTPStatus(status).phrase
        listed = listed or ["not_found"]
        out[f"HTTP_{status}"] = (Error, f"{title}: " + ", ".join(f"`{c}`" for c in listed) + ".")
    return out


def route(method: str, rule: str, *, operation_id: str, ok: Mapping[int, tuple[type | None, str]],
          errors: Mapping[int, ErrorSpec] | None = None, tags: Sequence[str] = (),
          blueprint: Blueprint | None = None, public: bool = False, idempotent_post: bool | None = None,
          rate_limited: bool = False, security: dict | None = None,
          on_invalid: Callable[[RequestInvalid], object] | None = None,
          media: Mapping[int, tuple[str, dict]] | None = None):
    """Declares and registers one endpoint: ``method`` on ``rule`` (Werkzeug syntax, relative to the
    blueprint: ``/payment-sessions/<session_id>``) of ``blueprint`` (default :data:`bp`, ``/v1``).

    * ``operation_id``: the document's operationId (camelCase, stable: generated clients use it);
    * ``ok``: success status → ``(response model or None, description)``;
    * ``errors``: more error statuses → their codes, or ``(model, description)`` (see :data:`ErrorSpec`);
      the standard ones are added (module docstring);
    * ``public``: no bearer token (and no 401); ``security`` overrides the document's security;
    * ``idempotent_post``: the ``Idempotency-Key`` semantics (default: every POST);
    * ``rate_limited``: the endpoint has a limit of its own besides :mod:`app.ratelimit`'s (429
      ``rate_limited`` with ``Retry-After`` is documented on every endpoint either way);
    * ``on_invalid``: answers a :class:`~app.api.spec.RequestInvalid` itself (returns the response),
      instead of the 400 envelope;
    * ``media``: success statuses whose body is not JSON → ``(media type, JSON Schema)``, e.g.
      ``{200: ("text/csv", {"type": "string"})}`` (with ``ok={200: (None, description)}``).

    The view's docstring is the operation's summary (first paragraph) and description (the rest, up to a
    form feed). Its annotated parameters ``json``, ``query``, ``form``, ``headers`` receive the validated
    models; path parameters arrive as keyword arguments.
    """
    method = method.upper()

    def decorate(view):
        hints = get_request_model_hints(view)
        is_idempotent = method == "POST" if idempotent_post is None else idempotent_post
        headers = IdempotencyKeyHeader if is_idempotent and "headers" not in hints else None
        validated = bool(hints) or headers is not None
        responses = {f"HTTP_{status}": answer for status, answer in ok.items()}
        responses.update(_error_statuses(method, rule, validated=validated, has_json="json" in hints,
                                         idempotent_=is_idempotent, public=public, rate_limited=rate_limited,
                                         errors=errors or {}))
        handler = spec.validate(
            headers=headers, resp=Responses(media=dict(media or {}), **responses), tags=tags,
            operation_id=operation_id,
            security=security if security is not None else ({} if public else None),
            path_parameter_descriptions=PATH_PARAMETERS,
            # spectree adds its validation-error model under this status unless one is declared: 400 when
            # something is validated, else 500 (always declared), so no 400 that cannot happen is documented
            validation_error_status=400 if validated else 500,
        )(view)
        if on_invalid is not None:
            handler = _answering_invalid(handler, on_invalid)
        if is_idempotent:
            handler = idempotent(handler)
        (blueprint or bp).add_url_rule(rule, endpoint=view.__name__, view_func=handler, methods=[method])
        return handler

    return decorate


def _answering_invalid(view, answer: Callable[[RequestInvalid], object]):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except RequestInvalid as err:
            return answer(err)

    return wrapper


get = functools.partial(route, "GET")
post = functools.partial(route, "POST")

# the endpoint modules register their routes on import (before any app registers the blueprints)
from . import (  # noqa: F401,E402
    amounts,
    conversations,
    disputes,
    document,
    events,
    gateway_status,
    oauth,
    payments,
    refunds,
    reports,
    sessions,
    subscriptions,
    voice,
)

BLUEPRINTS = (bp, oauth_bp)
"""Every blueprint of the API, for :func:`app.create_app` and :mod:`app.openapi`."""
