"""The README's first command: ``paygate demo`` (what ``scripts/demo.sh`` ends in) starts everything on
the embedded defaults, prints a checkout link that really pays in Chromium, texts the link through the
Genesys emulator, writes the outcome back onto the emulator's conversation, and Ctrl-C stops it all."""

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
            assert page.locator("#agent-status").inner_text() == "approved"
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
