"""Genesys journeys end to end: the emulator plays the secure flow a voice caller keys the card into,
and a messaging journey is driven through the shipped data actions; both are followed to the
write-back in Genesys (participant attributes, workflow start), the signed webhook, and the pages a
person sees in Chromium."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from e2e.conftest import SECURE_FLOW_ID, WORKFLOW_ID, poll
from e2e.test_checkout import fill
from integrations.genesys.harness import ActionRunner, HttpxTransport

pytestmark = pytest.mark.e2e

AMEX = "378282246310005"      # keyed as 3782 822463 10005
AMEX_CVC = "7294"             # distinctive, so the PCI scan can look for it (tests/pci_scan.py TEST_CVCS)
VISA = "4242424242424242"


def pan_leaks(html: str, pan: str) -> list[str]:
    """Parts of ``pan`` found in ``html`` beyond its last four digits: the full number, its first six,
    or any run of five or more consecutive digits of it (digits separated by one space or dash are
    joined first, so a grouped number is found too)."""
    joined = re.sub(r"(?<=\d)[ \-\u00a0](?=\d)", "", html)
    windows = {pan[i:i + 5] for i in range(len(pan) - 4)} - {pan[-5:]}
    found = [w for w in sorted(windows) if w in joined]
    found += [label for label, part in (("full number", pan), ("first six", pan[:6])) if part in joined]
    # the last five digits are one digit more than the last four: only a problem next to more of the PAN
    if re.search(rf"(?<!\d){re.escape(pan[-5:])}(?!\d)", joined):
        found.append("last five")
    return found


def test_pan_leaks_finds_more_than_the_last_four():
    assert pan_leaks("Card: American Express ending 0005", AMEX) == []
    grouped = pan_leaks("3782 822463 10005", AMEX)
    assert {"full number", "first six", "37828", "31000"} <= set(grouped) and "last five" not in grouped
    assert pan_leaks("bin 378282", AMEX) == ["37828", "78282", "first six"]
    assert pan_leaks("ending 10005", AMEX) == ["last five"]


def approved_attributes(stack, conv: dict) -> dict:
    """Polls until paygate's write-back marked the customer participant approved; its attributes."""
    def attributes():
        found = stack.participant_attributes(conv["id"], conv["customer"])
        return found if found.get("paymentStatus") == "approved" else None

    return poll(attributes, timeout=30, what="paymentStatus approved on the customer participant")


def approved_runs(stack, conv: dict) -> list[dict]:
    """Polls until the workflow was started for the conversation's payment.approved event."""
    return poll(lambda: [x for x in stack.executions(conv["id"])
                         if x["inputData"].get("Flow.eventType") == "payment.approved"],
                timeout=30, what="the payment.approved workflow start")


def test_voice_caller_keys_an_amex_into_the_secure_flow(e2e_stack, page):
    stack = e2e_stack
    conv = stack.create_conversation("call")
    s = stack.create_session(conversation_id=conv["id"], participant_id=conv["customer"], channel="voice",
                             amount=4200, customer_account_id="ACME-VOICE")
    sid = s["session_id"]

    # the agent's Script starts the secure flow for the caller (https://help.mypurecloud.com/articles/about-secure-flows/)
    base = f"{stack.emulator}/api/v2/conversations/{conv['id']}/participants/{conv['customer']}/secureivrsessions"
    r = httpx.post(base, headers=stack.genesys_auth(), json={
        "flowId": SECURE_FLOW_ID, "userData": sid, "sourceParticipantId": conv["agent"], "disconnect": False})
    assert r.status_code == 200, r.text
    secure = r.json()
    assert (secure["state"], secure["flow"]["id"], secure["userData"]) == ("PENDING", SECURE_FLOW_ID, sid)

    # the caller keys the card; the flow asks what inspect says this brand needs
    r = httpx.post(f"{stack.emulator}/api/genesys/secure-sessions/{secure['id']}/keys", timeout=60, json={
        "card_number": AMEX, "exp_month": "12", "exp_year": "30", "cvc": AMEX_CVC})
    assert r.status_code == 200, r.text
    played = r.json()
    assert played["state"] == "COMPLETED", played["steps"]
    steps = played["steps"]
    inspect = next(st for st in steps if st["name"] == "paygate - Inspect Card")
    assert inspect["success"] and (inspect["output"]["brand"], inspect["output"]["cvcLength"]) == ("amex", 4)
    cvc_step = next(st for st in steps if st["kind"] == "collect_input" and st["name"] == "Security code")
    assert (cvc_step["digits"], cvc_step["result"], cvc_step["secure"]) == (4, "success", True)
    submit = next(st for st in steps if st["name"] == "paygate - Submit Card")
    assert submit["success"] and submit["output"]["outcome"] == "approved"
    assert submit["output"]["cardLast4"] == "0005"
    assert httpx.get(f"{base}/{secure['id']}", headers=stack.genesys_auth()).json()["state"] == "COMPLETED"
    # the secure flow handed its result back to the agent participant
    agent = stack.participant_attributes(conv["id"], conv["agent"])
    assert (agent["paymentSessionId"], agent["paymentOutcome"], agent["paymentCardLast4"]) == (sid, "approved", "0005")

    # paygate's write-back onto the customer participant, string values only (docs/api.md, "Genesys write-back")
    customer = approved_attributes(stack, conv)
    assert (customer["paymentCardBrand"], customer["paymentCardLast4"], customer["paymentSessionId"]) == \
        ("amex", "0005", sid)
    assert all(isinstance(v, str) for v in customer.values())

    approved = [e for e in stack.events(sid) if e["type"] == "payment.approved"]
    assert len(approved) == 1
    runs = approved_runs(stack, conv)
    assert len(runs) == 1 and runs[0]["flowId"] == WORKFLOW_ID
    assert all(key.startswith("Flow.") for key in runs[0]["inputData"])
    assert runs[0]["inputData"]["Flow.eventId"] == approved[0]["id"]
    assert runs[0]["inputData"]["Flow.sessionId"] == sid

    # the agent view: approved, the last four, nothing more of the number
    page.goto(s["agent_url"])
    assert page.locator("#agent-status").get_attribute("data-status") == "approved"
    assert "0005" in page.locator("#agent-card").inner_text()
    html = page.content()
    (stack.logs / f"agent-view-{sid}.html").write_text(html, encoding="utf-8")
    assert pan_leaks(html, AMEX) == []


@pytest.fixture
def runner(e2e_stack):
    """The shipped data actions, executed by the harness with the paygate integration's credential."""
    with httpx.Client() as client:
        yield ActionRunner(e2e_stack.data_action_credentials(), HttpxTransport(client))


def test_messaging_link_through_the_shipped_data_actions(e2e_stack, runner, page):
    stack = e2e_stack
    conv = stack.create_conversation("message")
    key = uuid.uuid4().hex
    created = runner.run("create-payment-session.custom.json", {
        "conversationId": conv["id"], "participantId": conv["customer"], "customerAccountId": "ACME-CHAT",
        "amount": 1999, "currency": "USD", "channel": "messaging", "reference": "INV-E2E",
        "idempotencyKey": f"{conv['id']}:create:{key}"})
    assert created.success, created.error
    sid = created.output["sessionId"]
    to = "+1555" + str(uuid.uuid4().int)[:7]
    sent = runner.run("send-payment-link.custom.json", {
        "sessionId": sid, "toAddress": to, "messengerType": "sms", "idempotencyKey": f"{sid}:sms:1"})
    assert sent.success, sent.error
    assert (sent.output["sent"], sent.output["to"], sent.output["messengerType"]) == (True, to, "sms")

    # the customer's phone: the agentless SMS at the emulator carries the checkout link
    messages = httpx.get(f"{stack.emulator}/api/genesys/messages", params={"to": to}).json()
    assert len(messages) == 1 and messages[0]["fromAddress"] == "+13175550100"
    assert messages[0]["id"] == sent.output["messageId"]
    link = re.search(r"https?://\S+/checkout/" + re.escape(sid) + r"\?\S+", messages[0]["textBody"]).group(0)
    assert link == created.output["checkoutUrl"]

    page.goto(link)
    fill(page, VISA)
    with page.expect_navigation():
        page.locator('button[type="submit"]').click()
    page.get_by_text("approved", exact=False).first.wait_for()

    got = runner.run("get-payment-session.custom.json", {"sessionId": sid})
    assert got.success, got.error
    assert (got.output["status"], got.output["outcome"], got.output["terminal"]) == ("approved", "approved", True)
    assert (got.output["cardBrand"], got.output["cardLast4"]) == ("visa", "4242")

    customer = approved_attributes(stack, conv)
    assert customer["paymentToken"] == got.output["token"] and customer["paymentCardLast4"] == "4242"
    assert all(isinstance(v, str) for v in customer.values())
    runs = approved_runs(stack, conv)
    assert runs[0]["flowId"] == WORKFLOW_ID and runs[0]["inputData"]["Flow.channel"] == "messaging"
    webhooks = poll(lambda: [e for e in stack.received(sid) if e["type"] == "payment.approved"],
                    timeout=30, what="the signed payment.approved webhook")
    assert webhooks[0]["verified"] is True and webhooks[0]["event_id"] == runs[0]["inputData"]["Flow.eventId"]
