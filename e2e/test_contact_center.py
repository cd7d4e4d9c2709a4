"""Contact-center rules in Debian's Chromium against the running stack (docs/api.md, "Contact-center rules"): an
amount the customer types on the page is the amount paid, and a customer whose earlier payment is still being
processed is told so in plain words, without using an attempt."""

from __future__ import annotations

import uuid

import httpx
import pytest

from e2e.conftest import poll
from e2e.test_checkout import fill

pytestmark = pytest.mark.e2e

TIMEOUT_CARD = "4000000000009904"
BUSY_WORDS = "A previous payment on your account is still being processed. Please wait a moment and try again."


def test_a_caller_entered_amount_typed_on_the_page_is_paid(e2e_stack, page):
    s = e2e_stack.create_session(intent="topup", amount=None, amount_range={"min": 500, "max": 20000},
                                 customer_account_id=f"TOPUP-{uuid.uuid4().hex[:8]}")
    assert s["amount"] is None
    page.goto(s["checkout_url"])
    amount = page.locator('input[name="amount"]')
    assert amount.input_value() == ""
    assert page.locator("#order-amount").inner_text() == "$5.00–$200.00"
    assert page.locator(".order-label").inner_text() == "Prepaid top-up for e2e"
    assert page.locator("#pay-button").inner_text().strip() == "Pay"

    amount.fill("2")  # too little: said on leaving the field, before any POST
    page.locator('input[name="cardholder_name"]').focus()
    error = page.locator("#amount-error")
    error.wait_for(state="visible")
    assert error.inner_text() == "The amount must be at least $5.00."
    page.screenshot(path=str(e2e_stack.logs / "contact-center-amount-error.png"), full_page=True)

    amount.fill("")
    amount.press_sequentially("42.50")
    assert page.locator("#order-amount").inner_text() == "$42.50"
    assert page.locator("#pay-button").inner_text().strip() == "Pay $42.50"
    assert error.is_hidden()
    assert "This amount will be added to your prepaid balance." in page.content()
    fill(page, "4242424242424242")
    page.screenshot(path=str(e2e_stack.logs / "contact-center-amount.png"), full_page=True)
    with page.expect_navigation():
        page.locator('button[type="submit"]').click()
    page.get_by_text("approved", exact=False).first.wait_for()
    assert "$42.50" in page.locator(".summary-amount").inner_text()
    page.screenshot(path=str(e2e_stack.logs / "contact-center-amount-paid.png"), full_page=True)
    view = e2e_stack.session(s["session_id"])
    assert view["status"] == "approved" and view["amount"] == 4250 and view["attempts"] == 1
    events = poll(lambda: [e for e in e2e_stack.received(s["session_id"]) if e["type"] == "payment.approved"],
                  what="payment.approved at the emulator")
    assert events[0]["verified"] is True
    assert len(e2e_stack.charges(s["session_id"])) == 1


def test_a_busy_answer_is_shown_on_the_page(e2e_stack, page):
    customer = f"BUSY-{uuid.uuid4().hex[:8]}"
    first = e2e_stack.create_session(customer_account_id=customer, channel="voice")
    r = httpx.post(f"{e2e_stack.base}/v1/payment-sessions/{first['session_id']}/card",
                   headers={"Authorization": f"Bearer {e2e_stack.token}"},
                   json={"number": TIMEOUT_CARD, "exp_month": "12", "exp_year": "30", "cvc": "123"}, timeout=60)
    assert r.status_code == 200 and r.json()["outcome"] == "processing"  # the gateway timed out: in flight

    second = e2e_stack.create_session(customer_account_id=customer)
    page.goto(second["checkout_url"])
    fill(page, "4242424242424242")
    with page.expect_navigation():
        page.locator('button[type="submit"]').click()
    notice = page.locator("#busy-notice")
    notice.wait_for()
    assert notice.inner_text().strip() == BUSY_WORDS
    assert page.locator('input[name="number"]').is_visible() and page.locator('input[name="number"]').input_value() == ""
    page.screenshot(path=str(e2e_stack.logs / "contact-center-busy.png"), full_page=True)
    view = e2e_stack.session(second["session_id"])
    assert view["status"] == "pending" and view["attempts"] == 0
    assert e2e_stack.charges(second["session_id"]) == []
    # the flow's pre-check sees the payment in flight
    listed = httpx.get(f"{e2e_stack.base}/v1/payment-sessions",
                       params={"customer_account_id": customer, "status": "processing"},
                       headers={"Authorization": f"Bearer {e2e_stack.token}"}).json()["data"]
    assert [s["session_id"] for s in listed] == [first["session_id"]]
