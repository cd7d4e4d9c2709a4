"""The pure Stripe → result mapping of tokenizer.gateways.stripe_transform for capture, void, refunds,
disputes and the fields an authorization result carries (plain dicts, no network)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tokenizer.gateways import stripe_transform as tx
from tokenizer.gateways.base import GatewayStatus, RefundStatus

A, D, F, U = GatewayStatus.APPROVED, GatewayStatus.DECLINED, GatewayStatus.FAILED, GatewayStatus.UNAVAILABLE
T = 1_800_000_000


def _pi(status, **kw):
    return {"id": "pi_1", "object": "payment_intent", "status": status, "payment_method": "pm_1", "amount": 2500,
            "currency": "usd", **kw}


def test_hold_result_carries_amount_currency_customer_and_capture_before():
    charge = {"id": "ch_1", "status": "succeeded", "payment_method_details": {"card": {"capture_before": T}}}
    result = tx.result_from_payment_intent(_pi("requires_capture", customer="cus_1", latest_charge=charge),
                                           request_id="req_1")
    assert (result.status, result.amount, result.currency, result.gateway_customer, result.request_id) == (
        A, 2500, "USD", "cus_1", "req_1")
    assert result.capture_before == datetime.fromtimestamp(T, tz=timezone.utc)


def test_captured_result_has_no_capture_before_and_expanded_customer_is_read():
    charge = {"id": "ch_1", "payment_method_details": {"card": {"capture_before": T}}}
    result = tx.result_from_payment_intent(_pi("succeeded", customer={"id": "cus_2"}, latest_charge=charge))
    assert (result.capture_before, result.gateway_customer) == (None, "cus_2")


def test_declined_result_has_no_amount():
    result = tx.result_from_payment_intent(_pi("requires_payment_method", customer="cus_1",
                                               last_payment_error={"code": "card_declined",
                                                                   "decline_code": "insufficient_funds"}))
    assert (result.status, result.amount, result.gateway_customer) == (D, None, "cus_1")


@pytest.mark.parametrize("value, expected", [
    (T, datetime.fromtimestamp(T, tz=timezone.utc)), (0, None), (None, None), ("123", None), (True, None)])
def test_timestamps(value, expected):
    assert tx.timestamp_to_datetime(value) == expected


def test_capture_before_needs_the_expanded_charge():
    assert tx.capture_before_of(_pi("requires_capture", latest_charge="ch_1")) is None
    assert tx.capture_before_of(_pi("requires_capture", latest_charge={"payment_method_details": None})) is None


def test_authentication_required_card_error_is_declined_with_the_intent():
    error = {"type": "card_error", "code": "authentication_required", "decline_code": "authentication_required",
             "payment_intent": _pi("requires_payment_method", customer="cus_1"), "payment_method": {"id": "pm_9"}}
    result = tx.result_from_card_error(error)
    assert (result.status, result.decline_code, result.reference, result.gateway_token, result.gateway_customer) == (
        D, "authentication_required", "pi_1", "pm_9", "cus_1")


@pytest.mark.parametrize("status, expected, code", [
    ("succeeded", A, None), ("processing", U, "payment_processing"), ("requires_capture", U, "unknown_status")])
def test_capture_result(status, expected, code):
    result = tx.capture_result(_pi(status, amount_received=1000 if status == "succeeded" else 0), request_id="r")
    assert (result.status, result.error_code, result.payment_status, result.request_id) == (expected, code, status,
                                                                                          "r")
    if expected is A:
        assert (result.amount, result.currency, result.reference) == (1000, "USD", "pi_1")


def test_capture_result_falls_back_to_the_charge():
    result = tx.capture_result(_pi("succeeded", amount_received=None, latest_charge={"amount_captured": 700}))
    assert result.amount == 700


@pytest.mark.parametrize("intent, released", [
    (_pi("canceled", latest_charge={"status": "succeeded", "amount": 2500, "amount_captured": 0}), 2500),
    (_pi("canceled", latest_charge={"status": "failed", "amount": 2500, "amount_captured": 0}), 0),
    (_pi("canceled", latest_charge="ch_1", amount_received=0), 2500),
    (_pi("canceled", latest_charge=None), 0),
])
def test_void_result_reports_what_was_released(intent, released):
    result = tx.void_result(intent)
    assert (result.status, result.amount, result.payment_status) == (A, released, "canceled")


def test_void_result_of_another_status_is_unavailable():
    assert tx.void_result(_pi("requires_capture")).status is U


@pytest.mark.parametrize("status, expected", [("succeeded", RefundStatus.SUCCEEDED), ("pending", RefundStatus.PENDING),
                                              ("failed", RefundStatus.FAILED), ("something_new", None)])
def test_refund_result(status, expected):
    refund = {"id": "re_1", "object": "refund", "amount": 500, "currency": "eur", "status": status,
              "failure_reason": "expired_or_canceled_card" if status == "failed" else None}
    result = tx.refund_result(refund, request_id="req_2")
    assert (result.status, result.reference, result.refund_status, result.amount, result.currency) == (
        A, "re_1", expected, 500, "EUR")
    assert result.failure_code == ("expired_or_canceled_card" if status == "failed" else None)


def test_dispute_info():
    dispute = {"id": "dp_1", "object": "dispute", "amount": 2500, "currency": "usd", "charge": "ch_1",
               "payment_intent": "pi_1", "reason": "fraudulent", "status": "needs_response",
               "evidence_details": {"due_by": T}}
    info = tx.dispute_info(dispute)
    assert (info.reference, info.payment_reference, info.amount, info.currency, info.reason, info.status) == (
        "dp_1", "pi_1", 2500, "USD", "fraudulent", "needs_response")
    assert info.evidence_due_by == datetime.fromtimestamp(T, tz=timezone.utc)
    closed = tx.dispute_info({**dispute, "status": "lost", "payment_intent": None, "evidence_details": {"due_by": 0}})
    assert (closed.evidence_due_by, closed.payment_reference, closed.status) == (None, None, "lost")
    assert tx.dispute_info({**dispute, "payment_intent": {"id": "pi_9"}}).payment_reference == "pi_9"
    assert tx.dispute_info({"id": "dp_1"}) is None
