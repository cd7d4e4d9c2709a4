"""Voice entry (docs/api.md, "Voice") shares the hosted page's processing; the agent view never shows card data."""

from __future__ import annotations

import re

from tests.functional.test_checkout_flow import charges, events_of, pay


def _card(stack, sid, **body):
    return stack.http.post(f"/v1/payment-sessions/{sid}/card", json=body, headers=stack.auth())


def test_inspect_tells_the_flow_what_to_ask(stack):
    r = stack.http.post("/v1/cards/inspect", json={"number": "378282246310005"}, headers=stack.auth())
    assert r.status_code == 200
    assert r.get_json() == {"brand": "amex", "allowed": True, "pan_lengths": [15], "cvc_length": 4,
                            "requires_expiry": True, "requires_cvc": True, "luhn_valid": True}
    partial = stack.http.post("/v1/cards/inspect", json={"number": "378282"}, headers=stack.auth()).get_json()
    assert partial["brand"] == "amex" and partial["luhn_valid"] is None
    bad = stack.http.post("/v1/cards/inspect", json={"number": "12ab"}, headers=stack.auth())
    assert bad.status_code == 400 and bad.get_json()["error"]["fields"] == {"number": "invalid_number"}


def test_voice_submission_approves_with_string_expiry(stack):
    created = stack.create_session(channel="voice")
    r = _card(stack, created["session_id"], number="378282246310005", exp_month="12", exp_year="30", cvc="1234")
    body = r.get_json()
    assert r.status_code == 200 and body["outcome"] == "approved" and body["status"] == "approved"
    assert body["card_brand"] == "amex" and body["card_last4"] == "0005" and body["token"].startswith("tok_")
    assert body["attempts_remaining"] == 0 and body["field_errors"] == {}
    assert [t for t, _ in events_of(stack, created["session_id"])] == ["payment.approved"]


def test_voice_business_outcomes_are_200(stack):
    created = stack.create_session(channel="voice")
    sid = created["session_id"]
    invalid = _card(stack, sid, number="4242424242424241", exp_month="13", exp_year="30", cvc="1")
    assert invalid.status_code == 200
    assert invalid.get_json()["outcome"] == "invalid"
    assert invalid.get_json()["field_errors"] == {"number": "incorrect_number", "exp_month": "invalid_expiry_month",
                                                  "cvc": "invalid_cvc"}
    declined = _card(stack, sid, number="4000000000000002", exp_month=12, exp_year=2030, cvc="123").get_json()
    assert declined["outcome"] == "declined" and declined["attempts_remaining"] == 2
    assert declined["decline_code"] == "generic_decline"
    blocked = _card(stack, sid, number="4100000000000019", exp_month=12, exp_year=2030, cvc="123").get_json()
    assert blocked["outcome"] == "requires_agent" and blocked["status"] == "requires_agent"
    again = _card(stack, sid, number="4242424242424242", exp_month=12, exp_year=2030, cvc="123").get_json()
    assert again["outcome"] == "requires_agent"  # terminal: reported, never processed again
    assert charges(stack) == []


def test_voice_submission_is_idempotent(stack):
    created = stack.create_session(channel="voice")
    body = {"number": "4242424242424242", "exp_month": "12", "exp_year": "2030", "cvc": "123"}
    headers = {**stack.auth(), "Idempotency-Key": "dtmf-1"}
    a = stack.http.post(f"/v1/payment-sessions/{created['session_id']}/card", json=body, headers=headers)
    b = stack.http.post(f"/v1/payment-sessions/{created['session_id']}/card", json=body, headers=headers)
    assert a.get_json() == b.get_json() and b.headers["Idempotent-Replayed"] == "true"
    assert len(charges(stack)) == 1


def test_agent_view_shows_status_and_last4_only(stack):
    created = stack.create_session()
    agent = created["agent_url"].replace("http://127.0.0.1:8000", "")
    page = stack.http.get(agent)
    assert page.status_code == 200 and "pending" in page.get_data(as_text=True)
    pay(stack, created["checkout_url"], number="3782 822463 10005", cvc="1234")
    html = stack.http.get(agent).get_data(as_text=True)
    assert "approved" in html and "American Express ending 0005" in html and "$25.00" in html
    digits = re.sub(r"\D", "", html)
    assert "37828224631" not in digits and "822463" not in html
    # tampering with the expiry or token closes the page
    assert stack.http.get(agent.replace("e=", "e=1")).status_code == 404
    assert stack.http.get(re.sub(r"t=[^&]+", "t=AAAA", agent)).status_code == 404


def test_agent_view_link_expires(stack):
    created = stack.create_session(ttl_seconds=60)
    agent = created["agent_url"].replace("http://127.0.0.1:8000", "")
    stack.clock.advance(60 + 86400 + 1)
    assert stack.http.get(agent).status_code == 404


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html)
    assert match, "the agent view has no CSRF token in its forms"
    return match.group(1)


def test_agent_view_follows_the_status_without_card_data(stack):
    created = stack.create_session()
    agent = created["agent_url"].replace("http://127.0.0.1:8000", "")
    html = stack.http.get(agent).get_data(as_text=True)
    status_url = re.search(r'data-status-url="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert stack.http.get(status_url).get_json()["status"] == "pending"
    pay(stack, created["checkout_url"], number="3782 822463 10005", cvc="1234")
    state = stack.http.get(status_url).get_json()
    codes = {"status", "attempts", "max_attempts", "card_brand_name", "card_last4", "decline_code", "message", "live"}
    assert {k: v for k, v in state.items() if k in codes} == {
        "status": "approved", "attempts": 1, "max_attempts": 3, "card_brand_name": "American Express",
        "card_last4": "0005", "decline_code": None, "message": state["message"], "live": False}
    assert (state["status_text"], state["card_text"]) == ("Approved", "American Express ending 0005")
    # a finished session is no longer followed, and offers no actions
    html = stack.http.get(agent).get_data(as_text=True)
    assert "data-status-url" not in html and "agent-cancel" not in html and "agent-resend" not in html
    # status.json is signed like the page
    assert stack.http.get(re.sub(r"t=[^&]+", "t=AAAA", status_url)).status_code == 404


def test_agent_cancels_a_pending_session_from_the_view(stack):
    created = stack.create_session()
    agent = created["agent_url"].replace("http://127.0.0.1:8000", "")
    html = stack.http.get(agent).get_data(as_text=True)
    assert 'id="agent-cancel"' in html and 'id="agent-resend"' not in html  # never sent: nothing to resend
    cancel_url = agent.replace("/agent/" + created["session_id"], f"/agent/{created['session_id']}/cancel")
    # without the CSRF token nothing changes
    r = stack.http.post(cancel_url, data={})
    assert r.status_code == 303 and "notice=expired_form" in r.headers["Location"]
    assert stack.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=stack.auth()).get_json()[
        "status"] == "pending"
    r = stack.http.post(cancel_url, data={"csrf_token": _csrf(html)})
    assert r.status_code == 303 and "notice=canceled" in r.headers["Location"]
    after = stack.http.get(r.headers["Location"]).get_data(as_text=True)
    assert "canceled" in after and "No card was charged" in after and 'id="agent-cancel"' not in after
    assert [t for t, _ in events_of(stack, created["session_id"])][-1] == "payment_session.canceled"
    # a forged signature cannot cancel
    forged = re.sub(r"t=[^&]+", "t=AAAA", cancel_url)
    assert stack.http.post(forged, data={"csrf_token": _csrf(html)}).status_code == 404


def test_agent_resend_without_a_previous_send_says_so(stack):
    created = stack.create_session()
    agent = created["agent_url"].replace("http://127.0.0.1:8000", "")
    html = stack.http.get(agent).get_data(as_text=True)
    resend_url = agent.replace("/agent/" + created["session_id"], f"/agent/{created['session_id']}/resend")
    r = stack.http.post(resend_url, data={"csrf_token": _csrf(html)})
    assert r.status_code == 303 and "notice=no_previous_send" in r.headers["Location"]
    assert "never sent by message" in stack.http.get(r.headers["Location"]).get_data(as_text=True)
