"""The app with PAYGATE_GATEWAY=stripe against a local server that speaks Stripe's wire format."""

from __future__ import annotations

from tests.fakes.stripe_server import FakeStripeServer
from tests.functional.test_checkout_flow import events_of, pay, view


def _stripe_stack(stack_factory, server):
    return stack_factory(GATEWAY="stripe", STRIPE_API_KEY="sk_test_paygate", STRIPE_API_BASE=server.url)


def test_approval_through_stripe(stack_factory):
    with FakeStripeServer() as server:
        stack = _stripe_stack(stack_factory, server)
        created = stack.create_session(intent="hold")
        pay(stack, created["checkout_url"], number="4242 4242 4242 4242")
        v = view(stack, created["session_id"])
        assert v["status"] == "approved" and v["gateway"] == "stripe" and v["gateway_reference"].startswith("pi_")
        intents = server.requests_to("/v1/payment_intents", "POST")
        assert len(intents) == 1 and intents[0]["form"]["capture_method"] == "manual"
        assert intents[0]["headers"]["Idempotency-Key"] == f"{created['session_id']}:1:authorize"
        assert [t for t, _ in events_of(stack, created["session_id"])] == ["hold.authorized"]  # nothing was taken


def test_raw_card_refusal_is_failed_never_approved(stack_factory):
    with FakeStripeServer() as server:
        server.refuse_raw_cards(True)
        stack = _stripe_stack(stack_factory, server)
        created = stack.create_session()
        pay(stack, created["checkout_url"], number="4242 4242 4242 4242")
        v = view(stack, created["session_id"])
        assert v["status"] == "failed" and v["payment_id"] is None
        assert v["decline_code"] == "raw_card_data_not_enabled"
        assert [t for t, _ in events_of(stack, created["session_id"])] == ["payment.failed"]


def test_stripe_decline_code_reaches_the_session(stack_factory):
    with FakeStripeServer() as server:
        stack = _stripe_stack(stack_factory, server)
        created = stack.create_session()
        pay(stack, created["checkout_url"], number="4000 0000 0000 9995")
        v = view(stack, created["session_id"])
        assert v["status"] == "pending" and v["decline_code"] == "insufficient_funds" and v["attempts"] == 1


def test_the_money_after_the_authorization_through_stripe(stack_factory):
    """A hold saved for merchant-initiated use, captured in part, refunded by disposition, then charged again
    off-session — each as Stripe's wire format, with the vault row keeping the saved payment method."""
    from tokenizer.models import VaultCard

    with FakeStripeServer() as server:
        stack = _stripe_stack(stack_factory, server)
        created = stack.create_session(intent="hold")
        pay(stack, created["checkout_url"], number="4242 4242 4242 4242")
        v = view(stack, created["session_id"])
        (intent,) = server.requests_to("/v1/payment_intents", "POST")
        assert intent["form"]["setup_future_usage"] == "off_session" and intent["form"]["customer"].startswith("cus_")
        with stack.services.Session() as db:
            card = db.get(VaultCard, v["token"])
        assert card.gateway_token.startswith("pm_") and card.gateway_customer == intent["form"]["customer"]

        auth = stack.auth()
        payment = stack.http.get(f"/v1/payments/{v['payment_id']}", headers=auth).get_json()
        assert payment["status"] == "authorized" and payment["capture_before"] is not None
        captured = stack.http.post(f"/v1/payments/{v['payment_id']}/capture", json={"amount": 2000}, headers=auth)
        assert captured.status_code == 200 and captured.get_json()["amount_captured"] == 2000
        (capture,) = server.requests_to(f"/v1/payment_intents/{v['gateway_reference']}/capture", "POST")
        assert capture["form"]["amount_to_capture"] == "2000"
        assert capture["headers"]["Idempotency-Key"] == f"{v['payment_id']}:capture"

        refund = stack.http.post("/v1/refunds", json={"payment_id": v["payment_id"], "amount": "500",
                                                      "disposition_code": "REFUND_PARTIAL"}, headers=auth)
        assert refund.status_code == 201 and refund.get_json()["status"] == "succeeded"
        (sent,) = server.requests_to("/v1/refunds", "POST")
        assert (sent["form"]["payment_intent"], sent["form"]["amount"]) == (v["gateway_reference"], "500")
        assert sent["form"]["metadata[paygate_refund_id]"] == refund.get_json()["refund_id"]

        again = stack.http.post("/v1/payments", headers={**auth, "Idempotency-Key": "renew-1"}, json={
            "token": v["token"], "amount": 700, "currency": "USD", "customer_account_id": "ACME-1"})
        assert again.status_code == 201 and again.get_json()["status"] == "captured"
        off_session = server.requests_to("/v1/payment_intents", "POST")[-1]["form"]
        assert (off_session["off_session"], off_session["confirm"], off_session["customer"]) == (
            "true", "true", card.gateway_customer)
        assert off_session["payment_method"] == card.gateway_token


def test_a_subscription_renews_off_session_through_stripe(stack_factory):
    """A subscription session approved through Stripe saves the card; a month later (the stack's frozen clock:
    the sandbox clock does not exist with Stripe) the worker's tick renews it as an off-session PaymentIntent on
    the saved payment method, with the subscription's period key as the Idempotency-Key."""
    from tokenizer.models import VaultCard

    with FakeStripeServer() as server:
        stack = _stripe_stack(stack_factory, server)
        created = stack.create_session(intent="subscription")
        pay(stack, created["checkout_url"], number="4242 4242 4242 4242")
        v = view(stack, created["session_id"])
        assert v["status"] == "approved"
        auth = stack.auth()
        first = stack.http.get(f"/v1/payments/{v['payment_id']}", headers=auth).get_json()
        sub_id = first["subscription_id"]
        assert sub_id and first["gateway"] == "stripe"
        assert stack.services.subscriptions.renew_due() == 0

        stack.clock.advance(30 * 86400)
        assert stack.services.subscriptions.renew_due() == 1
        sub = stack.http.get(f"/v1/subscriptions/{sub_id}", headers=auth).get_json()
        assert (sub["status"], sub["period"]) == ("active", 2)
        renewal = stack.http.get(f"/v1/payments/{sub['last_payment_id']}", headers=auth).get_json()
        assert (renewal["status"], renewal["initiator"], renewal["gateway"]) == ("captured", "merchant", "stripe")
        assert renewal["gateway_reference"].startswith("pi_")
        with stack.services.Session() as db:
            card = db.get(VaultCard, v["token"])
        off_session = server.requests_to("/v1/payment_intents", "POST")[-1]
        assert (off_session["form"]["off_session"], off_session["form"]["confirm"]) == ("true", "true")
        assert (off_session["form"]["customer"], off_session["form"]["payment_method"]) == (
            card.gateway_customer, card.gateway_token)
        assert off_session["headers"]["Idempotency-Key"] == f"sub:{sub_id}:2:0"
        assert stack.services.subscriptions.renew_due() == 0
        assert len(server.requests_to("/v1/payment_intents", "POST")) == 2
