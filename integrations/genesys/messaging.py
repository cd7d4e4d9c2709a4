"""Texting the checkout link through Genesys's agentless messaging API (SMS or WhatsApp).

``POST /api/v2/conversations/messages/agentless``
(https://developer.genesys.cloud/commdigital/digital/agentless-messaging): an SMS ``textBody`` may hold
765 characters at most, other messengers 2000. :func:`link_message` writes the text;
:func:`send_link_message` sends it; the domain decides when a link may be sent (:mod:`payments.links`).
"""

from __future__ import annotations

import re

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


def link_message(checkout_url: str, amount_text: str, expires_text: str, messenger_type: str) -> str:
    """The agentless message text: a short friendly sentence with the link, or the bare link when the
    sentence would not fit. Limits (https://developer.genesys.cloud/commdigital/digital/agentless-messaging): 765 characters for ``sms``, 2000 otherwise.
    Raises ``ValueError`` when even the bare link is too long."""
    limit = SMS_MAX_CHARS if messenger_type == "sms" else OTHER_MAX_CHARS
    text = (f"Here is your secure payment link for {amount_text}: {checkout_url} "
            f"It works until {expires_text}. We will never ask for your card details by message.")
    if len(text) <= limit:
        return text
    bare = f"Pay securely: {checkout_url}"
    if len(bare) <= limit:
        return bare
    raise ValueError("the checkout link does not fit in one message")


def send_link_message(api: GenesysApi, creds: Credentials, *, to: str, messenger_type: str, from_address: str,
                      text: str) -> GenesysResponse:
    """Sends ``text`` to ``to`` (E.164); WhatsApp addresses go without the ``+``. Never raises for HTTP or
    transport failures (see :class:`~integrations.genesys.client.GenesysResponse`)."""
    return api.send_agentless_message(creds, from_address=from_address,
                                      to_address=to if messenger_type == "sms" else to.lstrip("+"),
                                      messenger_type=messenger_type, text=text)
