"""Holds through the API on SQLite and PostgreSQL: authorize, capture (full, partial), void, the 409s and the
422, lapse by the sandbox clock, unknown gateway answers settled by the same key, concurrency."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest

from tokenizer.gateways.sandbox import RedisSandboxLedger

from .money import VISA, advance, events, paid, payment, post, types


def hold(stack, number=VISA, **session):
    return paid(stack, number, intent="hold", **session)


def test_a_hold_is_authorized_not_taken(stack):
    sid, pid = hold(stack)
    p = payment(stack, pid)
    assert (p["status"], p["intent"], p["initiator"], p["session_id"]) == ("authorized", "hold", "customer", sid)
    assert (p["amount"], p["amount_capturable"], p["amount_captured"], p["amount_refunded"]) == (2500, 2500, 0, 0)
    assert p["card"]["last4"] == "4242" and p["token"].startswith("tok_") and p["pending_operation"] is None
    before = datetime.fromisoformat(p["capture_before"].replace("Z", "+00:00"))
    assert before - datetime.fromisoformat(p["created_at"].replace("Z", "+00:00")) == timedelta(days=7)
    evs = events(stack, sid)
    assert [t for t, _ in evs] == ["hold.authorized"]  # not payment.approved: nothing was taken
    assert evs[0][1]["object"] == "payment" and evs[0][1]["data"]["payment_id"] == pid
    session = stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth()).get_json()
    assert session["status"] == "approved" and session["payment_id"] == pid


def test_capture_in_full_then_not_again(stack):
    sid, pid = hold(stack)
    r = post(stack, f"/v1/payments/{pid}/capture")
    assert r.status_code == 200
    p = r.get_json()
    assert (p["status"], p["amount_captured"], p["amount_capturable"]) == ("captured", 2500, 0)
    again = post(stack, f"/v1/payments/{pid}/capture")
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "payment_not_capturable"
    assert types(stack, sid) == ["hold.authorized", "hold.captured"]
    assert [e[1]["sequence"] for e in events(stack, sid)] == [1, 2]


def test_partial_capture_releases_the_rest(stack):
    _, pid = hold(stack)
    p = post(stack, f"/v1/payments/{pid}/capture", {"amount": 1000}).get_json()
    assert (p["status"], p["amount"], p["amount_captured"], p["amount_capturable"]) == ("captured", 2500, 1000, 0)
    pi = RedisSandboxLedger(stack.services.redis).get_object(p["gateway_reference"])
    assert (pi["amount_received"], pi["amount_capturable"]) == (1000, 0)


@pytest.mark.parametrize("amount, status, code", [
    (2501, 422, "amount_exceeds_capturable"), (0, 400, "validation_error"), ("100", 400, "validation_error"),
    (-1, 400, "validation_error")])
def test_capture_amount_rules(stack, amount, status, code):
    _, pid = hold(stack)
    r = post(stack, f"/v1/payments/{pid}/capture", {"amount": amount})
    assert r.status_code == status and r.get_json()["error"]["code"] == code
    assert payment(stack, pid)["status"] == "authorized"


def test_void_then_neither_capture_nor_void(stack):
    sid, pid = hold(stack)
    r = post(stack, f"/v1/payments/{pid}/void")
    assert r.status_code == 200
    assert (r.get_json()["status"], r.get_json()["amount_capturable"]) == ("voided", 0)
    capture = post(stack, f"/v1/payments/{pid}/capture")
    assert capture.status_code == 409 and capture.get_json()["error"]["code"] == "payment_not_capturable"
    void = post(stack, f"/v1/payments/{pid}/void")
    assert void.status_code == 409 and void.get_json()["error"]["code"] == "payment_not_voidable"
    assert types(stack, sid) == ["hold.authorized", "hold.voided"]


def test_a_charge_is_neither_capturable_nor_voidable_and_others_cannot_see_it(stack):
    _, pid = paid(stack)
    assert payment(stack, pid)["status"] == "captured"
    assert post(stack, f"/v1/payments/{pid}/capture").get_json()["error"]["code"] == "payment_not_capturable"
    assert post(stack, f"/v1/payments/{pid}/void").get_json()["error"]["code"] == "payment_not_voidable"
    other = stack.token_for(stack.new_client("other"))
    assert stack.http.get(f"/v1/payments/{pid}", headers=stack.auth(other)).status_code == 404
    r = post(stack, f"/v1/payments/{pid}/capture", token=other)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "payment_not_found"


def test_a_hold_lapses_by_the_sandbox_clock(stack):
    sid, pid = hold(stack)
    holds = stack.services.holds
    assert holds.lapse_due() == 0
    advance(stack, 6 * 86400 + 60)  # inside the day's notice
    assert holds.lapse_due() == 1
    assert types(stack, sid)[-1] == "hold.expiring" and payment(stack, pid)["status"] == "authorized"
    assert holds.lapse_due() == 0  # sent once
    advance(stack, 86400)
    holds.lapse_due()
    p = payment(stack, pid)
    assert (p["status"], p["amount_capturable"], p["amount_captured"]) == ("expired", 0, 0)
    assert types(stack, sid) == ["hold.authorized", "hold.expiring", "hold.expired"]
    assert RedisSandboxLedger(stack.services.redis).get_object(p["gateway_reference"])["status"] == "canceled"
    assert post(stack, f"/v1/payments/{pid}/capture").get_json()["error"]["code"] == "payment_not_capturable"


def test_one_jump_past_both_moments_still_sends_expiring_first(stack):
    sid, _ = hold(stack)
    advance(stack, 30 * 86400)
    stack.services.holds.lapse_due()
    assert types(stack, sid) == ["hold.authorized", "hold.expiring", "hold.expired"]


def test_a_lost_capture_answer_is_pending_then_settled_by_the_same_key(stack):
    sid, pid = hold(stack)
    stack.services.gateway.inject_fault("capture", "lost")  # the gateway captures, the answer is lost
    r = post(stack, f"/v1/payments/{pid}/capture", key="cap-1")
    assert r.status_code == 202
    assert (r.get_json()["status"], r.get_json()["pending_operation"]) == ("authorized", "capture")
    advance(stack, 30 * 86400)
    assert stack.services.holds.lapse_due() == 1  # hold.expiring only: a capture is pending, nothing is voided
    assert payment(stack, pid)["status"] == "authorized"
    again = post(stack, f"/v1/payments/{pid}/capture", key="cap-1")  # the same call, retried
    assert again.status_code == 200 and again.get_json()["status"] == "captured"
    assert types(stack, sid).count("hold.captured") == 1
    assert "hold.expired" not in types(stack, sid)
    replay = post(stack, f"/v1/payments/{pid}/capture", key="cap-1")
    assert replay.headers.get("Idempotent-Replayed") == "true" and replay.get_json()["status"] == "captured"


def test_a_timed_out_void_is_reconciled_by_the_worker(stack):
    sid, pid = hold(stack)
    stack.services.gateway.inject_fault("void", "timeout")  # the gateway never acted
    r = post(stack, f"/v1/payments/{pid}/void")
    assert r.status_code == 202 and r.get_json()["pending_operation"] == "void"
    assert post(stack, f"/v1/payments/{pid}/capture").get_json()["error"]["code"] == "operation_in_progress"
    assert stack.services.holds.reconcile_due() == 0  # not yet due
    advance(stack, 121)
    assert stack.services.holds.reconcile_due() == 1
    p = payment(stack, pid)
    assert (p["status"], p["pending_operation"]) == ("voided", None)
    assert types(stack, sid) == ["hold.authorized", "hold.voided"]


def test_concurrent_captures_capture_once(stack):
    sid, pid = hold(stack)
    results = []

    def capture(i):
        with stack.app.test_client() as http:
            r = http.post(f"/v1/payments/{pid}/capture", json={}, headers={**stack.auth(),
                                                                           "Idempotency-Key": f"c{i}"})
            results.append((r.status_code, r.get_json()))

    threads = [threading.Thread(target=capture, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(s for s, _ in results).count(200) == 1
    assert all(body["error"]["code"] in ("payment_not_capturable", "operation_in_progress")
               for s, body in results if s != 200)
    assert types(stack, sid) == ["hold.authorized", "hold.captured"]
