"""The checkout page inside an iframe (docs/embedding.md), in Chromium: it tells its host its height and its
outcome, each message addressed to one allowed parent origin exactly (never "*"), and the emulator's agent-desktop
modal follows those messages."""

from __future__ import annotations

import os

import pytest

from e2e.conftest import poll
from e2e.test_checkout import fill

pytestmark = pytest.mark.e2e

SHOTS = "/tmp/paygate-embed-shots"

RECORD = """
// every frame: what arrives by postMessage; inside a frame: every postMessage it makes to its parent, with the
// targetOrigin it names ("parent" is a [Replaceable] attribute, so the page's own window.parent.postMessage
// calls go through this wrapper and then on to the real parent)
window.__received = [];
window.addEventListener("message", (e) => window.__received.push({origin: e.origin, data: e.data}));
if (window.parent !== window) {
  const real = window.parent;
  window.__posts = [];
  window.parent = {postMessage(message, targetOrigin) {
    window.__posts.push({data: message, targetOrigin: String(targetOrigin)});
    return real.postMessage(message, targetOrigin);
  }};
}
"""

HOST_PAGE = """<!doctype html><html lang="en"><head><title>Host</title></head><body>
<iframe id="pay-frame" title="Secure payment" src="{src}" width="420" height="640"></iframe></body></html>"""


def _posts(frame) -> list[dict]:
    return frame.evaluate("window.__posts || []")


def _received(page) -> list[dict]:
    return page.evaluate("window.__received")


def _checkout_frame(page):
    return poll(lambda: next((f for f in page.frames if f != page.main_frame and "/checkout/" in f.url), None),
                what="the checkout frame")


def _pay_in(frame_locator, number="4242424242424242"):
    fill(frame_locator, number)
    frame_locator.locator('button[type="submit"]').click()


@pytest.mark.parametrize("host", ["emulator", "self"])
def test_each_message_goes_to_each_allowed_origin_exactly_and_the_host_gets_only_its_own(e2e_stack, browser, host):
    """PAYGATE_FRAME_ANCESTORS is "'self' <emulator>": the page posts every message once to paygate's own origin
    and once to the emulator's. A host on one of them receives exactly one copy (the browser drops the copy
    addressed to the other origin); a message posted with "*" would reach it twice."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_init_script(RECORD)
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        s = e2e_stack.create_session()
        if host == "emulator":
            page.goto(f"{e2e_stack.emulator}/embed?url={s['checkout_url']}")
            host_origin = e2e_stack.emulator
        else:  # a host page served from paygate's own origin (a route: paygate has no such page)
            host_url = f"{e2e_stack.base}/__embedding-host"
            page.route(host_url, lambda route: route.fulfill(
                status=200, content_type="text/html", body=HOST_PAGE.format(src=s["checkout_url"])))
            page.goto(host_url)
            host_origin = e2e_stack.base
        frame = _checkout_frame(page)
        frame.locator('input[name="number"]').wait_for()
        poll(lambda: [m for m in _received(page) if m["data"].get("type") == "paygate:resize"], what="a resize")

        _pay_in(page.frame_locator("#pay-frame"))
        poll(lambda: [m for m in _received(page) if m["data"].get("type") == "paygate:outcome"], what="the outcome")
        frame = _checkout_frame(page)  # the outcome page, a new document in the same frame
        posts = _posts(frame)
        outcome_posts = [p for p in posts if p["data"]["type"] == "paygate:outcome"]
        assert sorted(p["targetOrigin"] for p in outcome_posts) == sorted([e2e_stack.base, e2e_stack.emulator])
        assert all(p["targetOrigin"] != "*" for p in posts)
        assert {p["targetOrigin"] for p in posts} == {e2e_stack.base, e2e_stack.emulator}

        received = _received(page)
        assert received and {m["origin"] for m in received} == {e2e_stack.base}  # sent by the checkout page
        outcomes = [m["data"] for m in received if m["data"]["type"] == "paygate:outcome"]
        assert outcomes == [{"type": "paygate:outcome", "session_id": s["session_id"], "status": "approved"}]
        # one copy per message reached this host: half of what the outcome page posted (it posted to both origins)
        resizes_posted = [p["data"]["height"] for p in posts if p["data"]["type"] == "paygate:resize"
                          and p["targetOrigin"] == host_origin]
        assert resizes_posted and all(isinstance(h, int) and h > 100 for h in resizes_posted)
        assert len([p for p in posts if p["data"]["type"] == "paygate:resize"]) == 2 * len(resizes_posted)
        assert e2e_stack.session(s["session_id"])["status"] == "approved"
    finally:
        context.close()


@pytest.mark.parametrize("width", [375, 1280])
def test_emulator_modal_follows_the_page_height_and_closes_on_the_outcome(e2e_stack, browser, width):
    os.makedirs(SHOTS, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15000)
    try:
        s = e2e_stack.create_session()
        page.goto(f"{e2e_stack.emulator}/embed?url={s['checkout_url']}")
        frame = page.frame_locator("#pay-frame")
        frame.locator('input[name="number"]').wait_for()
        iframe = page.locator("#pay-frame")

        def sized_to_content():
            content = _checkout_frame(page).evaluate(
                "Math.ceil(document.documentElement.getBoundingClientRect().height)")
            return content if iframe.get_attribute("data-height") == str(content) else None

        first = poll(sized_to_content, what="the modal sized to the form")
        assert first != 640  # no longer the iframe's default height
        box = iframe.bounding_box()
        assert abs(box["height"] - min(first, box["height"])) < 1  # as tall as the page, or capped by the window

        fill(frame, "4000000000000002")
        frame.locator('button[type="submit"]').click()
        frame.locator("#decline-notice").wait_for()
        declined = poll(lambda: (h := sized_to_content()) and h > first and h, what="the modal to grow after a decline")
        assert declined > first
        page.screenshot(path=f"{SHOTS}/embed-decline-{width}.png")
        pay = frame.locator('button[type="submit"]')
        # the pay button is inside the window: the modal grew (or the frame scrolls within the window's height)
        assert page.evaluate("document.documentElement.scrollWidth") <= width

        fill(frame, "4242424242424242")
        pay.click()
        outcome = page.locator("#payment-outcome")
        outcome.wait_for()
        assert page.locator("#pay-modal").is_hidden()
        assert outcome.get_attribute("data-status") == "approved"
        assert outcome.get_attribute("data-session-id") == s["session_id"]
        assert "Payment approved" in outcome.inner_text()
        page.screenshot(path=f"{SHOTS}/embed-outcome-{width}.png")
    finally:
        context.close()
