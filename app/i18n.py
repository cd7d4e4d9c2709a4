"""The page's language (docs/api.md, "Languages"), through Flask-Babel over the catalogs of :mod:`kernel.i18n`.

A view that knows the session calls :func:`use_language` with the session's ``locale`` (its best shipped match);
otherwise the browser's ``Accept-Language`` decides (:func:`kernel.i18n.from_accept_language`). Templates get
``page_language`` (the BCP 47 tag actually served, for ``<html lang>``) and ``page_dir`` (``ltr`` | ``rtl``).
"""

from __future__ import annotations

from flask import Flask, g, has_request_context, request
from flask_babel import Babel, refresh

from kernel.i18n import (
    DEFAULT,
    TRANSLATIONS_DIR,
    best_match,
    catalog_name,
    from_accept_language,
    isolate,
    text_direction,
)


def page_language() -> str:
    """The shipped language (BCP 47 tag) of the current request: set by :func:`use_language`, else the
    browser's ``Accept-Language``; ``en`` outside a request."""
    if not has_request_context():
        return DEFAULT
    language = g.get("page_language")
    if language is None:
        language = g.page_language = from_accept_language(request.headers.get("Accept-Language"))
    return language


def ltr(text: str | None) -> str | None:
    """An amount or other left-to-right text kept in one piece on a right-to-left page (:func:`kernel.i18n.isolate`)."""
    return isolate(text, page_language()) if text else text


def use_language(locale: str | None) -> str:
    """Serves the rest of the request in the best shipped match of ``locale`` (a session's BCP 47 tag), or in
    the browser's language when ``locale`` is empty; returns the tag served."""
    g.page_language = best_match(locale) if locale else from_accept_language(request.headers.get("Accept-Language"))
    refresh()  # Flask-Babel caches the locale per request once a message was translated
    return g.page_language


def init_i18n(app: Flask) -> None:
    """Installs Flask-Babel (``_``/``gettext``/``ngettext`` in templates) reading ``kernel/translations``."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS_DIR)
    Babel(app, locale_selector=lambda: catalog_name(page_language()))

    @app.context_processor
    def _language():
        language = page_language()
        return {"page_language": language, "page_dir": text_direction(language)}
