"""axe-core finds no WCAG 2.1 A/AA violation on any page a customer or an agent sees, in every shipped language, at
375 px and 1280 px (e2e/accessibility.py; docs/api.md, "Checkout page" and "Languages").

e2e/test_languages.py checks the card journey (form, field error, decline, approved); this test reaches every
other state, one browser context per language whose ``Accept-Language`` is that language (so the 404 page speaks
it too): the server-rendered field errors without the page's script, a customer-entered amount, a hold's and a
subscription's form, busy, processing, a
hand-over to an agent, canceled, an invalid link, failed (reconciled), expired, and the agent view pending,
canceled and approved. Business time moves once per language (``POST /v1/sandbox/clock``) to expire one link and
let the reconciler end the gateway timeout ``failed``; everything that needs the old time is done before.
"""

from __future__ import annotations

import secrets

import httpx
import pytest

from e2e.accessibility import LANGUAGES, OTHER_STATES, Review
from e2e.conftest import poll
from e2e.test_checkout import fill, fill_plain, submit
from tokenizer.gateways.sandbox import TIMEOUT_CARD

pytestmark = pytest.mark.e2e

VISA, GENERIC_DECLINE = "4242424242424242", "4000000000000002"
RECONCILE_AFTER_SECONDS = 120
"""``PAYGATE_RECONCILE_AFTER_SECONDS``'s default: a gateway timeout is looked up this long after it happened."""


def _api(stack, method: str, path: str, json: dict | None = None) -> dict:
    r = httpx.request(method, f"{stack.base}{path}", json=json, timeout=30,
                      headers={"Authorization": f"Bearer {stack.token}"})
    assert r.status_code in (200, 201), r.text
    return r.json()


def _card(stack, session_id: str, number: str) -> dict:
    """The card submitted through the API (``POST /v1/payment-sessions/{id}/card``)."""
    return _api(stack, "POST", f"/v1/payment-sessions/{session_id}/card",
                {"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123"})


def _outcome(page, status: str) -> None:
    page.locator(f'[data-status="{status}"]').wait_for()


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_page_and_state_has_no_wcag_violation(e2e_stack, browser, language):
    stack, review = e2e_stack, Review(language)
    account = f"A11Y-{language}-{secrets.token_hex(4)}"
    context = browser.new_context(locale=language, viewport={"width": 375, "height": 812})
    try:
        page = context.new_page()
        page.set_default_timeout(15000)

        # --- while business time stands still: a gateway timeout, busy, a link about to expire -------------------
        slow = stack.create_session(locale=language, customer_account_id=account, channel="voice")
        assert _card(stack, slow["session_id"], TIMEOUT_CARD)["outcome"] == "processing"
        page.goto(slow["checkout_url"])
        _outcome(page, "processing")
        review.check(page, "processing")

        other = stack.create_session(locale=language, customer_account_id=account)
        page.goto(other["checkout_url"])
        fill(page, VISA)
        submit(page)
        page.locator("#busy-notice").wait_for()
        review.check(page, "busy")

        late = stack.create_session(locale=language, ttl_seconds=60)
        _api(stack, "POST", "/v1/sandbox/clock", {"advance_seconds": RECONCILE_AFTER_SECONDS + 61})

        # --- the form as the server renders its errors, without the page's script ------------------------------
        # (axe itself needs JavaScript — with it disabled, timers never fire and axe.run never ends — so the page's
        # own script is kept from loading instead: the page is then what a browser without JavaScript gets)
        plain = context.new_page()
        plain.set_default_timeout(15000)
        plain.route("**/static/checkout.js*", lambda route: route.abort())
        s = stack.create_session(locale=language)
        plain.goto(s["checkout_url"])
        # past the browser's own checks (required, maxlength) but wrong: the server explains each field
        fill_plain(plain, "4242 4242 4242 4241", expiry="13/30", cvc="12")
        submit(plain)
        plain.locator("#error-summary").wait_for()
        assert plain.locator('[aria-invalid="true"]').count() == 3
        review.check(plain, "server-error")
        plain.close()

        s = stack.create_session(locale=language, amount=2000, amount_range={"min": 1000, "max": 5000})
        page.goto(s["checkout_url"])
        page.locator('input[name="amount"]').wait_for()
        review.check(page, "amount-form")

        s = stack.create_session(locale=language, intent="hold")
        page.goto(s["checkout_url"])
        page.locator('input[name="number"]').wait_for()
        review.check(page, "hold-form")

        s = stack.create_session(locale=language, intent="subscription",
                                 subscription={"interval": "week", "interval_count": 2})
        page.goto(s["checkout_url"])
        page.locator('input[name="number"]').wait_for()
        review.check(page, "subscription-form")

        # --- outcomes ------------------------------------------------------------------------------------------
        s = stack.create_session(locale=language, max_attempts=1)
        page.goto(s["checkout_url"])
        fill(page, GENERIC_DECLINE)
        submit(page)
        _outcome(page, "requires_agent")
        review.check(page, "requires-agent")

        agent = stack.create_session(locale=language)
        page.goto(agent["agent_url"])
        page.locator("#agent-cancel").wait_for()
        review.check(page, "agent-pending")
        page.locator("#agent-cancel").click()
        page.locator("#agent-notice").wait_for()
        review.check(page, "agent-canceled")
        page.goto(agent["checkout_url"])
        _outcome(page, "canceled")
        review.check(page, "canceled")

        page.goto(agent["checkout_url"].replace("t=", "t=x"))
        page.locator(".outcome--unavailable").wait_for()
        review.check(page, "unavailable")

        s = stack.create_session(locale=language)
        assert _card(stack, s["session_id"], VISA)["outcome"] == "approved"
        page.goto(s["agent_url"])
        page.locator("#agent-card").wait_for()
        review.check(page, "agent-approved")

        # --- after business time moved ----------------------------------------------------------------------------
        page.goto(late["checkout_url"])
        _outcome(page, "expired")
        review.check(page, "expired")

        poll(lambda: stack.session(slow["session_id"])["status"] == "failed", timeout=30,
             what="the reconciler to end the gateway timeout failed")
        page.goto(slow["checkout_url"])
        _outcome(page, "failed")
        review.check(page, "failed")
    finally:
        context.close()
    review.assert_clean(OTHER_STATES)
