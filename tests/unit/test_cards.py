"""Card rules: brands, Luhn, lengths, expiry, masking and every validation code (tokenizer.cards)."""

from __future__ import annotations

from datetime import date

import pytest

from tokenizer.cards import (
    BRANDS,
    Card,
    detect_brand,
    inspect_number,
    luhn_valid,
    normalize_number,
    parse_expiry_text,
    validate_card,
)

ALL = tuple(BRANDS)
TODAY = date(2026, 11, 23)

# Stripe's published test cards (https://docs.stripe.com/testing) → brand
STRIPE_CARDS = {
    "4242424242424242": "visa", "4000056655665556": "visa", "5555555555554444": "mastercard",
    "2223003122003222": "mastercard", "5200828282828210": "mastercard", "5105105105105100": "mastercard",
    "378282246310005": "amex", "371449635398431": "amex", "6011111111111117": "discover",
    "6011000990139424": "discover", "6011981111111113": "discover", "3056930009020004": "diners",
    "36227206271667": "diners", "6555900000604105": "discover", "3566002020360505": "jcb",
    "6200000000000005": "unionpay", "6200000000000047": "unionpay", "6205500000000000004": "unionpay",
    "4000000000000002": "visa", "4000000000009995": "visa", "4000000000009987": "visa",
    "4000000000009979": "visa", "4000000000000069": "visa", "4000000000000127": "visa",
    "4000000000000119": "visa", "4000000000006975": "visa", "4000000000000341": "visa",
    "4100000000000019": "visa", "4000000000004954": "visa", "4000000000009235": "visa",
    "4000000000000101": "visa", "4000000000000036": "visa", "4000000000000028": "visa",
    "4000000000000010": "visa", "4000000000000044": "visa", "4000002500003155": "visa",
    "4000002760003184": "visa", "4000003800000446": "visa", "4000008260003178": "visa",
    "4000000000000259": "visa", "4000000000002685": "visa", "4000000000001976": "visa",
    "4000000000005423": "visa", "4000000000007726": "visa", "4000000000005126": "visa",
    "4000000000000077": "visa",
}


def valid(number="4242424242424242", month="12", year="2030", cvc="123", name=None, **kw):
    kw.setdefault("today", TODAY)
    kw.setdefault("allowed_brands", ALL)
    return validate_card(number, month, year, cvc, name, **kw)


@pytest.mark.parametrize("number,brand", sorted(STRIPE_CARDS.items()))
def test_stripe_test_cards_brand_luhn_and_validation(number, brand):
    assert detect_brand(number) == brand
    assert luhn_valid(number)
    cvc = "1234" if brand == "amex" else "123"
    result = valid(number, cvc=cvc)
    assert result.ok, result.errors
    assert result.card.brand == brand and result.card.number == number


def test_luhn_failure_card():
    assert not luhn_valid("4242424242424241")
    assert valid("4242424242424241").errors == {"number": "incorrect_number"}
    assert not luhn_valid("") and not luhn_valid("42a2")


@pytest.mark.parametrize("prefix,brand", [
    ("2220", None), ("2221", "mastercard"), ("2720", "mastercard"), ("2721", None),
    ("50", None), ("51", "mastercard"), ("55", "mastercard"), ("56", None),
    ("6011", "discover"), ("6010", None), ("6012", None), ("643", None), ("644", "discover"),
    ("649", "discover"), ("65", "discover"), ("64", None), ("66", None),
    ("3527", None), ("3528", "jcb"), ("3589", "jcb"), ("3590", None),
    ("62", "unionpay"), ("61", None), ("63", None),
    ("34", "amex"), ("37", "amex"), ("35", None), ("33", None),
    ("300", "diners"), ("305", "diners"), ("306", None), ("36", "diners"), ("38", "diners"), ("39", "diners"),
    ("4", "visa"),
])
def test_bin_edges(prefix, brand):
    assert detect_brand(prefix) == brand
    assert detect_brand(prefix + "0000000000") == brand


@pytest.mark.parametrize("partial", ["", "2", "22", "222", "272", "3", "30", "5", "6", "60", "601", "x4", "4 2"])
def test_partial_input_is_ambiguous(partial):
    assert detect_brand(partial) is None


def test_brand_table():
    assert [BRANDS[b].name for b in ALL] == ["Visa", "Mastercard", "American Express", "Discover", "Diners Club",
                                              "JCB", "UnionPay"]
    assert BRANDS["amex"].cvc_length == 4 and BRANDS["visa"].cvc_length == 3
    assert BRANDS["visa"].pan_lengths == (13, 16, 19)
    assert BRANDS["diners"].pan_lengths == (14, 15, 16, 17, 18, 19)


@pytest.mark.parametrize("raw,digits", [
    ("4242424242424242", "4242424242424242"), ("4242 4242 4242 4242", "4242424242424242"),
    ("4242-4242-4242-4242", "4242424242424242"), (" 3782 822463 10005 ", "378282246310005"),
    ("6205 5000 0000 0000 004", "6205500000000000004"),
    ("4242 4242 4242 4242 424", "4242424242424242424"),
])
def test_normalize_accepts(raw, digits):
    assert normalize_number(raw) == digits


@pytest.mark.parametrize("raw", ["", "   ", "4242.4242.4242.4242", "4242x", "4242 4242 4242 4242 4242 4",
                                 "----", "４２４２４２４２４２４２４２４２", None, 4242])
def test_normalize_rejects(raw):
    assert normalize_number(raw) is None


def test_inspect_number_shapes():
    assert inspect_number("378282246310005", ["amex"]) == {
        "brand": "amex", "allowed": True, "pan_lengths": [15], "cvc_length": 4, "requires_expiry": True,
        "requires_cvc": True, "luhn_valid": True}
    assert inspect_number("424242", ALL)["luhn_valid"] is None
    assert inspect_number("424242424242", ALL)["luhn_valid"] is None          # 12 < shortest Visa length 13
    assert inspect_number("4242424242424241", ALL)["luhn_valid"] is False
    assert inspect_number("36227206271667", ALL)["luhn_valid"] is True      # 14-digit Diners
    assert inspect_number("5555555555554444", ["visa"])["allowed"] is False
    assert inspect_number("9999999", ALL) == {
        "brand": None, "allowed": False, "pan_lengths": [], "cvc_length": None, "requires_expiry": True,
        "requires_cvc": True, "luhn_valid": None}
    with pytest.raises(ValueError) as info:
        inspect_number("4242 4242", ALL)
    assert "4242" not in str(info.value)


@pytest.mark.parametrize("text,parsed", [
    ("12/30", (12, 2030)), ("12 / 30", (12, 2030)), ("01/2031", (1, 2031)), ("0130", (1, 2030)),
    ("1/30", (1, 2030)), ("013031", (1, 3031)), ("012031", (1, 2031)), ("13/30", (13, 2030)), (" 12/30 ", (12, 2030)),
    ("12-30", (12, 2030)),
])
def test_parse_expiry_text(text, parsed):
    assert parse_expiry_text(text) == parsed


@pytest.mark.parametrize("text", ["", "12", "12/3", "12/303", "ab/cd", "12//30", "123", "12/30/1", None])
def test_parse_expiry_text_rejects(text):
    assert parse_expiry_text(text) is None


def test_expiry_valid_through_end_of_month():
    # valid through the last day of the expiry month
    assert valid(month=11, year=2026, today=date(2026, 11, 30)).ok
    assert valid(month="11", year="26", today=date(2026, 11, 1)).ok
    assert valid(month=11, year=2026, today=date(2026, 12, 1)).errors == {"exp_year": "expired_card"}
    assert valid(month=12, year=2025, today=date(2026, 1, 1)).errors == {"exp_year": "expired_card"}
    assert valid(month=1, year=2027, today=date(2026, 12, 31)).ok
    # a past year is expired whatever the month says
    assert valid(month=13, year=2020).errors == {"exp_month": "invalid_expiry_month", "exp_year": "expired_card"}


def test_expiry_inputs_int_or_string_two_or_four_digits():
    for month, year in [(12, 30), (12, 2030), ("12", "30"), ("12", "2030"), ("06", 2030), (" 6 ", "30")]:
        result = valid(month=month, year=year)
        assert result.ok, (month, year, result.errors)
        assert result.card.exp_year == 2030 and result.card.exp_month in (6, 12)


def test_year_limit_twenty_years_ahead():
    assert valid(year=TODAY.year + 20).ok
    assert valid(year=TODAY.year + 21).errors == {"exp_year": "invalid_expiry_year"}


@pytest.mark.parametrize("kwargs,errors", [
    ({"number": ""}, {"number": "required"}),
    ({"number": None}, {"number": "required"}),
    ({"number": "4242x424242424242"}, {"number": "invalid_number"}),
    ({"number": "42424242424"}, {"number": "invalid_number"}),                       # 11 digits
    ({"number": "42424242424242424242"}, {"number": "invalid_number"}),              # 20 digits
    ({"number": "424242424242428"}, {"number": "invalid_number"}),                   # 15-digit Visa
    ({"number": "37828224631000", "cvc": "1234"}, {"number": "invalid_number"}),     # 14-digit Amex
    ({"number": "4242424242424241"}, {"number": "incorrect_number"}),
    ({"number": "9999999999999995"}, {"number": "unsupported_brand"}),
    ({"number": "5555555555554444", "allowed_brands": ("visa",)}, {"number": "unsupported_brand"}),
    ({"month": ""}, {"exp_month": "required"}),
    ({"month": None}, {"exp_month": "required"}),
    ({"month": "13"}, {"exp_month": "invalid_expiry_month"}),
    ({"month": 0}, {"exp_month": "invalid_expiry_month"}),
    ({"month": "1a"}, {"exp_month": "invalid_expiry_month"}),
    ({"month": "invalid"}, {"exp_month": "invalid_expiry_month"}),
    ({"month": True}, {"exp_month": "invalid_expiry_month"}),
    ({"month": "012"}, {"exp_month": "invalid_expiry_month"}),
    ({"year": ""}, {"exp_year": "required"}),
    ({"year": "203"}, {"exp_year": "invalid_expiry_year"}),
    ({"year": "20300"}, {"exp_year": "invalid_expiry_year"}),
    ({"year": "invalid"}, {"exp_year": "invalid_expiry_year"}),
    ({"year": 203}, {"exp_year": "invalid_expiry_year"}),
    ({"year": "2060"}, {"exp_year": "invalid_expiry_year"}),
    ({"year": "2025"}, {"exp_year": "expired_card"}),
    ({"year": "25"}, {"exp_year": "expired_card"}),
    ({"cvc": ""}, {"cvc": "required"}),
    ({"cvc": None}, {"cvc": "required"}),
    ({"cvc": "12"}, {"cvc": "invalid_cvc"}),
    ({"cvc": "1234"}, {"cvc": "invalid_cvc"}),
    ({"cvc": "12a"}, {"cvc": "invalid_cvc"}),
    ({"number": "378282246310005", "cvc": "123"}, {"cvc": "invalid_cvc"}),
    ({"name": "", "require_name": True}, {"cardholder_name": "required"}),
    ({"name": "x" * 101}, {"cardholder_name": "invalid_name"}),
    ({"name": "Jane\x00Doe"}, {"cardholder_name": "invalid_name"}),
    ({"name": "Jane\nDoe"}, {"cardholder_name": "invalid_name"}),
])
def test_error_codes(kwargs, errors):
    result = valid(**kwargs)
    assert not result.ok and result.card is None
    assert result.errors == errors


def test_all_fields_reported_together():
    result = valid("", "", "", "", "", require_name=True)
    assert result.errors == {"number": "required", "exp_month": "required", "exp_year": "required",
                             "cvc": "required", "cardholder_name": "required"}


def test_optional_cvc_and_name():
    result = valid(cvc=None, require_cvc=False)
    assert result.ok and result.card.cvc is None and result.card.cardholder_name is None
    assert valid(cvc="12", require_cvc=False).errors == {"cvc": "invalid_cvc"}
    named = valid(name="  Jane Doe  ", require_name=True)
    assert named.ok and named.card.cardholder_name == "Jane Doe"
    assert valid(name="x" * 100).ok


def test_card_properties_and_masking():
    card = valid("4242 4242 4242 4242", cvc="987", name="Jane Doe").card
    assert (card.last4, card.bin, card.masked) == ("4242", "424242", "424242******4242")
    assert Card("378282246310005", 1, 2030, "1234", None, "amex").masked == "378282*****0005"
    for text in (repr(card), str(card), f"{card}", repr(valid(cvc="987", name="Jane")),
                 repr([card]), repr({"card": card})):
        assert "4242424242424242" not in text
        assert "987" not in text
        assert "424242******4242" in text or "Card(" in text
    diners = valid("36227206271667", cvc="555").card
    assert "36227206271667" not in repr(diners) and "555" not in repr(diners)


def test_errors_carry_no_card_data():
    result = valid("4242424242424241", cvc="98")
    assert "4242424242424241" not in repr(result) and "98" not in repr(result)
