"""StripeGateway through the real stripe SDK against the local Stripe-compatible server (tests/fakes):
authorizations (saving the card), holds, capture, void, refunds, disputes, merchant-initiated charges, the
fake's SDK-derived parameter checks, and webhook signatures (tokenizer.gateways.stripe_webhooks).

Also covers the pure mapping in tokenizer.gateways.stripe_transform with plain dicts.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import replace
from datetime import datetime, timezone

import httpx
import pytest
import stripe

from kernel.errors import PaygateError
from tests.fakes import stripe_server as stripe_fake
from tests.fakes.stripe_server import (  # noqa: F401 (stripe_server is a fixture)
    FakeStripeServer,
    params_class_for,
    parse_stripe_form,
    stripe_server,
)
from tokenizer.cards import Card
from tokenizer.gateways import stripe_transform as tx
from tokenizer.gateways.base import (
    AuthorizationRequest,
    CaptureRequest,
    DisputeInfo,
    GatewayStatus,
    RefundRequest,
    RefundStatus,
    SavedCardChargeRequest,
    VoidRequest,
)
from tokenizer.gateways.stripe import StripeGateway, result_from_exception, stripe_idempotency_key
from tokenizer.gateways.stripe_webhooks import WebhookSignatureError, construct_event, sign_payload

A, D, B, F, U = (GatewayStatus.APPROVED, GatewayStatus.DECLINED, GatewayStatus.BLOCKED, GatewayStatus.FAILED,
                 GatewayStatus.UNAVAILABLE)
KEY = "sk_test_paygate"


def gateway(server, **kw) -> StripeGateway:
    kw.setdefault("timeout_seconds", 1)
    kw.setdefault("max_network_retries", 0)
    return StripeGateway(KEY, api_base=server.url, **kw)


def req(number="4242424242424242", key="ps_1:1:authorize", cvc="123", capture=True, amount=2500, name="Ada Lovelace",
        save_card=True):
    return AuthorizationRequest(amount=amount, currency="USD", idempotency_key=key, capture=capture,
                                card=Card(number, 12, 2030, cvc, name), description="paygate charge INV-1",
                                metadata={"paygate_session_id": "ps_1"}, save_card=save_card)


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError("condition not met before the deadline")


def test_approve_sends_the_documented_requests(stripe_server):
    result = gateway(stripe_server).authorize(req())
    assert result.status is A and result.reference.startswith("pi_") and result.risk_level == "normal"
    assert result.gateway_token.startswith("pm_") and result.decline_code is None
    assert result.gateway_customer.startswith("cus_")
    assert (result.amount, result.currency, result.capture_before) == (2500, "USD", None)
    assert result.request_id and result.request_id.startswith("req_")
    pm_req, cus_req, pi_req = stripe_server.requests
    assert (pm_req["method"], pm_req["path"]) == ("POST", "/v1/payment_methods")
    assert pm_req["form"] == {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
                              "card[exp_year]": "2030", "card[cvc]": "123", "billing_details[name]": "Ada Lovelace"}
    assert pm_req["headers"]["Idempotency-Key"] == "ps_1:1:authorize:pm"
    assert (cus_req["method"], cus_req["path"]) == ("POST", "/v1/customers")
    assert cus_req["form"] == {"metadata[paygate_session_id]": "ps_1",
                               "metadata[paygate_idempotency_key]": "ps_1:1:authorize"}
    assert cus_req["headers"]["Idempotency-Key"] == "ps_1:1:authorize:cus"
    assert (pi_req["method"], pi_req["path"]) == ("POST", "/v1/payment_intents")
    assert pi_req["form"] == {
        "amount": "2500", "currency": "usd", "payment_method": result.gateway_token, "confirm": "true",
        "capture_method": "automatic", "allowed_payment_method_types[0]": "card",
        "metadata[paygate_session_id]": "ps_1", "metadata[paygate_idempotency_key]": "ps_1:1:authorize",
        "description": "paygate charge INV-1", "expand[0]": "latest_charge",
        "customer": result.gateway_customer, "setup_future_usage": "off_session"}
    for r in (pm_req, cus_req, pi_req):
        assert r["headers"]["Stripe-Version"] == stripe.api_version
        assert r["headers"]["Authorization"] == f"Bearer {KEY}"
    assert pi_req["headers"]["Idempotency-Key"] == "ps_1:1:authorize"
    (intent,) = stripe_server.payment_intents.values()
    assert intent["status"] == "succeeded" and intent["id"] == result.reference
    # the card is saved on the customer for merchant-initiated charges
    assert stripe_server.payment_methods[result.gateway_token]["customer"] == result.gateway_customer


def test_without_save_card_no_customer_is_created(stripe_server):
    result = gateway(stripe_server).authorize(req(save_card=False))
    assert result.status is A and result.gateway_customer is None
    assert stripe_server.requests_to("/v1/customers") == []
    form = stripe_server.requests_to("/v1/payment_intents")[0]["form"]
    assert "customer" not in form and "setup_future_usage" not in form


def test_optional_card_fields_are_left_out(stripe_server):
    assert gateway(stripe_server).authorize(req(cvc=None, name=None)).status is A
    form = stripe_server.requests[0]["form"]
    assert "card[cvc]" not in form and "billing_details[name]" not in form


def test_hold_sends_manual_capture(stripe_server):
    result = gateway(stripe_server).authorize(req(capture=False))
    assert result.status is A
    assert stripe_server.requests_to("/v1/payment_intents")[0]["form"]["capture_method"] == "manual"
    assert stripe_server.payment_intents[result.reference]["status"] == "requires_capture"


@pytest.mark.parametrize("number, code", [
    ("4000000000000002", "generic_decline"),
    ("4000000000009995", "insufficient_funds"),
    ("4000000000009987", "lost_card"),
    ("4000000000009979", "stolen_card"),
    ("4000000000006975", "card_velocity_exceeded"),
    ("4000000000000069", "expired_card"),
    ("4000000000000127", "incorrect_cvc"),
    ("4000000000000119", "processing_error"),
])
def test_declines(stripe_server, number, code):
    result = gateway(stripe_server).authorize(req(number))
    assert (result.status, result.decline_code) == (D, code)
    assert result.reference.startswith("pi_") and result.message and number not in result.message
    assert stripe_server.payment_intents[result.reference]["status"] == "requires_payment_method"


def test_invalid_number_is_declined_before_any_intent(stripe_server):
    result = gateway(stripe_server).authorize(req("4242424242424241"))
    assert (result.status, result.decline_code, result.reference) == (D, "incorrect_number", None)
    assert stripe_server.requests_to("/v1/payment_intents") == []


def test_three_d_secure_card_is_declined_authentication_required(stripe_server):
    result = gateway(stripe_server).authorize(req("4000002760003184"))
    assert (result.status, result.decline_code) == (D, "authentication_required")


@pytest.mark.parametrize("number", ["4100000000000019", "4000000000004954"])
def test_radar_block_is_blocked_highest(stripe_server, number):
    result = gateway(stripe_server).authorize(req(number))
    assert (result.status, result.risk_level, result.decline_code) == (B, "highest", "fraudulent")
    assert "fraud" not in result.message.lower() and "radar" not in result.message.lower()


def test_elevated_risk_approves_with_the_risk_level(stripe_server):
    result = gateway(stripe_server).authorize(req("4000000000009235"))
    assert (result.status, result.risk_level) == (A, "elevated")


def test_raw_card_refusal_is_failed(stripe_server):
    stripe_server.refuse_raw_cards(True)
    result = gateway(stripe_server).authorize(req())
    assert (result.status, result.decline_code) == (F, "raw_card_data_not_enabled")
    assert "raw card" in result.message and "4242" not in result.message
    assert stripe_server.requests_to("/v1/payment_intents") == []


def test_bad_api_key_is_failed(stripe_server):
    result = StripeGateway("sk_live_wrong", api_base=stripe_server.url, timeout_seconds=1).authorize(req())
    assert (result.status, result.decline_code) == (F, "gateway_authentication_failed")


def test_500_then_success_is_retried_with_the_same_key(stripe_server):
    stripe_server.fail_next(1, status=500, path="/v1/payment_intents")
    result = gateway(stripe_server, max_network_retries=2).authorize(req(key="ps_r:1:authorize"))
    assert result.status is A
    attempts = stripe_server.requests_to("/v1/payment_intents")
    assert len(attempts) == 2
    assert {a["headers"]["Idempotency-Key"] for a in attempts} == {"ps_r:1:authorize"}
    assert len(stripe_server.payment_intents) == 1


def test_persistent_500_is_unavailable(stripe_server):
    stripe_server.fail_next(10, status=500, path="/v1/payment_intents")
    result = gateway(stripe_server, max_network_retries=1).authorize(req())
    assert (result.status, result.decline_code) == (U, "gateway_error")
    assert len(stripe_server.requests_to("/v1/payment_intents")) == 2  # bounded: 1 try + 1 retry
    assert stripe_server.payment_intents == {}


def test_rate_limit_is_unavailable(stripe_server):
    stripe_server.fail_next(1, status=429)
    assert gateway(stripe_server).authorize(req()).status is U


def test_timeout_is_unavailable_and_lookup_finds_the_charge_later(stripe_server):
    # the server executes the intent, then holds its answer beyond the client's timeout
    stripe_server.delay_next(1, 3.0, path="/v1/payment_intents")
    gw = gateway(stripe_server, timeout_seconds=0.5)
    started = time.monotonic()
    result = gw.authorize(req(key="ps_t:1:authorize"))
    assert result.status is U and not result.approved
    assert time.monotonic() - started < 2.5
    found = wait_for(lambda: gw.lookup("ps_t:1:authorize"))
    assert found.status is A and found.reference in stripe_server.payment_intents


def test_timeout_then_sdk_retry_replays_without_a_second_charge(stripe_server):
    stripe_server.delay_next(1, 3.0, path="/v1/payment_intents")
    result = gateway(stripe_server, timeout_seconds=0.5, max_network_retries=1).authorize(req(key="ps_x:1:authorize"))
    assert result.status is A
    assert len(stripe_server.payment_intents) == 1
    assert len(stripe_server.requests_to("/v1/payment_intents")) == 2


def test_same_key_twice_replays_and_charges_once(stripe_server):
    gw = gateway(stripe_server)
    first = gw.authorize(req(key="ps_d:1:authorize"))
    second = gw.authorize(req(key="ps_d:1:authorize"))
    assert replace(first, request_id=None) == replace(second, request_id=None) and first.status is A
    assert stripe_server.requests_to("/v1/payment_intents")[-1]["headers"]["Idempotency-Key"] == "ps_d:1:authorize"
    assert len(stripe_server.payment_intents) == 1 and len(stripe_server.payment_methods) == 1
    assert len(stripe_server.customers) == 1


def test_same_key_with_other_parameters_is_failed(stripe_server):
    gw = gateway(stripe_server)
    assert gw.authorize(req(key="ps_p:1:authorize")).status is A
    result = gw.authorize(req(key="ps_p:1:authorize", amount=9999))
    assert (result.status, result.decline_code) == (F, "idempotency_error")
    assert len(stripe_server.payment_intents) == 1


def test_lookup_by_key(stripe_server):
    gw = gateway(stripe_server)
    approved = gw.authorize(req(key="ps_l:1:authorize"))
    declined = gw.authorize(req("4000000000009995", key="ps_l:2:authorize"))
    blocked = gw.authorize(req("4100000000000019", key="ps_l:3:authorize"))
    found = gw.lookup("ps_l:1:authorize")
    assert (found.status, found.reference, found.risk_level) == (A, approved.reference, "normal")
    found = gw.lookup("ps_l:2:authorize")
    assert (found.status, found.decline_code, found.reference) == (D, "insufficient_funds", declined.reference)
    found = gw.lookup("ps_l:3:authorize")
    assert (found.status, found.risk_level, found.reference) == (B, "highest", blocked.reference)
    assert gw.lookup("ps_unknown:1:authorize") is None
    search = stripe_server.requests_to("/v1/payment_intents/search", method="GET")[-1]
    assert search["form"]["query"] == "metadata['paygate_idempotency_key']:'ps_unknown:1:authorize'"


def test_lookup_when_stripe_is_down_is_unavailable(stripe_server):
    gw = gateway(stripe_server)
    gw.authorize(req(key="ps_z:1:authorize"))
    stripe_server.fail_next(5, status=503)
    assert gw.lookup("ps_z:1:authorize").status is U


def test_unreachable_server_is_unavailable():
    with FakeStripeServer() as server:
        url = server.url
    result = StripeGateway(KEY, api_base=url, timeout_seconds=0.5, max_network_retries=0).authorize(req())
    assert (result.status, result.decline_code) == (U, "gateway_unreachable")


def test_card_data_never_in_results_or_logs(stripe_server, caplog):
    caplog.set_level("DEBUG")
    gw = gateway(stripe_server)
    results = [gw.authorize(req(n, key=f"k{i}", cvc="987")) for i, n in
               enumerate(["4242424242424242", "4000000000000002", "4100000000000019", "4242424242424241"])]
    held_ = gw.authorize(req("4000000000000259", key="k5", cvc="987", capture=False))
    results += [gw.capture(CaptureRequest(reference=held_.reference, idempotency_key="k6")),
                gw.capture(CaptureRequest(reference=held_.reference, idempotency_key="k7")),
                gw.void(VoidRequest(reference=held_.reference, idempotency_key="k8")),
                gw.refund(RefundRequest(reference=held_.reference, idempotency_key="k10", amount=1, currency="USD")),
                gw.charge_saved_card(SavedCardChargeRequest(amount=100, currency="USD", gateway_customer=None,
                                                            gateway_token=held_.gateway_token, idempotency_key="k11"))]
    stripe_server.refuse_raw_cards(True)
    results.append(gw.authorize(req(key="k9", cvc="987")))
    text = repr(results) + caplog.text + repr(gw)
    for pan in ("4242424242424242", "4000000000000002", "4100000000000019", "4242424242424241"):
        assert pan not in text
    assert not re.search(r"(?<![0-9A-Za-z])987(?![0-9A-Za-z])", text) and "cvc" not in text.lower()
    assert "stripe_call_failed" in caplog.text  # the failures were logged, without card data


# ---- the wire format every POST shares ---------------------------------------------------------------

def assert_stripe_post(record, path, form, key):
    """One recorded request as the SDK sends it: POST, form keys in Stripe's bracket style, our key."""
    assert (record["method"], record["path"]) == ("POST", path)
    assert record["form"] == form
    assert record["headers"]["Idempotency-Key"] == key
    assert record["headers"]["Content-Type"].startswith("application/x-www-form-urlencoded")
    assert record["headers"]["Authorization"] == f"Bearer {KEY}"
    assert record["headers"]["Stripe-Version"] == stripe.api_version


def every_post_had_a_key(server):
    posts = [r for r in server.requests if r["method"] == "POST"]
    assert posts and all(r["headers"].get("Idempotency-Key") for r in posts)


def held(server, gw=None, number="4242424242424242", key="ps_h:1:authorize", amount=2500):
    gw = gw or gateway(server)
    result = gw.authorize(req(number, key=key, capture=False, amount=amount))
    assert result.status is A
    return gw, result


def charged(server, gw=None, number="4242424242424242", key="ps_c:1:authorize", amount=2500):
    gw = gw or gateway(server)
    result = gw.authorize(req(number, key=key, amount=amount))
    assert result.status is A
    return gw, result


# ---- holds: authorize, capture, void ------------------------------------------------------------------

def test_hold_reports_amount_currency_and_capture_before(stripe_server):
    _, result = held(stripe_server)
    charge = stripe_server.charges[stripe_server.payment_intents[result.reference]["latest_charge"]]
    assert (result.amount, result.currency) == (2500, "USD")
    assert result.capture_before == datetime.fromtimestamp(charge["created"] + 7 * 86400, tz=timezone.utc)
    assert result.capture_before.tzinfo is not None


def test_capture_all(stripe_server):
    gw, hold = held(stripe_server)
    done = gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="pay_1:capture"))
    assert (done.status, done.amount, done.currency, done.payment_status) == (A, 2500, "USD", "succeeded")
    assert done.reference == hold.reference and done.request_id.startswith("req_") and done.error_code is None
    (call,) = stripe_server.requests_to(f"/v1/payment_intents/{hold.reference}/capture")
    assert_stripe_post(call, f"/v1/payment_intents/{hold.reference}/capture", {"expand[0]": "latest_charge"},
                       "pay_1:capture")
    every_post_had_a_key(stripe_server)


def test_capture_part_releases_the_rest(stripe_server):
    gw, hold = held(stripe_server)
    done = gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="pay_1:capture", amount=1000))
    assert (done.status, done.amount) == (A, 1000)
    (call,) = stripe_server.requests_to(f"/v1/payment_intents/{hold.reference}/capture")
    assert call["form"] == {"amount_to_capture": "1000", "expand[0]": "latest_charge"}
    pi = stripe_server.payment_intents[hold.reference]
    assert (pi["status"], pi["amount_received"], pi["amount_capturable"]) == ("succeeded", 1000, 0)


def test_capture_twice_is_failed_unexpected_state(stripe_server):
    gw, hold = held(stripe_server)
    assert gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="pay_1:capture")).status is A
    again = gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="pay_1:capture:2"))
    assert (again.status, again.error_code) == (F, "payment_intent_unexpected_state")
    assert again.reference == hold.reference and again.request_id.startswith("req_")


def test_capture_with_the_same_key_replays_the_first_answer(stripe_server):
    gw, hold = held(stripe_server)
    first = gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="pay_1:capture", amount=700))
    second = gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="pay_1:capture", amount=700))
    assert replace(first, request_id=None) == replace(second, request_id=None) and second.amount == 700


def test_capture_more_than_held_is_failed(stripe_server):
    gw, hold = held(stripe_server)
    result = gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="k", amount=2501))
    assert (result.status, result.error_code) == (F, "amount_too_large")
    assert stripe_server.payment_intents[hold.reference]["status"] == "requires_capture"


def test_capture_of_an_unknown_intent_is_failed(stripe_server):
    result = gateway(stripe_server).capture(CaptureRequest(reference="pi_nope", idempotency_key="k"))
    assert (result.status, result.error_code) == (F, "resource_missing")


def test_capture_when_stripe_fails_is_unavailable(stripe_server):
    gw, hold = held(stripe_server)
    stripe_server.fail_next(1, status=500, path=f"/v1/payment_intents/{hold.reference}/capture")
    result = gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="pay_1:capture"))
    assert (result.status, result.error_code) == (U, "gateway_error")
    # the same key later settles it
    assert gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="pay_1:capture")).status is A


def test_capture_when_stripe_is_unreachable_is_unavailable():
    with FakeStripeServer() as server:
        url = server.url
    gw = StripeGateway(KEY, api_base=url, timeout_seconds=0.5, max_network_retries=0)
    assert gw.capture(CaptureRequest(reference="pi_x", idempotency_key="k")).error_code == "gateway_unreachable"
    assert gw.void(VoidRequest(reference="pi_x", idempotency_key="k")).status is U
    assert gw.refund(RefundRequest(reference="pi_x", idempotency_key="k", amount=1, currency="USD")).status is U
    assert gw.retrieve_refund("re_x").status is U
    assert gw.retrieve_dispute("dp_x") is None


def test_void_releases_the_hold(stripe_server):
    gw, hold = held(stripe_server)
    result = gw.void(VoidRequest(reference=hold.reference, idempotency_key="pay_1:void",
                                 reason="requested_by_customer"))
    assert (result.status, result.amount, result.currency, result.payment_status) == (A, 2500, "USD", "canceled")
    (call,) = stripe_server.requests_to(f"/v1/payment_intents/{hold.reference}/cancel")
    assert_stripe_post(call, f"/v1/payment_intents/{hold.reference}/cancel",
                       {"cancellation_reason": "requested_by_customer", "expand[0]": "latest_charge"}, "pay_1:void")
    after = gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="pay_1:capture"))
    assert (after.status, after.error_code) == (F, "payment_intent_unexpected_state")


def test_void_without_reason_sends_none(stripe_server):
    gw, hold = held(stripe_server)
    assert gw.void(VoidRequest(reference=hold.reference, idempotency_key="v")).status is A
    assert stripe_server.requests_to(f"/v1/payment_intents/{hold.reference}/cancel")[0]["form"] == {
        "expand[0]": "latest_charge"}


def test_void_of_a_captured_payment_is_failed(stripe_server):
    gw, paid = charged(stripe_server)
    result = gw.void(VoidRequest(reference=paid.reference, idempotency_key="v"))
    assert (result.status, result.error_code) == (F, "payment_intent_unexpected_state")


def test_a_lapsed_hold_cannot_be_captured(stripe_server):
    gw, hold = held(stripe_server)
    event = stripe_server.expire_hold(hold.reference)
    assert event["type"] == "payment_intent.canceled"
    assert event["data"]["object"]["cancellation_reason"] == "automatic"
    result = gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="c"))
    assert (result.status, result.error_code) == (F, "payment_intent_unexpected_state")


# ---- refunds -------------------------------------------------------------------------------------------

def refund_req(reference, amount, key="re_k:1", reason="requested_by_customer"):
    return RefundRequest(reference=reference, idempotency_key=key, amount=amount, currency="USD", reason=reason,
                         metadata={"paygate_refund_id": "re_local"})


def test_full_refund(stripe_server):
    gw, paid = charged(stripe_server)
    result = gw.refund(refund_req(paid.reference, 2500))
    assert (result.status, result.refund_status, result.amount, result.currency) == (A, RefundStatus.SUCCEEDED,
                                                                                    2500, "USD")
    assert result.reference.startswith("re_") and result.failure_code is None and result.request_id
    (call,) = stripe_server.requests_to("/v1/refunds")
    assert_stripe_post(call, "/v1/refunds", {
        "payment_intent": paid.reference, "amount": "2500", "reason": "requested_by_customer",
        "metadata[paygate_refund_id]": "re_local", "metadata[paygate_idempotency_key]": "re_k:1"}, "re_k:1")
    again = gw.refund(refund_req(paid.reference, 1, key="re_k:2"))
    assert (again.status, again.failure_code) == (F, "charge_already_refunded")


def test_partial_refunds_then_over_refund(stripe_server):
    gw, paid = charged(stripe_server)
    first = gw.refund(refund_req(paid.reference, 1000, key="r1", reason=None))
    assert (first.status, first.amount) == (A, 1000)
    assert "reason" not in stripe_server.requests_to("/v1/refunds")[0]["form"]
    too_much = gw.refund(refund_req(paid.reference, 1501, key="r2"))
    assert (too_much.status, too_much.failure_code) == (F, "amount_too_large")
    rest = gw.refund(refund_req(paid.reference, 1500, key="r3"))
    assert (rest.status, rest.refund_status) == (A, RefundStatus.SUCCEEDED)
    done = gw.refund(refund_req(paid.reference, 1, key="r4"))
    assert (done.status, done.failure_code) == (F, "charge_already_refunded")
    assert len(stripe_server.refunds) == 2


def test_refund_with_the_same_key_refunds_once(stripe_server):
    gw, paid = charged(stripe_server)
    first = gw.refund(refund_req(paid.reference, 500))
    second = gw.refund(refund_req(paid.reference, 500))
    assert first.reference == second.reference and len(stripe_server.refunds) == 1


def test_refund_counts_only_the_captured_amount(stripe_server):
    gw, hold = held(stripe_server)
    refused = gw.refund(refund_req(hold.reference, 100, key="r0"))
    assert (refused.status, refused.failure_code) == (F, "payment_intent_unexpected_state")
    gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="c", amount=1000))
    over = gw.refund(refund_req(hold.reference, 1001, key="r1"))
    assert (over.status, over.failure_code) == (F, "amount_too_large")
    assert gw.refund(refund_req(hold.reference, 1000, key="r2")).status is A


def test_refund_that_fails_later_is_seen_by_retrieve(stripe_server):
    gw, paid = charged(stripe_server, number="4000000000005126")
    created = gw.refund(refund_req(paid.reference, 2500))
    assert (created.status, created.refund_status) == (A, RefundStatus.SUCCEEDED)
    event = stripe_server.fail_refund(created.reference)
    assert event["type"] == "charge.refund.updated" and event["object"] == "event"
    assert event["data"]["object"]["status"] == "failed"
    assert event["data"]["previous_attributes"] == {"status": "succeeded", "failure_reason": None}
    now = gw.retrieve_refund(created.reference)
    assert (now.status, now.refund_status, now.failure_code, now.amount) == (A, RefundStatus.FAILED,
                                                                             "expired_or_canceled_card", 2500)
    assert stripe_server.requests[-1]["method"] == "GET" and stripe_server.requests[-1]["path"] == (
        f"/v1/refunds/{created.reference}")
    # the money is refundable again
    assert gw.refund(refund_req(paid.reference, 2500, key="re_k:retry")).status is A


def test_pending_refund_settles(stripe_server):
    gw, paid = charged(stripe_server, number="4000000000007726")
    created = gw.refund(refund_req(paid.reference, 800))
    assert created.refund_status is RefundStatus.PENDING
    stripe_server.settle_refund(created.reference)
    assert gw.retrieve_refund(created.reference).refund_status is RefundStatus.SUCCEEDED


def test_retrieve_unknown_refund_is_failed(stripe_server):
    result = gateway(stripe_server).retrieve_refund("re_nope")
    assert (result.status, result.failure_code, result.reference) == (F, "resource_missing", "re_nope")


# ---- disputes ------------------------------------------------------------------------------------------

def test_dispute_on_the_0259_card(stripe_server):
    gw, paid = charged(stripe_server, number="4000000000000259")
    raw = stripe_server.dispute_for(paid.reference)
    assert raw is not None and stripe_server.events[-1]["type"] == "charge.dispute.created"
    info = gw.retrieve_dispute(raw["id"])
    assert isinstance(info, DisputeInfo)
    assert (info.reference, info.payment_reference, info.amount, info.currency, info.reason, info.status) == (
        raw["id"], paid.reference, 2500, "USD", "fraudulent", "needs_response")
    assert info.evidence_due_by == datetime.fromtimestamp(raw["evidence_details"]["due_by"], tz=timezone.utc)
    assert stripe_server.requests[-1]["path"] == f"/v1/disputes/{raw['id']}"
    refused = gw.refund(refund_req(paid.reference, 100))
    assert (refused.status, refused.failure_code) == (F, "charge_disputed")
    stripe_server.close_dispute(raw["id"], "lost")
    closed = gw.retrieve_dispute(raw["id"])
    assert (closed.status, closed.evidence_due_by) == ("lost", None)


def test_dispute_of_a_hold_appears_after_capture(stripe_server):
    gw, hold = held(stripe_server, number="4000000000000259")
    assert stripe_server.dispute_for(hold.reference) is None
    gw.capture(CaptureRequest(reference=hold.reference, idempotency_key="c", amount=2000))
    assert stripe_server.dispute_for(hold.reference)["amount"] == 2000


def test_unknown_dispute_is_none(stripe_server):
    assert gateway(stripe_server).retrieve_dispute("dp_nope") is None


# ---- merchant-initiated charges ------------------------------------------------------------------------

def mit(token, customer, key="pay_m:1:charge", capture=True, amount=1200):
    return SavedCardChargeRequest(amount=amount, currency="EUR", gateway_token=token, gateway_customer=customer,
                                  idempotency_key=key, capture=capture, description="renewal",
                                  metadata={"paygate_subscription_id": "sub_1"})


def test_charge_saved_card(stripe_server):
    gw, first = charged(stripe_server)
    result = gw.charge_saved_card(mit(first.gateway_token, first.gateway_customer))
    assert (result.status, result.amount, result.currency) == (A, 1200, "EUR")
    assert (result.gateway_token, result.gateway_customer) == (first.gateway_token, first.gateway_customer)
    assert result.reference != first.reference and result.request_id
    call = stripe_server.requests_to("/v1/payment_intents")[-1]
    assert_stripe_post(call, "/v1/payment_intents", {
        "amount": "1200", "currency": "eur", "payment_method": first.gateway_token,
        "customer": first.gateway_customer, "off_session": "true", "confirm": "true",
        "capture_method": "automatic", "allowed_payment_method_types[0]": "card", "description": "renewal",
        "metadata[paygate_subscription_id]": "sub_1", "metadata[paygate_idempotency_key]": "pay_m:1:charge",
        "expand[0]": "latest_charge"}, "pay_m:1:charge")
    found = gw.lookup("pay_m:1:charge")
    assert (found.status, found.reference) == (A, result.reference)
    every_post_had_a_key(stripe_server)


def test_saved_card_hold_visa_mit_window(stripe_server):
    gw, first = charged(stripe_server)
    result = gw.charge_saved_card(mit(first.gateway_token, first.gateway_customer, capture=False))
    assert result.status is A
    charge = stripe_server.charges[stripe_server.payment_intents[result.reference]["latest_charge"]]
    assert result.capture_before == datetime.fromtimestamp(charge["created"] + 4 * 86400 + 18 * 3600,
                                                           tz=timezone.utc)
    assert stripe_server.requests_to("/v1/payment_intents")[-1]["form"]["capture_method"] == "manual"


def test_saved_card_needing_authentication_is_declined(stripe_server):
    token, customer = stripe_server.saved_card("4000002760003184")
    result = gateway(stripe_server).charge_saved_card(mit(token, customer))
    assert (result.status, result.decline_code) == (D, "authentication_required")
    assert result.reference.startswith("pi_") and result.message and result.request_id
    assert (result.gateway_token, result.gateway_customer) == (token, customer)
    assert stripe_server.payment_intents[result.reference]["status"] == "requires_payment_method"


@pytest.mark.parametrize("number, status", [("4000002500003155", A), ("4000003800000446", A),
                                            ("4000000000000341", D)])
def test_saved_test_cards_off_session(stripe_server, number, status):
    token, customer = stripe_server.saved_card(number)
    assert gateway(stripe_server).charge_saved_card(mit(token, customer)).status is status


def test_a_card_not_saved_cannot_be_charged_again(stripe_server):
    gw, first = charged(stripe_server)
    _, unsaved = charged(stripe_server, key="ps_u:1:authorize", gw=gw)
    plain = gw.authorize(req(key="ps_n:1:authorize", save_card=False))
    result = gw.charge_saved_card(mit(plain.gateway_token, None))
    assert result.status is F
    other = gw.charge_saved_card(mit(first.gateway_token, unsaved.gateway_customer, key="k2"))
    assert other.status is F


# ---- the fake refuses what Stripe refuses (raw HTTP) ---------------------------------------------------

def raw_post(server, path, data, key=None):
    headers = {"Authorization": f"Bearer {KEY}"}
    if key:
        headers["Idempotency-Key"] = key
    return httpx.post(server.url + path, data=data, headers=headers, timeout=5)


GOOD_PI = {"amount": "100", "currency": "usd"}


@pytest.mark.parametrize("path, data, code, param", [
    ("/v1/payment_intents", {**GOOD_PI, "bogus": "1"}, "parameter_unknown", "bogus"),
    ("/v1/payment_intents", {**GOOD_PI, "payment_method_types[0]": "card"}, "parameter_unknown",
     "payment_method_types"),
    ("/v1/payment_methods", {"type": "card", "card[number]": "4242424242424242", "card[colour]": "red"},
     "parameter_unknown", "card[colour]"),
    ("/v1/payment_intents", {**GOOD_PI, "amount": "12.50"}, "parameter_invalid_integer", "amount"),
    ("/v1/payment_intents", {"currency": "usd"}, "parameter_missing", "amount"),
    ("/v1/payment_intents", {**GOOD_PI, "description": ""}, "parameter_invalid_empty", "description"),
    ("/v1/payment_intents", {**GOOD_PI, "capture_method": "sometimes"}, None, "capture_method"),
    ("/v1/payment_intents", {**GOOD_PI, "confirm": "maybe"}, None, "confirm"),
    ("/v1/payment_intents", {**GOOD_PI, "setup_future_usage": "forever"}, None, "setup_future_usage"),
    ("/v1/payment_intents", {**GOOD_PI, "metadata": "x"}, None, "metadata"),
    ("/v1/refunds", {"payment_intent": "pi_1", "reason": "because"}, None, "reason"),
    ("/v1/refunds", {"payment_intent": "pi_1", "amount": "all"}, "parameter_invalid_integer", "amount"),
    ("/v1/payment_intents/pi_1/cancel", {"cancellation_reason": "bored"}, None, "cancellation_reason"),
    ("/v1/payment_intents/pi_1/capture", {"amount_to_capture": "x"}, "parameter_invalid_integer",
     "amount_to_capture"),
    ("/v1/customers", {"nickname": "ada"}, "parameter_unknown", "nickname"),
])
def test_fake_refuses_what_the_sdk_does_not_declare(stripe_server, path, data, code, param):
    answer = raw_post(stripe_server, path, data, key="raw-1")
    assert answer.status_code == 400 and answer.headers["Request-Id"].startswith("req_")
    error = answer.json()["error"]
    assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", code, param)
    assert stripe_server.payment_intents == {} and stripe_server.refunds == {}


def test_enum_error_lists_the_sdk_values(stripe_server):
    error = raw_post(stripe_server, "/v1/payment_intents", {**GOOD_PI, "capture_method": "sometimes"}).json()["error"]
    assert error["message"] == "Invalid capture_method: must be one of automatic, automatic_async, or manual"


def test_fake_accepts_declared_shapes(stripe_server):
    answer = raw_post(stripe_server, "/v1/payment_intents", {
        **GOOD_PI, "metadata[a]": "", "expand[]": "latest_charge", "allowed_payment_method_types[0]": "card",
        "setup_future_usage": "on_session"})
    assert answer.status_code == 200 and answer.json()["status"] == "requires_payment_method"
    # a declared enum alternative of a bool|enum parameter passes the type check; the rule that it needs
    # confirm=true is Stripe's own
    answer = raw_post(stripe_server, "/v1/payment_intents", {**GOOD_PI, "off_session": "recurring"})
    assert (answer.status_code, answer.json()["error"]["param"], answer.json()["error"]["code"]) == (
        400, "off_session", None)
    assert "off_session can only be used with confirm=true" in answer.json()["error"]["message"]
    answer = httpx.get(stripe_server.url + "/v1/refunds/re_x", params={"bogus": "1"},
                       headers={"Authorization": f"Bearer {KEY}"})
    assert (answer.status_code, answer.json()["error"]["code"]) == (400, "parameter_unknown")


def test_parameter_errors_are_not_kept_under_the_key(stripe_server):
    assert raw_post(stripe_server, "/v1/payment_intents", {**GOOD_PI, "amount": "x"}, key="same").status_code == 400
    answer = raw_post(stripe_server, "/v1/payment_intents", GOOD_PI, key="same")
    assert answer.status_code == 200 and "Idempotent-Replayed" not in answer.headers


def test_state_errors_are_kept_under_the_key(stripe_server):
    _, paid = charged(stripe_server)
    first = raw_post(stripe_server, f"/v1/payment_intents/{paid.reference}/capture", {}, key="cap")
    second = raw_post(stripe_server, f"/v1/payment_intents/{paid.reference}/capture", {}, key="cap")
    assert first.status_code == second.status_code == 400
    assert second.headers["Idempotent-Replayed"] == "true" and second.json() == first.json()


def test_every_route_of_the_fake_is_an_sdk_call():
    for method, template, _ in stripe_fake._ROUTES:
        assert params_class_for(method, template).__name__.endswith("Params")


def test_fake_keeps_stripe_limits_on_keys_and_metadata(stripe_server):
    answer = raw_post(stripe_server, "/v1/customers", {}, key="k" * 256)
    assert answer.status_code == 400 and stripe_server.customers == {}
    answer = raw_post(stripe_server, "/v1/customers", {"metadata[" + "m" * 41 + "]": "v"})
    assert answer.status_code == 400 and answer.json()["error"]["param"].startswith("metadata[")
    answer = raw_post(stripe_server, "/v1/customers", {"metadata[k]": "v" * 501})
    assert answer.status_code == 400
    assert raw_post(stripe_server, "/v1/customers", {"metadata[k]": "v" * 500}, key="k" * 255).status_code == 200


def test_long_keys_are_hashed_for_stripe_and_kept_in_metadata(stripe_server):
    gw, first = charged(stripe_server)
    long_key = "mit:cl_1:" + "x" * 255
    result = gw.charge_saved_card(mit(first.gateway_token, first.gateway_customer, key=long_key))
    assert result.status is A
    call = stripe_server.requests_to("/v1/payment_intents")[-1]
    assert call["headers"]["Idempotency-Key"] == stripe_idempotency_key(long_key)
    assert len(stripe_idempotency_key(long_key)) <= 255
    assert call["form"]["metadata[paygate_idempotency_key]"] == long_key
    again = gw.charge_saved_card(mit(first.gateway_token, first.gateway_customer, key=long_key))
    assert again.reference == result.reference and len(stripe_server.payment_intents) == 2
    assert gw.lookup(long_key).reference == result.reference
    assert stripe_idempotency_key("ps_1:1:authorize") == "ps_1:1:authorize"
    assert stripe_idempotency_key("clé") != "clé"


# ---- webhook signatures --------------------------------------------------------------------------------

WHSEC = "whsec_test_secret"


def signed(payload: bytes, at=None, secret=WHSEC):
    return sign_payload(payload, secret, int(time.time()) if at is None else at)


def test_sign_payload_matches_the_sdk():
    body = b'{"id": "evt_1", "object": "event"}'
    assert sign_payload(body, WHSEC, 1700000000) == stripe.WebhookSignature.generate_signature_header(
        body.decode(), WHSEC, 1700000000)


def test_construct_event_returns_a_plain_dict(stripe_server):
    gw, paid = charged(stripe_server, number="4000000000005126")
    refund = gw.refund(refund_req(paid.reference, 2500))
    event = stripe_server.fail_refund(refund.reference)
    body = json.dumps(event).encode()
    got = construct_event(body, signed(body), WHSEC)
    assert got == event and type(got) is dict and type(got["data"]["object"]) is dict


@pytest.mark.parametrize("header", [None, "", "garbage", "t=1", "t=abc,v1=00"])
def test_construct_event_refuses_a_missing_or_malformed_header(header):
    with pytest.raises(WebhookSignatureError) as caught:
        construct_event(b'{"id": "evt_1"}', header, WHSEC)
    assert (caught.value.code, caught.value.http_status) == ("invalid_signature", 400)
    assert isinstance(caught.value, PaygateError)


def test_construct_event_refuses_a_bad_signature():
    body = b'{"id": "evt_1", "object": "event"}'
    with pytest.raises(WebhookSignatureError) as caught:
        construct_event(body, signed(body, secret="whsec_other"), WHSEC)
    assert caught.value.code == "invalid_signature"
    assert WHSEC not in str(caught.value) and "evt_1" not in str(caught.value)
    with pytest.raises(WebhookSignatureError):
        construct_event(body + b" ", signed(body), WHSEC)   # the body changed after signing


def test_construct_event_tolerance():
    body = b'{"id": "evt_1", "object": "event"}'
    now = int(time.time())
    with pytest.raises(WebhookSignatureError) as caught:
        construct_event(body, signed(body, at=now - 301), WHSEC)
    assert caught.value.code == "invalid_signature"
    assert construct_event(body, signed(body, at=now - 290), WHSEC)["id"] == "evt_1"
    assert construct_event(body, signed(body, at=now + 60), WHSEC)["id"] == "evt_1"   # Stripe accepts the future
    assert construct_event(body, signed(body, at=now - 1000), WHSEC, tolerance=2000)["id"] == "evt_1"


def test_construct_event_accepts_any_matching_v1_during_rotation():
    body = b'{"id": "evt_2", "object": "event"}'
    good = signed(body).split(",")
    header = f"{good[0]},v1={'0' * 64},{good[1]},v0=ignored"
    assert construct_event(body, header, WHSEC)["id"] == "evt_2"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"evt"', b"\xff\xfe"])
def test_construct_event_refuses_a_signed_body_that_is_not_an_event(body):
    with pytest.raises(WebhookSignatureError) as caught:
        construct_event(body, signed(body), WHSEC)
    assert (caught.value.code, caught.value.http_status) == ("invalid_payload", 400)


def test_construct_event_without_a_secret_is_refused():
    body = b'{"id": "evt_1"}'
    with pytest.raises(WebhookSignatureError) as caught:
        construct_event(body, signed(body), "")
    assert caught.value.code == "invalid_signature"


# ---- pure mapping --------------------------------------------------------------------------------------

def _pi(status, **kw):
    return {"id": "pi_1", "object": "payment_intent", "status": status, "payment_method": "pm_1", **kw}


@pytest.mark.parametrize("status, expected, code", [
    ("succeeded", A, None), ("requires_capture", A, None), ("requires_action", D, "authentication_required"),
    ("processing", U, "payment_processing"), ("requires_confirmation", F, "payment_intent_incomplete"),
    ("requires_payment_method", F, "payment_intent_incomplete"), ("canceled", F, "payment_intent_canceled"),
    ("something_new", U, "unknown_status"),
])
def test_payment_intent_status_mapping(status, expected, code):
    result = tx.result_from_payment_intent(_pi(status))
    assert (result.status, result.decline_code, result.reference, result.gateway_token) == (expected, code, "pi_1",
                                                                                            "pm_1")


def test_risk_level_comes_from_the_expanded_charge_only():
    charge = {"id": "ch_1", "outcome": {"risk_level": "elevated", "type": "authorized"}}
    assert tx.result_from_payment_intent(_pi("succeeded", latest_charge=charge)).risk_level == "elevated"
    assert tx.result_from_payment_intent(_pi("succeeded", latest_charge="ch_1")).risk_level is None
    odd = {"id": "ch_1", "outcome": {"risk_level": "not_assessed"}}
    assert tx.result_from_payment_intent(_pi("succeeded", latest_charge=odd)).risk_level is None


def test_failed_intent_maps_its_last_payment_error():
    blocked = _pi("requires_payment_method", last_payment_error={"code": "card_declined"},
                  latest_charge={"outcome": {"type": "blocked", "risk_level": "highest"}})
    assert tx.result_from_payment_intent(blocked).status is B
    declined = _pi("requires_payment_method", last_payment_error={"code": "expired_card"})
    assert tx.result_from_payment_intent(declined).decline_code == "expired_card"


@pytest.mark.parametrize("error, expected, code, risk", [
    ({"code": "card_declined", "decline_code": "insufficient_funds"}, D, "insufficient_funds", None),
    ({"code": "card_declined"}, D, "generic_decline", None),
    ({"code": "incorrect_cvc"}, D, "incorrect_cvc", None),
    ({"code": "card_declined", "decline_code": "fraudulent"}, B, "fraudulent", "highest"),
    ({"code": "fraud"}, B, "fraudulent", "highest"),
    ({"code": "card_declined", "decline_code": "merchant_blacklist"}, B, "merchant_blacklist", "highest"),
    ({"code": None, "type": "invalid_request_error"}, F, "raw_card_data_not_enabled", None),
])
def test_card_error_mapping(error, expected, code, risk):
    result = tx.result_from_card_error(error)
    assert (result.status, result.decline_code, result.risk_level) == (expected, code, risk)


@pytest.mark.parametrize("exc, expected, code", [
    (stripe.APIConnectionError("down"), U, "gateway_unreachable"),
    (stripe.APIError("boom", http_status=500), U, "gateway_error"),
    (stripe.RateLimitError("slow down", http_status=429), U, "gateway_rate_limited"),
    (stripe.AuthenticationError("bad key", http_status=401), F, "gateway_authentication_failed"),
    (stripe.PermissionError("no", http_status=403), F, "gateway_permission_denied"),
    (stripe.IdempotencyError("mismatch", http_status=400), F, "idempotency_error"),
    (stripe.InvalidRequestError("bad", param="amount", code="amount_too_small", http_status=400), F,
     "amount_too_small"),
    (stripe.CardError("raw", None, None, http_status=402,
                      json_body={"error": {"type": "invalid_request_error", "message": "raw"}}), F,
     "raw_card_data_not_enabled"),
])
def test_exception_mapping(exc, expected, code):
    result = result_from_exception(exc)
    assert (result.status, result.decline_code) == (expected, code)


def test_search_query_escapes_quotes():
    assert tx.search_query_for_key("a'b\\c") == "metadata['paygate_idempotency_key']:'a\\'b\\\\c'"


def test_form_parser_builds_nested_params():
    parsed = parse_stripe_form([("card[number]", "1"), ("expand[0]", "x"), ("expand[1]", "y"), ("m[]", "a"),
                                ("m[]", "b"), ("metadata[k]", "v")])
    assert parsed == {"card": {"number": "1"}, "expand": ["x", "y"], "m": ["a", "b"], "metadata": {"k": "v"}}
