"""The checkout page in each shipped language, in Debian's Chromium against the running stack (docs/api.md,
"Languages"): the form, a field error from the page's script, a decline and the outcome in the session's
language; Arabic right to left with left-to-right card fields and Arabic-Indic digits typed. Screenshots of each
state in en and ar, at 375 px and 1280 px, go to the e2e logs directory for review."""

from __future__ import annotations

import pytest

from e2e.accessibility import CARD_STATES, Review
from kernel.i18n import translations

pytestmark = pytest.mark.e2e

LANGUAGES = [("en", "ltr"), ("es", "ltr"), ("fr", "ltr"), ("de", "ltr"), ("pt-BR", "ltr"), ("ar", "rtl")]


def fill(page, number, *, name="Ada Lovelace", expiry="12/30", cvc="123"):
    page.locator('input[name="cardholder_name"]').fill(name)
    page.locator('input[name="number"]').fill("")
    page.locator('input[name="number"]').press_sequentially(number)
    page.locator('input[name="expiry"]').fill("")
    page.locator('input[name="expiry"]').press_sequentially(expiry)
    page.locator('input[name="cvc"]').fill("")
    page.locator('input[name="cvc"]').press_sequentially(cvc)


@pytest.mark.parametrize("language, direction", LANGUAGES)
def test_each_language_form_error_decline_outcome(e2e_stack, page, language, direction):
    _ = translations(language).gettext
    review = Review(language)
    s = e2e_stack.create_session(locale=language)
    page.goto(s["checkout_url"])
    html = page.locator("html")
    assert (html.get_attribute("lang"), html.get_attribute("dir")) == (language, direction)
    assert page.locator('label[for="number"]').inner_text() == _("Card number")
    review.check(page, "form")

    # a field error from the page's script: a number too short, then the next field; then the number taken back
    page.locator('input[name="number"]').press_sequentially("4242")
    page.locator('input[name="expiry"]').focus()
    error = page.locator("#number-error")
    error.wait_for()
    assert error.inner_text() == _("This card number is not the right length. Please check it.")
    page.locator('input[name="number"]').fill("")
    page.locator('input[name="number"]').dispatch_event("input")
    page.wait_for_function("document.getElementById('number-error').textContent === %r"
                           % _("Enter your card number."))
    review.check(page, "field-error")

    fill(page, "4000000000000002")
    with page.expect_navigation():
        page.locator('button[type="submit"]').click()
    alert = page.locator('[role="alert"]').first
    alert.wait_for()
    assert _("Your card was declined. Please use another card or contact your card issuer.") in alert.inner_text()
    assert page.locator("html").get_attribute("lang") == language
    review.check(page, "decline")

    fill(page, "4242424242424242")
    with page.expect_navigation():
        page.locator('button[type="submit"]').click()
    title = page.locator("#outcome-title")
    title.wait_for()
    assert title.inner_text() == _("Payment approved")
    review.check(page, "approved")
    review.assert_clean(CARD_STATES)


def test_arabic_is_right_to_left_with_left_to_right_card_fields(e2e_stack, page):
    s = e2e_stack.create_session(locale="ar-EG")
    page.goto(s["checkout_url"])
    assert page.evaluate("getComputedStyle(document.body).direction") == "rtl"
    for name in ("number", "expiry", "cvc"):
        field = page.locator(f'input[name="{name}"]')
        assert field.get_attribute("dir") == "ltr"
        assert field.evaluate("el => getComputedStyle(el).direction") == "ltr"
    assert page.locator('input[name="cardholder_name"]').evaluate("el => getComputedStyle(el).direction") == "rtl"
    # mirrored: the label's words start at the right edge of its field, the brand slot sits at the left
    words = page.locator('label[for="number"]').evaluate(
        "el => { const r = document.createRange(); r.selectNodeContents(el); const b = r.getBoundingClientRect();"
        " return {left: b.left, right: b.right}; }")
    field = page.locator('input[name="number"]').bounding_box()
    assert abs(words["right"] - (field["x"] + field["width"])) < 24 and words["left"] > field["x"] + 100
    assert page.evaluate("document.documentElement.scrollWidth") <= 375

    # digits typed in Arabic-Indic form are formatted and paid like ASCII digits
    page.locator('input[name="cardholder_name"]').fill("Ada Lovelace")
    page.locator('input[name="number"]').press_sequentially("٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢")
    assert page.locator('input[name="number"]').input_value() == "4242 4242 4242 4242"
    page.locator('input[name="expiry"]').press_sequentially("١٢٣٠")
    assert page.locator('input[name="expiry"]').input_value() == "12/30"
    page.locator('input[name="cvc"]').press_sequentially("۱۲۳")
    assert page.locator('input[name="cvc"]').input_value() == "123"
    page.set_viewport_size({"width": 375, "height": 812})
    page.screenshot(path=str(e2e_stack.logs / "checkout-ar-rtl-375.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(e2e_stack.logs / "checkout-ar-rtl-1280.png"), full_page=True)
    with page.expect_navigation():
        page.locator('button[type="submit"]').click()
    page.locator("#outcome-title").wait_for()
    assert e2e_stack.session(s["session_id"])["status"] == "approved"


def test_without_a_locale_the_browser_language_decides(e2e_stack, browser):
    context = browser.new_context(locale="de-DE", viewport={"width": 375, "height": 812})
    try:
        page = context.new_page()
        page.goto(e2e_stack.create_session()["checkout_url"])
        assert page.locator("html").get_attribute("lang") == "de"
        assert page.locator('label[for="number"]').inner_text() == "Kartennummer"
    finally:
        context.close()
