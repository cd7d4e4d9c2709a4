"""Money: integer minor units plus an ISO 4217 currency code.

Minor-unit exponents and display come from CLDR via Babel, so JPY has 0
decimals, KWD 3, USD 2 — never floats.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache

from babel.numbers import format_currency, get_currency_precision, list_currencies


@lru_cache(maxsize=1)
def known_currencies() -> frozenset[str]:
    """ISO 4217 alpha-3 codes CLDR knows (upper case)."""
    return frozenset(list_currencies())


def is_currency(code: str) -> bool:
    """True for an upper-case ISO 4217 code CLDR knows, e.g. ``"USD"``; False for ``"usd"`` or ``"XYZ"``."""
    return isinstance(code, str) and len(code) == 3 and code.isupper() and code in known_currencies()


def exponent(currency: str) -> int:
    """Digits after the decimal point of ``currency``'s minor unit (USD 2, JPY 0, KWD 3)."""
    return get_currency_precision(currency)


@lru_cache(maxsize=4096)
def format_amount(amount: int, currency: str, locale: str | None = None) -> str:
    """Human display of ``amount`` minor units, e.g. (2500, "USD") → ``"$25.00"``, (2500, "JPY") → ``"¥2,500"``.
    Remembered for the last 4,096 (amount, currency, locale): the page, the agent view and the messages format
    the same few amounts again and again, and Babel's formatting is the costly part."""
    value = Decimal(amount).scaleb(-exponent(currency))
    try:
        return format_currency(value, currency, locale=(locale or "en_US").replace("-", "_"))
    except Exception:  # unknown locale: fall back to English
        return format_currency(value, currency, locale="en_US")


MAX_AMOUNT = 10**12
"""The largest amount paygate accepts, in minor units (ten billion dollars in USD)."""


def parse_minor_units(value) -> int:
    """An amount in minor units from an integer or a string of ASCII digits (Genesys flow variables arrive as
    strings): ``2500`` or ``"2500"`` → 2500. Raises ``ValueError`` for zero, a negative number, a decimal
    (``"12.50"``, ``12.5``), a boolean, an empty or non-digit string, or more than :data:`MAX_AMOUNT`: an amount
    is never silently zero or rounded."""
    if isinstance(value, bool):
        raise ValueError("an amount is an integer, not a boolean")
    if isinstance(value, int):
        amount = value
    elif isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 13:
        amount = int(value)
    else:
        raise ValueError("an amount is a positive integer of minor units, or a string of its digits")
    if not 1 <= amount <= MAX_AMOUNT:
        raise ValueError("an amount must be at least 1 minor unit")
    return amount
