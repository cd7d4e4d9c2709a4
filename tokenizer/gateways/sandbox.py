"""The embedded sandbox gateway (identifier ``"sandbox"``): Stripe test mode, simulated locally by card number.

Outcomes by PAN (Stripe's published test cards, https://docs.stripe.com/testing and
https://docs.stripe.com/radar/testing; docs/api.md "Sandbox")::

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
    4000000000000259  APPROVED; once captured, disputed (reason fraudulent) after the dispute delay
    4000000000005126  APPROVED; its refunds are created succeeded, then fail (expired_or_canceled_card)
    4000002760003184  APPROVED on-session; every merchant-initiated (off-session) charge needs
                      authentication: DECLINED authentication_required
    4000000000009904  UNAVAILABLE gateway_timeout — SANDBOX ONLY, not a Stripe test card (:data:`TIMEOUT_CARD`):
                      behaves like a request that timed out before the gateway acted; nothing is recorded,
                      so :meth:`SandboxGateway.lookup` later returns None ("no payment was made")
    any other Luhn-valid number (Amex, Mastercard, Discover, Diners, JCB, UnionPay test numbers...)
                      APPROVED, risk normal
    a Luhn-invalid number                   DECLINED incorrect_number
    exp_month outside 1..12                 DECLINED invalid_expiry_month
    amount < 1 or a malformed currency      FAILED invalid_amount / invalid_currency

After an authorization the sandbox keeps, like Stripe, a PaymentIntent-like record per payment (amount,
amount capturable, received and refunded, status ``requires_capture`` | ``succeeded`` | ``canceled``), the
saved payment method (``pm_sbx_...`` with its customer ``cus_sbx_...`` and the card's *behaviour*, a
category such as ``dispute`` — never card data), refunds and disputes. Capture, void and refund follow
Stripe's rules: capture only a ``requires_capture`` payment and at most what is capturable (the rest is
released), void only a hold, refund at most what was received minus what was refunded.

Idempotency (like Stripe's Idempotency-Key): the first result for an ``idempotency_key`` is recorded and
returned again for every later call with the same key; no second charge, capture or refund is ever made.
Refusals (FAILED) are not recorded, as Stripe keeps no result for a request that did not run.

Holds lapse: an authorization's ``capture_before`` is its creation time plus the card network's validity for
online payments (:func:`authorization_validity`), as Stripe reports it
(https://docs.stripe.com/payments/place-a-hold-on-a-payment-method).

Webhooks: disputes (4000000000000259) and late refund failures (4000000000005126) are announced the way
Stripe does it, as ``charge.dispute.created`` / ``charge.refund.updated`` events queued in a
:class:`WebhookQueue` with a due time in business time; the worker posts each one, signed with the webhook
secret, to the app's own ``/webhooks/stripe`` (docs/api.md "Sandbox"), so the code that handles Stripe's
webhooks is the code under test. :meth:`SandboxGateway.close_dispute` produces ``charge.dispute.closed``.

Faults for tests and demos (:meth:`SandboxGateway.inject_fault`): the next capture, void, refund or
saved-card charge can time out before the gateway acts (``timeout``) or after it acted (``lost``: the work
is done and recorded, only the answer is lost), so the reconciliation of unknown outcomes can be shown.

Declines on demand (:meth:`SandboxGateway.decline_next`, ``POST /v1/sandbox/tokens/{token}/decline_next``): the next
``count`` merchant-initiated charges of a saved payment method decline with a chosen code, so failed subscription
renewals and their recovery can be shown; the counter lives on the payment method in the ledger (Redis), so every
process sees it.

Nothing here stores a PAN or CVC: ledger entries and records hold amounts, ids, brand, last four digits and
the behaviour category.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Protocol

from kernel.luhn import luhn_valid
from tokenizer.cards import authorization_validity, detect_brand
from tokenizer.declines import FAILED_MESSAGE, UNAVAILABLE_MESSAGE, customer_message
from tokenizer.gateways.base import (
    AuthorizationRequest,
    CaptureRequest,
    DisputeInfo,
    GatewayResult,
    GatewayStatus,
    OperationResult,
    RefundRequest,
    RefundResult,
    RefundStatus,
    SavedCardChargeRequest,
    VoidRequest,
)

__all__ = ["MemorySandboxLedger", "RedisSandboxLedger", "SandboxGateway", "SandboxLedger", "TIMEOUT_CARD",
           "WebhookQueue"]

TIMEOUT_CARD = "4000000000009904"
"""Sandbox-only, Luhn-valid: simulates a gateway timeout (UNAVAILABLE; nothing recorded)."""
DISPUTE_CARD = "4000000000000259"
REFUND_FAIL_CARD = "4000000000005126"
OFF_SESSION_AUTH_CARD = "4000002760003184"
API_VERSION = "2026-06-24.dahlia"
"""The Stripe API version the sandbox's webhook events claim to follow."""

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
_BEHAVIOURS = {DISPUTE_CARD: "dispute", REFUND_FAIL_CARD: "refund_fail", OFF_SESSION_AUTH_CARD: "off_session_auth"}

# -- storage ----------------------------------------------------------------------------------------------
class SandboxLedger(Protocol):
    """Where the sandbox keeps its state: authorization results by idempotency key (first recorded wins),
    operation results by idempotency key, and objects (payments, payment methods, refunds, disputes) by id."""

    def record(self, key: str, entry: dict) -> dict:
        """Stores ``entry`` under ``key`` unless one exists; returns the entry actually stored."""
        ...

    def record_first(self, key: str, entry: dict, objects: list[tuple[str, dict, bool]]) -> tuple[dict, bool]:
        """:meth:`record` and, only when this call stored ``entry``, the ``objects`` with it: each
        ``(id, obj, only_if_absent)`` is stored like :meth:`put_object`, or kept as it is when ``only_if_absent``
        and the id exists. Returns ``(the entry actually stored, whether this call stored it)``."""
        ...

    def get(self, key: str) -> dict | None:
        """The authorization entry stored under ``key``, or None."""
        ...

    def charges(self) -> list[dict]:
        """Every authorization entry whose status is ``approved`` (charges and holds)."""
        ...

    def get_object(self, object_id: str) -> dict | None:
        """The object ``pi_…``/``pm_…``/``re_…``/``dp_…``, or None."""
        ...

    def put_object(self, object_id: str, obj: dict) -> None:
        """Stores (replaces) an object."""
        ...

    def update_object(self, object_id: str, change: Callable[[dict], Any]) -> tuple[dict | None, Any]:
        """Atomically applies ``change(obj)`` (it mutates ``obj`` and returns a value) to the stored object and
        saves it; returns ``(obj after, value)``, or ``(None, None)`` for an unknown id. ``change`` may raise to
        abort without saving."""
        ...

    def record_op(self, key: str, result: dict) -> dict:
        """Stores an operation result under ``key`` unless one exists; returns the stored one."""
        ...

    def get_op(self, key: str) -> dict | None:
        """The operation result stored under ``key``, or None."""
        ...

    def take_fault(self, operation: str) -> str | None:
        """Pops the next injected fault for ``operation`` (``timeout`` | ``lost``), or None."""
        ...

    def add_fault(self, operation: str, mode: str) -> None:
        """Queues a fault for the next call of ``operation``."""
        ...


def _copy(value):
    return json.loads(json.dumps(value))


class MemorySandboxLedger:
    """An in-process ledger (thread-safe). The default when no ledger is given."""

    def __init__(self) -> None:
        self._entries: dict[str, dict] = {}
        self._objects: dict[str, dict] = {}
        self._ops: dict[str, dict] = {}
        self._faults: dict[str, list[str]] = {}
        self._lock = threading.RLock()

    def record(self, key: str, entry: dict) -> dict:
        """First wins: stores a copy of ``entry`` unless ``key`` has one; returns a copy of the stored entry."""
        with self._lock:
            return _copy(self._entries.setdefault(key, _copy(entry)))

    def record_first(self, key: str, entry: dict, objects: list[tuple[str, dict, bool]]) -> tuple[dict, bool]:
        with self._lock:
            if key in self._entries:
                return _copy(self._entries[key]), False
            self._entries[key] = _copy(entry)
            for object_id, obj, only_if_absent in objects:
                if not (only_if_absent and object_id in self._objects):
                    self._objects[object_id] = _copy(obj)
            return _copy(entry), True

    def get(self, key: str) -> dict | None:
        with self._lock:
            stored = self._entries.get(key)
            return _copy(stored) if stored is not None else None

    def charges(self) -> list[dict]:
        with self._lock:
            return [_copy(e) for e in self._entries.values() if e.get("status") == "approved"]

    def get_object(self, object_id: str) -> dict | None:
        with self._lock:
            obj = self._objects.get(object_id)
            return _copy(obj) if obj is not None else None

    def put_object(self, object_id: str, obj: dict) -> None:
        with self._lock:
            self._objects[object_id] = _copy(obj)

    def update_object(self, object_id: str, change):
        with self._lock:
            obj = self.get_object(object_id)
            if obj is None:
                return None, None
            value = change(obj)
            self._objects[object_id] = _copy(obj)
            return _copy(obj), value

    def record_op(self, key: str, result: dict) -> dict:
        with self._lock:
            return _copy(self._ops.setdefault(key, _copy(result)))

    def get_op(self, key: str) -> dict | None:
        with self._lock:
            stored = self._ops.get(key)
            return _copy(stored) if stored is not None else None

    def take_fault(self, operation: str) -> str | None:
        with self._lock:
            queue = self._faults.get(operation) or []
            return queue.pop(0) if queue else None

    def add_fault(self, operation: str, mode: str) -> None:
        with self._lock:
            self._faults.setdefault(operation, []).append(mode)


class RedisSandboxLedger:
    """A ledger in Redis hashes under ``prefix`` (``ledger``: authorizations by idempotency key;
    ``objects``: records by id; ``ops``: operation results by key) and fault lists ``faults:<operation>``.

    ``record`` and ``record_op`` use HSETNX, so concurrent writers (several gunicorn workers) agree on the
    first entry; ``update_object`` is an optimistic WATCH/MULTI transaction retried on conflict. Works with
    clients built with or without ``decode_responses``.
    """

    _RECORD_FIRST = """
    if redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2]) == 0 then
      return {0, redis.call('HGET', KEYS[1], ARGV[1])}
    end
    for i = 3, #ARGV, 3 do
      if ARGV[i] == '1' then redis.call('HSETNX', KEYS[2], ARGV[i + 1], ARGV[i + 2])
      else redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2]) end
    end
    return {1, ARGV[2]}
    """

    def __init__(self, redis_client: Any, prefix: str = "paygate:sandbox:"):
        self.redis = redis_client
        self.prefix = prefix
        self.hash_key = f"{prefix}ledger"
        self.objects_key = f"{prefix}objects"
        self.ops_key = f"{prefix}ops"
        self._record_first = redis_client.register_script(self._RECORD_FIRST)

    def record(self, key: str, entry: dict) -> dict:
        self.redis.hsetnx(self.hash_key, key, json.dumps(entry, sort_keys=True))
        stored = self.get(key)
        return stored if stored is not None else entry

    def record_first(self, key: str, entry: dict, objects: list[tuple[str, dict, bool]]) -> tuple[dict, bool]:
        """One round trip (a Lua script: the entry's HSETNX and, when it stored the entry, the objects')."""
        args: list[str] = [key, json.dumps(entry, sort_keys=True)]
        for object_id, obj, only_if_absent in objects:
            args += ["1" if only_if_absent else "0", object_id, json.dumps(obj, sort_keys=True)]
        stored, raw = self._record_first(keys=[self.hash_key, self.objects_key], args=args)
        return (json.loads(raw) if raw is not None else entry), bool(stored)

    def get(self, key: str) -> dict | None:
        raw = self.redis.hget(self.hash_key, key)
        return json.loads(raw) if raw is not None else None

    def charges(self) -> list[dict]:
        entries = [json.loads(raw) for raw in self.redis.hvals(self.hash_key)]
        return [e for e in entries if e.get("status") == "approved"]

    def get_object(self, object_id: str) -> dict | None:
        raw = self.redis.hget(self.objects_key, object_id)
        return json.loads(raw) if raw is not None else None

    def put_object(self, object_id: str, obj: dict) -> None:
        self.redis.hset(self.objects_key, object_id, json.dumps(obj, sort_keys=True))

    def update_object(self, object_id: str, change):
        outcome: dict = {}

        def transaction(pipe):
            raw = pipe.hget(self.objects_key, object_id)
            if raw is None:
                outcome.update(obj=None, value=None)
                pipe.multi()
                return
            obj = json.loads(raw)
            value = change(obj)
            pipe.multi()
            pipe.hset(self.objects_key, object_id, json.dumps(obj, sort_keys=True))
            outcome.update(obj=obj, value=value)

        self.redis.transaction(transaction, self.objects_key)
        return outcome["obj"], outcome["value"]

    def record_op(self, key: str, result: dict) -> dict:
        self.redis.hsetnx(self.ops_key, key, json.dumps(result, sort_keys=True))
        stored = self.get_op(key)
        return stored if stored is not None else result

    def get_op(self, key: str) -> dict | None:
        raw = self.redis.hget(self.ops_key, key)
        return json.loads(raw) if raw is not None else None

    def take_fault(self, operation: str) -> str | None:
        raw = self.redis.lpop(f"{self.prefix}faults:{operation}")
        if raw is None:
            return None
        return raw.decode() if isinstance(raw, bytes) else raw

    def add_fault(self, operation: str, mode: str) -> None:
        self.redis.rpush(f"{self.prefix}faults:{operation}", mode)


class WebhookQueue:
    """Stripe-shaped webhook events waiting for their due time (unix seconds of business time).

    In Redis (a sorted set ``<prefix>webhooks`` scored by due time) when a client is given, else in memory.
    :meth:`take_due` pops the due events atomically, so two workers never post the same one; a post that
    fails is put back with :meth:`schedule`.
    """

    _TAKE = """
    local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
    for _, member in ipairs(due) do redis.call('ZREM', KEYS[1], member) end
    return due
    """

    def __init__(self, redis_client: Any = None, prefix: str = "paygate:sandbox:"):
        self.redis = redis_client
        self.key = f"{prefix}webhooks"
        self._memory: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._take = redis_client.register_script(self._TAKE) if redis_client is not None else None

    def schedule(self, body: str, due_at: float) -> None:
        """Queues the event JSON text ``body`` to be posted at or after ``due_at`` (unix seconds)."""
        if self.redis is None:
            with self._lock:
                self._memory.append((due_at, body))
            return
        self.redis.zadd(self.key, {body: due_at})

    def take_due(self, now: float, limit: int = 50) -> list[str]:
        """Removes and returns up to ``limit`` event texts due at ``now`` (unix seconds), oldest first."""
        if self.redis is None:
            with self._lock:
                due = sorted((item for item in self._memory if item[0] <= now))[:limit]
                for item in due:
                    self._memory.remove(item)
                return [body for _, body in due]
        return [m.decode() if isinstance(m, bytes) else m for m in self._take(keys=[self.key], args=[now, limit])]

    def pending(self) -> int:
        """How many events wait (due or not)."""
        if self.redis is None:
            with self._lock:
                return len(self._memory)
        return int(self.redis.zcard(self.key))


# -- the gateway ------------------------------------------------------------------------------------------
def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:24]


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


def _result_from_entry(entry: dict) -> GatewayResult:
    capture_before = entry.get("capture_before")
    return GatewayResult(status=GatewayStatus(entry["status"]), reference=entry.get("reference"),
                         decline_code=entry.get("decline_code"), message=entry.get("message"),
                         risk_level=entry.get("risk_level"), gateway_token=entry.get("gateway_token"),
                         gateway_customer=entry.get("gateway_customer"), amount=entry.get("amount"),
                         currency=entry.get("currency"),
                         capture_before=datetime.fromtimestamp(capture_before, timezone.utc) if capture_before else None,
                         request_id=entry.get("request_id"))


class SandboxGateway:
    """Stripe-test-mode look-alike with no network (see the module docstring).

    ``ledger``: a :class:`MemorySandboxLedger` (default) or :class:`RedisSandboxLedger`, shared by every
    process that must agree; ``clock``: business time (aware UTC), for ``capture_before`` and webhook due
    times; ``webhooks``: where Stripe-shaped events wait for the worker (in memory by default);
    ``dispute_delay_seconds``: how long after capture a 4000000000000259 payment is disputed;
    ``latency_seconds``: a pause before every call (``PAYGATE_SANDBOX_LATENCY_MS``, to measure serving under a
    slow gateway); ``sleep``: how to pause.
    """

    identifier = "sandbox"

    def __init__(self, ledger: SandboxLedger | None = None, *, clock: Callable[[], datetime] | None = None,
                 webhooks: WebhookQueue | None = None, dispute_delay_seconds: float = 5.0,
                 latency_seconds: float = 0.0, sleep: Callable[[float], None] = time.sleep):
        self.ledger: SandboxLedger = ledger if ledger is not None else MemorySandboxLedger()
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.webhooks = webhooks or WebhookQueue()
        self.dispute_delay_seconds = dispute_delay_seconds
        self.latency_seconds = latency_seconds
        self.sleep = sleep

    def __repr__(self) -> str:
        return f"SandboxGateway(ledger={type(self.ledger).__name__})"

    def inject_fault(self, operation: str, mode: str = "timeout") -> None:
        """Makes the next ``operation`` (``capture`` | ``void`` | ``refund`` | ``charge_saved_card``) time out:
        ``timeout`` before the gateway acts, ``lost`` after it acted (the answer is lost, the work is done)."""
        if operation not in ("capture", "void", "refund", "charge_saved_card") or mode not in ("timeout", "lost"):
            raise ValueError("unknown operation or fault mode")
        self.ledger.add_fault(operation, mode)

    def _pause(self) -> None:
        if self.latency_seconds > 0:
            self.sleep(self.latency_seconds)

    def _request_id(self, key: str) -> str:
        return f"req_sbx_{_digest(key + ':' + repr(time.time_ns()))[:14]}"

    # -- authorizations ---------------------------------------------------------------------------------
    def authorize(self, request: AuthorizationRequest) -> GatewayResult:
        """Simulates the authorization; the first result per ``idempotency_key`` is returned forever after.
        ``request.moto`` (a card keyed by phone) is recorded as ``moto`` on the ledger entry and the charge."""
        self._pause()
        outcome = self._simulate(request)
        if outcome is None:  # the timeout card: the "gateway" never acted, so nothing is recorded
            existing = self.ledger.get(request.idempotency_key)
            if existing is not None:
                return _result_from_entry(existing)
            return GatewayResult(GatewayStatus.UNAVAILABLE, decline_code="gateway_timeout",
                                 message=UNAVAILABLE_MESSAGE)
        # otherwise an entry already recorded under the key wins over this simulation (_record_authorization)
        status, decline_code, risk_level = outcome
        number = request.card.number
        brand = detect_brand(number) if number.isdigit() else None
        behaviour = _BEHAVIOURS.get(number)
        stored = self._record_authorization(
            request.idempotency_key, status=status, decline_code=decline_code, risk_level=risk_level,
            amount=request.amount, currency=request.currency, capture=request.capture, brand=brand,
            last4=number[-4:] if number.isdigit() and len(number) >= 4 else None, behaviour=behaviour,
            initiator="customer", description=request.description, metadata=request.metadata,
            gateway_token=None, gateway_customer=None, moto=request.moto)
        return _result_from_entry(stored)

    def charge_saved_card(self, request: SavedCardChargeRequest) -> GatewayResult:
        """A merchant-initiated charge of a payment method saved by :meth:`authorize` (``pm_sbx_...``). An
        unknown payment method is FAILED ``resource_missing``; a card that needs authentication
        (4000002760003184) is DECLINED ``authentication_required``."""
        self._pause()
        existing = self.ledger.get(request.idempotency_key)
        if existing is not None:
            return _result_from_entry(existing)
        fault = self.ledger.take_fault("charge_saved_card")
        if fault == "timeout":
            return GatewayResult(GatewayStatus.UNAVAILABLE, decline_code="gateway_timeout", message=UNAVAILABLE_MESSAGE)
        method = self.ledger.get_object(request.gateway_token)
        if method is None or (request.gateway_customer and method.get("customer") != request.gateway_customer):
            return GatewayResult(GatewayStatus.FAILED, decline_code="resource_missing", message=FAILED_MESSAGE)
        if not isinstance(request.amount, int) or isinstance(request.amount, bool) or request.amount < 1:
            return GatewayResult(GatewayStatus.FAILED, decline_code="invalid_amount", message=FAILED_MESSAGE)
        behaviour = method.get("behaviour")
        forced = self._take_forced_decline(request.gateway_token)
        if forced is not None:
            status, decline_code = GatewayStatus.DECLINED, forced
        elif behaviour == "off_session_auth":
            status, decline_code = GatewayStatus.DECLINED, "authentication_required"
        else:
            status, decline_code = GatewayStatus.APPROVED, None
        stored = self._record_authorization(
            request.idempotency_key, status=status, decline_code=decline_code, risk_level="normal",
            amount=request.amount, currency=request.currency, capture=request.capture, brand=method.get("brand"),
            last4=method.get("last4"), behaviour=behaviour, initiator="merchant", description=request.description,
            metadata=request.metadata, gateway_token=request.gateway_token,
            gateway_customer=method.get("customer"))
        if fault == "lost":
            return GatewayResult(GatewayStatus.UNAVAILABLE, decline_code="gateway_timeout", message=UNAVAILABLE_MESSAGE)
        return _result_from_entry(stored)

    def decline_next(self, gateway_token: str, count: int, decline_code: str = "insufficient_funds") -> int:
        """Makes the next ``count`` (1–100) :meth:`charge_saved_card` calls on the saved payment method
        ``gateway_token`` (``pm_sbx_...``) DECLINED with ``decline_code``, replacing any earlier setting; returns
        ``count``. Raises ``ValueError`` for a count out of range or an unknown payment method."""
        if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 100:
            raise ValueError("count must be an integer from 1 to 100")

        def change(method: dict):
            method["decline_next"] = {"count": count, "code": decline_code}

        method, _ = self.ledger.update_object(gateway_token, change)
        if method is None:
            raise ValueError("unknown payment method")
        return count

    def _take_forced_decline(self, gateway_token: str) -> str | None:
        """Uses one of the declines :meth:`decline_next` queued on the payment method (atomically); its code, or
        None when none is left."""

        def take(method: dict):
            pending = method.get("decline_next") or {}
            if int(pending.get("count") or 0) < 1:
                return None
            left = int(pending["count"]) - 1
            method["decline_next"] = {"count": left, "code": pending["code"]} if left else None
            return pending["code"]

        _, code = self.ledger.update_object(gateway_token, take)
        return code

    def _record_authorization(self, key: str, *, status: GatewayStatus, decline_code, risk_level, amount, currency,
                              capture: bool, brand, last4, behaviour, initiator: str, description, metadata,
                              gateway_token, gateway_customer, moto: bool = False) -> dict:
        digest = _digest(key)
        valid_request = status is not GatewayStatus.FAILED
        approved = status is GatewayStatus.APPROVED
        now = self.clock()
        reference = f"pi_sbx_{digest}" if valid_request else None
        if approved and gateway_token is None:
            gateway_token, gateway_customer = f"pm_sbx_{digest}", f"cus_sbx_{digest}"
        capture_before = _unix(now + authorization_validity(brand, initiator)) if approved and not capture else None
        if status is GatewayStatus.APPROVED:
            message = None
        elif status is GatewayStatus.FAILED:
            message = FAILED_MESSAGE
        else:
            message = customer_message(decline_code)
        entry = {"idempotency_key": key, "status": status.value, "reference": reference,
                 "decline_code": decline_code, "risk_level": risk_level, "message": message, "amount": amount,
                 "currency": currency, "capture": capture, "brand": brand, "last4": last4,
                 "gateway_token": gateway_token if approved else None,
                 "gateway_customer": gateway_customer if approved else None, "capture_before": capture_before,
                 "request_id": self._request_id(key), "description": description, "metadata": dict(metadata),
                 "moto": bool(moto)}  # a card keyed by phone (mail/telephone order), as Stripe's moto option
        objects: list[tuple[str, dict, bool]] = []
        if approved:  # created only by the call that records the entry (first wins), in the same round trip
            objects.append((gateway_token, {"id": gateway_token, "customer": gateway_customer, "brand": brand,
                                            "last4": last4, "behaviour": behaviour}, True))  # an existing one stays
            objects.append((reference, {
                "id": reference, "amount": amount, "currency": currency, "brand": brand,
                "behaviour": behaviour, "charge": f"ch_sbx_{digest}", "payment_method": gateway_token,
                "status": "succeeded" if capture else "requires_capture",
                "amount_capturable": 0 if capture else amount, "amount_received": amount if capture else 0,
                "amount_refunded": 0, "capture_before": capture_before, "created": _unix(now),
                "moto": bool(moto)}, False))
        stored, recorded = self.ledger.record_first(key, entry, objects)
        if recorded and approved and capture and behaviour == "dispute":
            self._schedule_dispute(reference)
        return stored

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

    # -- capture and void --------------------------------------------------------------------------------
    def capture(self, request: CaptureRequest) -> OperationResult:
        """Captures ``request.amount`` (default: all capturable) of a ``requires_capture`` payment; the rest is
        released. FAILED ``payment_intent_unexpected_state`` for any other state, ``amount_too_large`` above
        the capturable amount, ``resource_missing`` for an unknown payment."""

        def change(pi: dict):
            if pi["status"] != "requires_capture":
                raise _Refused("payment_intent_unexpected_state")
            amount = pi["amount_capturable"] if request.amount is None else request.amount
            if amount < 1 or amount > pi["amount_capturable"]:
                raise _Refused("amount_too_large")
            pi.update(status="succeeded", amount_received=amount, amount_capturable=0)
            return amount

        return self._operation("capture", request.idempotency_key, request.reference, change,
                               after=lambda pi: pi.get("behaviour") == "dispute" and self._schedule_dispute(pi["id"]))

    def void(self, request: VoidRequest) -> OperationResult:
        """Releases a hold (``requires_capture`` → ``canceled``); FAILED ``payment_intent_unexpected_state`` for a
        captured or already canceled payment. The result's amount is what was released."""

        def change(pi: dict):
            if pi["status"] != "requires_capture":
                raise _Refused("payment_intent_unexpected_state")
            released = pi["amount_capturable"]
            pi.update(status="canceled", amount_capturable=0, cancellation_reason=request.reason)
            return released

        return self._operation("void", request.idempotency_key, request.reference, change)

    def _operation(self, name: str, key: str, reference: str, change, after=None) -> OperationResult:
        self._pause()
        stored = self.ledger.get_op(key)
        if stored is not None:
            return OperationResult(**{**stored, "status": GatewayStatus(stored["status"])})
        fault = self.ledger.take_fault(name)
        if fault == "timeout":
            return OperationResult(GatewayStatus.UNAVAILABLE, reference=reference, error_code="gateway_timeout")
        try:
            pi, amount = self.ledger.update_object(reference, change)
        except _Refused as refused:
            return OperationResult(GatewayStatus.FAILED, reference=reference, error_code=refused.code,
                                   request_id=self._request_id(key))
        if pi is None:
            return OperationResult(GatewayStatus.FAILED, reference=reference, error_code="resource_missing",
                                   request_id=self._request_id(key))
        result = self.ledger.record_op(key, {
            "status": GatewayStatus.APPROVED.value, "reference": reference, "amount": amount,
            "currency": pi["currency"], "payment_status": pi["status"], "error_code": None,
            "request_id": self._request_id(key)})
        if after is not None:
            after(pi)
        if fault == "lost":
            return OperationResult(GatewayStatus.UNAVAILABLE, reference=reference, error_code="gateway_timeout")
        return OperationResult(**{**result, "status": GatewayStatus(result["status"])})

    # -- refunds -----------------------------------------------------------------------------------------
    def refund(self, request: RefundRequest) -> RefundResult:
        """Refunds ``request.amount`` of a captured payment. FAILED ``charge_already_refunded`` when nothing is
        left, ``amount_too_large`` above what is left, ``payment_intent_unexpected_state`` for an uncaptured
        payment. A payment made with 4000000000005126 gets a refund that is created ``succeeded`` and then fails
        (``expired_or_canceled_card``), announced by a ``charge.refund.updated`` webhook."""
        self._pause()
        key = request.idempotency_key
        stored = self.ledger.get_op(key)
        if stored is not None:
            return _refund_result(stored, self.ledger.get_object(stored["refund_id"]))
        fault = self.ledger.take_fault("refund")
        if fault == "timeout":
            return RefundResult(GatewayStatus.UNAVAILABLE, failure_code="gateway_timeout")
        refund_id = f"re_sbx_{_digest(key)}"

        def change(pi: dict):
            if pi["status"] != "succeeded":
                raise _Refused("payment_intent_unexpected_state")
            left = pi["amount_received"] - pi["amount_refunded"]
            if left <= 0:
                raise _Refused("charge_already_refunded")
            if request.amount < 1 or request.amount > left:
                raise _Refused("amount_too_large")
            pi["amount_refunded"] += request.amount
            return pi.get("behaviour")

        try:
            pi, behaviour = self.ledger.update_object(request.reference, change)
        except _Refused as refused:
            return RefundResult(GatewayStatus.FAILED, failure_code=refused.code, request_id=self._request_id(key))
        if pi is None:
            return RefundResult(GatewayStatus.FAILED, failure_code="resource_missing", request_id=self._request_id(key))
        now = self.clock()
        refund = {"id": refund_id, "object": "refund", "amount": request.amount, "currency": pi["currency"].lower(),
                  "payment_intent": pi["id"], "charge": pi["charge"], "status": "succeeded", "failure_reason": None,
                  "reason": request.reason, "metadata": dict(request.metadata), "created": _unix(now)}
        self.ledger.put_object(refund_id, refund)
        stored = self.ledger.record_op(key, {"refund_id": refund_id, "request_id": self._request_id(key)})
        result = _refund_result(stored, refund)
        if behaviour == "refund_fail":
            self._fail_refund_later(refund_id)  # as Stripe does it: created succeeded, failed a moment later
        if fault == "lost":
            return RefundResult(GatewayStatus.UNAVAILABLE, failure_code="gateway_timeout")
        return result

    def retrieve_refund(self, reference: str) -> RefundResult:
        """The refund as recorded now (FAILED ``resource_missing`` when unknown)."""
        refund = self.ledger.get_object(reference)
        if refund is None:
            return RefundResult(GatewayStatus.FAILED, failure_code="resource_missing")
        return _refund_result({"refund_id": reference, "request_id": None}, refund)

    def _fail_refund_later(self, refund_id: str) -> None:
        def change(refund: dict):
            refund.update(status="failed", failure_reason="expired_or_canceled_card")

        refund, _ = self.ledger.update_object(refund_id, change)

        def give_back(pi: dict):
            pi["amount_refunded"] = max(0, pi["amount_refunded"] - refund["amount"])

        self.ledger.update_object(refund["payment_intent"], give_back)
        self._queue_event("charge.refund.updated", refund, self.clock(),
                          previous={"status": "succeeded", "failure_reason": None})

    # -- disputes ----------------------------------------------------------------------------------------
    def _schedule_dispute(self, reference: str) -> bool:
        pi = self.ledger.get_object(reference)
        dispute_id = f"dp_sbx_{_digest(reference)}"
        if pi is None or self.ledger.get_object(dispute_id) is not None:
            return False
        now = self.clock()
        due = now + timedelta(seconds=self.dispute_delay_seconds)
        dispute = {"id": dispute_id, "object": "dispute", "amount": pi["amount_received"],
                   "currency": pi["currency"].lower(), "charge": pi["charge"], "payment_intent": reference,
                   "reason": "fraudulent", "status": "needs_response", "is_charge_refundable": False,
                   "evidence_details": {"due_by": _unix(due + timedelta(days=7)), "has_evidence": False,
                                        "past_due": False, "submission_count": 0},
                   "metadata": {}, "created": _unix(due), "livemode": False}
        self.ledger.put_object(dispute_id, dispute)
        self._queue_event("charge.dispute.created", dispute, due)
        return True

    def retrieve_dispute(self, reference: str) -> DisputeInfo | None:
        """The dispute as recorded now, or None."""
        dispute = self.ledger.get_object(reference)
        return _dispute_info(dispute) if dispute is not None else None

    def close_dispute(self, reference: str, status: str) -> str | None:
        """Closes dispute ``reference`` as ``won`` or ``lost`` the way Stripe's ``charge.dispute.closed`` reports
        it and returns that event's JSON text (for the caller to deliver through the webhook path), or None
        for an unknown dispute. Raises ``ValueError`` for another status."""
        if status not in ("won", "lost"):
            raise ValueError("a dispute closes as won or lost")

        def change(dispute: dict):
            previous = dispute["status"]
            dispute["status"] = status
            dispute["evidence_details"]["due_by"] = 0
            return previous

        dispute, previous = self.ledger.update_object(reference, change)
        if dispute is None:
            return None
        return self._event_body("charge.dispute.closed", dispute, self.clock(), previous={"status": previous})

    # -- webhook events ----------------------------------------------------------------------------------
    def _event_body(self, event_type: str, obj: dict, at: datetime, previous: dict | None = None) -> str:
        event_id = f"evt_sbx_{_digest(event_type + obj['id'] + repr(time.time_ns()))}"
        data: dict = {"object": obj}
        if previous is not None:
            data["previous_attributes"] = previous
        return json.dumps({"id": event_id, "object": "event", "api_version": API_VERSION, "created": _unix(at),
                           "type": event_type, "data": data, "livemode": False, "pending_webhooks": 1,
                           "request": {"id": None, "idempotency_key": None}}, separators=(",", ":"))

    def _queue_event(self, event_type: str, obj: dict, due: datetime, previous: dict | None = None) -> None:
        self.webhooks.schedule(self._event_body(event_type, obj, due, previous), due.timestamp())


class _Refused(Exception):
    def __init__(self, code: str):
        super().__init__(code)
        self.code = code


def _refund_result(op: dict, refund: dict | None = None) -> RefundResult:
    if refund is None:
        return RefundResult(GatewayStatus.APPROVED, reference=op.get("refund_id"), request_id=op.get("request_id"))
    return RefundResult(GatewayStatus.APPROVED, reference=refund["id"], refund_status=RefundStatus(refund["status"]),
                        amount=refund["amount"], currency=refund["currency"].upper(),
                        failure_code=refund.get("failure_reason"), request_id=op.get("request_id"))


def _dispute_info(dispute: dict) -> DisputeInfo:
    due = (dispute.get("evidence_details") or {}).get("due_by") or 0
    return DisputeInfo(reference=dispute["id"], payment_reference=dispute.get("payment_intent"),
                       amount=dispute["amount"], currency=dispute["currency"].upper(), reason=dispute["reason"],
                       status=dispute["status"],
                       evidence_due_by=datetime.fromtimestamp(due, timezone.utc) if due else None)
