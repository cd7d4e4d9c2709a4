"""The shipped Genesys data action exports, proven by execution.

Every export in ``integrations/genesys/data-actions/`` runs through :mod:`integrations.genesys.harness` (the Genesys data action
engine's steps: input contract, custom auth, Velocity, HTTP, JSONPath translation map with defaults,
success template, success schema) against the real app on a real database and Redis (``stack``), and
statically against the OpenAPI document and against fake responses (renamed fields must fail).
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
EXPECTED_FILES = {AUTH_ACTION_FILE, "create-payment-session.custom.json", "get-payment-session.custom.json",
                  "cancel-payment-session.custom.json", "inspect-card.custom.json", "submit-card.custom.json",
                  "send-payment-link.custom.json"}
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
}
_VIEW = {"session_id": "ps_123", "status": "approved", "outcome": "approved", "conversation_id": "conv-1",
         "participant_id": "part-1", "customer_account_id": "ACME-1", "intent": "payment", "amount": 2500,
         "currency": "USD", "reference": None, "channel": "voice", "attempts": 1, "max_attempts": 3,
         "token": "tok_1", "card": {"brand": "amex", "last4": "0005", "exp_month": 12, "exp_year": 2030,
                                     "fingerprint": "fp_1"},
         "payment_id": "pay_1", "gateway": "sandbox", "gateway_reference": "pi_1", "decline_code": None,
         "message": "Payment approved.", "metadata": {}, "created_at": "2026-11-23T12:00:00Z",
         "updated_at": "2026-11-23T12:01:00Z", "expires_at": "2026-11-23T12:15:00Z", "link_sends": 1,
         "link_last_sent_at": "2026-11-23T12:00:05Z"}
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
SESSION_ROUTES = {  # export → (method, OpenAPI path, 2xx status)
    AUTH_ACTION_FILE: ("POST", "/oauth/token", "200"),
    "create-payment-session.custom.json": ("POST", "/v1/payment-sessions", "201"),
    "get-payment-session.custom.json": ("GET", "/v1/payment-sessions/{session_id}", "200"),
    "cancel-payment-session.custom.json": ("POST", "/v1/payment-sessions/{session_id}/cancel", "200"),
    "inspect-card.custom.json": ("POST", "/v1/cards/inspect", "200"),
    "submit-card.custom.json": ("POST", "/v1/payment-sessions/{session_id}/card", "200"),
    "send-payment-link.custom.json": ("POST", "/v1/payment-sessions/{session_id}/send-link", "200"),
}
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
    """Types (without null) of the property a simple ``$.a.b`` JSONPath reaches in an OpenAPI schema;
    raises KeyError when a step is not a documented property."""
    for step in path.removeprefix("$.").split("."):
        schema = _resolve(doc, schema)
        props = schema.get("properties", {})
        if step in props:
            schema = props[step]
        elif isinstance(schema.get("additionalProperties"), dict):
            schema = schema["additionalProperties"]
        else:
            raise KeyError(step)
    schema = _resolve(doc, schema)
    types = schema.get("type", "object")
    return {t for t in ([types] if isinstance(types, str) else types) if t != "null"}


# -- the folder ---------------------------------------------------------------------------------------
def test_the_folder_ships_one_export_per_call_in_the_import_format():
    assert set(ACTIONS) == EXPECTED_FILES
    for name, action in ACTIONS.items():
        assert action["integrationType"] == "custom-rest-actions" and action["actionType"] == "custom", name
        assert action["name"].startswith("paygate - "), name
        assert action["secure"] is (name in SECURE), name
        request = action["config"]["request"]
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
            assert request["headers"]["Authorization"] == "Bearer ${authResponse.token}"


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
    assert in_body or name in {"cancel-payment-session.custom.json", "inspect-card.custom.json"}
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
@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_contracts_match_the_openapi_document(name):
    doc = openapi_document(BASE)
    method, path, ok = SESSION_ROUTES[name]
    operation = doc["paths"][path][method.lower()]
    action = ACTIONS[name]
    required = action["contract"]["input"]["inputSchema"].get("required", [])
    minimal = {k: v for k, v in SAMPLE_INPUTS[name].items() if k in required}
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
                and name not in {"cancel-payment-session.custom.json", "inspect-card.custom.json"}:
            assert headers["Idempotency-Key"] == payload["idempotencyKey"]
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
        field = jsonpath.removeprefix("$.").split(".")[0]
        renamed = copy.deepcopy(SAMPLE_RESPONSES[name])
        renamed[field + "_renamed"] = renamed.pop(field)
        result, _ = run_fake(name, renamed)
        assert not result.success, (name, field)
        assert result.error_code == PROCESSING and result.error["status"] == 400
        assert field in result.error["userMessage"] or key in result.error["userMessage"]
        checked += 1
    assert checked >= 1


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


def _mapping_keys(lines: list[str], i: int) -> list[str]:
    """Top-level keys of the YAML mapping that starts at ``lines[i]`` (inline ``{...}`` or indented)."""
    line = lines[i]
    indent = len(line) - len(line.lstrip())
    rest = line.split(":", 1)[1].strip()
    keys: list[str] = []
    if rest.startswith("{"):
        depth = 0
        for m in re.finditer(r"[{}]|(\w+):", rest):
            if m.group(0) in "{}":
                depth += 1 if m.group(0) == "{" else -1
            elif depth == 1:
                keys.append(m.group(1))
        return keys
    child = None
    for text in lines[i + 1:]:
        if not text.strip():
            continue
        ind = len(text) - len(text.lstrip())
        if ind <= indent:
            break
        child = child or ind
        if ind == child:
            keys.append(re.match(r"\s*(\w+):", text).group(1))
    return keys


def test_the_architect_recipes_use_the_shipped_actions_and_their_contracts():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "architect-recipes.md").read_text(encoding="utf-8")
    by_name = {a["name"]: a for a in ACTIONS.values()}
    used = set()
    for block in re.findall(r"```yaml\n(.*?)```", doc, flags=re.S):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^(\s*)(paygate - [^:]+):\s*$", line)
            if not m:
                continue
            action = by_name[m.group(2)]  # KeyError: a recipe names an action that is not shipped
            used.add(m.group(2))
            contract = action["contract"]
            body = []
            for text in lines[i + 1:]:
                if text.strip() and len(text) - len(text.lstrip()) <= len(m.group(1)):
                    break
                body.append(text)
            sections = {re.match(r"\s*(\w+):", t).group(1): j for j, t in enumerate(body)
                        if re.match(r"\s*(inputs|successOutputs):", t)}
            inputs = _mapping_keys(body, sections["inputs"])
            assert set(inputs) <= set(contract["input"]["inputSchema"]["properties"]), (m.group(2), inputs)
            assert set(contract["input"]["inputSchema"].get("required", [])) <= set(inputs), (m.group(2), inputs)
            if "successOutputs" in sections:
                outputs = _mapping_keys(body, sections["successOutputs"])
                assert outputs and set(outputs) <= set(contract["output"]["successSchema"]["properties"]), outputs
    assert used == set(by_name) - {"paygate - Custom Auth"}  # every flow-facing action appears in a recipe


def test_actions_are_loaded_from_the_package_folder():
    assert DATA_ACTIONS_DIR.name == "data-actions" and (DATA_ACTIONS_DIR / "README.md").is_file()
    assert load_action("paygate - Submit Card")["secure"] is True
