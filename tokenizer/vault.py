"""The card vault: envelope encryption of card numbers behind random ``tok_`` tokens.

Scheme (every record)::

    data_key   = 32 random bytes, new for every record
    payload    = JSON {"number", "exp_month", "exp_year"}          (never the CVC: PCI DSS 3.3.1)
    aad        = b"paygate.vault.v1|" + token + b"|" + key_id
    ciphertext = AES-256-GCM(data_key, nonce, payload, aad)            nonce: 12 random bytes
    wrapped_key = wrap_nonce || AES-256-GCM(KEK[key_id], wrap_nonce, data_key, aad)

The key-encryption keys (KEKs) form a ring, newest first: the newest wraps new records, every key in
the ring can unwrap (rotation in the manner of ``MultiFernet``). Binding the token id and key id as
associated data means a ciphertext or wrapped key copied onto another token, or relabelled with
another key id, fails authentication instead of decrypting. :meth:`Vault.rewrap` moves a record to the
newest key without changing its token or card data, so an old KEK can be retired.

The card fingerprint (``fp_``) is an HMAC-SHA256 of the PAN under a separate key, so the same card
gives the same fingerprint in every session (duplicate and velocity checks) while the value reveals
nothing about the number without that key.

Errors: :class:`VaultError` with ``code`` ``vault_key_unknown`` (the record's key id is not in the
ring) or ``vault_integrity`` (anything that fails to decrypt or parse: tampering, a moved ciphertext,
a wrong key). Messages never contain card data.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from kernel.errors import PaygateError

from .cards import Card, detect_brand

__all__ = ["KeyEncryptionKey", "SealedCard", "Vault", "VaultError", "new_vault_token"]

KEY_BYTES = 32
NONCE_BYTES = 12
_AAD_PREFIX = b"paygate.vault.v1|"


class VaultError(PaygateError):
    """A vault record cannot be opened. ``code``: ``vault_key_unknown`` | ``vault_integrity``."""

    code = "vault_integrity"
    http_status = 500


class KeyEncryptionKey(Protocol):
    """One key of the ring: ``key_id`` (stored with each record) and 32 raw ``key`` bytes.
    :class:`kernel.settings.VaultKey` satisfies it."""

    key_id: str
    key: bytes


_TOKEN_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
TOKEN_RANDOM_CHARS = 24


def new_vault_token() -> str:
    """``"tok_"`` + 24 alphanumeric characters from ``secrets`` (24 × log2(62) ≈ 142 random bits)."""
    return "tok_" + "".join(secrets.choice(_TOKEN_ALPHABET) for _ in range(TOKEN_RANDOM_CHARS))


@dataclass(frozen=True)
class SealedCard:
    """What the vault stores for a card (one ``vault_cards`` row). Only ``ciphertext`` holds card data,
    encrypted; ``brand``, ``last4``, expiry and ``fingerprint`` are safe to store and show."""

    token: str
    key_id: str
    wrapped_key: bytes = field(repr=False)
    nonce: bytes = field(repr=False)
    ciphertext: bytes = field(repr=False)
    fingerprint: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


class Vault:
    """Seals cards into tokens and opens them again.

    ``keys``: the key-encryption key ring, newest first (objects with ``key_id`` and 32-byte ``key``);
    ``fingerprint_key``: the HMAC key for :meth:`fingerprint`; ``new_token``: a zero-argument callable
    returning a fresh token (default :func:`new_vault_token`); ``random_bytes(n)``: the randomness for
    data keys and nonces (default ``os.urandom``). Raises ``ValueError`` for an empty ring, duplicate key
    ids, a key that is not 32 bytes, or an empty fingerprint key.
    """

    def __init__(self, keys: Sequence[KeyEncryptionKey], fingerprint_key: bytes, *,
                 new_token: Callable[[], str] | None = None,
                 random_bytes: Callable[[int], bytes] = os.urandom):
        ring = list(keys)
        if not ring:
            raise ValueError("the vault key ring is empty")
        self._keys: dict[str, AESGCM] = {}
        for kek in ring:
            if not isinstance(kek.key, bytes) or len(kek.key) != KEY_BYTES:
                raise ValueError(f"vault key {kek.key_id!r} must be {KEY_BYTES} bytes")
            if kek.key_id in self._keys:
                raise ValueError(f"vault key id {kek.key_id!r} appears twice in the ring")
            self._keys[kek.key_id] = AESGCM(kek.key)
        if not fingerprint_key:
            raise ValueError("the fingerprint key is empty")
        self._current_key_id = ring[0].key_id
        self._fingerprint_key = bytes(fingerprint_key)
        self._new_token = new_token or new_vault_token
        self._random = random_bytes

    def __repr__(self) -> str:
        return f"Vault(current_key_id={self._current_key_id!r}, key_ids={list(self._keys)!r})"

    @property
    def current_key_id(self) -> str:
        """The key id new records are sealed under (the first of the ring)."""
        return self._current_key_id

    # ------------------------------------------------------------------------------------------------
    def fingerprint(self, number_digits: str) -> str:
        """``"fp_"`` + unpadded url-safe base64 of HMAC-SHA256(fingerprint_key, PAN digits) (46 characters).

        Stable for a card across sessions and processes with the same key; different keys give unrelated
        values. Pass digits only (``Card.number``).
        """
        digest = hmac.new(self._fingerprint_key, number_digits.encode("ascii"), hashlib.sha256).digest()
        return "fp_" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def seal(self, card: Card) -> SealedCard:
        """Encrypts ``card``'s number and expiry under a fresh data key and a new token (see module docs).
        The CVC and cardholder name are not stored."""
        token = self._new_token()
        key_id = self._current_key_id
        data_key = self._random(KEY_BYTES)
        payload = json.dumps({"number": card.number, "exp_month": card.exp_month, "exp_year": card.exp_year},
                             separators=(",", ":")).encode()
        nonce, ciphertext = self._encrypt_payload(data_key, payload, token, key_id)
        return SealedCard(token=token, key_id=key_id, wrapped_key=self._wrap(data_key, token, key_id),
                          nonce=nonce, ciphertext=ciphertext, fingerprint=self.fingerprint(card.number),
                          brand=card.brand, last4=card.last4, exp_month=card.exp_month, exp_year=card.exp_year)

    def open(self, sealed) -> Card:
        """Decrypts a record (a :class:`SealedCard` or anything with the same attributes, e.g. a
        ``VaultCard`` row) into a :class:`~tokenizer.cards.Card` without CVC or cardholder name (neither is
        stored). Raises :class:`VaultError` ``vault_key_unknown`` or ``vault_integrity``."""
        data_key = self._unwrap(sealed)
        payload = self._decrypt_payload(data_key, sealed, sealed.key_id)
        try:
            doc = json.loads(payload)
            number = str(doc["number"])
            return Card(number=number, exp_month=int(doc["exp_month"]), exp_year=int(doc["exp_year"]),
                        brand=getattr(sealed, "brand", None) or detect_brand(number) or "")
        except (ValueError, KeyError, TypeError):
            raise VaultError("The vault record could not be read.", code="vault_integrity") from None

    def rewrap(self, sealed: SealedCard) -> SealedCard:
        """The same record (token, data key, card data) moved to the newest key of the ring.

        The data key is re-wrapped under the newest KEK and, because the key id is part of the associated
        data, the payload is re-encrypted under the same data key with a fresh nonce. A record already
        under the newest key is returned unchanged. Raises :class:`VaultError` like :meth:`open`.
        """
        if sealed.key_id == self._current_key_id:
            return sealed
        data_key = self._unwrap(sealed)
        payload = self._decrypt_payload(data_key, sealed, sealed.key_id)
        key_id = self._current_key_id
        nonce, ciphertext = self._encrypt_payload(data_key, payload, sealed.token, key_id)
        return SealedCard(token=sealed.token, key_id=key_id, wrapped_key=self._wrap(data_key, sealed.token, key_id),
                          nonce=nonce, ciphertext=ciphertext, fingerprint=sealed.fingerprint, brand=sealed.brand,
                          last4=sealed.last4, exp_month=sealed.exp_month, exp_year=sealed.exp_year)

    # ------------------------------------------------------------------------------------------------
    @staticmethod
    def _aad(token: str, key_id: str) -> bytes:
        return _AAD_PREFIX + token.encode("utf-8") + b"|" + key_id.encode("utf-8")

    def _wrap(self, data_key: bytes, token: str, key_id: str) -> bytes:
        wrap_nonce = self._random(NONCE_BYTES)
        return wrap_nonce + self._keys[key_id].encrypt(wrap_nonce, data_key, self._aad(token, key_id))

    def _encrypt_payload(self, data_key: bytes, payload: bytes, token: str, key_id: str) -> tuple[bytes, bytes]:
        nonce = self._random(NONCE_BYTES)
        return nonce, AESGCM(data_key).encrypt(nonce, payload, self._aad(token, key_id))

    def _unwrap(self, sealed) -> bytes:
        kek = self._keys.get(sealed.key_id)
        if kek is None:
            raise VaultError("The vault record's key is not in the key ring.", code="vault_key_unknown")
        wrapped = bytes(sealed.wrapped_key)
        try:
            data_key = kek.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], self._aad(sealed.token, sealed.key_id))
        except (InvalidTag, ValueError):
            raise VaultError("The vault record failed its integrity check.", code="vault_integrity") from None
        if len(data_key) != KEY_BYTES:
            raise VaultError("The vault record failed its integrity check.", code="vault_integrity")
        return data_key

    def _decrypt_payload(self, data_key: bytes, sealed, key_id: str) -> bytes:
        try:
            return AESGCM(data_key).decrypt(bytes(sealed.nonce), bytes(sealed.ciphertext),
                                            self._aad(sealed.token, key_id))
        except (InvalidTag, ValueError):
            raise VaultError("The vault record failed its integrity check.", code="vault_integrity") from None
