"""The outbox's tables: events, their deliveries (one per destination) and every delivery attempt.

They are written in the same transaction as the state change an event describes (:mod:`callbacks.outbox`).
Timestamps are naive UTC.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import Base


class Event(Base):
    """A callback event (docs/api.md, "Events"). ``body`` is the exact JSON text that is signed and sent."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("session_id", "sequence"), UniqueConstraint("root_id", "sequence"))

    id: Mapped[str] = mapped_column(String(40), primary_key=True)            # evt_...
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"), index=True)
    session_id: Mapped[str | None] = mapped_column(ForeignKey("payment_sessions.id"), nullable=True, index=True)
    root_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)  # ps_/pay_/sub_ numbering it
    object: Mapped[str] = mapped_column(String(20), default="payment_session", server_default="payment_session")
    type: Mapped[str] = mapped_column(String(60))
    sequence: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime)


class Delivery(Base):
    """The outbox: one row per (event, destination), written in the same transaction as the event."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    kind: Mapped[str] = mapped_column(String(40), default="webhook")        # webhook | genesys_attributes | genesys_workflow
    target: Mapped[str] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(20))                          # pending | delivered | dead
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    lock_token: Mapped[str | None] = mapped_column(String(40), nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class DeliveryAttempt(Base):
    """One HTTP attempt of a delivery: status code, latency and error, for `GET /v1/events`."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime)
    status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    latency_ms: Mapped[float] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20))                         # delivered | retry | dead
