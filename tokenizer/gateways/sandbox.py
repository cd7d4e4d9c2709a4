"""The embedded sandbox gateway (identifier ``"sandbox"``): Stripe test mode, simulated locally by card number.

Outcomes by PAN (Stripe's published test cards, docs.stripe.com/testing and docs.stripe.com/radar/testing;
contract §9)::

    4242424242424242  APPROVED, risk normal
    4000000000000002  DECLINED generic_decline
    4000000000009995  DECLINED insufficient_funds
    4000000000000069  DECLINED expired_card
    4000000000000127  DECLINED incorrect_cvc   (only when a CVC is sent; approves without one)
    4000000000000119  DECLINED processing_error
    4000000000009987  DECLINED lost_card
    4000000000009979  DECLINED stolen_card
    4000000000006975  DECLINED card_velocity_exceeded
    4100000000000019  BLOCKED  fraudulent, risk highest   (Radar "always blocked")
    4000000000004954  BLOCKED  fraudulent, risk highest   (Radar highest risk)
    4000000000009235  APPROVED, risk elevated             (Radar elevated risk)
    4000000000009904  UNAVAILABLE gateway_timeout — SANDBOX ONLY, not a Stripe test card (:data:`TIMEOUT_CARD`):
                      behaves like a request that timed out before the gateway acted; nothing is recorded,
                      so :meth:`SandboxGateway.lookup` later returns None ("no payment was made")
    any other Luhn-valid number (Amex, Mastercard, Discover, Diners, JCB, UnionPay test numbers...)
                      APPROVED, risk normal
    a Luhn-invalid number                   DECLINED incorrect_number
    exp_month outside 1..12                 DECLINED invalid_expiry_month
    amount < 1 or a malformed currency      FAILED invalid_amount / invalid_currency

Idempotency (like Stripe's Idempotency-Key): the first result for an ``idempotency_key`` is recorded in a
ledger and returned again for every later call with the same key, whatever card is sent; no second
charge is ever made. The approved reference is deterministic: ``"pi_sbx_"`` + the first 24 hex digits of
SHA-256(idempotency key) (declined and blocked results get the same kind of id, as Stripe keeps the
failed PaymentIntent).

Ledger entries (JSON-serialisable dicts) hold ``idempotency_key``, ``status``, ``reference``,
``decline_code``, ``risk_level``, ``message``, ``amount`` (minor units), ``currency``, ``capture``,
``brand``, ``last4``, ``gateway_token``, ``description`` and ``metadata`` — never the PAN or the CVC.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Protocol

from tokenizer.cards import detect_brand, luhn_valid
from tokenizer.declines import FAILED_MESSAGE, UNAVAILABLE_MESSAGE, customer_message
from tokenizer.gateways.base import AuthorizationRequest, GatewayResult, GatewayStatus

__all__ = ["MemorySandboxLedger", "RedisSandboxLedger", "SandboxGateway", "SandboxLedger", "TIMEOUT_CARD"]

TIMEOUT_CARD = "4000000000009904"
"""Sandbox-only, Luhn-valid: simulates a gateway timeout (UNAVAILABLE; nothing recorded)."""

_DECLINES: dict[str, str] = {
    "4000000000000002": "generic_decline",
    "4000000000009995": "insufficient_funds",
    "4000000000000069": "expired_card",
    "4000000000000119": "processing_error",
    "4000000000009987": "lost_card",
    "4000000000009979": "stolen_card",
    "4000000000006975": "card_velocity_exceeded",
}
_INCORRECT_CVC = "4000000000000127"
_BLOCKED_HIGHEST = frozenset({"4100000000000019", "4000000000004954"})
_ELEVATED = frozenset({"4000000000009235"})


class SandboxLedger(Protocol):
    """Where the sandbox remembers one outcome per idempotency key (the first recorded wins)."""

    def record(self, key: str, entry: dict) -> dict:
        """Stores ``entry`` under ``key`` unless one exists; returns the entry actually stored."""
        ...

    def get(self, key: str) -> dict | None:
        """The entry stored under ``key``, or None."""
        ...

    def charges(self) -> list[dict]:
        """Every entry whose status is ``approved`` (charges and holds)."""
        ...


class MemorySandboxLedger:
    """An in-process ledger (thread-safe). The default when no ledger is given."""

    def __init__(self) -> None:
        self._entries: dict[str, dict] = {}
        self._lock = threading.Lock()

    def record(self, key: str, entry: dict) -> dict:
        """First wins: stores a copy of ``entry`` unless ``key`` has one; returns a copy of the stored entry."""
        with self._lock:
            stored = self._entries.setdefault(key, json.loads(json.dumps(entry)))
            return json.loads(json.dumps(stored))

    def get(self, key: str) -> dict | None:
        with self._lock:
            stored = self._entries.get(key)
            return json.loads(json.dumps(stored)) if stored is not None else None

    def charges(self) -> list[dict]:
        with self._lock:
            return [json.loads(json.dumps(e)) for e in self._entries.values() if e.get("status") == "approved"]


class RedisSandboxLedger:
    """A ledger in one Redis hash, ``<prefix>ledger`` (field = idempotency key, value = JSON entry).

    ``record`` uses HSETNX, so concurrent writers (several gunicorn workers) agree on the first entry.
    Works with clients built with or without ``decode_responses``.
    """

    def __init__(self, redis_client: Any, prefix: str = "paygate:sandbox:"):
        self.redis = redis_client
        self.hash_key = f"{prefix}ledger"

    def record(self, key: str, entry: dict) -> dict:
        self.redis.hsetnx(self.hash_key, key, json.dumps(entry, sort_keys=True))
        stored = self.get(key)
        return stored if stored is not None else entry

    def get(self, key: str) -> dict | None:
        raw = self.redis.hget(self.hash_key, key)
        return json.loads(raw) if raw is not None else None

    def charges(self) -> list[dict]:
        entries = [json.loads(raw) for raw in self.redis.hvals(self.hash_key)]
        return [e for e in entries if e.get("status") == "approved"]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def _result_from_entry(entry: dict) -> GatewayResult:
    return GatewayResult(status=GatewayStatus(entry["status"]), reference=entry.get("reference"),
                         decline_code=entry.get("decline_code"), message=entry.get("message"),
                         risk_level=entry.get("risk_level"), gateway_token=entry.get("gateway_token"))


class SandboxGateway:
    """Stripe-test-mode look-alike with no network (see the module docstring for the card table).

    ``ledger``: a :class:`MemorySandboxLedger` (default) or :class:`RedisSandboxLedger`, shared by every
    process that must agree on idempotency.
    """

    identifier = "sandbox"

    def __init__(self, ledger: SandboxLedger | None = None):
        self.ledger: SandboxLedger = ledger if ledger is not None else MemorySandboxLedger()

    def __repr__(self) -> str:
        return f"SandboxGateway(ledger={type(self.ledger).__name__})"

    def authorize(self, request: AuthorizationRequest) -> GatewayResult:
        """Simulates the authorization; the first result per ``idempotency_key`` is returned forever after."""
        existing = self.ledger.get(request.idempotency_key)
        if existing is not None:
            return _result_from_entry(existing)
        outcome = self._simulate(request)
        if outcome is None:  # the timeout card: the "gateway" never acted, so nothing is recorded
            return GatewayResult(GatewayStatus.UNAVAILABLE, decline_code="gateway_timeout",
                                 message=UNAVAILABLE_MESSAGE)
        status, decline_code, risk_level = outcome
        digest = _digest(request.idempotency_key)
        number = request.card.number
        valid_request = status is not GatewayStatus.FAILED
        if status is GatewayStatus.APPROVED:
            message = None
        elif status is GatewayStatus.FAILED:
            message = FAILED_MESSAGE
        else:
            message = customer_message(decline_code)
        entry = {
            "idempotency_key": request.idempotency_key,
            "status": status.value,
            "reference": f"pi_sbx_{digest}" if valid_request else None,
            "decline_code": decline_code,
            "risk_level": risk_level,
            "message": message,
            "amount": request.amount,
            "currency": request.currency,
            "capture": request.capture,
            "brand": detect_brand(number) if number.isdigit() else None,
            "last4": number[-4:] if number.isdigit() and len(number) >= 4 else None,
            "gateway_token": f"pm_sbx_{digest}" if valid_request else None,
            "description": request.description,
            "metadata": dict(request.metadata),
        }
        return _result_from_entry(self.ledger.record(request.idempotency_key, entry))

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """The recorded result for ``idempotency_key``, or None when no payment was ever recorded."""
        entry = self.ledger.get(idempotency_key)
        return _result_from_entry(entry) if entry is not None else None

    @staticmethod
    def _simulate(request: AuthorizationRequest) -> tuple[GatewayStatus, str | None, str | None] | None:
        """(status, decline_code, risk_level), or None for the timeout card."""
        if not isinstance(request.amount, int) or isinstance(request.amount, bool) or request.amount < 1:
            return GatewayStatus.FAILED, "invalid_amount", None
        currency = request.currency
        if not (isinstance(currency, str) and len(currency) == 3 and currency.isalpha()):
            return GatewayStatus.FAILED, "invalid_currency", None
        card = request.card
        number = card.number
        if number == TIMEOUT_CARD:
            return None
        if not (number.isdigit() and luhn_valid(number)):
            return GatewayStatus.DECLINED, "incorrect_number", None
        if not (isinstance(card.exp_month, int) and 1 <= card.exp_month <= 12):
            return GatewayStatus.DECLINED, "invalid_expiry_month", None
        if number in _BLOCKED_HIGHEST:
            return GatewayStatus.BLOCKED, "fraudulent", "highest"
        if number in _DECLINES:
            return GatewayStatus.DECLINED, _DECLINES[number], "normal"
        if number == _INCORRECT_CVC and card.cvc:
            return GatewayStatus.DECLINED, "incorrect_cvc", "normal"
        if number in _ELEVATED:
            return GatewayStatus.APPROVED, None, "elevated"
        return GatewayStatus.APPROVED, None, "normal"
