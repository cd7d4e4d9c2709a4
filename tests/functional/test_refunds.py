"""Refunds by disposition through the API on SQLite and PostgreSQL: amounts, exactly once per disposition
(also under 50 concurrent requests), partial refunds, failures into the review queue, resolve and retry."""

from __future__ import annotations

import json
import threading

import pytest
from click.testing import CliRunner

from paygate.cli import main as cli
from tokenizer.gateways.base import RefundRequest
from tokenizer.gateways.sandbox import RedisSandboxLedger

from .money import REFUND_FAILS, VISA, deliver_sandbox_webhooks, events, paid, payment, post, types


def refund(stack, pid, key=None, token=None, **fields):
    body = {"payment_id": pid, "disposition_code": "REFUND_FULL", **fields}
    return post(stack, "/v1/refunds", body, key=key, token=token)


def refunds_at_gateway(stack) -> list[dict]:
    ledger = RedisSandboxLedger(stack.services.redis)
    raw = stack.services.redis.hvals(ledger.objects_key)
    return [obj for obj in map(json.loads, raw) if obj.get("object") == "refund"]


def test_a_full_refund(stack):
    sid, pid = paid(stack)
    r = refund(stack, pid, conversation_id="conv-acw", participant_id="cust-2", reason="requested_by_customer")
    assert r.status_code == 201
    body = r.get_json()
    assert body["refund_id"].startswith("re_") and body["object"] == "refund"
    assert (body["status"], body["amount"], body["currency"], body["manual_review"]) == ("succeeded", 2500, "USD",
                                                                                       "none")
    assert (body["disposition_code"], body["conversation_id"], body["review_disposition"]) == (
        "REFUND_FULL", "conv-acw", None)
    assert stack.http.get(f"/v1/refunds/{body['refund_id']}", headers=stack.auth()).get_json() == body
    p = payment(stack, pid)
    assert (p["status"], p["amount_refunded"]) == ("refunded", 2500)
    evs = events(stack, sid)
    assert [t for t, _ in evs] == ["payment.approved", "refund.succeeded"]
    assert evs[1][1]["object"] == "refund" and evs[1][1]["sequence"] == 2 and evs[1][1]["data"] == body


@pytest.mark.parametrize("amount", [0, "0", "12.50", 12.5, -5, "-5", True, "abc", "", [], {}, "１２"])
def test_never_a_silent_zero(stack, amount):
    _, pid = paid(stack)
    r = refund(stack, pid, amount=amount)
    assert r.status_code == 400
    assert r.get_json()["error"]["code"] == "invalid_amount" and r.get_json()["error"]["fields"]["amount"] == "invalid_amount"
    assert refunds_at_gateway(stack) == []


def test_partial_refunds_up_to_the_captured_amount(stack):
    _, pid = paid(stack)
    first = refund(stack, pid, amount="1000", disposition_code="PARTIAL", reference="A")
    assert first.status_code == 201 and first.get_json()["amount"] == 1000
    assert payment(stack, pid)["status"] == "partially_refunded"
    over = refund(stack, pid, amount=1501, disposition_code="PARTIAL", reference="B")
    assert over.status_code == 422 and over.get_json()["error"]["code"] == "amount_exceeds_refundable"
    rest = refund(stack, pid, disposition_code="PARTIAL", reference="C")  # omitted: all that is left
    assert rest.status_code == 201 and rest.get_json()["amount"] == 1500
    p = payment(stack, pid)
    assert (p["status"], p["amount_refunded"]) == ("refunded", 2500)
    nothing = refund(stack, pid, disposition_code="PARTIAL", reference="D")
    assert nothing.status_code == 409 and nothing.get_json()["error"]["code"] == "payment_not_refundable"


def test_the_same_disposition_returns_the_first_refund(stack):
    _, pid = paid(stack)
    first = refund(stack, pid, amount=500, conversation_id="c1", key="k1").get_json()
    again = refund(stack, pid, amount=500, conversation_id="c1", key="k2")
    assert again.status_code == 200 and again.get_json()["refund_id"] == first["refund_id"]
    absent_vs_null = refund(stack, pid, amount=500, conversation_id="c1", reference=None, key="k3")
    assert absent_vs_null.status_code == 200 and absent_vs_null.get_json()["refund_id"] == first["refund_id"]
    other = refund(stack, pid, amount=500, conversation_id="c2", key="k4")
    assert other.status_code == 201 and other.get_json()["refund_id"] != first["refund_id"]
    assert len(refunds_at_gateway(stack)) == 2


def test_fifty_concurrent_identical_requests_refund_once(stack):
    sid, pid = paid(stack)
    results = []
    start = threading.Barrier(50)

    def go(i):
        with stack.app.test_client() as http:
            start.wait()
            r = http.post("/v1/refunds", json={"payment_id": pid, "disposition_code": "REFUND_FULL",
                                               "conversation_id": "conv-9", "amount": "2500"},
                          headers={**stack.auth(), "Idempotency-Key": f"key-{i}"})
            results.append((r.status_code, r.get_json()))

    threads = [threading.Thread(target=go, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = [s for s, _ in results]
    assert statuses.count(201) == 1 and statuses.count(200) == 49, statuses
    assert len({body["refund_id"] for _, body in results}) == 1
    assert len(refunds_at_gateway(stack)) == 1
    assert types(stack, sid).count("refund.succeeded") == 1
    assert payment(stack, pid)["amount_refunded"] == 2500


def test_a_hold_cannot_be_refunded(stack):
    _, pid = paid(stack, intent="hold")
    r = refund(stack, pid)
    assert r.status_code == 409 and r.get_json()["error"]["code"] == "payment_not_refundable"


def test_unknown_or_foreign_payment(stack):
    _, pid = paid(stack)
    assert refund(stack, "pay_nope").get_json()["error"]["code"] == "payment_not_found"
    other = stack.token_for(stack.new_client("other"))
    assert refund(stack, pid, token=other).status_code == 404
    assert stack.http.get("/v1/refunds/re_nope", headers=stack.auth()).status_code == 404


def test_a_gateway_refusal_is_a_failed_refund_in_the_review_queue(stack):
    sid, pid = paid(stack)
    p = payment(stack, pid)
    stack.services.gateway.refund(RefundRequest(p["gateway_reference"], "elsewhere", 2500, "USD"))  # refunded outside
    r = refund(stack, pid)
    assert r.status_code == 201  # a new refund, which the gateway refused: its status says so
    body = r.get_json()
    assert (body["status"], body["failure_code"], body["manual_review"], body["review_disposition"]) == (
        "failed", "charge_already_refunded", "required", "Refund_Failed_Manual_Review")
    assert types(stack, sid) == ["payment.approved", "refund.failed"]
    assert payment(stack, pid)["amount_refunded"] == 0
    queue = stack.http.get("/v1/refunds?manual_review=required", headers=stack.auth()).get_json()
    assert [x["refund_id"] for x in queue["data"]] == [body["refund_id"]] and queue["has_more"] is False


def test_a_late_failure_goes_to_review_then_resolve_and_retry(stack):
    sid, pid = paid(stack, REFUND_FAILS)
    created = refund(stack, pid).get_json()
    assert created["status"] == "succeeded" and payment(stack, pid)["status"] == "refunded"
    assert deliver_sandbox_webhooks(stack) == 1  # Stripe reports the failure later, by webhook
    failed = stack.http.get(f"/v1/refunds/{created['refund_id']}", headers=stack.auth()).get_json()
    assert (failed["status"], failed["failure_code"], failed["manual_review"]) == (
        "failed", "expired_or_canceled_card", "required")
    p = payment(stack, pid)
    assert (p["status"], p["amount_refunded"]) == ("captured", 0)  # the money came back
    assert types(stack, sid) == ["payment.approved", "refund.succeeded", "refund.failed"]

    retried = post(stack, f"/v1/refunds/{created['refund_id']}/retry")
    assert retried.status_code == 200
    assert (retried.get_json()["status"], retried.get_json()["attempts"]) == ("succeeded", 2)
    assert retried.get_json()["manual_review"] == "resolved"
    assert len(refunds_at_gateway(stack)) == 2  # a new gateway attempt with its own key...
    not_in_review = post(stack, f"/v1/refunds/{created['refund_id']}/retry")
    assert not_in_review.status_code == 409 and not_in_review.get_json()["error"]["code"] == "refund_not_in_review"

    deliver_sandbox_webhooks(stack)  # ...which fails again (this card's refunds always do)
    again = stack.http.get(f"/v1/refunds/{created['refund_id']}", headers=stack.auth()).get_json()
    assert (again["status"], again["manual_review"]) == ("failed", "required")
    resolved = post(stack, f"/v1/refunds/{created['refund_id']}/resolve", {"note": "refunded by bank transfer"})
    assert resolved.status_code == 200
    assert (resolved.get_json()["manual_review"], resolved.get_json()["review_note"]) == (
        "resolved", "refunded by bank transfer")
    twice = post(stack, f"/v1/refunds/{created['refund_id']}/resolve", {"note": "again"})
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "refund_not_in_review"
    queue = stack.http.get("/v1/refunds?manual_review=required", headers=stack.auth()).get_json()
    assert queue["data"] == []


def test_the_cli_lists_the_review_queue(stack, monkeypatch):
    _, pid = paid(stack, REFUND_FAILS)
    refund_id = refund(stack, pid).get_json()["refund_id"]
    deliver_sandbox_webhooks(stack)
    settings = stack.services.settings
    for name, value in {"PAYGATE_ENV": "test", "PAYGATE_DATABASE_URL": settings.database_url,
                        "PAYGATE_REDIS_URL": settings.redis_url,
                        "PAYGATE_INSTANCE_PATH": str(settings.instance_path)}.items():
        monkeypatch.setenv(name, value)
    out = CliRunner().invoke(cli, ["refunds", "review"])
    assert out.exit_code == 0, out.output
    assert refund_id in out.output and "expired_or_canceled_card" in out.output and "1 refund awaiting" in out.output
    as_json = CliRunner().invoke(cli, ["refunds", "review", "--json"])
    assert json.loads(as_json.output.splitlines()[0])["refund_id"] == refund_id


def test_a_lost_refund_answer_is_reconciled_once(stack):
    sid, pid = paid(stack, VISA)
    stack.services.gateway.inject_fault("refund", "lost")
    body = refund(stack, pid).get_json()
    assert body["status"] == "pending"
    assert refund(stack, pid).get_json()["refund_id"] == body["refund_id"]  # the same disposition: no second one
    stack.clock.advance(121)
    assert stack.services.refunds.reconcile_due() == 1
    done = stack.http.get(f"/v1/refunds/{body['refund_id']}", headers=stack.auth()).get_json()
    assert done["status"] == "succeeded" and len(refunds_at_gateway(stack)) == 1
    assert types(stack, sid) == ["payment.approved", "refund.succeeded"]
