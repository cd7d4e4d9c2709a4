"""Card rules: brand detection, Luhn, expiry parsing, validation and a card type that cannot leak.

Everything here is pure (no I/O, no clock: ``today`` is passed in) and framework-free.

Brands (ids → display names): ``visa`` Visa, ``mastercard`` Mastercard, ``amex`` American Express,
``discover`` Discover, ``diners`` Diners Club, ``jcb`` JCB, ``unionpay`` UnionPay.

Issuer identification ranges used by :func:`detect_brand` (leading digits; the same table drives the
checkout page's script, ``app/static/checkout.js``)::

    visa        4
    mastercard  51-55, 2221-2720
    amex        34, 37
    discover    6011, 644-649, 65
    diners      300-305, 36, 38-39
    jcb         3528-3589
    unionpay    62

PAN lengths and CVC lengths follow the card networks' published rules as summarised by Stripe's
testing docs (docs.stripe.com/testing): Amex has 15 digits and a 4-digit CID, every other brand a
3-digit CVC. The Luhn check is the ISO/IEC 7812-1 mod-10 check digit.

Field error codes of :func:`validate_card` (stable; the checkout form and the voice API map them to
words). The names follow Stripe's card error codes where one exists::

    number           required | invalid_number (bad characters, or a length the brand does not use)
                     | incorrect_number (Luhn check fails) | unsupported_brand (unknown brand, or a
                     brand not in ``allowed_brands``)
    exp_month        required | invalid_expiry_month (not a number from 1 to 12)
    exp_year         required | invalid_expiry_year (not 2 or 4 digits, or more than 20 years ahead)
                     | expired_card (the card is valid through the last day of its expiry month, so
                     (year, month) earlier than today's (year, month) is expired)
    cvc              required | invalid_cvc (non-digits, or not the brand's CVC length)
    cardholder_name  required | invalid_name (over 100 characters, or control characters)

PCI DSS boundary: :class:`Card` and :class:`CardValidation` never print the full PAN (at most the
first six and last four digits, PCI DSS req. 3.4) and never print any CVC digit. Error codes never
carry card data.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterable

from kernel.luhn import luhn_valid

__all__ = [
    "BRANDS", "BrandRule", "Card", "CardValidation", "MAX_RAW_NUMBER_LENGTH", "detect_brand", "inspect_number",
    "authorization_validity", "luhn_valid", "normalize_number", "parse_expiry_text", "validate_card",
]


@dataclass(frozen=True)
class BrandRule:
    """One card brand: ``id`` (e.g. ``"amex"``), display ``name``, accepted PAN lengths, CVC length."""

    id: str
    name: str
    pan_lengths: tuple[int, ...]
    cvc_length: int


BRANDS: dict[str, BrandRule] = {
    rule.id: rule
    for rule in (
        BrandRule("visa", "Visa", (13, 16, 19), 3),
        BrandRule("mastercard", "Mastercard", (16,), 3),
        BrandRule("amex", "American Express", (15,), 4),
        BrandRule("discover", "Discover", (16, 17, 18, 19), 3),
        BrandRule("diners", "Diners Club", (14, 15, 16, 17, 18, 19), 3),
        BrandRule("jcb", "JCB", (16, 17, 18, 19), 3),
        BrandRule("unionpay", "UnionPay", (16, 17, 18, 19), 3),
    )
}
"""Every brand paygate knows, keyed by id. Which ones a deployment accepts is ``allowed_brands``."""

# (brand id, low, high): the number's first len(str(low)) digits must lie within [low, high].
_BIN_RANGES: tuple[tuple[str, int, int], ...] = (
    ("visa", 4, 4),
    ("mastercard", 51, 55),
    ("mastercard", 2221, 2720),
    ("amex", 34, 34),
    ("amex", 37, 37),
    ("discover", 6011, 6011),
    ("discover", 644, 649),
    ("discover", 65, 65),
    ("diners", 300, 305),
    ("diners", 36, 36),
    ("diners", 38, 39),
    ("jcb", 3528, 3589),
    ("unionpay", 62, 62),
)

MIN_PAN_LENGTH = 12
MAX_PAN_LENGTH = 19
MAX_RAW_NUMBER_LENGTH = 23
"""The hosted form's number field takes up to 23 characters: 19 digits plus separators (docs/api.md, "Checkout page")."""
MAX_NAME_LENGTH = 100
MAX_YEARS_AHEAD = 20

_DIGITS = re.compile(r"[0-9]+")
_NUMBER_CHARS = re.compile(r"[0-9 \-]+")
_EXPIRY_SEPARATED = re.compile(r"\s*([0-9]{1,2})\s*[/\-]\s*([0-9]{2}|[0-9]{4})\s*")
_EXPIRY_COMPACT = re.compile(r"\s*([0-9]{2})([0-9]{2}|[0-9]{4})\s*")


def detect_brand(digits: str) -> str | None:
    """The brand id for the leading digits of a card number, or ``None``.

    Works on partial input as the customer types: returns ``None`` until enough digits were given to
    decide (``"3"`` could be Amex, Diners or JCB; ``"2221"`` is the first Mastercard 2-series prefix),
    and ``None`` for numbers outside every known range. ``digits`` must be digits only (no separators).
    """
    if not digits or not digits.isascii() or not digits.isdigit():
        return None
    for brand, low, high in _BIN_RANGES:
        width = len(str(low))
        if len(digits) >= width and low <= int(digits[:width]) <= high:
            return brand
    return None


def normalize_number(raw: str) -> str | None:
    """Digits of a card number as people type it: ``"4242 4242-4242 4242"`` → ``"4242424242424242"``.

    Accepts digits, spaces and dashes, at most 23 characters (after trimming surrounding whitespace).
    Returns ``None`` for anything else (other characters, too long, no digits). Length per brand is
    checked by :func:`validate_card`, not here.
    """
    if not isinstance(raw, str):
        return None
    text = raw.strip()
    if not text or len(text) > MAX_RAW_NUMBER_LENGTH or not text.isascii() or not _NUMBER_CHARS.fullmatch(text):
        return None
    digits = text.replace(" ", "").replace("-", "")
    return digits or None


def inspect_number(digits: str, allowed_brands: Iterable[str]) -> dict:
    """What a voice flow needs to ask next for these digits (docs/api.md, "Voice": ``POST /v1/cards/inspect``).

    Returns ``{"brand", "allowed", "pan_lengths", "cvc_length", "requires_expiry": True,
    "requires_cvc": True, "luhn_valid"}``. ``luhn_valid`` is ``None`` while fewer digits than the brand's
    shortest PAN length were given. An unknown brand gives ``brand=None, allowed=False, pan_lengths=[],
    cvc_length=None`` (and ``luhn_valid=None``). Raises ``ValueError`` if ``digits`` is not digits only.
    """
    if not isinstance(digits, str) or not digits.isascii() or not digits.isdigit():
        raise ValueError("number must contain digits only")
    allowed = set(allowed_brands)
    brand = detect_brand(digits)
    rule = BRANDS.get(brand) if brand else None
    if rule is None:
        return {"brand": None, "allowed": False, "pan_lengths": [], "cvc_length": None,
                "requires_expiry": True, "requires_cvc": True, "luhn_valid": None}
    complete_enough = len(digits) >= min(rule.pan_lengths)
    return {"brand": rule.id, "allowed": rule.id in allowed, "pan_lengths": list(rule.pan_lengths),
            "cvc_length": rule.cvc_length, "requires_expiry": True, "requires_cvc": True,
            "luhn_valid": luhn_valid(digits) if complete_enough else None}


def parse_expiry_text(text: str) -> tuple[int, int] | None:
    """Parses the web form's ``cc-exp`` field into ``(month, four_digit_year)``.

    Accepted: ``"MM/YY"``, ``"MM / YY"``, ``"MM/YYYY"``, ``"M/YY"``, ``"MM-YY"``, ``"MMYY"``, ``"MMYYYY"``.
    Two-digit years mean 20YY. The month is returned as written (13 stays 13) so that
    :func:`validate_card` can report ``invalid_expiry_month``; ``None`` means the text has no expiry shape.
    """
    if not isinstance(text, str) or not text.isascii():
        return None
    match = _EXPIRY_SEPARATED.fullmatch(text) or _EXPIRY_COMPACT.fullmatch(text)
    if match is None:
        return None
    month, year = int(match.group(1)), match.group(2)
    return month, (2000 + int(year) if len(year) == 2 else int(year))


def _mask(number: str) -> str:
    if len(number) < 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]


@dataclass(frozen=True)
class Card:
    """A validated card held in memory for one submission. Build it with :func:`validate_card`.

    ``number``: the PAN digits; ``exp_month`` 1–12; ``exp_year`` four digits; ``cvc``: digits or ``None``
    (never persisted anywhere); ``cardholder_name`` or ``None``; ``brand``: a :data:`BRANDS` id.
    ``repr``/``str`` show only the brand, the masked number (first six, last four) and the expiry.
    """

    number: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvc: str | None = field(repr=False, default=None)
    cardholder_name: str | None = field(repr=False, default=None)
    brand: str = ""

    @property
    def last4(self) -> str:
        """The last four digits (safe to store and display)."""
        return self.number[-4:]

    @property
    def bin(self) -> str:
        """The first six digits, the issuer identification number."""
        return self.number[:6]

    @property
    def masked(self) -> str:
        """``"424242******4242"``: first six and last four digits, the rest starred (PCI DSS 3.4)."""
        return _mask(self.number)

    def __repr__(self) -> str:
        return (f"Card(brand={self.brand!r}, number={self.masked!r}, exp={self.exp_month:02d}/{self.exp_year}, "
                f"cvc={'***' if self.cvc else None})")

    __str__ = __repr__


@dataclass(frozen=True)
class CardValidation:
    """The result of :func:`validate_card`: ``card`` when valid, else ``errors`` (field → code)."""

    card: Card | None
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the card is valid (``card`` is set and ``errors`` is empty)."""
        return self.card is not None and not self.errors


def _blank(value) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _small_int(value, max_digits: int, allowed_lengths: tuple[int, ...] | None = None) -> tuple[int, int] | None:
    """(int value, digit count) from an int or a digit string (DTMF gives strings); None if malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if value < 0:
            return None
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text.isascii() or not _DIGITS.fullmatch(text):
            return None
    else:
        return None
    if len(text) > max_digits or (allowed_lengths and len(text) not in allowed_lengths):
        return None
    return int(text), len(text)


def _check_number(number) -> tuple[str | None, str | None, str | None]:
    """(digits, brand, error code)."""
    if isinstance(number, int) and not isinstance(number, bool):
        number = str(number)
    if _blank(number):
        return None, None, "required"
    digits = normalize_number(number)
    if digits is None or not MIN_PAN_LENGTH <= len(digits) <= MAX_PAN_LENGTH:
        return None, None, "invalid_number"
    brand = detect_brand(digits)
    return digits, brand, None


def _check_year(exp_year, today: date) -> tuple[int | None, str | None]:
    if _blank(exp_year):
        return None, "required"
    if isinstance(exp_year, int) and not isinstance(exp_year, bool):
        parsed = _small_int(exp_year, 4)
        if parsed is None:
            return None, "invalid_expiry_year"
        year = parsed[0] + 2000 if parsed[0] < 100 else parsed[0]
        if year < 1000:
            return None, "invalid_expiry_year"
    else:
        parsed = _small_int(exp_year, 4, (2, 4))
        if parsed is None:
            return None, "invalid_expiry_year"
        year = parsed[0] + 2000 if parsed[1] == 2 else parsed[0]
    if year > today.year + MAX_YEARS_AHEAD:
        return None, "invalid_expiry_year"
    return year, None


def _check_name(name, require_name: bool) -> tuple[str | None, str | None]:
    if _blank(name):
        return None, ("required" if require_name else None)
    if not isinstance(name, str):
        return None, "invalid_name"
    text = name.strip()
    if len(text) > MAX_NAME_LENGTH or any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in text):
        return None, "invalid_name"
    return text, None


def validate_card(number, exp_month, exp_year, cvc, cardholder_name=None, *, today: date,
                  allowed_brands: Iterable[str], require_cvc: bool = True,
                  require_name: bool = False) -> CardValidation:
    """Validates raw card fields (web form or DTMF) and builds a :class:`Card`.

    ``number``: digits, optionally with spaces/dashes (≤ 23 characters). ``exp_month``/``exp_year``: int
    or digit string; ``exp_year`` with 2 (→ 20YY) or 4 digits. ``cvc``: digit string (``None``/blank is
    allowed only when ``require_cvc`` is False). ``today`` is the caller's current date (injected clock).
    Every field is checked and every failing field reported, with the codes listed in the module
    docstring. Never raises for bad input; the result never carries card data in its errors.
    """
    errors: dict[str, str] = {}
    allowed = set(allowed_brands)

    digits, brand, code = _check_number(number)
    rule = BRANDS.get(brand) if brand else None
    if code is None:
        if rule is None or brand not in allowed:
            code = "unsupported_brand"
        elif len(digits) not in rule.pan_lengths:
            code = "invalid_number"
        elif not luhn_valid(digits):
            code = "incorrect_number"
    if code is not None:
        errors["number"] = code

    month = None
    if _blank(exp_month):
        errors["exp_month"] = "required"
    else:
        parsed = _small_int(exp_month, 2)
        if parsed is None or not 1 <= parsed[0] <= 12:
            errors["exp_month"] = "invalid_expiry_month"
        else:
            month = parsed[0]

    year, code = _check_year(exp_year, today)
    if code is None and year is not None:
        if year < today.year or (month is not None and (year, month) < (today.year, today.month)):
            code = "expired_card"
    if code is not None:
        errors["exp_year"] = code

    cvc_text = None
    if _blank(cvc):
        if require_cvc:
            errors["cvc"] = "required"
    else:
        cvc_text = cvc.strip() if isinstance(cvc, str) else None
        lengths = (rule.cvc_length,) if rule is not None else (3, 4)
        if cvc_text is None or not cvc_text.isascii() or not _DIGITS.fullmatch(cvc_text) \
                or len(cvc_text) not in lengths:
            errors["cvc"] = "invalid_cvc"

    name, code = _check_name(cardholder_name, require_name)
    if code is not None:
        errors["cardholder_name"] = code

    if errors:
        return CardValidation(None, errors)
    card = Card(number=digits, exp_month=month, exp_year=year, cvc=cvc_text, cardholder_name=name, brand=brand)
    return CardValidation(card, {})


_DAY = timedelta(days=1)
_VALIDITY_CUSTOMER = {"visa": 7 * _DAY, "mastercard": 7 * _DAY, "amex": 7 * _DAY, "discover": 7 * _DAY}
_VALIDITY_MERCHANT = {"visa": timedelta(days=4, hours=18), "mastercard": 7 * _DAY, "amex": 7 * _DAY,
                      "discover": 7 * _DAY}


def authorization_validity(brand: str | None, initiator: str) -> timedelta:
    """How long an online (card-not-present) authorization can be captured, by card network and initiator
    (``customer`` or ``merchant``), as Stripe lists it (https://docs.stripe.com/payments/place-a-hold-on-a-payment-method,
    "Authorization validity windows"): 7 days for Visa, Mastercard, American Express and Discover when the
    customer initiated it; Visa merchant-initiated 5 days, of which Stripe holds 4 days 18 hours to leave time
    for clearing. Networks Stripe does not list (JCB, Diners, UnionPay) get the default 7 days."""
    table = _VALIDITY_MERCHANT if initiator == "merchant" else _VALIDITY_CUSTOMER
    return table.get(brand or "", 7 * _DAY)
