"""The gettext catalogs of :mod:`kernel.i18n` (docs/api.md, "Languages"): extracting the messages from the code and
templates, and compiling each ``messages.po`` into the ``messages.mo`` the app reads.

``paygate i18n extract`` writes ``kernel/translations/messages.pot`` (and merges new messages into each ``.po``);
``paygate i18n compile`` writes the ``.mo`` files (the install step, ``scripts/lib.sh``, runs it) and
``--check`` only reports the stale ones. Babel's tooling: https://babel.pocoo.org/en/latest/messages.html.
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

from kernel.i18n import DEFAULT, DOMAIN, SUPPORTED, TRANSLATIONS_DIR, catalog_name

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("app", "kernel", "tokenizer", "payments", "integrations")
"""The packages whose customer-facing messages are translated (the CLI, logs and API errors stay English)."""
METHOD_MAP = [("**/templates/**.html", "jinja2"), ("**.py", "python")]
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "lazy_gettext": None}
"""``N_`` marks a message in domain code (:func:`kernel.i18n.N_`); the others are Flask-Babel's and gettext's."""


def catalog_languages() -> list[str]:
    """The catalog directories shipped: every :data:`kernel.i18n.SUPPORTED` language but English (the source)."""
    return [catalog_name(tag) for tag in SUPPORTED if tag != DEFAULT]


def po_path(catalog: str) -> Path:
    return TRANSLATIONS_DIR / catalog / "LC_MESSAGES" / f"{DOMAIN}.po"


def extract_template() -> Catalog:
    """The message template (a Babel :class:`Catalog`, no translations) of the code and templates in :data:`SOURCES`."""
    template = Catalog(project="paygate", charset="utf-8")
    for package in SOURCES:
        for filename, lineno, message, comments, context in extract_from_dir(
                str(ROOT / package), METHOD_MAP, keywords=KEYWORDS, comment_tags=("Translators:",)):
            template.add(message, None, [(f"{package}/{filename}", lineno)], auto_comments=comments, context=context)
    return template


def write_template(path: Path | None = None) -> Path:
    """Writes :func:`extract_template` as ``messages.pot`` (sorted, no line numbers); returns its path."""
    path = path or TRANSLATIONS_DIR / f"{DOMAIN}.pot"
    with open(path, "wb") as out:
        write_po(out, extract_template(), width=120, no_location=True, sort_output=True, omit_header=True)
    return path


def update_catalogs() -> dict[str, int]:
    """Merges the extracted template into each shipped ``.po`` (new messages arrive empty, gone ones become
    obsolete); returns catalog → number of messages still without a translation."""
    template = extract_template()
    untranslated: dict[str, int] = {}
    for catalog in catalog_languages():
        with open(po_path(catalog), "rb") as f:
            po = read_po(f, locale=catalog)
        po.update(template, no_fuzzy_matching=True)
        with open(po_path(catalog), "wb") as f:
            write_po(f, po, width=120, no_location=True, sort_output=True, ignore_obsolete=True)
        untranslated[catalog] = sum(1 for m in po if m.id and not (m.string and all(m.string)
                                                                    if isinstance(m.string, tuple) else m.string))
    return untranslated


def compiled(catalog: str) -> bytes:
    """The ``.mo`` bytes of a shipped catalog's ``.po`` (fuzzy entries left out, as gettext's msgfmt does)."""
    with open(po_path(catalog), "rb") as f:
        po = read_po(f, locale=catalog)
    out = io.BytesIO()
    write_mo(out, po, use_fuzzy=False)
    return out.getvalue()


def compile_catalogs(*, check: bool = False) -> list[str]:
    """Writes each catalog's ``messages.mo`` when it differs from its ``.po`` compiled (only reports with
    ``check``); returns the catalogs that were (or, with ``check``, would be) written."""
    stale = []
    for catalog in catalog_languages():
        data = compiled(catalog)
        mo = po_path(catalog).with_suffix(".mo")
        if not mo.exists() or mo.read_bytes() != data:
            stale.append(catalog)
            if not check:
                mo.write_bytes(data)
    return stale
