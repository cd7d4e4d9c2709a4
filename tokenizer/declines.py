"""What a customer is told about a decline or a failed payment, by code: the one table paygate uses.

Codes are Stripe's (https://docs.stripe.com/declines/codes and https://docs.stripe.com/error-codes), which the
sandbox gateway imitates. Stripe asks that ``fraudulent``, ``lost_card``, ``stolen_card`` and
``merchant_blacklist`` be shown to the buyer as a generic decline, so the buyer learns nothing about fraud
screening; :func:`customer_message` does that for every fraud-flavoured code.

The sentences are English and marked for the catalogs (:func:`kernel.i18n.N_`): the page shows them in the
customer's language (``gettext`` of the English text).
"""

from __future__ import annotations

from kernel.i18n import N_

_GENERIC = N_("Your card was declined. Please use another card or contact your card issuer.")

_MESSAGES: dict[str, str] = {
    "generic_decline": _GENERIC,
    "insufficient_funds": N_("Your card has insufficient funds for this payment. Please use another card."),
    "expired_card": N_("Your card has expired. Please use another card."),
    "incorrect_cvc": N_("The security code does not match this card. Please check it and try again."),
    "invalid_cvc": N_("The security code is not valid. Please check it and try again."),
    "incorrect_number": N_("The card number is not correct. Please check it and try again."),
    "invalid_number": N_("The card number is not valid. Please check it and try again."),
    "invalid_expiry_month": N_("The expiry month is not valid. Please check it and try again."),
    "invalid_expiry_year": N_("The expiry year is not valid. Please check it and try again."),
    "processing_error": N_("Your card could not be processed right now. Please try again in a moment."),
    "card_velocity_exceeded": N_("This card has reached its limit for now. Please use another card."),
    "authentication_required": N_("This card needs extra verification that this payment page cannot perform. "
                                  "Please use another card."),
    "card_not_supported": N_("This card does not support this kind of payment. Please use another card."),
    "currency_not_supported": N_("This card does not support this currency. Please use another card."),
    "try_again_later": N_("Your card could not be processed right now. Please try again in a moment."),
}
# fraud-flavoured codes get the generic text so the buyer learns nothing about screening (Stripe's advice)
for _code in ("fraudulent", "lost_card", "stolen_card", "merchant_blacklist", "pickup_card", "restricted_card",
              "security_violation", "do_not_honor", "do_not_try_again"):
    _MESSAGES[_code] = _GENERIC


FAILED_MESSAGE = N_("The payment could not be completed because of a technical problem. You have not been charged.")
UNAVAILABLE_MESSAGE = N_("We are still confirming your payment. You will not be charged twice.")


def customer_message(code: str | None) -> str:
    """A sentence safe to show the buyer for a decline/error ``code`` (never names fraud screening)."""
    return _MESSAGES.get(code or "", _GENERIC)
