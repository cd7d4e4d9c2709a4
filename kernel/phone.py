"""Caller numbers: the caller's phone number as Genesys Cloud gives it, normalized to E.164.

Genesys's ``Call.Ani`` is a URI, not a bare number: help "Callback phone number creation tips"
(https://help.mypurecloud.com/?p=76134) shows ``tel: +13175550116`` (with a space), conversation payloads
carry ``tel:+18125841533``, agent legs ``sip:+18125841533@10.87.26.159;user=phone``, and Architect's phone
number type takes the schemes ``tel`` (RFC 3966), ``sip`` and ``sips``
(https://help.mypurecloud.com/articles/about-the-phone-number-data-type). :func:`caller_number` accepts
all of them and answers the one E.164 form (ITU-T E.164: ``+``, country code, at most 15 digits), so the
same caller counts as one whichever leg or flow variable the number came from.

Accepted (case-insensitive scheme, whitespace anywhere ignored)::

    +13175550100                          bare E.164, also with RFC 3966 visual separators: +1 (317) 555-0100
    tel:+13175550100                      RFC 3966 global number; ;ext=, ;phone-context= ... parameters dropped
    tel: +13175550116                     the form Genesys's help prints
    sip:+13175550100@host;user=phone      SIP/SIPS URI: the user part before ``@``, its ;parameters dropped
    sips:+13175550100@host:5061           (percent-escapes in the user part are decoded: %2B is +)
    <sip:+13175550100@host>               a name-addr's angle brackets

Refused (None): anything without a leading ``+`` (a national number such as ``3175550100`` or
``tel:3175550100;phone-context=...`` would need a guessed region, and Genesys gives public numbers in
E.164), letters (``+1-800-FLOWERS``), SIP users that are not numbers (``sip:anonymous@anonymous.invalid``,
the ``sip:<uuid>@127.0.0.1`` of IVR legs), and numbers the ``phonenumbers`` library (Google's
libphonenumber metadata, https://github.com/google/libphonenumber) does not find *possible*: an unknown
country code or a length the country does not use. A number in a range the metadata does not list as
assigned (``+1 555 ...``) is still accepted: metadata ages, and refusing a real caller's number costs more
than keeping a fictional one.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

import phonenumbers

__all__ = ["MAX_INPUT_LENGTH", "caller_number"]

MAX_INPUT_LENGTH = 256
"""Longer input is refused without parsing (a URI from Genesys is far shorter)."""

_SCHEME = re.compile(r"^(tel|sips?):", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s\-.()]")  # whitespace and RFC 3966's visual separators
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


def caller_number(raw: object) -> str | None:
    """The caller's number in E.164 (``"+13175550100"``) from ``raw``: E.164, a ``tel:`` URI or a
    ``sip:`` / ``sips:`` URI (module docstring). Returns None for anything else (not a string, empty, too
    long, national, not a possible number); never raises."""
    if not isinstance(raw, str) or not raw or len(raw) > MAX_INPUT_LENGTH:
        return None
    text = raw.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    match = _SCHEME.match(text)
    if match:
        text = text[match.end():].strip()
        if match.group(1).lower() != "tel":  # sip/sips: user@host[:port][;uri-params][?headers]
            if "@" not in text:
                return None
            text = unquote(text.split("@", 1)[0])
        text = text.split(";", 1)[0]  # tel parameters, or a telephone-subscriber's parameters in a SIP user
    digits = _SEPARATORS.sub("", text)
    if not _E164.match(digits):
        return None
    try:
        number = phonenumbers.parse(digits, None)
    except phonenumbers.NumberParseException:
        return None
    if phonenumbers.is_possible_number_with_reason(number) != phonenumbers.ValidationResult.IS_POSSIBLE:
        return None
    formatted = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return formatted if _E164.match(formatted) else None
