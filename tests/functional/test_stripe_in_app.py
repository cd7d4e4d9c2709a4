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
