"""Disputes and the gateway's webhooks on SQLite and PostgreSQL: the sandbox's 0259 card disputed through the
signed /webhooks/stripe path, closed by the sandbox endpoint; signatures, replays, out-of-order and late events."""

from __future__ import annotations

import time

from .money import DISPUTED, VISA, advance, deliver_sandbox_webhooks, events, paid, payment, post, signed_webhook, types


def dispute_event(event_id, dispute_id, pi, *, kind="charge.dispute.created", status="needs_response",
                  reason="fraudulent", amount=2500, due_by=None):
    return {"id": event_id, "object": "event", "type": kind, "created": int(time.time()),
            "data": {"object": {"id": dispute_id, "object": "dispute", "amount": amount, "currency": "usd",
                                "payment_intent": pi, "charge": "ch_x", "reason": reason, "status": status,
                                "evidence_details": {"due_by": due_by or 1893456000}}}}


def test_a_0259_payment_is_disputed_then_closed(stack):
    sid, pid = paid(stack, DISPUTED)
    assert deliver_sandbox_webhooks(stack) == 0  # disputed after the delay, in business time
    advance(stack, 5)
    assert deliver_sandbox_webhooks(stack) == 1
    p = payment(stack, pid)
    assert p["dispute_id"].startswith("dsp_")
    d = stack.http.get(f"/v1/disputes/{p['dispute_id']}", headers=stack.auth()).get_json()
    assert (d["object"], d["payment_id"], d["status"], d["reason"], d["amount"], d["currency"]) == (
        "dispute", pid, "needs_response", "fraudulent", 2500, "USD")
    assert d["gateway_reference"].startswith("dp_") and d["evidence_due_by"] and d["conversation_id"] == "conv-1"
    listed = stack.http.get(f"/v1/disputes?payment_id={pid}", headers=stack.auth()).get_json()
    assert [x["dispute_id"] for x in listed["data"]] == [d["dispute_id"]]

    closed = post(stack, f"/v1/sandbox/disputes/{d['dispute_id']}/close", {"status": "won"})
    assert closed.status_code == 200 and closed.get_json()["status"] == "won"
    assert types(stack, sid) == ["payment.approved", "dispute.opened", "dispute.closed"]
    last = events(stack, sid)[-1][1]
    assert last["object"] == "dispute" and last["data"]["status"] == "won"
    bad = post(stack, f"/v1/sandbox/disputes/{d['dispute_id']}/close", {"status": "maybe"})
    assert bad.status_code == 400


def test_bad_missing_or_stale_signatures_are_refused(stack):
    _, pid = paid(stack)
    pi = payment(stack, pid)["gateway_reference"]
    event = dispute_event("evt_1", "dp_1", pi)
    assert signed_webhook(stack, event, secret="whsec_wrong").status_code == 400
    assert signed_webhook(stack, event, at=time.time() - 301).status_code == 400
    r = stack.http.post("/webhooks/stripe", data=b"{}", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "invalid_signature"
    assert payment(stack, pid)["dispute_id"] is None


def test_a_replayed_event_changes_nothing(stack):
    sid, pid = paid(stack)
    pi = payment(stack, pid)["gateway_reference"]
    event = dispute_event("evt_2", "dp_2", pi)
    assert signed_webhook(stack, event).status_code == 200
    assert signed_webhook(stack, event).status_code == 200
    assert types(stack, sid) == ["payment.approved", "dispute.opened"]


def test_updates_in_and_out_of_order(stack):
    sid, pid = paid(stack)
    pi = payment(stack, pid)["gateway_reference"]
    # an update that arrives before the creation opens the dispute
    signed_webhook(stack, dispute_event("evt_a", "dp_3", pi, kind="charge.dispute.updated", status="under_review"))
    signed_webhook(stack, dispute_event("evt_b", "dp_3", pi))  # the creation, late: nothing new
    signed_webhook(stack, dispute_event("evt_c", "dp_3", pi, kind="charge.dispute.updated", status="under_review",
                                        due_by=1893459600))
    signed_webhook(stack, dispute_event("evt_d", "dp_3", pi, kind="charge.dispute.closed", status="lost"))
    signed_webhook(stack, dispute_event("evt_e", "dp_3", pi, kind="charge.dispute.updated", status="under_review"))
    assert types(stack, sid) == ["payment.approved", "dispute.opened", "dispute.updated", "dispute.closed"]
    d = stack.http.get(f"/v1/disputes/{payment(stack, pid)['dispute_id']}", headers=stack.auth()).get_json()
    assert d["status"] == "lost"


def test_an_authorization_the_gateway_canceled_expires(stack):
    sid, pid = paid(stack, VISA, intent="hold")
    pi = payment(stack, pid)["gateway_reference"]
    event = {"id": "evt_pc", "object": "event", "type": "payment_intent.canceled", "created": int(time.time()),
             "data": {"object": {"id": pi, "object": "payment_intent", "status": "canceled",
                                 "cancellation_reason": "automatic"}}}
    assert signed_webhook(stack, event).status_code == 200
    assert (payment(stack, pid)["status"], types(stack, sid)[-1]) == ("expired", "hold.expired")


def test_a_refund_result_arriving_by_webhook_before_its_answer(stack):
    sid, pid = paid(stack)
    stack.services.gateway.inject_fault("refund", "timeout")
    refund = post(stack, "/v1/refunds", {"payment_id": pid, "disposition_code": "R"}).get_json()
    assert refund["status"] == "pending" and refund["gateway_reference"] is None
    event = {"id": "evt_rf", "object": "event", "type": "refund.failed", "created": int(time.time()),
             "data": {"object": {"id": "re_gw_1", "object": "refund", "status": "failed",
                                 "failure_reason": "lost_or_stolen_card",
                                 "metadata": {"paygate_refund_id": refund["refund_id"]}}}}
    assert signed_webhook(stack, event).status_code == 200
    now = stack.http.get(f"/v1/refunds/{refund['refund_id']}", headers=stack.auth()).get_json()
    assert (now["status"], now["failure_code"], now["manual_review"], now["gateway_reference"]) == (
        "failed", "lost_or_stolen_card", "required", "re_gw_1")
    assert types(stack, sid) == ["payment.approved", "refund.failed"]
