"""The README's first command: ``paygate demo`` (what ``scripts/demo.sh`` ends in) starts everything on
the embedded defaults, prints a checkout link that really pays in Chromium, texts the link through the
Genesys emulator, writes the outcome back onto the emulator's conversation, and Ctrl-C stops it all. The
contact-center items it prints are real too: a top-up link with an amount field, an active subscription keyed
by DTMF (a MOTO payment), a link that answers busy, a closed conversation's canceled link, the report commands."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from e2e.conftest import ROOT, poll
from e2e.test_checkout import fill
from tests import services

pytestmark = pytest.mark.e2e


BUSY_WORDS = "A previous payment on your account is still being processed. Please wait a moment and try again."


def check_contact_center(page, banner: str, base: str, emulator: str) -> None:
    """The banner's "Contact center" items, checked through the API, the emulator and the pages."""
    token = re.search(r"export TOKEN='([^']+)'", banner).group(1)
    auth = {"Authorization": f"Bearer {token}"}

    def link_after(label: str) -> str:
        return re.search(r"http://\S+/checkout/\S+", banner[banner.index(label):]).group(0)

    # a top-up whose amount the customer types, suggested $25.00
    page.goto(link_after("A top-up where the customer chooses the amount"))
    amount = page.locator('input[name="amount"]')
    assert amount.is_visible() and amount.input_value() == "25.00"
    assert page.locator("#pay-button").inner_text().strip() == "Pay $25.00"

    # a monthly subscription keyed by DTMF with the caller's number: active, its first payment is MOTO
    sub_id = re.search(r"Subscription (sub_\S+): monthly", banner).group(1)
    sub = httpx.get(f"{base}/v1/subscriptions/{sub_id}", headers=auth).json()
    assert sub["status"] == "active" and sub["interval"] == "month" and sub["period"] == 1
    payment = httpx.get(f"{base}/v1/payments/{sub['last_payment_id']}", headers=auth).json()
    assert payment["entry_mode"] == "dtmf" and payment["moto"] is True and payment["subscription_id"] == sub_id
    assert f"payment\n      {payment['payment_id']} shows entry_mode dtmf and moto true" in banner
    created = poll(lambda: [e for e in httpx.get(f"{emulator}/api/received").json()
                            if e["type"] == "subscription.created" and e["body"]["data"]["subscription_id"] == sub_id],
                   timeout=30, what="subscription.created at the emulator")
    assert created[0]["verified"] is True
    # the printed clock moves and decline_next name this subscription's token
    assert f"/v1/sandbox/tokens/{sub['token']}/decline_next" in banner

    # the busy link: ACME-2002's first payment is processing, so paying the second answers busy, no attempt used
    processing = httpx.get(f"{base}/v1/payment-sessions", headers=auth,
                           params={"customer_account_id": "ACME-2002", "status": "processing"}).json()["data"]
    assert len(processing) == 1
    page.goto(link_after("Busy:"))
    fill(page, "4242424242424242")
    with page.expect_navigation():
        page.locator('button[type="submit"]').click()
    notice = page.locator("#busy-notice")
    notice.wait_for()
    assert notice.inner_text().strip() == BUSY_WORDS
    pending = httpx.get(f"{base}/v1/payment-sessions", headers=auth,
                        params={"customer_account_id": "ACME-2002", "status": "pending"}).json()["data"]
    assert [s["attempts"] for s in pending] == [0]

    # the closed conversation's link was canceled with the reason, and the emulator was told
    closed = re.search(r"Conversation close: conversation (\S+) ended with its link (ps_\S+)", banner)
    view = httpx.get(f"{base}/v1/payment-sessions/{closed.group(2)}", headers=auth).json()
    assert view["status"] == "canceled" and view["cancel_reason"] == "conversation_ended"
    assert view["conversation_id"] == closed.group(1)
    canceled = poll(lambda: [e for e in httpx.get(f"{emulator}/api/received").json()
                             if e["type"] == "payment_session.canceled" and e["session_id"] == closed.group(2)],
                    timeout=30, what="payment_session.canceled at the emulator")
    assert canceled[0]["verified"] is True and canceled[0]["body"]["data"]["cancel_reason"] == "conversation_ended"

    # the report: the printed curl answers today's payments as CSV, the subscription's first payment among them
    report = re.search(r'curl -s "(\S+/v1/reports/payments\.csv\?\S+)"', banner).group(1)
    r = httpx.get(report, headers=auth)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert payment["payment_id"] in r.text
    assert re.search(r"paygate report payments --since \S+ --until \S+ --client cli_", banner)

    # the printed HTML report command writes one offline file with charts of the demo's payments
    command = re.search(r"^ +(PAYGATE_INSTANCE_PATH=\S+ .*report html .*)$", banner, re.M).group(1)
    out_dir = services.state_dir() / "demo"
    done = subprocess.run(["bash", "-c", command], cwd=out_dir, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    html = (out_dir / "paygate-report.html").read_text()
    assert "<svg" in html and "<script" not in html

    # operations and the API reference, as the banner prints them
    assert httpx.get(f"{base}/readyz").json()["redis"] == "ok"
    assert httpx.get(f"{base}/v1/gateway-status", headers=auth).json()["state"] == "closed"
    assert f"API reference (browsable): {base}/docs" in banner
    assert httpx.get(f"{base}/docs").status_code == 200


def test_demo_prints_a_link_that_pays_and_writes_back(page):
    state = services.state_dir() / "demo"
    state.mkdir(exist_ok=True)
    port, emu_port = services.free_port(), services.free_port()
    env = {**os.environ, "PAYGATE_INSTANCE_PATH": str(state / "instance"), "PYTHONUNBUFFERED": "1"}
    env.pop("PAYGATE_REDIS_URL", None)  # the demo starts its own private Redis
    log_path = state / "demo.log"
    lines: list[str] = []
    with open(log_path, "w") as log:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "paygate"), "demo", "--port", str(port),
                                 "--emulator-port", str(emu_port)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)

        def pump():
            # Everything the demo's processes print goes to demo.log, which the final PCI scan reads. The
            # banner alone (between the ==== rules) stays in memory: it lists the sandbox test cards on
            # purpose, as documentation for the person running the demo.
            in_banner = False
            for line in proc.stdout:
                lines.append(line)
                rule = line.startswith("=====")
                if not (in_banner or rule):
                    log.write(line)
                    log.flush()
                if rule:
                    in_banner = not in_banner

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            banner = poll(lambda: "".join(lines) if "Press Ctrl-C" in "".join(lines) else None, timeout=90,
                          what="the demo banner")
            checkout = re.search(r"Checkout page:\s+(\S+)", banner).group(1)
            agent = re.search(r"Agent view \(status only\):\s+(\S+)", banner).group(1)
            emulator = f"http://127.0.0.1:{emu_port}"
            # the link went out as an SMS through the emulator's agentless messaging API
            (sms,) = httpx.get(f"{emulator}/api/genesys/messages").json()
            assert checkout in sms["textBody"] and sms["messengerType"] == "sms" and sms["toAddress"] == "+15550100199"

            page.goto(checkout)
            fill(page, "4242424242424242")
            page.locator('button[type="submit"]').click()
            page.get_by_text("approved", exact=False).first.wait_for()

            received = poll(lambda: [e for e in httpx.get(f"{emulator}/api/received").json()
                                     if e["type"] == "payment.approved"], timeout=30, what="the signed callback")
            assert received[0]["verified"] is True
            conv_id = httpx.get(f"{emulator}/api/genesys/state").json()["conversations"][0]["id"]

            def customer_attributes() -> dict:
                conv = httpx.get(f"{emulator}/api/genesys/conversations/{conv_id}").json()
                return next(p["attributes"] for p in conv["participants"] if p["purpose"] == "customer")

            poll(lambda: customer_attributes().get("paymentStatus") == "approved", timeout=30,
                 what="the write-back on the customer participant")
            assert customer_attributes()["paymentCardLast4"] == "4242"
            runs = poll(lambda: [x for x in httpx.get(f"{emulator}/api/genesys/state").json()["executions"]
                                 if x["inputData"].get("Flow.eventType") == "payment.approved"], timeout=30,
                        what="the billing workflow start")
            assert runs[0]["inputData"]["Flow.eventId"] == received[0]["event_id"]
            page.goto(agent)
            assert page.locator("#agent-status").get_attribute("data-status") == "approved"
            assert page.locator("#agent-merchant").inner_text() == "Acme Mobile"  # the demo client's display name
            check_contact_center(page, banner, f"http://127.0.0.1:{port}", emulator)
        finally:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                code = proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                raise
            reader.join(5)
    assert code == 0, "".join(lines[-20:])
    # nothing the demo started is left listening
    for p in (port, emu_port):
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{p}/", timeout=2)
