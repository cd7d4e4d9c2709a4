"""Pure money rules: amounts from Genesys strings, refund identity, payment status after refunds, how long an
authorization can be captured, and the sandbox gateway's capture / void / refund / dispute behaviour."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from kernel.clock import FrozenClock
from kernel.money import parse_minor_units
from payments.refunds import dedupe_key
from payments.states import PaymentStatus, status_after_refunds
from tokenizer.cards import Card, authorization_validity
from tokenizer.gateways.base import (AuthorizationRequest, CaptureRequest, GatewayStatus, RefundRequest, RefundStatus,
                                     SavedCardChargeRequest, VoidRequest)
from tokenizer.gateways.sandbox import SandboxGateway, WebhookQueue

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("value, expected", [(2500, 2500), ("2500", 2500), ("1", 1), (10**12, 10**12)])
def test_amounts_are_integers_or_digit_strings(value, expected):
    assert parse_minor_units(value) == expected


@pytest.mark.parametrize("value", [0, "0", -5, "-5", "12.50", 12.5, True, False, "", " 12", "12 ", "１２", "1e3",
                                   None, [], {}, 10**12 + 1, "99999999999999"])
def test_anything_else_is_not_an_amount(value):
    with pytest.raises(ValueError):
        parse_minor_units(value)


def test_a_disposition_refund_is_identified_by_four_values_with_absent_equal_to_null():
    base = dedupe_key("pay_1", "REFUND", None, None)
    assert base == dedupe_key("pay_1", "REFUND", "", "")
    assert len({base, dedupe_key("pay_2", "REFUND", None, None), dedupe_key("pay_1", "REFUND_2", None, None),
                dedupe_key("pay_1", "REFUND", "conv-1", None), dedupe_key("pay_1", "REFUND", None, "INV-1")}) == 5


@pytest.mark.parametrize("captured, refunded, status", [
    (2500, 0, PaymentStatus.CAPTURED), (2500, 1, PaymentStatus.PARTIALLY_REFUNDED),
    (2500, 2499, PaymentStatus.PARTIALLY_REFUNDED), (2500, 2500, PaymentStatus.REFUNDED)])
def test_status_follows_succeeded_refunds(captured, refunded, status):
    assert status_after_refunds(captured, refunded) is status


def test_authorization_validity_by_network_and_initiator():
    assert authorization_validity("visa", "customer") == timedelta(days=7)
    assert authorization_validity("visa", "merchant") == timedelta(days=4, hours=18)
    assert authorization_validity("mastercard", "merchant") == timedelta(days=7)
    assert authorization_validity("jcb", "customer") == timedelta(days=7)


# -- the sandbox gateway's operations --------------------------------------------------------------------
def gateway(**kw):
    return SandboxGateway(clock=FrozenClock(NOW), webhooks=WebhookQueue(), **kw)


def authorize(gw, number="4242424242424242", key="ps_1:1:authorize", capture=False, amount=2500):
    return gw.authorize(AuthorizationRequest(amount=amount, currency="USD", card=Card(number, 12, 2030, "123"),
                                             idempotency_key=key, capture=capture))


def test_a_hold_reports_capture_before_and_saves_the_card():
    result = authorize(gateway())
    assert result.status is GatewayStatus.APPROVED and result.amount == 2500 and result.currency == "USD"
    assert result.capture_before == NOW + timedelta(days=7)
    assert result.gateway_token.startswith("pm_sbx_") and result.gateway_customer.startswith("cus_sbx_")
    assert result.request_id.startswith("req_sbx_")


def test_partial_capture_releases_the_rest_and_a_second_capture_is_refused():
    gw = gateway()
    ref = authorize(gw).reference
    assert gw.capture(CaptureRequest(ref, "pay_1:capture", 3000)).error_code == "amount_too_large"
    done = gw.capture(CaptureRequest(ref, "pay_1:capture", 1500))
    assert (done.status, done.amount, done.currency, done.payment_status) == (GatewayStatus.APPROVED, 1500, "USD",
                                                                              "succeeded")
    replayed = gw.capture(CaptureRequest(ref, "pay_1:capture", 1500))  # same key: the first answer
    assert replayed == done and replayed.status is GatewayStatus.APPROVED
    again = gw.capture(CaptureRequest(ref, "pay_1:capture-2", None))
    assert (again.status, again.error_code) == (GatewayStatus.FAILED, "payment_intent_unexpected_state")
    assert gw.void(VoidRequest(ref, "pay_1:void")).error_code == "payment_intent_unexpected_state"


def test_void_releases_the_hold_once():
    gw = gateway()
    ref = authorize(gw).reference
    voided = gw.void(VoidRequest(ref, "pay_1:void", "requested_by_customer"))
    assert (voided.status, voided.amount, voided.payment_status) == (GatewayStatus.APPROVED, 2500, "canceled")
    assert gw.capture(CaptureRequest(ref, "pay_1:capture")).error_code == "payment_intent_unexpected_state"


def test_refunds_never_exceed_what_was_received():
    gw = gateway()
    ref = authorize(gw, capture=True).reference
    first = gw.refund(RefundRequest(ref, "re_1:1", 2000, "USD"))
    assert (first.status, first.refund_status, first.amount) == (GatewayStatus.APPROVED, RefundStatus.SUCCEEDED, 2000)
    assert gw.refund(RefundRequest(ref, "re_1:1", 2000, "USD")).reference == first.reference  # replayed
    assert gw.refund(RefundRequest(ref, "re_2:1", 501, "USD")).failure_code == "amount_too_large"
    assert gw.refund(RefundRequest(ref, "re_3:1", 500, "USD")).refund_status is RefundStatus.SUCCEEDED
    assert gw.refund(RefundRequest(ref, "re_4:1", 1, "USD")).failure_code == "charge_already_refunded"
    assert gw.retrieve_refund(first.reference).amount == 2000


def test_refund_fail_card_succeeds_then_fails_by_webhook():
    gw = gateway()
    ref = authorize(gw, number="4000000000005126", capture=True).reference
    refund = gw.refund(RefundRequest(ref, "re_1:1", 2500, "USD", metadata={"paygate_refund_id": "re_1"}))
    assert refund.refund_status is RefundStatus.SUCCEEDED  # as Stripe: created succeeded...
    (body,) = gw.webhooks.take_due(NOW.timestamp())
    event = json.loads(body)
    assert event["type"] == "charge.refund.updated" and event["data"]["object"]["status"] == "failed"
    assert event["data"]["object"]["failure_reason"] == "expired_or_canceled_card"
    assert event["data"]["object"]["metadata"] == {"paygate_refund_id": "re_1"}
    assert gw.retrieve_refund(refund.reference).refund_status is RefundStatus.FAILED  # ...then failed
    assert gw.refund(RefundRequest(ref, "re_1:2", 2500, "USD")).status is GatewayStatus.APPROVED  # money came back


def test_dispute_card_is_disputed_after_the_delay_of_business_time():
    clock = FrozenClock(NOW)
    gw = SandboxGateway(clock=clock, webhooks=WebhookQueue(), dispute_delay_seconds=5)
    ref = authorize(gw, number="4000000000000259", capture=True).reference
    assert gw.webhooks.take_due(NOW.timestamp() + 4) == []
    (body,) = gw.webhooks.take_due(NOW.timestamp() + 5)
    event = json.loads(body)
    dispute = event["data"]["object"]
    assert event["type"] == "charge.dispute.created" and dispute["payment_intent"] == ref
    assert (dispute["reason"], dispute["status"], dispute["amount"]) == ("fraudulent", "needs_response", 2500)
    closed = json.loads(gw.close_dispute(dispute["id"], "won"))
    assert closed["type"] == "charge.dispute.closed" and closed["data"]["object"]["status"] == "won"
    assert gw.retrieve_dispute(dispute["id"]).status == "won"


def test_a_held_dispute_card_is_disputed_only_once_captured():
    gw = gateway()
    ref = authorize(gw, number="4000000000000259", capture=False).reference
    assert gw.webhooks.pending() == 0
    gw.capture(CaptureRequest(ref, "pay_1:capture"))
    assert gw.webhooks.pending() == 1


def test_saved_card_charges_are_merchant_initiated():
    gw = gateway()
    cit = authorize(gw, capture=True)
    mit = gw.charge_saved_card(SavedCardChargeRequest(900, "USD", cit.gateway_token, cit.gateway_customer, "mit:1"))
    assert (mit.status, mit.amount) == (GatewayStatus.APPROVED, 900) and mit.reference != cit.reference
    held = gw.charge_saved_card(SavedCardChargeRequest(900, "USD", cit.gateway_token, None, "mit:2", capture=False))
    assert held.capture_before == NOW + timedelta(days=4, hours=18)  # Visa merchant-initiated
    unknown = gw.charge_saved_card(SavedCardChargeRequest(900, "USD", "pm_sbx_nope", None, "mit:3"))
    assert (unknown.status, unknown.decline_code) == (GatewayStatus.FAILED, "resource_missing")
    auth = authorize(gw, number="4000002760003184", key="ps_2:1:authorize", capture=True)
    needs = gw.charge_saved_card(SavedCardChargeRequest(900, "USD", auth.gateway_token, None, "mit:4"))
    assert (needs.status, needs.decline_code) == (GatewayStatus.DECLINED, "authentication_required")


def test_injected_faults_lose_the_answer_before_or_after_the_work():
    gw = gateway()
    ref = authorize(gw).reference
    gw.inject_fault("capture", "timeout")
    assert gw.capture(CaptureRequest(ref, "pay_1:capture")).status is GatewayStatus.UNAVAILABLE
    gw.inject_fault("capture", "lost")
    assert gw.capture(CaptureRequest(ref, "pay_1:capture")).status is GatewayStatus.UNAVAILABLE  # done, answer lost
    assert gw.capture(CaptureRequest(ref, "pay_1:capture")).amount == 2500  # the retry reads the first result
    with pytest.raises(ValueError):
        gw.inject_fault("teleport")


def test_callback_urls_every_object_may_name():
    from payments.events import callback_url_allowed

    assert callback_url_allowed("https://billing.example/cb", production=True)
    assert callback_url_allowed("http://127.0.0.1:9000/cb", production=True)
    assert not callback_url_allowed("http://billing.example/cb", production=True)
    assert callback_url_allowed("http://billing.example/cb", production=False)
    assert not callback_url_allowed("ftp://billing.example/cb", production=False)
    assert not callback_url_allowed("/relative", production=False)
