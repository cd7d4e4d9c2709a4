"""The OpenAPI 3.1 document served at ``GET /v1/openapi.json``, generated from the endpoint declarations.

spectree (:data:`app.api.spec.spec`) writes the paths, parameters, request bodies, responses and the
component schemas from the pydantic models each endpoint declares with :func:`app.api.route`; this module
adds what spectree has no declaration for (the ``servers`` entry, response headers, the form media type of
``/oauth/token``) and caches the result. ``tests/functional/test_openapi.py`` checks the document against
the running app: every route documented and served, every example valid, real answers valid.

``SCHEMAS`` (``components.schemas``) is computed on first use.
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from flask import Flask

RESPONSE_HEADERS = {
    "401": {"WWW-Authenticate": {"description": "Bearer (Basic on /oauth/token), RFC 9110 §11.6.1.",
                                 "schema": {"type": "string"}}},
    "429": {"Retry-After": {"description": "Seconds to wait before trying again (RFC 9110 §10.2.3).",
                            "schema": {"type": "integer", "minimum": 1}}},
    "503": {"Retry-After": {"description": "Seconds to wait before trying again (RFC 9110 §10.2.3).",
                            "schema": {"type": "integer", "minimum": 1}}},
}
FORM = "application/x-www-form-urlencoded"


def openapi_document(base_url: str) -> dict[str, Any]:
    """The document, with ``servers`` pointing at ``base_url`` (a fresh copy: callers may change it)."""
    doc = copy.deepcopy(_generated())
    doc["servers"] = [{"url": base_url}]
    return doc


@lru_cache(maxsize=1)
def _generated() -> dict[str, Any]:
    """spectree's document for the API's blueprints (on an app of their own: routes are all that is read),
    finished by :func:`_finish`. Computed once: the routes are fixed when :mod:`app.api` is imported."""
    from . import api

    app = Flask("paygate.openapi")
    for blueprint in api.BLUEPRINTS:
        app.register_blueprint(blueprint)
    with app.app_context():
        doc = copy.deepcopy(api.spec.spec)
    return _finish(doc)


def _finish(doc: dict[str, Any]) -> dict[str, Any]:
    doc["openapi"] = "3.1.0"
    doc["jsonSchemaDialect"] = "https://json-schema.org/draft/2020-12/schema"
    for operations in doc["paths"].values():
        for operation in operations.values():
            if not operation.get("description"):
                operation.pop("description", None)
            for status, response in operation["responses"].items():
                if status in RESPONSE_HEADERS:
                    response["headers"] = copy.deepcopy(RESPONSE_HEADERS[status])
            content = operation.get("requestBody", {}).get("content", {})
            if "multipart/form-data" in content:  # spectree's default; the API reads urlencoded forms
                content[FORM] = content.pop("multipart/form-data")
            for parameter in operation.get("parameters", []):
                if parameter["schema"].get("description") == parameter.get("description"):
                    del parameter["schema"]["description"]
                if not parameter.get("description"):
                    parameter.pop("description", None)
    doc["tags"] = sorted(doc.get("tags", []), key=lambda tag: tag["name"])
    return doc


def __getattr__(name: str):
    if name == "SCHEMAS":
        return _generated()["components"]["schemas"]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
