"""The Stripe adapter (identifier ``"stripe"``): PaymentMethod + PaymentIntent through ``stripe.StripeClient``.

Flow of :meth:`StripeGateway.authorize` (two POSTs, both idempotent):

1. ``POST /v1/payment_methods`` (``type=card``, the card, the cardholder name) with Idempotency-Key
   ``"<key>:pm"``;
2. ``POST /v1/payment_intents`` with ``confirm=true`` — created **and confirmed in one call**, so there
   is never an unconfirmed intent to clean up and a single idempotency key (``<key>``) covers the
   money-moving step. ``capture_method`` is ``automatic`` (charge) or ``manual`` (hold, for
   ``capture=False``); ``metadata.paygate_idempotency_key`` lets :meth:`StripeGateway.lookup` find the
   intent again; ``expand=["latest_charge"]`` brings Radar's ``outcome.risk_level``.

The SDK retries connection errors, 409 and 5xx up to ``max_network_retries`` times with the same
Idempotency-Key (reference/stripe.md §3), so a retry never charges twice. The mapping of answers to
:class:`GatewayResult` is in :mod:`tokenizer.gateways.stripe_transform`; exceptions map as:

* ``CardError`` with a code → DECLINED with ``decline_code or code`` (BLOCKED, risk ``highest``, for
  Radar/fraud blocks);
* ``CardError`` without a code (Stripe's HTTP 402 refusal of raw card numbers) → FAILED
  ``raw_card_data_not_enabled``;
* ``AuthenticationError`` / ``PermissionError`` → FAILED ``gateway_authentication_failed`` /
  ``gateway_permission_denied``; ``IdempotencyError`` → FAILED ``idempotency_error``;
  ``InvalidRequestError`` → FAILED with ``e.code`` (or ``invalid_request``);
* ``APIConnectionError`` (timeouts included) → UNAVAILABLE ``gateway_unreachable``; ``RateLimitError`` →
  UNAVAILABLE ``gateway_rate_limited``; ``APIError`` (5xx, or 409 once retries ran out) and any other SDK
  error → UNAVAILABLE ``gateway_error``: the outcome is unknown and must be reconciled with
  :meth:`StripeGateway.lookup`.

Real Stripe refuses raw card numbers unless the account has raw-card-data access (PCI DSS SAQ D;
reference/stripe.md §7); that answer becomes FAILED, never a decline.

PCI: card data only ever travels in the SDK's request body. Results and log lines carry error class,
HTTP status, Stripe's request id and codes — never Stripe's free-text messages (they can echo
parameter values) and never the card. :func:`_quiet_sdk_debug_logging` keeps the SDK from logging
request bodies.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import stripe

from tokenizer.declines import FAILED_MESSAGE, UNAVAILABLE_MESSAGE
from tokenizer.gateways import stripe_transform as tx
from tokenizer.gateways.base import AuthorizationRequest, GatewayResult, GatewayStatus

__all__ = ["StripeGateway", "result_from_exception"]

log = logging.getLogger("paygate.gateway.stripe")


def _quiet_sdk_debug_logging() -> None:
    """Keeps the SDK from logging card data.

    stripe-python logs full request bodies (card numbers) at debug level, to the ``stripe`` logger and,
    with ``STRIPE_LOG=debug``, straight to stderr; at info level it logs Stripe's error messages, which
    can echo parameter values. So ``stripe.log`` is lowered from ``debug`` to ``info`` and the ``stripe``
    logger is raised to WARNING (the SDK logs nothing above info). PCI DSS req. 3.3/10: no card data
    in logs.
    """
    if getattr(stripe, "log", None) == "debug":
        stripe.log = "info"
    sdk_logger = logging.getLogger("stripe")
    if sdk_logger.getEffectiveLevel() < logging.WARNING:
        sdk_logger.setLevel(logging.WARNING)


def result_from_exception(exc: stripe.StripeError) -> GatewayResult:
    """Maps a stripe SDK exception to a result (see the module docstring's table). Never raises."""
    if isinstance(exc, stripe.CardError):
        body = exc.json_body if isinstance(exc.json_body, dict) else {}
        error = body.get("error") if isinstance(body.get("error"), dict) else {}
        if not error:  # no body: rely on the exception's own fields
            error = {"code": exc.code, "decline_code": getattr(exc.error, "decline_code", None)
                     if exc.error is not None else None}
        return tx.result_from_card_error(error)
    if isinstance(exc, (stripe.APIConnectionError, stripe.APIError, stripe.RateLimitError)):
        code = {stripe.APIConnectionError: "gateway_unreachable", stripe.RateLimitError: "gateway_rate_limited"}
        return GatewayResult(GatewayStatus.UNAVAILABLE, decline_code=code.get(type(exc), "gateway_error"),
                             message=UNAVAILABLE_MESSAGE)
    if isinstance(exc, stripe.AuthenticationError):
        return GatewayResult(GatewayStatus.FAILED, decline_code="gateway_authentication_failed",
                             message=FAILED_MESSAGE)
    if isinstance(exc, stripe.PermissionError):
        return GatewayResult(GatewayStatus.FAILED, decline_code="gateway_permission_denied",
                             message=FAILED_MESSAGE)
    if isinstance(exc, stripe.IdempotencyError):
        return GatewayResult(GatewayStatus.FAILED, decline_code="idempotency_error", message=FAILED_MESSAGE)
    if isinstance(exc, stripe.InvalidRequestError):
        return GatewayResult(GatewayStatus.FAILED, decline_code=exc.code or "invalid_request",
                             message=FAILED_MESSAGE)
    # anything else from the SDK: we cannot tell whether Stripe acted, so the outcome is unknown
    return GatewayResult(GatewayStatus.UNAVAILABLE, decline_code="gateway_error", message=UNAVAILABLE_MESSAGE)


def _log_error(step: str, exc: stripe.StripeError, key: str) -> None:
    log.warning("stripe_call_failed", extra={
        "step": step, "error_class": type(exc).__name__, "http_status": exc.http_status,
        "stripe_request_id": exc.request_id, "code": getattr(exc, "code", None), "idempotency_key": key})


class StripeGateway:
    """Stripe through the official SDK's ``StripeClient`` (never the module-global ``stripe.api_key``).

    ``api_key``: a secret key (``sk_test_…``/``sk_live_…``); ``api_base``: overrides the API address
    (``PAYGATE_STRIPE_API_BASE``, e.g. a local Stripe-compatible server); ``max_network_retries``:
    SDK retries of connection errors/409/5xx, reusing the idempotency key; ``timeout_seconds``: per-HTTP-
    request timeout; ``client``: a ready ``StripeClient`` (the other options are then ignored).
    """

    identifier = "stripe"

    def __init__(self, api_key: str, *, api_base: str | None = None, max_network_retries: int = 2,
                 timeout_seconds: float = 20, client: Any = None):
        _quiet_sdk_debug_logging()
        if client is None:
            client = stripe.StripeClient(
                api_key,
                base_addresses={"api": api_base.rstrip("/")} if api_base else None,
                max_network_retries=max_network_retries,
                http_client=stripe.RequestsClient(timeout=timeout_seconds),
            )
        self.client = client

    def __repr__(self) -> str:
        return "StripeGateway()"

    def authorize(self, request: AuthorizationRequest) -> GatewayResult:
        """Creates a PaymentMethod for the card, then creates and confirms a PaymentIntent.

        Returns APPROVED only when Stripe answered ``succeeded`` (charged) or ``requires_capture``
        (held). Never raises for Stripe errors or transport failures (see the module docstring).
        """
        key = request.idempotency_key
        card = request.card
        card_params: dict[str, Any] = {"number": card.number, "exp_month": card.exp_month,
                                       "exp_year": card.exp_year}
        if card.cvc:
            card_params["cvc"] = card.cvc
        pm_params: dict[str, Any] = {"type": "card", "card": card_params}
        if card.cardholder_name:
            pm_params["billing_details"] = {"name": card.cardholder_name}
        try:
            payment_method = self.client.v1.payment_methods.create(
                params=pm_params, options={"idempotency_key": f"{key}:pm"})
        except stripe.StripeError as exc:
            _log_error("payment_method", exc, key)
            return result_from_exception(exc)

        pi_params: dict[str, Any] = {
            "amount": int(request.amount),
            "currency": request.currency.lower(),
            "payment_method": payment_method.id,
            "confirm": True,
            "capture_method": "automatic" if request.capture else "manual",
            "payment_method_types": ["card"],
            "metadata": {**request.metadata, tx.METADATA_KEY: key},
            "expand": ["latest_charge"],
        }
        if request.description:
            pi_params["description"] = request.description
        try:
            intent = self.client.v1.payment_intents.create(params=pi_params, options={"idempotency_key": key})
        except stripe.StripeError as exc:
            _log_error("payment_intent", exc, key)
            result = result_from_exception(exc)
            if result.gateway_token is None and result.status is not GatewayStatus.FAILED:
                result = _with_token(result, payment_method.id)
            return result
        result = tx.result_from_payment_intent(intent.to_dict())
        if result.gateway_token is None:
            result = _with_token(result, payment_method.id)
        return result

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """Finds the PaymentIntent created for ``idempotency_key`` through Stripe Search.

        Returns the result of the newest match, None when none exists, or UNAVAILABLE when Stripe
        cannot be asked (any SDK error: an unreadable answer must never look like "no payment").
        Stripe documents Search as eventually consistent (new objects can take up to about a minute to
        appear; docs.stripe.com/search), so callers should reconcile only after that delay.
        """
        try:
            found = self.client.v1.payment_intents.search(
                params={"query": tx.search_query_for_key(idempotency_key), "expand": ["data.latest_charge"]})
        except stripe.StripeError as exc:
            _log_error("lookup", exc, idempotency_key)
            return GatewayResult(GatewayStatus.UNAVAILABLE, decline_code="gateway_unreachable",
                                 message=UNAVAILABLE_MESSAGE)
        items = found.to_dict().get("data") or []
        newest = tx.newest_payment_intent([i for i in items if isinstance(i, dict)])
        return tx.result_from_payment_intent(newest) if newest is not None else None


def _with_token(result: GatewayResult, token: str) -> GatewayResult:
    return replace(result, gateway_token=token)
