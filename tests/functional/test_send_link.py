"""``POST /v1/payment-sessions/{id}/send-link`` (docs/api.md, "Voice") on the real app, real databases and Redis,
against the Genesys emulator (integrations.genesys.emulator/) on a real threaded HTTP server (tests/fakes/genesys.py)."""

from __future__ import annotations

import json
import logging

import pytest

from app import services as app_services
from app.openapi import SCHEMAS
from integrations.genesys.settings import GenesysSettings, SecretBox
from payments.clients import configure_genesys as store_genesys_settings
from tests.fakes.genesys import GenesysEmulator
from tests.functional.test_openapi import _check

GC_ID, GC_SECRET = "gc-sms-client", "gc-sms-secret-abcdef"
SMS_FROM = "+13175550100"
TO = "+15551234567"


@pytest.fixture
def genesys(state_dir):
    with GenesysEmulator({GC_ID: GC_SECRET}, state_dir) as emulator:
        yield emulator


def configure_genesys(stack, emulator, client_id=None, **overrides):
    values = dict(region="eu_west_1", client_id=GC_ID, client_secret=GC_SECRET, api_base=emulator.url,
                  login_base=emulator.url, write_attributes=False, sms_from_address=SMS_FROM)
    values.update(overrides)
    with stack.services.Session.begin() as db:
        store_genesys_settings(db, client_id or stack.client.client_id, GenesysSettings(**values),
                               SecretBox(stack.services.settings.secret_key), production=False)


@pytest.fixture
def ready(stack, genesys):
    configure_genesys(stack, genesys)
    return stack


def send(stack, session_id, body, **headers):
    return stack.http.post(f"/v1/payment-sessions/{session_id}/send-link", json=body,
                           headers={**stack.auth(), **headers})


def error_of(r) -> tuple[int, str]:
    return r.status_code, r.get_json()["error"]["code"]


def test_sms_happy_path(ready, genesys, caplog):
    created = ready.create_session()
    with caplog.at_level(logging.INFO, logger="paygate.genesys"):
        r = send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"})
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    _check(SCHEMAS["LinkSent"], body, "sent")
    (message,) = genesys.messages
    assert body == {"sent": True, "message_id": message["id"], "to": TO, "messenger_type": "sms"}
    (call,) = genesys.api_requests("POST")
    assert call["path"] == "/api/v2/conversations/messages/agentless"
    assert (call["status"], call["client_id"]) == (200, GC_ID)  # a bearer token the emulator issued
    (sent_body,) = genesys.bodies("POST")
    assert sent_body["fromAddress"] == SMS_FROM and sent_body["toAddress"] == TO
    assert sent_body["toAddressMessengerType"] == "sms"
    text = sent_body["textBody"]
    assert created["checkout_url"] in text and len(text) <= 765
    assert "$25.00" in text
    # recorded on the session: a log line with the message id, never the whole number
    (record,) = [r for r in caplog.records if r.getMessage() == "checkout link sent"]
    assert record.session_id == created["session_id"] and record.message_id == message["id"]
    assert record.to == "+1555***4567"
    with ready.app.app_context():
        sent = app_services().link_sender.last_sent(created["session_id"])
    assert (sent.message_id, sent.to, sent.messenger_type, sent.from_address) == (message["id"], TO, "sms", SMS_FROM)
    view = ready.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=ready.auth()).get_json()
    assert (view["link_sends"], view["link_last_sent_at"]) == (1, "2026-11-23T12:00:00Z")


def test_whatsapp_uses_the_number_without_plus_and_needs_a_sender(ready, genesys):
    created = ready.create_session()
    r = send(ready, created["session_id"], {"to": TO, "messenger_type": "whatsapp"})
    assert error_of(r) == (400, "validation_error")
    assert r.get_json()["error"]["fields"] == {"from_address": "required"}
    r = send(ready, created["session_id"], {"to": TO, "messenger_type": "whatsapp", "from_address": "wa-integration-1"})
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["to"] == TO and r.get_json()["messenger_type"] == "whatsapp"
    (message,) = genesys.messages
    assert (message["toAddress"], message["fromAddress"], message["messengerType"]) == (
        "15551234567", "wa-integration-1", "whatsapp")


@pytest.mark.parametrize("body, fields", [
    ({"to": "5551234567", "messenger_type": "sms"}, {"to": "invalid_phone_number"}),
    ({"to": "+0551234567", "messenger_type": "sms"}, {"to": "invalid_phone_number"}),
    ({"to": "tel:5551234567", "messenger_type": "sms"}, {"to": "invalid_phone_number"}),
    ({"to": "+1555123456789012", "messenger_type": "sms"}, {"to": "invalid_phone_number"}),
    ({"to": 15551234567, "messenger_type": "sms"}, {"to": "invalid_phone_number"}),
    ({"messenger_type": "sms"}, {"to": "required"}),
    ({"to": TO, "messenger_type": "email"}, {"messenger_type": "invalid_choice"}),
    ({"to": TO}, {"messenger_type": "required"}),
    ({"to": TO, "messenger_type": "sms", "from_address": ""}, {"from_address": "invalid"}),
    ({"to": TO, "messenger_type": "sms", "text": "hi"}, {"text": "unknown_field"}),
])
def test_bad_requests_are_400(ready, genesys, body, fields):
    created = ready.create_session()
    r = send(ready, created["session_id"], body)
    assert error_of(r) == (400, "validation_error")
    assert r.get_json()["error"]["fields"] == fields
    assert genesys.api_requests() == []


def test_not_json_is_400(ready):
    created = ready.create_session()
    r = ready.http.post(f"/v1/payment-sessions/{created['session_id']}/send-link", data="to=+1555",
                        headers=ready.auth())
    assert error_of(r) == (400, "invalid_json")


def test_only_pending_sessions(ready, genesys):
    created = ready.create_session()
    assert ready.http.post(f"/v1/payment-sessions/{created['session_id']}/cancel",
                           headers=ready.auth()).status_code == 200
    r = send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"})
    assert error_of(r) == (409, "session_not_pending")
    assert genesys.api_requests() == []


def test_expired_session_is_not_sent(ready, genesys):
    created = ready.create_session(ttl_seconds=60)
    ready.clock.advance(61)
    r = send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"})
    assert error_of(r) == (409, "session_not_pending")


def test_unknown_or_foreign_session_is_404(stack_factory, genesys):
    stack = stack_factory()
    configure_genesys(stack, genesys)
    other = stack.new_client(name="other")
    theirs = stack.http.post("/v1/payment-sessions", json={"conversation_id": "c", "customer_account_id": "a",
                                                            "amount": 100, "currency": "USD"},
                             headers=stack.auth(stack.token_for(other))).get_json()
    for session_id in (theirs["session_id"], "ps_nope"):
        r = send(stack, session_id, {"to": TO, "messenger_type": "sms"})
        assert error_of(r) == (404, "session_not_found")


def test_client_without_genesys_settings_is_409(stack, genesys):
    created = stack.create_session()
    r = send(stack, created["session_id"], {"to": TO, "messenger_type": "sms"})
    assert error_of(r) == (409, "genesys_not_configured")
    assert genesys.requests() == []


@pytest.mark.parametrize("failure", [500, 503, 429, 400])
def test_genesys_failure_is_502(ready, genesys, failure):
    created = ready.create_session()
    genesys.fail_next(failure, retry_after=30)
    r = send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"})
    assert error_of(r) == (502, "genesys_unavailable")
    assert GC_SECRET not in r.get_data(as_text=True)
    assert genesys.messages == []


def test_genesys_unreachable_or_rejecting_credentials_is_502(stack, genesys):
    configure_genesys(stack, genesys, client_secret="not-the-secret")
    created = stack.create_session()
    assert error_of(send(stack, created["session_id"], {"to": TO, "messenger_type": "sms"})) == (
        502, "genesys_unavailable")
    genesys.close()  # nothing listens on its port any more
    configure_genesys(stack, genesys, api_base=genesys.url, login_base=genesys.url)
    assert error_of(send(stack, created["session_id"], {"to": TO, "messenger_type": "sms"})) == (
        502, "genesys_unavailable")


def test_expired_token_is_replaced(ready, genesys):
    created = ready.create_session()
    assert send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"}).status_code == 200
    genesys.expire_tokens()
    assert send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"}).status_code == 200
    assert genesys.token_requests == 2
    assert [r["status"] for r in genesys.api_requests("POST")] == [200, 401, 200]


def test_rate_limited_per_session(ready, genesys):
    created, other = ready.create_session(), ready.create_session()
    for _ in range(3):
        assert send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"}).status_code == 200
    ready.clock.advance(60)
    r = send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"})
    assert error_of(r) == (429, "rate_limited")
    assert r.headers["Retry-After"] == "540"
    assert len(genesys.messages) == 3
    assert send(ready, other["session_id"], {"to": TO, "messenger_type": "sms"}).status_code == 200  # per session
    ready.clock.advance(540)
    assert send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"}).status_code == 200


def test_a_rate_limited_request_can_be_retried_with_the_same_key(ready, genesys):
    """A 429 is refused before any work, so (like a 5xx, and as Stripe does) it is not stored under the
    Idempotency-Key: retrying after Retry-After with the same key sends the link."""
    created = ready.create_session()
    for n in range(3):
        send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"}, **{"Idempotency-Key": f"s{n}"})
    body = {"to": TO, "messenger_type": "sms"}
    assert error_of(send(ready, created["session_id"], body, **{"Idempotency-Key": "late"})) == (429, "rate_limited")
    ready.clock.advance(600)
    r = send(ready, created["session_id"], body, **{"Idempotency-Key": "late"})
    assert r.status_code == 200 and "Idempotent-Replayed" not in r.headers
    assert len(genesys.messages) == 4


def test_idempotency_key_replays_without_sending_again(ready, genesys):
    created = ready.create_session()
    first = send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"}, **{"Idempotency-Key": "k1"})
    again = send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"}, **{"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 200
    assert first.get_json() == again.get_json() and again.headers["Idempotent-Replayed"] == "true"
    assert len(genesys.messages) == 1


def test_resend_goes_to_the_last_recipient(ready, genesys):
    created = ready.create_session()
    with ready.app.app_context():
        sender = app_services().link_sender
        with pytest.raises(Exception) as err:
            sender.resend(None, created["session_id"])
        assert getattr(err.value, "code", None) == "no_previous_send"
        send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"})
        again = sender.resend(None, created["session_id"])
    assert again.to == TO and len(genesys.messages) == 2
    assert genesys.messages[0]["textBody"] == genesys.messages[1]["textBody"]


def test_no_secret_or_card_data_in_what_was_sent(ready, genesys):
    from tests.functional.test_checkout_flow import pay

    created = ready.create_session()
    send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"})
    pay(ready, created["checkout_url"], number="4000 0000 0000 0002")  # declined: still pending
    send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"})
    bodies = genesys.bodies()
    assert len(bodies) == 2
    text = json.dumps(bodies)
    assert "4000000000000002" not in text and GC_SECRET not in text


def test_agent_view_shows_the_last_send_and_sends_again(ready, genesys):
    """The agent's Script page names the last send (masked number) and its button texts the link again."""
    import re

    created = ready.create_session()
    agent = created["agent_url"].replace("http://127.0.0.1:8000", "")
    assert 'id="agent-resend"' not in ready.http.get(agent).get_data(as_text=True)
    send(ready, created["session_id"], {"to": TO, "messenger_type": "sms"})
    html = ready.http.get(agent).get_data(as_text=True)
    assert "By SMS to +1555***4567, Nov 23, 12:00 UTC" in html and TO not in html
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)
    resend_url = agent.replace(f"/agent/{created['session_id']}", f"/agent/{created['session_id']}/resend")
    r = ready.http.post(resend_url, data={"csrf_token": csrf})
    assert r.status_code == 303 and "notice=link_sent" in r.headers["Location"]
    assert [m["toAddress"] for m in genesys.messages] == [TO, TO]
    view = ready.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=ready.auth()).get_json()
    assert view["link_sends"] == 2
    # the third send in ten minutes is the last one allowed; the fourth is refused with a notice
    assert "notice=link_sent" in ready.http.post(resend_url, data={"csrf_token": csrf}).headers["Location"]
    refused = ready.http.post(resend_url, data={"csrf_token": csrf})
    assert "notice=rate_limited" in refused.headers["Location"] and len(genesys.messages) == 3
