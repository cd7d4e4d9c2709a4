"""What a customer and the contact center see, in Debian's Chromium against the running stack."""

from __future__ import annotations

import pytest

from e2e.conftest import poll

pytestmark = pytest.mark.e2e


def fill(target, number, *, name="Ada Lovelace", expiry="12/30", cvc="123"):
    """Types the card the way a person does (``target`` is a Page or a FrameLocator)."""
    target.locator('input[name="cardholder_name"]').fill(name)
    target.locator('input[name="number"]').press_sequentially(number)
    target.locator('input[name="expiry"]').fill("")  # after a decline the form kept the expiry
    target.locator('input[name="expiry"]').press_sequentially(expiry)
    target.locator('input[name="cvc"]').press_sequentially(cvc)


def fill_plain(page, number, *, name="Ada Lovelace", expiry="12/30", cvc="123"):
    """Sets each card field at once, as a browser without the page's script leaves them (no formatting while typing)."""
    page.locator('input[name="cardholder_name"]').fill(name)
    page.locator('input[name="number"]').fill(number)
    page.locator('input[name="expiry"]').fill(expiry)
    page.locator('input[name="cvc"]').fill(cvc)


def submit(page):
    """Clicks Pay and waits for the page the form's POST answers with."""
    with page.expect_navigation():
        page.locator('button[type="submit"]').click()


def test_double_click_approves_once_with_one_event(e2e_stack, page):
    s = e2e_stack.create_session()
    page.goto(s["checkout_url"])
    fill(page, "4242424242424242")
    assert page.locator('input[name="number"]').input_value() == "4242 4242 4242 4242"
    with page.expect_navigation():
        page.locator('button[type="submit"]').dblclick()
    page.get_by_text("approved", exact=False).first.wait_for()
    assert "4242" in page.content()
    events = poll(lambda: [e for e in e2e_stack.received(s["session_id"]) if e["type"] == "payment.approved"],
                  what="payment.approved at the emulator")
    assert len(e2e_stack.charges(s["session_id"])) == 1
    assert len(events) == 1 and events[0]["verified"] is True
    view = e2e_stack.session(s["session_id"])
    assert view["status"] == "approved" and view["attempts"] == 1
    # the emulator's page shows the verified event with token, brand and last4
    page.goto(e2e_stack.emulator + "/")
    html = page.content()
    assert "payment.approved" in html and view["token"] in html and "4242" in html


def test_decline_message_retry_and_event(e2e_stack, page):
    s = e2e_stack.create_session()
    page.goto(s["checkout_url"])
    fill(page, "4000000000000002")
    submit(page)
    alert = page.locator('[role="alert"]').first
    alert.wait_for()
    assert "declined" in alert.inner_text().lower()
    assert page.locator('input[name="number"]').is_visible()  # retry allowed
    poll(lambda: [e for e in e2e_stack.received(s["session_id"]) if e["type"] == "payment.declined"],
         what="payment.declined at the emulator")
    fill(page, "4242424242424242")
    submit(page)
    page.get_by_text("approved", exact=False).first.wait_for()
    assert e2e_stack.session(s["session_id"])["attempts"] == 2


def test_max_attempts_declines_hand_over_to_an_agent(e2e_stack, page):
    s = e2e_stack.create_session()
    page.goto(s["checkout_url"])
    for _ in range(3):
        fill(page, "4000000000009995")
        submit(page)
    page.get_by_text("agent", exact=False).first.wait_for()
    assert page.locator('input[name="number"]').count() == 0
    assert e2e_stack.session(s["session_id"])["status"] == "requires_agent"
    poll(lambda: [e for e in e2e_stack.received(s["session_id"]) if e["type"] == "payment_session.requires_agent"],
         what="requires_agent event")


def test_highest_risk_card_goes_to_an_agent_without_approval(e2e_stack, page):
    s = e2e_stack.create_session()
    page.goto(s["checkout_url"])
    fill(page, "4100000000000019")
    submit(page)
    page.get_by_text("agent", exact=False).first.wait_for()
    view = e2e_stack.session(s["session_id"])
    assert view["status"] == "requires_agent" and view["payment_id"] is None
    assert e2e_stack.charges(s["session_id"]) == []
    events = poll(lambda: e2e_stack.received(s["session_id"]), what="an event")
    assert "payment.approved" not in {e["type"] for e in events}


def test_page_works_inside_an_iframe_on_an_allowed_origin(e2e_stack, page):
    s = e2e_stack.create_session()
    page.goto(f"{e2e_stack.emulator}/embed?url={s['checkout_url']}")
    frame = page.frame_locator("iframe")
    fill(frame, "5555555555554444")
    frame.locator('button[type="submit"]').click()
    # the page's paygate:outcome closes the host's modal, which then tells the outcome itself
    page.locator("#payment-outcome", has_text="Payment approved").wait_for()
    assert page.locator("#pay-modal").is_hidden()
    assert e2e_stack.session(s["session_id"])["status"] == "approved"


def test_page_is_blocked_inside_an_iframe_on_another_origin(e2e_stack, page):
    s = e2e_stack.create_session()
    page.goto(f"{e2e_stack.evil}/embed?url={s['checkout_url']}")
    page.wait_for_load_state("load")
    frame = next(f for f in page.frames if f != page.main_frame)
    poll(lambda: frame.url != "about:blank", timeout=10, what="the iframe to settle")
    assert frame.locator('input[name="number"]').count() == 0
    assert e2e_stack.session(s["session_id"])["status"] == "pending"


@pytest.fixture
def no_script_page(browser):
    """A phone-sized page with JavaScript off: the form must work without checkout.js."""
    context = browser.new_context(java_script_enabled=False, viewport={"width": 375, "height": 812})
    try:
        yield context.new_page()
    finally:
        context.close()


def test_payment_completes_without_javascript(e2e_stack, no_script_page):
    page = no_script_page
    s = e2e_stack.create_session()
    page.goto(s["checkout_url"])
    fill_plain(page, "4242-4242-4242-4242", name="Grace Hopper")
    submit(page)
    page.get_by_text("approved", exact=False).first.wait_for()
    assert e2e_stack.session(s["session_id"])["status"] == "approved"


SHOTS = "/tmp/paygate-checkout-shots"


def _decline_state(page) -> dict:
    """What a keyboard and screen-reader user meets after a decline: the focused element and the form's state."""
    return page.evaluate("""() => {
        const active = document.activeElement;
        const field = (id) => { const el = document.getElementById(id);
            return {value: el.value, attr: el.getAttribute("value") || "", described: el.getAttribute("aria-describedby") || "",
                    invalid: el.getAttribute("aria-invalid")}; };
        return {active: active && active.id, role: active && active.getAttribute("role"),
                tabindex: active && active.getAttribute("tabindex"), text: active && active.innerText,
                name: field("cardholder_name"), expiry: field("expiry"), number: field("number"), cvc: field("cvc")};
    }""")


def _assert_declined_form(state: dict, *, name: str, expiry: str, english: bool = True):
    assert state["active"] == "decline-notice" and state["role"] == "alert" and state["tabindex"] == "-1"
    assert "declined" in state["text"].lower() if english else state["text"].strip()
    assert state["name"]["value"] == name and state["expiry"]["value"] == expiry
    assert state["number"]["value"] == state["number"]["attr"] == "" and state["cvc"]["value"] == state["cvc"]["attr"] == ""
    assert "decline-notice" in state["number"]["described"].split() and state["number"]["invalid"] is None


@pytest.mark.parametrize("locale,width", [("en", 375), ("en", 1280), ("ar", 375), ("ar", 1280)])
def test_a_decline_keeps_name_and_expiry_and_focuses_the_message(e2e_stack, browser, locale, width):
    import os

    os.makedirs(SHOTS, exist_ok=True)
    context = browser.new_context(viewport={"width": width, "height": 812})
    page = context.new_page()
    try:
        s = e2e_stack.create_session(locale=locale)
        page.goto(s["checkout_url"])
        fill(page, "4000000000000002", name="Katherine Johnson", expiry="08/31", cvc="456")
        submit(page)
        page.locator("#decline-notice").wait_for()
        page.wait_for_function("document.activeElement && document.activeElement.id === 'decline-notice'")
        _assert_declined_form(_decline_state(page), name="Katherine Johnson", expiry="08/31", english=locale == "en")
        assert "4000" not in page.content() and 'value="456"' not in page.content()
        page.screenshot(path=f"{SHOTS}/decline-{locale}-{width}.png", full_page=True)
        # Tab from the message goes on into the form, and a retry with the kept name and expiry pays
        page.locator('input[name="number"]').press_sequentially("4242424242424242")
        page.locator('input[name="cvc"]').press_sequentially("123")
        submit(page)
        page.locator('[data-outcome="approved"]').wait_for()
        assert e2e_stack.session(s["session_id"])["attempts"] == 2
    finally:
        context.close()


def test_a_decline_without_javascript_keeps_name_and_expiry_and_focuses_the_message(e2e_stack, no_script_page):
    page = no_script_page
    s = e2e_stack.create_session()
    page.goto(s["checkout_url"])
    fill_plain(page, "4000 0000 0000 0002", name="Dorothy Vaughan", expiry="07/32", cvc="321")
    submit(page)
    page.locator("#decline-notice").wait_for()
    # the message is the form's first element and takes the focus through autofocus (no script runs)
    assert page.locator("#checkout-form > :not(input[type=hidden])").first.get_attribute("id") == "decline-notice"
    state = _decline_state(page)
    _assert_declined_form(state, name="Dorothy Vaughan", expiry="07/32")
    page.locator('input[name="number"]').fill("4242 4242 4242 4242")
    page.locator('input[name="cvc"]').fill("123")
    submit(page)
    page.get_by_text("approved", exact=False).first.wait_for()
    assert e2e_stack.session(s["session_id"])["status"] == "approved"


def test_brand_icons_highlight_the_detected_brand_and_the_hint_is_not_the_placeholder(e2e_stack, page):
    s = e2e_stack.create_session()
    page.goto(s["checkout_url"])
    items = page.locator("#accepted-brands .brand-item")
    assert items.count() >= 2 and page.locator("#accepted-brands .brand-list").get_attribute("aria-hidden") == "true"
    assert page.locator("#accepted-brands .visually-hidden").inner_text().startswith("We accept Visa")
    for img in page.locator("#accepted-brands img").all():  # every icon is drawn (a broken file has no size)
        assert img.evaluate("el => el.complete && el.naturalWidth > 0")
    page.locator('input[name="number"]').press_sequentially("5555")
    page.locator('.brand-item.is-detected[data-brand="mastercard"]').wait_for()
    assert page.locator(".brand-item.is-detected").count() == 1
    assert page.locator("#card-brand").inner_text().strip() == "Mastercard"  # the icon's text equivalent
    assert page.locator("#card-brand img").get_attribute("alt") == ""
    import os

    os.makedirs(SHOTS, exist_ok=True)
    page.locator("#checkout-form").screenshot(path=f"{SHOTS}/brand-detected-375.png")
    page.locator('input[name="number"]').fill("")
    page.locator('input[name="number"]').press_sequentially("4")
    page.locator('.brand-item.is-detected[data-brand="visa"]').wait_for()
    for name in ("number", "expiry", "cvc"):
        field = page.locator(f'input[name="{name}"]')
        hint = page.locator(f"#{name}-hint")
        if hint.count():
            assert hint.inner_text().strip() != (field.get_attribute("placeholder") or "").strip()


def test_phone_layout_has_no_horizontal_scroll_and_labels(e2e_stack, page):
    s = e2e_stack.create_session()
    page.goto(s["checkout_url"])
    assert page.evaluate("document.documentElement.scrollWidth") <= 375
    for name, token in (("cardholder_name", "cc-name"), ("number", "cc-number"), ("expiry", "cc-exp"),
                        ("cvc", "cc-csc")):
        field = page.locator(f'input[name="{name}"]')
        assert field.get_attribute("autocomplete") == token
        field_id = field.get_attribute("id")
        assert page.locator(f'label[for="{field_id}"]').count() == 1
    page.screenshot(path=str(e2e_stack.state / "phone.png"), full_page=True)


def test_terminal_link_shows_outcome_not_form(e2e_stack, page):
    s = e2e_stack.create_session()
    import httpx
    httpx.post(f"{e2e_stack.base}/v1/payment-sessions/{s['session_id']}/cancel",
               headers={"Authorization": f"Bearer {e2e_stack.token}"}).raise_for_status()
    page.goto(s["checkout_url"])
    assert page.locator('input[name="number"]').count() == 0
    assert "canceled" in page.content().lower()


def test_agent_view_follows_a_payment_live_and_can_cancel(e2e_stack, browser):
    """The agent's Script page updates by itself when the customer pays in another window, shows only
    brand and last4, and a second session is canceled from its button."""
    context = browser.new_context(viewport={"width": 420, "height": 700})
    try:
        agent, customer = context.new_page(), context.new_page()
        s = e2e_stack.create_session()
        agent.goto(s["agent_url"])
        assert agent.locator("#agent-status").get_attribute("data-status") == "pending"
        customer.goto(s["checkout_url"])
        fill(customer, "5555555555554444")
        customer.locator('button[type="submit"]').click()
        customer.get_by_text("approved", exact=False).first.wait_for()
        # no reload by the test: agent.js notices the new status
        agent.locator('#agent-status[data-status="approved"]').wait_for()
        assert "ending 4444" in agent.locator("#agent-card").inner_text()
        assert "555555" not in agent.content() and agent.locator("#agent-cancel").count() == 0

        other = e2e_stack.create_session()
        agent.goto(other["agent_url"])
        agent.locator("#agent-cancel").click()
        agent.locator("#agent-notice", has_text="canceled").wait_for()
        assert agent.locator("#agent-status").get_attribute("data-status") == "canceled"
        assert e2e_stack.session(other["session_id"])["status"] == "canceled"
    finally:
        context.close()
