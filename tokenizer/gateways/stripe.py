"""The Stripe adapter (identifier ``"stripe"``): the whole :class:`~tokenizer.gateways.base.Gateway` protocol
through the official SDK's ``stripe.StripeClient``.

Calls (every POST carries an Idempotency-Key derived from the request's ``idempotency_key`` — hashed by
:func:`stripe_idempotency_key` when longer than Stripe's 255 characters; GETs need none,
https://docs.stripe.com/api/idempotent_requests):

* :meth:`StripeGateway.authorize` — up to three POSTs:

  1. ``POST /v1/payment_methods`` (``type=card``, the card, the cardholder name), key ``"<key>:pm"``;
  2. with ``save_card``: ``POST /v1/customers`` (metadata only), key ``"<key>:cus"``;
  3. ``POST /v1/payment_intents`` with ``confirm=true``, key ``"<key>"`` — created **and confirmed in one
     call**, so there is never an unconfirmed intent to clean up and one key covers the money-moving step.
     ``capture_method`` is ``automatic`` (charge) or ``manual`` (hold, for ``capture=False``);
     ``allowed_payment_method_types=["card"]`` (the name the SDK's pinned API version declares for what
     older versions called ``payment_method_types``, https://docs.stripe.com/api/payment_intents/create); with
     ``save_card`` also ``customer=cus_...`` and ``setup_future_usage=off_session``, so Stripe attaches the
     card to the customer for later merchant-initiated charges
     (https://docs.stripe.com/payments/save-during-payment). ``metadata.paygate_idempotency_key`` lets
     :meth:`StripeGateway.lookup` find the intent again; ``expand=["latest_charge"]`` brings Radar's
     ``outcome.risk_level`` and the hold's ``payment_method_details.card.capture_before``. With
     ``request.moto`` (a card keyed by phone) also ``payment_method_options[card][moto]=true``: a
     mail-order/telephone-order payment, exempt from strong customer authentication
     (https://docs.stripe.com/payments/payment-intents/moto; Stripe enables it per account).

* :meth:`StripeGateway.charge_saved_card` — ``POST /v1/payment_intents`` with ``customer``,
  ``payment_method``, ``off_session=true``, ``confirm=true`` (merchant-initiated,
  https://docs.stripe.com/payments/save-and-reuse#charge-saved-payment-method), key ``"<key>"``.
* :meth:`StripeGateway.capture` — ``POST /v1/payment_intents/{id}/capture`` (``amount_to_capture`` when an
  amount is given; https://docs.stripe.com/api/payment_intents/capture).
* :meth:`StripeGateway.void` — ``POST /v1/payment_intents/{id}/cancel`` (``cancellation_reason`` when given;
  https://docs.stripe.com/api/payment_intents/cancel).
* :meth:`StripeGateway.refund` — ``POST /v1/refunds`` (``payment_intent``, ``amount``, ``reason``,
  ``metadata``; https://docs.stripe.com/api/refunds/create).
* :meth:`StripeGateway.retrieve_refund` — ``GET /v1/refunds/{id}``; :meth:`StripeGateway.retrieve_dispute` —
  ``GET /v1/disputes/{id}``; :meth:`StripeGateway.lookup` — ``GET /v1/payment_intents/search``.

With ``max_network_retries`` the SDK retries connection errors, 409 and 5xx with the same Idempotency-Key,
and Stripe answers a repeated key with the first result (https://docs.stripe.com/error-low-level,
https://docs.stripe.com/idempotency), so a retry never moves money twice. The mapping of answers to results is
in :mod:`tokenizer.gateways.stripe_transform`; exceptions (https://docs.stripe.com/api/errors) map as:

* ``CardError`` with a code → DECLINED with ``decline_code or code`` (BLOCKED, risk ``highest``, for
  Radar/fraud blocks); an off-session charge that needs authentication is DECLINED
  ``authentication_required``;
* ``CardError`` without a code (Stripe's HTTP 402 refusal of raw card numbers) → FAILED
  ``raw_card_data_not_enabled``;
* ``AuthenticationError`` / ``PermissionError`` → FAILED ``gateway_authentication_failed`` /
  ``gateway_permission_denied``; ``IdempotencyError`` → FAILED ``idempotency_error``;
  ``InvalidRequestError`` → FAILED with ``e.code`` (or ``invalid_request``): e.g.
  ``payment_intent_unexpected_state`` (capture of something not ``requires_capture``),
  ``charge_already_refunded``, ``amount_too_large``, ``resource_missing``;
* ``APIConnectionError`` (timeouts included) → UNAVAILABLE ``gateway_unreachable``; ``RateLimitError`` →
  UNAVAILABLE ``gateway_rate_limited``; ``APIError`` (5xx, or 409 once retries ran out) and any other SDK
  error → UNAVAILABLE ``gateway_error``: the outcome is unknown; authorizations are reconciled with
  :meth:`StripeGateway.lookup`, captures, voids and refunds by calling again with the same key.

For :class:`~tokenizer.gateways.base.OperationResult` and :class:`~tokenizer.gateways.base.RefundResult` the
code goes to ``error_code`` / ``failure_code`` and a card-level refusal is FAILED. Every result carries
Stripe's request id (``Request-Id``; ``last_response.request_id`` of the returned object,
``request_id`` of an exception) when Stripe answered.

Real Stripe refuses raw card numbers unless the account has raw-card-data access (PCI DSS SAQ D;
https://support.stripe.com/questions/enabling-access-to-raw-card-data-apis); that answer becomes FAILED,
never a decline.

PCI: card data only ever travels in the SDK's request body. Results and log lines carry error class,
HTTP status, Stripe's request id and codes — never Stripe's free-text messages (they can echo
parameter values) and never the card. :func:`_quiet_sdk_debug_logging` keeps the SDK from logging
request bodies.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import replace
from typing import Any

import stripe

from tokenizer.declines import FAILED_MESSAGE, UNAVAILABLE_MESSAGE
from tokenizer.gateways import stripe_transform as tx
from tokenizer.gateways.base import (
    AuthorizationRequest,
    CaptureRequest,
    DisputeInfo,
    GatewayResult,
    GatewayStatus,
    OperationResult,
    RefundRequest,
    RefundResult,
    SavedCardChargeRequest,
    VoidRequest,
)

__all__ = ["MAX_IDEMPOTENCY_KEY_LENGTH", "StripeGateway", "operation_result_from_exception",
           "refund_result_from_exception", "result_from_exception", "stripe_idempotency_key"]

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


def _result_without_request_id(exc: stripe.StripeError) -> GatewayResult:
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


def result_from_exception(exc: stripe.StripeError) -> GatewayResult:
    """Maps a stripe SDK exception to an authorization result (see the module docstring's table), with
    Stripe's request id when Stripe answered. Never raises."""
    return replace(_result_without_request_id(exc), request_id=_exc_request_id(exc))


def _status_and_code(exc: stripe.StripeError) -> tuple[GatewayStatus, str]:
    """(status, code) of a capture/void/refund failure: a card-level refusal is FAILED, not DECLINED."""
    result = _result_without_request_id(exc)
    status = GatewayStatus.UNAVAILABLE if result.status is GatewayStatus.UNAVAILABLE else GatewayStatus.FAILED
    return status, result.decline_code or ("gateway_error" if status is GatewayStatus.UNAVAILABLE
                                           else "invalid_request")


def operation_result_from_exception(exc: stripe.StripeError, reference: str | None = None) -> OperationResult:
    """Maps an SDK exception of a capture or void to an :class:`OperationResult`: FAILED with Stripe's
    ``error_code`` (e.g. ``payment_intent_unexpected_state``) for a definite refusal, UNAVAILABLE
    (``gateway_unreachable`` | ``gateway_rate_limited`` | ``gateway_error``) when the outcome is unknown.
    Never raises."""
    status, code = _status_and_code(exc)
    return OperationResult(status, reference=reference, error_code=code, request_id=_exc_request_id(exc))


def refund_result_from_exception(exc: stripe.StripeError) -> RefundResult:
    """Maps an SDK exception of a refund call to a :class:`RefundResult`: FAILED with ``failure_code`` =
    Stripe's error code (``charge_already_refunded``, ``amount_too_large``, ``resource_missing``, ...) or
    UNAVAILABLE when the outcome is unknown. Never raises."""
    status, code = _status_and_code(exc)
    return RefundResult(status, failure_code=code, request_id=_exc_request_id(exc))


MAX_IDEMPOTENCY_KEY_LENGTH = 255
"""Stripe's limit for an Idempotency-Key (https://docs.stripe.com/api/idempotent_requests)."""


def stripe_idempotency_key(key: str) -> str:
    """The Idempotency-Key header value for paygate's ``key``: the key itself when it is at most 255
    printable ASCII characters (Stripe's limit, https://docs.stripe.com/api/idempotent_requests), otherwise
    ``"paygate-sha256-" + hex SHA-256 of its UTF-8 bytes`` — deterministic, so a retry still reuses it. The
    full key always stays in the objects' metadata (``paygate_idempotency_key``) for :meth:`StripeGateway.lookup`.
    """
    if len(key) <= MAX_IDEMPOTENCY_KEY_LENGTH and key.isascii() and key.isprintable():
        return key
    return "paygate-sha256-" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _options(key: str) -> dict[str, str]:
    return {"idempotency_key": stripe_idempotency_key(key)}


def _exc_request_id(exc: stripe.StripeError) -> str | None:
    request_id = getattr(exc, "request_id", None)
    return request_id if isinstance(request_id, str) and request_id else None


def _request_id(obj: Any) -> str | None:
    """Stripe's ``Request-Id`` of the HTTP answer that produced ``obj`` (a StripeObject), or None."""
    request_id = getattr(getattr(obj, "last_response", None), "request_id", None)
    return request_id if isinstance(request_id, str) and request_id else None


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

    No method raises for Stripe's answers or transport failures: they are results (module docstring).
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

    # -- customer-initiated ----------------------------------------------------------------------------
    def authorize(self, request: AuthorizationRequest) -> GatewayResult:
        """Creates a PaymentMethod for the card, a Customer when ``request.save_card``, then creates and
        confirms a PaymentIntent (customer-initiated; ``capture=False`` places a hold).

        Returns APPROVED only when Stripe answered ``succeeded`` (charged) or ``requires_capture`` (held),
        with ``gateway_token`` (``pm_...``), ``gateway_customer`` (``cus_...``, when saved), ``amount``,
        ``currency`` (upper case), ``capture_before`` for a hold and ``request_id``. Declines are DECLINED /
        BLOCKED with Stripe's code. Never raises for Stripe errors or transport failures (module docstring).
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
                params=pm_params, options=_options(f"{key}:pm"))
        except stripe.StripeError as exc:
            _log_error("payment_method", exc, key)
            return result_from_exception(exc)

        customer_id: str | None = None
        if request.save_card:
            try:
                customer = self.client.v1.customers.create(
                    params={"metadata": {**request.metadata, tx.METADATA_KEY: key}},
                    options=_options(f"{key}:cus"))
            except stripe.StripeError as exc:
                _log_error("customer", exc, key)
                return _with_ids(result_from_exception(exc), payment_method.id, None)
            customer_id = customer.id

        pi_params: dict[str, Any] = {
            "amount": int(request.amount),
            "currency": request.currency.lower(),
            "payment_method": payment_method.id,
            "confirm": True,
            "capture_method": "automatic" if request.capture else "manual",
            "allowed_payment_method_types": ["card"],
            "metadata": {**request.metadata, tx.METADATA_KEY: key},
            "expand": ["latest_charge"],
        }
        if customer_id:
            pi_params["customer"] = customer_id
            pi_params["setup_future_usage"] = "off_session"
        if request.description:
            pi_params["description"] = request.description
        pi_params.update(tx.moto_params(request.moto))
        return self._create_intent(pi_params, key, payment_method.id, customer_id)

    def lookup(self, idempotency_key: str) -> GatewayResult | None:
        """Finds the PaymentIntent created for ``idempotency_key`` (by :meth:`authorize` or
        :meth:`charge_saved_card`) through Stripe Search on its metadata.

        Returns the result of the newest match, None when none exists, or UNAVAILABLE when Stripe
        cannot be asked (any SDK error: an unreadable answer must never look like "no payment").
        Stripe documents Search as eventually consistent (new objects can take up to about a minute to
        appear; https://docs.stripe.com/search), so callers should reconcile only after that delay.
        """
        try:
            found = self.client.v1.payment_intents.search(
                params={"query": tx.search_query_for_key(idempotency_key), "expand": ["data.latest_charge"]})
        except stripe.StripeError as exc:
            _log_error("lookup", exc, idempotency_key)
            return GatewayResult(GatewayStatus.UNAVAILABLE, decline_code="gateway_unreachable",
                                 message=UNAVAILABLE_MESSAGE, request_id=_exc_request_id(exc))
        items = found.to_dict().get("data") or []
        newest = tx.newest_payment_intent([i for i in items if isinstance(i, dict)])
        if newest is None:
            return None
        return tx.result_from_payment_intent(newest, request_id=_request_id(found))

    # -- merchant-initiated ----------------------------------------------------------------------------
    def charge_saved_card(self, request: SavedCardChargeRequest) -> GatewayResult:
        """Charges (or, with ``capture=False``, holds) a card saved by an earlier :meth:`authorize`:
        ``POST /v1/payment_intents`` with ``customer``, ``payment_method``, ``off_session=true``,
        ``confirm=true`` (https://docs.stripe.com/payments/save-and-reuse#charge-saved-payment-method).

        Same results as :meth:`authorize`. A card whose issuer wants the customer present comes back as an
        HTTP 402 card error ``authentication_required`` → DECLINED ``authentication_required`` (the intent
        stays ``requires_payment_method``; nothing moved). Never raises.
        """
        key = request.idempotency_key
        params: dict[str, Any] = {
            "amount": int(request.amount),
            "currency": request.currency.lower(),
            "payment_method": request.gateway_token,
            "off_session": True,
            "confirm": True,
            "capture_method": "automatic" if request.capture else "manual",
            "allowed_payment_method_types": ["card"],
            "metadata": {**request.metadata, tx.METADATA_KEY: key},
            "expand": ["latest_charge"],
        }
        if request.gateway_customer:
            params["customer"] = request.gateway_customer
        if request.description:
            params["description"] = request.description
        return self._create_intent(params, key, request.gateway_token, request.gateway_customer)

    def _create_intent(self, params: dict[str, Any], key: str, token: str,
                       customer_id: str | None) -> GatewayResult:
        try:
            intent = self.client.v1.payment_intents.create(params=params, options=_options(key))
        except stripe.StripeError as exc:
            _log_error("payment_intent", exc, key)
            return _with_ids(result_from_exception(exc), token, customer_id)
        result = tx.result_from_payment_intent(intent.to_dict(), request_id=_request_id(intent))
        return _with_ids(result, token, customer_id)

    # -- after the authorization -----------------------------------------------------------------------
    def capture(self, request: CaptureRequest) -> OperationResult:
        """Captures ``request.amount`` minor units (None: all of ``amount_capturable``) of the hold
        ``request.reference`` (``pi_...``); Stripe releases the rest
        (https://docs.stripe.com/api/payment_intents/capture).

        APPROVED with ``amount`` = captured and ``payment_status`` ``succeeded``; FAILED with ``error_code``
        ``payment_intent_unexpected_state`` when the intent is not ``requires_capture`` (already captured,
        canceled, lapsed) or ``amount_too_large`` above the capturable amount; UNAVAILABLE on transport
        errors/5xx (call again with the same key). Never raises.
        """
        params: dict[str, Any] = {"expand": ["latest_charge"]}
        if request.amount is not None:
            params["amount_to_capture"] = int(request.amount)
        try:
            intent = self.client.v1.payment_intents.capture(
                request.reference, params=params, options=_options(request.idempotency_key))
        except stripe.StripeError as exc:
            _log_error("capture", exc, request.idempotency_key)
            return operation_result_from_exception(exc, request.reference)
        return tx.capture_result(intent.to_dict(), request_id=_request_id(intent))

    def void(self, request: VoidRequest) -> OperationResult:
        """Cancels the PaymentIntent ``request.reference``, releasing its hold
        (https://docs.stripe.com/api/payment_intents/cancel; ``cancellation_reason`` = ``request.reason``
        when given: ``requested_by_customer`` | ``abandoned`` | ``duplicate`` | ``fraudulent``).

        APPROVED with ``amount`` = the minor units released and ``payment_status`` ``canceled``; FAILED
        ``payment_intent_unexpected_state`` when Stripe cannot cancel it (e.g. already ``succeeded`` or
        ``canceled``); UNAVAILABLE on transport errors/5xx. Never raises.
        """
        params: dict[str, Any] = {"expand": ["latest_charge"]}
        if request.reason:
            params["cancellation_reason"] = request.reason
        try:
            intent = self.client.v1.payment_intents.cancel(
                request.reference, params=params, options=_options(request.idempotency_key))
        except stripe.StripeError as exc:
            _log_error("void", exc, request.idempotency_key)
            return operation_result_from_exception(exc, request.reference)
        return tx.void_result(intent.to_dict(), request_id=_request_id(intent))

    def refund(self, request: RefundRequest) -> RefundResult:
        """Refunds ``request.amount`` minor units of the captured PaymentIntent ``request.reference``
        (https://docs.stripe.com/api/refunds/create; ``reason`` ``requested_by_customer`` | ``duplicate`` |
        ``fraudulent`` when given; ``metadata`` plus ``paygate_idempotency_key``).

        APPROVED with ``refund_status`` (Stripe's refund ``status``; a ``succeeded`` refund can still fail
        later, reported by webhook) and ``failure_code`` = ``failure_reason``; FAILED with ``failure_code`` =
        Stripe's error code when it refuses (``charge_already_refunded``, ``amount_too_large``,
        ``charge_disputed``, ...); UNAVAILABLE on transport errors/5xx. ``request.currency`` is not sent
        (Stripe refunds in the payment's currency). Never raises.
        """
        params: dict[str, Any] = {
            "payment_intent": request.reference,
            "amount": int(request.amount),
            "metadata": {**request.metadata, tx.METADATA_KEY: request.idempotency_key},
        }
        if request.reason:
            params["reason"] = request.reason
        try:
            refund = self.client.v1.refunds.create(params=params,
                                                   options=_options(request.idempotency_key))
        except stripe.StripeError as exc:
            _log_error("refund", exc, request.idempotency_key)
            return refund_result_from_exception(exc)
        return tx.refund_result(refund.to_dict(), request_id=_request_id(refund))

    def retrieve_refund(self, reference: str) -> RefundResult:
        """The refund ``reference`` (``re_...``) as Stripe has it now (``GET /v1/refunds/{id}``):
        APPROVED with ``refund_status``/``failure_code``, FAILED ``resource_missing`` when Stripe does not
        know it, UNAVAILABLE when it cannot be asked. Never raises."""
        try:
            refund = self.client.v1.refunds.retrieve(reference)
        except stripe.StripeError as exc:
            _log_error("retrieve_refund", exc, reference)
            return replace(refund_result_from_exception(exc), reference=reference)
        return tx.refund_result(refund.to_dict(), request_id=_request_id(refund))

    def retrieve_dispute(self, reference: str) -> DisputeInfo | None:
        """The dispute ``reference`` (``dp_...``) as Stripe has it now (``GET /v1/disputes/{id}``,
        https://docs.stripe.com/api/disputes/retrieve), or None when Stripe does not know it or cannot be
        asked (logged). Never raises."""
        try:
            dispute = self.client.v1.disputes.retrieve(reference)
        except stripe.StripeError as exc:
            _log_error("retrieve_dispute", exc, reference)
            return None
        return tx.dispute_info(dispute.to_dict())


def _with_ids(result: GatewayResult, token: str | None, customer: str | None) -> GatewayResult:
    """Fills the payment method and customer paygate sent when Stripe's answer did not name them (never on
    FAILED results: nothing was attempted with them)."""
    if result.status is GatewayStatus.FAILED:
        return result
    changes: dict[str, Any] = {}
    if result.gateway_token is None and token:
        changes["gateway_token"] = token
    if result.gateway_customer is None and customer:
        changes["gateway_customer"] = customer
    return replace(result, **changes) if changes else result
