"""``POST /oauth/token``: the OAuth 2.0 client credentials grant (RFC 6749 §4.4,
https://www.rfc-editor.org/rfc/rfc6749#section-4.4), what a Genesys "User Defined (OAuth)" credential calls.

Its errors keep RFC 6749 §5.2's shape, ``{"error": "invalid_client"}``, not the ``/v1`` error envelope.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

from flask import Response, jsonify, request
from pydantic import ConfigDict, Field
from spectree import Tag

from payments.clients import authenticate_client

from .. import services
from ..schemas import Params, View
from . import oauth_bp, post
from .spec import RequestInvalid


class TokenRequest(Params):
    """The form body (``application/x-www-form-urlencoded``). The client authenticates with HTTP Basic
    ``client_id:client_secret`` (RFC 6749 §2.3.1), or with both form fields."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"grant_type": "client_credentials"}]})

    grant_type: Literal["client_credentials"]
    client_id: str | None = Field(None, description="Only without HTTP Basic authentication.")
    client_secret: str | None = Field(None, description="Only without HTTP Basic authentication.")


class TokenResponse(View):
    """An access token for ``Authorization: Bearer``."""

    access_token: str
    token_type: Literal["Bearer"]
    expires_in: int = Field(description="Seconds the token stays valid.")


class OAuthError(View):
    """RFC 6749 §5.2 error."""

    error: Literal["invalid_client", "invalid_request", "unsupported_grant_type", "rate_limited"]


def _credentials() -> tuple[str | None, str | None]:
    """HTTP Basic credentials, else the form's ``client_id`` / ``client_secret``."""
    client_id, client_secret = _basic_credentials()
    if client_id is None:
        client_id, client_secret = request.form.get("client_id"), request.form.get("client_secret")
    return client_id, client_secret


def requested_client_id() -> str | None:
    """The client id a token request names (HTTP Basic, else the form), unverified: what the rate limits of
    docs/api.md, "Rate limits" count failed attempts by."""
    return _credentials()[0] or None


def _basic_credentials() -> tuple[str | None, str | None]:
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("basic "):
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else (None, None)


def _oauth_error(code: str, status: int) -> Response:
    response = jsonify({"error": code})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="paygate"'
    return response


def _invalid(err: RequestInvalid) -> Response:
    """A form that does not fit :class:`TokenRequest`, in RFC 6749's words (client authentication first)."""
    client_id, client_secret = _credentials()
    if not client_id or not client_secret:
        return _oauth_error("invalid_client", 401)
    if err.fields.get("grant_type") == "invalid_choice":
        return _oauth_error("unsupported_grant_type", 400)
    return _oauth_error("invalid_request", 400)


@post("/oauth/token", blueprint=oauth_bp, operation_id="createAccessToken", public=True,
      tags=[Tag(name="oauth", description="Access tokens (RFC 6749 client credentials).")],
      idempotent_post=False, security={"basic": []}, on_invalid=_invalid,
      ok={200: (TokenResponse, "An access token valid for expires_in seconds.")},
      errors={400: (OAuthError, "invalid_request (no grant_type), unsupported_grant_type."),
              401: (OAuthError, "invalid_client: unknown client, wrong secret or no credentials."),
              429: (OAuthError, "rate_limited: too many token requests, or too many failed ones for this client "
                                "id or from this address; wait Retry-After seconds.")})
def token(form: TokenRequest):
    """Get an access token (client credentials grant).

    RFC 6749 §4.4: HTTP Basic client_id:client_secret and grant_type=client_credentials; the token is valid for
    an hour. Errors follow RFC 6749 §5.2."""
    client_id, client_secret = _credentials()
    if not client_id or not client_secret:
        return _oauth_error("invalid_client", 401)
    svc = services()
    with svc.Session() as db:
        client = authenticate_client(db, client_id, client_secret)
    if client is None:
        return _oauth_error("invalid_client", 401)
    response = jsonify(svc.tokens.issue(client.id))
    response.headers["Pragma"] = "no-cache"
    return response
