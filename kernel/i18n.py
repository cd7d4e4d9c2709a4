"""Languages (docs/api.md, "Languages"): which of the shipped languages serves a BCP 47 tag, the browser's
``Accept-Language`` choice, and the gettext catalogs for code that runs outside a Flask request (the SMS text).

The catalogs are ``kernel/translations/<catalog>/LC_MESSAGES/messages.po`` (GNU gettext, one per language in
:data:`SUPPORTED`), compiled to ``messages.mo`` next to them (``paygate i18n compile``; the install step runs it).
The web app reads the same catalogs through Flask-Babel. Domain code marks its customer-facing sentences with
:func:`N_` (a no-op the extractor knows) and the caller translates them in the customer's language.

Tags: RFC 5646 (https://www.rfc-editor.org/rfc/rfc5646); matching is "lookup" in the spirit of RFC 4647 §3.4
(https://www.rfc-editor.org/rfc/rfc4647#section-3.4), by primary language: ``es-MX`` → ``es``, ``pt`` or
``pt-PT`` → ``pt-BR`` (the one Portuguese shipped), anything else → ``en``.
"""

from __future__ import annotations

import gettext
import re
from functools import lru_cache
from pathlib import Path

SUPPORTED: tuple[str, ...] = ("en", "es", "fr", "de", "pt-BR", "ar")
"""The languages shipped, as BCP 47 tags (what ``<html lang>`` says)."""
DEFAULT = "en"
RTL: frozenset[str] = frozenset({"ar"})
"""Languages written right to left (``dir="rtl"``)."""
TRANSLATIONS_DIR = Path(__file__).resolve().parent / "translations"
DOMAIN = "messages"

_BY_LANGUAGE = {tag.split("-")[0].lower(): tag for tag in SUPPORTED}
TAG_PATTERN = "^[A-Za-z]{2,3}(-[A-Za-z0-9]{1,8})*$"
"""A well-formed BCP 47 language tag's shape, loosely (RFC 5646 §2.1): a 2-3 letter language, then subtags of 1-8
letters or digits (``en``, ``pt-BR``, ``zh-Hant-TW``, ``en-x-acme``). ``e$``, ``123`` or ``en_US`` do not match."""
_TAG_RE = re.compile(TAG_PATTERN)
_ARABIC_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext no-op marker name
    """Marks ``message`` for extraction into the catalogs without translating it (translated where shown)."""
    return message


def is_well_formed(tag: str | None) -> bool:
    """Whether ``tag`` has the shape of a BCP 47 language tag (:data:`TAG_PATTERN`, at most 35 characters)."""
    return isinstance(tag, str) and len(tag) <= 35 and _TAG_RE.match(tag) is not None


def best_match(tag: str | None) -> str:
    """The shipped language (one of :data:`SUPPORTED`) that serves ``tag``: its primary language when shipped
    (``es-MX`` → ``es``, ``PT`` → ``pt-BR``, ``ar-EG`` → ``ar``), else ``en`` (``zz``, ``zh-Hant``, None, or a
    malformed tag: validating it is the API's job)."""
    if not is_well_formed(tag):
        return DEFAULT
    return _BY_LANGUAGE.get(tag.split("-")[0].lower(), DEFAULT)


def from_accept_language(header: str | None) -> str:
    """The shipped language a browser asks for with ``Accept-Language`` (RFC 9110 §12.5.4,
    https://www.rfc-editor.org/rfc/rfc9110#section-12.5.4): the first by quality (then order) whose primary
    language is shipped; ``*``, unknown and malformed ranges are skipped, ``q=0`` means "not this"; ``en`` when
    nothing matches or the header is absent."""
    choices: list[tuple[float, int, str]] = []
    for index, part in enumerate((header or "")[:1000].split(",")):
        pieces = [p.strip() for p in part.split(";")]
        tag, quality = pieces[0], 1.0
        for param in pieces[1:]:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0 and is_well_formed(tag) and tag.split("-")[0].lower() in _BY_LANGUAGE:
            choices.append((-quality, index, tag))
    return best_match(min(choices)[2]) if choices else DEFAULT


def text_direction(language: str) -> str:
    """``rtl`` for a right-to-left language of :data:`SUPPORTED`, else ``ltr``."""
    return "rtl" if language in RTL else "ltr"


def isolate(text: str, language: str) -> str:
    """``text`` (an amount such as ``25.00 US$``) as a left-to-right isolate (U+2066 ... U+2069, Unicode bidi
    algorithm, https://www.unicode.org/reports/tr9/#Explicit_Directional_Isolates) inside a right-to-left
    ``language``, so "US$" is not split around the number; unchanged in a left-to-right language."""
    return f"\u2066{text}\u2069" if language in RTL else text


def catalog_name(language: str) -> str:
    """The catalog directory of a shipped language: ``pt-BR`` → ``pt_BR`` (gettext's locale naming)."""
    return language.replace("-", "_")


@lru_cache(maxsize=None)
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of ``language`` (a :data:`SUPPORTED` tag) as stdlib gettext translations, or
    ``NullTranslations`` (the English source text) for ``en`` or a catalog that is not compiled."""
    if language == DEFAULT or language not in SUPPORTED:
        return gettext.NullTranslations()
    try:
        return gettext.translation(DOMAIN, str(TRANSLATIONS_DIR), [catalog_name(language)])
    except OSError:
        return gettext.NullTranslations()


def ascii_digits(text: str | None) -> str | None:
    """``text`` with Arabic-Indic (U+0660-0669) and Eastern Arabic-Indic (U+06F0-06F9) digits made ASCII,
    as a customer may type them on the checkout page; None stays None."""
    return text.translate(_ARABIC_DIGITS) if text is not None else None
