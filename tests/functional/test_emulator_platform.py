"""The Genesys emulator's fake Platform API (OAuth, participant attributes, workflow executions, agentless
messages, 401/429 behaviour, failure injection, state and page), as the Genesys Platform API documentation
describe the real one. In-process Flask test client with an injected clock; one test uses a real
threaded server for concurrency."""

from __future__ import annotations

import base64
import itertools
import json
import threading

import httpx
import pytest
from werkzeug.serving import make_server

from integrations.genesys.emulator import create_app
from integrations.genesys.emulator.__main__ import build_app

NOW = 1_795_000_000.0
CLIENT_ID, CLIENT_SECRET = "gc-client", "gc-secret"


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def record(tmp_path):
    return tmp_path / "record.jsonl"


@pytest.fixture
def app(clock, record):
    counter = itertools.count(1)
    app = create_app(["whsec_x"], record_path=record, clock=clock, genesys_clients={CLIENT_ID: CLIENT_SECRET},
                     new_id=lambda: f"id-{next(counter)}")
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def http(app):
    return app.test_client()


def basic(client_id=CLIENT_ID, secret=CLIENT_SECRET) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def get_token(http, **kwargs) -> str:
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic(**kwargs))
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()["access_token"]


@pytest.fixture
def auth(http):
    return {"Authorization": "bearer " + get_token(http)}


@pytest.fixture
def conv(http):
    r = http.post("/api/genesys/conversations", json={"id": "conv-1", "participants": [
        {"id": "cust-1", "purpose": "customer", "name": "Ada", "attributes": {"existing": "yes"}},
        {"id": "agent-1", "purpose": "agent"}]})
    assert r.status_code == 201
    return r.get_json()


def attrs_url(conversation="conv-1", participant="cust-1", media=""):
    return f"/api/v2/conversations/{media}{conversation}/participants/{participant}/attributes"


def sms(**overrides) -> dict:
    body = {"fromAddress": "+13175550100", "toAddress": "+15551234567", "toAddressMessengerType": "sms",
            "textBody": "Pay securely: https://pay.example/checkout/ps_1?t=abc"}
    body.update(overrides)
    return body


# --- OAuth ---------------------------------------------------------------------------------------------
def test_token_is_issued_for_client_credentials(http):
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic())
    assert r.status_code == 200
    body = r.get_json()
    assert body["token_type"] == "bearer" and body["expires_in"] == 86399 and len(body["access_token"]) >= 32
    assert r.headers["Cache-Control"] == "no-store"
    assert get_token(http) != body["access_token"]  # a fresh token per request


@pytest.mark.parametrize("headers", [basic("nobody", CLIENT_SECRET), basic(CLIENT_ID, "wrong"), {}])
def test_bad_client_credentials_are_400_unauthorized_client(http, headers):
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=headers)
    assert r.status_code == 400 and r.get_json()["error"] == "unauthorized_client"


def test_other_grant_types_are_refused(http):
    r = http.post("/oauth/token", data={"grant_type": "password"}, headers=basic())
    assert r.status_code == 400 and r.get_json()["error"] == "unsupported_grant_type"


def test_clients_can_be_added_at_run_time(http):
    assert http.post("/oauth/token", data={"grant_type": "client_credentials"},
                     headers=basic("late", "s3")).status_code == 400
    assert http.post("/api/genesys/clients", json={"client_id": "late", "client_secret": "s3"}).status_code == 201
    assert get_token(http, client_id="late", secret="s3")
    assert http.post("/api/genesys/clients", json={"client_id": "x"}).get_json()["field"] == "client_secret"


def test_cli_flags_configure_clients_and_settings(tmp_path):
    app, _args = build_app(["--genesys-client", "a:one", "--genesys-client", "b:t:wo", "--token-ttl", "30",
                            "--rate-limit", "7", "--record", str(tmp_path / "r.jsonl")])
    http = app.test_client()
    token = get_token(http, client_id="b", secret="t:wo")  # secret may contain ':'
    assert token and get_token(http, client_id="a", secret="one")
    assert http.get("/api/genesys/settings").get_json() == {
        "token_ttl_seconds": 30, "rate_limit_per_minute": 7, "execution_seconds": 0.0}
    with pytest.raises(SystemExit):
        build_app(["--genesys-client", "no-secret"])


# --- 401 ---------------------------------------------------------------------------------------------------
def test_api_needs_a_bearer_token(http, conv):
    r = http.get("/api/v2/conversations/conv-1")
    assert r.status_code == 401
    assert r.get_json()["code"] == "authentication.required" and r.get_json()["status"] == 401
    assert r.headers["ININ-Correlation-Id"] == r.get_json()["contextId"]
    r = http.get("/api/v2/conversations/conv-1", headers={"Authorization": "bearer not-a-token"})
    assert r.status_code == 401 and r.get_json()["code"] == "bad.credentials"
    r = http.get("/api/v2/conversations/conv-1", headers=basic())
    assert r.status_code == 401


def test_bearer_scheme_is_case_insensitive(http, conv):
    token = get_token(http)
    for scheme in ("bearer", "Bearer", "BEARER"):
        assert http.get("/api/v2/conversations/conv-1",
                        headers={"Authorization": f"{scheme} {token}"}).status_code == 200


def test_token_expires_after_its_ttl(http, clock, conv):
    assert http.post("/api/genesys/settings", json={"token_ttl_seconds": 60}).status_code == 200
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"}, headers=basic())
    assert r.get_json()["expires_in"] == 60
    headers = {"Authorization": "bearer " + r.get_json()["access_token"]}
    clock.now += 59
    assert http.get("/api/v2/conversations/conv-1", headers=headers).status_code == 200
    clock.now += 1
    r = http.get("/api/v2/conversations/conv-1", headers=headers)
    assert r.status_code == 401 and r.get_json()["code"] == "bad.credentials"
    assert http.get("/api/v2/conversations/conv-1",
                    headers={"Authorization": "bearer " + get_token(http)}).status_code == 200


def test_expire_knob_invalidates_every_token_now(http, auth, conv):
    other = {"Authorization": "bearer " + get_token(http)}
    assert http.post("/api/genesys/tokens/expire").get_json() == {"expired": 2}
    assert http.get("/api/v2/conversations/conv-1", headers=auth).status_code == 401
    assert http.get("/api/v2/conversations/conv-1", headers=other).status_code == 401
    fresh = {"Authorization": "bearer " + get_token(http)}
    assert http.get("/api/v2/conversations/conv-1", headers=fresh).status_code == 200


# --- 429 ---------------------------------------------------------------------------------------------------
def test_rate_limit_per_token_answers_429_with_retry_after(http, clock, conv):
    assert http.post("/api/genesys/settings", json={"rate_limit_per_minute": 3}).get_json()[
        "rate_limit_per_minute"] == 3
    headers = {"Authorization": "bearer " + get_token(http)}
    for step in range(3):
        assert http.get("/api/v2/conversations/conv-1", headers=headers).status_code == 200
        clock.now += 10  # requests at t, t+10, t+20
    r = http.get("/api/v2/conversations/conv-1", headers=headers)  # at t+30: the first frees up at t+60
    assert r.status_code == 429 and r.headers["Retry-After"] == "30"
    body = r.get_json()
    assert body["message"] == "Rate limit exceeded the maximum. Retry the request in [30] seconds"
    assert body["code"] == "too.many.requests.retry.after" and body["status"] == 429
    assert body["details"] == [] and body["errors"] == [] and body["contextId"]
    other = {"Authorization": "bearer " + get_token(http)}  # the budget is per token
    assert http.get("/api/v2/conversations/conv-1", headers=other).status_code == 200
    clock.now += 29
    assert http.get("/api/v2/conversations/conv-1", headers=headers).headers["Retry-After"] == "1"
    clock.now += 1
    assert http.get("/api/v2/conversations/conv-1", headers=headers).status_code == 200
    assert http.get("/api/v2/conversations/conv-1", headers=headers).status_code == 429


def test_default_budget_is_300_per_minute(http, conv, auth):
    statuses = [http.get("/api/v2/conversations/conv-1", headers=auth).status_code for _ in range(301)]
    assert statuses[:300] == [200] * 300 and statuses[300] == 429


# --- conversations and attributes --------------------------------------------------------------------------
def test_get_conversation_lists_participants_with_attributes(http, auth, conv):
    r = http.get("/api/v2/conversations/conv-1", headers=auth)
    assert r.status_code == 200
    body = r.get_json()
    assert body["id"] == "conv-1" and body["selfUri"] == "/api/v2/conversations/conv-1"
    assert [(p["id"], p["purpose"], p["attributes"]) for p in body["participants"]] == [
        ("cust-1", "customer", {"existing": "yes"}), ("agent-1", "agent", {})]
    r = http.get("/api/v2/conversations/nope", headers=auth)
    assert r.status_code == 404 and r.get_json()["code"] == "not.found"


def test_default_conversation_has_customer_and_agent(http):
    r = http.post("/api/genesys/conversations", json={})
    assert r.status_code == 201
    body = r.get_json()
    assert [p["purpose"] for p in body["participants"]] == ["customer", "agent"]
    assert body["mediaType"] == "call" and all(p["id"] for p in body["participants"])
    assert http.post("/api/genesys/conversations", json={"participants": [{"purpose": "boss"}]}).status_code == 400
    assert http.post("/api/genesys/conversations", json={"media_type": "fax"}).status_code == 400


def test_attributes_patch_merges_string_values(http, auth, conv):
    r = http.patch(attrs_url(), json={"attributes": {"paymentStatus": "approved", "paymentCardLast4": "0005"}},
                   headers=auth)
    assert r.status_code == 202 and r.get_data() == b""
    r = http.patch(attrs_url(), json={"attributes": {"paymentStatus": "refunded"}}, headers=auth)
    assert r.status_code == 202
    customer = http.get("/api/v2/conversations/conv-1", headers=auth).get_json()["participants"][0]
    assert customer["attributes"] == {"existing": "yes", "paymentStatus": "refunded", "paymentCardLast4": "0005"}


@pytest.mark.parametrize("value", [25, 1.5, True, None, ["a"], {"x": "y"}])
def test_attributes_with_a_non_string_value_are_400_and_nothing_is_merged(http, auth, conv, value):
    r = http.patch(attrs_url(), json={"attributes": {"ok": "fine", "amount": value}}, headers=auth)
    assert r.status_code == 400
    body = r.get_json()
    assert body["code"] == "bad.request" and body["status"] == 400 and "amount" in body["message"]
    customer = http.get("/api/genesys/conversations/conv-1").get_json()["participants"][0]
    assert customer["attributes"] == {"existing": "yes"}


@pytest.mark.parametrize("payload", [{}, {"attributes": "x"}, ["attributes"]])
def test_attributes_body_must_hold_an_attributes_object(http, auth, conv, payload):
    assert http.patch(attrs_url(), json=payload, headers=auth).status_code == 400


def test_attributes_on_unknown_conversation_or_participant_are_404(http, auth, conv):
    r = http.patch(attrs_url(conversation="nope"), json={"attributes": {"a": "b"}}, headers=auth)
    assert r.status_code == 404 and r.get_json()["code"] == "not.found"
    r = http.patch(attrs_url(participant="nope"), json={"attributes": {"a": "b"}}, headers=auth)
    assert r.status_code == 404 and "Participant" in r.get_json()["message"]


def test_calls_and_messages_variants_return_the_attributes(http, auth, conv):
    r = http.patch(attrs_url(media="calls/"), json={"attributes": {"a": "1"}}, headers=auth)
    assert r.status_code == 200 and r.get_json() == {"attributes": {"existing": "yes", "a": "1"}}
    # conv-1 is a call: the messages variant does not find it
    assert http.patch(attrs_url(media="messages/"), json={"attributes": {"a": "1"}},
                      headers=auth).status_code == 404
    http.post("/api/genesys/conversations", json={"id": "chat-1", "media_type": "message",
                                                  "participants": [{"id": "c", "purpose": "customer"}]})
    r = http.patch(attrs_url("chat-1", "c", media="messages/"), json={"attributes": {"b": "2"}}, headers=auth)
    assert r.status_code == 200 and r.get_json() == {"attributes": {"b": "2"}}
    assert http.patch(attrs_url("chat-1", "c", media="calls/"), json={"attributes": {"b": 2}},
                      headers=auth).status_code == 400


# --- workflow executions -----------------------------------------------------------------------------------
def test_execution_is_recorded_and_completed(http, auth):
    payload = {"flowId": "wf-1", "name": "payment-result", "inputData": {
        "Flow.eventId": "evt_1", "Flow.conversationId": "conv-1", "Flow.amount": "2500"}}
    r = http.post("/api/v2/flows/executions", json=payload, headers=auth)
    assert r.status_code == 200
    launched = r.get_json()
    assert set(launched) == {"id", "name", "flowVersion", "selfUri"} and launched["name"] == "payment-result"
    assert launched["flowVersion"] == {"id": "1.0", "name": "1.0", "selfUri": "/api/v2/flows/wf-1/versions/1.0"}
    assert launched["selfUri"] == f"/api/v2/flows/executions/{launched['id']}"
    r = http.get(launched["selfUri"], headers=auth)
    assert r.status_code == 200
    status = r.get_json()
    assert status["status"] == "COMPLETED" and status["inputData"] == payload["inputData"]
    assert status["dateLaunched"] == "2026-11-18T11:06:40.000Z" and status["dateCompleted"]
    assert http.get("/api/v2/flows/executions/nope", headers=auth).status_code == 404


def test_execution_runs_then_completes(http, auth, clock):
    http.post("/api/genesys/settings", json={"execution_seconds": 5})
    r = http.post("/api/v2/flows/executions", json={"flowId": "wf-1", "flowVersion": "3.0",
                                                    "inputData": {"Flow.a": "b"}}, headers=auth)
    assert r.get_json()["flowVersion"]["id"] == "3.0"
    url = r.get_json()["selfUri"]
    assert http.get(url, headers=auth).get_json()["status"] == "RUNNING"
    clock.now += 5
    assert http.get(url, headers=auth).get_json()["status"] == "COMPLETED"


@pytest.mark.parametrize("payload, field", [
    ({"flowId": "wf", "inputData": {"Flow.ok": "1", "eventId": "evt_1"}}, "eventId"),
    ({"flowId": "wf", "inputData": {"flow.lower": "1"}}, "flow.lower"),
    ({"inputData": {"Flow.a": "1"}}, "flowId"),
    ({"flowId": "wf", "inputData": ["Flow.a"]}, "inputData"),
    ({"flowId": "wf", "name": 5}, "name"),
])
def test_execution_rejects_bad_requests(http, auth, payload, field):
    r = http.post("/api/v2/flows/executions", json=payload, headers=auth)
    assert r.status_code == 400
    assert r.get_json()["code"] == "bad.request" and r.get_json()["messageParams"]["field"] == field
    assert http.get("/api/genesys/executions").get_json() == []


# --- agentless messages ------------------------------------------------------------------------------------
def test_agentless_sms_is_sent_and_listed(http, auth):
    r = http.post("/api/v2/conversations/messages/agentless", json=sms(), headers=auth)
    assert r.status_code == 200
    body = r.get_json()
    assert body["messengerType"] == "sms" and body["toAddress"] == "+15551234567"
    assert body["fromAddress"] == "+13175550100" and body["textBody"] == sms()["textBody"]
    assert body["id"] and body["conversationId"] and body["timestamp"] == "2026-11-18T11:06:40.000Z"
    assert body["selfUri"] == f"/api/v2/conversations/messages/{body['conversationId']}/messages/{body['id']}"
    [listed] = http.get("/api/genesys/messages", query_string={"to": "+15551234567"}).get_json()
    assert listed["textBody"] == sms()["textBody"] and listed["client_id"] == CLIENT_ID
    assert http.get("/api/genesys/messages", query_string={"to": "+1999"}).get_json() == []
    got = http.get(body["selfUri"], headers=auth)
    assert got.status_code == 200 and got.get_json()["status"] == "delivery-success"


@pytest.mark.parametrize("overrides, field", [
    ({"toAddress": "15551234567"}, "toAddress"),          # no "+"
    ({"toAddress": "+0551234567"}, "toAddress"),          # country code cannot start with 0
    ({"toAddress": "+1234567890123456"}, "toAddress"),    # 16 digits
    ({"toAddress": "+1 555 123 4567"}, "toAddress"),
    ({"textBody": "x" * 766}, "textBody"),
    ({"textBody": None}, "textBody"),
    ({"toAddressMessengerType": "fax"}, "toAddressMessengerType"),
    ({"fromAddress": ""}, "fromAddress"),
])
def test_agentless_validation(http, auth, overrides, field):
    r = http.post("/api/v2/conversations/messages/agentless", json=sms(**overrides), headers=auth)
    assert r.status_code == 400 and r.get_json()["messageParams"]["field"] == field
    assert http.get("/api/genesys/messages").get_json() == []


def test_agentless_length_limits_per_messenger_type(http, auth):
    ok = http.post("/api/v2/conversations/messages/agentless", json=sms(textBody="x" * 765), headers=auth)
    assert ok.status_code == 200
    wa = sms(toAddressMessengerType="whatsapp", toAddress="15551234567")
    assert http.post("/api/v2/conversations/messages/agentless", json={**wa, "textBody": "y" * 2000},
                     headers=auth).status_code == 200
    assert http.post("/api/v2/conversations/messages/agentless", json={**wa, "textBody": "y" * 2001},
                     headers=auth).status_code == 400
    assert http.post("/api/v2/conversations/messages/agentless",
                     json=sms(toAddressMessengerType="open", toAddress="user-42", textBody="z" * 2000),
                     headers=auth).status_code == 200
    assert [m["messengerType"] for m in http.get("/api/genesys/messages").get_json()] == ["sms", "whatsapp", "open"]


# --- failure injection -------------------------------------------------------------------------------------
def test_fail_next_answers_the_status_then_recovers(http, auth, conv):
    assert http.post("/api/genesys/behaviour", json={"fail_next": 2, "status": 500}).get_json()["fail_next"] == 2
    assert http.patch(attrs_url(), json={"attributes": {"a": "1"}}, headers=auth).status_code == 500
    r = http.get("/api/v2/conversations/conv-1", headers=auth)
    assert r.status_code == 500 and r.get_json()["code"] == "internal.server.error"
    assert http.get("/api/genesys/conversations/conv-1").get_json()["participants"][0]["attributes"] == {
        "existing": "yes"}  # the failed PATCH changed nothing
    assert http.patch(attrs_url(), json={"attributes": {"a": "1"}}, headers=auth).status_code == 202


def test_injected_429_carries_retry_after_and_401_looks_like_a_bad_token(http, auth, conv):
    http.post("/api/genesys/behaviour", json={"fail_next": 1, "status": 429, "retry_after": 7})
    r = http.get("/api/v2/conversations/conv-1", headers=auth)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"
    assert r.get_json()["message"] == "Rate limit exceeded the maximum. Retry the request in [7] seconds"
    http.post("/api/genesys/behaviour", json={"fail_next": 1, "status": 401})
    r = http.get("/api/v2/conversations/conv-1", headers=auth)
    assert r.status_code == 401 and r.get_json()["code"] == "bad.credentials"
    assert http.get("/api/v2/conversations/conv-1", headers=auth).status_code == 200
    assert http.get("/oauth/token").status_code == 405  # the token endpoint is not an /api/v2 call


@pytest.mark.parametrize("payload, field", [({"fail_next": -1}, "fail_next"), ({"status": 200}, "status"),
                                            ({"status": 600}, "status"), ({"retry_after": "soon"}, "retry_after")])
def test_behaviour_rejects_bad_values(http, payload, field):
    r = http.post("/api/genesys/behaviour", json=payload)
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_settings_reject_bad_values(http):
    for payload in ({"token_ttl_seconds": 0}, {"rate_limit_per_minute": "300"}, {"execution_seconds": -1}):
        assert http.post("/api/genesys/settings", json=payload).status_code == 400


# --- state, record file, pages -----------------------------------------------------------------------------
def _write_everything(http, auth):
    http.patch(attrs_url(), json={"attributes": {"paymentStatus": "approved", "paymentCardLast4": "0005"}},
               headers=auth)
    http.post("/api/v2/flows/executions", json={"flowId": "wf-1", "name": "billing",
                                                "inputData": {"Flow.conversationId": "conv-1",
                                                              "Flow.eventId": "evt_42"}}, headers=auth)
    http.post("/api/v2/flows/executions", json={"flowId": "wf-2", "inputData": {"Flow.orphan": "o"}},
              headers=auth)
    http.post("/api/v2/conversations/messages/agentless", json=sms(), headers=auth)


def test_state_holds_everything_and_the_log_has_no_bodies(http, auth, conv):
    _write_everything(http, auth)
    http.patch(attrs_url(), json={"attributes": {"bad": 1}}, headers=auth)
    state = http.get("/api/genesys/state").get_json()
    assert state["clients"] == [CLIENT_ID] and CLIENT_SECRET not in json.dumps(state)
    assert state["conversations"][0]["participants"][0]["attributes"]["paymentStatus"] == "approved"
    assert [e["inputData"].get("Flow.eventId") for e in state["executions"]] == ["evt_42", None]
    assert state["executions"][0]["status"] == "COMPLETED"
    assert state["messages"][0]["textBody"] == sms()["textBody"]
    log = [(r["method"], r["path"].split("/")[-1], r["status"]) for r in state["requests"]]
    assert log == [("POST", "token", 200), ("PATCH", "attributes", 202), ("POST", "executions", 200),
                   ("POST", "executions", 200), ("POST", "agentless", 200), ("PATCH", "attributes", 400)]
    assert all(set(r) == {"at", "method", "path", "status", "client_id"} for r in state["requests"])
    assert "Pay securely" not in json.dumps(state["requests"])


def test_record_file_gets_every_write_back_body(http, auth, conv, record):
    _write_everything(http, auth)
    http.patch(attrs_url(), data="not json", headers={**auth, "Content-Type": "application/json"})
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(e["source"], e["method"], e["path"].split("/")[-1]) for e in entries] == [
        ("genesys_api", "PATCH", "attributes"), ("genesys_api", "POST", "executions"),
        ("genesys_api", "POST", "executions"), ("genesys_api", "POST", "agentless"),
        ("genesys_api", "PATCH", "attributes")]
    assert entries[0]["body"] == {"attributes": {"paymentStatus": "approved", "paymentCardLast4": "0005"}}
    assert entries[1]["body"]["inputData"]["Flow.eventId"] == "evt_42"
    assert entries[3]["body"]["textBody"] == sms()["textBody"]
    assert entries[4]["body"] == "not json"


def test_page_shows_attributes_executions_and_messages(http, auth, conv):
    _write_everything(http, auth)
    r = http.get("/genesys")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="2">' in html and "<script" not in html
    section = html[html.index('id="conversation-conv-1"'):html.index("Other workflow executions")]
    assert "paymentCardLast4" in section and "0005" in section and "Ada" in section
    assert "billing" in section and "evt_42" in section and "COMPLETED" in section
    assert "Flow.orphan" in html[html.index("Other workflow executions"):]
    assert "https://pay.example/checkout/ps_1?t=abc" in html and "+15551234567" in html
    assert "/api/v2/flows/executions" in html  # the request log
    assert 'href="/genesys"' in http.get("/").get_data(as_text=True)


def test_empty_page_and_reset(http, auth, conv):
    _write_everything(http, auth)
    assert http.post("/api/genesys/reset").status_code == 200
    state = http.get("/api/genesys/state").get_json()
    assert state["conversations"] == state["executions"] == state["messages"] == state["requests"] == []
    assert state["clients"] == [CLIENT_ID]
    assert http.get("/api/v2/conversations/conv-1", headers=auth).status_code == 401  # tokens forgotten
    assert "No conversations yet" in http.get("/genesys").get_data(as_text=True)


def test_unknown_api_path_is_a_genesys_404_and_other_paths_keep_html(http, auth):
    r = http.get("/api/v2/nothing/here", headers=auth)
    assert r.status_code == 404 and r.get_json()["code"] == "not.found"
    assert http.delete("/api/v2/flows/executions", headers=auth).get_json()["status"] == 405
    assert "text/html" in http.get("/nothing").content_type


# --- real threaded server ----------------------------------------------------------------------------------
def test_concurrent_writes_over_a_threaded_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with httpx.Client(base_url=base) as client:
            client.post("/api/genesys/conversations", json={"id": "conv-1", "participants": [
                {"id": "cust-1", "purpose": "customer"}]})
            token = client.post("/oauth/token", data={"grant_type": "client_credentials"},
                                auth=(CLIENT_ID, CLIENT_SECRET)).json()["access_token"]
        statuses: list[int] = []

        def writer(n: int) -> None:
            with httpx.Client(base_url=base, headers={"Authorization": f"bearer {token}"}) as client:
                for i in range(10):
                    statuses.append(client.patch(attrs_url(), json={"attributes": {f"k{n}_{i}": str(i)}}).status_code)

        workers = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(30)
        assert statuses == [202] * 60
        attributes = httpx.get(f"{base}/api/genesys/conversations/conv-1").json()["participants"][0]["attributes"]
        assert len(attributes) == 60
        assert len(httpx.get(f"{base}/api/genesys/state").json()["requests"]) == 61
    finally:
        server.shutdown()
        thread.join(10)


# --- secure flows: secureivrsessions and the flow played on the caller's DTMF ------------------------
AMEX, AMEX_CVC = "378282246310005", "7294"
VISA = "4242424242424242"
FLOW_CREDENTIALS = {"clientId": "cli_flow", "clientSecret": "flow-secret", "loginUrl": "http://paygate.test/oauth/token",
                    "baseUrl": "http://paygate.test"}


class FakePaygate:
    """A harness transport answering the custom auth and the two secure data actions the way paygate
    does (docs/api.md, "Voice"). ``submits`` are the answers to the card submissions in order (default:
    approved); ``fail`` maps a path suffix to an HTTP status. ``calls`` keeps ``(path, headers, body)``:
    the only place in these tests where keyed digits may legitimately go."""

    accepts_timeout = False

    def __init__(self, submits=(), fail=None):
        self.submits = list(submits)
        self.fail = dict(fail or {})
        self.calls: list[tuple[str, dict, dict | None]] = []

    @staticmethod
    def _answer(status, body):
        from integrations.genesys.harness import HttpResponse

        return HttpResponse(status, {"Content-Type": "application/json"}, json.dumps(body).encode())

    def request(self, method, url, *, headers, content):
        from urllib.parse import urlsplit

        path = urlsplit(url).path
        body = json.loads(content) if content and path != "/oauth/token" else None
        self.calls.append((path, dict(headers), body))
        for suffix, status in self.fail.items():
            if path.endswith(suffix):
                return self._answer(status, {"error": {"code": "unavailable", "message": "down", "request_id": "r"}})
        if path == "/oauth/token":
            return self._answer(200, {"access_token": "pg-token", "token_type": "Bearer", "expires_in": 3600})
        if path == "/v1/cards/inspect":
            amex = body["number"].startswith(("34", "37"))
            return self._answer(200, {"brand": "amex" if amex else "visa", "allowed": True,
                                      "pan_lengths": [15] if amex else [16], "cvc_length": 4 if amex else 3,
                                      "requires_expiry": True, "requires_cvc": True, "luhn_valid": True})
        number = body["number"]
        answer = {"outcome": "approved", "status": "approved", "token": "tok_1", "card_brand": "amex",
                  "card_last4": number[-4:], "decline_code": None, "message": "Payment approved.",
                  "field_errors": {}, "attempts_remaining": 2}
        if self.submits:
            answer.update(self.submits.pop(0))
        return self._answer(200, answer)


DECLINED = {"outcome": "declined", "status": "pending", "token": None, "decline_code": "generic_decline",
            "message": "Your card was declined."}


def publish_flow(http, **overrides):
    body = {"id": "flow-secure", "credentials": FLOW_CREDENTIALS, **overrides}
    r = http.post("/api/genesys/secure-flows", json=body)
    assert r.status_code == 201, r.get_data(as_text=True)
    return r.get_json()


FLOW_START = "2026-11-18T11:06:40.000Z"  # the secure session's dateCreated under the test clock (NOW)


def secure_url(conversation="conv-1", participant="cust-1", session=""):
    return f"/api/v2/conversations/{conversation}/participants/{participant}/secureivrsessions" + \
        (f"/{session}" if session else "")


def start_secure(http, auth, **overrides):
    body = {"flowId": "flow-secure", "userData": "ps_abc", "sourceParticipantId": "agent-1", "disconnect": False}
    body.update(overrides)
    r = http.post(secure_url(), json=body, headers=auth)
    assert r.status_code == 200, r.get_data(as_text=True)
    return r.get_json()


def keys(http, session_id, number=AMEX, cvc=AMEX_CVC, month="12", year="30", **extra):
    return http.post(f"/api/genesys/secure-sessions/{session_id}/keys",
                     json={"card_number": number, "exp_month": month, "exp_year": year, "cvc": cvc, **extra})


@pytest.fixture
def paygate(app):
    fake = FakePaygate()
    app.extensions["genesys_data_action_transport"] = fake
    return fake


def assert_no_card_digits(text: str, number: str = AMEX, cvc: str = AMEX_CVC) -> None:
    assert number not in text and number[:6] not in text and f'"{cvc}"' not in text
    assert not any(number[i:i + 5] in text for i in range(len(number) - 4 - 1))  # every window but the last four's


def test_secure_session_is_created_pending_and_read_back(http, auth, conv, record, paygate):
    published = publish_flow(http)
    assert published == {"id": "flow-secure", "name": "paygate Secure Card Entry", "credentials": {
        "clientId": "cli_flow", "loginUrl": FLOW_CREDENTIALS["loginUrl"], "baseUrl": FLOW_CREDENTIALS["baseUrl"]}}
    created = start_secure(http, auth)
    assert created == {"id": created["id"], "state": "PENDING",
                       "flow": {"id": "flow-secure", "name": "paygate Secure Card Entry",
                                "selfUri": "/api/v2/flows/flow-secure"},
                       "userData": "ps_abc", "sourceParticipantId": "agent-1", "disconnect": False,
                       "selfUri": secure_url(session=created["id"])}
    assert list(created) == ["id", "flow", "userData", "state", "sourceParticipantId", "disconnect", "selfUri"]
    assert http.get(created["selfUri"], headers=auth).get_json() == created
    assert http.get(secure_url(), headers=auth).get_json() == {"entities": [created]}
    assert http.get(secure_url(participant="agent-1"), headers=auth).get_json() == {"entities": []}
    knob = http.get(f"/api/genesys/secure-sessions/{created['id']}").get_json()
    assert [s["kind"] for s in knob["steps"]] == ["transfer", "update_data", "prompt"]
    assert knob["steps"][0]["at"] == "2026-11-18T11:06:40.000Z" and knob["attempt"] == 0
    assert paygate.calls == []  # nothing runs before the caller keys
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert entries[-1]["path"] == secure_url() and entries[-1]["body"]["userData"] == "ps_abc"


@pytest.mark.parametrize("body, status, field", [
    ({"userData": "ps_abc", "sourceParticipantId": "agent-1"}, 400, "flowId"),
    ({"flowId": "nope", "sourceParticipantId": "agent-1"}, 400, "flowId"),
    ({"flowId": "flow-secure", "sourceParticipantId": "someone-else"}, 400, "sourceParticipantId"),
    ({"flowId": "flow-secure"}, 400, "sourceParticipantId"),
    ({"flowId": "flow-secure", "sourceParticipantId": "agent-1", "userData": 7}, 400, "userData"),
    ({"flowId": "flow-secure", "sourceParticipantId": "agent-1", "disconnect": "no"}, 400, "disconnect"),
])
def test_secure_session_requests_are_validated(http, auth, conv, body, status, field):
    publish_flow(http)
    r = http.post(secure_url(), json=body, headers=auth)
    assert r.status_code == status and r.get_json()["messageParams"]["field"] == field


def test_secure_sessions_need_a_token_and_known_ids(http, auth, conv):
    publish_flow(http)
    body = {"flowId": "flow-secure", "sourceParticipantId": "agent-1"}
    assert http.post(secure_url(), json=body).status_code == 401
    assert http.post(secure_url(conversation="nope"), json=body, headers=auth).status_code == 404
    assert http.post(secure_url(participant="nope"), json=body, headers=auth).status_code == 404
    assert http.get(secure_url(conversation="nope"), headers=auth).status_code == 404
    assert http.get(secure_url(session="nope"), headers=auth).get_json()["code"] == "not.found"
    created = start_secure(http, auth)
    assert http.get(secure_url(participant="agent-1", session=created["id"]), headers=auth).status_code == 404


def test_amex_is_asked_four_cvc_digits_and_the_result_goes_back_to_the_agent(http, auth, conv, record, paygate):
    publish_flow(http)
    created = start_secure(http, auth)
    r = keys(http, created["id"])
    assert r.status_code == 200, r.get_data(as_text=True)
    done = r.get_json()
    assert done["state"] == "COMPLETED" and done["attempt"] == 1
    steps = done["steps"]
    inspect = next(s for s in steps if s["name"] == "paygate - Inspect Card")
    assert inspect["success"] and inspect["output"]["brand"] == "amex" and inspect["output"]["cvcLength"] == 4
    cvc_step = next(s for s in steps if s["kind"] == "collect_input" and s["name"] == "Security code")
    assert cvc_step == {"at": cvc_step["at"], "kind": "collect_input", "name": "Security code",
                        "variable": "Task.cvc", "secure": True, "digits": 4, "result": "success"}
    prompts = [s["text"] for s in steps if s["kind"] == "prompt"]
    assert "Enter the four digit security code printed on the front of the card." in prompts
    assert "You entered a amex card ending 0005. Press 1 if that is right, 2 to enter it again." in prompts
    assert prompts[-1] == "Thank you. The payment on your card ending 0005 is approved."
    assert [s["kind"] for s in steps[-2:]] == ["set_participant_data", "return_to_agent"]

    # paygate got the digits through the shipped secure actions, custom auth first
    assert [c[0] for c in paygate.calls] == ["/oauth/token", "/v1/cards/inspect", "/v1/payment-sessions/ps_abc/card"]
    assert paygate.calls[1][2] == {"number": AMEX}
    assert paygate.calls[2][2] == {"number": AMEX, "exp_month": "12", "exp_year": "30", "cvc": AMEX_CVC}
    assert paygate.calls[2][1]["Idempotency-Key"] == f"ps_abc:card:{FLOW_START}:1"
    assert paygate.calls[2][1]["Authorization"] == "Bearer pg-token"

    conversation = http.get("/api/v2/conversations/conv-1", headers=auth).get_json()
    customer, agent = conversation["participants"]
    assert customer["attributes"] == {"existing": "yes"}
    assert agent["attributes"] == {"paymentSessionId": "ps_abc", "paymentOutcome": "approved",
                                   "paymentStatus": "approved", "paymentToken": "tok_1", "paymentCardLast4": "0005"}
    assert http.get(created["selfUri"], headers=auth).get_json()["state"] == "COMPLETED"
    # secure variables: no digits in the state, the page, the request log or the record file
    for text in (json.dumps(http.get("/api/genesys/state").get_json()), http.get("/genesys").get_data(as_text=True),
                 record.read_text()):
        assert_no_card_digits(text)
    assert "flow-secret" not in json.dumps(http.get("/api/genesys/state").get_json())
    assert json.loads(record.read_text().splitlines()[-1])["source"] == "secure_flow"
    assert keys(http, created["id"]).get_json() == {"error": "not_pending", "state": "COMPLETED"}


def test_visa_gets_three_cvc_digits_and_a_wrong_length_asks_again(http, auth, conv, paygate):
    publish_flow(http)
    sid = start_secure(http, auth)["id"]
    again = keys(http, sid, number=VISA, cvc="1234").get_json()
    assert again["state"] == "PENDING" and again["attempt"] == 1
    assert [s["result"] for s in again["steps"] if s["kind"] == "collect_input" and s["name"] == "Security code"] \
        == ["no_match"]
    assert "Enter the three digit security code on the back of the card." in [s.get("text") for s in again["steps"]]
    assert [c[0] for c in paygate.calls] == ["/oauth/token", "/v1/cards/inspect"]  # no submission
    done = keys(http, sid, number=VISA, cvc="123").get_json()
    assert done["state"] == "COMPLETED" and done["attempt"] == 2 and done["variables"]["cardLast4"] == "4242"
    assert paygate.calls[-1][1]["Idempotency-Key"] == f"ps_abc:card:{FLOW_START}:2"


def test_declines_loop_until_the_flow_runs_out_of_attempts(http, auth, conv, paygate):
    paygate.submits = [DECLINED, DECLINED, DECLINED]
    publish_flow(http)
    sid = start_secure(http, auth)["id"]
    first = keys(http, sid).get_json()
    assert first["state"] == "PENDING"
    assert [s["text"] for s in first["steps"] if s["kind"] == "prompt"][-2:] == [
        "Your card was declined.", "Please key in your card number, then press hash."]
    assert keys(http, sid).get_json()["state"] == "PENDING"
    last = keys(http, sid).get_json()
    assert last["state"] == "COMPLETED" and last["attempt"] == 3
    assert [s["kind"] for s in last["steps"][-3:]] == ["exit_loop", "set_participant_data", "return_to_agent"]
    agent = http.get("/api/genesys/conversations/conv-1").get_json()["participants"][1]
    assert (agent["attributes"]["paymentOutcome"], agent["attributes"]["paymentToken"]) == ("declined", "")
    assert [c[1]["Idempotency-Key"] for c in paygate.calls if c[0].endswith("/card")] == [
        f"ps_abc:card:{FLOW_START}:{n}" for n in (1, 2, 3)]


def play_once(app, http, auth, fake: FakePaygate) -> dict:
    """Publishes the flow, starts a secure session and keys the amex once with ``fake`` as paygate."""
    app.extensions["genesys_data_action_transport"] = fake
    publish_flow(http)
    return keys(http, start_secure(http, auth)["id"]).get_json()


def test_inspect_failure_returns_to_the_agent_without_data(http, auth, conv, app):
    done = play_once(app, http, auth, FakePaygate(fail={"/v1/cards/inspect": 503}))
    assert done["state"] == "FAILED"
    failure = next(s for s in done["steps"] if s["kind"] == "call_secure_data")
    assert failure == {"at": failure["at"], "kind": "call_secure_data", "name": "paygate - Inspect Card",
                       "success": False, "status": 503, "errorCode": "ACTION.REMOTE_ENDPOINT"}
    assert done["steps"][-1]["kind"] == "return_to_agent"
    assert http.get("/api/genesys/conversations/conv-1").get_json()["participants"][1]["attributes"] == {}


def test_submit_failure_hands_back_unavailable(http, auth, conv, app):
    done = play_once(app, http, auth, FakePaygate(fail={"/card": 500}))
    assert done["state"] == "FAILED"
    agent = http.get("/api/genesys/conversations/conv-1").get_json()["participants"][1]
    assert agent["attributes"]["paymentStatus"] == "unavailable" and agent["attributes"]["paymentOutcome"] == ""
    assert_no_card_digits(json.dumps(done))


def test_auth_failure_and_unreachable_paygate_fail_the_session(http, auth, conv, app):
    done = play_once(app, http, auth, FakePaygate(fail={"/oauth/token": 401}))
    failure = next(s for s in done["steps"] if s["kind"] == "call_secure_data")
    assert done["state"] == "FAILED" and failure["errorCode"] == "ACTION.AUTHENTICATION"
    # the real HTTP transport against a closed port
    del app.extensions["genesys_data_action_transport"]
    publish_flow(http, credentials={**FLOW_CREDENTIALS, "loginUrl": "http://127.0.0.1:9/oauth/token",
                                    "baseUrl": "http://127.0.0.1:9"})
    done = keys(http, start_secure(http, auth)["id"]).get_json()
    assert done["state"] == "FAILED"
    assert next(s for s in done["steps"] if s["kind"] == "call_secure_data")["errorCode"] == "ACTION.AUTHENTICATION"


def test_short_card_number_takes_the_collect_failure_path(http, auth, conv, paygate):
    publish_flow(http)
    done = keys(http, start_secure(http, auth, disconnect=True)["id"], number="42424242").get_json()
    assert done["state"] == "COMPLETED" and paygate.calls == []
    assert [s["kind"] for s in done["steps"][-2:]] == ["collect_input", "return_to_agent"]


def test_disconnect_ends_without_returning_and_a_no_confirms_asks_again(http, auth, conv, paygate):
    publish_flow(http)
    sid = start_secure(http, auth, disconnect=True)["id"]
    again = keys(http, sid, confirm="2").get_json()
    assert again["state"] == "PENDING"
    assert next(s for s in again["steps"] if s["name"] == "Confirm")["value"] == "2"
    done = keys(http, sid).get_json()
    assert done["state"] == "COMPLETED" and done["steps"][-1]["kind"] == "disconnect"


@pytest.mark.parametrize("body, field", [
    ({"card_number": "3782 8224", "exp_month": "12", "exp_year": "30", "cvc": "7294"}, "card_number"),
    ({"card_number": AMEX, "exp_month": 12, "exp_year": "30", "cvc": "7294"}, "exp_month"),
    ({"card_number": AMEX, "exp_month": "12", "exp_year": "30"}, "cvc"),
    ({"card_number": AMEX, "exp_month": "12", "exp_year": "30", "cvc": "7294", "confirm": "yes"}, "confirm"),
])
def test_keys_must_be_digits(http, auth, conv, paygate, body, field):
    publish_flow(http)
    r = http.post(f"/api/genesys/secure-sessions/{start_secure(http, auth)['id']}/keys", json=body)
    assert r.status_code == 400 and r.get_json() == {"error": "invalid_value", "field": field}
    assert "7294" not in r.get_data(as_text=True)
    assert keys(http, "nope").status_code == 404


@pytest.mark.parametrize("credentials, field", [
    ({k: v for k, v in FLOW_CREDENTIALS.items() if k != "clientSecret"}, "credentials.clientSecret"),
    ({**FLOW_CREDENTIALS, "baseUrl": "paygate.test"}, "credentials.baseUrl"),
    (None, "credentials"),
])
def test_secure_flow_publication_is_validated(http, credentials, field):
    r = http.post("/api/genesys/secure-flows", json={"credentials": credentials})
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_page_shows_secure_sessions_and_reset_keeps_flows(http, auth, conv, paygate):
    publish_flow(http)
    sid = start_secure(http, auth)["id"]
    keys(http, sid)
    html = http.get("/genesys").get_data(as_text=True)
    section = html[html.index(f'id="secure-session-{sid}"'):]
    assert "COMPLETED" in section and "paygate - Inspect Card" in section and "Task.cvc" in section
    assert "ending 0005" in section and "paymentCardLast4" in section
    assert_no_card_digits(html)
    assert [s["id"] for s in http.get("/api/genesys/secure-sessions?conversation_id=conv-1").get_json()] == [sid]
    http.post("/api/genesys/reset")
    state = http.get("/api/genesys/state").get_json()
    assert state["secure_sessions"] == [] and [f["id"] for f in state["secure_flows"]] == ["flow-secure"]


def emulator_for(stack, clock, **create_kwargs):
    """An emulator whose data actions call ``stack``'s app, with conv-1 (customer cust-1, agent agent-1),
    the secure flow published with the stack client's credential, a voice session for cust-1 and a
    Genesys token. Returns ``(http, auth, session)``."""
    from integrations.genesys.harness import FlaskTransport

    emulator = create_app(clock=clock, genesys_clients={CLIENT_ID: CLIENT_SECRET}, **create_kwargs)
    emulator.extensions["genesys_data_action_transport"] = FlaskTransport(stack.http)
    http = emulator.test_client()
    session = stack.create_session(conversation_id="conv-1", participant_id="cust-1", channel="voice")
    http.post("/api/genesys/conversations", json={"id": "conv-1", "participants": [
        {"id": "cust-1", "purpose": "customer"}, {"id": "agent-1", "purpose": "agent"}]})
    base = "http://127.0.0.1:8000"
    publish_flow(http, credentials={"clientId": stack.client.client_id, "clientSecret": stack.client.client_secret,
                                    "loginUrl": f"{base}/oauth/token", "baseUrl": base})
    return http, {"Authorization": "bearer " + get_token(http)}, session


def test_secure_flow_against_the_real_app(stack, state_dir):
    """The emulator plays the flow with the shipped data actions against paygate itself: the voice
    session is approved as amex 0005 and neither the emulator's record nor its state holds a digit more."""
    folder = state_dir / "emulator-secure-flow"
    folder.mkdir(exist_ok=True)
    record = folder / f"record-{stack.client.client_id}.jsonl"
    counter = itertools.count(1)
    http, auth, session = emulator_for(stack, Clock(NOW), record_path=record, new_id=lambda: f"id-{next(counter)}")
    created = start_secure(http, auth, userData=session["session_id"])
    done = keys(http, created["id"]).get_json()
    assert done["state"] == "COMPLETED", done["steps"]
    assert done["variables"]["outcome"] == "approved" and done["variables"]["cardBrand"] == "amex"
    view = stack.http.get(f"/v1/payment-sessions/{session['session_id']}", headers=stack.auth()).get_json()
    assert (view["status"], view["card"]["brand"], view["card"]["last4"], view["channel"]) == \
        ("approved", "amex", "0005", "voice")
    agent = http.get("/api/genesys/conversations/conv-1").get_json()["participants"][1]["attributes"]
    assert agent["paymentToken"] == view["token"] and agent["paymentStatus"] == "approved"
    state = json.dumps(http.get("/api/genesys/state").get_json())
    (folder / f"state-{stack.client.client_id}.json").write_text(state)
    for text in (state, record.read_text()):
        assert_no_card_digits(text)


def test_a_second_secure_flow_run_for_the_same_session_is_not_a_replay(stack):
    """The agent starts the secure flow again after a decline: the new run's first submission must reach
    paygate as a new attempt (its idempotency key carries the flow's start), not replay the old decline
    or collide with it as idempotency_key_reused."""
    clock = Clock(NOW)
    http, auth, session = emulator_for(stack, clock)
    first = start_secure(http, auth, userData=session["session_id"])
    declined = keys(http, first["id"], number="4000000000000002", cvc="123").get_json()
    assert declined["variables"]["outcome"] == "declined"
    clock.now += 90
    second = start_secure(http, auth, userData=session["session_id"])  # the agent starts it again
    done = keys(http, second["id"], number=VISA, cvc="123").get_json()
    assert done["variables"]["outcome"] == "approved", done["steps"]
    view = stack.http.get(f"/v1/payment-sessions/{session['session_id']}", headers=stack.auth()).get_json()
    assert (view["status"], view["attempts"], view["card"]["last4"]) == ("approved", 2, "4242")


# --- Task Management workitems (https://developer.genesys.cloud/commdigital/taskmanagement/) ---------------
WORKTYPE = "5fc8affb-1d63-4ca8-8de3-21b6b80c9ca9"
OTHER_TYPE = "0f8fad5b-d9cb-469f-a165-70867728950e"
WI = "/api/v2/taskmanagement/workitems"


def by_tag(tag: str, type_id: str = WORKTYPE, **extra) -> dict:
    return {"filters": [{"name": "typeId", "type": "String", "operator": "EQ", "values": [type_id]},
                        {"name": "externalTag", "type": "String", "operator": "EQ", "values": [tag]}], **extra}


def test_workitem_is_created_read_and_found_by_external_tag(http, auth, clock):
    r = http.post(WI, json={"name": "Refund review re_1", "typeId": WORKTYPE, "description": "Refund re_1 failed.",
                            "externalTag": "re_1"}, headers=auth)
    assert r.status_code == 201
    created = r.get_json()
    assert created["id"] and created["selfUri"] == f"{WI}/{created['id']}"
    assert (created["name"], created["type"]["id"], created["externalTag"], created["statusCategory"]) == (
        "Refund review re_1", WORKTYPE, "re_1", "Open")
    assert created["description"] == "Refund re_1 failed." and created["customFields"] == {}
    assert created["dateCreated"].endswith("Z") and "client_id" not in created
    assert http.get(f"{WI}/{created['id']}", headers=auth).get_json() == created
    r = http.get(f"{WI}/nope", headers=auth)
    assert r.status_code == 404 and r.get_json()["code"] == "not.found"

    http.post(WI, json={"name": "Refund review re_2", "typeId": WORKTYPE, "externalTag": "re_2"}, headers=auth)
    http.post(WI, json={"name": "Other type, same tag", "typeId": OTHER_TYPE, "externalTag": "re_1"}, headers=auth)
    r = http.post(f"{WI}/query", json=by_tag("re_1"), headers=auth)
    assert r.status_code == 200
    body = r.get_json()
    assert [w["id"] for w in body["entities"]] == [created["id"]] and body["count"] == 1 and "after" not in body
    assert http.post(f"{WI}/query", json=by_tag("re_404"), headers=auth).get_json() == {"entities": [], "count": 0}
    listed = http.post(f"{WI}/query", json={"filters": [
        {"name": "typeId", "type": "String", "operator": "EQ", "values": [WORKTYPE]},
        {"name": "externalTag", "type": "String", "operator": "BEGINS_WITH", "values": ["re_"]}], "pageSize": 1},
        headers=auth).get_json()
    assert [w["externalTag"] for w in listed["entities"]] == ["re_1"] and listed["after"] == "1"
    more = http.post(f"{WI}/query", json={"filters": [
        {"name": "typeId", "type": "string", "operator": "EQ", "values": [WORKTYPE]}], "pageSize": 1,
        "after": listed["after"]}, headers=auth).get_json()
    assert [w["externalTag"] for w in more["entities"]] == ["re_2"] and "after" not in more
    assert http.post(f"{WI}/query", json=by_tag("re_1"), headers={}).status_code == 401


@pytest.mark.parametrize("body, status, code", [
    ({"typeId": WORKTYPE}, 400, "invalid.input.missing.required.field"),
    ({"name": "Refund review"}, 400, "invalid.input.missing.required.field"),
    ({"name": "ab", "typeId": WORKTYPE}, 400, "invalid.input.string.value.too.short"),
    ({"name": "x" * 257, "typeId": WORKTYPE}, 400, "invalid.input.string.value.too.long"),
    ({"name": 42, "typeId": WORKTYPE}, 400, "invalid.input.string.value.too.short"),
    ({"name": "Refund review", "typeId": "refunds"}, 400, "invalid.input.invalid.uuid"),
    ({"name": "Refund review", "typeId": WORKTYPE, "description": "d" * 513}, 400,
     "invalid.input.string.value.too.long"),
    ({"name": "Refund review", "typeId": WORKTYPE, "externalTag": 7}, 400, "bad.request"),
    ({"name": "Refund review", "typeId": WORKTYPE, "priority": 25_000_001}, 400, "bad.request"),
])
def test_workitem_create_is_validated_like_genesys(http, auth, body, status, code):
    r = http.post(WI, json=body, headers=auth)
    assert (r.status_code, r.get_json()["code"]) == (status, code)
    assert http.get("/api/genesys/workitems").get_json() == []


def test_name_limits_are_inclusive(http, auth):
    for name in ("abc", "x" * 256):
        assert http.post(WI, json={"name": name, "typeId": WORKTYPE}, headers=auth).status_code == 201


@pytest.mark.parametrize("query", [
    {},
    {"filters": []},
    {"filters": [{"name": "externalTag", "type": "String", "operator": "EQ", "values": ["re_1"]}]},  # not indexed
    {"filters": [{"name": "typeId", "type": "String", "operator": "IN", "values": [WORKTYPE, OTHER_TYPE]}]},
    {"filters": [{"name": "typeId", "type": "String", "operator": "EQ", "values": [WORKTYPE]}] * 4},
    {"filters": [{"name": "colour", "type": "String", "operator": "EQ", "values": ["x"]}]},
    {"filters": [{"name": "typeId", "type": "Bool", "operator": "EQ", "values": [WORKTYPE]}]},
    {"filters": [{"name": "typeId", "type": "String", "operator": "LIKE", "values": [WORKTYPE]}]},
    {"filters": [{"name": "typeId", "type": "String", "operator": "EQ", "values": []}]},
    {"filters": [{"name": "typeId", "type": "String", "operator": "EQ", "values": [WORKTYPE]}], "pageSize": 201},
    {"filters": [{"name": "typeId", "type": "String", "operator": "EQ", "values": [WORKTYPE]}], "after": "x"},
])
def test_workitem_queries_are_validated_like_genesys(http, auth, query):
    r = http.post(f"{WI}/query", json=query, headers=auth)
    assert r.status_code == 400 and r.get_json()["code"] == "bad.request"


def test_registered_worktypes_are_enforced(http, auth):
    assert http.post("/api/genesys/worktypes", json={"id": "not-a-uuid", "name": "x"}).get_json()["field"] == "id"
    assert http.post("/api/genesys/worktypes", json={"id": WORKTYPE}).get_json()["field"] == "name"
    assert http.post("/api/genesys/worktypes", json={"name": "x", "custom_fields": "a"}).status_code == 400
    assert http.post(WI, json={"name": "Before any worktype", "typeId": OTHER_TYPE}, headers=auth).status_code == 201
    r = http.post("/api/genesys/worktypes", json={"id": WORKTYPE, "name": "Refund review"})
    assert r.status_code == 201 and r.get_json() == {"id": WORKTYPE, "name": "Refund review", "customFields": None}
    schema_type = http.post("/api/genesys/worktypes", json={"name": "With schema",
                                                             "custom_fields": ["amount_integer"]}).get_json()
    assert [t["name"] for t in http.get("/api/genesys/worktypes").get_json()] == ["Refund review", "With schema"]

    r = http.post(WI, json={"name": "Unknown type now", "typeId": OTHER_TYPE}, headers=auth)
    assert (r.status_code, r.get_json()["code"], r.get_json()["message"]) == (
        404, "not.found.error", "Worktype or Workbin not found")
    created = http.post(WI, json={"name": "Known type", "typeId": WORKTYPE}, headers=auth)
    assert created.status_code == 201 and created.get_json()["type"]["name"] == "Refund review"
    r = http.post(WI, json={"name": "Custom", "typeId": WORKTYPE, "customFields": {"amount_integer": 1}}, headers=auth)
    assert (r.status_code, r.get_json()["code"]) == (422, "schema.error.worktype.no.schema")
    r = http.post(WI, json={"name": "Custom", "typeId": schema_type["id"], "customFields": {"x_text": "a"}},
                  headers=auth)
    assert (r.status_code, r.get_json()["code"]) == (422, "schema.error.invalid.instance")
    r = http.post(WI, json={"name": "Custom", "typeId": schema_type["id"], "customFields": {"amount_integer": 1}},
                  headers=auth)
    assert r.status_code == 201 and r.get_json()["customFields"] == {"amount_integer": 1}


def test_workitems_in_state_record_page_and_reset(http, auth, conv, record):
    http.post("/api/genesys/worktypes", json={"id": WORKTYPE, "name": "Refund review"})
    http.patch(attrs_url(), json={"attributes": {"paymentRefundId": "re_7", "paymentRefundStatus": "failed"}},
               headers=auth)
    http.post(WI, json={"name": "Refund review re_7", "typeId": WORKTYPE, "externalTag": "re_7",
                        "description": "Refund re_7 of payment pay_7 failed."}, headers=auth)
    http.post(WI, json={"name": "Refund review re_8", "typeId": WORKTYPE, "externalTag": "re_8"}, headers=auth)
    http.post(f"{WI}/query", json=by_tag("re_7"), headers=auth)
    state = http.get("/api/genesys/state").get_json()
    assert [w["externalTag"] for w in state["workitems"]] == ["re_7", "re_8"]
    assert state["worktypes"] == [{"id": WORKTYPE, "name": "Refund review", "customFields": None}]
    assert [w["externalTag"] for w in http.get("/api/genesys/workitems?external_tag=re_8").get_json()] == ["re_8"]
    assert http.get(f"/api/genesys/workitems?type_id={OTHER_TYPE}").get_json() == []
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert [e["path"] for e in entries if "taskmanagement" in e["path"]] == [WI, WI, f"{WI}/query"]

    html = http.get("/genesys").get_data(as_text=True)
    section = html[html.index('id="conversation-conv-1"'):html.index("Workitems (Task Management)")]
    assert "Refund review re_7" in section and "Refund re_7 of payment pay_7 failed." in section
    assert "re_8" not in section  # no participant or execution of this conversation names that refund
    assert "Refund review re_8" in html[html.index("Workitems (Task Management)"):]

    assert http.post("/api/genesys/reset").status_code == 200
    state = http.get("/api/genesys/state").get_json()
    assert state["workitems"] == [] and len(state["worktypes"]) == 1
