"""Amount rules (docs/api.md, "Contact-center rules"): allowed currencies and minimums for sessions and
merchant-initiated charges, caller-entered amounts (``amount_range``, ``POST .../amount`` and the page's amount
field), a card before the amount, ``max_attempts`` per session and the ``subscription`` terms of a session."""

from __future__ import annotations

import re

import pytest

from payments.models import PaymentAttempt
from tests.functional.money import VISA, payment, post
from tests.functional.test_checkout_flow import _path, open_form, pay

BASE = {"conversation_id": "conv-a", "customer_account_id": "ACME-A", "currency": "USD", "channel": "voice"}
DECLINE = "4000000000000002"


def create(stack, **body):
    return stack.http.post("/v1/payment-sessions", json={**BASE, **body}, headers=stack.auth())


def error(r) -> tuple[int, str, dict | None]:
    err = r.get_json()["error"]
    return r.status_code, err["code"], err.get("fields")


def view(stack, sid) -> dict:
    r = stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth())
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def set_amount(stack, sid, value, token=None):
    return post(stack, f"/v1/payment-sessions/{sid}/amount", {"amount": value}, token=token)


def card(stack, sid, number=VISA):
    r = post(stack, f"/v1/payment-sessions/{sid}/card",
             {"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123"})
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def attempts_of(stack, sid) -> int:
    with stack.services.Session() as db:
        return db.query(PaymentAttempt).filter_by(session_id=sid).count()


# -- PAYGATE_ALLOWED_CURRENCIES and PAYGATE_MIN_AMOUNTS ------------------------------------------------------------
def test_a_currency_outside_the_allowed_list_is_refused(stack_factory):
    stack = stack_factory(ALLOWED_CURRENCIES="USD,EUR")
    r = create(stack, amount=2500, currency="JPY")
    assert error(r) == (400, "currency_not_allowed", {"currency": "currency_not_allowed"})
    assert create(stack, amount=2500, currency="EUR").status_code == 201
    # a caller-entered amount in another currency is refused the same way
    r = create(stack, amount_range={"min": 100, "max": 900}, currency="GBP")
    assert error(r)[:2] == (400, "currency_not_allowed")


def test_every_currency_is_allowed_by_default(stack):
    assert create(stack, amount=2500, currency="JPY").status_code == 201
    assert create(stack, amount=1, currency="KWD").status_code == 201


def test_an_amount_below_the_minimum_is_refused(stack_factory):
    stack = stack_factory(MIN_AMOUNTS="USD:500,EUR:1000")
    assert error(create(stack, amount=499)) == (400, "amount_below_minimum", {"amount": "amount_below_minimum"})
    assert "$5.00" in create(stack, amount=499).get_json()["error"]["message"]
    assert create(stack, amount=500).status_code == 201
    assert error(create(stack, amount=999, currency="EUR"))[:2] == (400, "amount_below_minimum")
    assert create(stack, amount=1, currency="GBP").status_code == 201  # no minimum configured for it
    # a range must start at the minimum or above
    r = create(stack, amount_range={"min": 100, "max": 5000})
    assert error(r) == (400, "amount_below_minimum", {"amount_range.min": "amount_below_minimum"})
    assert create(stack, amount_range={"min": 500, "max": 5000}).status_code == 201
    # the renewal amount of a subscription too
    r = create(stack, intent="subscription", amount=1500, subscription={"interval": "month", "amount": 100})
    assert error(r) == (400, "amount_below_minimum", {"subscription.amount": "amount_below_minimum"})


def test_merchant_initiated_charges_keep_the_amount_rules(stack_factory):
    stack = stack_factory(ALLOWED_CURRENCIES="USD", MIN_AMOUNTS="USD:500")
    sid = create(stack, amount=2500).get_json()["session_id"]
    assert card(stack, sid)["outcome"] == "approved"
    token = view(stack, sid)["token"]
    charge = {"token": token, "customer_account_id": "ACME-A"}
    r = post(stack, "/v1/payments", {**charge, "amount": 499, "currency": "USD"}, key="mit-low")
    assert error(r) == (400, "amount_below_minimum", {"amount": "amount_below_minimum"})
    r = post(stack, "/v1/payments", {**charge, "amount": 2500, "currency": "EUR"}, key="mit-eur")
    assert error(r) == (400, "currency_not_allowed", {"currency": "currency_not_allowed"})
    r = post(stack, "/v1/payments", {**charge, "amount": 500, "currency": "USD"}, key="mit-ok")
    assert r.status_code == 201 and r.get_json()["amount"] == 500


# -- amount_range on creation -----------------------------------------------------------------------------------
def test_amount_range_validation(stack):
    cases = [
        ({}, {"amount": "required"}),
        ({"amount_range": {"min": 5000, "max": 500}}, {"amount_range": "invalid_range"}),
        ({"amount_range": {"min": 500, "max": 5000}, "amount": 6000}, {"amount": "out_of_range"}),
        ({"amount_range": {"min": 500, "max": 5000}, "amount": 499}, {"amount": "out_of_range"}),
        ({"amount_range": {"min": 0, "max": 5000}}, {"amount_range.min": "invalid_amount"}),
        ({"amount_range": {"min": 500, "max": "5000"}}, {"amount_range.max": "invalid_amount"}),
        ({"amount_range": {"min": 500}}, {"amount_range.max": "required"}),
        ({"amount_range": {"min": 500, "max": 900, "step": 1}}, {"amount_range": "unknown_field"}),
        ({"amount": 100, "max_attempts": 0}, {"max_attempts": "out_of_range"}),
        ({"amount": 100, "max_attempts": 11}, {"max_attempts": "out_of_range"}),
        ({"amount": 100, "subscription": {"interval": "month"}}, {"subscription": "requires_subscription_intent"}),
        ({"amount": 100, "intent": "subscription", "subscription": {"interval": "fortnight"}},
         {"subscription.interval": "invalid_choice"}),
        ({"amount": 100, "intent": "subscription", "subscription": {"interval": "week", "interval_count": 13}},
         {"subscription.interval_count": "out_of_range"}),
    ]
    for body, fields in cases:
        r = create(stack, **body)
        assert error(r) == (400, "validation_error", fields), (body, r.get_json())


def test_a_session_with_a_range_and_no_amount(stack):
    r = create(stack, intent="topup", amount_range={"min": 500, "max": 20000})
    assert r.status_code == 201
    created = r.get_json()
    assert created["amount"] is None and created["intent"] == "topup"
    v = view(stack, created["session_id"])
    assert v["amount"] is None and v["amount_range"] == {"min": 500, "max": 20000}
    assert v["cancel_reason"] is None and v["subscription"] is None and v["subscription_id"] is None
    suggested = create(stack, amount=2000, amount_range={"min": 500, "max": 20000}).get_json()
    assert view(stack, suggested["session_id"])["amount"] == 2000
    assert view(stack, create(stack, amount=2500).get_json()["session_id"])["amount_range"] is None


# -- POST /v1/payment-sessions/{id}/amount -------------------------------------------------------------------------
def test_the_amount_endpoint_outcomes(stack_factory):
    stack = stack_factory(MIN_AMOUNTS="USD:500")
    sid = create(stack, amount_range={"min": 1000, "max": 20000}).get_json()["session_id"]
    expected = {"min": 1000, "max": 20000, "currency": "USD"}

    r = set_amount(stack, sid, "500")
    assert r.status_code == 200
    body = r.get_json()
    assert body == {**expected, "outcome": "below_minimum", "amount": None, "entered": 500,
                    "message": "The amount must be at least $10.00."}
    body = set_amount(stack, sid, 20001).get_json()
    assert (body["outcome"], body["amount"], body["entered"]) == ("above_maximum", None, 20001)
    assert body["message"] == "The amount can be at most $200.00."
    assert set_amount(stack, sid, "0").get_json()["outcome"] == "below_minimum"
    for bad in ["12.50", "25,00", "abc", "12a", "-500", "", " ", "12345678901234", "+2500", "2500#", "١٢٣",
                12.5, -2500, True, None, [2500], {"v": 1}]:
        r = set_amount(stack, sid, bad)
        assert r.status_code == 200, (bad, r.get_json())
        body = r.get_json()
        assert (body["outcome"], body["amount"], body["entered"]) == ("invalid", None, None), bad
        assert "digits" in body["message"]
    assert view(stack, sid)["amount"] is None

    body = set_amount(stack, sid, "2500").get_json()  # DTMF digits
    assert body == {**expected, "outcome": "ok", "amount": 2500, "entered": 2500, "message": "The amount is $25.00."}
    assert view(stack, sid)["amount"] == 2500
    body = set_amount(stack, sid, " 03000 ").get_json()  # a leading zero and stray spaces are still digits
    assert (body["outcome"], body["amount"]) == ("ok", 3000)
    body = set_amount(stack, sid, 99999).get_json()  # out of range: the amount set before stays
    assert (body["outcome"], body["amount"], body["entered"]) == ("above_maximum", 3000, 99999)
    assert set_amount(stack, sid, 20000).get_json()["amount"] == 20000  # the bounds are inclusive
    assert set_amount(stack, sid, 1000).get_json()["amount"] == 1000
    assert view(stack, sid)["amount"] == 1000


def test_the_amount_endpoint_on_other_sessions(stack):
    fixed = create(stack, amount=2500).get_json()["session_id"]
    body = set_amount(stack, fixed, "3000").get_json()
    assert (body["outcome"], body["amount"], body["min"], body["max"]) == ("invalid", 2500, None, None)
    assert "fixed" in body["message"] and view(stack, fixed)["amount"] == 2500

    ranged = create(stack, amount_range={"min": 100, "max": 900}).get_json()["session_id"]
    assert post(stack, f"/v1/payment-sessions/{ranged}/cancel").status_code == 200
    assert error(set_amount(stack, ranged, "500"))[:2] == (409, "session_not_pending")
    assert error(set_amount(stack, "ps_nope", "500"))[:2] == (404, "session_not_found")
    other = stack.token_for(stack.new_client(name="other"))
    mine = create(stack, amount_range={"min": 100, "max": 900}).get_json()["session_id"]
    assert error(set_amount(stack, mine, "500", token=other))[:2] == (404, "session_not_found")
    r = stack.http.post(f"/v1/payment-sessions/{mine}/amount", data="2500", headers={
        **stack.auth(), "Content-Type": "application/json"})
    assert error(r)[:2] == (400, "invalid_json")  # a body that is not a JSON object is a broken request


def test_a_card_before_the_amount_is_amount_required_and_uses_no_attempt(stack):
    sid = create(stack, amount_range={"min": 500, "max": 20000}).get_json()["session_id"]
    answer = card(stack, sid)
    assert answer["outcome"] == "invalid" and answer["field_errors"] == {"amount": "amount_required"}
    assert answer["status"] == "pending" and answer["attempts_remaining"] == 3
    bad = post(stack, f"/v1/payment-sessions/{sid}/card", {"number": "4242424242424241", "exp_month": "12",
                                                           "exp_year": "30", "cvc": "123"}).get_json()
    assert bad["field_errors"] == {"amount": "amount_required", "number": "incorrect_number"}
    assert view(stack, sid)["attempts"] == 0 and attempts_of(stack, sid) == 0

    assert set_amount(stack, sid, "4321").get_json()["outcome"] == "ok"
    answer = card(stack, sid)
    assert answer["outcome"] == "approved"
    v = view(stack, sid)
    assert v["amount"] == 4321 and v["attempts"] == 1
    paid = payment(stack, v["payment_id"])
    assert paid["amount"] == 4321
    assert error(set_amount(stack, sid, "5000"))[:2] == (409, "session_not_pending")  # paid: fixed for good


def test_a_suggested_amount_can_be_paid_as_it_is(stack):
    sid = create(stack, amount=2000, amount_range={"min": 500, "max": 20000}).get_json()["session_id"]
    assert card(stack, sid)["outcome"] == "approved"
    assert payment(stack, view(stack, sid)["payment_id"])["amount"] == 2000


# -- max_attempts ------------------------------------------------------------------------------------------------------
def test_max_attempts_per_session_overrides_the_setting(stack_factory):
    stack = stack_factory(MAX_ATTEMPTS=5)
    default = create(stack, amount=2500).get_json()["session_id"]
    assert view(stack, default)["max_attempts"] == 5
    one = create(stack, amount=2500, max_attempts=1).get_json()["session_id"]
    assert view(stack, one)["max_attempts"] == 1
    answer = card(stack, one, DECLINE)
    assert answer["outcome"] == "requires_agent" and answer["attempts_remaining"] == 0
    two = create(stack, amount=2500, max_attempts=2).get_json()["session_id"]
    assert card(stack, two, DECLINE)["outcome"] == "declined"
    assert card(stack, two, DECLINE)["outcome"] == "requires_agent"
    ten = create(stack, amount=2500, max_attempts=10).get_json()["session_id"]
    assert card(stack, ten, DECLINE)["attempts_remaining"] == 9


# -- the subscription terms of a session ------------------------------------------------------------------------
def test_subscription_terms_are_kept_on_the_session(stack):
    default = create(stack, intent="subscription", amount=1500).get_json()["session_id"]
    assert view(stack, default)["subscription"] == {"interval": "month", "interval_count": 1, "amount": None}
    weekly = create(stack, intent="subscription", amount=1500,
                    subscription={"interval": "week", "interval_count": 2, "amount": 900}).get_json()["session_id"]
    assert view(stack, weekly)["subscription"] == {"interval": "week", "interval_count": 2, "amount": 900}
    # the page says what is charged and how often
    monthly = create(stack, intent="subscription", amount=1500).get_json()
    assert "You pay $15.00 today and then every month." in page_html(stack, monthly)
    two_weeks = create(stack, intent="subscription", amount=1500,
                       subscription={"interval": "week", "interval_count": 2, "amount": 900}).get_json()
    assert "You pay $15.00 today, then $9.00 every 2 weeks." in page_html(stack, two_weeks)


def test_cancel_says_why(stack):
    sid = create(stack, amount=2500).get_json()["session_id"]
    r = post(stack, f"/v1/payment-sessions/{sid}/cancel")
    assert r.get_json()["status"] == "canceled" and r.get_json()["cancel_reason"] == "requested"


# -- the page's amount field -------------------------------------------------------------------------------------------
def page_html(stack, created) -> str:
    r = stack.http.get(_path(created["checkout_url"]))
    assert r.status_code == 200
    return r.get_data(as_text=True)


def pay_amount(stack, created, amount, number=VISA):
    hidden = open_form(stack, created["checkout_url"])
    return stack.http.post(_path(created["checkout_url"]), data={
        **hidden, "amount": amount, "number": number, "expiry": "12/30", "cvc": "123",
        "cardholder_name": "Ada Lovelace"})


def test_the_page_shows_an_amount_field_only_for_a_range(stack):
    fixed = create(stack, amount=2500).get_json()
    assert 'name="amount"' not in page_html(stack, fixed)
    created = create(stack, intent="topup", amount=2000, amount_range={"min": 500, "max": 20000}).get_json()
    html = page_html(stack, created)
    field = re.search(r'<input[^>]*name="amount"[^>]*>', html).group(0)
    assert 'value="20.00"' in field and 'autocomplete="transaction-amount"' in field
    assert "Between $5.00 and $200.00" in html and "Prepaid top-up" in html
    assert "This amount will be added to your prepaid balance." in html
    empty = create(stack, intent="topup", amount_range={"min": 500, "max": 20000}).get_json()
    html = page_html(stack, empty)
    assert 'value=""' in re.search(r'<input[^>]*name="amount"[^>]*>', html).group(0)
    assert "$5.00–$200.00" in html and ">Pay</span>" in html
    jpy = create(stack, amount=2500, currency="JPY", amount_range={"min": 1000, "max": 9000}, locale="de-DE").get_json()
    assert 'value="2500"' in re.search(r'<input[^>]*name="amount"[^>]*>', page_html(stack, jpy)).group(0)


@pytest.mark.parametrize("typed, message", [
    ("4.99", "The amount must be at least $5.00."),
    ("200.01", "The amount can be at most $200.00."),
    ("twenty", "Enter the amount as a number, for example 5.00."),
    ("20.005", "Enter the amount as a number, for example 5.00."),
    ("", "Enter the amount you want to pay, between $5.00 and $200.00."),
])
def test_the_page_explains_a_wrong_amount_and_uses_no_attempt(stack, typed, message):
    created = create(stack, amount_range={"min": 500, "max": 20000}).get_json()
    r = pay_amount(stack, created, typed)
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert message in html and 'aria-invalid="true"' in html
    field = re.search(r'<input[^>]*name="amount"[^>]*>', html).group(0)
    assert f'value="{typed}"' in field or not typed  # what was typed is shown again to be fixed
    assert "4242" not in html  # never the card number
    v = view(stack, created["session_id"])
    assert v["amount"] is None and v["attempts"] == 0


def test_an_amount_typed_on_the_page_is_the_amount_paid(stack):
    created = create(stack, intent="topup", amount=2000, amount_range={"min": 500, "max": 500000}).get_json()
    r = pay_amount(stack, created, "$1,234.5")
    assert r.status_code == 303, r.get_data(as_text=True)[:500]
    v = view(stack, created["session_id"])
    assert v["status"] == "approved" and v["amount"] == 123450
    assert payment(stack, v["payment_id"])["amount"] == 123450
    outcome = page_html(stack, created)
    assert "$1,234.50" in outcome and "Prepaid top-up" in outcome


def test_a_page_amount_in_a_decimal_comma_locale(stack):
    created = create(stack, amount_range={"min": 500, "max": 20000}, currency="EUR", locale="de-DE").get_json()
    assert pay_amount(stack, created, "12,34").status_code == 303
    assert view(stack, created["session_id"])["amount"] == 1234


def test_a_fixed_amount_page_is_unchanged(stack):
    created = create(stack, amount=2500).get_json()
    r = pay(stack, created["checkout_url"])
    assert r.status_code == 303 and view(stack, created["session_id"])["amount"] == 2500
