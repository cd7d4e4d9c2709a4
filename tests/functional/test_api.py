"""The REST API against a real database and Redis: auth, sessions, idempotency, cancel, expiry, events."""

from __future__ import annotations

import base64
import json

from callbacks.models import Delivery, Event


def test_token_endpoint_follows_rfc6749(stack):
    c = stack.client
    good = base64.b64encode(f"{c.client_id}:{c.client_secret}".encode()).decode()
    bad = base64.b64encode(f"{c.client_id}:nope".encode()).decode()
    r = stack.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers={"Authorization": f"Basic {good}"})
    assert r.status_code == 200
    body = r.get_json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3600 and body["access_token"]
    r = stack.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers={"Authorization": f"Basic {bad}"})
    assert r.status_code == 401 and r.get_json() == {"error": "invalid_client"}
    r = stack.http.post("/oauth/token", data={"grant_type": "password"},
                        headers={"Authorization": f"Basic {good}"})
    assert r.status_code == 400 and r.get_json() == {"error": "unsupported_grant_type"}


def test_v1_requires_a_valid_bearer_token(stack):
    for headers in ({}, {"Authorization": "Bearer pgat_forged"}, {"Authorization": "Basic abc"}):
        r = stack.http.get("/v1/payment-sessions/ps_x", headers=headers)
        assert r.status_code == 401
        err = r.get_json()["error"]
        assert err["code"] == "invalid_token" and err["request_id"].startswith("req_")


def test_expired_token_is_401(stack):
    stack.services.tokens.ttl_seconds = 0
    import time
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        r = stack.http.get("/v1/payment-sessions/ps_x", headers=stack.auth())
        if r.status_code == 401:
            break
    assert r.status_code == 401 and r.get_json()["error"]["code"] == "token_expired"


def test_create_and_get_session(stack):
    created = stack.create_session(metadata={"crm": "x1"}, locale="en-US", intent="topup")
    assert set(created) == {"session_id", "status", "checkout_url", "agent_url", "expires_at", "conversation_id", "intent",
                            "amount", "currency"}
    assert created["status"] == "pending" and created["session_id"].startswith("ps_")
    assert created["checkout_url"].startswith("http://127.0.0.1:8000/checkout/" + created["session_id"] + "?t=")
    assert created["expires_at"] == "2026-11-23T12:15:00Z"
    r = stack.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=stack.auth())
    view = r.get_json()
    assert r.status_code == 200
    assert view["status"] == "pending" and view["outcome"] is None and view["attempts"] == 0
    assert view["max_attempts"] == 3 and view["gateway"] == "sandbox" and view["metadata"] == {"crm": "x1"}
    assert view["intent"] == "topup" and view["card"] is None and view["token"] is None


def test_create_validation_errors_carry_field_codes(stack):
    r = stack.http.post("/v1/payment-sessions", headers=stack.auth(),
                        json={"amount": -5, "currency": "usd", "intent": "loan", "ttl_seconds": 10, "bogus": 1,
                              "callback_url": "ftp://x", "metadata": {"a": 1}})
    assert r.status_code == 400
    err = r.get_json()["error"]
    assert err["code"] == "validation_error"
    assert err["fields"] == {"conversation_id": "required", "customer_account_id": "required",
                             "amount": "invalid_amount", "currency": "invalid_currency", "intent": "invalid_choice",
                             "ttl_seconds": "out_of_range", "bogus": "unknown_field",
                             "callback_url": "invalid_url", "metadata": "invalid_metadata"}
    r = stack.http.post("/v1/payment-sessions", headers={**stack.auth(), "Content-Type": "application/json"},
                        data="not json")
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_json"


def test_zero_and_three_decimal_currencies(stack):
    jpy = stack.create_session(amount=2500, currency="JPY")
    kwd = stack.create_session(amount=2500, currency="KWD")
    assert jpy["amount"] == 2500 and kwd["currency"] == "KWD"
    page = stack.http.get(jpy["checkout_url"].replace("http://127.0.0.1:8000", ""))
    assert "¥2,500" in page.get_data(as_text=True)


def test_sessions_are_private_to_their_client(stack):
    created = stack.create_session()
    other = stack.new_client("other")
    token = stack.token_for(other)
    r = stack.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=stack.auth(token))
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "session_not_found"


def test_idempotency_replay_conflict_and_reuse(stack):
    body = {"conversation_id": "c", "customer_account_id": "a", "amount": 100, "currency": "USD"}
    headers = {**stack.auth(), "Idempotency-Key": "create-1"}
    first = stack.http.post("/v1/payment-sessions", json=body, headers=headers)
    again = stack.http.post("/v1/payment-sessions", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.get_json() == first.get_json()
    assert again.headers.get("Idempotent-Replayed") == "true"
    other_body = stack.http.post("/v1/payment-sessions", json={**body, "amount": 101}, headers=headers)
    assert other_body.status_code == 422
    assert other_body.get_json()["error"]["code"] == "idempotency_key_reused"
    # a second client's identical key is its own
    other = stack.new_client("other")
    r = stack.http.post("/v1/payment-sessions", json=body,
                        headers={**stack.auth(stack.token_for(other)), "Idempotency-Key": "create-1"})
    assert r.status_code == 201 and r.get_json()["session_id"] != first.get_json()["session_id"]


def test_idempotency_key_in_flight_is_409(stack):
    body = {"conversation_id": "c", "customer_account_id": "a", "amount": 100, "currency": "USD"}
    raw = json.dumps(body).encode()
    # a request under this key is running right now (reserved, not completed)
    stack.services.idempotency.reserve(stack.client.client_id, "busy-1", method="POST",
                                       path="/v1/payment-sessions", body=raw)
    r = stack.http.post("/v1/payment-sessions", data=raw,
                        headers={**stack.auth(), "Idempotency-Key": "busy-1", "Content-Type": "application/json"})
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "idempotency_key_in_use"


def test_validation_errors_are_replayed_too(stack):
    headers = {**stack.auth(), "Idempotency-Key": "bad-1"}
    a = stack.http.post("/v1/payment-sessions", json={"amount": 1}, headers=headers)
    b = stack.http.post("/v1/payment-sessions", json={"amount": 1}, headers=headers)
    assert a.status_code == b.status_code == 400 and b.headers.get("Idempotent-Replayed") == "true"


def _events(stack, session_id):
    r = stack.http.get(f"/v1/events?session_id={session_id}", headers=stack.auth())
    assert r.status_code == 200
    return r.get_json()["data"]


def test_cancel_emits_one_event_and_is_idempotent(stack):
    created = stack.create_session()
    sid = created["session_id"]
    r = stack.http.post(f"/v1/payment-sessions/{sid}/cancel", headers=stack.auth())
    assert r.status_code == 200 and r.get_json()["status"] == "canceled"
    r = stack.http.post(f"/v1/payment-sessions/{sid}/cancel", headers=stack.auth())
    assert r.status_code == 200 and r.get_json()["status"] == "canceled"
    events = _events(stack, sid)
    assert [e["type"] for e in events] == ["payment_session.canceled"]
    assert events[0]["sequence"] == 1 and events[0]["data"]["status"] == "canceled"
    assert events[0]["deliveries"][0]["status"] == "pending"
    # the link now shows the outcome, never the form
    page = stack.http.get(created["checkout_url"].replace("http://127.0.0.1:8000", ""))
    html = page.get_data(as_text=True)
    assert "canceled" in html.lower() and 'name="number"' not in html


def test_session_expires_without_being_opened(stack):
    created = stack.create_session(ttl_seconds=60)
    stack.clock.advance(61)
    assert stack.services.sessions.expire_due() == 1
    assert stack.services.sessions.expire_due() == 0
    view = stack.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=stack.auth()).get_json()
    assert view["status"] == "expired"
    assert [e["type"] for e in _events(stack, created["session_id"])] == ["payment_session.expired"]
    r = stack.http.post(f"/v1/payment-sessions/{created['session_id']}/cancel", headers=stack.auth())
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "session_not_cancelable"


def test_reading_an_overdue_session_expires_it(stack):
    created = stack.create_session(ttl_seconds=60)
    stack.clock.advance(120)
    view = stack.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=stack.auth()).get_json()
    assert view["status"] == "expired"


def test_redeliver_requeues_a_dead_event(stack):
    created = stack.create_session()
    stack.http.post(f"/v1/payment-sessions/{created['session_id']}/cancel", headers=stack.auth())
    event = _events(stack, created["session_id"])[0]
    with stack.services.Session.begin() as db:
        for d in db.query(Delivery).filter_by(event_id=event["id"]):
            d.status = "dead"
    r = stack.http.post(f"/v1/events/{event['id']}/redeliver", headers=stack.auth())
    assert r.status_code == 202 and r.get_json()["deliveries"][0]["status"] == "pending"
    r = stack.http.post("/v1/events/evt_nope/redeliver", headers=stack.auth())
    assert r.status_code == 404


def test_event_body_is_the_contract_envelope(stack):
    created = stack.create_session(metadata={"k": "v"})
    stack.http.post(f"/v1/payment-sessions/{created['session_id']}/cancel", headers=stack.auth())
    with stack.services.Session() as db:
        event = db.query(Event).filter_by(session_id=created["session_id"]).one()
    body = json.loads(event.body)
    assert list(body) == ["id", "type", "object", "created_at", "sequence", "data"]
    assert body["data"]["metadata"] == {"k": "v"} and body["data"]["session_id"] == created["session_id"]


def test_security_headers(stack):
    created = stack.create_session()
    page = stack.http.get(created["checkout_url"].replace("http://127.0.0.1:8000", ""))
    h = page.headers
    assert h["Cache-Control"] == "no-store" and h["Referrer-Policy"] == "no-referrer"
    assert h["X-Content-Type-Options"] == "nosniff"
    csp = h["Content-Security-Policy"]
    assert "frame-ancestors 'self' http://127.0.0.1:8010" in csp and "unsafe-inline" not in csp
    assert "script-src 'self'" in csp
    api = stack.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=stack.auth())
    assert api.headers["Cache-Control"] == "no-store"


def test_checkout_link_needs_its_signature(stack):
    created = stack.create_session()
    sid = created["session_id"]
    assert stack.http.get(f"/checkout/{sid}").status_code == 404
    assert stack.http.get(f"/checkout/{sid}?t=AAAAAAAAAAAAAAAAAAAAAA").status_code == 404
    ok = stack.http.get(created["checkout_url"].replace("http://127.0.0.1:8000", ""))
    assert ok.status_code == 200 and 'autocomplete="cc-number"' in ok.get_data(as_text=True)


def test_create_field_codes_come_from_the_declared_model(stack):
    base = {"conversation_id": "c", "customer_account_id": "a", "amount": 100, "currency": "USD"}
    cases = [
        ({"amount": True}, {"amount": "invalid_amount"}),  # strict JSON types: a boolean is not an integer
        ({"amount": 100.0}, {"amount": "invalid_amount"}),
        ({"amount": 10**12 + 1}, {"amount": "invalid_amount"}),
        ({"amount": None, "currency": None}, {"amount": "required", "currency": "required"}),
        ({"conversation_id": ""}, {"conversation_id": "required"}),
        ({"conversation_id": 5}, {"conversation_id": "must_be_string"}),
        ({"reference": "x" * 65, "participant_id": "p" * 201}, {"reference": "too_long", "participant_id": "too_long"}),
        ({"locale": "en_US"}, {"locale": "invalid_locale"}),
        ({"channel": "fax"}, {"channel": "invalid_choice"}),
        ({"metadata": {"k" * 41: "v"}}, {"metadata": "invalid_metadata"}),
        ({"ttl_seconds": 86401}, {"ttl_seconds": "out_of_range"}),
        ({"callback_url": "https://"}, {"callback_url": "invalid_url"}),
    ]
    for change, fields in cases:
        r = stack.http.post("/v1/payment-sessions", json={**base, **change}, headers=stack.auth())
        assert r.status_code == 400, change
        err = r.get_json()["error"]
        assert (err["code"], err["fields"]) == ("validation_error", fields), change
        assert "x" * 65 not in err["message"]  # messages name fields and codes, never values
    for body in ([base], "text", 3):
        r = stack.http.post("/v1/payment-sessions", json=body, headers=stack.auth())
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_json"


def test_create_takes_empty_and_null_optional_fields_as_absent(stack):
    created = stack.create_session(participant_id="", reference="", intent="", locale="", callback_url="",
                                   channel=None, ttl_seconds=None, metadata=None)
    view = stack.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=stack.auth()).get_json()
    assert (view["participant_id"], view["reference"], view["intent"], view["channel"], view["metadata"]) == (
        None, None, "payment", None, {})
    assert created["expires_at"] == "2026-11-23T12:15:00Z"


def test_events_query_is_validated(stack):
    r = stack.http.get("/v1/events?session_id=", headers=stack.auth())
    assert r.status_code == 400 and r.get_json()["error"]["fields"] == {"session_id": "too_short"}
    assert stack.http.get("/v1/events?session_id=ps_unknown", headers=stack.auth()).get_json() == {"data": []}


def test_undeclared_methods_are_405_with_allow(stack):
    r = stack.http.delete("/v1/events", headers=stack.auth())
    assert r.status_code == 405 and r.headers["Allow"] == "GET, HEAD, OPTIONS"
    assert r.get_json()["error"]["code"] == "method_not_allowed" and r.get_json()["error"]["request_id"]


def test_malformed_bodies_are_400_never_500(stack):
    headers = {**stack.auth(), "Content-Type": "application/json"}
    for body in ("[" * 30000 + "]" * 30000, '{"number": ' + "[" * 20000 + "]" * 20000 + "}", b"\xff\xfe{",
                 '{"number": NaN}', '{"number": "4242424242424242", "number": 1}'):
        r = stack.http.post("/v1/cards/inspect", data=body, headers=headers)
        assert r.status_code == 400 and r.get_json()["error"]["code"] in ("invalid_json", "validation_error"), body
    r = stack.http.get("/v1/events?session_id=a&session_id=b", headers=stack.auth())
    assert r.status_code == 400 and r.get_json()["error"]["fields"] == {"session_id": "must_be_string"}
