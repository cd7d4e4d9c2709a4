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
import math
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import redis as redis_lib
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select
from sqlalchemy.orm import Session as DbSession

from integrations.genesys.settings import GenesysSettings, SecretBox, settings_of
from kernel.clock import IdFactory
from kernel.errors import NotFound, Unauthorized, ValidationFailed

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
                  new_id: IdFactory, display_name: str | None = None, support_phone: str | None = None,
                  accent_color: str | None = None) -> CreatedClient:
    """Creates an API client (not committed). Returns its id, client secret and event signing secret.

    ``display_name``, ``support_phone`` and ``accent_color``: the merchant as customers see it, checked by
    :func:`merchant_identity_fields` first (raises :class:`~kernel.errors.ValidationFailed` before anything is
    added); None or empty leaves one unset."""
    identity = merchant_identity_fields(display_name=display_name or None, support_phone=support_phone or None,
                                        accent_color=accent_color or None)
    client_secret = "pgcs_" + secrets.token_urlsafe(32)
    signing_secret = "whsec_" + secrets.token_urlsafe(32)
    client = ApiClient(id=new_id("cli"), name=name, secret_hash=hash_secret(client_secret),
                       signing_secrets=[signing_secret], callback_url=callback_url, genesys=None, active=True,
                       created_at=now.replace(tzinfo=None), **identity)
    db.add(client)
    return CreatedClient(client.id, client_secret, signing_secret)


# -- merchant identity (docs/api.md, "Merchant identity") -----------------------------------------------------

DISPLAY_NAME_MAX_CHARS = 100
MIN_ACCENT_CONTRAST = 4.5
"""WCAG 2.1 success criterion 1.4.3 "Contrast (Minimum)", level AA, for normal text
(https://www.w3.org/TR/WCAG21/#contrast-minimum): the pay button's white label on the accent colour."""
_ACCENT_RE = re.compile(r"^#[0-9A-Fa-f]{6}$")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_UNSET = object()


def relative_luminance(color: str) -> float:
    """The relative luminance (0 black .. 1 white) of ``#rrggbb``, as WCAG 2.1 defines it
    (https://www.w3.org/TR/WCAG21/#dfn-relative-luminance; sRGB, threshold 0.04045 as in the sRGB standard)."""
    def channel(hex2: str) -> float:
        c = int(hex2, 16) / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(color[i:i + 2]) for i in (1, 3, 5))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(first: str, second: str) -> float:
    """The WCAG 2.1 contrast ratio of two ``#rrggbb`` colours, 1 to 21 (https://www.w3.org/TR/WCAG21/#dfn-contrast-ratio)."""
    lighter, darker = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (lighter + 0.05) / (darker + 0.05)


def _identity_error(field_name: str, code: str, message: str) -> ValidationFailed:
    return ValidationFailed(message, code=code, details={"fields": {field_name: code}})


def clean_display_name(value: str) -> str:
    """The name a customer sees: surrounding and repeated whitespace removed, 1 to 100 characters, no control or
    bidirectional-override characters. Raises :class:`ValidationFailed` ``invalid_display_name``."""
    text = " ".join(str(value).split())
    if not text or len(text) > DISPLAY_NAME_MAX_CHARS or _CONTROL_RE.search(text):
        raise _identity_error("display_name", "invalid_display_name",
                              f"The display name must be 1 to {DISPLAY_NAME_MAX_CHARS} printable characters.")
    return text


def clean_support_phone(value: str) -> str:
    """A support phone number in E.164 (``+`` and the country code; spaces, dots, dashes and brackets allowed on
    input), as Google's libphonenumber metadata finds it valid (``phonenumbers``,
    https://github.com/daviddrysdale/python-phonenumbers). Raises :class:`ValidationFailed` ``invalid_support_phone``."""
    import phonenumbers

    text = str(value).strip()
    problem = "The support phone must be an international number starting with + and the country code, " \
              "for example +1 415 555 0132."
    if not text.startswith("+") or len(text) > 32:
        raise _identity_error("support_phone", "invalid_support_phone", problem)
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise _identity_error("support_phone", "invalid_support_phone", problem) from None
    if not phonenumbers.is_valid_number(number):
        raise _identity_error("support_phone", "invalid_support_phone",
                              f"{text!r} is not a valid phone number for its country.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def clean_accent_color(value: str) -> str:
    """The accent colour as ``#rrggbb`` (lower case). Refused with :class:`ValidationFailed` ``invalid_accent_color``
    when it is not ``#RRGGBB``, and ``accent_color_low_contrast`` when white text on it has a contrast ratio below
    4.5:1 (:data:`MIN_ACCENT_CONTRAST`; the message gives the ratio computed)."""
    text = str(value).strip()
    if not _ACCENT_RE.match(text):
        raise _identity_error("accent_color", "invalid_accent_color",
                              "The accent colour must be #RRGGBB, six hexadecimal digits, for example #0b5cd5.")
    text = text.lower()
    ratio = math.floor(contrast_ratio("#ffffff", text) * 100) / 100  # rounded down: 4.499 is not "4.50"
    if ratio < MIN_ACCENT_CONTRAST:
        raise ValidationFailed(
            f"White text on {text} has a contrast ratio of {ratio:.2f}:1; at least {MIN_ACCENT_CONTRAST}:1 is "
            "needed (WCAG 2.1, https://www.w3.org/TR/WCAG21/#contrast-minimum). Choose a darker colour.",
            code="accent_color_low_contrast",
            details={"fields": {"accent_color": "accent_color_low_contrast"}, "contrast_ratio": ratio})
    return text


def merchant_identity_fields(*, display_name=_UNSET, support_phone=_UNSET, accent_color=_UNSET) -> dict:
    """The ``api_clients`` columns for the given identity fields, each checked (:func:`clean_display_name`,
    :func:`clean_support_phone`, :func:`clean_accent_color`); None clears a field, an omitted one is left out."""
    out: dict = {}
    for key, value, clean in (("display_name", display_name, clean_display_name),
                              ("support_phone", support_phone, clean_support_phone),
                              ("accent_color", accent_color, clean_accent_color)):
        if value is not _UNSET:
            out[key] = None if value is None else clean(value)
    return out


def update_merchant_identity(db: DbSession, client_id: str, **fields) -> ApiClient:
    """Sets (a value) or clears (None) ``display_name``, ``support_phone`` and ``accent_color`` of an API client
    (not committed; fields not given stay). Raises :class:`NotFound` ``client_not_found`` or
    :class:`ValidationFailed` (nothing changed)."""
    values = merchant_identity_fields(**fields)
    client = db.get(ApiClient, client_id) if "\x00" not in client_id else None
    if client is None:
        raise NotFound("No such API client.", code="client_not_found")
    for key, value in values.items():
        setattr(client, key, value)
    db.flush()
    return client


@dataclass(frozen=True)
class MerchantIdentity:
    """Whom the customer pays, as the page, the SMS and the agent view show it: ``name`` (the client's display
    name, else its name), ``support_phone`` (E.164 or None), ``accent_color`` (``#rrggbb`` or None)."""

    name: str
    support_phone: str | None = None
    accent_color: str | None = None

    @property
    def support_phone_display(self) -> str | None:
        """The support phone in international format (``+1 415-555-0132``), for reading; None when unset."""
        if not self.support_phone:
            return None
        import phonenumbers

        try:
            number = phonenumbers.parse(self.support_phone, None)
        except phonenumbers.NumberParseException:
            return self.support_phone
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def identity_of(client: ApiClient) -> MerchantIdentity:
    """The :class:`MerchantIdentity` of a client row: its display name, else its name."""
    return MerchantIdentity(client.display_name or client.name, client.support_phone, client.accent_color)


class MerchantDirectory:
    """``client_id -> MerchantIdentity | None`` for the page and the agent view, kept per process for
    ``ttl_seconds`` (30) so a page view adds no query in the common case; a change made with
    ``paygate clients update`` shows within that time. ``Session``: sessionmaker; ``monotonic``: the cache's
    timer in seconds (``time.monotonic`` unless a test gives its own)."""

    _QUERY = select(ApiClient.name, ApiClient.display_name, ApiClient.support_phone, ApiClient.accent_color)

    def __init__(self, Session, *, ttl_seconds: float = 30.0, monotonic: Callable[[], float] = time.monotonic):
        self.Session = Session
        self.ttl_seconds = ttl_seconds
        self.monotonic = monotonic
        self._cache: dict[str, tuple[float, MerchantIdentity | None]] = {}

    def get(self, client_id: str) -> MerchantIdentity | None:
        """The identity of ``client_id`` (None for an unknown client)."""
        now = self.monotonic()
        hit = self._cache.get(client_id)
        if hit is not None and hit[0] > now:
            return hit[1]
        with self.Session() as db:
            row = db.execute(self._QUERY.where(ApiClient.id == client_id)).first()
        identity = MerchantIdentity(row.display_name or row.name, row.support_phone, row.accent_color) if row else None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[client_id] = (now + self.ttl_seconds, identity)
        return identity

    def forget(self, client_id: str) -> None:
        """Drops the cached identity of ``client_id`` (this process only)."""
        self._cache.pop(client_id, None)


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
    so its client's retries do not slow every request). ``Session``: sessionmaker; ``redis``: client (bytes);
    ``monotonic``: the timer of that pause in seconds (``time.monotonic`` unless a test gives its own)."""

    KEY = "paygate:client-state:{}"
    DISABLED = "-"

    def __init__(self, Session, redis: redis_lib.Redis, *, ttl_seconds: int = 30, skip_seconds: float = 5.0,
                 monotonic: Callable[[], float] = time.monotonic):
        self.Session = Session
        self.redis = redis
        self.ttl_seconds = ttl_seconds
        self.skip_seconds = skip_seconds
        self.monotonic = monotonic
        self._skip_until = 0.0

    def _load(self, client_id: str) -> str | None:
        with self.Session() as db:
            row = db.execute(select(ApiClient.active, ApiClient.secret_hash)
                             .where(ApiClient.id == client_id)).first()
        return token_generation(row.secret_hash) if row is not None and row.active else None

    def current(self, client_id: str) -> str | None:
        """The active client's token generation, or None (disabled or unknown client)."""
        key = self.KEY.format(client_id)
        if self.monotonic() < self._skip_until:
            return self._load(client_id)
        try:
            cached = self.redis.get(key)
        except redis_lib.RedisError:
            self._skip_until = self.monotonic() + self.skip_seconds
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
