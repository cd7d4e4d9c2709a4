"""API clients: creation, client-credentials authentication and bearer access tokens.

docs/api.md, "Conventions": ``POST /oauth/token`` with HTTP Basic ``client_id:client_secret`` and
``grant_type=client_credentials`` returns a bearer token valid for 3600 s. Only a
salted scrypt hash of the client secret is stored. Access tokens are stateless:
``pgat_`` + an HMAC-signed, time-stamped payload (itsdangerous) under the app's
secret key. Each check also asks :class:`ClientStates` whether the client is still active and its secret
unchanged (docs/api.md, "Clients and secrets": a disabled client's tokens, and tokens issued before
``rotate-secret``, answer 401 at once) — one Redis GET, the database only when the short cache misses.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime

import redis as redis_lib
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


def rotate_client_secret(db: DbSession, client: ApiClient) -> str:
    """Replaces ``client``'s secret with a new one (not committed) and returns it, to be shown once: the old
    secret no longer gets tokens, and the tokens issued under it stop working (their :func:`token_generation`
    no longer matches; :class:`TokenIssuer`)."""
    new = "pgcs_" + secrets.token_urlsafe(32)
    client.secret_hash = hash_secret(new)
    return new


def token_generation(secret_hash: str) -> str:
    """16 hex digits derived from a client's stored secret hash (SHA-256): access tokens carry it, so a token
    issued before the secret was rotated no longer matches."""
    return hashlib.sha256(b"paygate.token-generation|" + secret_hash.encode()).hexdigest()[:16]


class ClientStates:
    """Whether an API client may use its access tokens, cached in Redis for ``ttl_seconds``.

    :meth:`current` answers the client's :func:`token_generation` while it is active, None when it is disabled
    or gone. Readers fill the cache only where it is empty (``SET NX``) and :meth:`refresh` overwrites it after a
    change is committed, so a reader that loaded the row before the change cannot put the old state back. While
    Redis is down every check reads the database (after a Redis error, for ``skip_seconds`` without asking Redis,
    so its client's retries do not slow every request). ``Session``: sessionmaker; ``redis``: client (bytes)."""

    KEY = "paygate:client-state:{}"
    DISABLED = "-"

    def __init__(self, Session, redis: redis_lib.Redis, *, ttl_seconds: int = 30, skip_seconds: float = 5.0):
        self.Session = Session
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.skip_seconds = skip_seconds
        self._skip_until = 0.0

    def _load(self, client_id: str) -> str | None:
        with self.Session() as db:
            row = db.execute(select(ApiClient.active, ApiClient.secret_hash)
                             .where(ApiClient.id == client_id)).first()
        return token_generation(row.secret_hash) if row is not None and row.active else None

    def current(self, client_id: str) -> str | None:
        """The active client's token generation, or None (disabled or unknown client)."""
        key = self.KEY.format(client_id)
        if time.monotonic() < self._skip_until:
            return self._load(client_id)
        try:
            cached = self.redis.get(key)
        except redis_lib.RedisError:
            self._skip_until = time.monotonic() + self.skip_seconds
            return self._load(client_id)
        if cached is not None:
            value = cached.decode() if isinstance(cached, bytes) else cached
            return None if value == self.DISABLED else value
        state = self._load(client_id)
        try:
            self.redis.set(key, state or self.DISABLED, ex=self.ttl_seconds, nx=True)
        except redis_lib.RedisError:
            pass
        return state

    def refresh(self, client_id: str) -> bool:
        """Writes the client's committed state to the cache (after disable, enable or rotate-secret). Returns
        False when Redis could not be reached (the old state may then last up to ``ttl_seconds``)."""
        state = self._load(client_id)
        try:
            self.redis.set(self.KEY.format(client_id), state or self.DISABLED, ex=self.ttl_seconds)
        except redis_lib.RedisError:
            return False
        return True


class TokenIssuer:
    """Issues and checks bearer access tokens for API clients (``secret_key``: the app's SECRET_KEY).

    With ``clients`` (:class:`ClientStates`), tokens carry the client's :func:`token_generation` and a token
    whose client is disabled or gone, or whose generation is not the current one, is refused.

    ``previous_keys`` (``PAYGATE_PREVIOUS_SECRET_KEYS``, newest first): retired secret keys whose tokens are still
    accepted during a rotation (docs/operations.md, "Rotating the secret key"); tokens are issued under
    ``secret_key`` (itsdangerous key rotation: https://itsdangerous.palletsprojects.com/en/stable/concepts/#key-rotation)."""

    def __init__(self, secret_key: str, *, ttl_seconds: int = ACCESS_TOKEN_TTL_SECONDS,
                 clients: ClientStates | None = None, previous_keys: tuple[str, ...] | list[str] = ()):
        # itsdangerous signs with the last key of the list and verifies with any of them
        self._serializer = URLSafeTimedSerializer([*reversed(previous_keys), secret_key], salt="paygate.access-token")
        self.ttl_seconds = ttl_seconds
        self.clients = clients

    def issue(self, client_id: str) -> dict:
        """``{"access_token", "token_type": "Bearer", "expires_in"}`` for ``client_id``."""
        payload = {"c": client_id, "n": secrets.token_hex(4)}
        generation = self.clients.current(client_id) if self.clients is not None else None
        if generation:
            payload["g"] = generation
        token = _TOKEN_PREFIX + self._serializer.dumps(payload)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.ttl_seconds}

    def client_id_for(self, token: str | None) -> str:
        """The client id a token was issued to. Raises :class:`Unauthorized` (``invalid_token`` /
        ``token_expired``) for a missing, forged or expired token, and ``invalid_token`` for a token of a client
        that was disabled or deleted or whose secret was rotated since."""
        if not token or not token.startswith(_TOKEN_PREFIX):
            raise Unauthorized("A valid bearer token is required.", code="invalid_token")
        try:
            data = self._serializer.loads(token[len(_TOKEN_PREFIX):], max_age=self.ttl_seconds)
        except SignatureExpired:
            raise Unauthorized("The access token has expired.", code="token_expired") from None
        except BadSignature:
            raise Unauthorized("A valid bearer token is required.", code="invalid_token") from None
        if self.clients is not None:
            generation = self.clients.current(data["c"])
            if generation is None or data.get("g", generation) != generation:
                raise Unauthorized("The token's API client is disabled or its secret was rotated.",
                                   code="invalid_token")
        return data["c"]


def authenticate_client(db: DbSession, client_id: str, client_secret: str) -> ApiClient | None:
    """The active client whose secret matches, or None (RFC 6749 §5.2 ``invalid_client``). An id holding U+0000
    names no client (PostgreSQL text cannot even hold it): None without a query."""
    client = db.get(ApiClient, client_id) if "\x00" not in client_id else None
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
