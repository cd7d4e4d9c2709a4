"""The money after the authorization end to end: a hold paid in Chromium and captured through the executed data
actions, a refund by wrap-up code through the executed create-refund action, and a refund the bank refuses,
which reaches Genesys as the review disposition on the customer participant and as one workitem — all through
the real gunicorn, worker and Genesys emulator."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from e2e.conftest import poll
from e2e.test_checkout import fill
from integrations.genesys.harness import ActionRunner, HttpxTransport

pytestmark = pytest.mark.e2e

VISA = "4242424242424242"
REFUND_FAILS = "4000000000005126"
WORKTYPE_ID = "8f6b5c2e-3a4d-4e5f-9a7b-1c2d3e4f5a6b"


@pytest.fixture
def runner(e2e_stack):
    """The shipped data actions, executed by the harness with the paygate integration's credential."""
    with httpx.Client() as client:
        yield ActionRunner(e2e_stack.data_action_credentials(), HttpxTransport(client))


@pytest.fixture
def review_worktype(e2e_stack):
    """A Task Management worktype at the emulator, named in the e2e client's Genesys settings."""
    import subprocess

    from e2e.conftest import BIN, ROOT

    r = httpx.post(f"{e2e_stack.emulator}/api/genesys/worktypes", json={"id": WORKTYPE_ID, "name": "Refund review"})
    assert r.status_code in (200, 201), r.text
    subprocess.run([str(BIN / "paygate"), "clients", "genesys", e2e_stack.client["client_id"], "--worktype-id",
                    WORKTYPE_ID], cwd=ROOT, env=e2e_stack.env, check=True, stdout=subprocess.DEVNULL)
    return WORKTYPE_ID


def attribute(stack, conv: dict, name: str, value: str, timeout: float = 30) -> dict:
    """Polls until paygate's write-back set ``name`` to ``value`` on the customer participant."""
    def found():
        attrs = stack.participant_attributes(conv["id"], conv["customer"])
        return attrs if attrs.get(name) == value else None

    return poll(found, timeout=timeout, what=f"{name} = {value} on the customer participant")


def test_a_hold_paid_in_chromium_is_captured_through_the_data_actions(e2e_stack, runner, page):
    stack = e2e_stack
    conv = stack.create_conversation("message")
    key = uuid.uuid4().hex
    created = runner.run("create-payment-session.custom.json", {
        "conversationId": conv["id"], "participantId": conv["customer"], "customerAccountId": "ACME-HOLD",
        "intent": "hold", "amount": 5000, "currency": "USD", "channel": "messaging", "reference": "DISPUTE-7",
        "idempotencyKey": f"{conv['id']}:hold:{key}"})
    assert created.success, created.error
    sid = created.output["sessionId"]

    page.goto(created.output["checkoutUrl"])
    fill(page, VISA)
    with page.expect_navigation():
        page.locator('button[type="submit"]').click()
    page.get_by_text("approved", exact=False).first.wait_for()

    # the seed-002 mapping: HELD once authorized
    attribute(stack, conv, "paymentHoldStatus", "authorized")
    listed = runner.run("list-payments.custom.json", {"conversationId": conv["id"]})
    assert listed.success, listed.error
    assert (listed.output["found"], listed.output["status"], listed.output["holdState"]) == (True, "authorized", "HELD")
    payment_id = listed.output["paymentId"]
    assert listed.output["amountCapturable"] == 5000 and listed.output["cardLast4"] == "4242"

    captured = runner.run("capture-payment.custom.json", {"paymentId": payment_id, "amount": "3000",
                                                          "idempotencyKey": f"{payment_id}:capture:{key}"})
    assert captured.success, captured.error
    assert (captured.output["status"], captured.output["amountCaptured"], captured.output["holdState"]) == (
        "captured", 3000, "CHARGED")
    again = runner.run("void-payment.custom.json", {"paymentId": payment_id, "idempotencyKey": f"{payment_id}:void"})
    assert not again.success  # a captured hold cannot be released: the flow takes its Failure path

    attribute(stack, conv, "paymentHoldStatus", "captured")
    runs = poll(lambda: [x for x in stack.executions(conv["id"])
                         if x["inputData"].get("Flow.eventType") == "hold.captured"],
                timeout=30, what="the hold.captured workflow start")
    assert runs[0]["inputData"]["Flow.objectType"] == "payment"
    assert runs[0]["inputData"]["Flow.paymentId"] == payment_id and runs[0]["inputData"]["Flow.amount"] == "5000"
    webhooks = poll(lambda: [e for e in stack.received(sid) if e["type"] == "hold.captured"], timeout=30,
                    what="the signed hold.captured webhook")
    assert webhooks[0]["verified"] is True
    assert [e["type"] for e in stack.events(sid)] == ["hold.authorized", "hold.captured"]


def test_a_refund_by_wrap_up_code_through_the_data_action(e2e_stack, runner):
    stack = e2e_stack
    conv = stack.create_conversation("call")
    s = stack.create_session(conversation_id=conv["id"], participant_id=conv["customer"], channel="voice")
    paid = httpx.post(f"{stack.base}/v1/payment-sessions/{s['session_id']}/card",
                      headers={"Authorization": f"Bearer {stack.token}"},
                      json={"number": VISA, "exp_month": "12", "exp_year": "30", "cvc": "123"}).json()
    assert paid["outcome"] == "approved"
    payment_id = stack.session(s["session_id"])["payment_id"]

    # after-call work: the workflow finds the conversation's payment and refunds it by the wrap-up code
    acw = stack.create_conversation("call")
    inputs = {"paymentId": payment_id, "dispositionCode": "REFUND_FULL", "amount": "1000",
              "reason": "requested_by_customer", "conversationId": acw["id"], "participantId": acw["customer"],
              "idempotencyKey": f"{acw['id']}:refund"}
    refund = runner.run("create-refund.custom.json", inputs)
    assert refund.success, refund.error
    assert (refund.output["status"], refund.output["amount"], refund.output["needsReview"]) == (
        "succeeded", 1000, False)
    again = runner.run("create-refund.custom.json", {**inputs, "idempotencyKey": f"{acw['id']}:refund:retry"})
    assert again.success and again.output["refundId"] == refund.output["refundId"]  # once per disposition

    got = runner.run("get-refund.custom.json", {"refundId": refund.output["refundId"]})
    assert got.success and got.output["status"] == "succeeded"
    attribute(stack, acw, "paymentRefundStatus", "succeeded")
    assert stack.participant_attributes(acw["id"], acw["customer"])["paymentRefundId"] == refund.output["refundId"]
    payment = runner.run("get-payment.custom.json", {"paymentId": payment_id})
    assert (payment.output["status"], payment.output["amountRefunded"]) == ("partially_refunded", 1000)


def test_a_refund_the_bank_refuses_reaches_genesys_for_review(e2e_stack, runner, review_worktype):
    stack = e2e_stack
    conv = stack.create_conversation("call")
    s = stack.create_session(conversation_id=conv["id"], participant_id=conv["customer"], channel="voice")
    httpx.post(f"{stack.base}/v1/payment-sessions/{s['session_id']}/card",
               headers={"Authorization": f"Bearer {stack.token}"},
               json={"number": REFUND_FAILS, "exp_month": "12", "exp_year": "30", "cvc": "123"})
    payment_id = stack.session(s["session_id"])["payment_id"]

    refund = runner.run("create-refund.custom.json", {
        "paymentId": payment_id, "dispositionCode": "REFUND_FULL", "conversationId": conv["id"],
        "participantId": conv["customer"], "idempotencyKey": f"{conv['id']}:refund"})
    assert refund.success, refund.error
    refund_id = refund.output["refundId"]

    # the bank refuses it a moment later (Stripe's charge.refund.updated, posted by the worker to /webhooks/stripe)
    attrs = attribute(stack, conv, "paymentRefundReviewDisposition", "Refund_Failed_Manual_Review")
    assert (attrs["paymentRefundId"], attrs["paymentRefundStatus"]) == (refund_id, "failed")
    got = runner.run("get-refund.custom.json", {"refundId": refund_id})
    assert (got.output["status"], got.output["manualReview"], got.output["needsReview"]) == ("failed", "required", True)
    workitems = poll(lambda: httpx.get(f"{stack.emulator}/api/genesys/workitems",
                                       params={"external_tag": refund_id}).json(),
                     timeout=30, what="the review workitem")
    assert len(workitems) == 1 and workitems[0]["type"]["id"] == review_worktype
    assert "Refund_Failed_Manual_Review" in workitems[0]["description"]
    queue = httpx.get(f"{stack.base}/v1/refunds", params={"manual_review": "required"},
                      headers={"Authorization": f"Bearer {stack.token}"}).json()
    assert refund_id in [r["refund_id"] for r in queue["data"]]
    failed = poll(lambda: [e for e in stack.received() if e["type"] == "refund.failed" and refund_id in
                           json.dumps(e.get("body"))], timeout=30, what="the signed refund.failed webhook")
    assert failed[0]["verified"] is True
