"""The operator report opened in Chromium from a file:// URL with the network cut off (docs/operations.md, "The
operator report"): `paygate report html` run against the e2e stack's database after real card submissions and a
refund through the running server; the charts render (inline SVG), show this run's data, and nothing is fetched."""

from __future__ import annotations

import json
import re
import subprocess

import httpx
import pytest

from e2e.conftest import BIN, ROOT

pytestmark = pytest.mark.e2e

VISA, INSUFFICIENT, RADAR_BLOCK = "4242424242424242", "4000000000009995", "4100000000000019"


def _client(stack) -> tuple[str, str]:
    """A fresh API client (so the report can be limited to this test's payments) and a token for it."""
    out = subprocess.run([str(BIN / "paygate"), "clients", "create", "e2e-report", "--callback-url",
                          f"{stack.emulator}/webhooks/paygate"], cwd=ROOT, env=stack.env, check=True,
                         capture_output=True, text=True).stdout
    created = json.loads(out.strip().splitlines()[-1])
    r = httpx.post(f"{stack.base}/oauth/token", data={"grant_type": "client_credentials"},
                   auth=(created["client_id"], created["client_secret"]))
    r.raise_for_status()
    return created["client_id"], r.json()["access_token"]


def _pay(stack, token: str, number: str, n: int) -> dict:
    auth = {"Authorization": f"Bearer {token}"}
    r = httpx.post(f"{stack.base}/v1/payment-sessions", headers=auth, json={
        "conversation_id": f"e2e-report-{n}", "customer_account_id": f"REPORT-{n}", "amount": 1900,
        "currency": "USD", "channel": "voice"})
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]
    r = httpx.post(f"{stack.base}/v1/payment-sessions/{sid}/card", headers=auth, timeout=30,
                   json={"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123"})
    assert r.status_code == 200, r.text
    return httpx.get(f"{stack.base}/v1/payment-sessions/{sid}", headers=auth).json()


def test_the_report_opens_offline_with_its_charts(e2e_stack, browser):
    client_id, token = _client(e2e_stack)
    outcomes = [_pay(e2e_stack, token, number, n) for n, number in
                enumerate([VISA, VISA, INSUFFICIENT, RADAR_BLOCK])]
    assert [s["status"] for s in outcomes] == ["approved", "approved", "pending", "requires_agent"]
    r = httpx.post(f"{e2e_stack.base}/v1/refunds", headers={"Authorization": f"Bearer {token}"},
                   json={"payment_id": outcomes[0]["payment_id"], "disposition_code": "REFUND_FULL"})
    assert r.status_code in (200, 201) and r.json()["status"] == "succeeded", r.text

    folder = e2e_stack.state / "reports"
    folder.mkdir(exist_ok=True)
    path = folder / "operator-report.html"
    done = subprocess.run([str(BIN / "paygate"), "report", "html", "--client", client_id, "--output", str(path)],
                          cwd=ROOT, env=e2e_stack.env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "report of 4 card submissions, 1 refunds and 0 disputes" in done.stderr

    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    try:
        page = context.new_page()
        fetched: list[str] = []

        def refuse(route):  # the network is cut off: only the file itself loads; anything else is recorded, aborted
            if route.request.url == path.as_uri():
                route.continue_()
                return
            fetched.append(route.request.url)
            route.abort()

        page.route("**/*", refuse)
        console: list[str] = []
        page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                else None)
        page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
        requests: list[str] = []
        page.on("request", lambda req: requests.append(req.url))

        page.goto(path.as_uri())
        assert page.title().startswith("paygate operator report")
        charts = page.locator("svg.chart")
        labels = [charts.nth(i).get_attribute("aria-label") for i in range(charts.count())]
        assert labels == ["Approval rate over time", "Declines by code", "Fraud blocks by rule",
                          "Refunds by status and manual review", "Gateway latency p50 and p99 over time"]
        for i in range(charts.count()):  # each drawn, at a readable size
            box = charts.nth(i).bounding_box()
            assert box and box["width"] > 300 and box["height"] > 80, (labels[i], box)
            assert charts.nth(i).locator("path").count() > 5, labels[i]
        # this run's figures, on the page and in the charts' own text
        assert page.locator('[data-figure="approval_rate"]').inner_text() == "50.0 %"  # 2 of 4 ended
        assert page.locator('[data-figure="attempts"]').inner_text() == "4"
        declines = page.locator('svg[aria-label="Declines by code"]')
        assert declines.locator("text", has_text="insufficient_funds").count() == 1
        fraud = page.locator('svg[aria-label="Fraud blocks by rule"]')
        assert fraud.locator("text", has_text="gateway:fraudulent").count() == 1
        latency = page.locator('svg[aria-label="Gateway latency p50 and p99 over time"]')
        assert latency.is_visible() and re.fullmatch(r"\d+ ms", page.locator('[data-figure="latency_p99"]').inner_text())
        page.screenshot(path=str(e2e_stack.logs / "operator-report.png"), full_page=True)

        assert [u for u in requests if not u.startswith("file://")] == [], requests
        assert fetched == [], fetched
        assert console == [], console
    finally:
        context.close()
