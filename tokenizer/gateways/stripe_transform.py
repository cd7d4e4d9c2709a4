"""Pure mapping between Stripe's API objects and :class:`~tokenizer.gateways.base.GatewayResult`.

No I/O and no stripe SDK import: every function takes plain dicts (a ``StripeObject`` is turned into
one with ``to_dict()`` by the caller), so the rules can be tested without a network.

Sources for the rules (summarised in the project's reference/stripe.md):

* PaymentIntent statuses — docs.stripe.com/payments/paymentintents/lifecycle: ``succeeded`` (captured),
  ``requires_capture`` (authorized, held for manual capture), ``requires_action`` (the customer must
  authenticate, e.g. 3-D Secure), ``processing`` (the outcome is not known yet),
  ``requires_payment_method`` (the last attempt failed; ``last_payment_error`` says why),
  ``requires_confirmation`` and ``canceled``.
* Card error codes and issuer decline codes — docs.stripe.com/error-codes and
  docs.stripe.com/declines/codes. Stripe advises showing ``fraudulent``, ``lost_card``, ``stolen_card``
  and ``merchant_blacklist`` to the buyer as a generic decline, which :func:`customer_message` does.
* Radar — docs.stripe.com/radar/testing: a Radar block is a card error whose charge has
  ``outcome.type == "blocked"``, reported with ``decline_code`` ``fraudulent``; the charge's
  ``outcome.risk_level`` is ``normal`` | ``elevated`` | ``highest``.
"""

from __future__ import annotations

from typing import Any, Mapping

from tokenizer.declines import FAILED_MESSAGE, UNAVAILABLE_MESSAGE, customer_message
from tokenizer.gateways.base import GatewayResult, GatewayStatus

__all__ = [
    "BLOCK_DECLINE_CODES", "METADATA_KEY", "RAW_CARD_REFUSED", "RISK_LEVELS", "declined_result",
    "newest_payment_intent", "raw_card_refused_result", "result_from_card_error", "result_from_payment_intent",
    "risk_level_of", "search_query_for_key",
]

METADATA_KEY = "paygate_idempotency_key"
"""The PaymentIntent metadata key holding paygate's idempotency key (what :func:`search_query_for_key` finds)."""

RISK_LEVELS = frozenset({"normal", "elevated", "highest"})
"""Risk levels passed through to :attr:`GatewayResult.risk_level`; Stripe's ``not_assessed``/``unknown`` become None."""

BLOCK_DECLINE_CODES = frozenset({"fraudulent", "merchant_blacklist"})
"""Decline codes that mean fraud screening (Radar or a block list) refused the card: BLOCKED, not DECLINED."""

RAW_CARD_REFUSED = "raw_card_data_not_enabled"
"""decline_code of the FAILED result for Stripe's refusal of raw card numbers (reference/stripe.md §7)."""

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


def result_from_payment_intent(payment_intent: Mapping[str, Any]) -> GatewayResult:
    """Maps a PaymentIntent dict (as returned by create/confirm/retrieve/search) to a result.

    ``succeeded`` and ``requires_capture`` → APPROVED (the latter is a hold);
    ``requires_action`` → DECLINED ``authentication_required`` (this server-side flow cannot run 3-D
    Secure; no money moved); ``processing`` → UNAVAILABLE (reconcile later);
    ``requires_payment_method`` with a ``last_payment_error`` → :func:`declined_result` of that error;
    ``requires_payment_method`` without one or ``requires_confirmation`` → FAILED
    ``payment_intent_incomplete`` (never confirmed, nothing charged); ``canceled`` → FAILED
    ``payment_intent_canceled``; anything else → UNAVAILABLE ``unknown_status``.
    """
    status = payment_intent.get("status")
    reference = payment_intent.get("id")
    token = _payment_method_id(payment_intent)
    risk = risk_level_of(payment_intent)
    if status in ("succeeded", "requires_capture"):
        return GatewayResult(GatewayStatus.APPROVED, reference=reference, risk_level=risk, gateway_token=token)
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
    :func:`declined_result`, with the PaymentIntent id as reference when the error carries one.
    """
    code, decline_code = error.get("code"), error.get("decline_code")
    if not code and not decline_code:
        return raw_card_refused_result()
    pi = error.get("payment_intent") if isinstance(error.get("payment_intent"), Mapping) else None
    pm = error.get("payment_method")
    token = pm.get("id") if isinstance(pm, Mapping) else (_payment_method_id(pi) if pi else None)
    return declined_result(code, decline_code, reference=pi.get("id") if pi else None, payment_intent=pi,
                           gateway_token=token)


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
