"""The merchant's identity in Chromium (docs/api.md, "Merchant identity" and "Agent view"): the page's title and
heading name the client's display name, its support phone is a tel: link and its accent colour reaches the pay
button under the strict CSP; the agent view names the merchant and tells the attempts in words. Screenshots go to
``$PAYGATE_SCREENSHOT_DIR`` (default /tmp/paygate-merchant) for review."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from .conftest import ROOT
from .test_checkout import fill

SHOTS = Path(os.environ.get("PAYGATE_SCREENSHOT_DIR", "/tmp/paygate-merchant"))


def _axe_violations(page) -> list[str]:
    """axe-core's WCAG 2.1 A/AA violations on ``page`` (the packaged axe-core of axe-playwright-python)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page, options={"runOnly": {"type": "tag",
                                                   "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}})
    return [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in results.response["violations"]]


def _merchant_client(e2e_stack) -> dict:
    out = subprocess.run([sys.executable, "-m", "paygate.cli", "clients", "create", "acme-e2e",
                          "--display-name", "Acme Mobile", "--support-phone", "+1 415 555 0132",
                          "--accent-color", "#1a5fb4"], cwd=ROOT, env=e2e_stack.env, check=True,
                         capture_output=True, text=True).stdout
    client = json.loads(out.strip().splitlines()[-1])
    r = httpx.post(f"{e2e_stack.base}/oauth/token", data={"grant_type": "client_credentials"},
                   auth=(client["client_id"], client["client_secret"]))
    r.raise_for_status()
    client["token"] = r.json()["access_token"]
    return client


def _session(e2e_stack, client, **overrides) -> dict:
    body = {"conversation_id": "e2e-conv", "participant_id": "e2e-part", "customer_account_id": "ACME-M1",
            "amount": 2500, "currency": "USD", "channel": "messaging", "reference": "INV-77", **overrides}
    r = httpx.post(f"{e2e_stack.base}/v1/payment-sessions", json=body,
                   headers={"Authorization": f"Bearer {client['token']}"})
    assert r.status_code == 201, r.text
    return r.json()


def test_the_page_and_the_agent_view_name_the_merchant(e2e_stack, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    client = _merchant_client(e2e_stack)
    s = _session(e2e_stack, client)
    csp_errors: list[str] = []
    phone = browser.new_context(viewport={"width": 375, "height": 812})
    desk = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        customer = phone.new_page()
        customer.on("console", lambda m: csp_errors.append(m.text) if "Content Security Policy" in m.text else None)
        customer.goto(s["checkout_url"])
        assert customer.title() == "Pay Acme Mobile $25.00"
        assert " ".join(customer.locator("h1").inner_text().split()) == "Payment to Acme Mobile $25.00"
        support = customer.locator("#merchant-support a")
        assert support.get_attribute("href") == "tel:+14155550132" and support.inner_text() == "+1 415-555-0132"
        color = customer.locator("#pay-button").evaluate("b => getComputedStyle(b).backgroundColor")
        assert color == "rgb(26, 95, 180)"  # #1a5fb4, from the same-origin accent stylesheet
        customer.screenshot(path=str(SHOTS / "merchant-form-375.png"), full_page=True)
        assert _axe_violations(customer) == []

        fill(customer, "4000000000009995")  # insufficient funds
        customer.locator("#pay-button").click()
        customer.locator("#decline-notice").wait_for()
        fill(customer, "4242424242424242")
        customer.locator("#pay-button").click()
        customer.locator(".outcome--approved").wait_for()
        assert customer.title() == "Payment approved · Acme Mobile"
        customer.screenshot(path=str(SHOTS / "merchant-approved-375.png"), full_page=True)

        agent = desk.new_page()
        agent.goto(s["agent_url"])
        assert agent.locator("#agent-merchant").inner_text() == "Acme Mobile"
        assert agent.locator("#agent-status").inner_text() == "Approved"
        assert agent.locator("#agent-status").get_attribute("data-status") == "approved"
        events = agent.locator(".agent-event")
        assert events.count() == 2
        assert "Not enough funds on the card" in events.nth(0).inner_text()
        assert "Visa ending 4242" in events.nth(1).inner_text() and "UTC" in events.nth(1).inner_text()
        assert agent.locator(".agent-view").evaluate("e => getComputedStyle(e).textAlign") in ("start", "left")
        assert "424242424242" not in agent.content().replace(" ", "")
        agent.screenshot(path=str(SHOTS / "agent-view-1280.png"), full_page=True)
        assert _axe_violations(agent) == []
        agent.goto(s["agent_url"] + "&locale=es")
        assert agent.locator("#agent-status").inner_text() == "Aprobado"
        agent.screenshot(path=str(SHOTS / "agent-view-es-1280.png"), full_page=True)
        agent.goto(s["agent_url"] + "&locale=ar")
        agent.screenshot(path=str(SHOTS / "agent-view-ar-1280.png"), full_page=True)
        assert _axe_violations(agent) == []

        # a pending session's agent view follows the customer live, in words
        live = _session(e2e_stack, client, intent="hold")
        agent.set_viewport_size({"width": 420, "height": 800})
        agent.goto(live["agent_url"])
        assert agent.locator("#agent-status").inner_text() == "Waiting for the customer to enter a card"
        assert "UTC" in agent.locator("#agent-expires").inner_text()
        customer.goto(live["checkout_url"])
        assert customer.title() == "Authorize $25.00 for Acme Mobile"
        fill(customer, "4242424242424242")
        customer.locator("#pay-button").click()
        agent.locator("#agent-status", has_text="Approved").wait_for()
        assert "UTC" in agent.locator("#agent-capture-before").inner_text()
        agent.screenshot(path=str(SHOTS / "agent-view-hold-420.png"), full_page=True)
        assert _axe_violations(agent) == []
        assert csp_errors == []
    finally:
        phone.close()
        desk.close()
