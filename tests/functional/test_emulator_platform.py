"""The Genesys emulator's fake Platform API (OAuth, participant attributes, workflow executions, agentless
messages, 401/429 behaviour, failure injection, state and page), as reference genesys.md §2, §3, §5 and §7
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

from genesys_emulator import create_app
from genesys_emulator.__main__ import build_app

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
