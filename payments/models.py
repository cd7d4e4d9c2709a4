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
    Integer,
    String,
    UniqueConstraint,
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


class PaymentSession(Base):
    """A checkout link tied to a Genesys conversation, and its state machine (contract §2)."""

    __tablename__ = "payment_sessions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)            # ps_...
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"), index=True)
    conversation_id: Mapped[str] = mapped_column(String(200), index=True)
    participant_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    customer_account_id: Mapped[str] = mapped_column(String(200))
    intent: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
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


class Payment(Base):
    """An approved authorization (captured, or held for ``intent=hold``)."""

    __tablename__ = "payments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)            # pay_...
    session_id: Mapped[str] = mapped_column(ForeignKey("payment_sessions.id"), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    gateway: Mapped[str] = mapped_column(String(20))
    gateway_reference: Mapped[str | None] = mapped_column(String(100), nullable=True)
    token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20))                          # captured | authorized
    created_at: Mapped[datetime] = mapped_column(DateTime)
