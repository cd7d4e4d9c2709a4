"""The vault's table. ``vault_cards.ciphertext`` is the one column in paygate's database that holds card
data, and only as AES-256-GCM ciphertext (see :mod:`tokenizer.vault`). Timestamps are naive UTC."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from kernel.db import Base


class VaultCard(Base):
    """A vaulted card. ``ciphertext`` holds PAN and expiry under a per-record data key,
    wrapped by the key-encryption key ``key_id`` (AES-256-GCM, token id and key id as AAD)."""

    __tablename__ = "vault_cards"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)         # tok_...
    key_id: Mapped[str] = mapped_column(String(40))
    wrapped_key: Mapped[bytes] = mapped_column(LargeBinary)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    gateway_token: Mapped[str | None] = mapped_column(String(100), nullable=True)      # saved payment method (pm_)
    gateway_customer: Mapped[str | None] = mapped_column(String(100), nullable=True)   # its gateway customer (cus_)
    client_id: Mapped[str] = mapped_column(ForeignKey("api_clients.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime)
