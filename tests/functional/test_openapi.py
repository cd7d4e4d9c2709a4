"""The OpenAPI document matches the implementation: same routes, and real responses fit its schemas."""

from __future__ import annotations

import re

from app.openapi import SCHEMAS


def _routes(app) -> set[tuple[str, str]]:
    out = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
        if not (path.startswith("/v1/") or path == "/oauth/token"):
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            out.add((method.lower(), path))
    return out


def _check(schema: dict, value, where: str):
    """A small JSON-Schema check: types, required keys, no undocumented keys, enums, $ref."""
    if "$ref" in schema:
        return _check(SCHEMAS[schema["$ref"].rsplit("/", 1)[-1]], value, where)
    if "oneOf" in schema:
        errors = []
        for option in schema["oneOf"]:
            try:
                return _check(option, value, where)
            except AssertionError as e:
                errors.append(str(e))
        raise AssertionError(f"{where}: no oneOf matched: {errors}")
    types = schema.get("type")
    types = [types] if isinstance(types, str) else (types or [])
    py = {"string": str, "integer": int, "number": (int, float), "object": dict, "array": list,
          "boolean": bool, "null": type(None)}
    if types:
        assert any(isinstance(value, py[t]) and not (t in ("integer", "number") and isinstance(value, bool))
                   for t in types), f"{where}: {value!r} is not {types}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if isinstance(value, dict) and "properties" in schema:
        for key in schema.get("required", []):
            assert key in value, f"{where}: missing {key}"
        for key, item in value.items():
            assert key in schema["properties"], f"{where}: undocumented field {key}"
            _check(schema["properties"][key], item, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            _check(schema["items"], item, f"{where}[{i}]")


def test_every_route_is_documented_and_every_documented_route_exists(stack):
    doc = stack.http.get("/v1/openapi.json").get_json()
    assert doc["openapi"].startswith("3.1")
    documented = {(m, p) for p, ops in doc["paths"].items() for m in ops}
    assert documented == _routes(stack.app)


def test_responses_match_their_schemas(stack):
    from tests.functional.test_checkout_flow import pay

    doc = stack.http.get("/v1/openapi.json").get_json()
    schemas = doc["components"]["schemas"]
    assert schemas == SCHEMAS
    created = stack.create_session(metadata={"a": "b"})
    _check(schemas["PaymentSessionCreated"], created, "created")
    pay(stack, created["checkout_url"], number="4000 0000 0000 0002")
    pay(stack, created["checkout_url"])
    view = stack.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=stack.auth()).get_json()
    _check(schemas["PaymentSession"], view, "view")
    events = stack.http.get(f"/v1/events?session_id={created['session_id']}", headers=stack.auth()).get_json()
    _check(schemas["EventList"], events, "events")
    assert len(events["data"]) == 2
    error = stack.http.post("/v1/payment-sessions", json={}, headers=stack.auth()).get_json()
    _check(schemas["Error"], error, "error")
    # the request schema names exactly the fields the service accepts
    from payments.sessions import _CREATE_FIELDS
    assert set(schemas["CreatePaymentSession"]["properties"]) == _CREATE_FIELDS
