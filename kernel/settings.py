"""Configuration, read from the environment once and validated at start-up.

Every variable has the ``PAYGATE_`` prefix (docs/api.md, "Configuration"). In development the
secrets that are not set are generated once into ``instance/secrets.json`` so a
fresh checkout runs with no set-up; with ``PAYGATE_ENV=production`` a missing
secret raises :class:`~kernel.errors.ConfigError` instead, so production can
never start on a silent default.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import re
import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

from .errors import ConfigError
from .money import is_currency

ALL_BRANDS = ("visa", "mastercard", "amex", "discover", "diners", "jcb", "unionpay")
ENVIRONMENTS = ("development", "test", "production")
SECRET_NAMES = ("SECRET_KEY", "VAULT_KEYS", "FINGERPRINT_KEY")


@dataclass(frozen=True)
class VaultKey:
    """One key-encryption key of the vault key ring: ``key_id`` and 32 raw bytes."""

    key_id: str
    key: bytes = field(repr=False)


@dataclass(frozen=True)
class Settings:
    """Validated configuration. Build it with :meth:`from_env`; tests may use :func:`dataclasses.replace`."""

    env: str
    instance_path: Path
    database_url: str
    redis_url: str
    gateway: str
    stripe_api_key: str | None = field(repr=False)
    stripe_api_base: str | None
    stripe_webhook_secret: str | None = field(repr=False)
    vault_keys: tuple[VaultKey, ...] = field(repr=False)
    fingerprint_key: bytes = field(repr=False)
    secret_key: str = field(repr=False)
    public_base_url: str
    frame_ancestors: tuple[str, ...]
    allowed_brands: tuple[str, ...]
    max_attempts: int
    session_ttl_seconds: int
    fraud_threshold: float
    fraud_ip_attempts_per_hour: int
    fraud_card_sessions_per_hour: int
    fraud_card_declines_per_day: int
    delivery_backoff_base: float
    delivery_backoff_cap: float
    delivery_max_age_seconds: int
    delivery_lease_seconds: int
    delivery_timeout_seconds: float
    reconcile_after_seconds: int
    log_level: str
    hold_expiring_notice_seconds: int = 86400
    sandbox_dispute_delay_seconds: int = 5
    sandbox_latency_ms: int = 0
    web_threads: int = 128
    """``PAYGATE_WEB_THREADS``: request threads per gunicorn worker (read by ``gunicorn.conf.py``); the pools
    below are sized from it."""
    db_pool_size: int = 16
    """``PAYGATE_DB_POOL_SIZE``: database connections each process keeps (default ``PAYGATE_WEB_THREADS``, at most
    16)."""
    db_max_overflow: int = 8
    """``PAYGATE_DB_MAX_OVERFLOW``: extra connections opened under a burst and closed after (default half of
    the pool size, at least 4)."""
    redis_max_connections: int = 40
    """``PAYGATE_REDIS_MAX_CONNECTIONS``: Redis connections per process; a thread waits up to 5 s for a free
    one (default 2 × ``PAYGATE_WEB_THREADS`` + 8)."""
    admission_slots: int = 1
    """``PAYGATE_ADMISSION_SLOTS``: requests per web process that may run their CPU parts at once (page renders,
    card submissions, every request but an API read; ``app/admission.py``); 0 turns admission control off."""
    admission_wait_seconds: float = 20.0
    """``PAYGATE_ADMISSION_WAIT_SECONDS``: how long a request waits for a slot before it is answered 503
    ``service_unavailable`` with ``Retry-After``."""
    allowed_currencies: tuple[str, ...] | None = None
    """``PAYGATE_ALLOWED_CURRENCIES``: ISO 4217 codes sessions and charges may use; None allows every code."""
    min_amounts: Mapping[str, int] = field(default_factory=dict)
    """``PAYGATE_MIN_AMOUNTS`` (``USD:500,EUR:500``): the least amount per currency, minor units."""
    subscription_retry_days: tuple[int, ...] = (1, 3, 5)
    """``PAYGATE_SUBSCRIPTION_RETRY_DAYS``: days after a renewal's due date to retry a failed charge."""
    stripe_moto: bool = False
    """``PAYGATE_STRIPE_MOTO``: confirm DTMF-entered Stripe payments as MOTO (Stripe enables it per account)."""
    fraud_ani_attempts_per_hour: int = 10
    """``PAYGATE_FRAUD_ANI_ATTEMPTS_PER_HOUR``: card attempts from one caller number per hour before it scores."""
    fraud_ani_cards_per_hour: int = 3
    """``PAYGATE_FRAUD_ANI_CARDS_PER_HOUR``: distinct cards keyed from one caller number per hour before it
    scores."""
    fraud_client_declined_cards: int = 15
    """``PAYGATE_FRAUD_CLIENT_DECLINED_CARDS``: distinct cards declined for one API client within
    ``fraud_client_window_seconds`` before card submissions through the API score (card testing)."""
    fraud_client_window_seconds: int = 600
    """``PAYGATE_FRAUD_CLIENT_WINDOW_SECONDS``: the window of ``fraud_client_declined_cards``."""
    rate_limits_enabled: bool = True
    """``PAYGATE_RATE_LIMITS_ENABLED``: the rate limits of docs/api.md, "Rate limits" (off: none enforced)."""
    rate_limit_redis_url: str | None = None
    """``PAYGATE_RATE_LIMIT_REDIS_URL``: where the limits count (default ``PAYGATE_REDIS_URL``)."""
    rate_limit_api: str = "3000 per minute; 100 per second"
    """``PAYGATE_RATE_LIMIT_API``: requests to ``/v1`` per API client (per IP without a valid token). Every
    ``PAYGATE_RATE_LIMIT_*`` value is one or more rates like ``10 per minute; 100 per hour`` (or ``10/minute``)."""
    rate_limit_token: str = "60 per minute"
    """``PAYGATE_RATE_LIMIT_TOKEN``: ``POST /oauth/token`` requests per client id (per IP without one)."""
    rate_limit_token_failures_client: str = "10 per minute"
    """``PAYGATE_RATE_LIMIT_TOKEN_FAILURES_CLIENT``: failed token requests (400/401) per client id."""
    rate_limit_token_failures_ip: str = "30 per minute"
    """``PAYGATE_RATE_LIMIT_TOKEN_FAILURES_IP``: failed token requests (400/401) per IP address."""
    rate_limit_checkout_session: str = "10 per minute"
    """``PAYGATE_RATE_LIMIT_CHECKOUT_SESSION``: card form submissions (``POST /checkout/{id}``) per session."""
    rate_limit_checkout_ip: str = "60 per minute"
    """``PAYGATE_RATE_LIMIT_CHECKOUT_IP``: card form submissions per IP address."""
    breaker_window: int = 3
    """``PAYGATE_BREAKER_WINDOW``: how many recent gateway calls the circuit breaker averages (docs/api.md,
    "Gateway circuit breaker")."""
    breaker_latency_seconds: float = 15.0
    """``PAYGATE_BREAKER_LATENCY_SECONDS``: the breaker opens when those calls average more than this."""
    breaker_errors: int = 5
    """``PAYGATE_BREAKER_ERRORS``: technical failures in a row (timeouts, connection errors, 5xx) that open it."""
    breaker_cooldown_seconds: int = 60
    """``PAYGATE_BREAKER_COOLDOWN_SECONDS``: business seconds an open breaker waits before one probe call."""

    previous_secret_keys: tuple[str, ...] = field(default=(), repr=False)
    """``PAYGATE_PREVIOUS_SECRET_KEYS``: secret keys retired by a rotation, still accepted when verifying links and
    access tokens and opening sealed Genesys secrets (docs/operations.md, "Rotating the secret key"); everything
    new is signed or sealed with ``secret_key``."""
    trusted_proxies: int = 0
    """``PAYGATE_TRUSTED_PROXIES``: how many proxies (load balancers) in front of the app set
    ``X-Forwarded-For``/``X-Forwarded-Proto``; the client address is taken that many hops from the right
    (werkzeug's ``ProxyFix``). 0 (default): the headers are ignored."""

    @property
    def production(self) -> bool:
        return self.env == "production"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, instance_path: Path | None = None) -> "Settings":
        """Reads ``PAYGATE_*`` variables from ``environ`` (default ``os.environ``).

        Raises :class:`ConfigError` naming the variable on any invalid value, and in
        production on any missing secret.
        """
        env_map = os.environ if environ is None else environ

        def get(name: str, default: str | None = None) -> str | None:
            value = env_map.get(f"PAYGATE_{name}")
            return default if value is None or value == "" else value

        env = get("ENV", "development")
        if env not in ENVIRONMENTS:
            raise ConfigError(f"PAYGATE_ENV must be one of {', '.join(ENVIRONMENTS)}")
        inst = Path(get("INSTANCE_PATH") or instance_path or Path.cwd() / "instance").resolve()

        generated: dict[str, str] = {}
        if env == "production":
            missing = [f"PAYGATE_{n}" for n in SECRET_NAMES + ("DATABASE_URL", "PUBLIC_BASE_URL") if not get(n)]
            if missing:
                raise ConfigError(f"production requires {', '.join(missing)}")
        elif any(not get(n) for n in SECRET_NAMES):
            generated = _development_secrets(inst)

        def secret(name: str) -> str:
            return get(name) or generated[name]

        gateway = get("GATEWAY", "sandbox")
        if gateway not in ("sandbox", "stripe"):
            raise ConfigError("PAYGATE_GATEWAY must be 'sandbox' or 'stripe'")
        stripe_key = get("STRIPE_API_KEY")
        if gateway == "stripe" and not stripe_key:
            raise ConfigError("PAYGATE_GATEWAY=stripe requires PAYGATE_STRIPE_API_KEY")
        if gateway == "stripe" and env == "production" and not get("STRIPE_WEBHOOK_SECRET"):
            raise ConfigError("PAYGATE_GATEWAY=stripe in production requires PAYGATE_STRIPE_WEBHOOK_SECRET "
                              "(disputes and late refund results arrive as signed webhooks)")

        brands = tuple(b.strip().lower() for b in (get("ALLOWED_BRANDS") or ",".join(ALL_BRANDS)).split(",") if b.strip())
        unknown = [b for b in brands if b not in ALL_BRANDS]
        if unknown or not brands:
            raise ConfigError(f"PAYGATE_ALLOWED_BRANDS has unknown brands {unknown}; known: {', '.join(ALL_BRANDS)}")

        public = (get("PUBLIC_BASE_URL") or "http://127.0.0.1:8000").rstrip("/")
        parsed = urlparse(public)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError("PAYGATE_PUBLIC_BASE_URL must be an absolute http(s) URL")
        if env == "production" and parsed.scheme != "https":
            raise ConfigError("PAYGATE_PUBLIC_BASE_URL must be https in production")
        previous_secret_keys = parse_previous_secret_keys(get("PREVIOUS_SECRET_KEYS"), secret("SECRET_KEY"))
        if env == "production":
            refuse_weak_secrets(secret("SECRET_KEY"), parse_vault_keys(secret("VAULT_KEYS")),
                                _decode_key("PAYGATE_FINGERPRINT_KEY", secret("FINGERPRINT_KEY")),
                                previous_secret_keys=previous_secret_keys)

        return cls(
            env=env,
            instance_path=inst,
            database_url=get("DATABASE_URL") or f"sqlite:///{inst / 'paygate.sqlite3'}",
            redis_url=get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            gateway=gateway,
            stripe_api_key=stripe_key,
            stripe_api_base=get("STRIPE_API_BASE"),
            stripe_webhook_secret=get("STRIPE_WEBHOOK_SECRET") or (
                None if env == "production" else _derived_webhook_secret(secret("SECRET_KEY"))),
            vault_keys=parse_vault_keys(secret("VAULT_KEYS")),
            fingerprint_key=_decode_key("PAYGATE_FINGERPRINT_KEY", secret("FINGERPRINT_KEY")),
            secret_key=secret("SECRET_KEY"),
            previous_secret_keys=previous_secret_keys,
            public_base_url=public,
            frame_ancestors=tuple((get("FRAME_ANCESTORS") or "'self'").split()),
            allowed_brands=brands,
            max_attempts=_int(get, "MAX_ATTEMPTS", 3, 1, 10),
            session_ttl_seconds=_int(get, "SESSION_TTL_SECONDS", 900, 60, 86400),
            fraud_threshold=_float(get, "FRAUD_THRESHOLD", 0.8, 0.0, 1.0),
            fraud_ip_attempts_per_hour=_int(get, "FRAUD_IP_ATTEMPTS_PER_HOUR", 30, 1, 10**9),
            fraud_card_sessions_per_hour=_int(get, "FRAUD_CARD_SESSIONS_PER_HOUR", 10, 1, 10**9),
            fraud_card_declines_per_day=_int(get, "FRAUD_CARD_DECLINES_PER_DAY", 5, 1, 10**9),
            delivery_backoff_base=_float(get, "DELIVERY_BACKOFF_BASE", 2.0, 0.001, 3600),
            delivery_backoff_cap=_float(get, "DELIVERY_BACKOFF_CAP", 3600.0, 0.001, 86400),
            delivery_max_age_seconds=_int(get, "DELIVERY_MAX_AGE_SECONDS", 86400, 1, 7 * 86400),
            delivery_lease_seconds=_int(get, "DELIVERY_LEASE_SECONDS", 30, 1, 3600),
            delivery_timeout_seconds=_float(get, "DELIVERY_TIMEOUT_SECONDS", 10.0, 0.1, 60),
            reconcile_after_seconds=_int(get, "RECONCILE_AFTER_SECONDS", 120, 1, 86400),
            log_level=(get("LOG_LEVEL", "INFO") or "INFO").upper(),
            hold_expiring_notice_seconds=_int(get, "HOLD_EXPIRING_NOTICE_SECONDS", 86400, 0, 30 * 86400),
            sandbox_dispute_delay_seconds=_int(get, "SANDBOX_DISPUTE_DELAY_SECONDS", 5, 0, 30 * 86400),
            sandbox_latency_ms=_int(get, "SANDBOX_LATENCY_MS", 0, 0, 120_000),
            web_threads=(web_threads := _int(get, "WEB_THREADS", 128, 1, 256)),
            # at most 16 kept: with admission control only a few heavy requests (and the polls) use a connection at
            # once, and several instances must stay under PostgreSQL's max_connections (100 by default)
            db_pool_size=(db_pool := _int(get, "DB_POOL_SIZE", min(web_threads, 16), 1, 1000)),
            db_max_overflow=_int(get, "DB_MAX_OVERFLOW", max(4, db_pool // 2), 0, 1000),
            redis_max_connections=_int(get, "REDIS_MAX_CONNECTIONS", 2 * web_threads + 8, 1, 10_000),
            admission_slots=_int(get, "ADMISSION_SLOTS", 1, 0, 1000),
            admission_wait_seconds=_float(get, "ADMISSION_WAIT_SECONDS", 20.0, 0.1, 3600),
            allowed_currencies=_currencies(get("ALLOWED_CURRENCIES")),
            min_amounts=_min_amounts(get("MIN_AMOUNTS")),
            subscription_retry_days=_retry_days(get("SUBSCRIPTION_RETRY_DAYS")),
            stripe_moto=_bool(get, "STRIPE_MOTO", False),
            fraud_ani_attempts_per_hour=_int(get, "FRAUD_ANI_ATTEMPTS_PER_HOUR", 10, 1, 10**9),
            fraud_ani_cards_per_hour=_int(get, "FRAUD_ANI_CARDS_PER_HOUR", 3, 1, 10**9),
            fraud_client_declined_cards=_int(get, "FRAUD_CLIENT_DECLINED_CARDS", 15, 1, 10**9),
            fraud_client_window_seconds=_int(get, "FRAUD_CLIENT_WINDOW_SECONDS", 600, 1, 86400),
            trusted_proxies=_int(get, "TRUSTED_PROXIES", 0, 0, 10),
            rate_limits_enabled=_bool(get, "RATE_LIMITS_ENABLED", True),
            rate_limit_redis_url=get("RATE_LIMIT_REDIS_URL"),
            rate_limit_api=_rate(get, "RATE_LIMIT_API", "3000 per minute; 100 per second"),
            rate_limit_token=_rate(get, "RATE_LIMIT_TOKEN", "60 per minute"),
            rate_limit_token_failures_client=_rate(get, "RATE_LIMIT_TOKEN_FAILURES_CLIENT", "10 per minute"),
            rate_limit_token_failures_ip=_rate(get, "RATE_LIMIT_TOKEN_FAILURES_IP", "30 per minute"),
            rate_limit_checkout_session=_rate(get, "RATE_LIMIT_CHECKOUT_SESSION", "10 per minute"),
            rate_limit_checkout_ip=_rate(get, "RATE_LIMIT_CHECKOUT_IP", "60 per minute"),
            breaker_window=_int(get, "BREAKER_WINDOW", 3, 1, 1000),
            breaker_latency_seconds=_float(get, "BREAKER_LATENCY_SECONDS", 15.0, 0.001, 3600),
            breaker_errors=_int(get, "BREAKER_ERRORS", 5, 1, 1000),
            breaker_cooldown_seconds=_int(get, "BREAKER_COOLDOWN_SECONDS", 60, 1, 86400),
        )

    def with_overrides(self, **changes) -> "Settings":
        """A copy with some fields changed (tests)."""
        return replace(self, **changes)


def parse_vault_keys(raw: str) -> tuple[VaultKey, ...]:
    """Parses ``PAYGATE_VAULT_KEYS``: ``"kid1:<base64 32 bytes>,kid0:<base64 32 bytes>"``, newest first.

    The first key encrypts new records; every listed key can decrypt.
    """
    ring = []
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        kid, sep, b64 = part.partition(":")
        if not sep or not kid:
            raise ConfigError("PAYGATE_VAULT_KEYS entries must look like 'key_id:base64key'")
        ring.append(VaultKey(kid, _decode_key(f"PAYGATE_VAULT_KEYS[{kid}]", b64)))
    if not ring:
        raise ConfigError("PAYGATE_VAULT_KEYS is empty")
    if len({k.key_id for k in ring}) != len(ring):
        raise ConfigError("PAYGATE_VAULT_KEYS has duplicate key ids")
    return tuple(ring)


MIN_SECRET_KEY_BYTES = 32


def refuse_weak_secrets(secret_key: str, vault_keys: tuple[VaultKey, ...], fingerprint_key: bytes, *,
                        previous_secret_keys: tuple[str, ...] = ()) -> None:
    """Production's secret policy (docs/api.md, "Clients and secrets"); raises :class:`ConfigError` naming the
    variable when

    * ``PAYGATE_SECRET_KEY`` is shorter than 32 bytes (UTF-8) or one character repeated;
    * a ``PAYGATE_VAULT_KEYS`` key or ``PAYGATE_FINGERPRINT_KEY`` is one byte repeated (all zero, say);
    * one key serves two purposes: a vault key equal to the fingerprint key, or the vault or fingerprint key
      equal to the secret key's bytes (its UTF-8 text, or the 32 bytes its text decodes to as base64).

    Each of ``previous_secret_keys`` (``PAYGATE_PREVIOUS_SECRET_KEYS``, named by its 1-based position, never by
    its value) is held to the same rules as ``PAYGATE_SECRET_KEY``: a retired key still verifies links and tokens.
    """
    named = [("PAYGATE_SECRET_KEY", secret_key)]
    named += [(f"PAYGATE_PREVIOUS_SECRET_KEYS[{i}]", key) for i, key in enumerate(previous_secret_keys, 1)]
    forms_of: list[tuple[str, set[bytes]]] = []
    for secret_name, key in named:
        raw = key.encode("utf-8")
        if len(raw) < MIN_SECRET_KEY_BYTES:
            raise ConfigError(f"{secret_name} must be at least {MIN_SECRET_KEY_BYTES} bytes in production")
        if len(set(key)) == 1:
            raise ConfigError(f"{secret_name} must not be one repeated character")
        secret_forms = {raw}
        try:
            secret_forms.add(_decode_key(secret_name, key))
        except ConfigError:
            pass
        forms_of.append((secret_name, secret_forms))
    if len(set(fingerprint_key)) == 1:
        raise ConfigError("PAYGATE_FINGERPRINT_KEY must not be one repeated byte")
    for secret_name, secret_forms in forms_of:
        if fingerprint_key in secret_forms:
            raise ConfigError(f"PAYGATE_FINGERPRINT_KEY must not be the same key as {secret_name}")
    for vault_key in vault_keys:
        name = f"PAYGATE_VAULT_KEYS[{vault_key.key_id}]"
        if len(set(vault_key.key)) == 1:
            raise ConfigError(f"{name} must not be one repeated byte")
        if hmac.compare_digest(vault_key.key, fingerprint_key):
            raise ConfigError(f"{name} must not be the same key as PAYGATE_FINGERPRINT_KEY")
        for secret_name, secret_forms in forms_of:
            if vault_key.key in secret_forms:
                raise ConfigError(f"{name} must not be the same key as {secret_name}")


def parse_previous_secret_keys(raw: str | None, secret_key: str) -> tuple[str, ...]:
    """Parses ``PAYGATE_PREVIOUS_SECRET_KEYS``: a comma list of retired secret keys, newest first (blanks
    around and between entries ignored; a key therefore cannot hold a comma). Empty or unset: ``()``.

    Raises :class:`ConfigError` when an entry equals ``PAYGATE_SECRET_KEY`` (a rotation that changed nothing)
    or is listed twice; entries are named by position, never by value. Production's strength rules are
    applied by :func:`refuse_weak_secrets`.
    """
    keys = tuple(part.strip() for part in (raw or "").split(",") if part.strip())
    for i, key in enumerate(keys, 1):
        if hmac.compare_digest(key.encode("utf-8"), secret_key.encode("utf-8")):
            raise ConfigError(f"PAYGATE_PREVIOUS_SECRET_KEYS[{i}] must differ from PAYGATE_SECRET_KEY")
        if key in keys[:i - 1]:
            raise ConfigError(f"PAYGATE_PREVIOUS_SECRET_KEYS[{i}] is listed twice")
    return keys


def _decode_key(name: str, b64: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4))
    except (ValueError, TypeError):
        raise ConfigError(f"{name} is not base64") from None
    if len(key) != 32:
        raise ConfigError(f"{name} must decode to 32 bytes")
    return key


def _derived_webhook_secret(secret_key: str) -> str:
    """Outside production, the Stripe webhook secret defaults to one derived from ``PAYGATE_SECRET_KEY``
    (HMAC-SHA256), so every process of a deployment agrees on it with no set-up; the sandbox gateway signs its
    own Stripe-shaped events with it."""
    digest = hmac.new(secret_key.encode(), b"paygate.stripe-webhook-secret", hashlib.sha256).digest()
    return "whsec_" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def _new_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _development_secrets(instance: Path) -> dict[str, str]:
    """Loads, or creates once, ``instance/secrets.json`` with development-only secrets."""
    path = instance / "secrets.json"
    if path.exists():
        return json.loads(path.read_text())
    instance.mkdir(parents=True, exist_ok=True)
    values = {
        "SECRET_KEY": secrets.token_urlsafe(32),
        "VAULT_KEYS": f"dev1:{_new_key()}",
        "FINGERPRINT_KEY": _new_key(),
    }
    tmp = path.with_suffix(f".{os.getpid()}.{secrets.token_hex(4)}.tmp")  # one per writer: none unlinks another's
    tmp.write_text(json.dumps(values))
    os.chmod(tmp, 0o600)
    try:
        os.link(tmp, path)  # first writer wins when several processes start together
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return json.loads(path.read_text())


def _int(get, name: str, default: int, lo: int, hi: int) -> int:
    raw = get(name)
    try:
        value = default if raw is None else int(raw)
    except ValueError:
        raise ConfigError(f"PAYGATE_{name} must be an integer") from None
    if not lo <= value <= hi:
        raise ConfigError(f"PAYGATE_{name} must be between {lo} and {hi}")
    return value


def _bool(get, name: str, default: bool) -> bool:
    raw = get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"PAYGATE_{name} must be true or false")


def _currencies(raw: str | None) -> tuple[str, ...] | None:
    """``PAYGATE_ALLOWED_CURRENCIES``: a comma list of ISO 4217 codes (None or empty: every code)."""
    if raw is None:
        return None
    codes = tuple(dict.fromkeys(c.strip().upper() for c in raw.split(",") if c.strip()))
    unknown = [c for c in codes if not is_currency(c)]
    if unknown or not codes:
        raise ConfigError(f"PAYGATE_ALLOWED_CURRENCIES has codes that are not ISO 4217: {unknown}")
    return codes


def _min_amounts(raw: str | None) -> dict[str, int]:
    """``PAYGATE_MIN_AMOUNTS``: ``USD:500,EUR:500`` (ISO 4217 code, a colon, minor units ≥ 0)."""
    out: dict[str, int] = {}
    for part in (raw or "").split(","):
        part = part.strip()
        if not part:
            continue
        code, sep, value = part.partition(":")
        code = code.strip().upper()
        if not sep or not is_currency(code) or not value.strip().isdigit():
            raise ConfigError("PAYGATE_MIN_AMOUNTS entries must look like 'USD:500' (ISO 4217 code: minor units)")
        out[code] = int(value)
    return out


def _retry_days(raw: str | None) -> tuple[int, ...]:
    """``PAYGATE_SUBSCRIPTION_RETRY_DAYS``: increasing whole days after the due date, ``1,3,5`` by default
    (empty list not allowed: at least one retry)."""
    if raw is None:
        return (1, 3, 5)
    try:
        days = tuple(int(p) for p in raw.split(",") if p.strip())
    except ValueError:
        raise ConfigError("PAYGATE_SUBSCRIPTION_RETRY_DAYS must be a comma list of whole days") from None
    if not days or any(d < 1 or d > 60 for d in days) or list(days) != sorted(set(days)):
        raise ConfigError("PAYGATE_SUBSCRIPTION_RETRY_DAYS must be increasing days between 1 and 60, like 1,3,5")
    return days


def _float(get, name: str, default: float, lo: float, hi: float) -> float:
    raw = get(name)
    try:
        value = default if raw is None else float(raw)
    except ValueError:
        raise ConfigError(f"PAYGATE_{name} must be a number") from None
    if not lo <= value <= hi:
        raise ConfigError(f"PAYGATE_{name} must be between {lo} and {hi}")
    return value


_RATE = re.compile(r"\s*[0-9]+\s*(?:/|\s+per\s+)\s*(?:[1-9][0-9]*\s*)?(?:second|minute|hour|day)s?\s*")


def _rate(get, name: str, default: str) -> str:
    """A ``PAYGATE_RATE_LIMIT_*`` value: rates like ``100 per minute`` or ``100/minute`` (also ``100 per 10
    minutes``), several joined by ``;`` or ``,`` (the grammar of https://limits.readthedocs.io, "Rate limit
    string notation", restricted to seconds to days)."""
    raw = get(name, default)
    parts = re.split(r"[,;|]", raw)
    if not all(_RATE.fullmatch(p) for p in parts) or any(int(re.match(r"\s*([0-9]+)", p).group(1)) < 1 for p in parts):
        raise ConfigError(f"PAYGATE_{name} must be rates like '100 per minute' or '10 per second; 1000 per hour'")
    return raw
