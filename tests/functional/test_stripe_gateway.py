"""StripeGateway through the real stripe SDK against the local Stripe-compatible server (tests/fakes).

Also covers the pure mapping in tokenizer.gateways.stripe_transform with plain dicts.
"""

from __future__ import annotations

import re
import time

import pytest
import stripe

from tests.fakes.stripe_server import FakeStripeServer, parse_stripe_form, stripe_server  # noqa: F401 (fixture)
from tokenizer.cards import Card
from tokenizer.gateways import stripe_transform as tx
from tokenizer.gateways.base import AuthorizationRequest, GatewayStatus
from tokenizer.gateways.stripe import StripeGateway, result_from_exception

A, D, B, F, U = (GatewayStatus.APPROVED, GatewayStatus.DECLINED, GatewayStatus.BLOCKED, GatewayStatus.FAILED,
                 GatewayStatus.UNAVAILABLE)
KEY = "sk_test_paygate"


def gateway(server, **kw) -> StripeGateway:
    kw.setdefault("timeout_seconds", 1)
    kw.setdefault("max_network_retries", 0)
    return StripeGateway(KEY, api_base=server.url, **kw)


def req(number="4242424242424242", key="ps_1:1:authorize", cvc="123", capture=True, amount=2500, name="Ada Lovelace"):
    return AuthorizationRequest(amount=amount, currency="USD", idempotency_key=key, capture=capture,
                                card=Card(number, 12, 2030, cvc, name), description="paygate charge INV-1",
                                metadata={"paygate_session_id": "ps_1"})


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
    pm_req, pi_req = stripe_server.requests
    assert (pm_req["method"], pm_req["path"]) == ("POST", "/v1/payment_methods")
    assert pm_req["form"] == {"type": "card", "card[number]": "4242424242424242", "card[exp_month]": "12",
                              "card[exp_year]": "2030", "card[cvc]": "123", "billing_details[name]": "Ada Lovelace"}
    assert pm_req["headers"]["Idempotency-Key"] == "ps_1:1:authorize:pm"
    assert (pi_req["method"], pi_req["path"]) == ("POST", "/v1/payment_intents")
    assert pi_req["form"] == {
        "amount": "2500", "currency": "usd", "payment_method": result.gateway_token, "confirm": "true",
        "capture_method": "automatic", "payment_method_types[0]": "card", "metadata[paygate_session_id]": "ps_1",
        "metadata[paygate_idempotency_key]": "ps_1:1:authorize", "description": "paygate charge INV-1",
        "expand[0]": "latest_charge"}
    for r in (pm_req, pi_req):
        assert r["headers"]["Stripe-Version"] == stripe.api_version
        assert r["headers"]["Authorization"] == f"Bearer {KEY}"
    assert pi_req["headers"]["Idempotency-Key"] == "ps_1:1:authorize"
    (intent,) = stripe_server.payment_intents.values()
    assert intent["status"] == "succeeded" and intent["id"] == result.reference


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
    assert first == second and first.status is A
    assert len(stripe_server.payment_intents) == 1 and len(stripe_server.payment_methods) == 1


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
    stripe_server.refuse_raw_cards(True)
    results.append(gw.authorize(req(key="k9", cvc="987")))
    text = repr(results) + caplog.text + repr(gw)
    for pan in ("4242424242424242", "4000000000000002", "4100000000000019", "4242424242424241"):
        assert pan not in text
    assert not re.search(r"(?<![0-9A-Za-z])987(?![0-9A-Za-z])", text) and "cvc" not in text.lower()
    assert "stripe_call_failed" in caplog.text  # the failures were logged, without card data


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
