"""Tables. Card data appears in exactly one column: ``vault_cards.ciphertext`` (AES-256-GCM).

Everything else holds only what PCI DSS lets a merchant keep in the clear about a
card: brand, last four digits, expiry month/year and the keyed fingerprint.
Timestamps are naive UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import Base

TERMINAL_STATUSES = frozenset({"approved", "requires_agent", "failed", "expired", "canceled"})
SESSION_STATUSES = ("pending", "processing", "approved", "declined", "requires_agent", "failed", "expired",
                    "canceled")
INTENTS = ("payment", "topup", "subscription", "hold")
CHANNELS = ("voice", "messaging", "web")


class ApiClient(Base):
    """An integrator (one Genesys org or billing system). Only a hash of the client secret is kept."""

    __tablename__ = "api_clients"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)            # cli_...
    name: Mapped[str] = mapped_column(String(200))
    secret_hash: Mapped[str] = mapped_column(String(200))
    signing_secrets: Mapped[list] = mapped_column(JSON)                       # newest first; each signs events
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    genesys: Mapped[dict | None] = mapped_column(JSON, nullable=True)        # optional write-back settings
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    # the merchant as customers see it (docs/api.md, "Merchant identity"); None: ``name`` is shown
    display_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    support_phone: Mapped[str | None] = mapped_column(String(16), nullable=True)   # E.164
    accent_color: Mapped[str | None] = mapped_column(String(7), nullable=True)     # #rrggbb, lower case


class PaymentSession(Base):
    """A checkout link tied to a Genesys conversation, and its state machine (docs/api.md, "Payment sessions")."""

    __tablename__ = "payment_sessions"
    __table_args__ = (Index("ix_payment_sessions_customer_status", "client_id", "customer_account_id", "status"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)            # ps_...
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"), index=True)
    conversation_id: Mapped[str] = mapped_column(String(200), index=True)
    participant_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    customer_account_id: Mapped[str] = mapped_column(String(200))
    intent: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # None: the customer enters it
    currency: Mapped[str] = mapped_column(String(3))
    amount_min: Mapped[int | None] = mapped_column(BigInteger, nullable=True)   # amount_range.min
    amount_max: Mapped[int | None] = mapped_column(BigInteger, nullable=True)   # amount_range.max
    channel: Mapped[str | None] = mapped_column(String(20), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    locale: Mapped[str | None] = mapped_column(String(35), nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    status: Mapped[str] = mapped_column(String(20), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    card_brand: Mapped[str | None] = mapped_column(String(20), nullable=True)
    card_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    card_exp_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    card_exp_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    card_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payment_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    gateway: Mapped[str] = mapped_column(String(20))
    gateway_reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    decline_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    message: Mapped[str | None] = mapped_column(String(300), nullable=True)
    event_sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    # the checkout link texted through Genesys (send-link): how often, and the last send
    link_sends: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    link_sent_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    link_sent_to: Mapped[str | None] = mapped_column(String(16), nullable=True)             # E.164
    link_messenger_type: Mapped[str | None] = mapped_column(String(16), nullable=True)      # sms | whatsapp
    link_from_address: Mapped[str | None] = mapped_column(String(200), nullable=True)
    link_message_id: Mapped[str | None] = mapped_column(String(100), nullable=True)         # Genesys message id
    cancel_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)  # requested | conversation_ended
    # intent "subscription": the subscription the approval creates (docs/api.md, "Subscriptions")
    subscription_interval: Mapped[str | None] = mapped_column(String(10), nullable=True)   # day|week|month|year
    subscription_interval_count: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subscription_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    subscription_id: Mapped[str | None] = mapped_column(String(40), nullable=True)


class PaymentAttempt(Base):
    """One screened card submission: its fraud score with reasons, and its gateway outcome."""

    __tablename__ = "payment_attempts"
    __table_args__ = (UniqueConstraint("session_id", "number"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)            # att_...
    session_id: Mapped[str] = mapped_column(ForeignKey("payment_sessions.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    submission_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    source: Mapped[str] = mapped_column(String(20))                          # checkout | voice
    client_ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ani: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)  # the caller's number, E.164
    call_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    card_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    card_brand: Mapped[str | None] = mapped_column(String(20), nullable=True)
    card_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    token: Mapped[str | None] = mapped_column(String(64), nullable=True)
    fraud_score: Mapped[float] = mapped_column(Float, default=0.0)
    fraud_reasons: Mapped[list] = mapped_column(JSON, default=list)
    idempotency_key: Mapped[str] = mapped_column(String(200))
    outcome: Mapped[str | None] = mapped_column(String(20), nullable=True)   # approved|declined|requires_agent|failed|unknown
    decline_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    gateway_reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    risk_level: Mapped[str | None] = mapped_column(String(20), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    # real time around the authorization call, whole ms (None: no gateway call, or recorded before revision 0005)
    gateway_latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)


class Payment(Base):
    """A payment (docs/api.md, "Payments"): created when a session is approved, or by a merchant-initiated charge.

    ``status`` is a :class:`payments.states.PaymentStatus` value. Amounts are minor units of ``currency``:
    ``amount`` authorized, ``amount_capturable`` still held, ``amount_captured`` taken, ``amount_refunded``
    given back by succeeded refunds. A money operation whose gateway answer is unknown is recorded in the
    ``pending_*`` columns (kind ``capture`` | ``void``, its amount, its gateway idempotency key) until the
    reconciler settles it; the payment's status does not move meanwhile.
    """

    __tablename__ = "payments"
    __table_args__ = (UniqueConstraint("client_id", "request_key"),
                      Index("ix_payments_client_created", "client_id", "created_at"),
                      Index("ix_payments_hold_due", "status", "capture_before"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)            # pay_...
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    session_id: Mapped[str | None] = mapped_column(ForeignKey("payment_sessions.id"), unique=True, nullable=True)
    request_key: Mapped[str | None] = mapped_column(String(80), nullable=True)  # merchant-initiated: Idempotency-Key digest
    initiator: Mapped[str] = mapped_column(String(20), default="customer")  # customer | merchant
    intent: Mapped[str] = mapped_column(String(20), default="payment")
    status: Mapped[str] = mapped_column(String(20), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    amount_capturable: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_captured: Mapped[int] = mapped_column(BigInteger, default=0)
    amount_refunded: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    token: Mapped[str] = mapped_column(String(64), index=True)
    card_brand: Mapped[str | None] = mapped_column(String(20), nullable=True)
    card_last4: Mapped[str | None] = mapped_column(String(4), nullable=True)
    card_exp_month: Mapped[int | None] = mapped_column(Integer, nullable=True)
    card_exp_year: Mapped[int | None] = mapped_column(Integer, nullable=True)
    card_fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gateway: Mapped[str] = mapped_column(String(20))
    gateway_reference: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    gateway_key: Mapped[str | None] = mapped_column(String(200), nullable=True)  # idempotency key of the authorization
    entry_mode: Mapped[str] = mapped_column(String(10), default="page", server_default="page")  # page|dtmf|stored
    moto: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    capture_before: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    hold_expiring_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    conversation_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    participant_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    customer_account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subscription_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    dispute_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    decline_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    message: Mapped[str | None] = mapped_column(String(300), nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    event_sequence: Mapped[int] = mapped_column(Integer, default=0)  # the payment's own events when it has no session
    pending_operation: Mapped[str | None] = mapped_column(String(20), nullable=True)
    pending_amount: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    pending_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pending_since: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Refund(Base):
    """A refund of a captured payment (docs/api.md, "Refunds"). ``dedupe_key`` (unique) is a digest of
    (payment, disposition code, conversation, reference): the database, not a check-then-insert, makes a
    disposition refund a payment once however many requests race. ``attempts`` counts gateway attempts
    (a review retry is a new attempt with its own idempotency key ``gateway_key``)."""

    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_client_created", "client_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)            # re_...
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(80), unique=True)
    status: Mapped[str] = mapped_column(String(20), index=True)              # pending | succeeded | failed
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    disposition_code: Mapped[str] = mapped_column(String(200))
    conversation_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    participant_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    failure_code: Mapped[str | None] = mapped_column(String(60), nullable=True)
    manual_review: Mapped[str] = mapped_column(String(20), default="none", index=True)  # none | required | resolved
    review_disposition: Mapped[str | None] = mapped_column(String(60), nullable=True)
    review_note: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    gateway_reference: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    gateway_key: Mapped[str] = mapped_column(String(200))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class Dispute(Base):
    """A chargeback reported by the gateway (docs/api.md, "Disputes"). ``status`` and ``reason`` are Stripe's values;
    ``gateway_reference`` (``dp_...``) is unique, so a dispute reported twice is one row."""

    __tablename__ = "disputes"
    __table_args__ = (Index("ix_disputes_client_created", "client_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)            # dsp_...
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    gateway_reference: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(String(60))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    evidence_due_by: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    conversation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    customer_account_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class GatewayWebhookEvent(Base):
    """An inbound gateway webhook event already handled (its id is the primary key), so a replay is
    recognised and ignored. Inserted in the same transaction as the work the event caused."""

    __tablename__ = "gateway_webhook_events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)           # Stripe's evt_...
    type: Mapped[str] = mapped_column(String(100))
    received_at: Mapped[datetime] = mapped_column(DateTime)


class Subscription(Base):
    """A recurring charge of a stored token (docs/api.md, "Subscriptions"): ``status`` active | past_due | canceled.

    Periods are calendar intervals anchored on ``anchor_at``; ``period`` counts the periods charged so far (the
    first is period 1). ``next_charge_at`` is when the worker charges next (a renewal, or a retry while
    ``past_due``); ``failed_attempts`` counts failed charges of the current due period. A renewal is claimed with a
    compare-and-set that sets ``pending_key`` (the charge's idempotency key); ``request_key`` is the digest of the
    ``Idempotency-Key`` of ``POST /v1/subscriptions``, ``session_id`` the session whose approval created it.
    """

    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("client_id", "request_key"),
                      Index("ix_subscriptions_client_created", "client_id", "created_at"),
                      Index("ix_subscriptions_due", "status", "next_charge_at"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)            # sub_...
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    session_id: Mapped[str | None] = mapped_column(ForeignKey("payment_sessions.id"), unique=True, nullable=True)
    request_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    token: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    interval: Mapped[str] = mapped_column(String(10))
    interval_count: Mapped[int] = mapped_column(Integer)
    anchor_at: Mapped[datetime] = mapped_column(DateTime)
    period: Mapped[int] = mapped_column(Integer, default=0)
    current_period_start: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    next_charge_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_payment_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    pending_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    pending_since: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    customer_account_id: Mapped[str] = mapped_column(String(200), index=True)
    conversation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    participant_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    reference: Mapped[str | None] = mapped_column(String(64), nullable=True)
    cancel_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    metadata_: Mapped[dict] = mapped_column("metadata", JSON, default=dict)
    callback_url: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    event_sequence: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
