"""Payments through the API on SQLite and PostgreSQL: merchant-initiated charges on a stored token, the payment
view, lists with filters and cursor pagination, the sandbox clock."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tokenizer.gateways.sandbox import RedisSandboxLedger

from .money import OFF_SESSION_AUTH, VISA, advance, events, paid, payment, post, types


def charge(stack, token, key="mit-1", **fields):
    body = {"token": token, "amount": 1200, "currency": "USD", "customer_account_id": "ACME-1", **fields}
    return post(stack, "/v1/payments", body, key=key)


def test_a_merchant_initiated_charge(stack):
    _, first = paid(stack)
    token = payment(stack, first)["token"]
    r = charge(stack, token, reference="RENEW-1", metadata={"plan": "gold"})
    assert r.status_code == 201
    p = r.get_json()
    assert (p["status"], p["initiator"], p["session_id"], p["amount_captured"]) == ("captured", "merchant", None, 1200)
    assert (p["token"], p["card"]["last4"], p["reference"], p["metadata"]) == (token, "4242", "RENEW-1",
                                                                             {"plan": "gold"})
    evs = events(stack, p["payment_id"])
    assert [(t, b["object"], b["sequence"]) for t, b in evs] == [("payment.approved", "payment", 1)]
    assert evs[0][1]["data"]["payment_id"] == p["payment_id"]
    assert len(RedisSandboxLedger(stack.services.redis).charges()) == 2


def test_the_idempotency_key_is_required_and_makes_one_payment(stack):
    _, first = paid(stack)
    token = payment(stack, first)["token"]
    missing = charge(stack, token, key=None)
    assert missing.status_code == 400 and missing.get_json()["error"]["code"] == "idempotency_key_required"
    created = charge(stack, token, key="k-1").get_json()
    stack.services.redis.flushdb()  # even once the 24-hour replay is gone, the key finds the same payment
    again = charge(stack, token, key="k-1")
    assert again.status_code == 200 and again.get_json()["payment_id"] == created["payment_id"]
    assert len(RedisSandboxLedger(stack.services.redis).charges()) == 0  # nothing charged after the flush


def test_tokens_of_other_clients_or_never_approved_are_not_found(stack):
    _, first = paid(stack)
    token = payment(stack, first)["token"]
    other = stack.token_for(stack.new_client("other"))
    r = post(stack, "/v1/payments", {"token": token, "amount": 100, "currency": "USD",
                                     "customer_account_id": "X"}, key="o-1", token=other)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "token_not_found"
    assert charge(stack, "tok_doesnotexist").status_code == 404
    declined = stack.create_session()
    stack.http.post(f"/v1/payment-sessions/{declined['session_id']}/card", headers=stack.auth(),
                    json={"number": "4000000000000002", "exp_month": 12, "exp_year": 30, "cvc": "123"})
    attempt_token = stack.http.get(f"/v1/payment-sessions/{declined['session_id']}",
                                   headers=stack.auth()).get_json()["token"]
    assert attempt_token and charge(stack, attempt_token, key="d-1").status_code == 404


def test_a_merchant_initiated_hold_and_its_shorter_visa_window(stack):
    _, first = paid(stack)
    token = payment(stack, first)["token"]
    p = charge(stack, token, capture=False).get_json()
    assert (p["status"], p["intent"], p["amount_capturable"]) == ("authorized", "hold", 1200)
    created = datetime.fromisoformat(p["created_at"].replace("Z", "+00:00"))
    assert datetime.fromisoformat(p["capture_before"].replace("Z", "+00:00")) - created == timedelta(days=4, hours=18)
    assert types(stack, p["payment_id"]) == ["hold.authorized"]
    captured = post(stack, f"/v1/payments/{p['payment_id']}/capture", {"amount": 1000}).get_json()
    assert captured["status"] == "captured" and types(stack, p["payment_id"]) == ["hold.authorized", "hold.captured"]


def test_a_decline_is_a_result(stack):
    _, first = paid(stack, OFF_SESSION_AUTH)
    r = charge(stack, payment(stack, first)["token"])
    assert r.status_code == 201
    p = r.get_json()
    assert (p["status"], p["decline_code"]) == ("declined", "authentication_required") and p["message"]
    assert types(stack, p["payment_id"]) == ["payment.declined"]


def test_merchant_charge_validation(stack):
    _, first = paid(stack)
    token = payment(stack, first)["token"]
    for i, (body, field) in enumerate([({"amount": 0}, "amount"), ({"currency": "AAA"}, "currency"),
                                       ({"amount": "12"}, "amount"), ({"capture": "yes"}, "capture")]):
        r = charge(stack, token, key=f"v-{i}", **body)
        assert r.status_code == 400 and field in r.get_json()["error"]["fields"], r.get_json()


# -- lists ---------------------------------------------------------------------------------------------------
def test_lists_filter_and_paginate_newest_first(stack):
    ids = []
    for i in range(5):
        _, pid = paid(stack, conversation_id="conv-list" if i % 2 == 0 else "conv-other")
        ids.append(pid)
        stack.clock.advance(1)
    r = stack.http.get("/v1/payments?limit=2", headers=stack.auth()).get_json()
    assert [p["payment_id"] for p in r["data"]] == ids[::-1][:2] and r["has_more"] is True
    page2 = stack.http.get(f"/v1/payments?limit=2&starting_after={ids[3]}", headers=stack.auth()).get_json()
    assert [p["payment_id"] for p in page2["data"]] == [ids[2], ids[1]] and page2["has_more"] is True
    last = stack.http.get(f"/v1/payments?limit=2&starting_after={ids[1]}", headers=stack.auth()).get_json()
    assert [p["payment_id"] for p in last["data"]] == [ids[0]] and last["has_more"] is False
    conv = stack.http.get("/v1/payments?conversation_id=conv-list", headers=stack.auth()).get_json()
    assert [p["payment_id"] for p in conv["data"]] == [ids[4], ids[2], ids[0]]
    first_created = payment(stack, ids[0])["created_at"]
    after = stack.http.get(f"/v1/payments?created_after={first_created}", headers=stack.auth()).get_json()
    assert len(after["data"]) == 4
    sessions = stack.http.get("/v1/payment-sessions?conversation_id=conv-other&status=approved",
                              headers=stack.auth()).get_json()
    assert len(sessions["data"]) == 2 and {s["status"] for s in sessions["data"]} == {"approved"}
    other = stack.token_for(stack.new_client("other"))
    assert stack.http.get("/v1/payments", headers=stack.auth(other)).get_json() == {"data": [], "has_more": False}


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=x", "status=bogus", "starting_after=pay_nope",
                                   "created_after=yesterday"])
def test_bad_list_queries_are_400(stack, query):
    r = stack.http.get(f"/v1/payments?{query}", headers=stack.auth())
    assert r.status_code == 400, r.get_json()


# -- the sandbox clock -----------------------------------------------------------------------------------------
def test_the_sandbox_clock_moves_business_time(stack):
    created = stack.create_session(ttl_seconds=600)
    before = advance(stack, 1)["now"]
    after = advance(stack, 3600)["now"]
    assert datetime.fromisoformat(after.replace("Z", "+00:00")) - datetime.fromisoformat(
        before.replace("Z", "+00:00")) == timedelta(seconds=3600)
    assert stack.services.sessions.expire_due() == 1  # the link's 10 minutes passed in business time
    view = stack.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=stack.auth()).get_json()
    assert view["status"] == "expired"
    for bad in (0, -1, 31_536_001, "60", 1.5, None):
        r = post(stack, "/v1/sandbox/clock", {"advance_seconds": bad})
        assert r.status_code == 400, bad


def test_the_sandbox_clock_is_not_there_in_production_or_with_stripe(stack_factory):
    stripe = stack_factory(GATEWAY="stripe", STRIPE_API_KEY="sk_test_x")
    assert post(stripe, "/v1/sandbox/clock", {"advance_seconds": 60}).status_code == 404
    assert post(stripe, "/v1/sandbox/disputes/dsp_x/close", {"status": "won"}).status_code == 404


def test_an_unknown_answer_stays_processing_until_reconciled(stack):
    _, first = paid(stack)
    token = payment(stack, first)["token"]
    stack.services.gateway.inject_fault("charge_saved_card", "timeout")  # the gateway never acted
    lost = charge(stack, token, key="t-1").get_json()
    assert (lost["status"], lost["amount_captured"]) == ("processing", 0)
    stack.services.gateway.inject_fault("charge_saved_card", "lost")  # the gateway charged; the answer was lost
    done_late = charge(stack, token, key="t-2").get_json()
    assert done_late["status"] == "processing"
    assert stack.services.merchant.reconcile_due() == 0  # not yet due
    stack.clock.advance(121)
    assert stack.services.merchant.reconcile_due() == 2
    failed, charged = payment(stack, lost["payment_id"]), payment(stack, done_late["payment_id"])
    assert (failed["status"], failed["decline_code"]) == ("failed", "gateway_no_payment")
    assert (charged["status"], charged["amount_captured"]) == ("captured", 1200)
    assert types(stack, lost["payment_id"]) == ["payment.failed"]
    assert types(stack, done_late["payment_id"]) == ["payment.approved"]
    listed = stack.http.get(f"/v1/events?payment_id={done_late['payment_id']}", headers=stack.auth()).get_json()
    assert [e["type"] for e in listed["data"]] == ["payment.approved"]
