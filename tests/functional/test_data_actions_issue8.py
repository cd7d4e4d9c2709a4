"""The Genesys kit for subscriptions, amount rules, the busy pre-check and conversation close, proven by
execution: each export of ``integrations/genesys/data-actions/`` added or changed for them runs through
:mod:`integrations.genesys.harness` against the real app on a real database and Redis (``stack``), the way
recipes 1, 3, 7, 8 and 9 of docs/architect-recipes.md call them. The static checks every export gets
(format, escaping, OpenAPI contract, renamed fields) are in ``tests/functional/test_data_actions.py``.
"""

from __future__ import annotations

import json

import jsonschema
import pytest

from app.openapi import openapi_document
from integrations.genesys.harness import PROCESSING, REMOTE_ENDPOINT, ActionRunner, FlaskTransport
from tests.functional.test_data_actions import (
    ACTIONS,
    BASE,
    SAMPLE_INPUTS,
    SAMPLE_RESPONSES,
    _schema,
    credentials_for,
    run_fake,
)
from tokenizer.gateways.sandbox import TIMEOUT_CARD

VISA = "4242424242424242"
ANI = "tel:+13175550100"
SIP_ANI = "sip:+13175550100@10.0.0.1;user=phone"


@pytest.fixture
def runner(stack):
    return ActionRunner(credentials_for(stack), FlaskTransport(stack.http))


def card(sid: str, key: str, number: str = VISA, **extra) -> dict:
    return {"sessionId": sid, "cardNumber": number, "expMonth": "12", "expYear": "30", "cvc": "123",
            "idempotencyKey": f"{sid}:{key}", **extra}


def create(runner, conversation: str, account: str, key: str = "1", **inputs) -> dict:
    created = runner.run("create-payment-session.custom.json", {
        "conversationId": conversation, "customerAccountId": account, "currency": "USD", "channel": "voice",
        "idempotencyKey": f"{conversation}:create:{key}", **inputs})
    assert created.success, created.error
    return created.output


# -- the new optional inputs, against the OpenAPI document ------------------------------------------------
@pytest.mark.parametrize("name, path, inputs", [
    ("create-payment-session.custom.json", "/v1/payment-sessions",
     {"amountMin": 500, "amountMax": 10000, "maxAttempts": 2, "intent": "payment"}),
    ("create-payment-session.custom.json", "/v1/payment-sessions",
     {"amount": 999, "intent": "subscription", "subscriptionInterval": "month", "subscriptionIntervalCount": 3,
      "subscriptionAmount": 1999}),
    ("submit-card.custom.json", "/v1/payment-sessions/{session_id}/card", {"ani": SIP_ANI, "callId": "conv-1"}),
    ("create-subscription.custom.json", "/v1/subscriptions", {"participantId": "part-1"}),
])
def test_the_new_inputs_send_documented_bodies(name, path, inputs):
    doc = openapi_document(BASE)
    operation = doc["paths"][path]["post"]
    payload = {**SAMPLE_INPUTS[name], **inputs}
    if "amountMin" in inputs:
        payload.pop("amount")
    result, fake = run_fake(name, SAMPLE_RESPONSES.get(name, {}), payload)
    assert result.success, result.error
    body = json.loads(fake.sent[-1][3])
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator(_schema(doc, schema)).validate(body)
    if "amountMin" in inputs:
        assert "amount" not in body and body["amount_range"] == {"min": 500, "max": 10000}
        assert body["max_attempts"] == 2
    if "subscriptionInterval" in inputs:
        assert body["subscription"] == {"interval": "month", "interval_count": 3, "amount": 1999}
    if "ani" in inputs:
        assert (body["ani"], body["call_id"]) == (SIP_ANI, "conv-1")


def test_without_the_new_inputs_the_bodies_are_unchanged():
    _, fake = run_fake("submit-card.custom.json", SAMPLE_RESPONSES["submit-card.custom.json"])
    assert not {"ani", "call_id"} & set(json.loads(fake.sent[-1][3]))
    _, fake = run_fake("create-payment-session.custom.json", SAMPLE_RESPONSES["create-payment-session.custom.json"])
    body = json.loads(fake.sent[-1][3])
    assert body["amount"] == 2500 and not {"amount_range", "max_attempts", "subscription"} & set(body)


def test_a_session_without_an_amount_reads_as_zero_and_not_set():
    view = {**SAMPLE_RESPONSES["get-payment-session.custom.json"], "status": "pending", "outcome": None,
            "amount": None, "amount_range": {"min": 500, "max": 10000}}
    result, _ = run_fake("get-payment-session.custom.json", view)
    assert result.success, result.error
    out = result.output
    assert (out["amount"], out["amountSet"], out["amountMin"], out["amountMax"]) == (0, False, 500, 10000)
    fixed, _ = run_fake("get-payment-session.custom.json", SAMPLE_RESPONSES["get-payment-session.custom.json"])
    assert (fixed.output["amount"], fixed.output["amountSet"], fixed.output["amountMin"]) == (2500, True, 0)
    assert (fixed.output["subscriptionId"], fixed.output["cancelReason"]) == ("", "")


def test_call_ani_is_a_valid_send_link_address():
    schema = ACTIONS["send-payment-link.custom.json"]["contract"]["input"]["inputSchema"]
    for to in ("+15551234567", ANI, SIP_ANI):
        jsonschema.Draft4Validator(schema).validate({**SAMPLE_INPUTS["send-payment-link.custom.json"], "toAddress": to})
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate({**SAMPLE_INPUTS["send-payment-link.custom.json"],
                                                     "toAddress": "call me"})


# -- against the real app ----------------------------------------------------------------------------------
def test_voice_subscription_enrollment(stack, runner):
    """Recipe 7: a subscription session paid by voice creates its subscription; a stored token subscribes
    through Create Subscription once per idempotency key; Cancel Subscription stops it and is safe to repeat."""
    created = create(runner, "conv-sub", "ACME-SUB", amount=999, intent="subscription",
                     subscriptionInterval="month", subscriptionIntervalCount=1)
    sid = created["sessionId"]
    assert created["amount"] == 999
    paid = runner.run("submit-card.custom.json", card(sid, "1", ani=ANI, callId="conv-sub"))
    assert paid.success, paid.error
    assert (paid.output["outcome"], paid.output["busy"], paid.output["amountError"]) == ("approved", False, "")
    assert json.loads(paid.requests[-1].body)["ani"] == ANI
    session = runner.run("get-payment-session.custom.json", {"sessionId": sid})
    assert session.success, session.error
    out = session.output
    assert out["subscriptionId"].startswith("sub_"), out
    assert (out["intent"], out["subscriptionInterval"], out["subscriptionIntervalCount"]) == (
        "subscription", "month", 1)

    enroll = {"token": paid.output["token"], "amount": 1500, "currency": "USD", "interval": "month",
              "intervalCount": 1, "customerAccountId": "ACME-SUB", "conversationId": "conv-sub",
              "reference": "GOLD", "idempotencyKey": "conv-sub:subscribe:ACME-SUB"}
    sub = runner.run("create-subscription.custom.json", enroll)
    assert sub.success, sub.error
    s = sub.output
    assert s["subscriptionId"].startswith("sub_") and s["subscriptionId"] != out["subscriptionId"]
    assert (s["status"], s["active"], s["amount"], s["interval"], s["intervalCount"], s["reference"]) == (
        "active", True, 1500, "month", 1, "GOLD")
    assert s["nextChargeAt"] and s["cancelReason"] == "" and s["canceledAt"] == ""
    again = runner.run("create-subscription.custom.json", enroll)  # a Genesys retry after a timeout
    assert again.success and again.output["subscriptionId"] == s["subscriptionId"]
    payments = runner.run("list-payments.custom.json", {"conversationId": "conv-sub"})
    charged = [p for p in payments.output["paymentIds"]]
    assert len(charged) == len(set(charged))  # no payment listed twice

    canceled = runner.run("cancel-subscription.custom.json", {"subscriptionId": s["subscriptionId"]})
    assert canceled.success, canceled.error
    assert (canceled.output["status"], canceled.output["active"], canceled.output["cancelReason"]) == (
        "canceled", False, "requested")
    assert canceled.output["canceledAt"]
    twice = runner.run("cancel-subscription.custom.json", {"subscriptionId": s["subscriptionId"]})
    assert twice.success and twice.output["status"] == "canceled"
    unknown = runner.run("cancel-subscription.custom.json", {"subscriptionId": "sub_nope"})
    assert not unknown.success and unknown.status == 404 and unknown.error_code == REMOTE_ENDPOINT
    assert VISA not in json.dumps([paid.output, session.output, sub.output, canceled.output])


def test_caller_entered_amount(stack, runner):
    """Recipe 8: a session with an amount range and no amount; a card first is amount_required; every
    Set Payment Amount outcome is a Success; the accepted amount is charged."""
    created = create(runner, "conv-amount", "ACME-AMT", amountMin=500, amountMax=10000, maxAttempts=2)
    sid = created["sessionId"]
    assert created["amount"] == 0
    before = runner.run("get-payment-session.custom.json", {"sessionId": sid})
    assert before.success, before.error  # a null amount no longer breaks the action
    b = before.output
    assert (b["amount"], b["amountSet"], b["amountMin"], b["amountMax"], b["maxAttempts"]) == (0, False, 500, 10000, 2)

    early = runner.run("submit-card.custom.json", card(sid, "early"))
    assert early.success, early.error
    assert (early.output["outcome"], early.output["amountError"], early.output["busy"]) == (
        "invalid", "amount_required", False)

    outcomes = {}
    for keyed in ("250", "20000", "12a", "", "2500"):
        r = runner.run("set-payment-amount.custom.json", {"sessionId": sid, "amount": keyed})
        assert r.success, (keyed, r.error)  # every outcome on the Success path
        outcomes[keyed] = r.output
        assert r.output["message"]
    assert (outcomes["250"]["outcome"], outcomes["250"]["ok"], outcomes["250"]["min"]) == ("below_minimum", False, 500)
    assert (outcomes["20000"]["outcome"], outcomes["20000"]["max"]) == ("above_maximum", 10000)
    assert outcomes["12a"]["outcome"] == "invalid" and outcomes[""]["outcome"] == "invalid"
    assert (outcomes["2500"]["outcome"], outcomes["2500"]["ok"], outcomes["2500"]["amount"]) == ("ok", True, 2500)

    after = runner.run("get-payment-session.custom.json", {"sessionId": sid})
    assert (after.output["amount"], after.output["amountSet"]) == (2500, True)
    paid = runner.run("submit-card.custom.json", card(sid, "1", ani=SIP_ANI))
    assert paid.success and paid.output["outcome"] == "approved", paid.output or paid.error
    listed = runner.run("list-payments.custom.json", {"conversationId": "conv-amount"})
    assert (listed.output["amount"], listed.output["status"]) == (2500, "captured")


def test_busy_pre_check_and_busy_outcome(stack, runner):
    """Seed 000: a payment of the customer held processing (the sandbox timeout card) makes the pre-check
    say busy and a second session's card answer busy without using an attempt; another customer is free."""
    first = create(runner, "conv-busy-1", "ACME-BUSY", amount=2500)["sessionId"]
    free = runner.run("check-customer-busy.custom.json", {"customerAccountId": "ACME-BUSY"})
    assert free.success, free.error
    assert free.output == {"busy": False, "sessionId": "", "processingSessionIds": [], "hasMore": False}

    held = runner.run("submit-card.custom.json", card(first, "1", number=TIMEOUT_CARD))
    assert held.success, held.error
    assert runner.run("get-payment-session.custom.json", {"sessionId": first}).output["status"] == "processing"

    busy = runner.run("check-customer-busy.custom.json", {"customerAccountId": "ACME-BUSY"})
    assert busy.output == {"busy": True, "sessionId": first, "processingSessionIds": [first], "hasMore": False}
    other = runner.run("check-customer-busy.custom.json", {"customerAccountId": "ACME-OTHER"})
    assert other.output["busy"] is False

    second = create(runner, "conv-busy-2", "ACME-BUSY", amount=1000)["sessionId"]
    answer = runner.run("submit-card.custom.json", card(second, "1"))
    assert answer.success, answer.error
    out = answer.output
    assert (out["outcome"], out["busy"], out["status"], out["terminal"]) == ("busy", True, "pending", False)
    assert out["message"] and out["token"] == ""
    polled = runner.run("get-payment-session.custom.json", {"sessionId": second}).output
    assert (polled["status"], polled["attempts"]) == ("pending", 0)  # no attempt used

    elsewhere = create(runner, "conv-busy-3", "ACME-OTHER", amount=1000)["sessionId"]
    paid = runner.run("submit-card.custom.json", card(elsewhere, "1"))
    assert paid.output["outcome"] == "approved"  # another customer is not held up


def test_close_conversation(stack, runner):
    """Recipe 9: closing cancels the conversation's pending sessions, leaves the processing one, is safe to
    repeat, and leaves other conversations alone."""
    a = create(runner, "conv-close", "ACME-C1", key="a", amount=1000)["sessionId"]
    b = create(runner, "conv-close", "ACME-C2", key="b", amount=2000)["sessionId"]
    busy = create(runner, "conv-close", "ACME-C3", key="c", amount=3000)["sessionId"]
    keep = create(runner, "conv-keep", "ACME-C1", amount=1000)["sessionId"]
    assert runner.run("submit-card.custom.json", card(busy, "1", number=TIMEOUT_CARD)).success

    closed = runner.run("close-conversation.custom.json", {"conversationId": "conv-close"})
    assert closed.success, closed.error
    out = closed.output
    assert sorted(out["canceledSessionIds"]) == sorted([a, b]) and out["processingSessionIds"] == [busy]
    assert (out["canceledAny"], out["processingAny"]) == (True, True)
    for sid in (a, b):
        got = runner.run("get-payment-session.custom.json", {"sessionId": sid}).output
        assert (got["status"], got["terminal"], got["cancelReason"]) == ("canceled", True, "conversation_ended")
    assert runner.run("get-payment-session.custom.json", {"sessionId": keep}).output["status"] == "pending"

    again = runner.run("close-conversation.custom.json", {"conversationId": "conv-close"})
    assert again.success, again.error
    assert (again.output["canceledSessionIds"], again.output["canceledAny"]) == ([], False)
    nothing = runner.run("close-conversation.custom.json", {"conversationId": "conv-never-seen"})
    assert nothing.success and nothing.output == {"canceledSessionIds": [], "processingSessionIds": [],
                                                  "canceledAny": False, "processingAny": False}


def test_send_link_takes_call_ani_as_it_is(stack, runner):
    """Recipe 2 passes Call.Ani: the action's contract lets a tel:/sip: URI through to paygate, which
    answers as for an E.164 number (here 409: the client has no Genesys settings), never a 400."""
    sid = create(runner, "conv-ani", "ACME-ANI", amount=1000)["sessionId"]
    for i, to in enumerate((ANI, SIP_ANI)):
        sent = runner.run("send-payment-link.custom.json", {"sessionId": sid, "toAddress": to, "messengerType": "sms",
                                                            "idempotencyKey": f"{sid}:sms:{i}"})
        assert sent.error_code != PROCESSING, sent.error  # the input contract accepted it
        assert not sent.success and sent.status == 409, sent.error
        assert "genesys_not_configured" in sent.error["userMessage"]
