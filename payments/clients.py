"""API clients: creation, client-credentials authentication and bearer access tokens.

docs/api.md, "Conventions": ``POST /oauth/token`` with HTTP Basic ``client_id:client_secret`` and
``grant_type=client_credentials`` returns a bearer token valid for 3600 s. Only a
salted scrypt hash of the client secret is stored. Access tokens are stateless:
``pgat_`` + an HMAC-signed, time-stamped payload (itsdangerous) under the app's
secret key, so checking one costs no database or Redis round trip.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from integrations.genesys.settings import GenesysSettings, SecretBox, settings_of
from kernel.clock import IdFactory
from kernel.errors import NotFound, Unauthorized

from .models import ApiClient

ACCESS_TOKEN_TTL_SECONDS = 3600
_TOKEN_PREFIX = "pgat_"


@dataclass(frozen=True)
class CreatedClient:
    """What ``paygate clients create`` prints once; the secrets are never shown again."""

    client_id: str
    client_secret: str = field(repr=False)
    signing_secret: str = field(repr=False)

    def as_dict(self) -> dict[str, str]:
        return {"client_id": self.client_id, "client_secret": self.client_secret,
                "signing_secret": self.signing_secret}


def hash_secret(secret: str, *, salt: bytes | None = None) -> str:
    """``scrypt$<salt hex>$<hash hex>`` of a client secret (scrypt n=2**14, r=8, p=1)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=2**14, r=8, p=1, dklen=32)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_secret(secret: str, stored: str) -> bool:
    """Constant-time check of ``secret`` against a :func:`hash_secret` value."""
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    candidate = hash_secret(secret, salt=bytes.fromhex(salt_hex)).split("$")[2]
    return hmac.compare_digest(candidate, digest_hex)


def create_client(db: DbSession, *, name: str, callback_url: str | None, now: datetime,
                  new_id: IdFactory) -> CreatedClient:
    """Creates an API client (not committed). Returns its id, client secret and event signing secret."""
    client_secret = "pgcs_" + secrets.token_urlsafe(32)
    signing_secret = "whsec_" + secrets.token_urlsafe(32)
    client = ApiClient(id=new_id("cli"), name=name, secret_hash=hash_secret(client_secret),
                       signing_secrets=[signing_secret], callback_url=callback_url, genesys=None, active=True,
                       created_at=now.replace(tzinfo=None))
    db.add(client)
    return CreatedClient(client.id, client_secret, signing_secret)


def rotate_signing_secret(db: DbSession, client: ApiClient, *, keep_previous: int = 1) -> str:
    """Adds a new signing secret (newest first) and keeps ``keep_previous`` older ones active, so
    receivers can switch over while events carry one ``v1=`` per active secret (docs/api.md, "Events")."""
    new = "whsec_" + secrets.token_urlsafe(32)
    client.signing_secrets = [new] + list(client.signing_secrets)[:keep_previous]
    return new


class TokenIssuer:
    """Issues and checks bearer access tokens for API clients (``secret_key``: the app's SECRET_KEY)."""

    def __init__(self, secret_key: str, *, ttl_seconds: int = ACCESS_TOKEN_TTL_SECONDS):
        self._serializer = URLSafeTimedSerializer(secret_key, salt="paygate.access-token")
        self.ttl_seconds = ttl_seconds

    def issue(self, client_id: str) -> dict:
        """``{"access_token", "token_type": "Bearer", "expires_in"}`` for ``client_id``."""
        token = _TOKEN_PREFIX + self._serializer.dumps({"c": client_id, "n": secrets.token_hex(4)})
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl_seconds}

    def client_id_for(self, token: str | None) -> str:
        """The client id a token was issued to. Raises :class:`Unauthorized` (``invalid_token`` /
        ``token_expired``) for a missing, forged or expired token."""
        if not token or not token.startswith(_TOKEN_PREFIX):
            raise Unauthorized("A valid bearer token is required.", code="invalid_token")
        try:
            data = self._serializer.loads(token[len(_TOKEN_PREFIX):], max_age=self.ttl_seconds)
        except SignatureExpired:
            raise Unauthorized("The access token has expired.", code="token_expired") from None
        except BadSignature:
            raise Unauthorized("A valid bearer token is required.", code="invalid_token") from None
        return data["c"]


def authenticate_client(db: DbSession, client_id: str, client_secret: str) -> ApiClient | None:
    """The active client whose secret matches, or None (RFC 6749 §5.2 ``invalid_client``)."""
    client = db.get(ApiClient, client_id)
    if client is None or not client.active:
        hash_secret(client_secret)  # same cost either way: do not reveal which ids exist
        return None
    return client if check_secret(client_secret, client.secret_hash) else None


def configure_genesys(db, client_id: str, settings: GenesysSettings | None, box: SecretBox, *,
              production: bool) -> GenesysSettings | None:
    """Stores (or, with ``settings`` None, removes) an API client's Genesys settings in ``db``
    (a SQLAlchemy session; the caller commits). Validates first (:meth:`GenesysSettings.validated`).

    Raises :class:`~kernel.errors.NotFound` (``client_not_found``) for an unknown client.
    Returns the stored settings as read back (sealed secret only).
    """
    client = db.get(ApiClient, client_id)
    if client is None:
        raise NotFound("No such API client.", code="client_not_found")
    if settings is None:
        client.genesys = None
        db.flush()
        return None
    stored = settings.validated(production=production).to_stored(box)
    client.genesys = stored
    db.flush()
    return GenesysSettings.from_stored(stored)


def signing_secrets_resolver(Session):
    """A :data:`callbacks.delivery.SecretsResolver` reading ``api_clients.signing_secrets`` through the
    sessionmaker ``Session``: ``resolve(client_ids) -> {client_id: (newest secret, ...)}``."""

    def resolve(client_ids) -> dict[str, tuple[str, ...]]:
        ids = list(client_ids)
        if not ids:
            return {}
        with Session() as db:
            rows = db.execute(select(ApiClient.id, ApiClient.signing_secrets).where(ApiClient.id.in_(ids))).all()
        return {cid: tuple(secrets_ or ()) for cid, secrets_ in rows}

    return resolve


def genesys_settings_loader(Session):
    """``client_id -> GenesysSettings | None`` read from ``api_clients.genesys`` at send time (for the
    Genesys senders and the link sender)."""

    def load(client_id: str) -> GenesysSettings | None:
        with Session() as db:
            return settings_of(db.get(ApiClient, client_id))

    return load
