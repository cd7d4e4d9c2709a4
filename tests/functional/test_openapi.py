"""The OpenAPI document is the implementation's: same routes, examples the server accepts, real answers
(successes and errors, every status) that fit the documented schemas, and the fuzzer's findings fixed."""

from __future__ import annotations

import base64
import copy
import json
import re

import jsonschema
import pytest

from app.openapi import SCHEMAS, openapi_document
from kernel.money import known_currencies

BASE = "http://127.0.0.1:8000"


def _routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        if not (path.startswith("/v1/") or path == "/oauth/token"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((method.lower(), path))
    return out


def _closed(schema):
    """A copy where every object with ``properties`` refuses undocumented fields (the document leaves
    response objects open for additions; what the server sends today must all be documented)."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


def _validator(schema: dict, schemas: dict | None = None, *, strict: bool = True):
    components = schemas if schemas is not None else SCHEMAS
    if strict:
        schema, components = _closed(schema), _closed(components)
    return jsonschema.Draft202012Validator({**schema, "components": {"schemas": components}},
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def _check(schema: dict, value, where: str):
    """Asserts ``value`` fits ``schema`` (a document schema or ``$ref``), with no undocumented field."""
    errors = sorted(_validator(schema).iter_errors(value), key=lambda e: list(e.absolute_path))
    assert not errors, f"{where}: " + "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def _operation(doc: dict, method: str, path: str) -> dict:
    """The documented operation whose path template matches ``path`` (``/v1/payment-sessions/ps_1``)."""
    path = path.split("?", 1)[0]
    for template, operations in doc["paths"].items():
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path) and method.lower() in operations:
            return operations[method.lower()]
    raise AssertionError(f"{method} {path} is not documented")


def conforms(doc: dict, method: str, path: str, response):
    """Asserts ``response``'s status is documented for the operation and its JSON body fits the schema."""
    operation = _operation(doc, method, path)
    status = str(response.status_code)
    assert status in operation["responses"], (
        f"{method} {path} answered {status}, documented: {sorted(operation['responses'])}: {response.get_data()!r}")
    content = operation["responses"][status].get("content", {}).get("application/json")
    if content is not None:
        _check(content["schema"], response.get_json(), f"{method} {path} {status}")
    for header in operation["responses"][status].get("headers", {}):
        assert header in response.headers, f"{method} {path} {status} lacks its documented {header} header"
    return response


@pytest.fixture(scope="module")
def doc():
    return openapi_document(BASE)


# -- the document and the routes --------------------------------------------------------------------------------
def test_every_route_is_documented_and_every_documented_route_exists(stack):
    served = stack.http.get("/v1/openapi.json")
    assert served.status_code == 200  # public: no token
    doc = served.get_json()
    assert doc["openapi"] == "3.1.0" and doc["servers"] == [{"url": BASE}]
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == _routes(stack.app)
    assert doc["components"]["schemas"] == SCHEMAS
    jsonschema.Draft202012Validator.check_schema({"$defs": SCHEMAS})


def test_components_have_readable_names(doc):
    assert all(re.fullmatch(r"[A-Z][A-Za-z0-9]*", name) for name in doc["components"]["schemas"]), \
        sorted(doc["components"]["schemas"])
    refs = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(doc)))
    assert refs <= set(doc["components"]["schemas"])


def test_every_operation_documents_the_statuses_it_can_answer(doc):
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            where, statuses = f"{method.upper()} {path}", set(operation["responses"])
            assert operation["summary"] and "<" not in operation["summary"], f"{where}: the view has no docstring"
            public = operation.get("security") == []
            assert "500" in statuses, where
            assert ("401" in statuses) is not public or path == "/oauth/token", where
            if "{" in path:
                assert "404" in statuses, where
                for parameter in operation["parameters"]:
                    if parameter["in"] == "path":
                        assert parameter["required"] and parameter["schema"]["minLength"] == 1, where
            if method == "post":
                assert "413" in statuses, where
            if method == "post" and path != "/oauth/token":
                assert {"409", "422"} <= statuses, where
                header = next(p for p in operation["parameters"] if p["name"] == "Idempotency-Key")
                assert header["in"] == "header" and header["required"] is False
            if "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", [])):
                assert "400" in statuses, where
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")):
                    assert response["content"]["application/json"]["schema"]["$ref"].endswith(
                        ("/Error", "/OAuthError")), (where, status)


def test_currency_is_the_iso_4217_enum_and_each_code_is_accepted(doc):
    currency = doc["components"]["schemas"]["Currency"]
    assert currency["type"] == "string" and currency["enum"] == sorted(known_currencies())
    assert "AAA" not in currency["enum"]
    from app.api.sessions import CreatePaymentSession

    for code in currency["enum"]:
        CreatePaymentSession.model_validate({"conversation_id": "c", "customer_account_id": "a", "amount": 1,
                                             "currency": code})


def test_idempotency_key_pattern_is_what_the_store_accepts(doc):
    header = next(p for p in _operation(doc, "POST", "/v1/payment-sessions")["parameters"]
                  if p["name"] == "Idempotency-Key")
    schema = header["schema"]
    assert (schema["minLength"], schema["maxLength"]) == (1, 255)
    pattern = re.compile(schema["pattern"])
    for code in range(0x100):  # a header value is ISO-8859-1 text (RFC 9110 §5.5)
        assert bool(pattern.fullmatch(chr(code))) is chr(code).isprintable(), hex(code)
    assert not pattern.fullmatch("order\t1") and pattern.fullmatch("order 1") and not pattern.fullmatch("x" * 256)


# -- examples --------------------------------------------------------------------------------------------------
def _request_bodies(doc):
    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            for media, content in operation.get("requestBody", {}).get("content", {}).items():
                yield method, path, media, content["schema"]


def _examples(doc, schema: dict) -> list:
    """A request body's documented examples (a body without properties has the implicit example ``{}``)."""
    component = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return component.get("examples") or ([{}] if not component.get("properties") else [])


def test_every_request_body_has_examples_that_fit_it(doc):
    schemas = doc["components"]["schemas"]
    bodies = list(_request_bodies(doc))
    assert len(bodies) >= 5
    for method, path, _media, schema in bodies:
        assert _examples(doc, schema), f"{method} {path}: no examples"
        for example in _examples(doc, schema):
            _validator(schema, schemas, strict=False).validate(example)


def test_the_server_accepts_every_documented_example(stack, doc):
    """Each example is sent as documented (with an Idempotency-Key, as a careful client does); the server
    never answers it with a 400."""
    tried = 0
    for method, path, media, schema in _request_bodies(doc):
        for n, example in enumerate(_examples(doc, schema)):
            url = path
            if "{session_id}" in path:
                url = path.replace("{session_id}", stack.create_session(channel="voice")["session_id"])
            if media == "application/json":
                r = stack.http.open(url, method=method.upper(), json=example,
                                    headers={**stack.auth(), "Idempotency-Key": f"example-{tried}-{n}"})
            else:  # the token endpoint's form, with the client's own credentials
                basic = base64.b64encode(f"{stack.client.client_id}:{stack.client.client_secret}".encode()).decode()
                r = stack.http.open(url, method=method.upper(), data=example,
                                    headers={"Authorization": f"Basic {basic}"})
            assert r.status_code != 400 and r.status_code < 500, (path, example, r.get_json())
            conforms(doc, method, url, r)
            tried += 1
    assert tried >= 9


# -- real answers ------------------------------------------------------------------------------------------------
def test_responses_match_their_schemas(stack, doc):
    from tests.functional.test_checkout_flow import pay

    def call(method, path, **kw):
        kw.setdefault("headers", stack.auth())
        return conforms(doc, method, path, stack.http.open(path, method=method, **kw))

    created = call("POST", "/v1/payment-sessions", json={"conversation_id": "c", "customer_account_id": "a",
                                                         "amount": 2500, "currency": "USD", "metadata": {"a": "b"}})
    sid = created.get_json()["session_id"]
    pay(stack, created.get_json()["checkout_url"], number="4000 0000 0000 0002")
    pay(stack, created.get_json()["checkout_url"])
    call("GET", f"/v1/payment-sessions/{sid}")
    events = call("GET", f"/v1/events?session_id={sid}").get_json()["data"]
    assert [e["type"] for e in events] == ["payment.declined", "payment.approved"]
    call("GET", "/v1/events")
    call("POST", f"/v1/events/{events[0]['id']}/redeliver")
    call("POST", f"/v1/payment-sessions/{sid}/cancel")  # 409 session_not_cancelable
    call("POST", "/v1/cards/inspect", json={"number": "424242"})
    voice = call("POST", "/v1/payment-sessions", json={"conversation_id": "c", "customer_account_id": "a",
                                                       "amount": 100, "currency": "JPY"}).get_json()["session_id"]
    invalid = call("POST", f"/v1/payment-sessions/{voice}/card", json={"number": "4242424242424241",
                                                                       "exp_month": "13", "exp_year": 30})
    assert invalid.get_json()["outcome"] == "invalid"
    call("POST", f"/v1/payment-sessions/{voice}/send-link", json={"to": "+15551234567", "messenger_type": "sms"})
    call("POST", f"/v1/payment-sessions/{voice}/cancel")
    # errors
    call("POST", "/v1/payment-sessions", json={"amount": "1"})
    call("POST", "/v1/payment-sessions", data="not json", headers={**stack.auth(), "Content-Type": "application/json"})
    call("GET", "/v1/payment-sessions/ps_nope")
    call("GET", "/v1/payment-sessions/ps_nope", headers={})
    call("POST", "/v1/events/evt_nope/redeliver")
    call("GET", "/v1/events?session_id=")
    call("POST", "/v1/cards/inspect", json={"number": "12ab"})
    call("POST", "/v1/cards/inspect", json={"number": "424242"}, headers={**stack.auth(), "Idempotency-Key": "a\tb"})
    call("POST", "/oauth/token", data={"grant_type": "password"}, headers={})
    call("POST", "/oauth/token", data={}, headers={"Authorization": "Basic " + "eDp5"})


def test_idempotent_answers_are_documented(stack, doc):
    body = {"conversation_id": "c", "customer_account_id": "a", "amount": 100, "currency": "USD"}
    headers = {**stack.auth(), "Idempotency-Key": "ñandú 1"}  # printable ISO-8859-1 is a valid key
    first = conforms(doc, "POST", "/v1/payment-sessions",
                     stack.http.post("/v1/payment-sessions", json=body, headers=headers))
    assert first.status_code == 201
    reused = conforms(doc, "POST", "/v1/payment-sessions",
                      stack.http.post("/v1/payment-sessions", json={**body, "amount": 101}, headers=headers))
    assert reused.status_code == 422
    stack.services.idempotency.reserve(stack.client.client_id, "busy", method="POST", path="/v1/cards/inspect",
                                       body=b'{"number": "424242"}')
    busy = stack.http.post("/v1/cards/inspect", data=b'{"number": "424242"}',
                           headers={**stack.auth(), "Idempotency-Key": "busy", "Content-Type": "application/json"})
    assert conforms(doc, "POST", "/v1/cards/inspect", busy).status_code == 409


def test_rate_limited_send_link_is_documented_with_retry_after(stack, doc):
    from integrations.genesys.settings import GenesysSettings, SecretBox
    from payments.clients import configure_genesys
    from payments.links import SEND_LINK_LIMIT

    with stack.services.Session.begin() as db:  # nothing listens there: the limit answers before any call
        configure_genesys(db, stack.client.client_id,
                          GenesysSettings(region="us_east_1", client_id="gc", client_secret="gc-secret",
                                          api_base="http://127.0.0.1:9", login_base="http://127.0.0.1:9",
                                          sms_from_address="+15550001111"),
                          SecretBox(stack.services.settings.secret_key), production=False)
    sid = stack.create_session()["session_id"]
    for _ in range(SEND_LINK_LIMIT):
        stack.services.link_sender._take_slot(sid)
    r = stack.http.post(f"/v1/payment-sessions/{sid}/send-link", json={"to": "+15551234567", "messenger_type": "sms"},
                        headers=stack.auth())
    assert conforms(doc, "POST", f"/v1/payment-sessions/{sid}/send-link", r).status_code == 429


def test_too_large_unknown_method_and_internal_error_keep_the_envelope(stack, doc, monkeypatch):
    big = json.dumps({"conversation_id": "c", "customer_account_id": "a", "amount": 1, "currency": "USD",
                      "metadata": {"k": "x" * (65 * 1024)}})
    r = stack.http.post("/v1/payment-sessions", data=big,
                        headers={**stack.auth(), "Content-Type": "application/json", "Idempotency-Key": "big-1"})
    assert r.status_code == 413 and r.get_json()["error"]["code"] == "request_too_large"
    conforms(doc, "POST", "/v1/payment-sessions", r)
    r = stack.http.delete("/v1/payment-sessions", headers=stack.auth())
    assert r.status_code == 405 and r.get_json()["error"]["code"] == "method_not_allowed"
    assert set(r.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}  # create and list
    _check({"$ref": "#/components/schemas/Error"}, r.get_json(), "405")
    r = stack.http.put("/v1/payment-sessions/ps_1", headers=stack.auth())
    assert r.status_code == 405 and "GET" in r.headers["Allow"]

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(stack.services.sessions, "get", broken)
    stack.app.config["PROPAGATE_EXCEPTIONS"] = False
    r = stack.http.get("/v1/payment-sessions/ps_1", headers=stack.auth())
    assert r.status_code == 500 and r.get_json()["error"]["code"] == "internal_error"
    conforms(doc, "GET", "/v1/payment-sessions/ps_1", r)


def test_a_response_that_drifts_from_its_model_fails_under_test(stack, monkeypatch):
    """The server checks its own answers against the declared models: a field nobody documented fails the
    test run (in production it is logged and sent)."""
    import app.api.sessions as sessions_api

    real = sessions_api.session_view
    monkeypatch.setattr(sessions_api, "session_view", lambda s: {**real(s), "undocumented": 1})
    sid = stack.create_session()["session_id"]
    with pytest.raises(AssertionError, match="does not match PaymentSession"):
        stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth())


def test_the_fuzzers_findings(stack, doc):
    """Requests that fit the document are accepted; what the server refuses the document excludes."""
    body = {"conversation_id": "c", "customer_account_id": "a", "amount": 1, "currency": "XXX"}
    schema = _operation(doc, "POST", "/v1/payment-sessions")["requestBody"]["content"]["application/json"]["schema"]
    validator = _validator(schema, doc["components"]["schemas"], strict=False)
    assert validator.is_valid(body)
    assert stack.http.post("/v1/payment-sessions", json=body, headers=stack.auth()).status_code == 201
    assert not validator.is_valid({**body, "currency": "AAA"})
    r = stack.http.post("/v1/payment-sessions", json={**body, "currency": "AAA"}, headers=stack.auth())
    assert r.status_code == 400 and r.get_json()["error"]["fields"] == {"currency": "invalid_currency"}
    assert not validator.is_valid({**body, "conversation_id": ""})
    r = stack.http.post("/v1/payment-sessions", json=body, headers={**stack.auth(), "Idempotency-Key": "tab\there"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_idempotency_key"
    assert r.get_json()["error"]["fields"] == {"Idempotency-Key": "invalid_format"}


def test_document_is_a_copy(doc):
    changed = openapi_document(BASE)
    changed["paths"].clear()
    assert openapi_document(BASE)["paths"] and copy.deepcopy(doc) == openapi_document(BASE)
