"""Amount rules of a deployment (docs/api.md, "Contact-center rules"): which currencies may be charged and the
least amount per currency, plus the amount a customer enters themselves (``amount_range``).

The rules come from Genesys's voice payment use case CE08, whose configuration names "the currency of the
payment" and "optionally a minimum payment amount in case the customer can specify the payment amount"
(https://all.docs.genesys.com/UseCases/Public/GenesysCloud/CE08):

* ``PAYGATE_ALLOWED_CURRENCIES`` (``USD,EUR``; unset: every ISO 4217 code) → another currency is 400
  ``currency_not_allowed``;
* ``PAYGATE_MIN_AMOUNTS`` (``USD:500,EUR:500``, minor units) → less is 400 ``amount_below_minimum``.

Both are errors of the request that names the amount (a session, a merchant-initiated charge, a subscription,
the bounds of an ``amount_range``). An amount the *customer* enters is judged by :meth:`AmountRules.judge`,
which returns an outcome (``ok`` · ``below_minimum`` · ``above_maximum`` · ``invalid``), never raises: a
Genesys flow takes its Failure path on any non-2xx and could not tell the caller what to fix.

Amounts are integer minor units of an ISO 4217 currency (USD 2500 = $25.00, JPY 2500 = ¥2,500); the
page's amount field shows major units (``25.00``) through :func:`major_units_text` and reads them back with
:func:`parse_major_units` (Babel, CLDR locale data).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from babel import Locale
from babel.numbers import NumberFormatError, format_decimal, get_currency_symbol, parse_decimal

from kernel.errors import ValidationFailed
from kernel.money import MAX_AMOUNT, exponent, format_amount

DIGITS_MAX = 13
"""The most digits a caller-entered amount may have (:data:`kernel.money.MAX_AMOUNT` has 13)."""

OUTCOMES = ("ok", "below_minimum", "above_maximum", "invalid")
"""Outcomes of a customer-entered amount (``POST /v1/payment-sessions/{id}/amount``, the page's field)."""


@dataclass(frozen=True)
class AmountJudgement:
    """What :meth:`AmountRules.judge` made of an entered amount: ``outcome`` (one of :data:`OUTCOMES`),
    ``amount`` (minor units, None for ``invalid``) and a ``message`` in plain words a flow can read out."""

    outcome: str
    amount: int | None
    message: str


@dataclass(frozen=True)
class AmountRules:
    """``allowed_currencies``: ISO 4217 codes (None allows every code); ``min_amounts``: currency → least
    amount in minor units (a currency not listed has no minimum beyond 1)."""

    allowed_currencies: tuple[str, ...] | None = None
    min_amounts: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings) -> AmountRules:
        """From :class:`kernel.settings.Settings` (``allowed_currencies``, ``min_amounts``)."""
        return cls(allowed_currencies=settings.allowed_currencies, min_amounts=dict(settings.min_amounts or {}))

    def minimum(self, currency: str) -> int:
        """The least amount of ``currency`` in minor units (1 when no minimum is configured)."""
        return max(1, int(self.min_amounts.get(currency, 1)))

    def check_currency(self, currency: str, *, field_name: str = "currency") -> None:
        """Raises :class:`ValidationFailed` 400 ``currency_not_allowed`` (``fields: {field_name: code}``) when
        ``currency`` is not among ``PAYGATE_ALLOWED_CURRENCIES``."""
        if self.allowed_currencies is not None and currency not in self.allowed_currencies:
            raise ValidationFailed(
                f"{currency} is not accepted here; allowed: {', '.join(self.allowed_currencies) or 'none'}.",
                code="currency_not_allowed", details={"fields": {field_name: "currency_not_allowed"}})

    def check(self, amount: int, currency: str, *, field_name: str = "amount",
              currency_field: str = "currency") -> None:
        """Checks a requested amount (minor units) of ``currency``: raises :class:`ValidationFailed` 400 with
        ``error.code`` ``currency_not_allowed`` (``fields: {currency_field: ...}``) or
        ``amount_below_minimum`` (``fields: {field_name: ...}``, the message names the minimum)."""
        self.check_currency(currency, field_name=currency_field)
        least = self.minimum(currency)
        if amount < least:
            raise ValidationFailed(
                f"The {field_name} is below the minimum of {least} minor units of {currency} "
                f"({format_amount(least, currency)}).",
                code="amount_below_minimum", details={"fields": {field_name: "amount_below_minimum"}})

    def judge(self, value, *, currency: str, minimum: int, maximum: int, locale: str | None = None
              ) -> AmountJudgement:
        """Judges an amount a customer entered for a range ``minimum``..``maximum`` (minor units, inclusive).

        ``value``: an integer, or a string of ASCII digits as DTMF gives it (``"2500"``; surrounding spaces
        are ignored). Anything else — letters, a sign, a decimal point, a boolean, an empty or a longer
        string than :data:`DIGITS_MAX` digits — is ``invalid``. Zero and less than ``minimum`` are
        ``below_minimum``; more than ``maximum`` is ``above_maximum``.
        """
        amount = _digits_amount(value)
        low, high = format_amount(minimum, currency, locale), format_amount(maximum, currency, locale)
        if amount is None:
            return AmountJudgement("invalid", None,
                                   f"Please enter the amount using digits only, between {low} and {high}.")
        if amount < minimum:
            return AmountJudgement("below_minimum", amount, f"The amount must be at least {low}.")
        if amount > maximum:
            return AmountJudgement("above_maximum", amount, f"The amount can be at most {high}.")
        return AmountJudgement("ok", amount, f"The amount is {format_amount(amount, currency, locale)}.")


def _digits_amount(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isascii() and text.isdigit() and len(text) <= DIGITS_MAX:
            return int(text)
    return None


def _babel_locale(locale: str | None) -> str:
    """``locale`` (BCP 47, ``en-US``) as Babel's identifier, or ``en_US`` when CLDR does not know it."""
    candidate = (locale or "en_US").replace("-", "_")
    try:
        Locale.parse(candidate)
    except Exception:
        return "en_US"
    return candidate


def major_units_text(amount: int | None, currency: str, locale: str | None = None) -> str:
    """``amount`` minor units as the digits a person types in major units, in ``locale``'s notation and
    without the currency symbol or grouping: (2500, USD) → ``"25.00"``, (2500, JPY) → ``"2500"``, (2500, USD,
    de-DE) → ``"25,00"``. None → ``""``."""
    if amount is None:
        return ""
    places = exponent(currency)
    value = Decimal(amount).scaleb(-places)
    pattern = "0" + ("." + "0" * places if places else "")
    return format_decimal(value, format=pattern, locale=_babel_locale(locale), group_separator=False)


def parse_major_units(text: str | None, currency: str, locale: str | None = None) -> int | None:
    """What a person typed in the page's amount field (major units: ``25``, ``25.00``, ``$1,234.50``, in
    ``locale``'s notation) as minor units, or None when it is not an amount: empty, not a number, negative,
    more decimals than the currency has (``25.001`` USD, ``25.5`` JPY), or over
    :data:`kernel.money.MAX_AMOUNT`. Zero is returned as 0 (below any minimum)."""
    if not isinstance(text, str):
        return None
    cleaned = text.strip()
    if not cleaned or len(cleaned) > 40:
        return None
    locale_id = _babel_locale(locale)
    for symbol in {currency, _symbol(currency, locale_id), "$", "€", "£", "¥"}:
        if symbol:
            cleaned = cleaned.replace(symbol, "")
    cleaned = "".join(cleaned.split())  # spaces, no-break spaces: grouping in many locales
    if not cleaned or not cleaned[0].isdigit() or any(c.isalpha() for c in cleaned):
        return None
    try:
        value = parse_decimal(cleaned, locale=locale_id, strict=True)
    except (NumberFormatError, InvalidOperation, ValueError):
        try:  # plain digits with a dot are understood whatever the locale's notation
            value = Decimal(cleaned) if cleaned.replace(".", "", 1).isdigit() else None
        except InvalidOperation:
            value = None
        if value is None:
            return None
    if not value.is_finite() or value < 0:
        return None
    minor = value.scaleb(exponent(currency))
    if minor != minor.to_integral_value():
        return None
    amount = int(minor)
    return amount if amount <= MAX_AMOUNT else None


def _symbol(currency: str, locale_id: str) -> str | None:
    try:
        return get_currency_symbol(currency, locale=locale_id)
    except Exception:
        return None
