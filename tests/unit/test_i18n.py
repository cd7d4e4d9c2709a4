"""Languages (docs/api.md, "Languages"): matching a BCP 47 tag or an ``Accept-Language`` header to a shipped
language, Arabic-Indic digits, the SMS duration, and the shipped catalogs: complete, not fuzzy, placeholders
intact and compiled."""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from integrations.genesys.messaging import link_message, validity_text
from kernel.i18n import SUPPORTED, ascii_digits, best_match, from_accept_language, is_well_formed, text_direction
from paygate.catalogs import catalog_languages, compile_catalogs, extract_template, po_path


@pytest.mark.parametrize("tag, served", [
    ("en", "en"), ("en-US", "en"), ("EN-gb", "en"), ("es", "es"), ("es-MX", "es"), ("es-419", "es"),
    ("fr-CA", "fr"), ("de-AT", "de"), ("pt", "pt-BR"), ("pt-BR", "pt-BR"), ("pt-PT", "pt-BR"), ("ar", "ar"),
    ("ar-EG", "ar"), ("zz", "en"), ("xx-YY", "en"), ("zh-Hant-TW", "en"), ("ja", "en"), ("ast", "en"),
    (None, "en"), ("", "en"), ("e$", "en"), ("en_US", "en")])
def test_best_match(tag, served):
    assert best_match(tag) == served


@pytest.mark.parametrize("tag", ["en", "pt-BR", "zh-Hant-TW", "es-419", "en-x-acme", "sr-Latn-RS", "ast"])
def test_well_formed(tag):
    assert is_well_formed(tag)


@pytest.mark.parametrize("tag", ["e$", "e", "123", "en_US", "en-", "-en", "en--US", "en-US-toolongsubtag",
                                 "abcd", "en US", "x" * 40, "", None, "١٢"])
def test_malformed(tag):
    assert not is_well_formed(tag)


@pytest.mark.parametrize("header, served", [
    ("de-CH, fr;q=0.8", "de"), ("zz, fr;q=0.5, es;q=0.7", "es"), ("pt-PT", "pt-BR"), ("ar;q=0, fr;q=0.1", "fr"),
    ("*", "en"), ("", "en"), (None, "en"), ("ja, zh", "en"), ("fr;q=oops, de;q=0.2", "de"),
    ("es;q=0.9, ar", "ar"), ("fr;q=0.5, es;q=0.5", "fr"), ("en-US,en;q=0.9,ar;q=0.8", "en"), (", ;, q=1", "en")])
def test_accept_language(header, served):
    assert from_accept_language(header) == served


def test_directions():
    assert [text_direction(t) for t in SUPPORTED] == ["ltr", "ltr", "ltr", "ltr", "ltr", "rtl"]


def test_arabic_indic_digits():
    assert ascii_digits("٤٢٤٢ ٤٢٤٢") == "4242 4242"
    assert ascii_digits("۱۲/۳۰") == "12/30"
    assert ascii_digits("١٢/۳۰ abc") == "12/30 abc"
    assert ascii_digits("４２") == "４２"  # fullwidth digits are not Arabic-Indic: left for validation to refuse
    assert ascii_digits(None) is None


@pytest.mark.parametrize("seconds, language, expected", [
    (900, "en", "valid for 15 minutes"), (60, "en", "valid for 1 minute"), (61, "en", "valid for 2 minutes"),
    (0, "en", "valid for 1 minute"), (7200, "en", "valid for 2 hours"), (86400, "en", "valid for 24 hours"),
    (900, "es", "válido durante 15 minutos"), (60, "fr", "valable 1 minute"), (900, "de", "15 Minuten lang gültig"),
    (10800, "pt-BR", "válido por 3 horas"), (60, "ar", "صالح لمدة دقيقة واحدة"), (120, "ar", "صالح لمدة دقيقتين"),
    (300, "ar", "صالح لمدة 5 دقائق"), (900, "ar", "صالح لمدة 15 دقيقة"), (7200, "ar", "صالح لمدة ساعتين")])
def test_validity_is_a_duration(seconds, language, expected):
    assert validity_text(seconds, language) == expected


@pytest.mark.parametrize("language", SUPPORTED)
def test_the_link_message_in_each_language(language):
    url = "https://pay.example.com/checkout/ps_abc?t=xyz"
    text = link_message(url, "$25.00", 900, "sms", language)
    assert url in text and "$25.00" in text and "15" in text and "UTC" not in text and len(text) <= 765
    assert (text.startswith("Here is your") if language == "en" else "Here is" not in text)


# ---- the catalogs ----

PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]")


def _catalog(name):
    with open(po_path(name), "rb") as f:
        return read_po(f, locale=name)


@pytest.mark.parametrize("name", catalog_languages())
def test_every_message_is_translated(name):
    catalog = _catalog(name)
    problems = []
    for message in catalog:
        if not message.id:
            continue
        forms = message.string if isinstance(message.string, tuple) else (message.string,)
        if message.fuzzy:
            problems.append(f"fuzzy: {message.id!r}")
        if not forms or not all(f and f.strip() for f in forms):
            problems.append(f"untranslated: {message.id!r}")
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        wanted = {p for i in ids for p in PLACEHOLDER.findall(i)}
        for form in forms:
            found = set(PLACEHOLDER.findall(form))
            # a plural form may spell its number out ("dos veces" / Arabic's dual), a singular keeps them all
            if not found <= wanted or (not isinstance(message.id, tuple) and found != wanted):
                problems.append(f"placeholders {sorted(found)} != {sorted(wanted)}: {message.id!r}")
        if isinstance(message.id, tuple) and len(forms) != catalog.num_plurals:
            problems.append(f"{len(forms)} plural forms, not {catalog.num_plurals}: {message.id!r}")
    assert not problems, "\n".join(problems)


def test_the_code_has_no_message_missing_from_the_catalogs():
    wanted = {m.id for m in extract_template() if m.id}
    assert len(wanted) > 80  # the extraction found the page, the errors, the declines and the SMS
    for name in catalog_languages():
        have = {m.id for m in _catalog(name) if m.id}
        assert not wanted - have, f"{name}: run `paygate i18n extract` and translate {sorted(wanted - have)}"
        assert not have - wanted, f"{name}: no longer in the code: {sorted(have - wanted)}"


def test_the_compiled_catalogs_match_the_po_files():
    assert compile_catalogs(check=True) == [], "run `paygate i18n compile`"
