"""Texting the checkout link through Genesys's agentless messaging API (SMS or WhatsApp).

``POST /api/v2/conversations/messages/agentless``
(https://developer.genesys.cloud/commdigital/digital/agentless-messaging): an SMS ``textBody`` may hold
765 characters at most, other messengers 2000. :func:`link_message` writes the text;
:func:`send_link_message` sends it; the domain decides when a link may be sent (:mod:`payments.links`).
"""

from __future__ import annotations

import re

from kernel.i18n import isolate, translations
from kernel.phone import caller_number

from .client import Credentials, GenesysApi, GenesysResponse

SMS_MAX_CHARS = 765
OTHER_MAX_CHARS = 2000
E164_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
"""A phone number in E.164 (ITU-T): ``+`` and 7 to 15 digits, no leading zero."""
MESSENGER_TYPES = ("sms", "whatsapp")


def message_address(raw: str) -> str:
    """The E.164 number to text for ``raw``: E.164, or a ``tel:`` / ``sip:`` URI as Genesys's ``Call.Ani``
    gives it (``tel:+13175550100``, ``sip:+13175550100@host;user=phone``; spaces allowed), normalized by
    :func:`kernel.phone.caller_number`. Raises ``ValueError`` when it is not a caller number (a national
    number without ``+`` included: no region is guessed)."""
    number = caller_number(raw)
    if number is None:
        raise ValueError("not an E.164 number or a tel:/sip: URI holding one")
    return number


def mask_address(address: str) -> str:
    """A phone number as logs may show it: country prefix and last four digits (``+1555***4567``)."""
    if len(address) <= 8:
        return "***"
    return f"{address[:5]}***{address[-4:]}"


def validity_text(seconds: int, language: str = "en") -> str:
    """How long a link stays valid, as a duration in ``language`` (the customer's time zone is unknown, so no
    clock time): whole minutes below two hours (at least 1, rounded up: "valid for 15 minutes"), whole hours
    from there (rounded down: "valid for 3 hours")."""
    tr = translations(language)
    minutes = max(1, -(-int(seconds) // 60))
    if minutes < 120:
        return tr.ngettext("valid for %(count)d minute", "valid for %(count)d minutes", minutes) % {"count": minutes}
    hours = minutes // 60
    return tr.ngettext("valid for %(count)d hour", "valid for %(count)d hours", hours) % {"count": hours}


def link_message(checkout_url: str, amount_text: str, valid_seconds: int, messenger_type: str,
                 language: str = "en", *, merchant: str | None = None) -> str:
    """The agentless message text in ``language`` (a :data:`kernel.i18n.SUPPORTED` tag): a short friendly
    sentence with the link and how long it stays valid (:func:`validity_text`), or the bare link when the
    sentence would not fit. With ``merchant`` (the API client's display name, docs/api.md "Merchant identity")
    the text starts with it, so the customer knows whom they pay ("Acme Mobile: here is your secure payment
    link for $25.00, valid for 15 minutes: <url> ..."). Limits
    (https://developer.genesys.cloud/commdigital/digital/agentless-messaging): 765 characters for ``sms``, 2000
    otherwise. Raises ``ValueError`` when even the bare link is too long."""
    limit = SMS_MAX_CHARS if messenger_type == "sms" else OTHER_MAX_CHARS
    tr = translations(language)
    values = {"amount": isolate(amount_text, language), "validity": validity_text(valid_seconds, language),
              "url": checkout_url}
    if merchant:
        values["merchant"] = isolate(merchant, language)
        text = tr.gettext("%(merchant)s: here is your secure payment link for %(amount)s, %(validity)s: %(url)s "
                          "We will never ask for your card details by message.") % values
        bare = tr.gettext("%(merchant)s: pay securely: %(url)s") % values
        candidates = (text, bare, tr.gettext("Pay securely: %(url)s") % values)
    else:
        candidates = (tr.gettext("Here is your secure payment link for %(amount)s, %(validity)s: %(url)s "
                                 "We will never ask for your card details by message.") % values,
                      tr.gettext("Pay securely: %(url)s") % values)
    for text in candidates:
        if len(text) <= limit:
            return text
    raise ValueError("the checkout link does not fit in one message")


def send_link_message(api: GenesysApi, creds: Credentials, *, to: str, messenger_type: str, from_address: str,
                      text: str) -> GenesysResponse:
    """Sends ``text`` to ``to`` (E.164); WhatsApp addresses go without the ``+``. Never raises for HTTP or
    transport failures (see :class:`~integrations.genesys.client.GenesysResponse`)."""
    return api.send_agentless_message(creds, from_address=from_address,
                                      to_address=to if messenger_type == "sms" else to.lstrip("+"),
                                      messenger_type=messenger_type, text=text)
