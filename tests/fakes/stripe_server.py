"""A local HTTP server that speaks enough of Stripe's v1 wire format for the Stripe adapter's tests.

Wire format (as the stripe SDK sends and expects it; reference/stripe.md §3, §5, §6):

* requests are ``application/x-www-form-urlencoded`` with bracket keys (``card[number]``,
  ``metadata[k]``, ``expand[0]`` or ``expand[]``); ``Authorization: Bearer sk_test_…`` is required
  (otherwise 401); every POST may carry ``Idempotency-Key``;
* answers are JSON objects with ``"object"``: ``payment_method``, ``payment_intent``, ``charge``,
  ``search_result``; errors are ``{"error": {"type", "code", "decline_code", "message", "param",
  "payment_intent"?, "charge"?}}`` — 402 for card errors, 400 invalid request / idempotency error, 401 bad
  key, 404 unknown object or route, 409 same key still running; every answer has a ``Request-Id`` header.

Endpoints: ``POST /v1/payment_methods``, ``POST /v1/payment_intents`` (with ``confirm=true`` it confirms
in the same call), ``GET /v1/payment_intents/<id>``, ``GET /v1/payment_intents/search`` (clauses
``metadata['k']:'v'`` joined by ``AND``).

Card behaviour on confirmation (Stripe's test cards)::

    4000000000000002 / 9995 / 9987 / 9979 / 6975 / 0341   card_declined + decline_code (generic_decline,
                                                           insufficient_funds, lost_card, stolen_card,
                                                           card_velocity_exceeded, generic_decline)
    4000000000000069 / 0119                                code expired_card / processing_error
    4000000000000127                                       code incorrect_cvc, only when a CVC was sent
    4100000000000019, 4000000000004954                     Radar block: card_declined + decline_code
                                                           fraudulent; the failed charge has outcome
                                                           type "blocked", risk_level "highest"
    4000000000009235                                       succeeds, outcome risk_level "elevated"
    4000002760003184, 4000002500003155, 4000003800000446   status requires_action (3-D Secure)
    any other Luhn-valid number                            succeeds, risk_level "normal"

The Radar block shape follows stripe.md §5 (docs.stripe.com/radar/testing: "risk level highest, always
blocked") and §5's decline list, where ``fraudulent`` is the decline code Stripe reports for blocked
payments; the charge's ``outcome`` (type ``blocked``, reason ``highest_risk_level``,
``network_status`` ``not_sent_to_network``) is what the Charge object documents for a Radar block.

Idempotency like Stripe (§6): per API key, the first answer of a request that ran (200 or 402) is stored
and replayed for the same key and the same parameters with ``Idempotent-Replayed: true``; the same key
with other parameters → 400 ``idempotency_error``; the same key while the first request is still being
executed → 409 ``idempotency_key_in_use``; validation errors (400/404) and injected failures are not
stored, so a retry runs again.

Test knobs: :meth:`FakeStripeServer.fail_next`, :meth:`~FakeStripeServer.delay_next` (the request is
executed, then its answer is held back — "the charge happened but the response was lost"),
:meth:`~FakeStripeServer.refuse_raw_cards`, :attr:`~FakeStripeServer.requests` and
:meth:`~FakeStripeServer.reset`. Everything, including the card numbers it receives, stays in memory;
nothing is written to disk or logged.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from typing import Any, Iterator

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

from tokenizer.cards import detect_brand, luhn_valid

__all__ = ["FakeStripeServer", "parse_stripe_form", "stripe_server"]

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
_THREE_DS = {"4000002760003184", "4000002500003155", "4000003800000446"}

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
    """Raised inside a handler to answer with ``status`` and ``body`` (an error, usually)."""

    def __init__(self, status: int, body: dict):
        super().__init__(status)
        self.status, self.body = status, body


def _error(status: int, type_: str, message: str, *, code=None, decline_code=None, param=None, **extra):
    err = {"type": type_, "message": message, "code": code, "param": param}
    if decline_code is not None:
        err["decline_code"] = decline_code
    err.update(extra)
    return _Answer(status, {"error": err})


class _QuietHandler(WSGIRequestHandler):
    def log(self, type, message, *args):  # noqa: A002 - werkzeug's signature
        pass

    def log_request(self, *args, **kwargs):
        pass


class FakeStripeServer:
    """A threaded Stripe look-alike on 127.0.0.1 (a free port). Use as a context manager::

        with FakeStripeServer() as server:
            StripeGateway("sk_test_x", api_base=server.url)

    ``url`` is the base address (``http://127.0.0.1:PORT``). State lives in memory; :meth:`reset` clears it.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.host, self.port = host, port
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server = None
        self._thread: threading.Thread | None = None
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
            self.payment_intents: dict[str, dict] = {}
            self.charges: dict[str, dict] = {}
            self._cards: dict[str, tuple[str, str | None]] = {}   # pm id → (number, cvc): memory only
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
        ``invalid_request_error``, ``code`` null (reference/stripe.md §7)."""
        with self._lock:
            self._refuse_raw = on

    def requests_to(self, path: str, method: str = "POST") -> list[dict]:
        """Recorded requests for exactly ``path`` and ``method``."""
        with self._lock:
            return [r for r in self.requests if r["path"] == path and r["method"] == method]

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
        handler, args = route
        idem = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        if idem is None:
            return self._run(handler, params, args)
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
            status, body = self._run(handler, params, args)
            if status in (200, 402):
                with self._lock:
                    self._idempotent[slot] = {"params": params, "path": request.path, "status": status,
                                              "body": body}
            return status, body
        finally:
            with self._lock:
                self._in_flight.discard(slot)

    def _route(self, request: Request):
        path, method = request.path.rstrip("/"), request.method
        if method == "POST" and path == "/v1/payment_methods":
            return self._create_payment_method, ()
        if method == "POST" and path == "/v1/payment_intents":
            return self._create_payment_intent, ()
        if method == "GET" and path == "/v1/payment_intents/search":
            return self._search_payment_intents, ()
        m = re.fullmatch(r"/v1/payment_intents/(pi_[A-Za-z0-9]+)", path)
        if method == "GET" and m:
            return self._retrieve_payment_intent, (m.group(1),)
        return None

    def _run(self, handler, params, args) -> tuple[int, dict]:
        try:
            with self._lock:
                return 200, handler(params, *args)
        except _Answer as answer:
            return answer.status, answer.body

    # ---- objects -------------------------------------------------------------------------------------
    def _created(self) -> int:
        self._last_created = max(int(time.time()), self._last_created + 1)
        return self._last_created

    def _create_payment_method(self, params: dict) -> dict:
        if params.get("type") != "card":
            raise _error(400, "invalid_request_error", "Only type=card is supported here.", code="parameter_invalid",
                         param="type")
        if self._refuse_raw:
            raise _error(402, "invalid_request_error", RAW_CARD_MESSAGE)
        card = params.get("card")
        if not isinstance(card, dict):
            raise _error(400, "invalid_request_error", "Missing required param: card.", code="parameter_missing",
                         param="card")
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

    def _create_payment_intent(self, params: dict) -> dict:
        amount = _int(params.get("amount"))
        if amount is None:
            raise _error(400, "invalid_request_error", "Invalid integer: amount.", code="parameter_invalid_integer",
                         param="amount")
        if amount < 1:
            raise _error(400, "invalid_request_error", "Amount must be at least 1.", code="amount_too_small",
                         param="amount")
        currency = params.get("currency")
        if not (isinstance(currency, str) and re.fullmatch(r"[a-z]{3}", currency)):
            raise _error(400, "invalid_request_error", "Invalid currency.", code="parameter_invalid_string",
                         param="currency")
        pm_id = params.get("payment_method")
        if pm_id not in self.payment_methods:
            raise _error(400, "invalid_request_error", "No such PaymentMethod.", code="resource_missing",
                         param="payment_method")
        capture_method = params.get("capture_method", "automatic_async")
        if capture_method not in ("automatic", "automatic_async", "manual"):
            raise _error(400, "invalid_request_error", "Invalid capture_method.", code="parameter_invalid_string",
                         param="capture_method")
        metadata = params.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise _error(400, "invalid_request_error", "Invalid metadata.", code="parameter_invalid_string",
                         param="metadata")
        pi_id = f"pi_{secrets.token_hex(12)}"
        pi = {
            "id": pi_id, "object": "payment_intent", "amount": amount, "amount_capturable": 0,
            "amount_received": 0, "currency": currency, "status": "requires_confirmation",
            "capture_method": capture_method, "confirmation_method": "automatic", "payment_method": pm_id,
            "payment_method_types": params.get("payment_method_types") or ["card"], "metadata": metadata,
            "description": params.get("description"), "created": self._created(), "livemode": False,
            "latest_charge": None, "last_payment_error": None, "next_action": None,
            "client_secret": f"{pi_id}_secret_{secrets.token_hex(8)}",
        }
        self.payment_intents[pi_id] = pi
        expand = _expand_list(params)
        if params.get("confirm") == "true":
            self._confirm(pi)
        return self._render(pi, expand)

    def _confirm(self, pi: dict) -> None:
        number, cvc = self._cards[pi["payment_method"]]
        if number in _THREE_DS:
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
        charge_id = f"ch_{secrets.token_hex(12)}"
        self.charges[charge_id] = {
            "id": charge_id, "object": "charge", "amount": pi["amount"], "currency": pi["currency"],
            "amount_captured": 0 if failed or manual else pi["amount"], "captured": not failed and not manual,
            "paid": not failed, "status": "failed" if failed else "succeeded", "payment_intent": pi["id"],
            "payment_method": pi["payment_method"], "outcome": outcome, "created": self._created(),
            "failure_code": code, "failure_message": _CARD_MESSAGES.get(code) if code else None, "livemode": False,
        }
        pi["latest_charge"] = charge_id
        if failed:
            err = {"type": "card_error", "code": code, "message": _CARD_MESSAGES[code], "param": None,
                   "charge": charge_id}
            if decline:
                err["decline_code"] = decline
            pi["status"] = "requires_payment_method"
            pi["last_payment_error"] = dict(err)
            raise _Answer(402, {"error": {**err, "payment_intent": self._render(pi, []),
                                          "payment_method": self.payment_methods[pi["payment_method"]]}})
        if manual:
            pi["status"], pi["amount_capturable"] = "requires_capture", pi["amount"]
        else:
            pi["status"], pi["amount_received"] = "succeeded", pi["amount"]

    def _retrieve_payment_intent(self, params: dict, pi_id: str) -> dict:
        pi = self.payment_intents.get(pi_id)
        if pi is None:
            raise _error(404, "invalid_request_error", "No such payment_intent.", code="resource_missing", param="id")
        return self._render(pi, _expand_list(params))

    def _search_payment_intents(self, params: dict) -> dict:
        query = params.get("query")
        if not isinstance(query, str):
            raise _error(400, "invalid_request_error", "Missing required param: query.", code="parameter_missing",
                         param="query")
        clauses = [c.strip() for c in re.split(r"\s+AND\s+", query.strip())]
        wanted = []
        for clause in clauses:
            m = re.fullmatch(r"metadata\['([^']+)'\]:'((?:[^'\\]|\\.)*)'", clause)
            if not m:
                raise _error(400, "invalid_request_error", "Unsupported search query (fake server).",
                             code="parameter_invalid_string", param="query")
            wanted.append((m.group(1), re.sub(r"\\(.)", r"\1", m.group(2))))
        found = [pi for pi in self.payment_intents.values()
                 if all((pi.get("metadata") or {}).get(k) == v for k, v in wanted)]
        found.sort(key=lambda pi: pi["created"], reverse=True)
        nested = [e[len("data."):] for e in _expand_list(params) if e.startswith("data.")]
        return {"object": "search_result", "url": "/v1/payment_intents/search", "has_more": False,
                "next_page": None, "total_count": len(found), "data": [self._render(pi, nested) for pi in found]}

    def _render(self, pi: dict, expand: list[str]) -> dict:
        out = json.loads(json.dumps(pi))
        if "latest_charge" in expand and pi.get("latest_charge"):
            out["latest_charge"] = json.loads(json.dumps(self.charges[pi["latest_charge"]]))
        if "payment_method" in expand and pi.get("payment_method"):
            out["payment_method"] = json.loads(json.dumps(self.payment_methods[pi["payment_method"]]))
        return out


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
