"""A local HTTP server that speaks enough of Stripe's v1 wire format for the Stripe adapter's tests.

Wire format (as the stripe SDK sends and expects it; https://docs.stripe.com/api, https://docs.stripe.com/api/errors):

* requests are ``application/x-www-form-urlencoded`` with bracket keys (``card[number]``,
  ``metadata[k]``, ``expand[0]`` or ``expand[]``); GET parameters travel the same way in the query string;
  ``Authorization: Bearer sk_test_…`` is required (otherwise 401); every POST may carry ``Idempotency-Key``;
* answers are JSON objects with ``"object"``: ``payment_method``, ``customer``, ``payment_intent``,
  ``charge``, ``refund``, ``dispute``, ``search_result``; errors are ``{"error": {"type", "code",
  "decline_code"?, "message", "param", "payment_intent"?, "payment_method"?, "charge"?}}`` — 402 for card
  errors, 400 invalid request / idempotency error, 401 bad key, 404 unknown object or route, 409 same key
  still running; every answer has a ``Request-Id`` header.

Endpoints (each one checked at import against the installed SDK's services, :func:`sdk_routes`)::

    POST /v1/payment_methods                     type=card with the raw card
    POST /v1/customers                           an empty-ish Customer
    POST /v1/payment_intents                     with confirm=true it confirms in the same call; customer,
                                                 setup_future_usage, off_session
    GET  /v1/payment_intents/{id}
    GET  /v1/payment_intents/search              clauses metadata['k']:'v' joined by AND
    POST /v1/payment_intents/{id}/capture        only in requires_capture; amount_to_capture ≤ capturable
    POST /v1/payment_intents/{id}/cancel         only in requires_payment_method | requires_capture |
                                                 requires_confirmation | requires_action | processing
    POST /v1/refunds                             payment_intent or charge; only captured money
    GET  /v1/refunds/{id}, GET /v1/disputes/{id}

**Parameter checking follows the SDK.** Every request's parameters are checked against the request-params
``TypedDict`` the installed stripe SDK declares for that call (``stripe.params.PaymentIntentCaptureParams``
and so on, found through the SDK's service method for the route; :func:`params_class_for`), recursively
through nested TypedDicts, lists and maps. Like Stripe (https://docs.stripe.com/error-codes):

* a parameter the SDK does not declare → 400 ``parameter_unknown`` ("Received unknown parameter: x");
* a required one missing → 400 ``parameter_missing``;
* a non-integer where the SDK says ``int`` → 400 ``parameter_invalid_integer`` ("Invalid integer: x");
* an empty string where the parameter cannot be unset (``Literal['']`` not allowed) → 400
  ``parameter_invalid_empty``;
* a value outside the SDK's ``Literal[...]`` → 400 with ``code`` null and "Invalid x: must be one of a, b,
  or c" (Stripe answers enum errors without a code); a bad boolean, a string where a hash or an array is
  expected and the like → 400 with ``code`` null ("Invalid boolean: x", "Invalid hash", "Invalid array").

The SDK types many enums as ``Literal[...] | str`` so that *it* accepts values a newer API adds; the
server side of that contract is still the listed values, so the fake enforces the ``Literal``.
Beyond the types, ``metadata`` keeps Stripe's limits (50 keys, keys ≤ 40 characters, values ≤ 500;
https://docs.stripe.com/api/metadata) and an ``Idempotency-Key`` longer than 255 characters is refused
(https://docs.stripe.com/api/idempotent_requests). Parameter errors are checked before the idempotency
layer and are never stored under the key (https://docs.stripe.com/error-low-level).

Card behaviour on confirmation (Stripe's test cards, https://docs.stripe.com/testing)::

    4000000000000002 / 9995 / 9987 / 9979 / 6975 / 0341   card_declined + decline_code (generic_decline,
                                                           insufficient_funds, lost_card, stolen_card,
                                                           card_velocity_exceeded, generic_decline)
    4000000000000069 / 0119                                code expired_card / processing_error
    4000000000000127                                       code incorrect_cvc, only when a CVC was sent
    4100000000000019, 4000000000004954                     Radar block: card_declined + decline_code
                                                           fraudulent; the failed charge has outcome
                                                           type "blocked", risk_level "highest"
    4000000000009235                                       succeeds, outcome risk_level "elevated"
    4000002760003184                                       on-session: requires_action (3-D Secure);
                                                           off-session: always 402 authentication_required
    4000002500003155                                       on-session: requires_action; off-session:
                                                           authentication_required unless set up earlier
    4000003800000446                                       on-session: requires_action; off-session succeeds
    4000000000000259                                       succeeds; once captured, the charge is disputed
                                                           (reason fraudulent, status needs_response)
    4000000000005126                                       refunds are created succeeded;
                                                           :meth:`FakeStripeServer.fail_refund` flips one
    4000000000007726                                       refunds are created pending;
                                                           :meth:`FakeStripeServer.settle_refund` ends one
    any other Luhn-valid number                            succeeds, risk_level "normal"

The Radar block shape follows https://docs.stripe.com/radar/testing ("risk level highest, always blocked");
the charge's ``outcome`` (type ``blocked``, reason ``highest_risk_level``, ``network_status``
``not_sent_to_network``) is what the Charge object documents for a Radar block. A manual-capture charge has
``payment_method_details.card.capture_before`` = created + 7 days (Visa merchant-initiated: 4 days 18 hours;
https://docs.stripe.com/payments/place-a-hold-on-a-payment-method).

Saved cards (https://docs.stripe.com/payments/save-during-payment): a successful confirmation with
``customer`` and ``setup_future_usage`` attaches the PaymentMethod to the Customer; later intents for that
PaymentMethod must name the same customer, and a PaymentMethod used once without being attached cannot be
used again (400), as Stripe does.

Idempotency like Stripe (https://docs.stripe.com/api/idempotent_requests): per API key, the first answer
of a request that began executing (200, 402, or a 400 refusal such as ``payment_intent_unexpected_state``)
is stored and replayed for the same key and the same parameters with ``Idempotent-Replayed: true``; the
same key with other parameters → 400 ``idempotency_error``; the same key while the first request is still
being executed → 409 ``idempotency_key_in_use``; parameter errors, 404s and injected failures are not
stored, so a retry runs again.

Test knobs: :meth:`FakeStripeServer.fail_next`, :meth:`~FakeStripeServer.delay_next` (the request is
executed, then its answer is held back — "the charge happened but the response was lost"),
:meth:`~FakeStripeServer.refuse_raw_cards`, :meth:`~FakeStripeServer.fail_refund`,
:meth:`~FakeStripeServer.settle_refund`, :meth:`~FakeStripeServer.close_dispute`,
:meth:`~FakeStripeServer.expire_hold`, :meth:`~FakeStripeServer.saved_card`, :meth:`~FakeStripeServer.dispute_for`,
:meth:`~FakeStripeServer.make_event`,
:attr:`~FakeStripeServer.events`, :attr:`~FakeStripeServer.requests` and :meth:`~FakeStripeServer.reset`.
Everything, including the card numbers it receives, stays in memory; nothing is written to disk or logged.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import re
import secrets
import sys
import threading
import time
import typing
from typing import Any, ForwardRef, Iterator

import pytest
import stripe
import stripe.params
import typing_extensions
from stripe._request_options import RequestOptions
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tokenizer.cards import detect_brand, luhn_valid

__all__ = ["FakeStripeServer", "params_class_for", "parse_stripe_form", "sdk_routes", "stripe_server",
           "validate_params"]

API_VERSION = "2026-10-28.endive"

_DECLINE_CODES = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000009987": "lost_card",
    "4000000000009979": "stolen_card",
    "4000000000006975": "card_velocity_exceeded",
    "4000000000000341": "generic_decline",
}
_ERROR_CODES = {"4000000000000069": "expired_card", "4000000000000119": "processing_error"}
_RADAR_BLOCK = {"4100000000000019", "4000000000004954"}
_ELEVATED = {"4000000000009235"}
_THREE_DS_ALWAYS = "4000002760003184"
_THREE_DS_UNLESS_SET_UP = "4000002500003155"
_THREE_DS_ON_SESSION_ONLY = "4000003800000446"
_THREE_DS = {_THREE_DS_ALWAYS, _THREE_DS_UNLESS_SET_UP, _THREE_DS_ON_SESSION_ONLY}
_DISPUTE_FRAUDULENT = "4000000000000259"
_REFUND_FAILS = "4000000000005126"
_REFUND_PENDING = "4000000000007726"

_DAY = 86400
_HOLD_SECONDS = 7 * _DAY                    # online customer-initiated authorizations, all brands
_VISA_MIT_HOLD_SECONDS = 4 * _DAY + 18 * 3600  # Visa merchant-initiated: "4 days and 18 hours"
_DISPUTE_RESPONSE_SECONDS = 7 * _DAY

_CANCELABLE = ("requires_payment_method", "requires_capture", "requires_confirmation", "requires_action",
               "processing")

_CARD_MESSAGES = {
    "card_declined": "Your card was declined.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "Your card's security code is incorrect.",
    "processing_error": "An error occurred while processing your card. Try again in a little bit.",
    "incorrect_number": "Your card number is incorrect.",
    "invalid_number": "Your card number is not a valid credit card number.",
    "invalid_expiry_month": "Your card's expiration month is invalid.",
    "invalid_expiry_year": "Your card's expiration year is invalid.",
    "invalid_cvc": "Your card's security code is invalid.",
    "authentication_required": "Your card was declined. This transaction requires authentication.",
}
RAW_CARD_MESSAGE = ("Sending credit card numbers directly to the Stripe API is generally unsafe. "
                    "(fake server: raw card data APIs are not enabled for this account)")


def parse_stripe_form(pairs) -> dict:
    """Turns form pairs with bracket keys into nested data: ``card[number]`` → ``{"card": {"number": …}}``;
    ``expand[0]``/``expand[]`` → lists. Values stay strings."""
    root: dict = {}
    for raw_key, value in pairs:
        head = raw_key.split("[", 1)[0]
        parts = [head, *re.findall(r"\[([^\]]*)\]", raw_key[len(head):])]
        node = root
        for i, part in enumerate(parts):
            if part == "":
                part = str(len(node))
            if i == len(parts) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):  # conflicting shapes: keep the later scalar's parent simple
                    break
    return _lists(root)


def _lists(node):
    if isinstance(node, dict):
        node = {k: _lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node):
            return [node[k] for k in sorted(node, key=int)]
    return node


class _Answer(Exception):
    """Raised inside a handler to answer with ``status`` and ``body`` (an error, usually). ``executed``:
    the endpoint had begun executing, so Stripe keeps the answer under the idempotency key."""

    def __init__(self, status: int, body: dict, *, executed: bool = False):
        super().__init__(status)
        self.status, self.body, self.executed = status, body, executed


def _error(status: int, type_: str, message: str, *, code=None, decline_code=None, param=None,
           executed: bool = False, **extra) -> _Answer:
    err = {"type": type_, "message": message, "code": code, "param": param}
    if code:
        err["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if decline_code is not None:
        err["decline_code"] = decline_code
    err.update(extra)
    return _Answer(status, {"error": err}, executed=executed)


def _invalid(message: str, *, code=None, param=None, executed: bool = False) -> _Answer:
    return _error(400, "invalid_request_error", message, code=code, param=param, executed=executed)


# ==== the SDK's declared parameters ==================================================================
# Endpoints this fake serves → the SDK service that calls them (module, class). The route table and the
# params TypedDict of every route are read from these services, so the fake follows the installed SDK.
_SDK_SERVICES = (
    ("stripe._payment_method_service", "PaymentMethodService"),
    ("stripe._customer_service", "CustomerService"),
    ("stripe._payment_intent_service", "PaymentIntentService"),
    ("stripe._refund_service", "RefundService"),
    ("stripe._dispute_service", "DisputeService"),
)
_REQUEST_RE = re.compile(r'self\._request\(\s*"(get|post|delete)",\s*"(/v1/[^"]*)"')
_OPTION_KEYS = frozenset(RequestOptions.__annotations__)


def _template_key(template: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", template)


@functools.cache
def sdk_routes() -> dict[tuple[str, str], type]:
    """``(VERB, path template with {} placeholders) → request-params TypedDict`` for every method of the
    services in ``_SDK_SERVICES``, read from the installed stripe SDK (its ``self._request("post",
    "/v1/…")`` call and its ``params: Optional["XParams"]`` annotation)."""
    routes: dict[tuple[str, str], type] = {}
    for module_name, class_name in _SDK_SERVICES:
        service = getattr(importlib.import_module(module_name), class_name)
        for name, fn in inspect.getmembers(service, inspect.isfunction):
            if name.startswith("_") or name.endswith("_async"):
                continue
            found = _REQUEST_RE.search(inspect.getsource(fn))
            param = inspect.signature(fn).parameters.get("params")
            class_match = re.search(r"(\w+Params)\b", str(param.annotation)) if param is not None else None
            if found and class_match:
                routes[(found.group(1).upper(), _template_key(found.group(2)))] = getattr(
                    stripe.params, class_match.group(1))
    return routes


def params_class_for(method: str, template: str) -> type:
    """The SDK's request-params TypedDict for ``method`` on ``template`` (placeholders in braces, any name).
    Raises KeyError when the installed SDK has no such call."""
    return sdk_routes()[(method.upper(), _template_key(template))]


# A resolved annotation is a tuple of alternatives, each one of:
#   ("int",) ("float",) ("bool",) ("str",) ("any",) ("enum", frozenset) ("list", alts) ("map", alts) ("obj", td)
def _alts(tp: Any, ns: dict) -> tuple:
    if isinstance(tp, str):
        tp = eval(tp, ns)
    if isinstance(tp, ForwardRef):
        tp = eval(tp.__forward_arg__, ns)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.NotRequired, typing.Required, typing_extensions.NotRequired, typing_extensions.Required,
                  typing.Optional):
        return _alts(args[0], ns)
    if origin is typing.Union or type(tp).__name__ == "UnionType":
        out: list = []
        for arg in args:
            out.extend(_alts(arg, ns))
        return _merge_enums(tuple(a for a in out if a != ("none",)))
    if origin in (typing.Literal, typing_extensions.Literal):
        return (("enum", frozenset(str(a).lower() if isinstance(a, bool) else str(a) for a in args)),)
    if tp is type(None):
        return (("none",),)
    if tp is bool:
        return (("bool",),)
    if tp is int:
        return (("int",),)
    if tp is float:
        return (("float",),)
    if tp is str:
        return (("str",),)
    if tp is Any:
        return (("any",),)
    if origin in (list, typing.List):
        return (("list", _alts(args[0], ns)),)
    if origin in (dict, typing.Dict) or (origin is not None and getattr(origin, "__name__", "") in
                                          ("UntypedStripeObject", "Mapping")):
        value = args[-1] if args else Any
        return (("map", _alts(value, ns)),)
    if typing_extensions.is_typeddict(tp):
        return (("obj", tp),)
    return (("any",),)


def _merge_enums(alts: tuple) -> tuple:
    """One enum alternative with every literal; a free ``str`` is dropped when real (non-empty) literals
    exist: the SDK's ``Literal[...] | str`` is client-side forward compatibility, the API checks the list."""
    values = frozenset().union(*(a[1] for a in alts if a[0] == "enum"))
    rest = [a for a in alts if a[0] != "enum"]
    if values - {""}:
        rest = [a for a in rest if a[0] != "str"]
    return tuple(rest) + ((("enum", values),) if values else ())


@functools.cache
def _fields(td: type, top: bool) -> tuple[dict[str, tuple], frozenset[str]]:
    """(field → alternatives, required field names) of a request-params TypedDict; request options
    (``api_key``, ``idempotency_key``, …) are not parameters at the top level."""
    ns = vars(sys.modules[td.__module__])
    fields: dict[str, tuple] = {}
    for key, annotation in td.__annotations__.items():
        if top and key in _OPTION_KEYS:
            continue
        fields[key] = _alts(annotation, ns)
    required = frozenset(td.__required_keys__) - (_OPTION_KEYS if top else frozenset())
    return fields, required


def _join(items: list[str]) -> str:
    items = sorted(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + ", or " + items[-1]


def validate_params(params: dict, td: type) -> None:
    """Checks parsed form ``params`` (strings, dicts, lists; :func:`parse_stripe_form`) against the SDK's
    request-params TypedDict ``td``; raises the 400 Stripe would answer (see the module docstring)."""
    _check_object(params, td, "", top=True)
    metadata = params.get("metadata")
    if isinstance(metadata, dict):
        _check_metadata(metadata)


def _check_metadata(metadata: dict) -> None:
    """Stripe's metadata limits (https://docs.stripe.com/api/metadata): at most 50 keys, keys up to 40
    characters without square brackets, values up to 500 characters."""
    if len(metadata) > 50:
        raise _invalid("You can only specify up to 50 metadata keys.", param="metadata")
    for key, value in metadata.items():
        if len(key) > 40 or "[" in key or "]" in key:
            raise _invalid(f"Metadata keys must be at most 40 characters without square brackets: {key[:40]}",
                           param=f"metadata[{key}]")
        if isinstance(value, str) and len(value) > 500:
            raise _invalid("Metadata values can have up to 500 characters.", param=f"metadata[{key}]")


def _check_object(value: dict, td: type, path: str, *, top: bool = False) -> None:
    fields, required = _fields(td, top)
    for key in value:
        if key not in fields:
            name = f"{path}[{key}]" if path else key
            raise _invalid(f"Received unknown parameter: {name}", code="parameter_unknown", param=name)
    for key in sorted(required):
        if key not in value:
            name = f"{path}[{key}]" if path else key
            raise _invalid(f"Missing required param: {name}.", code="parameter_missing", param=name)
    for key, item in value.items():
        _check(item, fields[key], f"{path}[{key}]" if path else key)


def _check(value: Any, alts: tuple, path: str, *, empty_ok: bool = False) -> None:
    kinds = {a[0] for a in alts}
    if "any" in kinds:
        return
    if isinstance(value, str):
        enum = next((a[1] for a in alts if a[0] == "enum"), frozenset())
        if value == "":
            if "" in enum or empty_ok:
                return
            raise _invalid(f"You passed an empty string for '{path}'. We assume empty values are an attempt to "
                           f"unset a parameter; however '{path}' cannot be unset. You should remove '{path}' from "
                           "your request or supply a non-empty value.", code="parameter_invalid_empty", param=path)
        if value in enum or "str" in kinds:
            return
        if "int" in kinds and re.fullmatch(r"-?\d+", value):
            return
        if "float" in kinds and re.fullmatch(r"-?(\d+\.?\d*|\.\d+)", value):
            return
        if "bool" in kinds and value in ("true", "false"):
            return
        if "int" in kinds:
            raise _invalid(f"Invalid integer: {value}", code="parameter_invalid_integer", param=path)
        if enum - {""}:
            raise _invalid(f"Invalid {path}: must be one of {_join(list(enum - {''}))}", param=path)
        if "bool" in kinds:
            raise _invalid(f"Invalid boolean: {value}", param=path)
        if "float" in kinds:
            raise _invalid(f"Invalid decimal: {value}", param=path)
        raise _invalid(f"Invalid {'array' if 'list' in kinds else 'hash'}", param=path)
    if isinstance(value, dict):
        first_error = None
        for alt in alts:
            try:
                if alt[0] == "obj":
                    _check_object(value, alt[1], path)
                    return
                if alt[0] == "map":
                    for key, item in value.items():
                        _check(item, alt[1], f"{path}[{key}]", empty_ok=True)
                    return
            except _Answer as answer:
                first_error = first_error or answer
        if first_error is not None:
            raise first_error
        raise _invalid(_scalar_message(kinds, "a hash"), param=path)
    if isinstance(value, list):
        for alt in alts:
            if alt[0] == "list":
                for i, item in enumerate(value):
                    _check(item, alt[1], f"{path}[{i}]")
                return
        raise _invalid(_scalar_message(kinds, "an array"), param=path)


def _scalar_message(kinds: set, got: str) -> str:
    if "int" in kinds:
        return f"Invalid integer: {got}"
    if "bool" in kinds:
        return f"Invalid boolean: {got}"
    if "list" in kinds:
        return "Invalid array"
    if "obj" in kinds or "map" in kinds:
        return "Invalid hash"
    return f"Invalid string: {got}"


# ==== the server =====================================================================================
class _QuietHandler(WSGIRequestHandler):
    def log(self, type, message, *args):
        pass

    def log_request(self, *args, **kwargs):
        pass


# (VERB, path template) → handler method name; every template must be a call of the installed SDK
_ROUTES = (
    ("POST", "/v1/payment_methods", "_create_payment_method"),
    ("POST", "/v1/customers", "_create_customer"),
    ("POST", "/v1/payment_intents", "_create_payment_intent"),
    ("GET", "/v1/payment_intents/search", "_search_payment_intents"),
    ("GET", "/v1/payment_intents/{intent}", "_retrieve_payment_intent"),
    ("POST", "/v1/payment_intents/{intent}/capture", "_capture_payment_intent"),
    ("POST", "/v1/payment_intents/{intent}/cancel", "_cancel_payment_intent"),
    ("POST", "/v1/refunds", "_create_refund"),
    ("GET", "/v1/refunds/{refund}", "_retrieve_refund"),
    ("GET", "/v1/disputes/{dispute}", "_retrieve_dispute"),
)


def _compiled_routes() -> list[tuple[str, re.Pattern, str, type]]:
    out = []
    for method, template, handler in sorted(_ROUTES, key=lambda r: r[1].count("{")):  # static paths first
        td = params_class_for(method, template)  # KeyError: the SDK no longer has this call
        pattern = re.compile(re.sub(r"\\\{[^}]*\\\}", "([^/]+)", re.escape(template)))
        out.append((method, pattern, handler, td))
    return out


class FakeStripeServer:
    """A threaded Stripe look-alike on 127.0.0.1 (a free port). Use as a context manager::

        with FakeStripeServer() as server:
            StripeGateway("sk_test_x", api_base=server.url)

    ``url`` is the base address (``http://127.0.0.1:PORT``). State lives in memory (``payment_methods``,
    ``customers``, ``payment_intents``, ``charges``, ``refunds``, ``disputes``: id → Stripe-shaped dict;
    ``events``: Stripe-shaped events the fake produced, oldest first); :meth:`reset` clears it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server = None
        self._thread: threading.Thread | None = None
        self._routes = _compiled_routes()
        self.reset()

    # ---- lifecycle -----------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake Stripe server is not running")
        return f"http://{self.host}:{self._server.port}"

    def start(self) -> "FakeStripeServer":
        self._stopping.clear()
        self._server = make_server(self.host, self.port, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-stripe", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes delayed answers
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = self._thread = None

    def __enter__(self) -> "FakeStripeServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- test knobs ----------------------------------------------------------------------------------
    def reset(self) -> None:
        """Forgets every object, stored idempotent answer, recorded request and pending knob."""
        with self._lock:
            self.requests: list[dict] = []
            self.payment_methods: dict[str, dict] = {}
            self.customers: dict[str, dict] = {}
            self.payment_intents: dict[str, dict] = {}
            self.charges: dict[str, dict] = {}
            self.refunds: dict[str, dict] = {}
            self.disputes: dict[str, dict] = {}
            self.events: list[dict] = []
            self._cards: dict[str, tuple[str, str | None]] = {}   # pm id → (number, cvc): memory only
            self._pm_used: set[str] = set()       # PaymentMethods confirmed at least once
            self._pm_set_up: set[str] = set()     # PaymentMethods saved with setup_future_usage
            self._idempotent: dict[tuple[str, str], dict] = {}
            self._in_flight: set[tuple[str, str]] = set()
            self._failures: list[list] = []    # [remaining, status, path prefix]
            self._delays: list[list] = []      # [remaining, seconds, path prefix]
            self._refuse_raw = False
            self._last_created = 0

    def fail_next(self, n: int, status: int = 500, path: str | None = None) -> None:
        """The next ``n`` requests (whose path starts with ``path``, if given) get ``status`` with an
        ``api_error`` body, before anything is executed or stored."""
        with self._lock:
            self._failures.append([n, status, path])

    def delay_next(self, n: int, seconds: float, path: str | None = None) -> None:
        """The next ``n`` requests (matching ``path``) are executed at once, but answered ``seconds`` later."""
        with self._lock:
            self._delays.append([n, seconds, path])

    def refuse_raw_cards(self, on: bool = True) -> None:
        """While on, PaymentMethod creation gets Stripe's raw-card refusal: HTTP 402, type
        ``invalid_request_error``, ``code`` null
        (https://support.stripe.com/questions/enabling-access-to-raw-card-data-apis)."""
        with self._lock:
            self._refuse_raw = on

    def requests_to(self, path: str, method: str = "POST") -> list[dict]:
        """Recorded requests for exactly ``path`` and ``method``."""
        with self._lock:
            return [r for r in self.requests if r["path"] == path and r["method"] == method]

    def saved_card(self, number: str, exp_month: int = 12, exp_year: int = 2030) -> tuple[str, str]:
        """A PaymentMethod for ``number`` attached to a new Customer as if a SetupIntent had saved it with
        the customer present and authenticated (https://docs.stripe.com/payments/save-and-reuse) — the only
        way a 3-D Secure test card (…3184, …3155) gets saved, since this server-side flow cannot
        authenticate. Returns ``(pm_id, cus_id)``."""
        with self._lock:
            customer = self._create_customer({})
            pm = self._create_payment_method({"type": "card", "card": {"number": number, "exp_month": exp_month,
                                                                       "exp_year": exp_year}})
            pm["customer"] = customer["id"]
            self._pm_set_up.add(pm["id"])
            self._pm_used.add(pm["id"])
            return pm["id"], customer["id"]

    def make_event(self, type_: str, obj: dict, previous_attributes: dict | None = None) -> dict:
        """A Stripe event (https://docs.stripe.com/api/events/object) of ``type_`` carrying a copy of
        ``obj``; appended to :attr:`events` and returned. Serialize it with ``json.dumps`` and sign it with
        ``tokenizer.gateways.stripe_webhooks.sign_payload`` to post it to a webhook endpoint."""
        with self._lock:
            data: dict[str, Any] = {"object": _copy(obj)}
            if previous_attributes is not None:
                data["previous_attributes"] = dict(previous_attributes)
            event = {"id": f"evt_{secrets.token_hex(12)}", "object": "event", "api_version": API_VERSION,
                     "created": self._created(), "data": data, "livemode": False, "pending_webhooks": 1,
                     "request": {"id": None, "idempotency_key": None}, "type": type_}
            self.events.append(event)
            return event

    def fail_refund(self, refund_id: str, reason: str = "expired_or_canceled_card",
                    event_type: str = "charge.refund.updated") -> dict:
        """Flips a ``succeeded`` (or ``pending``) refund to ``failed`` with ``failure_reason`` ``reason``, as
        Stripe does later for card 4000000000005126 (https://docs.stripe.com/testing#refunds); the money
        becomes refundable again. Returns the ``event_type`` event (``previous_attributes`` ``status`` and
        ``failure_reason``)."""
        with self._lock:
            refund = self.refunds[refund_id]
            if refund["status"] not in ("succeeded", "pending"):
                raise ValueError(f"refund {refund_id} is {refund['status']}")
            previous = {"status": refund["status"], "failure_reason": refund.get("failure_reason")}
            refund.update(status="failed", failure_reason=reason,
                          failure_balance_transaction=f"txn_{secrets.token_hex(12)}")
            charge = self.charges[refund["charge"]]
            charge["amount_refunded"] -= refund["amount"]
            charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
            return self.make_event(event_type, refund, previous)

    def settle_refund(self, refund_id: str, event_type: str = "charge.refund.updated") -> dict:
        """Moves a ``pending`` refund (card 4000000000007726) to ``succeeded``; returns the event."""
        with self._lock:
            refund = self.refunds[refund_id]
            if refund["status"] != "pending":
                raise ValueError(f"refund {refund_id} is {refund['status']}")
            refund["status"] = "succeeded"
            return self.make_event(event_type, refund, {"status": "pending"})

    def dispute_for(self, payment_intent_id: str) -> dict | None:
        """The dispute on the payment intent's charge, or None."""
        with self._lock:
            return next((_copy(d) for d in self.disputes.values() if d["payment_intent"] == payment_intent_id),
                        None)

    def close_dispute(self, dispute_id: str, status: str = "lost") -> dict:
        """Closes a dispute ``won`` or ``lost`` (https://docs.stripe.com/api/disputes/object); returns the
        ``charge.dispute.closed`` event."""
        if status not in ("won", "lost", "warning_closed"):
            raise ValueError(status)
        with self._lock:
            dispute = self.disputes[dispute_id]
            previous = {"status": dispute["status"]}
            dispute["status"] = status
            dispute["evidence_details"]["due_by"] = 0
            return self.make_event("charge.dispute.closed", dispute, previous)

    def expire_hold(self, payment_intent_id: str) -> dict:
        """What Stripe does at ``capture_before``: the uncaptured intent is canceled with
        ``cancellation_reason`` ``automatic`` and its authorization released
        (https://docs.stripe.com/payments/place-a-hold-on-a-payment-method). Returns the
        ``payment_intent.canceled`` event."""
        with self._lock:
            pi = self.payment_intents[payment_intent_id]
            if pi["status"] != "requires_capture":
                raise ValueError(f"{payment_intent_id} is {pi['status']}")
            self._cancel(pi, "automatic")
            return self.make_event("payment_intent.canceled", pi, {"status": "requires_capture"})

    # ---- WSGI ----------------------------------------------------------------------------------------
    def _wsgi(self, environ, start_response):
        request = Request(environ)
        response = self._handle(request)
        return response(environ, start_response)

    def _take(self, knobs: list[list], path: str):
        with self._lock:
            for knob in knobs:
                if knob[0] > 0 and (knob[2] is None or path.startswith(knob[2])):
                    knob[0] -= 1
                    return knob[1]
        return None

    def _handle(self, request: Request) -> Response:
        pairs = list(request.form.items(multi=True)) if request.method == "POST" else \
            list(request.args.items(multi=True))
        flat: dict[str, Any] = {}
        for k, v in pairs:
            flat[k] = [*flat[k], v] if isinstance(flat.get(k), list) else ([flat[k], v] if k in flat else v)
        with self._lock:
            self.requests.append({"method": request.method, "path": request.path,
                                  "headers": dict(request.headers.items()), "form": flat})
        extra_headers: dict[str, str] = {"Stripe-Version": request.headers.get("Stripe-Version", API_VERSION)}
        status, body = self._answer(request, parse_stripe_form(pairs), extra_headers)
        delay = self._take(self._delays, request.path)
        if delay:
            self._stopping.wait(delay)
        headers = {"Request-Id": f"req_{secrets.token_hex(7)}", **extra_headers}
        return Response(json.dumps(body), status=status, headers=headers, content_type="application/json")

    def _answer(self, request: Request, params: dict, extra_headers: dict) -> tuple[int, dict]:
        auth = request.headers.get("Authorization", "")
        api_key = auth[len("Bearer "):] if auth.startswith("Bearer ") else ""
        if not api_key.startswith("sk_test_"):
            return 401, {"error": {"type": "invalid_request_error", "code": None, "param": None,
                                   "message": "Invalid API Key provided."}}
        failure = self._take(self._failures, request.path)
        if failure:
            return failure, {"error": {"type": "api_error", "message": "Injected failure (fake Stripe server)."}}
        route = self._route(request)
        if route is None:
            return 404, {"error": {"type": "invalid_request_error", "code": None, "param": None,
                                   "message": f"Unrecognized request URL ({request.method}: {request.path})."}}
        handler, args, td = route
        try:
            validate_params(params, td)
        except _Answer as answer:  # parameter errors come before the idempotency layer: never stored
            return answer.status, answer.body
        idem = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if idem is not None and not 1 <= len(idem) <= 255:
            return 400, {"error": {"type": "invalid_request_error", "code": None, "param": None,
                                   "message": "Idempotency keys can be at most 255 characters long."}}
        if idem is None:
            return self._run(handler, params, args)[:2]
        slot = (api_key, idem)
        extra_headers["Idempotency-Key"] = idem
        with self._lock:
            stored = self._idempotent.get(slot)
            if stored is None and slot in self._in_flight:
                return 409, {"error": {"type": "invalid_request_error", "code": "idempotency_key_in_use",
                                       "param": None, "message": "There is currently another in-progress "
                                       "request using this idempotency key. Try again later."}}
            if stored is None:
                self._in_flight.add(slot)
        if stored is not None:
            if stored["params"] != params or stored["path"] != request.path:
                return 400, {"error": {"type": "idempotency_error", "code": None, "param": None,
                                       "message": "Keys for idempotent requests can only be used with the same "
                                                  "parameters they were first used with."}}
            extra_headers["Idempotent-Replayed"] = "true"
            return stored["status"], stored["body"]
        try:
            status, body, executed = self._run(handler, params, args)
            if status in (200, 402) or executed:
                with self._lock:
                    self._idempotent[slot] = {"params": params, "path": request.path, "status": status,
                                              "body": body}
            return status, body
        finally:
            with self._lock:
                self._in_flight.discard(slot)

    def _route(self, request: Request):
        path = request.path.rstrip("/")
        for method, pattern, handler, td in self._routes:
            m = pattern.fullmatch(path)
            if m and method == request.method:
                return getattr(self, handler), m.groups(), td
        return None

    def _run(self, handler, params, args) -> tuple[int, dict, bool]:
        try:
            with self._lock:
                return 200, handler(params, *args), True
        except _Answer as answer:
            return answer.status, answer.body, answer.executed or answer.status == 402

    # ---- objects -------------------------------------------------------------------------------------
    def _created(self) -> int:
        self._last_created = max(int(time.time()), self._last_created + 1)
        return self._last_created

    def _create_payment_method(self, params: dict) -> dict:
        if params.get("type") != "card":
            raise _invalid("Only type=card is supported by this fake.", param="type")
        if self._refuse_raw:
            raise _error(402, "invalid_request_error", RAW_CARD_MESSAGE)
        card = params.get("card")
        if not isinstance(card, dict):
            raise _invalid("Missing required param: card.", code="parameter_missing", param="card")
        number, cvc = str(card.get("number", "")), card.get("cvc")
        if not number.isdigit() or not 12 <= len(number) <= 19:
            raise _card_error("invalid_number", param="number")
        if not luhn_valid(number):
            raise _card_error("incorrect_number", param="number")
        month, year = _int(card.get("exp_month")), _int(card.get("exp_year"))
        if month is None or not 1 <= month <= 12:
            raise _card_error("invalid_expiry_month", param="exp_month")
        now = time.gmtime()
        if year is None or (year, month) < (now.tm_year, now.tm_mon) or year > now.tm_year + 50:
            raise _card_error("invalid_expiry_year", param="exp_year")
        if cvc is not None and not (str(cvc).isdigit() and len(str(cvc)) in (3, 4)):
            raise _card_error("invalid_cvc", param="cvc")
        pm_id = f"pm_{secrets.token_hex(12)}"
        billing = params.get("billing_details") if isinstance(params.get("billing_details"), dict) else {}
        pm = {
            "id": pm_id, "object": "payment_method", "type": "card", "created": self._created(),
            "customer": None, "livemode": False, "metadata": {},
            "billing_details": {"name": billing.get("name"), "email": None, "phone": None, "address": None},
            "card": {"brand": detect_brand(number) or "unknown", "last4": number[-4:], "exp_month": month,
                     "exp_year": year, "funding": "credit", "country": "US",
                     "checks": {"cvc_check": "unchecked" if cvc else None, "address_line1_check": None,
                                "address_postal_code_check": None}},
        }
        self.payment_methods[pm_id] = pm
        self._cards[pm_id] = (number, str(cvc) if cvc else None)
        return pm

    def _create_customer(self, params: dict) -> dict:
        cus_id = f"cus_{secrets.token_hex(7)}"
        metadata = params.get("metadata") if isinstance(params.get("metadata"), dict) else {}
        customer = {
            "id": cus_id, "object": "customer", "created": self._created(), "livemode": False,
            "description": params.get("description"), "email": params.get("email"), "name": params.get("name"),
            "phone": params.get("phone"), "metadata": dict(metadata), "balance": 0, "currency": None,
            "default_source": None, "delinquent": False,
            "invoice_settings": {"default_payment_method": None, "custom_fields": None, "footer": None},
        }
        self.customers[cus_id] = customer
        return customer

    def _create_payment_intent(self, params: dict) -> dict:
        amount = int(params["amount"])  # declared int and required: checked by validate_params
        if amount < 1:
            raise _invalid("Amount must be at least 1.", code="amount_too_small", param="amount")
        currency = params["currency"]
        if not re.fullmatch(r"[a-z]{3}", currency):
            raise _invalid(f"Invalid currency: {currency}.", param="currency")
        confirm = params.get("confirm") == "true"
        off_session = params.get("off_session") not in (None, "false")
        if off_session and not confirm:
            raise _invalid("off_session can only be used with confirm=true.", param="off_session")
        customer_id = params.get("customer")
        if customer_id is not None and customer_id not in self.customers:
            raise _invalid(f"No such customer: '{customer_id}'", code="resource_missing", param="customer")
        pm_id = params.get("payment_method")
        if pm_id is not None and pm_id not in self.payment_methods:
            raise _invalid(f"No such PaymentMethod: '{pm_id}'", code="resource_missing", param="payment_method")
        if confirm and pm_id is None:
            raise _invalid("You cannot confirm this PaymentIntent because it's missing a payment method.",
                           code="payment_intent_unexpected_state", param="payment_method")
        if pm_id is not None:
            owner = self.payment_methods[pm_id]["customer"]
            if owner is not None and owner != customer_id:
                raise _invalid(f"The provided PaymentMethod is attached to customer {owner}; pass that "
                               "customer with it.", param="payment_method")
            if owner is None and pm_id in self._pm_used:
                raise _invalid("This PaymentMethod was previously used without being attached to a Customer "
                               "or was detached from a Customer, and may not be used again.",
                               param="payment_method")
        metadata = params.get("metadata") if isinstance(params.get("metadata"), dict) else {}
        pi_id = f"pi_{secrets.token_hex(12)}"
        pi = {
            "id": pi_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": 0, "currency": currency, "status": "requires_confirmation" if pm_id
            else "requires_payment_method", "capture_method": params.get("capture_method", "automatic_async"),
            "confirmation_method": params.get("confirmation_method", "automatic"), "payment_method": pm_id,
            "customer": customer_id, "setup_future_usage": params.get("setup_future_usage"),
            "payment_method_types": params.get("allowed_payment_method_types") or ["card"], "metadata": dict(metadata),
            "description": params.get("description"), "created": self._created(), "livemode": False,
            "latest_charge": None, "last_payment_error": None, "next_action": None,
            "cancellation_reason": None, "canceled_at": None,
            "client_secret": f"{pi_id}_secret_{secrets.token_hex(8)}",
        }
        self.payment_intents[pi_id] = pi
        if confirm:
            self._confirm(pi, off_session=off_session)
        return self._render(pi, _expand_list(params))

    def _confirm(self, pi: dict, *, off_session: bool) -> None:
        pm_id = pi["payment_method"]
        number, cvc = self._cards[pm_id]
        self._pm_used.add(pm_id)
        if number in _THREE_DS and not off_session:
            pi["status"] = "requires_action"
            pi["next_action"] = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}
            return
        code = decline = None
        outcome = {"type": "authorized", "network_status": "approved_by_network", "reason": None,
                   "risk_level": "elevated" if number in _ELEVATED else "normal", "risk_score": 20,
                   "seller_message": "Payment complete."}
        if number in _RADAR_BLOCK:
            code, decline = "card_declined", "fraudulent"
            outcome = {"type": "blocked", "network_status": "not_sent_to_network", "reason": "highest_risk_level",
                       "risk_level": "highest", "risk_score": 95,
                       "seller_message": "Stripe blocked this payment as too risky."}
        elif number == _THREE_DS_ALWAYS or (number == _THREE_DS_UNLESS_SET_UP and pm_id not in self._pm_set_up):
            code = decline = "authentication_required"   # off-session here: nobody can authenticate
        elif number in _DECLINE_CODES:
            code, decline = "card_declined", _DECLINE_CODES[number]
        elif number in _ERROR_CODES:
            code = _ERROR_CODES[number]
        elif number == "4000000000000127" and cvc:
            code = "incorrect_cvc"
        if code is not None and outcome["type"] != "blocked":
            outcome = {"type": "issuer_declined", "network_status": "declined_by_network",
                       "reason": decline or code, "risk_level": "normal", "risk_score": 20,
                       "seller_message": "The bank declined the payment."}
        failed = code is not None
        manual = pi["capture_method"] == "manual"
        created = self._created()
        pm = self.payment_methods[pm_id]
        card_details: dict[str, Any] = {
            "brand": pm["card"]["brand"], "last4": pm["card"]["last4"], "exp_month": pm["card"]["exp_month"],
            "exp_year": pm["card"]["exp_year"], "funding": "credit", "country": "US",
            "network": pm["card"]["brand"], "checks": dict(pm["card"]["checks"])}
        if manual and not failed:
            window = _VISA_MIT_HOLD_SECONDS if off_session and pm["card"]["brand"] == "visa" else _HOLD_SECONDS
            card_details["capture_before"] = created + window
        charge_id = f"ch_{secrets.token_hex(12)}"
        self.charges[charge_id] = {
            "id": charge_id, "object": "charge", "amount": pi["amount"], "currency": pi["currency"],
            "amount_captured": 0 if failed or manual else pi["amount"], "captured": not failed and not manual,
            "amount_refunded": 0, "refunded": False, "disputed": False, "customer": pi["customer"],
            "paid": not failed, "status": "failed" if failed else "succeeded", "payment_intent": pi["id"],
            "payment_method": pm_id, "outcome": outcome, "created": created,
            "payment_method_details": {"type": "card", "card": card_details},
            "failure_code": code, "failure_message": _CARD_MESSAGES.get(code) if code else None, "livemode": False,
        }
        pi["latest_charge"] = charge_id
        if failed:
            err = {"type": "card_error", "code": code, "message": _CARD_MESSAGES[code], "param": None,
                   "charge": charge_id, "doc_url": f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"}
            if decline:
                err["decline_code"] = decline
            pi["status"] = "requires_payment_method"
            pi["last_payment_error"] = dict(err)
            raise _Answer(402, {"error": {**err, "payment_intent": self._render(pi, []),
                                          "payment_method": _copy(pm)}}, executed=True)
        if pi["customer"] and pi["setup_future_usage"]:
            pm["customer"] = pi["customer"]
            self._pm_set_up.add(pm_id)
        if manual:
            pi["status"], pi["amount_capturable"] = "requires_capture", pi["amount"]
        else:
            pi["status"], pi["amount_received"] = "succeeded", pi["amount"]
            self._maybe_dispute(pi)

    def _maybe_dispute(self, pi: dict) -> None:
        """Card 4000000000000259: once captured, the charge is disputed as fraudulent
        (https://docs.stripe.com/testing#disputes)."""
        if self._cards[pi["payment_method"]][0] != _DISPUTE_FRAUDULENT:
            return
        charge = self.charges[pi["latest_charge"]]
        created = self._created()
        dispute = {
            "id": f"dp_{secrets.token_hex(12)}", "object": "dispute", "amount": charge["amount_captured"],
            "currency": charge["currency"], "charge": charge["id"], "payment_intent": pi["id"],
            "reason": "fraudulent", "status": "needs_response", "created": created, "livemode": False,
            "is_charge_refundable": False, "metadata": {}, "balance_transactions": [],
            "network_reason_code": "10.4",
            "evidence_details": {"due_by": created + _DISPUTE_RESPONSE_SECONDS, "has_evidence": False,
                                 "past_due": False, "submission_count": 0},
        }
        self.disputes[dispute["id"]] = dispute
        charge["disputed"] = True
        self.make_event("charge.dispute.created", dispute)

    def _payment_intent(self, pi_id: str) -> dict:
        pi = self.payment_intents.get(pi_id)
        if pi is None:
            raise _error(404, "invalid_request_error", f"No such payment_intent: '{pi_id}'",
                         code="resource_missing", param="intent")
        return pi

    def _retrieve_payment_intent(self, params: dict, pi_id: str) -> dict:
        return self._render(self._payment_intent(pi_id), _expand_list(params))

    def _capture_payment_intent(self, params: dict, pi_id: str) -> dict:
        pi = self._payment_intent(pi_id)
        if pi["status"] != "requires_capture":
            raise _invalid(f"This PaymentIntent could not be captured because it has a status of {pi['status']}. "
                           "Only a PaymentIntent with one of the following statuses may be captured: "
                           "requires_capture.", code="payment_intent_unexpected_state", executed=True)
        amount = int(params.get("amount_to_capture", pi["amount_capturable"]))
        if amount < 1:
            raise _invalid("Amount to capture must be at least 1.", code="amount_too_small",
                           param="amount_to_capture", executed=True)
        if amount > pi["amount_capturable"]:
            raise _invalid(f"The amount to capture ({amount}) is greater than the amount capturable "
                           f"({pi['amount_capturable']}).", code="amount_too_large", param="amount_to_capture",
                           executed=True)
        charge = self.charges[pi["latest_charge"]]
        charge.update(captured=True, amount_captured=amount, amount_refunded=charge["amount"] - amount)
        charge["payment_method_details"]["card"].pop("capture_before", None)
        pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
        self._maybe_dispute(pi)
        return self._render(pi, _expand_list(params))

    def _cancel(self, pi: dict, reason: str | None) -> None:
        if pi["status"] == "requires_capture" and pi.get("latest_charge"):
            charge = self.charges[pi["latest_charge"]]
            charge.update(amount_refunded=charge["amount"], refunded=True)
        pi.update(status="canceled", cancellation_reason=reason, canceled_at=self._created(), amount_capturable=0)

    def _cancel_payment_intent(self, params: dict, pi_id: str) -> dict:
        pi = self._payment_intent(pi_id)
        if pi["status"] not in _CANCELABLE:
            raise _invalid(f"You cannot cancel this PaymentIntent because it has a status of {pi['status']}. Only "
                           "a PaymentIntent with one of the following statuses may be canceled: "
                           f"{', '.join(_CANCELABLE)}.", code="payment_intent_unexpected_state", executed=True)
        self._cancel(pi, params.get("cancellation_reason"))
        return self._render(pi, _expand_list(params))

    def _create_refund(self, params: dict) -> dict:
        pi_id, charge_id = params.get("payment_intent"), params.get("charge")
        if pi_id is None and charge_id is None:
            raise _invalid("Must provide either payment_intent or charge.", code="parameter_missing",
                           param="payment_intent")
        if pi_id is not None:
            pi = self.payment_intents.get(pi_id)
            if pi is None:
                raise _invalid(f"No such payment_intent: '{pi_id}'", code="resource_missing",
                               param="payment_intent")
            charge = self.charges.get(pi["latest_charge"]) if pi.get("latest_charge") else None
        else:
            charge = self.charges.get(charge_id)
            if charge is None:
                raise _invalid(f"No such charge: '{charge_id}'", code="resource_missing", param="charge")
            pi = self.payment_intents[charge["payment_intent"]]
        if charge is None or not charge["captured"] or pi["status"] != "succeeded":
            raise _invalid(f"This PaymentIntent could not be refunded because it has a status of {pi['status']}. "
                           "Only a PaymentIntent with a captured charge may be refunded.",
                           code="payment_intent_unexpected_state", executed=True)
        if charge["disputed"] and any(d["charge"] == charge["id"] and d["status"] not in ("won", "lost")
                                      for d in self.disputes.values()):
            raise _invalid(f"Charge {charge['id']} has been charged back; cannot issue a refund.",
                           code="charge_disputed", executed=True)
        refunded = sum(r["amount"] for r in self.refunds.values()
                       if r["charge"] == charge["id"] and r["status"] not in ("failed", "canceled"))
        remaining = charge["amount_captured"] - refunded
        if remaining <= 0:
            raise _invalid(f"Charge {charge['id']} has already been refunded.", code="charge_already_refunded",
                           executed=True)
        amount = int(params.get("amount", remaining))
        if amount < 1:
            raise _invalid("Refund amount must be at least 1.", code="amount_too_small", param="amount",
                           executed=True)
        if amount > remaining:
            raise _invalid(f"Refund amount ({amount}) is greater than unrefunded amount on charge ({remaining}).",
                           code="amount_too_large", param="amount", executed=True)
        number = self._cards[charge["payment_method"]][0]
        metadata = params.get("metadata") if isinstance(params.get("metadata"), dict) else {}
        refund = {
            "id": f"re_{secrets.token_hex(12)}", "object": "refund", "amount": amount,
            "currency": charge["currency"], "charge": charge["id"], "payment_intent": pi["id"],
            "created": self._created(), "metadata": dict(metadata), "reason": params.get("reason"),
            "status": "pending" if number == _REFUND_PENDING else "succeeded",
            "failure_reason": None, "failure_balance_transaction": None,
            "balance_transaction": f"txn_{secrets.token_hex(12)}", "receipt_number": None,
            "destination_details": {"type": "card", "card": {"type": "refund", "reference_status": "pending"}},
        }
        self.refunds[refund["id"]] = refund
        charge["amount_refunded"] += amount
        charge["refunded"] = charge["amount_refunded"] >= charge["amount"]
        return _copy(refund)

    def _retrieve_refund(self, params: dict, refund_id: str) -> dict:
        refund = self.refunds.get(refund_id)
        if refund is None:
            raise _error(404, "invalid_request_error", f"No such refund: '{refund_id}'", code="resource_missing",
                         param="id")
        return _copy(refund)

    def _retrieve_dispute(self, params: dict, dispute_id: str) -> dict:
        dispute = self.disputes.get(dispute_id)
        if dispute is None:
            raise _error(404, "invalid_request_error", f"No such dispute: '{dispute_id}'", code="resource_missing",
                         param="dispute")
        return _copy(dispute)

    def _search_payment_intents(self, params: dict) -> dict:
        query = params["query"]  # declared required: checked by validate_params
        clauses = [c.strip() for c in re.split(r"\s+AND\s+", query.strip())]
        wanted = []
        for clause in clauses:
            m = re.fullmatch(r"metadata\['([^']+)'\]:'((?:[^'\\]|\\.)*)'", clause)
            if not m:
                raise _invalid("Unsupported search query (fake server).", param="query")
            wanted.append((m.group(1), re.sub(r"\\(.)", r"\1", m.group(2))))
        found = [pi for pi in self.payment_intents.values()
                 if all((pi.get("metadata") or {}).get(k) == v for k, v in wanted)]
        found.sort(key=lambda pi: pi["created"], reverse=True)
        nested = [e[len("data."):] for e in _expand_list(params) if e.startswith("data.")]
        return {"object": "search_result", "url": "/v1/payment_intents/search", "has_more": False,
                "next_page": None, "total_count": len(found), "data": [self._render(pi, nested) for pi in found]}

    def _render(self, pi: dict, expand: list[str]) -> dict:
        out = _copy(pi)
        if "latest_charge" in expand and pi.get("latest_charge"):
            out["latest_charge"] = _copy(self.charges[pi["latest_charge"]])
        if "payment_method" in expand and pi.get("payment_method"):
            out["payment_method"] = _copy(self.payment_methods[pi["payment_method"]])
        if "customer" in expand and pi.get("customer"):
            out["customer"] = _copy(self.customers[pi["customer"]])
        return out


def _copy(obj):
    return json.loads(json.dumps(obj))


def _card_error(code: str, *, param: str) -> _Answer:
    return _error(402, "card_error", _CARD_MESSAGES[code], code=code, param=param)


def _int(value) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _expand_list(params: dict) -> list[str]:
    expand = params.get("expand") or []
    if isinstance(expand, str):
        expand = [expand]
    if isinstance(expand, dict):
        expand = list(expand.values())
    return [e for e in expand if isinstance(e, str)]


@pytest.fixture
def stripe_server() -> Iterator[FakeStripeServer]:
    """A running :class:`FakeStripeServer` for one test (``stripe_server.url`` is its base address)."""
    with FakeStripeServer() as server:
        yield server
