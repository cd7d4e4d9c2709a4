"""The gateway interface every adapter implements, and the plain data it exchanges.

Operations (each one HTTP round trip or less at the gateway, each idempotent by its key):

* :meth:`Gateway.authorize` — a customer-initiated payment with a card just entered; ``capture=False``
  places a hold (Stripe ``capture_method=manual``). The card is saved at the gateway for later
  merchant-initiated use (Stripe: a Customer and ``setup_future_usage=off_session``,
  https://docs.stripe.com/payments/save-during-payment).
* :meth:`Gateway.charge_saved_card` — a merchant-initiated charge (or hold) of a card saved by an earlier
  authorization, off-session (https://docs.stripe.com/payments/save-and-reuse#charge-saved-payment-method).
* :meth:`Gateway.capture` — all or part of a hold (https://docs.stripe.com/api/payment_intents/capture,
  ``amount_to_capture``; the rest is released). :meth:`Gateway.void` — releases a hold
  (https://docs.stripe.com/api/payment_intents/cancel).
* :meth:`Gateway.refund` — all or part of a captured payment (https://docs.stripe.com/api/refunds/create).
* Lookups: :meth:`Gateway.lookup` (an authorization by its idempotency key, for reconciliation),
  :meth:`Gateway.retrieve_refund`, :meth:`Gateway.retrieve_dispute`.

Money invariants every adapter keeps:

* every money-moving call carries an idempotency key; calling again with the same key returns the first
  result and never moves money twice;
* ``APPROVED`` / ``SUCCEEDED`` only when the gateway confirmed it. A timeout, a connection error or a 5xx
  is ``UNAVAILABLE`` (outcome unknown), never a success and never a refusal;
* results carry selected fields only (amount, currency, the gateway's ids and request id, codes), never
  the raw gateway payload, never a PAN or CVC, never the gateway's free-text messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from tokenizer.cards import Card


class GatewayStatus(StrEnum):
    """How a gateway call ended."""

    APPROVED = "approved"        # done: authorization confirmed (captured or held), capture/void/refund accepted
    DECLINED = "declined"        # the issuer or gateway said no; the customer may try another card
    BLOCKED = "blocked"          # the gateway's fraud screening refused it (e.g. Stripe Radar "highest")
    FAILED = "failed"            # a definite refusal (bad request, wrong state, auth error): nothing moved
    UNAVAILABLE = "unavailable"  # timeout / connection error / 5xx: outcome unknown, reconcile later


# -- requests ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AuthorizationRequest:
    """A customer-initiated authorization of ``card``. ``amount`` in minor units of ``currency`` (ISO 4217,
    upper case). ``capture=False`` places a hold instead of charging. ``idempotency_key`` is derived from
    session and attempt (``"ps_x:1:authorize"``). ``metadata`` is string → string without card data.
    ``save_card``: keep the card at the gateway for merchant-initiated charges later. ``moto``: the card was
    keyed by phone (DTMF), a mail-order/telephone-order payment outside strong customer authentication
    (Stripe: ``payment_method_options[card][moto]=true``, https://docs.stripe.com/payments/payment-intents/moto;
    the account must have MOTO enabled)."""

    amount: int
    currency: str
    card: Card
    idempotency_key: str
    capture: bool = True
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    save_card: bool = True
    moto: bool = False


@dataclass(frozen=True)
class SavedCardChargeRequest:
    """A merchant-initiated (off-session) charge of a card the gateway saved at an earlier authorization:
    ``gateway_token`` (``pm_...``) and ``gateway_customer`` (``cus_...``) as that authorization returned
    them. ``capture=False`` places a hold. Same units and rules as :class:`AuthorizationRequest`."""

    amount: int
    currency: str
    gateway_token: str
    gateway_customer: str | None
    idempotency_key: str
    capture: bool = True
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CaptureRequest:
    """Capture a hold ``reference`` (``pi_...``): ``amount`` minor units (None: all that is capturable;
    less than that releases the rest)."""

    reference: str
    idempotency_key: str
    amount: int | None = None


@dataclass(frozen=True)
class VoidRequest:
    """Release a hold ``reference``. ``reason``: Stripe's ``cancellation_reason`` (``requested_by_customer``,
    ``abandoned``, ``duplicate``, ``fraudulent``) or None."""

    reference: str
    idempotency_key: str
    reason: str | None = None


@dataclass(frozen=True)
class RefundRequest:
    """Refund ``amount`` minor units of the captured payment ``reference``. ``reason``: Stripe's
    (``requested_by_customer``, ``duplicate``, ``fraudulent``) or None; ``metadata`` string → string."""

    reference: str
    idempotency_key: str
    amount: int
    currency: str
    reason: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


# -- results -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GatewayResult:
    """Outcome of an authorization (:meth:`Gateway.authorize`, :meth:`Gateway.charge_saved_card`,
    :meth:`Gateway.lookup`).

    ``reference`` is the gateway's id for the payment (``pi_...``) when one exists; ``decline_code`` a
    Stripe-style code (``generic_decline``, ``insufficient_funds``, ...); ``risk_level`` the gateway's own
    risk signal (``normal`` | ``elevated`` | ``highest``); ``message`` is safe to show a customer;
    ``gateway_token``/``gateway_customer`` the saved payment method and customer (``pm_``/``cus_``);
    ``amount``/``currency`` what the gateway authorized; ``capture_before`` when an uncaptured hold lapses,
    when the gateway says (Stripe: ``latest_charge.payment_method_details.card.capture_before``);
    ``request_id`` the gateway's id of the HTTP request, for support.
    """

    status: GatewayStatus
    reference: str | None = None
    decline_code: str | None = None
    message: str | None = None
    risk_level: str | None = None
    gateway_token: str | None = None
    gateway_customer: str | None = None
    amount: int | None = None
    currency: str | None = None
    capture_before: datetime | None = None
    request_id: str | None = None

    @property
    def approved(self) -> bool:
        return self.status is GatewayStatus.APPROVED


@dataclass(frozen=True)
class OperationResult:
    """Outcome of :meth:`Gateway.capture` or :meth:`Gateway.void`.

    ``status``: APPROVED (done), FAILED (refused; ``error_code`` says why, e.g.
    ``payment_intent_unexpected_state``), UNAVAILABLE (unknown). ``amount``: the amount captured (capture) or
    released (void), minor units of ``currency``; ``payment_status`` the gateway's status of the payment
    afterwards when known (Stripe: ``succeeded``, ``canceled``, ``requires_capture``).
    """

    status: GatewayStatus
    reference: str | None = None
    amount: int | None = None
    currency: str | None = None
    payment_status: str | None = None
    error_code: str | None = None
    request_id: str | None = None

    @property
    def done(self) -> bool:
        return self.status is GatewayStatus.APPROVED


class RefundStatus(StrEnum):
    """A refund's state at the gateway (Stripe's values; https://docs.stripe.com/api/refunds/object)."""

    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    REQUIRES_ACTION = "requires_action"


@dataclass(frozen=True)
class RefundResult:
    """Outcome of :meth:`Gateway.refund` / :meth:`Gateway.retrieve_refund`.

    ``status``: APPROVED when the gateway created (or found) the refund, FAILED when it refused the request
    (``failure_code``, e.g. ``charge_already_refunded``, ``amount_too_large``), UNAVAILABLE when unknown.
    ``refund_status`` is the refund's own state (it may still fail later: Stripe reports a late failure by
    webhook); ``failure_code`` also carries the refund's ``failure_reason`` when it failed
    (``expired_or_canceled_card``, ``lost_or_stolen_card``, ...). ``reference`` is ``re_...``.
    """

    status: GatewayStatus
    reference: str | None = None
    refund_status: RefundStatus | None = None
    amount: int | None = None
    currency: str | None = None
    failure_code: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class DisputeInfo:
    """A dispute as the gateway reports it (https://docs.stripe.com/api/disputes/object): ``reference``
    ``dp_...``, the disputed payment's ``payment_reference`` (``pi_...``), ``amount``/``currency``,
    Stripe's ``reason`` and ``status`` values, ``evidence_due_by`` (None when no response is possible)."""

    reference: str
    payment_reference: str | None
    amount: int
    currency: str
    reason: str
    status: str
    evidence_due_by: datetime | None = None


class Gateway(Protocol):
    """A payment gateway adapter. ``identifier`` is persisted on sessions and payments (``"sandbox"``,
    ``"stripe"``). No method raises for business outcomes or transport failures: those are results."""

    identifier: str

    def authorize(self, request: AuthorizationRequest) -> GatewayResult:
        """Authorizes (and captures unless ``request.capture`` is False) ``request.amount``."""
        ...

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """The result of an earlier :meth:`authorize` or :meth:`charge_saved_card` by its idempotency key,
        for reconciling an UNAVAILABLE answer. ``None`` means the gateway never created a payment for that
        key; UNAVAILABLE that the gateway is still unreachable."""
        ...

    def charge_saved_card(self, request: SavedCardChargeRequest) -> GatewayResult:
        """Charges (or holds) a saved card, merchant-initiated and off-session. A card that needs the
        customer present answers DECLINED ``authentication_required``."""
        ...

    def capture(self, request: CaptureRequest) -> OperationResult:
        """Captures ``request.amount`` (or all) of a hold; the rest is released."""
        ...

    def void(self, request: VoidRequest) -> OperationResult:
        """Releases a hold."""
        ...

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refunds part or all of a captured payment."""
        ...

    def retrieve_refund(self, reference: str) -> RefundResult:
        """The refund ``re_...`` as the gateway has it now (UNAVAILABLE when it cannot be asked)."""
        ...

    def retrieve_dispute(self, reference: str) -> DisputeInfo | None:
        """The dispute ``dp_...`` as the gateway has it now, or None when unknown or unreachable."""
        ...
