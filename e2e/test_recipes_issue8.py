"""The recipes' data actions executed: for recipes 1, 3, 4, 7, 8 and 9 of docs/architect-recipes.md, every
paygate data action the recipe names is resolved to its shipped export and run through the execution
harness, in the order the recipe calls them, against the running stack (gunicorn, the worker, the Genesys
emulator). What Genesys itself would do around them (the caller's keys, the trigger's event, the
write-back's workflow start) is played by the test and the emulator."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from e2e.conftest import WORKFLOW_ID, poll
from integrations.genesys import RECIPES_DIR
from integrations.genesys.harness import ActionRunner, HttpxTransport, load_actions
from tests.unit.test_recipes import data_action_calls, declared_variables, load_flow

pytestmark = pytest.mark.e2e

VISA = "4242424242424242"
FILES = {a["name"]: name for name, a in load_actions().items()}


def recipe_actions(*files: str) -> list[str]:
    """The paygate data actions the recipe files call, first use first, in file order."""
    names: list[str] = []
    for file in files:
        for _kind, category, name, _spec in data_action_calls(load_flow(RECIPES_DIR / file)[1]):
            if category == "paygate" and name not in names:
                names.append(name)
    return names


class RecipeRunner:
    """Runs shipped actions by the name a recipe uses, recording the order."""

    def __init__(self, runner: ActionRunner):
        self.runner = runner
        self.played: list[str] = []

    def __call__(self, action_name: str, inputs: dict):
        result = self.runner.run(FILES[action_name], inputs)  # KeyError: the recipe names no shipped export
        if action_name not in self.played:
            self.played.append(action_name)
        return result

    def check(self, *files: str) -> None:
        """Every action of the recipes was executed, first uses in the recipes' order."""
        expected = recipe_actions(*files)
        assert [n for n in self.played if n in expected] == expected, (self.played, expected)


@pytest.fixture
def run(e2e_stack):
    with httpx.Client() as client:
        yield RecipeRunner(ActionRunner(e2e_stack.data_action_credentials(), HttpxTransport(client)))


def ok(result) -> dict:
    assert result.success, result.error
    return result.output


def secure_card_entry(run, sid: str, conversation_id: str, attempt: str, ani: str) -> dict:
    """Recipe 3's two secure actions, as the secure flow calls them."""
    inspected = ok(run("paygate - Inspect Card", {"cardNumber": VISA}))
    assert (inspected["allowed"], inspected["luhnValid"], inspected["cvcLength"]) == (True, True, 3)
    return ok(run("paygate - Submit Card", {
        "sessionId": sid, "cardNumber": VISA, "expMonth": "12", "expYear": "30", "cvc": "123", "ani": ani,
        "callId": conversation_id, "idempotencyKey": f"{sid}:card:{attempt}"}))


def test_recipe_1_and_4_topup_with_the_busy_pre_check_applied_once(e2e_stack, run):
    stack = e2e_stack
    conv = stack.create_conversation("message")
    account = f"ACME-TOPUP-{uuid.uuid4().hex[:8]}"
    assert ok(run("paygate - Check Customer Busy", {"customerAccountId": account}))["busy"] is False
    created = ok(run("paygate - Create Payment Session", {
        "conversationId": conv["id"], "participantId": conv["customer"], "customerAccountId": account,
        "intent": "topup", "amount": 2500, "currency": "USD", "channel": "messaging",
        "idempotencyKey": f"{conv['id']}:topup:1"}))
    sid = created["sessionId"]
    to = "+1555" + str(uuid.uuid4().int)[:7]
    assert ok(run("paygate - Send Payment Link", {"sessionId": sid, "toAddress": to, "messengerType": "sms",
                                                  "idempotencyKey": f"{sid}:sms:1"}))["sent"] is True
    # the customer pays (on the page in real life; the card endpoint here)
    paid = httpx.post(f"{stack.base}/v1/payment-sessions/{sid}/card", headers={"Authorization": f"Bearer {stack.token}"},
                      json={"number": VISA, "exp_month": "12", "exp_year": "30", "cvc": "123"}).json()
    assert paid["outcome"] == "approved"
    got = ok(run("paygate - Get Payment Session", {"sessionId": sid}))
    assert (got["terminal"], got["outcome"], got["intent"]) == (True, "approved", "topup")
    run.check("1-topup-messaging-bot.yaml")

    # recipe 4: the write-back starts the workflow with what it needs to apply the top-up once
    runs = poll(lambda: [x for x in stack.executions(conv["id"])
                         if x["inputData"].get("Flow.eventType") == "payment.approved"],
                timeout=30, what="the payment.approved workflow start")
    approved = [e for e in stack.events(sid) if e["type"] == "payment.approved"]
    assert len(approved) == 1 and runs[0]["flowId"] == WORKFLOW_ID
    inputs = runs[0]["inputData"]
    assert (inputs["Flow.intent"], inputs["Flow.eventId"], inputs["Flow.amount"]) == ("topup", approved[0]["id"], "2500")
    workflow = load_flow(RECIPES_DIR / "4-payment-result-workflow.yaml")[1]
    assert set(inputs) <= set(declared_variables(workflow))  # every input it gets is declared


def test_recipe_7_and_3_voice_enrollment(e2e_stack, run):
    stack = e2e_stack
    conv = stack.create_conversation("call")
    account = f"ACME-SUB-{uuid.uuid4().hex[:8]}"
    ani = "tel:+13175550142"
    assert ok(run("paygate - Check Customer Busy", {"customerAccountId": account}))["busy"] is False
    created = ok(run("paygate - Create Payment Session", {
        "conversationId": conv["id"], "participantId": conv["customer"], "customerAccountId": account,
        "intent": "subscription", "amount": 999, "currency": "USD", "channel": "voice", "reference": "Gold",
        "subscriptionInterval": "month", "subscriptionIntervalCount": 1,
        "idempotencyKey": f"{conv['id']}:subscription-session:{account}"}))
    sid = created["sessionId"]
    submitted = secure_card_entry(run, sid, conv["id"], "1", ani)
    assert submitted["outcome"] == "approved"
    session = ok(run("paygate - Get Payment Session", {"sessionId": sid}))
    assert session["subscriptionId"].startswith("sub_") and session["cardLast4"] == "4242"
    # a second caller leaves the secure flow without paying: the flow closes that link
    other = stack.create_session(conversation_id=conv["id"], customer_account_id=account + "-2", channel="voice")
    assert ok(run("paygate - Cancel Payment Session", {"sessionId": other["session_id"]}))["status"] == "canceled"

    # the card on file: Create Subscription from the token, the same key on a retry
    enroll = {"token": submitted["token"], "amount": 999, "currency": "USD", "interval": "month", "intervalCount": 1,
              "customerAccountId": account, "reference": "Gold", "conversationId": conv["id"],
              "idempotencyKey": f"{conv['id']}:subscribe:{account}"}
    sub = ok(run("paygate - Create Subscription", enroll))
    assert sub["active"] is True and sub["nextChargeAt"]
    assert ok(run("paygate - Create Subscription", enroll))["subscriptionId"] == sub["subscriptionId"]
    stopped = ok(run("paygate - Cancel Subscription", {"subscriptionId": sub["subscriptionId"]}))
    assert (stopped["status"], stopped["cancelReason"]) == ("canceled", "requested")
    run.check("7-subscription-enrollment-call.yaml")
    run.check("3-secure-card-entry.yaml")

    # the session's approval created the subscription: its event and the write-back say so
    sub_events = poll(lambda: [x for x in stack.executions(conv["id"])
                               if x["inputData"].get("Flow.subscriptionId") == session["subscriptionId"]],
                      timeout=30, what="a workflow start naming the session's subscription")
    assert sub_events


def test_recipe_8_caller_entered_amount(e2e_stack, run):
    stack = e2e_stack
    conv = stack.create_conversation("call")
    account = f"ACME-AMT-{uuid.uuid4().hex[:8]}"
    assert ok(run("paygate - Check Customer Busy", {"customerAccountId": account}))["busy"] is False
    gateway = ok(run("paygate - Get Gateway Status", {}))  # automation offered only while the breaker is closed
    assert (gateway["state"], gateway["automationAvailable"]) == ("closed", True)
    sid = ok(run("paygate - Create Payment Session", {
        "conversationId": conv["id"], "participantId": conv["customer"], "customerAccountId": account,
        "amountMin": 500, "amountMax": 10000, "currency": "USD", "channel": "voice", "maxAttempts": 3,
        "idempotencyKey": f"{conv['id']}:create:1"}))["sessionId"]
    low = ok(run("paygate - Set Payment Amount", {"sessionId": sid, "amount": "4" + "00"}))
    assert (low["outcome"], low["min"]) == ("below_minimum", 500)
    high = ok(run("paygate - Set Payment Amount", {"sessionId": sid, "amount": "250" + "00"}))
    assert high["outcome"] == "above_maximum"
    chosen = ok(run("paygate - Set Payment Amount", {"sessionId": sid, "amount": "25" + "00"}))
    assert (chosen["outcome"], chosen["amount"]) == ("ok", 2500)
    assert secure_card_entry(run, sid, conv["id"], "1", "sip:+13175550143@10.1.2.3;user=phone")["outcome"] == "approved"
    result = ok(run("paygate - Get Payment Session", {"sessionId": sid}))
    assert (result["outcome"], result["amount"], result["amountSet"]) == ("approved", 2500, True)
    run.check("8-caller-entered-amount-call.yaml")


def _matches(criterion: dict, event: dict) -> bool:
    value = event.get(criterion["jsonPath"])
    if criterion["operator"] == "In":
        return value in criterion["values"]
    if criterion["operator"] == "Equal":
        return value == criterion["value"]
    raise AssertionError(f"operator {criterion['operator']} not played by this test")


def test_recipe_9_the_trigger_closes_the_conversation(e2e_stack, run):
    stack = e2e_stack
    conv = stack.create_conversation("call")
    pending = stack.create_session(conversation_id=conv["id"], participant_id=conv["customer"], channel="voice")
    trigger = json.loads((RECIPES_DIR / "9-close-on-conversation-end-trigger.json").read_text(encoding="utf-8"))
    # the customer.end detail event Genesys publishes when the caller hangs up
    event = {"eventTime": 1795000000000, "conversationId": conv["id"], "participantId": conv["customer"],
             "mediaType": "VOICE", "disconnectType": "PEER", "direction": "INBOUND"}
    assert all(_matches(c, event) for c in trigger["matchCriteria"])
    workflow = load_flow(RECIPES_DIR / "9-close-on-conversation-end-workflow.yaml")[1]
    inputs = {v for v, spec in declared_variables(workflow).items() if spec.get("isInput")}
    flow = {v: event[v.removeprefix("Flow.")] for v in inputs}  # TopLevelPrimitives: Flow.<field>
    (spec,) = [s for _, _, n, s in data_action_calls(workflow) if n == "paygate - Close Conversation"]
    action_inputs = {k: flow[v["exp"]] for k, v in spec["inputs"].items()}
    closed = ok(run("paygate - Close Conversation", action_inputs))
    assert closed["canceledSessionIds"] == [pending["session_id"]] and closed["canceledAny"] is True
    assert stack.session(pending["session_id"])["status"] == "canceled"
    assert ok(run("paygate - Close Conversation", action_inputs))["canceledAny"] is False  # a second delivery
    run.check("9-close-on-conversation-end-workflow.yaml")
    canceled = poll(lambda: [e for e in stack.events(pending["session_id"]) if e["type"] == "payment_session.canceled"],
                    timeout=15, what="payment_session.canceled")
    assert canceled[0]["data"]["cancel_reason"] == "conversation_ended"
