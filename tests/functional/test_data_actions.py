"""The shipped Genesys data action exports, proven by execution.

Every export in ``integrations/genesys/data-actions/`` runs through :mod:`integrations.genesys.harness` (the Genesys data action
engine's steps: input contract, custom auth, Velocity, HTTP, JSONPath translation map with defaults,
success template, success schema) against the real app on a real database and Redis (``stack``), and
statically against the OpenAPI document and against fake responses (renamed fields must fail). The two
Genesys Cloud Data Actions (``genesys-*.json``) run against the Genesys emulator's Platform API.

The payment and refund exports call endpoints that are being added to the app: their tests against the
app skip (saying so) while the app does not serve the route yet, and run as soon as it does.
"""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import urlsplit

import jsonschema
import pytest

from app.openapi import openapi_document
from integrations.genesys import DATA_ACTIONS_DIR
from integrations.genesys.harness import (
    AUTH_ACTION_FILE,
    AUTHENTICATION,
    PROCESSING,
    REMOTE_ENDPOINT,
    ActionRunner,
    FlaskTransport,
    HttpResponse,
    execute,
    load_action,
    load_actions,
)

BASE = "http://127.0.0.1:8000"
ACTIONS = load_actions()
AMEX = "378282246310005"
SECURE = {"inspect-card.custom.json", "submit-card.custom.json"}
PAYMENT_FILES = {"get-payment.custom.json", "list-payments.custom.json", "capture-payment.custom.json",
                 "void-payment.custom.json", "create-refund.custom.json", "get-refund.custom.json"}
ISSUE8_FILES = {"create-subscription.custom.json", "cancel-subscription.custom.json", "set-payment-amount.custom.json",
                "close-conversation.custom.json", "check-customer-busy.custom.json"}
"""Subscriptions, amount rules, the busy pre-check and conversation close (docs/api.md); more in
tests/functional/test_data_actions_issue8.py."""
ISSUE9_FILES = {"get-gateway-status.custom.json"}
"""The gateway circuit breaker's state, checked before offering automated payment (docs/api.md)."""
SAFE_TO_REPEAT = {"cancel-payment-session.custom.json", "inspect-card.custom.json", "cancel-subscription.custom.json",
                  "set-payment-amount.custom.json", "close-conversation.custom.json"}
"""POST exports without an idempotency key: repeating them gives the same state."""
PLATFORM_FILES = {"genesys-get-customer-participant.json", "genesys-create-workitem.json"}
"""Genesys Cloud Data Actions (``purecloud-data-actions``): they call Genesys's own Platform API."""
EXPECTED_FILES = {AUTH_ACTION_FILE, "create-payment-session.custom.json", "get-payment-session.custom.json",
                  "cancel-payment-session.custom.json", "inspect-card.custom.json", "submit-card.custom.json",
                  "send-payment-link.custom.json"} | PAYMENT_FILES | PLATFORM_FILES | ISSUE8_FILES | ISSUE9_FILES
PAYGATE_FILES = EXPECTED_FILES - PLATFORM_FILES
WORKTYPE = "5fc8affb-1d63-4ca8-8de3-21b6b80c9ca9"
FAKE_AUTH = {"token": "fake-token"}

# A valid input and a valid API answer per export (the answers are checked against the OpenAPI document).
SAMPLE_INPUTS = {
    AUTH_ACTION_FILE: {},
    "create-payment-session.custom.json": {
        "conversationId": "conv-1", "participantId": "part-1", "customerAccountId": "ACME-1", "intent": "topup",
        "amount": 2500, "currency": "USD", "channel": "voice", "reference": "INV-1", "locale": "en-US",
        "callbackUrl": "https://billing.example.com/events", "ttlSeconds": 600, "idempotencyKey": "conv-1:1"},
    "get-payment-session.custom.json": {"sessionId": "ps_123"},
    "cancel-payment-session.custom.json": {"sessionId": "ps_123"},
    "inspect-card.custom.json": {"cardNumber": AMEX},
    "submit-card.custom.json": {"sessionId": "ps_123", "cardNumber": AMEX, "expMonth": "12", "expYear": "30",
                                "cvc": "1234", "cardholderName": "Ada Lovelace", "idempotencyKey": "ps_123:1"},
    "send-payment-link.custom.json": {"sessionId": "ps_123", "toAddress": "+15551234567", "messengerType": "sms",
                                      "fromAddress": "+15550001111", "idempotencyKey": "ps_123:sms:1"},
    "get-payment.custom.json": {"paymentId": "pay_123"},
    "list-payments.custom.json": {"conversationId": "conv-1", "status": "captured", "intent": "payment", "limit": 5},
    "capture-payment.custom.json": {"paymentId": "pay_123", "amount": "1500", "idempotencyKey": "pay_123:capture"},
    "void-payment.custom.json": {"paymentId": "pay_123", "idempotencyKey": "pay_123:void"},
    "create-refund.custom.json": {"paymentId": "pay_123", "dispositionCode": "REFUND", "amount": "1000",
                                  "reason": "requested_by_customer", "conversationId": "conv-1",
                                  "participantId": "part-1", "reference": "CASE-1", "idempotencyKey": "conv-1:REFUND"},
    "get-refund.custom.json": {"refundId": "re_123"},
    "genesys-get-customer-participant.json": {"conversationId": "conv-1"},
    "genesys-create-workitem.json": {"name": "Refund review conv-1", "typeId": WORKTYPE,
                                     "description": "No refund could be created.", "externalTag": "conv-1:REFUND"},
}
_VIEW = {"session_id": "ps_123", "status": "approved", "outcome": "approved", "conversation_id": "conv-1",
         "participant_id": "part-1", "customer_account_id": "ACME-1", "intent": "payment", "amount": 2500,
         "currency": "USD", "reference": None, "channel": "voice", "attempts": 1, "max_attempts": 3,
         "token": "tok_1", "card": {"brand": "amex", "last4": "0005", "exp_month": 12, "exp_year": 2030,
                                     "fingerprint": "fp_1"},
         "payment_id": "pay_1", "gateway": "sandbox", "gateway_reference": "pi_1", "decline_code": None,
         "message": "Payment approved.", "metadata": {}, "created_at": "2026-11-23T12:00:00Z",
         "updated_at": "2026-11-23T12:01:00Z", "expires_at": "2026-11-23T12:15:00Z", "link_sends": 1,
         "link_last_sent_at": "2026-11-23T12:00:05Z", "amount_range": None, "cancel_reason": None,
         "subscription": None, "subscription_id": None}
SAMPLE_RESPONSES = {
    AUTH_ACTION_FILE: {"access_token": "abc", "token_type": "Bearer", "expires_in": 3600},
    "create-payment-session.custom.json": {
        "session_id": "ps_123", "status": "pending", "checkout_url": f"{BASE}/checkout/ps_123?t=x",
        "agent_url": f"{BASE}/agent/ps_123?t=y", "expires_at": "2026-11-23T12:15:00Z", "conversation_id": "conv-1",
        "intent": "topup", "amount": 2500, "currency": "USD"},
    "get-payment-session.custom.json": _VIEW,
    "cancel-payment-session.custom.json": {**_VIEW, "status": "canceled", "link_sends": 0, "link_last_sent_at": None, "outcome": None, "card": None,
                                           "token": None, "payment_id": None, "message": "Canceled."},
    "inspect-card.custom.json": {"brand": "amex", "allowed": True, "pan_lengths": [15], "cvc_length": 4,
                                 "requires_expiry": True, "requires_cvc": True, "luhn_valid": True},
    "submit-card.custom.json": {"outcome": "approved", "status": "approved", "token": "tok_1", "card_brand": "amex",
                                "card_last4": "0005", "decline_code": None, "message": "Payment approved.",
                                "field_errors": {}, "attempts_remaining": 2},
    "send-payment-link.custom.json": {"sent": True, "message_id": "msg-1", "to": "+15551234567",
                                      "messenger_type": "sms"},
}
_PAYMENT = {"payment_id": "pay_123", "object": "payment", "session_id": "ps_123", "status": "authorized",
            "intent": "hold", "amount": 2500, "amount_capturable": 2500, "amount_captured": 0, "amount_refunded": 0,
            "currency": "USD", "token": "tok_1", "card": _VIEW["card"], "gateway": "sandbox",
            "gateway_reference": "pi_1", "capture_before": "2026-11-30T12:00:00Z", "conversation_id": "conv-1",
            "participant_id": "part-1", "customer_account_id": "ACME-1", "reference": None, "subscription_id": None,
            "dispute_id": None, "decline_code": None, "message": "Payment authorized.", "initiator": "customer",
            "entry_mode": "dtmf", "moto": True, "metadata": {}, "pending_operation": None, "created_at": "2026-11-23T12:00:00Z",
            "updated_at": "2026-11-23T12:01:00Z"}
_REFUND = {"refund_id": "re_123", "object": "refund", "payment_id": "pay_123", "status": "failed", "amount": 1000,
           "currency": "USD", "reason": "requested_by_customer", "disposition_code": "REFUND",
           "conversation_id": "conv-1", "participant_id": "part-1", "reference": "CASE-1",
           "failure_code": "expired_or_canceled_card", "manual_review": "required",
           "review_disposition": "Refund_Failed_Manual_Review", "review_note": None, "gateway_reference": "re_gw1",
           "attempts": 1, "metadata": {}, "created_at": "2026-11-23T12:02:00Z", "updated_at": "2026-11-23T12:02:00Z"}
SAMPLE_RESPONSES.update({
    "get-payment.custom.json": _PAYMENT,
    "list-payments.custom.json": {"data": [{**_PAYMENT, "status": "captured", "amount_capturable": 0,
                                            "amount_captured": 2500, "capture_before": None, "intent": "payment"},
                                           {**_PAYMENT, "payment_id": "pay_122", "status": "captured"}],
                                  "has_more": False},
    "capture-payment.custom.json": {**_PAYMENT, "status": "captured", "amount_capturable": 0, "amount_captured": 1500,
                                    "capture_before": None},
    "void-payment.custom.json": {**_PAYMENT, "status": "voided", "amount_capturable": 0, "capture_before": None},
    "create-refund.custom.json": _REFUND,
    "get-refund.custom.json": {**_REFUND, "status": "succeeded", "failure_code": None, "manual_review": "none",
                               "review_disposition": None},
    "genesys-get-customer-participant.json": {"id": "conv-1", "participants": [
        {"id": "agent-1", "purpose": "agent", "attributes": {}}, {"id": "cust-1", "purpose": "customer",
                                                                "attributes": {}}]},
    "genesys-create-workitem.json": {"id": "wi-1", "name": "Refund review conv-1", "type": {"id": WORKTYPE},
                                     "statusCategory": "Open", "externalTag": "conv-1:REFUND"},
})
_SUBSCRIPTION = {"subscription_id": "sub_123", "object": "subscription", "status": "active", "token": "tok_1",
                 "amount": 999, "currency": "USD", "interval": "month", "interval_count": 1,
                 "current_period_start": "2026-11-23T12:00:00Z", "current_period_end": "2026-12-23T12:00:00Z",
                 "next_charge_at": "2026-12-23T12:00:00Z", "failed_attempts": 0, "last_payment_id": "pay_1",
                 "customer_account_id": "ACME-1", "reference": None, "cancel_reason": None,
                 "created_at": "2026-11-23T12:00:00Z", "canceled_at": None, "period": 1, "session_id": None,
                 "conversation_id": "conv-1", "participant_id": None, "metadata": {},
                 "updated_at": "2026-11-23T12:00:00Z"}
SAMPLE_INPUTS.update({
    "create-subscription.custom.json": {"token": "tok_1", "amount": 999, "currency": "USD", "interval": "month",
                                        "intervalCount": 1, "customerAccountId": "ACME-1", "reference": "PLAN-1",
                                        "conversationId": "conv-1", "startAt": "2026-12-23T12:00:00Z",
                                        "callbackUrl": "https://billing.example.com/events",
                                        "idempotencyKey": "conv-1:subscribe:ACME-1"},
    "cancel-subscription.custom.json": {"subscriptionId": "sub_123"},
    "set-payment-amount.custom.json": {"sessionId": "ps_123", "amount": "2500"},
    "close-conversation.custom.json": {"conversationId": "conv-1"},
    "check-customer-busy.custom.json": {"customerAccountId": "ACME-1"},
    "get-gateway-status.custom.json": {},
})
SAMPLE_RESPONSES.update({
    "create-subscription.custom.json": _SUBSCRIPTION,
    "cancel-subscription.custom.json": {**_SUBSCRIPTION, "status": "canceled", "cancel_reason": "requested",
                                        "next_charge_at": None, "canceled_at": "2026-11-24T12:00:00Z"},
    "set-payment-amount.custom.json": {"outcome": "ok", "amount": 2500, "entered": 2500, "min": 500, "max": 10000,
                                       "currency": "USD", "message": "Amount set."},
    "close-conversation.custom.json": {"canceled": ["ps_123"], "processing": ["ps_124"]},
    "get-gateway-status.custom.json": {"gateway": "sandbox", "state": "open", "since": "2026-11-23T12:00:00Z",
                                       "recent_latency_ms": 16250},
    "check-customer-busy.custom.json": {"data": [{**_VIEW, "status": "processing", "outcome": None}],
                                        "has_more": False},
})
SESSION_ROUTES = {  # export → (method, OpenAPI path, 2xx status)
    AUTH_ACTION_FILE: ("POST", "/oauth/token", "200"),
    "create-payment-session.custom.json": ("POST", "/v1/payment-sessions", "201"),
    "get-payment-session.custom.json": ("GET", "/v1/payment-sessions/{session_id}", "200"),
    "cancel-payment-session.custom.json": ("POST", "/v1/payment-sessions/{session_id}/cancel", "200"),
    "inspect-card.custom.json": ("POST", "/v1/cards/inspect", "200"),
    "submit-card.custom.json": ("POST", "/v1/payment-sessions/{session_id}/card", "200"),
    "send-payment-link.custom.json": ("POST", "/v1/payment-sessions/{session_id}/send-link", "200"),
    "get-payment.custom.json": ("GET", "/v1/payments/{payment_id}", "200"),
    "list-payments.custom.json": ("GET", "/v1/payments", "200"),
    "capture-payment.custom.json": ("POST", "/v1/payments/{payment_id}/capture", "200"),
    "void-payment.custom.json": ("POST", "/v1/payments/{payment_id}/void", "200"),
    "create-refund.custom.json": ("POST", "/v1/refunds", "201"),
    "get-refund.custom.json": ("GET", "/v1/refunds/{refund_id}", "200"),
    "create-subscription.custom.json": ("POST", "/v1/subscriptions", "201"),
    "cancel-subscription.custom.json": ("POST", "/v1/subscriptions/{subscription_id}/cancel", "200"),
    "set-payment-amount.custom.json": ("POST", "/v1/payment-sessions/{session_id}/amount", "200"),
    "close-conversation.custom.json": ("POST", "/v1/conversations/{conversation_id}/close", "200"),
    "check-customer-busy.custom.json": ("GET", "/v1/payment-sessions", "200"),
    "get-gateway-status.custom.json": ("GET", "/v1/gateway-status", "200"),
}
MINIMAL_ALSO = {"create-payment-session.custom.json": ("amount",)}
"""Inputs a minimal call still needs though the contract cannot require them: a session needs ``amount`` or
``amountMin``/``amountMax``."""
CREDENTIALS = {"clientId": "cli_x", "clientSecret": "secret", "loginUrl": f"{BASE}/oauth/token", "baseUrl": BASE}


class FakeTransport:
    """Answers every request with one canned response and records what it was sent."""

    def __init__(self, status=200, body: bytes | dict | list = b"{}", content_type="application/json"):
        self.status = status
        bodies = body if isinstance(body, list) else [body]
        self.bodies = [json.dumps(b).encode() if isinstance(b, dict) else b for b in bodies]
        self.content_type = content_type
        self.sent = []

    def request(self, method, url, *, headers, content):
        """One canned body per request, in order; the last one repeats."""
        self.sent.append((method, url, dict(headers), content))
        body = self.bodies[min(len(self.sent), len(self.bodies)) - 1]
        return HttpResponse(self.status, {"Content-Type": self.content_type}, body)


def run_fake(name, response, input=None, **transport):  # noqa: A002
    fake = FakeTransport(body=response, **transport)
    result = execute(ACTIONS[name], SAMPLE_INPUTS[name] if input is None else input, CREDENTIALS, fake,
                     auth_response=FAKE_AUTH)
    return result, fake


def _top_field(jsonpath: str) -> str:
    """The response's top-level field a translation path starts at: ``$.data[0].status`` → ``data``."""
    return re.split(r"[.\[]", jsonpath.removeprefix("$."))[0]


def serves(app, method: str, path: str) -> bool:
    """True when the Flask app has a rule for ``method`` ``path`` (OpenAPI-style ``{param}`` placeholders)."""
    want = re.sub(r"\{[^}]+\}", "{}", path)
    return any(re.sub(r"<[^>]+>", "{}", rule.rule) == want and method in rule.methods
               for rule in app.url_map.iter_rules())


def require_routes(stack, *names: str) -> None:
    """Skips the test while the app does not serve every route the named exports call yet (the payments
    API is being built alongside these exports)."""
    missing = [f"{m} {p}" for m, p, _ in (SESSION_ROUTES[n] for n in names) if not serves(stack.app, m, p)]
    if missing:
        pytest.skip("the app does not serve " + ", ".join(missing) + " yet; the export is tested against it once it does")


def credentials_for(stack) -> dict:
    return {"clientId": stack.client.client_id, "clientSecret": stack.client.client_secret,
            "loginUrl": f"{BASE}/oauth/token", "baseUrl": BASE}


def _schema(doc: dict, schema: dict) -> dict:
    """A standalone JSON Schema for an OpenAPI (3.1 = JSON Schema 2020-12) fragment with local $refs."""
    return {**schema, "components": doc["components"]}


def _resolve(doc, schema):
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    if "oneOf" in schema:
        schema = next(_resolve(doc, s) for s in schema["oneOf"] if s.get("type") != "null")
    return schema


def _openapi_type_at(doc, schema, path: str) -> set[str]:
    """Types (without null) of the property a simple ``$.a.b`` / ``$.a[0].b`` / ``$.a[*].b`` JSONPath reaches
    in an OpenAPI schema; raises KeyError when a step is not a documented property. A ``[*]`` step yields
    ``array`` (the translation value is the list of matches)."""
    steps = path.removeprefix("$.").split(".")
    wildcard = False
    for step in steps:
        index = re.fullmatch(r"(\w+)\[(\d+|\*)\]", step)
        name = index.group(1) if index else step
        schema = _resolve(doc, schema)
        props = schema.get("properties", {})
        if name in props:
            schema = props[name]
        elif isinstance(schema.get("additionalProperties"), dict):
            schema = schema["additionalProperties"]
        else:
            raise KeyError(step)
        if index:
            schema = _resolve(doc, schema)["items"]
            wildcard = wildcard or index.group(2) == "*"
    if wildcard:
        return {"array"}
    schema = _resolve(doc, schema)
    types = schema.get("type", "object")
    return {t for t in ([types] if isinstance(types, str) else types) if t != "null"}


# -- the folder ---------------------------------------------------------------------------------------
def test_the_folder_ships_one_export_per_call_in_the_import_format():
    assert set(ACTIONS) == EXPECTED_FILES
    assert len({a["name"] for a in ACTIONS.values()}) == len(ACTIONS)  # recipes find them by name
    for name, action in ACTIONS.items():
        platform = name in PLATFORM_FILES
        assert action["integrationType"] == ("purecloud-data-actions" if platform else "custom-rest-actions"), name
        assert action["actionType"] == "custom", name
        assert action["name"].startswith("paygate - "), name
        assert action["secure"] is (name in SECURE), name
        request = action["config"]["request"]
        if platform:  # Genesys calls its own API with the integration's OAuth client: no credentials here
            assert request["requestUrlTemplate"].startswith("/api/v2/"), name
            assert "Authorization" not in request["headers"] and "authResponse" not in json.dumps(action), name
            assert "credentials." not in json.dumps(action), name
        else:
            assert request["requestUrlTemplate"].startswith("${credentials."), name
        assert request["requestType"] in {"GET", "PUT", "POST", "PATCH", "DELETE"}
        for key in ("translationMap", "translationMapDefaults", "successTemplate"):
            assert key in action["config"]["response"], (name, key)
        for side, key in (("input", "inputSchema"), ("output", "successSchema")):
            schema = action["contract"][side][key]
            assert schema["type"] == "object", name
            jsonschema.Draft4Validator.check_schema(schema)
            for prop, spec in schema["properties"].items():  # flattened for Architect: no nested objects
                assert spec["type"] in {"string", "integer", "boolean", "number", "array"}, (name, prop)
                if spec["type"] == "array":
                    assert spec["items"]["type"] != "object", (name, prop)
        timeout = action["config"].get("timeoutSeconds")
        if name == AUTH_ACTION_FILE:
            assert timeout is None  # invalid for custom auth actions (SDK ActionConfig)
            assert request["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
            assert request["requestTemplate"] == "grant_type=client_credentials"
        else:
            assert 1 <= timeout <= 60
            if not platform:
                assert request["headers"]["Authorization"] == "Bearer ${authResponse.token}"
        if request["requestType"] == "POST" and name not in PLATFORM_FILES | SAFE_TO_REPEAT | {AUTH_ACTION_FILE}:
            assert request["headers"]["Idempotency-Key"] == "${input.idempotencyKey}", name
            assert "idempotencyKey" in action["contract"]["input"]["inputSchema"]["required"], name


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES - {AUTH_ACTION_FILE}))
def test_every_string_input_is_escaped(name):
    """Values with quotes, backslashes, newlines and Velocity-looking text keep the body valid JSON and
    arrive unchanged."""
    action = ACTIONS[name]
    template = action["config"]["request"]["requestTemplate"]
    props = action["contract"]["input"]["inputSchema"]["properties"]
    strings = "|".join(p for p, spec in props.items() if spec["type"] == "string")
    if action["config"]["request"]["requestType"] != "GET" and strings:  # statically: no bare string input
        bare = re.sub(rf'\$esc\.jsonString\(\$\{{input\.({strings})\}}\)|"\$!\{{input\.({strings})\}}" != ""', "",
                      template)
        assert not re.search(rf"input\.({strings})\b", bare), bare
    evil = {}
    payload = dict(SAMPLE_INPUTS[name])
    for prop, spec in props.items():
        if spec["type"] == "string" and "pattern" not in spec and "enum" not in spec:
            value = f'{prop} "q" \\ b\\s\nn \t ${{input.x}} #end \u00e9 </script>'
            evil[prop] = value[:spec.get("maxLength", len(value))]
            payload[prop] = evil[prop]
    result, fake = run_fake(name, SAMPLE_RESPONSES[name], payload)
    assert result.success, result.error
    method, url, headers, content = fake.sent[-1]
    for prop in evil:  # path values are URL-encoded, never raw
        if f"input.{prop}" in action["config"]["request"]["requestUrlTemplate"]:
            assert '"' not in urlsplit(url).path and "\n" not in url
    if method == "GET":
        assert content is None
        return
    body = json.loads(content)
    in_body = [p for p in evil if re.search(rf"input\.{p}\b", template)]
    assert in_body or name in {"cancel-payment-session.custom.json", "inspect-card.custom.json",
                               "void-payment.custom.json", "capture-payment.custom.json",
                               "cancel-subscription.custom.json", "close-conversation.custom.json"}
    for prop in in_body:
        assert evil[prop] in body.values(), prop


def test_the_auth_action_sends_basic_credentials_and_a_form_body():
    fake = FakeTransport(body=SAMPLE_RESPONSES[AUTH_ACTION_FILE])
    both = FakeTransport(body=[SAMPLE_RESPONSES[AUTH_ACTION_FILE], _VIEW])
    result = execute(ACTIONS["get-payment-session.custom.json"], {"sessionId": "ps_1"}, CREDENTIALS, both)
    assert result.success, result.error  # the shipped auth action ran first, its token was used
    assert [r.url for r in result.requests] == [f"{BASE}/oauth/token", f"{BASE}/v1/payment-sessions/ps_1"]
    assert both.sent[1][2]["Authorization"] == "Bearer abc" and result.auth_response == {"token": "abc"}
    auth = execute(ACTIONS[AUTH_ACTION_FILE], {}, {**CREDENTIALS, "clientSecret": 'p"a:ss'}, fake)
    assert auth.output == {"token": "abc"}
    method, url, headers, content = fake.sent[0]
    assert (method, url, content) == ("POST", f"{BASE}/oauth/token", b"grant_type=client_credentials")
    import base64
    assert headers["Authorization"] == "Basic " + base64.b64encode(b'cli_x:p"a:ss').decode()


# -- contracts against the OpenAPI document -------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PAYGATE_FILES))
def test_contracts_match_the_openapi_document(name):
    doc = openapi_document(BASE)
    method, path, ok = SESSION_ROUTES[name]
    if name in PAYMENT_FILES | ISSUE8_FILES and method.lower() not in doc["paths"].get(path, {}):
        pytest.skip(f"the OpenAPI document has no {method} {path} yet (payments API being built)")
    operation = doc["paths"][path][method.lower()]
    action = ACTIONS[name]
    required = action["contract"]["input"]["inputSchema"].get("required", [])
    minimal = {k: v for k, v in SAMPLE_INPUTS[name].items() if k in required or k in MINIMAL_ALSO.get(name, ())}
    for payload in (SAMPLE_INPUTS[name], minimal):
        result, fake = run_fake(name, SAMPLE_RESPONSES[name], payload)
        assert result.success, result.error
        sent_method, url, headers, content = fake.sent[-1]
        assert sent_method == method
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(path))
        assert re.fullmatch(pattern, urlsplit(url).path), url
        body_spec = operation.get("requestBody", {}).get("content", {})
        if "application/json" in body_spec:
            jsonschema.Draft202012Validator(_schema(doc, body_spec["application/json"]["schema"])).validate(
                json.loads(content))
        if any(p.get("$ref", "").endswith("/IdempotencyKey") for p in operation.get("parameters", [])) \
                and name not in SAFE_TO_REPEAT:
            assert headers["Idempotency-Key"] == payload["idempotencyKey"]
        query = urlsplit(url).query  # the list action's filters are documented query parameters
        documented = {p.get("name") for p in operation.get("parameters", [])}
        for pair in filter(None, query.split("&")):
            assert pair.split("=", 1)[0] in documented, (name, pair)
    response_schema = operation["responses"][ok]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(_schema(doc, response_schema)).validate(SAMPLE_RESPONSES[name])
    outputs = action["contract"]["output"]["successSchema"]["properties"]
    type_map = {"string": {"string"}, "integer": {"integer"}, "boolean": {"boolean"}, "array": {"array"}}
    for key, jsonpath in action["config"]["response"]["translationMap"].items():
        api_types = _openapi_type_at(doc, response_schema, jsonpath)  # KeyError = undocumented field
        if key in outputs:
            assert api_types <= type_map[outputs[key]["type"]], (key, api_types)


# -- the harness fails the way Genesys does --------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_a_renamed_api_field_fails_the_action(name):
    action = ACTIONS[name]
    ok, _ = run_fake(name, SAMPLE_RESPONSES[name])
    assert ok.success, ok.error
    defaults = action["config"]["response"]["translationMapDefaults"]
    checked = 0
    for key, jsonpath in action["config"]["response"]["translationMap"].items():
        if key in defaults:
            continue
        field = _top_field(jsonpath)
        renamed = copy.deepcopy(SAMPLE_RESPONSES[name])
        renamed[field + "_renamed"] = renamed.pop(field)
        result, _ = run_fake(name, renamed)
        assert not result.success, (name, field)
        assert result.error_code == PROCESSING and result.error["status"] == 400
        assert field in result.error["userMessage"] or key in result.error["userMessage"]
        checked += 1
    # only the customer-participant lookup may answer without any field: "no customer" is an answer
    assert checked >= 1 or name == "genesys-get-customer-participant.json"


def test_a_changed_field_type_fails_the_success_schema():
    view = {**_VIEW, "amount": "2500"}
    result, _ = run_fake("get-payment-session.custom.json", view)
    assert not result.success and result.error_code == PROCESSING
    assert "success schema" in result.error["userMessage"]
    nulls = {**_VIEW, "status": None}  # null does not fall back to a default and is not a string
    result, _ = run_fake("get-payment-session.custom.json", nulls)
    assert not result.success and result.error_code == PROCESSING


def test_nulls_and_missing_card_become_empty_outputs():
    result, _ = run_fake("cancel-payment-session.custom.json", SAMPLE_RESPONSES["cancel-payment-session.custom.json"])
    assert result.output == {"sessionId": "ps_123", "status": "canceled", "terminal": True, "outcome": "",
                             "message": "Canceled."}
    pending = {**_VIEW, "status": "pending", "outcome": None, "card": None, "token": None, "payment_id": None}
    result, _ = run_fake("get-payment-session.custom.json", pending)
    assert result.success, result.error
    out = result.output
    assert (out["terminal"], out["outcome"], out["cardBrand"], out["cardLast4"], out["cardExpYear"]) == \
        (False, "", "", "", 0)


@pytest.mark.parametrize("status,body,content_type", [
    (500, b'{"error": {"code": "internal_error", "message": "x", "request_id": "r"}}', "application/json"),
    (404, b'{"error": {"code": "session_not_found", "message": "x", "request_id": "r"}}', "application/json"),
    (200, b"<html>maintenance</html>", "text/html"),
    (200, b"not json", "application/json"),
])
def test_non_2xx_and_non_json_are_remote_endpoint_failures(status, body, content_type):
    result, _ = run_fake("get-payment-session.custom.json", body, content_type=content_type, status=status)
    assert not result.success and result.error_code == REMOTE_ENDPOINT
    assert result.error["details"] == [{"errorCode": "ACTION.REMOTE_ENDPOINT"}]
    assert result.error["status"] == (status if status >= 400 else 400)
    assert {"errorCode", "userMessage", "correlationId", "errors"} <= set(result.error)


def test_input_is_validated_first_and_failures_never_echo_card_digits():
    fake = FakeTransport(body=SAMPLE_RESPONSES["inspect-card.custom.json"])
    result = execute(ACTIONS["inspect-card.custom.json"], {"cardNumber": "37828224631000X"}, CREDENTIALS, fake,
                     auth_response=FAKE_AUTH)
    assert not result.success and fake.sent == []
    assert result.error["details"][0] == {"errorCode": PROCESSING, "fieldName": "cardNumber"}
    assert "3782822463" not in json.dumps(result.error) and "3782822463" not in repr(result)
    missing = execute(ACTIONS["submit-card.custom.json"], {"sessionId": "ps_1", "cardNumber": AMEX}, CREDENTIALS,
                      fake, auth_response=FAKE_AUTH)
    assert not missing.success and "is a required property" in missing.error["userMessage"]
    assert AMEX not in json.dumps(missing.error)


# -- against the real app ----------------------------------------------------------------------------------
def test_voice_journey_through_every_shipped_action(stack):
    runner = ActionRunner(credentials_for(stack), FlaskTransport(stack.http))

    created = runner.run("create-payment-session.custom.json", {
        "conversationId": "conv-voice", "participantId": "part-9", "customerAccountId": "ACME-7",
        "amount": 4200, "currency": "USD", "channel": "voice", "reference": 'INV "7"',
        "idempotencyKey": "conv-voice:1"})
    assert created.success, created.error
    first = created.requests[0]
    assert first.url == f"{BASE}/oauth/token" and first.body == "grant_type=client_credentials"
    assert created.requests[1].headers["Authorization"] == f"Bearer {runner.auth_response['token']}"
    out = created.output
    sid = out["sessionId"]
    assert sid.startswith("ps_") and out["status"] == "pending" and out["amount"] == 4200
    assert out["checkoutUrl"].startswith(f"{BASE}/checkout/{sid}") and out["agentUrl"].startswith(BASE)
    again = runner.run("create-payment-session.custom.json", {
        "conversationId": "conv-voice", "participantId": "part-9", "customerAccountId": "ACME-7",
        "amount": 4200, "currency": "USD", "channel": "voice", "reference": 'INV "7"',
        "idempotencyKey": "conv-voice:1"})
    assert again.output["sessionId"] == sid  # a retried create is replayed, not a second session
    assert len(again.requests) == 1  # and the auth output was reused

    got = runner.run("get-payment-session.custom.json", {"sessionId": sid})
    assert got.success, got.error
    assert (got.output["status"], got.output["terminal"], got.output["reference"], got.output["cardLast4"]) == \
        ("pending", False, 'INV "7"', "")

    inspected = runner.run("inspect-card.custom.json", {"cardNumber": AMEX})
    assert inspected.success, inspected.error
    assert inspected.output == {"brand": "amex", "allowed": True, "panLengths": [15], "cvcLength": 4,
                                "requiresExpiry": True, "requiresCvc": True, "luhnValid": True}

    paid = runner.run("submit-card.custom.json", {"sessionId": sid, "cardNumber": AMEX, "expMonth": "12",
                                                  "expYear": "30", "cvc": "1234", "idempotencyKey": f"{sid}:1"})
    assert paid.success, paid.error
    assert paid.output["outcome"] == "approved" and paid.output["terminal"] is True
    assert (paid.output["cardBrand"], paid.output["cardLast4"]) == ("amex", "0005")
    assert paid.output["token"].startswith("tok_") and paid.output["numberError"] == ""
    assert AMEX not in json.dumps(paid.output)

    final = runner.run("get-payment-session.custom.json", {"sessionId": sid})
    assert (final.output["status"], final.output["outcome"], final.output["terminal"]) == ("approved", "approved", True)
    assert (final.output["cardLast4"], final.output["token"]) == ("0005", paid.output["token"])

    other = stack.create_session(conversation_id="conv-other")
    canceled = runner.run("cancel-payment-session.custom.json", {"sessionId": other["session_id"]})
    assert canceled.success, canceled.error
    assert canceled.output == {"sessionId": other["session_id"], "status": "canceled", "terminal": True,
                               "outcome": "", "message": canceled.output["message"]}
    cancel_paid = runner.run("cancel-payment-session.custom.json", {"sessionId": sid})
    assert not cancel_paid.success and cancel_paid.error_code == REMOTE_ENDPOINT  # 409: approved stays approved
    assert cancel_paid.status == 409


def test_declines_and_invalid_numbers_stay_on_the_success_path(stack):
    runner = ActionRunner(credentials_for(stack), FlaskTransport(stack.http))
    sid = stack.create_session(channel="voice")["session_id"]
    declined = runner.run("submit-card.custom.json", {"sessionId": sid, "cardNumber": "4000000000000002",
                                                      "expMonth": "1", "expYear": "2031", "cvc": "123",
                                                      "idempotencyKey": f"{sid}:1"})
    assert declined.success, declined.error
    out = declined.output
    assert (out["outcome"], out["declineCode"], out["terminal"], out["attemptsRemaining"]) == \
        ("declined", "generic_decline", False, 2)
    assert out["message"] and out["cardLast4"] == "0002"

    invalid = runner.run("submit-card.custom.json", {"sessionId": sid, "cardNumber": "4242424242424241",
                                                     "expMonth": "12", "expYear": "30", "cvc": "123",
                                                     "idempotencyKey": f"{sid}:2"})
    assert invalid.success, invalid.error
    assert (invalid.output["outcome"], invalid.output["numberError"]) == ("invalid", "incorrect_number")

    polled = runner.run("get-payment-session.custom.json", {"sessionId": sid})
    assert (polled.output["outcome"], polled.output["declineCode"], polled.output["terminal"]) == \
        ("declined", "generic_decline", False)


def test_wrong_credentials_are_an_authentication_failure(stack):
    creds = {**credentials_for(stack), "clientSecret": "wrong"}
    result = execute(load_action("get-payment-session.custom.json"), {"sessionId": "ps_nope"}, creds,
                     FlaskTransport(stack.http))
    assert not result.success and result.error_code == AUTHENTICATION
    assert "invalid_client" in result.error["userMessage"]
    assert len(result.requests) == 1  # the action itself was never called
    expired = execute(load_action("get-payment-session.custom.json"), {"sessionId": "ps_nope"}, creds,
                      FlaskTransport(stack.http), auth_response={"token": "not-a-token"})
    assert not expired.success and expired.status == 401 and expired.error_code == REMOTE_ENDPOINT


def test_send_link_action_texts_the_link_through_the_genesys_emulator(stack, state_dir):
    """The export drives the real endpoint, which calls the Genesys emulator's agentless API over HTTP."""
    from integrations.genesys.settings import GenesysSettings, SecretBox
    from payments.clients import configure_genesys
    from tests.fakes.genesys import GenesysEmulator

    runner = ActionRunner(credentials_for(stack), FlaskTransport(stack.http))
    sid = stack.create_session()["session_id"]
    send = {"sessionId": sid, "toAddress": "+15551234567", "messengerType": "sms", "fromAddress": "+15550001111",
            "idempotencyKey": f"{sid}:sms:1"}
    unconfigured = runner.run("send-payment-link.custom.json", send)
    request = unconfigured.requests[-1]
    assert request.url == f"{BASE}/v1/payment-sessions/{sid}/send-link"
    assert json.loads(request.body) == {"to": "+15551234567", "messenger_type": "sms",
                                        "from_address": "+15550001111"}
    assert not unconfigured.success and unconfigured.status == 409  # no Genesys settings: Failure path
    assert "genesys_not_configured" in unconfigured.error["userMessage"]

    # the emulator records every body sent to it under state_dir, for the final PCI scan
    with GenesysEmulator({"gc-client": "gc-secret"}, state_dir) as emulator:
        with stack.services.Session.begin() as db:
            configure_genesys(db, stack.client.client_id,
                      GenesysSettings(region="us_east_1", client_id="gc-client", client_secret="gc-secret",
                                      api_base=emulator.url, login_base=emulator.url),
                      SecretBox(stack.services.settings.secret_key), production=False)
        sent = runner.run("send-payment-link.custom.json", {**send, "idempotencyKey": f"{sid}:sms:2"})
        messages = emulator.messages
    assert sent.success, sent.error
    assert sent.output["sent"] is True and sent.output["messageId"]
    assert (sent.output["to"], sent.output["messengerType"]) == ("+15551234567", "sms")
    assert [(m["toAddress"], m["fromAddress"]) for m in messages] == [("+15551234567", "+15550001111")]
    assert f"/checkout/{sid}" in messages[0]["textBody"]


def _paid(runner, *, conversation: str, intent: str = "payment", number: str = "4242424242424242",
          amount: int = 2500, participant: str = "cust-9") -> tuple[str, str]:
    """A session created and paid through the shipped actions → ``(session id, payment id)``."""
    created = runner.run("create-payment-session.custom.json", {
        "conversationId": conversation, "participantId": participant, "customerAccountId": f"ACME-{conversation}",
        "intent": intent, "amount": amount, "currency": "USD", "channel": "voice",
        "idempotencyKey": f"{conversation}:create:1"})
    assert created.success, created.error
    sid = created.output["sessionId"]
    paid = runner.run("submit-card.custom.json", {"sessionId": sid, "cardNumber": number, "expMonth": "12",
                                                  "expYear": "30", "cvc": "123", "idempotencyKey": f"{sid}:1"})
    assert paid.success and paid.output["outcome"] == "approved", paid.output or paid.error
    session = runner.run("get-payment-session.custom.json", {"sessionId": sid})
    assert session.output["paymentId"].startswith("pay_"), session.output
    return sid, session.output["paymentId"]


def test_hold_actions_against_the_app(stack):
    """Get, list, capture and void through the exports on a real hold (docs/api.md, "Payments" and "Holds")."""
    require_routes(stack, "get-payment.custom.json", "list-payments.custom.json", "capture-payment.custom.json",
                   "void-payment.custom.json")
    runner = ActionRunner(credentials_for(stack), FlaskTransport(stack.http))
    sid, pid = _paid(runner, conversation="conv-hold", intent="hold", amount=5000)

    held = runner.run("get-payment.custom.json", {"paymentId": pid})
    assert held.success, held.error
    out = held.output
    assert (out["paymentId"], out["status"], out["holdState"], out["intent"], out["sessionId"]) == (
        pid, "authorized", "HELD", "hold", sid)
    assert (out["amount"], out["amountCapturable"], out["amountCaptured"], out["currency"]) == (5000, 5000, 0, "USD")
    assert out["captureBefore"] and out["cardLast4"] == "4242" and out["token"].startswith("tok_")

    listed = runner.run("list-payments.custom.json", {"conversationId": "conv-hold"})
    assert listed.success, listed.error
    assert (listed.output["found"], listed.output["paymentId"], listed.output["paymentIds"], listed.output["hasMore"]) \
        == (True, pid, [pid], False)
    none = runner.run("list-payments.custom.json", {"conversationId": "conv-hold", "status": "captured"})
    assert (none.output["found"], none.output["paymentId"], none.output["amount"]) == (False, "", 0)

    capture = {"paymentId": pid, "amount": "1500", "idempotencyKey": f"{pid}:capture"}
    captured = runner.run("capture-payment.custom.json", capture)
    assert captured.success, captured.error
    assert (captured.output["status"], captured.output["holdState"], captured.output["amountCaptured"],
            captured.output["amountCapturable"]) == ("captured", "CHARGED", 1500, 0)
    assert runner.run("capture-payment.custom.json", capture).output == captured.output  # replayed, not twice
    again = runner.run("capture-payment.custom.json", {**capture, "idempotencyKey": f"{pid}:capture:2"})
    assert not again.success and again.status == 409 and again.error_code == REMOTE_ENDPOINT
    assert "payment_not_capturable" in again.error["userMessage"]
    late_void = runner.run("void-payment.custom.json", {"paymentId": pid, "idempotencyKey": f"{pid}:void"})
    assert not late_void.success and late_void.status == 409
    assert "payment_not_voidable" in late_void.error["userMessage"]

    _, other = _paid(runner, conversation="conv-release", intent="hold", amount=3000)
    voided = runner.run("void-payment.custom.json", {"paymentId": other, "idempotencyKey": f"{other}:void"})
    assert voided.success, voided.error
    assert (voided.output["status"], voided.output["holdState"], voided.output["amountCapturable"]) == (
        "voided", "RELEASED", 0)
    everything = json.dumps([held.output, listed.output, captured.output, voided.output])
    assert "4242424242424242" not in everything


def test_refund_actions_against_the_app(stack):
    """Create and get refunds through the exports (docs/api.md, "Refunds"): a string amount, exactly once per
    disposition, business outcomes on the Success path."""
    require_routes(stack, "list-payments.custom.json", "create-refund.custom.json", "get-refund.custom.json")
    runner = ActionRunner(credentials_for(stack), FlaskTransport(stack.http))
    _, pid = _paid(runner, conversation="conv-refund")
    listed = runner.run("list-payments.custom.json", {"conversationId": "conv-refund"})
    assert (listed.output["paymentId"], listed.output["status"]) == (pid, "captured")

    ask = {"paymentId": pid, "dispositionCode": "REFUND", "amount": "1000", "reason": "requested_by_customer",
           "conversationId": "conv-refund", "participantId": "cust-9", "idempotencyKey": "conv-refund:REFUND"}
    refund = runner.run("create-refund.custom.json", ask)
    assert refund.success, refund.error
    out = refund.output
    assert out["refundId"].startswith("re_") and (out["paymentId"], out["amount"], out["currency"]) == (
        pid, 1000, "USD")
    assert (out["dispositionCode"], out["conversationId"], out["participantId"], out["reason"]) == (
        "REFUND", "conv-refund", "cust-9", "requested_by_customer")
    assert out["status"] in {"pending", "succeeded"} and out["needsReview"] is False
    assert out["reviewDisposition"] == "" and out["manualReview"] == "none"
    assert json.loads(refund.requests[-1].body)["amount"] == "1000"  # a string of digits, as Genesys has it
    twice = runner.run("create-refund.custom.json", {**ask, "idempotencyKey": "conv-refund:REFUND:again"})
    assert twice.success and twice.output["refundId"] == out["refundId"]  # once per disposition
    got = runner.run("get-refund.custom.json", {"refundId": out["refundId"]})
    assert got.success and (got.output["refundId"], got.output["paymentId"]) == (out["refundId"], pid)

    rest = runner.run("create-refund.custom.json", {**ask, "dispositionCode": "REFUND-REST", "amount": "",
                                                     "idempotencyKey": "conv-refund:REFUND-REST"})
    assert rest.success, rest.error
    assert rest.output["amount"] == 1500 and "amount" not in json.loads(rest.requests[-1].body)  # the rest
    over = runner.run("create-refund.custom.json", {**ask, "dispositionCode": "REFUND-MORE", "amount": "1",
                                                     "idempotencyKey": "conv-refund:REFUND-MORE"})
    assert not over.success and over.status in {409, 422} and over.error_code == REMOTE_ENDPOINT
    zero = runner.run("create-refund.custom.json", {**ask, "amount": "0"})
    assert not zero.success and zero.error_code == PROCESSING and len(zero.requests) == 0  # never sent

    _, failing = _paid(runner, conversation="conv-refund-fail", number="4000000000005126")
    refused = runner.run("create-refund.custom.json", {
        "paymentId": failing, "dispositionCode": "REFUND", "conversationId": "conv-refund-fail",
        "participantId": "cust-9", "idempotencyKey": "conv-refund-fail:REFUND"})
    assert refused.success, refused.error  # a gateway refusal is an answer, not a Failure
    if refused.output["status"] == "failed":
        assert (refused.output["needsReview"], refused.output["reviewDisposition"], refused.output["failureCode"]) == (
            True, "Refund_Failed_Manual_Review", "expired_or_canceled_card")
    assert "4000000000005126" not in json.dumps(refused.output)


class PlatformTransport:
    """Plays the Genesys Cloud Data Actions integration: the export's relative ``/api/v2`` URL is called on
    the emulator with the integration's own bearer token (Genesys adds it; the export has none)."""

    accepts_timeout = False

    def __init__(self, client, token: str):
        self.inner = FlaskTransport(client)
        self.token = token

    def request(self, method, url, *, headers, content):
        assert url.startswith("/api/v2/"), url
        return self.inner.request(method, url, headers={**headers, "Authorization": f"Bearer {self.token}"},
                                  content=content)


@pytest.fixture
def genesys_platform():
    import base64

    from integrations.genesys.emulator import create_app as create_emulator

    app = create_emulator(genesys_clients={"gc-actions": "gc-secret"})
    client = app.test_client()
    basic = base64.b64encode(b"gc-actions:gc-secret").decode()
    token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers={"Authorization": f"Basic {basic}"}).get_json()["access_token"]
    return client, PlatformTransport(client, token)


def test_genesys_actions_find_the_customer_and_create_a_workitem_on_the_emulator(genesys_platform):
    client, transport = genesys_platform
    client.post("/api/genesys/conversations", json={"id": "conv-acw", "participants": [
        {"id": "agent-1", "purpose": "agent"}, {"id": "cust-1", "purpose": "customer"}]})
    client.post("/api/genesys/conversations", json={"id": "conv-agent-only", "participants": [
        {"id": "agent-2", "purpose": "agent"}]})
    lookup = ACTIONS["genesys-get-customer-participant.json"]
    found = execute(lookup, {"conversationId": "conv-acw"}, {}, transport)
    assert found.success and found.output == {"found": True, "participantId": "cust-1"}, found.error
    alone = execute(lookup, {"conversationId": "conv-agent-only"}, {}, transport)
    assert alone.success and alone.output == {"found": False, "participantId": ""}
    missing = execute(lookup, {"conversationId": "conv-nope"}, {}, transport)
    assert not missing.success and missing.status == 404 and missing.error_code == REMOTE_ENDPOINT

    create = ACTIONS["genesys-create-workitem.json"]
    made = execute(create, SAMPLE_INPUTS["genesys-create-workitem.json"], {}, transport)
    assert made.success, made.error
    (workitem,) = client.get("/api/genesys/workitems?external_tag=conv-1:REFUND").get_json()
    assert made.output == {"workitemId": workitem["id"], "statusCategory": "Open"}
    assert (workitem["name"], workitem["type"]["id"]) == ("Refund review conv-1", WORKTYPE)
    client.post("/api/genesys/worktypes", json={"name": "Somebody else's"})
    unknown = execute(create, SAMPLE_INPUTS["genesys-create-workitem.json"], {}, transport)
    assert not unknown.success and unknown.status == 404  # the worktype id must be the org's
    short = execute(create, {**SAMPLE_INPUTS["genesys-create-workitem.json"], "name": "ab"}, {}, transport)
    assert not short.success and short.error_code == PROCESSING and short.requests == []


def test_actions_are_loaded_from_the_package_folder():
    assert DATA_ACTIONS_DIR.name == "data-actions" and (DATA_ACTIONS_DIR / "README.md").is_file()
    assert load_action("paygate - Submit Card")["secure"] is True
