"""Moving every vaulted card to the newest key of ``PAYGATE_VAULT_KEYS`` (``paygate vault rewrap``).

Key rotation (docs/operations.md, "Rotating the vault keys"): put a new key first in ``PAYGATE_VAULT_KEYS`` and
keep the old ones after it, restart, run the rewrap, then remove the old keys. New records are sealed under the
newest key as soon as the processes restart; the rewrap moves the existing ones
(:meth:`tokenizer.vault.Vault.rewrap`: the data key re-wrapped, the payload re-encrypted under a fresh nonce, the
token and card data unchanged).

The job works in batches ordered by token, one transaction each, and writes each record with a compare-and-set
on its old ``key_id``, so it is

* **resumable**: a run that stops (Ctrl-C, a crash) leaves every finished batch done; the next run only sees
  the records still under an old key;
* **safe alongside traffic and a second run**: a record someone else already moved is left alone (counted as
  ``skipped``), and reads keep working throughout since every key of the ring can still open a record.

A record whose key is not in the ring, or that fails its integrity check, is counted in ``failed`` (its token
listed, never its contents) and left as it is; the run goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from .models import VaultCard
from .vault import Vault, VaultError

DEFAULT_BATCH = 200


@dataclass
class RewrapReport:
    """What a run did: ``rewrapped`` records moved to ``key_id``; ``skipped`` moved meanwhile by someone else;
    ``failed`` tokens that could not be opened (unknown key or integrity failure)."""

    key_id: str
    rewrapped: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        """``{"key_id", "rewrapped", "skipped", "failed": [tokens]}``."""
        return {"key_id": self.key_id, "rewrapped": self.rewrapped, "skipped": self.skipped,
                "failed": list(self.failed)}


def outstanding(Session: sessionmaker, vault: Vault) -> int:
    """How many vaulted cards are not under the newest key yet."""
    with Session() as db:
        return db.scalar(select(func.count()).select_from(VaultCard)
                         .where(VaultCard.key_id != vault.current_key_id)) or 0


def rewrap_all(Session: sessionmaker, vault: Vault, *, batch: int = DEFAULT_BATCH,
               progress: Callable[[int], None] | None = None) -> RewrapReport:
    """Moves every record not under ``vault.current_key_id`` to it (module docstring). ``batch``: records per
    transaction (≥ 1); ``progress(n)`` is called after each batch with how many records it handled. Returns the
    :class:`RewrapReport`."""
    batch = max(1, batch)
    report = RewrapReport(key_id=vault.current_key_id)
    after = ""
    while True:
        with Session() as db:
            rows = list(db.scalars(select(VaultCard).where(VaultCard.key_id != vault.current_key_id,
                                                           VaultCard.token > after)
                                   .order_by(VaultCard.token).limit(batch)))
        if not rows:
            return report
        with Session.begin() as db:
            for row in rows:
                try:
                    moved = vault.rewrap(row)
                except VaultError:
                    report.failed.append(row.token)
                    continue
                changed = db.execute(update(VaultCard).where(VaultCard.token == row.token,
                                                             VaultCard.key_id == row.key_id)
                                     .values(key_id=moved.key_id, wrapped_key=moved.wrapped_key, nonce=moved.nonce,
                                             ciphertext=moved.ciphertext)).rowcount
                if changed:
                    report.rewrapped += 1
                else:
                    report.skipped += 1
        after = rows[-1].token
        if progress is not None:
            progress(len(rows))
