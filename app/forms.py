"""The checkout form (Flask-WTF, with CSRF). Card rules live in :mod:`tokenizer.cards` and amount rules in
:mod:`payments.amount_rules`; the form only carries the raw fields and the CSRF token, so the page works with or
without JavaScript."""

from __future__ import annotations

from flask_babel import gettext
from flask_wtf import FlaskForm
from markupsafe import Markup, escape
from wtforms import HiddenField, StringField
from wtforms.widgets import HiddenInput, TextInput
from wtforms.widgets.core import clean_key


def html_params(**kwargs) -> Markup:
    """:func:`wtforms.widgets.html_params` with the same output (attributes sorted by name, ``True`` bare,
    ``False`` left out, names and values HTML-escaped, ``"`` as ``&quot;``), built without
    ``Markup.format``'s ``string.Formatter`` (the costliest part of rendering the checkout page)."""
    params = []
    for k, v in sorted(kwargs.items()):
        k = clean_key(k)
        if v is True:
            params.append(str(escape(k)))
        elif v is False:
            continue
        else:
            params.append(f'{escape(k)}="{escape(v).replace(Markup(chr(34)), Markup("&quot;"))}"')
    return Markup(" ".join(params))


class _TextInput(TextInput):
    html_params = staticmethod(html_params)


class _HiddenInput(HiddenInput):
    html_params = staticmethod(html_params)

from kernel.i18n import N_
from kernel.money import format_amount
from payments.amount_rules import major_units_text

from .i18n import ltr


class CheckoutForm(FlaskForm):
    """Fields: ``cardholder_name`` (cc-name), ``number`` (cc-number, up to 23 chars with spaces or dashes),
    ``expiry`` (cc-exp, MM/YY), ``cvc`` (cc-csc), ``submission_id`` (a per-render nonce that makes a
    re-POST of the same form a duplicate) and ``amount`` (transaction-amount, major units: shown only for a
    session with an ``amount_range``)."""

    amount = StringField("Amount", render_kw={"autocomplete": "transaction-amount", "inputmode": "decimal",
                                              "maxlength": 20, "spellcheck": "false"}, widget=_TextInput())

    cardholder_name = StringField("Name on card", render_kw={"autocomplete": "cc-name", "maxlength": 100,
                                                             "spellcheck": "false", "autocapitalize": "words"},
                                  widget=_TextInput())
    number = StringField("Card number", render_kw={"autocomplete": "cc-number", "inputmode": "numeric",
                                                   "maxlength": 23, "spellcheck": "false"}, widget=_TextInput())
    expiry = StringField("Expiry date (MM/YY)", render_kw={"autocomplete": "cc-exp", "inputmode": "numeric",
                                                           "maxlength": 7, "placeholder": "MM/YY"},
                    widget=_TextInput())
    cvc = StringField("Security code (CVC)", render_kw={"autocomplete": "cc-csc", "inputmode": "numeric",
                                                        "maxlength": 4}, widget=_TextInput())
    submission_id = HiddenField(widget=_HiddenInput())


# Plain words for the field error codes of tokenizer.cards.validate_card, in English (gettext: the page's language)
FIELD_MESSAGES = {
    ("number", "required"): N_("Enter your card number."),
    ("number", "invalid_number"): N_("This card number is not the right length. Please check it."),
    ("number", "incorrect_number"): N_("This card number is not valid. Please check it."),
    ("number", "unsupported_brand"): N_("We can't accept this type of card. Please use another card."),
    ("expiry", "required"): N_("Enter the expiry date as MM/YY."),
    ("expiry", "invalid_expiry_month"): N_("The expiry month must be between 01 and 12."),
    ("expiry", "invalid_expiry_year"): N_("The expiry year is not valid. Please check it."),
    ("expiry", "expired_card"): N_("This card has expired. Please use another card."),
    ("cvc", "required"): N_("Enter the security code from your card."),
    ("cvc", "invalid_cvc"): N_("The security code is not the right length. Please check it."),
    ("cardholder_name", "required"): N_("Enter the name shown on your card."),
    ("cardholder_name", "invalid_name"): N_("The name is too long or has characters we can't accept."),
    ("amount", "amount_required"): N_("Enter the amount you want to pay."),
}


def amount_message(outcome: str, s) -> str:
    """Plain words for the amount field of session ``s`` (its ``amount_range`` in its currency and locale):
    ``outcome`` is ``required`` (nothing typed), ``invalid`` (not an amount), ``below_minimum`` or
    ``above_maximum`` (:meth:`payments.amount_rules.AmountRules.judge`)."""
    low = ltr(format_amount(s.amount_min, s.currency, s.locale))
    high = ltr(format_amount(s.amount_max, s.currency, s.locale))
    if outcome == "below_minimum":
        return gettext("The amount must be at least %(low)s.", low=low)
    if outcome == "above_maximum":
        return gettext("The amount can be at most %(high)s.", high=high)
    if outcome == "required":
        return gettext("Enter the amount you want to pay, between %(low)s and %(high)s.", low=low, high=high)
    example = major_units_text(s.amount or s.amount_min, s.currency, s.locale)
    return gettext("Enter the amount as a number, for example %(example)s.", example=example)


def field_messages(errors: dict[str, str]) -> dict[str, str]:
    """Maps ``validate_card`` codes (keyed number/exp_month/exp_year/cvc/cardholder_name) to form fields
    and plain words in the page's language; both expiry parts report on the single ``expiry`` field."""
    out: dict[str, str] = {}
    for name, code in errors.items():
        form_field = "expiry" if name in ("exp_month", "exp_year") else name
        if form_field in out:
            continue
        message = FIELD_MESSAGES.get((form_field, code))
        out[form_field] = gettext(message) if message else gettext("Please check this field.")
    return out
