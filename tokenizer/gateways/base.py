"""The gateway interface every adapter implements, and the plain data it exchanges.

Money invariants every adapter keeps:

* ``authorize`` moves money (or reserves it, for ``capture=False``) at most once per
  ``idempotency_key``: calling it again with the same key returns the first result.
* A result is ``APPROVED`` only when the gateway confirmed the authorization. A
  timeout, a connection error or a 5xx is ``UNAVAILABLE`` (outcome unknown), never
  approved and never declined.
* Results carry selected fields only, never the raw gateway payload, and never a
  PAN or CVC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol


class GatewayStatus(StrEnum):
    APPROVED = "approved"        # authorization confirmed (captured, or held when capture=False)
    DECLINED = "declined"        # the issuer or gateway said no; the customer may try another card
    BLOCKED = "blocked"          # the gateway's fraud screening refused it (e.g. Stripe Radar "highest")
    FAILED = "failed"            # a definite technical refusal (bad request, auth error): never charged
    UNAVAILABLE = "unavailable"  # timeout / connection error / 5xx: outcome unknown, reconcile later


@dataclass(frozen=True)
class CardDetails:
    """What the gateway needs of a card for one call. Lives in memory only; never persisted or logged."""

    number: str = field(repr=False)
    exp_month: int
    exp_year: int
    cvc: str | None = field(repr=False, default=None)
    cardholder_name: str | None = field(repr=False, default=None)


@dataclass(frozen=True)
class AuthorizationRequest:
    """One authorization. ``amount`` in minor units of ``currency`` (ISO 4217, upper case).

    ``capture=False`` places a hold (manual capture) instead of charging.
    ``idempotency_key`` is derived from session and attempt, e.g. ``"ps_x:1:authorize"``.
    ``metadata`` is string → string and must not contain card data.
    """

    amount: int
    currency: str
    card: CardDetails
    idempotency_key: str
    capture: bool = True
    description: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GatewayResult:
    """Outcome of a gateway call.

    ``reference`` is the gateway's id for the payment (``pi_...``) when one exists;
    ``decline_code`` is a Stripe-style code (``generic_decline``, ``insufficient_funds``,
    ``expired_card``, ``incorrect_cvc``, ``processing_error``, ...);
    ``risk_level`` is the gateway's own risk signal when it gives one
    (``normal`` | ``elevated`` | ``highest``); ``message`` is safe to show a customer.
    """

    status: GatewayStatus
    reference: str | None = None
    decline_code: str | None = None
    message: str | None = None
    risk_level: str | None = None
    gateway_token: str | None = None   # gateway-side payment method id (pm_...) when tokenized there

    @property
    def approved(self) -> bool:
        return self.status is GatewayStatus.APPROVED


class Gateway(Protocol):
    """A payment gateway adapter. ``identifier`` is persisted on sessions (``"sandbox"``, ``"stripe"``)."""

    identifier: str

    def authorize(self, request: AuthorizationRequest) -> GatewayResult:
        """Authorizes (and captures unless ``request.capture`` is False) ``request.amount``.

        Never raises for business outcomes or transport failures: those are results
        (DECLINED, BLOCKED, FAILED, UNAVAILABLE).
        """
        ...

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """Finds the result of an earlier :meth:`authorize` by its idempotency key, for reconciling
        sessions left ``processing`` by an UNAVAILABLE result. ``None`` means the gateway never
        created a payment for that key. May return UNAVAILABLE when the gateway is still unreachable.
        """
        ...
