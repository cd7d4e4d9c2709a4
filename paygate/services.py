"""Builds every service from :class:`~kernel.settings.Settings` — the one place dependencies are wired.

The Flask app keeps the result in ``app.extensions["paygate"]``; the worker and the CLI build theirs with the
same :func:`build_services`. Nothing here reads the environment.

Business time: with the sandbox gateway outside production, every domain service (and the sandbox itself)
runs on a :class:`~payments.sandbox_clock.SandboxClock`, which ``POST /v1/sandbox/clock`` moves forward for the
whole deployment; otherwise on the real clock.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field

import httpx
import redis as redis_lib
from sqlalchemy.engine import Engine
from sqlalchemy.orm import sessionmaker

from kernel.clock import Clock, IdFactory, random_id, system_clock
from kernel.db import make_engine, make_sessionmaker
from kernel.settings import Settings
from payments.amount_rules import AmountRules
from payments.breaker import BreakerPolicy, CircuitBreaker, MeasuredGateway
from payments.clients import ClientStates, MerchantDirectory, TokenIssuer
from payments.context import Context, RedisLock
from payments.fraud import FraudPolicy, FraudScreen
from payments.gateway_events import DisputeService, GatewayWebhooks
from payments.holds import HoldService
from payments.idempotency import IdempotencyStore
from payments.merchant import MerchantCharges
from payments.refunds import RefundService
from payments.sandbox_clock import SandboxClock
from payments.sessions import LinkSigner, SessionDefaults, SessionService
from payments.submission import PaymentProcessor, ProcessorConfig
from payments.subscriptions import SubscriptionService
from tokenizer.gateways.base import Gateway
from tokenizer.vault import Vault


@dataclass
class Services:
    """The wired object graph (see :func:`build_services`)."""

    settings: Settings
    engine: Engine
    Session: sessionmaker
    redis: redis_lib.Redis
    clock: Clock
    new_id: IdFactory
    tokens: TokenIssuer
    idempotency: IdempotencyStore
    links: LinkSigner
    vault: Vault
    gateway: Gateway
    fraud: FraudScreen
    sessions: SessionService
    payments: PaymentProcessor
    ctx: Context
    holds: HoldService
    refunds: RefundService
    merchant: MerchantCharges
    webhooks: GatewayWebhooks
    disputes: DisputeService
    subscriptions: SubscriptionService
    sandbox_clock: SandboxClock | None = None
    """The movable business clock, when the deployment runs the sandbox gateway outside production."""
    amount_rules: AmountRules = field(default_factory=AmountRules)
    """``PAYGATE_ALLOWED_CURRENCIES`` and ``PAYGATE_MIN_AMOUNTS`` (docs/api.md, "Contact-center rules")."""
    breaker: CircuitBreaker | None = None
    """The gateway circuit breaker shared through Redis (docs/api.md, "Gateway circuit breaker")."""
    merchants: MerchantDirectory | None = None
    """Whom a session's customer pays: display name, support phone, accent colour (docs/api.md, "Merchant identity")."""
    _link_sender: object = field(default=None, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def link_sender(self):
        """The :class:`payments.links.LinkSender` (send-link, the agent view's resend), built on first use:
        one HTTP client and one Genesys token cache per process, requests bounded by
        ``PAYGATE_DELIVERY_TIMEOUT_SECONDS``."""
        with self._guard:
            if self._link_sender is None:
                from integrations.genesys.client import GenesysApi, TokenProvider
                from integrations.genesys.settings import SecretBox
                from payments.clients import genesys_settings_loader
                from payments.links import LinkSender

                timeout = self.settings.delivery_timeout_seconds
                http = httpx.Client(follow_redirects=False, timeout=timeout)
                api = GenesysApi(http, TokenProvider(http, self.clock, timeout=timeout), timeout=timeout)
                self._link_sender = LinkSender(sessions=self.sessions, redis=self.redis, api=api,
                                               box=SecretBox(self.settings.secret_key,
                                                             self.settings.previous_secret_keys),
                                               load_settings=genesys_settings_loader(self.Session), clock=self.clock,
                                               new_id=self.new_id, merchants=self.merchants)
            return self._link_sender

    def close(self) -> None:
        if self._link_sender is not None:
            self._link_sender.api.http.close()
        self.engine.dispose()
        self.redis.close()


def build_gateway(settings: Settings, redis, clock: Clock = system_clock) -> Gateway:
    """The configured gateway: the sandbox (state and webhook queue in Redis, on business time ``clock``) or
    Stripe through ``StripeClient``."""
    if settings.gateway == "stripe":
        from tokenizer.gateways.stripe import StripeGateway

        return StripeGateway(settings.stripe_api_key, api_base=settings.stripe_api_base)
    from tokenizer.gateways.sandbox import RedisSandboxLedger, SandboxGateway, WebhookQueue

    return SandboxGateway(ledger=RedisSandboxLedger(redis), clock=clock, webhooks=WebhookQueue(redis),
                          dispute_delay_seconds=settings.sandbox_dispute_delay_seconds,
                          latency_seconds=settings.sandbox_latency_ms / 1000.0)


REDIS_POOL_WAIT_SECONDS = 5
"""How long a thread waits for a free Redis connection before ``redis.exceptions.ConnectionError`` (503)."""


def redis_pool(settings: Settings) -> redis_lib.BlockingConnectionPool:
    """The process's Redis connection pool: at most ``PAYGATE_REDIS_MAX_CONNECTIONS`` connections, a thread
    waiting up to :data:`REDIS_POOL_WAIT_SECONDS` for one when all are in use (redis-py's
    ``BlockingConnectionPool``, thread-safe; after a fork it opens fresh connections in the child)."""
    return redis_lib.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.redis_max_connections, timeout=REDIS_POOL_WAIT_SECONDS,
        decode_responses=False, health_check_interval=30)


def build_services(settings: Settings, *, clock: Clock = system_clock, new_id: IdFactory = random_id,
                   gateway: Gateway | None = None) -> Services:
    """Wires the services for ``settings``; ``clock``/``new_id``/``gateway`` can be replaced by tests (``clock``
    is the base of business time; a test's FrozenClock stays movable by the sandbox clock on top of it)."""
    # pools sized to the request threads of a gthread worker (gunicorn.conf.py); both are thread-safe
    engine = make_engine(settings.database_url, pool_size=settings.db_pool_size,
                         max_overflow=settings.db_max_overflow)
    Session = make_sessionmaker(engine)
    redis = redis_lib.Redis.from_pool(redis_pool(settings))  # closing the client closes the pool
    sandbox_clock = None
    if settings.gateway == "sandbox" and not settings.production:
        sandbox_clock = SandboxClock(redis, base=clock)
        clock = sandbox_clock
    gateway = gateway or build_gateway(settings, redis, clock)
    links = LinkSigner(settings.secret_key, settings.previous_secret_keys)
    vault = Vault(settings.vault_keys, settings.fingerprint_key)
    fraud = FraudScreen(redis, FraudPolicy(threshold=settings.fraud_threshold,
                                           ip_attempts_per_hour=settings.fraud_ip_attempts_per_hour,
                                           card_sessions_per_hour=settings.fraud_card_sessions_per_hour,
                                           card_declines_per_day=settings.fraud_card_declines_per_day,
                                           ani_attempts_per_hour=settings.fraud_ani_attempts_per_hour,
                                           ani_cards_per_hour=settings.fraud_ani_cards_per_hour,
                                           client_declined_cards=settings.fraud_client_declined_cards,
                                           client_window_seconds=settings.fraud_client_window_seconds),
                        clock)
    amount_rules = AmountRules.from_settings(settings)
    breaker = CircuitBreaker(redis, gateway.identifier, BreakerPolicy(
        window=settings.breaker_window, latency_seconds=settings.breaker_latency_seconds,
        errors=settings.breaker_errors, cooldown_seconds=settings.breaker_cooldown_seconds), clock=clock, new_id=new_id)
    sessions = SessionService(Session, redis, SessionDefaults(
        max_attempts=settings.max_attempts, ttl_seconds=settings.session_ttl_seconds,
        gateway=gateway.identifier, public_base_url=settings.public_base_url,
        production=settings.production), links, clock=clock, new_id=new_id, amount_rules=amount_rules)
    payments = PaymentProcessor(Session, redis, sessions, vault, gateway, fraud,
                                ProcessorConfig(allowed_brands=settings.allowed_brands,
                                                reconcile_after_seconds=settings.reconcile_after_seconds,
                                                stripe_moto=settings.stripe_moto),
                                clock=clock, new_id=new_id, breaker=breaker)
    # merchant charges, renewals, holds and refunds do not ask the breaker, but their calls count
    ctx = Context(Session=Session, redis=redis, gateway=MeasuredGateway(gateway, breaker), clock=clock, new_id=new_id,
                  locks=RedisLock(redis), production=settings.production)
    reconcile = settings.reconcile_after_seconds
    refunds = RefundService(ctx, reconcile_after_seconds=reconcile)
    webhooks = GatewayWebhooks(ctx, refunds, settings.stripe_webhook_secret)
    def idem_secret_of(key: str) -> bytes:
        return hashlib.sha256(b"paygate.idempotency|" + key.encode()).digest()

    idem_secret = idem_secret_of(settings.secret_key)
    return Services(settings=settings, engine=engine, Session=Session, redis=redis, clock=clock, new_id=new_id,
                    tokens=TokenIssuer(settings.secret_key, clients=ClientStates(Session, redis),
                                       previous_keys=settings.previous_secret_keys),
                    idempotency=IdempotencyStore(redis, idem_secret, previous_secrets=tuple(
                        idem_secret_of(k) for k in settings.previous_secret_keys)),
                    links=links, vault=vault, gateway=gateway, fraud=fraud, sessions=sessions, payments=payments,
                    ctx=ctx, holds=HoldService(ctx, notice_seconds=settings.hold_expiring_notice_seconds,
                                               reconcile_after_seconds=reconcile),
                    merchants=MerchantDirectory(Session),
                    refunds=refunds, merchant=MerchantCharges(ctx, reconcile_after_seconds=reconcile,
                                                               amount_rules=amount_rules),
                    webhooks=webhooks, disputes=DisputeService(ctx, webhooks),
                    subscriptions=SubscriptionService(ctx, retry_days=settings.subscription_retry_days,
                                                      reconcile_after_seconds=reconcile, amount_rules=amount_rules),
                    sandbox_clock=sandbox_clock,
                    amount_rules=amount_rules, breaker=breaker)
