"""``GET /v1/openapi.json``: the OpenAPI 3.1 document, public (no bearer token)."""

from __future__ import annotations

from flask import jsonify
from spectree import Tag

from .. import services
from ..openapi import openapi_document
from . import get


@get("/openapi.json", operation_id="getOpenApi", public=True,
     tags=[Tag(name="documentation", description="This document.")],
     ok={200: (None, "This document (OpenAPI 3.1).")})
def openapi():
    """The OpenAPI document of this API.

    Generated from the same declarations that validate the requests."""
    return jsonify(openapi_document(services().settings.public_base_url))
