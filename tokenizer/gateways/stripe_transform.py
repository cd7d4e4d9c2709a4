"""Pure mapping between Stripe's API objects and the results of :mod:`tokenizer.gateways.base`.

No I/O and no stripe SDK import: every function takes plain dicts (a ``StripeObject`` is turned into
one with ``to_dict()`` by the caller), so the rules can be tested without a network.

Sources for the rules:

* PaymentIntent statuses — https://docs.stripe.com/payments/paymentintents/lifecycle: ``succeeded``
  (captured), ``requires_capture`` (authorized, held for manual capture), ``requires_action`` (the customer
  must authenticate, e.g. 3-D Secure), ``processing`` (the outcome is not known yet),
  ``requires_payment_method`` (the last attempt failed; ``last_payment_error`` says why),
  ``requires_confirmation`` and ``canceled``.
* Card error codes and issuer decline codes — https://docs.stripe.com/error-codes and
  https://docs.stripe.com/declines/codes. Stripe advises showing ``fraudulent``, ``lost_card``,
  ``stolen_card`` and ``merchant_blacklist`` to the buyer as a generic decline, which
  :func:`~tokenizer.declines.customer_message` does.
* Radar — https://docs.stripe.com/radar/testing: a Radar block is a card error whose charge has
  ``outcome.type == "blocked"``, reported with ``decline_code`` ``fraudulent``; the charge's
  ``outcome.risk_level`` is ``normal`` | ``elevated`` | ``highest``.
* Holds — https://docs.stripe.com/payments/place-a-hold-on-a-payment-method: an uncaptured charge lapses at
  ``payment_method_details.card.capture_before`` (unix seconds; https://docs.stripe.com/api/charges/object);
  capture (https://docs.stripe.com/api/payment_intents/capture) leaves the PaymentIntent ``succeeded`` with
  ``amount_received`` = the captured amount; cancel (https://docs.stripe.com/api/payment_intents/cancel)
  leaves it ``canceled`` and releases what was capturable.
* Refunds — https://docs.stripe.com/api/refunds/object: ``status`` ``pending`` | ``requires_action`` |
  ``succeeded`` | ``failed`` | ``canceled``; ``failure_reason`` when it failed (a refund can fail after
  ``succeeded``).
* Disputes — https://docs.stripe.com/api/disputes/object: ``reason``, ``status``, ``payment_intent``
  (nullable) and ``evidence_details.due_by`` (unix seconds, ``0`` when no response is possible).

Stripe sends currencies in lower case; every result here carries ISO 4217 upper case.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone
from typing import Any, Mapping

from tokenizer.declines import FAILED_MESSAGE, UNAVAILABLE_MESSAGE, customer_message
from tokenizer.gateways.base import (
    DisputeInfo,
    GatewayResult,
    GatewayStatus,
    OperationResult,
    RefundResult,
    RefundStatus,
)

__all__ = [
    "BLOCK_DECLINE_CODES", "METADATA_KEY", "RAW_CARD_REFUSED", "RISK_LEVELS", "capture_before_of",
    "capture_result", "customer_id_of", "declined_result", "dispute_info", "newest_payment_intent",
    "moto_params", "raw_card_refused_result", "refund_result", "released_amount_of", "result_from_card_error",
    "result_from_payment_intent", "risk_level_of", "search_query_for_key", "timestamp_to_datetime",
    "void_result",
]

METADATA_KEY = "paygate_idempotency_key"
"""The PaymentIntent metadata key holding paygate's idempotency key (what :func:`search_query_for_key` finds)."""

RISK_LEVELS = frozenset({"normal", "elevated", "highest"})
"""Risk levels passed through to :attr:`GatewayResult.risk_level`; Stripe's ``not_assessed``/``unknown`` become None."""

BLOCK_DECLINE_CODES = frozenset({"fraudulent", "merchant_blacklist"})
"""Decline codes that mean fraud screening (Radar or a block list) refused the card: BLOCKED, not DECLINED."""

def moto_params(moto: bool) -> dict[str, Any]:
    """The PaymentIntent parameters that mark a card keyed by phone as a mail-order/telephone-order payment:
    ``{"payment_method_options": {"card": {"moto": True}}}`` when ``moto``, else ``{}`` (nothing is sent, so an
    account without MOTO access is never refused for it). MOTO payments are exempt from strong customer
    authentication; Stripe enables the option per account (https://docs.stripe.com/payments/payment-intents/moto)."""
    return {"payment_method_options": {"card": {"moto": True}}} if moto else {}


RAW_CARD_REFUSED = "raw_card_data_not_enabled"
"""decline_code of the FAILED result for Stripe's refusal of raw card numbers
(https://support.stripe.com/questions/enabling-access-to-raw-card-data-apis)."""

def risk_level_of(payment_intent: Mapping[str, Any] | None) -> str | None:
    """``latest_charge.outcome.risk_level`` of a PaymentIntent dict when the charge was expanded, else None.

    Only ``normal`` | ``elevated`` | ``highest`` are returned; other values (``not_assessed``,
    ``unknown``) and an unexpanded ``latest_charge`` (a ``ch_`` id string) give None.
    """
    outcome = _outcome(payment_intent)
    level = outcome.get("risk_level") if outcome else None
    return level if level in RISK_LEVELS else None


def _outcome(payment_intent: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    if not isinstance(payment_intent, Mapping):
        return None
    charge = payment_intent.get("latest_charge")
    if not isinstance(charge, Mapping):
        return None
    outcome = charge.get("outcome")
    return outcome if isinstance(outcome, Mapping) else None


def _payment_method_id(payment_intent: Mapping[str, Any]) -> str | None:
    pm = payment_intent.get("payment_method")
    if isinstance(pm, Mapping):
        pm = pm.get("id")
    return pm if isinstance(pm, str) else None


def declined_result(code: str | None, decline_code: str | None, *, reference: str | None = None,
                    payment_intent: Mapping[str, Any] | None = None,
                    gateway_token: str | None = None) -> GatewayResult:
    """The result of a card-level refusal.

    ``code`` is Stripe's error code (``card_declined``, ``expired_card``, ``incorrect_cvc``, ...),
    ``decline_code`` the issuer's reason when ``code == "card_declined"``. BLOCKED (risk ``highest``
    unless the charge says otherwise) when the charge's outcome type is ``blocked``, the decline code is
    in :data:`BLOCK_DECLINE_CODES`, or the code is ``fraud``; otherwise DECLINED with
    ``decline_code or code`` (``generic_decline`` when Stripe gives neither).
    """
    outcome = _outcome(payment_intent) or {}
    risk = risk_level_of(payment_intent)
    if outcome.get("type") == "blocked" or decline_code in BLOCK_DECLINE_CODES or code == "fraud":
        reason = decline_code or ("fraudulent" if code in (None, "fraud", "card_declined") else code)
        return GatewayResult(GatewayStatus.BLOCKED, reference=reference, decline_code=reason,
                             message=customer_message("fraudulent"), risk_level=risk or "highest",
                             gateway_token=gateway_token)
    reason = decline_code or (code if code and code != "card_declined" else "generic_decline")
    return GatewayResult(GatewayStatus.DECLINED, reference=reference, decline_code=reason,
                         message=customer_message(reason), risk_level=risk, gateway_token=gateway_token)


def timestamp_to_datetime(value: Any) -> datetime | None:
    """A Stripe timestamp (unix seconds, an int) as an aware UTC datetime; None for None, 0, or a non-int."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return datetime.fromtimestamp(value, tz=timezone.utc)


def _currency(obj: Mapping[str, Any]) -> str | None:
    currency = obj.get("currency")
    return currency.upper() if isinstance(currency, str) and currency else None


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _latest_charge(payment_intent: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    charge = payment_intent.get("latest_charge") if isinstance(payment_intent, Mapping) else None
    return charge if isinstance(charge, Mapping) else None


def customer_id_of(payment_intent: Mapping[str, Any] | None) -> str | None:
    """The ``customer`` (``cus_...``) of a PaymentIntent dict, expanded or not; None when it has none."""
    customer = payment_intent.get("customer") if isinstance(payment_intent, Mapping) else None
    if isinstance(customer, Mapping):
        customer = customer.get("id")
    return customer if isinstance(customer, str) and customer else None


def capture_before_of(payment_intent: Mapping[str, Any] | None) -> datetime | None:
    """When the hold of a PaymentIntent lapses: ``latest_charge.payment_method_details.card.capture_before``
    (unix seconds; https://docs.stripe.com/api/charges/object) as an aware UTC datetime.

    None when ``latest_charge`` is not expanded or Stripe did not report the field (automatic capture).
    """
    charge = _latest_charge(payment_intent)
    details = charge.get("payment_method_details") if charge else None
    card = details.get("card") if isinstance(details, Mapping) else None
    return timestamp_to_datetime(card.get("capture_before")) if isinstance(card, Mapping) else None


def result_from_payment_intent(payment_intent: Mapping[str, Any], *, request_id: str | None = None) -> GatewayResult:
    """Maps a PaymentIntent dict (as returned by create/confirm/retrieve/search) to a result.

    ``succeeded`` and ``requires_capture`` → APPROVED (the latter is a hold) with ``amount``/``currency``
    (the PaymentIntent's amount in minor units, ISO upper case) and, for a hold, ``capture_before``;
    ``requires_action`` → DECLINED ``authentication_required`` (this server-side flow cannot run 3-D
    Secure; no money moved); ``processing`` → UNAVAILABLE (reconcile later);
    ``requires_payment_method`` with a ``last_payment_error`` → :func:`declined_result` of that error;
    ``requires_payment_method`` without one or ``requires_confirmation`` → FAILED
    ``payment_intent_incomplete`` (never confirmed, nothing charged); ``canceled`` → FAILED
    ``payment_intent_canceled``; anything else → UNAVAILABLE ``unknown_status``. Every result carries the
    payment method (``gateway_token``), the customer (``gateway_customer``) when the intent has them, and
    ``request_id`` as given (Stripe's ``Request-Id`` of the HTTP answer).
    """
    result = _result_by_status(payment_intent)
    return replace(result, gateway_customer=customer_id_of(payment_intent), request_id=request_id)


def _result_by_status(payment_intent: Mapping[str, Any]) -> GatewayResult:
    status = payment_intent.get("status")
    reference = payment_intent.get("id")
    token = _payment_method_id(payment_intent)
    risk = risk_level_of(payment_intent)
    if status in ("succeeded", "requires_capture"):
        return GatewayResult(GatewayStatus.APPROVED, reference=reference, risk_level=risk, gateway_token=token,
                             amount=_int_or_none(payment_intent.get("amount")), currency=_currency(payment_intent),
                             capture_before=capture_before_of(payment_intent) if status == "requires_capture"
                             else None)
    if status == "requires_action":
        return GatewayResult(GatewayStatus.DECLINED, reference=reference, decline_code="authentication_required",
                             message=customer_message("authentication_required"), risk_level=risk,
                             gateway_token=token)
    if status == "processing":
        return GatewayResult(GatewayStatus.UNAVAILABLE, reference=reference, decline_code="payment_processing",
                             message=UNAVAILABLE_MESSAGE, risk_level=risk, gateway_token=token)
    if status == "requires_payment_method" and isinstance(payment_intent.get("last_payment_error"), Mapping):
        err = payment_intent["last_payment_error"]
        return declined_result(err.get("code"), err.get("decline_code"), reference=reference,
                               payment_intent=payment_intent, gateway_token=token)
    if status in ("requires_payment_method", "requires_confirmation"):
        return GatewayResult(GatewayStatus.FAILED, reference=reference, decline_code="payment_intent_incomplete",
                             message=FAILED_MESSAGE, gateway_token=token)
    if status == "canceled":
        return GatewayResult(GatewayStatus.FAILED, reference=reference, decline_code="payment_intent_canceled",
                             message=FAILED_MESSAGE, gateway_token=token)
    return GatewayResult(GatewayStatus.UNAVAILABLE, reference=reference, decline_code="unknown_status",
                         message=UNAVAILABLE_MESSAGE, gateway_token=token)


def raw_card_refused_result() -> GatewayResult:
    """FAILED ``raw_card_data_not_enabled``: Stripe refused raw card numbers for this account.

    Stripe answers PaymentMethod creation with HTTP 402, ``type=invalid_request_error`` and no ``code``
    when the account lacks raw-card-data access (test mode too); enabling it needs Stripe's approval
    (support.stripe.com/questions/enabling-access-to-raw-card-data-apis). Nothing was charged.
    """
    return GatewayResult(GatewayStatus.FAILED, decline_code=RAW_CARD_REFUSED,
                         message="The payment provider account is not enabled to accept card numbers from this "
                                 "server (raw card data APIs). No money was taken.")


def result_from_card_error(error: Mapping[str, Any]) -> GatewayResult:
    """Maps the ``error`` object of an HTTP 402 answer (stripe ``CardError``) to a result.

    No ``code`` and no ``decline_code`` → :func:`raw_card_refused_result`. Otherwise
    :func:`declined_result`, with the PaymentIntent id as reference (and its customer as
    ``gateway_customer``) when the error carries the intent. An off-session charge that needs the customer
    present is ``code`` (and ``decline_code``) ``authentication_required``
    (https://docs.stripe.com/payments/save-and-reuse#charge-saved-payment-method) → DECLINED with that code.
    """
    code, decline_code = error.get("code"), error.get("decline_code")
    if not code and not decline_code:
        return raw_card_refused_result()
    pi = error.get("payment_intent") if isinstance(error.get("payment_intent"), Mapping) else None
    pm = error.get("payment_method")
    token = pm.get("id") if isinstance(pm, Mapping) else (_payment_method_id(pi) if pi else None)
    result = declined_result(code, decline_code, reference=pi.get("id") if pi else None, payment_intent=pi,
                             gateway_token=token)
    return replace(result, gateway_customer=customer_id_of(pi)) if pi else result


def newest_payment_intent(items: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The PaymentIntent with the largest ``created`` (ties: the later one in the list), or None."""
    best = None
    for item in items:
        if best is None or (item.get("created") or 0) >= (best.get("created") or 0):
            best = item
    return best


def search_query_for_key(idempotency_key: str) -> str:
    """Stripe Search query for PaymentIntents tagged with ``idempotency_key``.

    Quotes and backslashes in the value are escaped with a backslash (docs.stripe.com/search#query-fields).
    """
    escaped = idempotency_key.replace("\\", "\\\\").replace("'", "\\'")
    return f"metadata['{METADATA_KEY}']:'{escaped}'"


# -- capture, void, refund, dispute ------------------------------------------------------------------

def capture_result(payment_intent: Mapping[str, Any], *, request_id: str | None = None) -> OperationResult:
    """The result of ``POST /v1/payment_intents/{id}/capture`` answered 200 with ``payment_intent``.

    ``succeeded`` → APPROVED with ``amount`` = ``amount_received`` (the captured minor units; the rest of the
    hold was released, https://docs.stripe.com/api/payment_intents/capture); ``processing`` → UNAVAILABLE
    ``payment_processing``; any other status after a 200 → UNAVAILABLE ``unknown_status`` (never FAILED:
    Stripe accepted the capture, so money may have moved).
    """
    status = payment_intent.get("status")
    common = {"reference": payment_intent.get("id"), "currency": _currency(payment_intent),
              "payment_status": status if isinstance(status, str) else None, "request_id": request_id}
    if status == "succeeded":
        amount = _int_or_none(payment_intent.get("amount_received"))
        charge = _latest_charge(payment_intent)
        if amount is None and charge is not None:
            amount = _int_or_none(charge.get("amount_captured"))
        return OperationResult(GatewayStatus.APPROVED, amount=amount, **common)
    code = "payment_processing" if status == "processing" else "unknown_status"
    return OperationResult(GatewayStatus.UNAVAILABLE, error_code=code, **common)


def released_amount_of(payment_intent: Mapping[str, Any]) -> int:
    """Minor units a canceled PaymentIntent released: what its charge had authorized and not captured.

    With ``latest_charge`` expanded: ``amount - amount_captured`` of a ``succeeded`` (authorized) charge, 0
    for a failed one. Not expanded: ``amount - amount_received`` when the intent had a charge at all, else 0
    (an intent that never authorized held nothing).
    """
    charge = _latest_charge(payment_intent)
    if charge is not None:
        if charge.get("status") != "succeeded":
            return 0
        return max(0, (_int_or_none(charge.get("amount")) or 0) - (_int_or_none(charge.get("amount_captured")) or 0))
    if not payment_intent.get("latest_charge"):
        return 0
    amount = _int_or_none(payment_intent.get("amount")) or 0
    return max(0, amount - (_int_or_none(payment_intent.get("amount_received")) or 0))


def void_result(payment_intent: Mapping[str, Any], *, request_id: str | None = None) -> OperationResult:
    """The result of ``POST /v1/payment_intents/{id}/cancel`` answered 200 with ``payment_intent``.

    ``canceled`` → APPROVED with ``amount`` = :func:`released_amount_of` (for a ``requires_capture`` intent
    Stripe releases all of ``amount_capturable``, https://docs.stripe.com/api/payment_intents/cancel); any
    other status → UNAVAILABLE ``unknown_status``.
    """
    status = payment_intent.get("status")
    common = {"reference": payment_intent.get("id"), "currency": _currency(payment_intent),
              "payment_status": status if isinstance(status, str) else None, "request_id": request_id}
    if status == "canceled":
        return OperationResult(GatewayStatus.APPROVED, amount=released_amount_of(payment_intent), **common)
    return OperationResult(GatewayStatus.UNAVAILABLE, error_code="unknown_status", **common)


def refund_result(refund: Mapping[str, Any], *, request_id: str | None = None) -> RefundResult:
    """A Refund dict (https://docs.stripe.com/api/refunds/object) as a result: APPROVED (Stripe has the
    refund), ``refund_status`` from its ``status`` (None for a value this code does not know),
    ``failure_code`` = its ``failure_reason`` (``expired_or_canceled_card``, ``lost_or_stolen_card``, ...),
    ``amount`` minor units, ``currency`` upper case, ``reference`` ``re_...``."""
    status = refund.get("status")
    try:
        refund_status = RefundStatus(status) if isinstance(status, str) else None
    except ValueError:
        refund_status = None
    failure = refund.get("failure_reason")
    return RefundResult(GatewayStatus.APPROVED, reference=refund.get("id"), refund_status=refund_status,
                        amount=_int_or_none(refund.get("amount")), currency=_currency(refund),
                        failure_code=failure if isinstance(failure, str) and failure else None, request_id=request_id)


def dispute_info(dispute: Mapping[str, Any]) -> DisputeInfo | None:
    """A Dispute dict (https://docs.stripe.com/api/disputes/object) as :class:`DisputeInfo`.

    ``payment_reference`` is ``payment_intent`` (an id, or the id of an expanded object; None when the
    disputed charge had no intent); ``evidence_due_by`` is ``evidence_details.due_by`` as an aware UTC
    datetime, None when it is 0 (no response possible) or absent. None when the dict lacks ``id``,
    ``amount``, ``currency``, ``reason`` or ``status``.
    """
    pi = dispute.get("payment_intent")
    if isinstance(pi, Mapping):
        pi = pi.get("id")
    details = dispute.get("evidence_details")
    due_by = timestamp_to_datetime(details.get("due_by")) if isinstance(details, Mapping) else None
    reference, amount, currency = dispute.get("id"), _int_or_none(dispute.get("amount")), _currency(dispute)
    reason, status = dispute.get("reason"), dispute.get("status")
    if not (isinstance(reference, str) and amount is not None and currency and isinstance(reason, str)
            and isinstance(status, str)):
        return None
    return DisputeInfo(reference=reference, payment_reference=pi if isinstance(pi, str) else None, amount=amount,
                       currency=currency, reason=reason, status=status, evidence_due_by=due_by)
