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


def format_amount(amount: int, currency: str, locale: str | None = None) -> str:
    """Human display of ``amount`` minor units, e.g. (2500, "USD") → ``"$25.00"``, (2500, "JPY") → ``"¥2,500"``."""
    value = Decimal(amount).scaleb(-exponent(currency))
    try:
        return format_currency(value, currency, locale=(locale or "en_US").replace("-", "_"))
    except Exception:  # unknown locale: fall back to English
        return format_currency(value, currency, locale="en_US")
