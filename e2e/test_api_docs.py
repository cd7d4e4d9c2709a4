"""``/docs`` in Chromium: Swagger UI from the packaged bundle renders ``/v1/openapi.json`` (tags, operations, the
request body's example) under the page's Content-Security-Policy, with nothing loaded from another site and no
console error (docs/api.md, "Browsable API reference")."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e


def test_docs_render_the_api_with_examples_and_no_csp_error(e2e_stack, page):
    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
    page.on("pageerror", lambda err: console.append(f"pageerror: {err}"))
    elsewhere: list[str] = []
    page.on("request", lambda r: None if r.url.startswith((e2e_stack.base + "/", "data:")) else elsewhere.append(r.url))
    page.set_viewport_size({"width": 1280, "height": 900})

    response = page.goto(f"{e2e_stack.base}/docs")
    assert response.status == 200
    csp = response.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp

    tag = page.locator("#operations-tag-payment_sessions")
    tag.wait_for()
    assert "payment sessions" in tag.inner_text()
    create = page.locator("#operations-payment_sessions-createPaymentSession")
    assert create.locator(".opblock-summary-path").inner_text().replace("\u200b", "") == "/v1/payment-sessions"
    assert page.locator(".opblock").count() >= 30  # every operation, not just a few
    create.locator(".opblock-summary-control").click()
    example = create.locator(".opblock-section-request-body .microlight, .opblock-section-request-body pre")
    example.first.wait_for()
    text = example.first.inner_text()
    assert '"conversation_id": "c-123"' in text and '"reference": "INV-991"' in text  # the documented example
    example.first.scroll_into_view_if_needed()
    page.screenshot(path=str(e2e_stack.logs / "api-docs.png"), full_page=False)

    # "Try it out" sends a real request from the page (connect-src): the public document operation
    getdoc = page.locator("#operations-documentation-getOpenApi")
    getdoc.locator(".opblock-summary-control").click()
    getdoc.locator(".try-out__btn").click()
    getdoc.locator(".execute").click()
    live = getdoc.locator(".live-responses-table tr.response .response-col_status").first
    live.wait_for()
    assert live.inner_text().strip() == "200"

    assert not elsewhere, f"/docs loaded from another site: {elsewhere}"
    assert not [m for m in console if "Content Security Policy" in m or "Content-Security-Policy" in m], console
    assert not console, console


def test_docs_are_not_an_api_operation_and_the_bundle_is_cacheable(e2e_stack):
    doc = httpx.get(f"{e2e_stack.base}/v1/openapi.json").json()
    assert "/docs" not in doc["paths"]
    for _ in range(3):  # served again and again: never rate limited
        assert httpx.get(f"{e2e_stack.base}/docs").status_code == 200
    bundle = httpx.get(f"{e2e_stack.base}/static/apidocs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and bundle.headers["content-type"].startswith("text/javascript")
    assert "no-store" not in bundle.headers.get("cache-control", "")
