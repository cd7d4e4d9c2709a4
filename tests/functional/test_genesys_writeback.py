"""Genesys write-back (docs/api.md, "Genesys write-back") on real databases (SQLite and PostgreSQL), real Redis and the Genesys
emulator (integrations.genesys.emulator/) on a real threaded HTTP server (tests/fakes/genesys.py): attributes
and workflow starts for every event object, the superseded check per root and object, and the review workitem
of a failed refund. Time is a FrozenClock, shared with the emulator: retries come due only when a test moves
it, and nothing sleeps."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from callbacks import events as ev
from callbacks import outbox
from callbacks.delivery import Deliverer
from callbacks.models import Delivery, DeliveryAttempt, Event
from callbacks.outbox import record_event
from integrations.genesys import writeback
from integrations.genesys.client import TokenProvider
from integrations.genesys.settings import GenesysSettings, SecretBox, settings_of
from integrations.genesys.writeback import ATTRIBUTE_NAMES, WORKFLOW_INPUTS, build_senders
from kernel.clock import FrozenClock, random_id
from kernel.settings import Settings
from paygate.worker import build_deliverer
from payments.clients import configure_genesys, genesys_settings_loader
from payments.models import ApiClient, PaymentSession
from payments.sessions import emit
from tests.fakes.genesys import GenesysEmulator
from tests.functional.test_delivery import START, clock, http, make_client, make_deliverer, make_session  # noqa: F401 - fixtures

GC_ID, GC_SECRET = "gc-oauth-client", "gc-oauth-secret-0123456789"
FLOW_ID = "wf-apply-payment"
BOX = SecretBox("test-secret-key-for-genesys")
PAN = "4242424242424242"


@pytest.fixture
def Session(db_url):
    from kernel.db import make_engine, make_sessionmaker

    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def genesys(state_dir, clock):
    """The emulator on the test's clock, with the conversation make_session points at (conv-1, part-1)."""
    with GenesysEmulator({GC_ID: GC_SECRET}, state_dir, clock=lambda: clock().timestamp()) as emulator:
        emulator.add_conversation("conv-1", "part-1")
        yield emulator


def genesys_settings(emulator, **overrides) -> GenesysSettings:
    values = dict(region="us_east_1", client_id=GC_ID, client_secret=GC_SECRET, api_base=emulator.url,
                  login_base=emulator.url, workflow_id=FLOW_ID, write_attributes=True, start_workflow=True)
    values.update(overrides)
    return GenesysSettings(**values)


def approved_event(Session, emulator, *, participant_id="part-1", callback_url=None, **settings) -> tuple[str, str]:
    """A client with Genesys settings and an approved session; records payment.approved. → (session, event)."""
    with Session.begin() as db:
        client = make_client(db, callback_url=callback_url)
        if emulator is not None:
            configure_genesys(db, client.id, genesys_settings(emulator, **settings), BOX, production=False)
            db.refresh(client)
        s = make_session(db, client)
        s.participant_id = participant_id
        s.status, s.attempts, s.token, s.payment_id = "approved", 1, "tok_abc123", "pay_xyz789"
        s.card_brand, s.card_last4, s.card_exp_month, s.card_exp_year = "visa", "4242", 12, 2030
        s.card_fingerprint, s.message, s.reference = "fp_0a1b2c", "Payment approved.", "INV-7"
        event = emit(db, client, s, ev.PAYMENT_APPROVED, START, random_id)
    return s.id, event.id


def deliveries(Session, event_id) -> dict[str, Delivery]:
    with Session() as db:
        return {d.kind: d for d in db.scalars(select(Delivery).where(Delivery.event_id == event_id))}


def attempt_log(Session, delivery_id) -> list[tuple]:
    with Session() as db:
        return [(a.number, a.status_code, a.outcome, a.error) for a in db.scalars(
            select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id).order_by(DeliveryAttempt.number))]


def deliverer(Session, http, clock, **overrides) -> Deliverer:
    senders = build_senders(Session, http, clock=clock, box=BOX, load_settings=genesys_settings_loader(Session), timeout=2.0)
    return make_deliverer(Session, http, clock, senders=senders, **overrides)


def assert_no_card_data(bodies) -> None:
    text = json.dumps(bodies)
    assert PAN not in text and "4242 4242" not in text
    # a standalone run of 13-19 digits (not part of a hex fingerprint or an id, which may hold long digit runs)
    assert not re.search(r"(?<![0-9A-Za-z_])\d{13,19}(?![0-9A-Za-z_])", text), \
        "a card-number-like digit run was sent to Genesys"
    # "cvc" as a word or a name part (card_cvc), not three letters inside a random token or id
    assert not re.search(r"(?<![a-z0-9])cvc(?![a-z0-9])", text.lower()) and "fingerprint" not in text.lower()


# -- the outbox --------------------------------------------------------------------------------------
def test_record_event_adds_genesys_deliveries_by_settings(Session, genesys):
    _, both = approved_event(Session, genesys)
    assert {k: d.target for k, d in deliveries(Session, both).items()} == {
        "genesys_attributes": "genesys:attributes:conv-1/part-1", "genesys_workflow": f"genesys:flow:{FLOW_ID}"}
    _, no_participant = approved_event(Session, genesys, participant_id=None)
    assert set(deliveries(Session, no_participant)) == {"genesys_workflow"}
    _, flags_off = approved_event(Session, genesys, write_attributes=False, start_workflow=False,
                                  callback_url="https://hooks.example/cb")
    assert set(deliveries(Session, flags_off)) == {"webhook"}
    _, no_flow = approved_event(Session, genesys, workflow_id=None, start_workflow=False)
    assert set(deliveries(Session, no_flow)) == {"genesys_attributes"}
    _, unconfigured = approved_event(Session, None)
    assert deliveries(Session, unconfigured) == {}


def test_stored_settings_seal_the_secret(Session, genesys):
    with Session.begin() as db:
        client = make_client(db)
        configure_genesys(db, client.id, genesys_settings(genesys), BOX, production=False)
    with Session() as db:
        stored = db.get(ApiClient, client.id).genesys
    assert GC_SECRET not in json.dumps(stored)
    assert BOX.open(stored["client_secret_sealed"]) == GC_SECRET
    assert stored["api_base"] == genesys.url and stored["start_workflow"] is True


# -- sending -----------------------------------------------------------------------------------------
def test_attributes_and_workflow_are_written_with_string_values(Session, genesys, clock, http):
    session_id, event_id = approved_event(Session, genesys)
    assert deliverer(Session, http, clock).run_once() == 2

    rows = deliveries(Session, event_id)
    assert {k: (d.status, d.attempts, d.last_status_code) for k, d in rows.items()} == {
        "genesys_attributes": ("delivered", 1, 202), "genesys_workflow": ("delivered", 1, 200)}
    assert genesys.token_requests == 1  # one token, cached, for both calls
    (token_call,) = genesys.requests(path_prefix="/oauth/token")
    assert (token_call["status"], token_call["client_id"]) == (200, GC_ID)  # HTTP Basic, the right secret

    (patch,) = genesys.api_requests("PATCH")
    assert patch["path"] == "/api/v2/conversations/conv-1/participants/part-1/attributes"
    assert (patch["status"], patch["client_id"]) == (202, GC_ID)  # a bearer token the emulator issued
    (body,) = genesys.bodies("PATCH")
    attributes = body["attributes"]
    assert list(body) == ["attributes"] and tuple(attributes) == ATTRIBUTE_NAMES[:10]  # the session attributes and the gateway reference
    assert all(isinstance(v, str) for v in attributes.values())
    assert attributes == {
        "paymentStatus": "approved", "paymentOutcome": "approved", "paymentToken": "tok_abc123",
        "paymentCardBrand": "visa", "paymentCardLast4": "4242", "paymentId": "pay_xyz789",
        "paymentDeclineCode": "", "paymentMessage": "Payment approved.", "paymentSessionId": session_id,
        "paymentGatewayReference": ""}
    assert genesys.attributes("conv-1", "part-1") == attributes

    (launch,) = genesys.api_requests("POST")
    assert (launch["path"], launch["status"], launch["client_id"]) == ("/api/v2/flows/executions", 200, GC_ID)
    (execution,) = genesys.executions
    assert execution["flowId"] == FLOW_ID
    assert execution["name"] == f"paygate payment.approved {session_id}"
    inputs = execution["inputData"]
    assert tuple(inputs) == WORKFLOW_INPUTS and all(k.startswith("Flow.") for k in inputs)
    assert all(isinstance(v, str) for v in inputs.values())
    assert inputs["Flow.eventId"] == event_id and inputs["Flow.eventType"] == "payment.approved"
    assert (inputs["Flow.amount"], inputs["Flow.currency"], inputs["Flow.sessionId"]) == ("2500", "USD", session_id)
    assert (inputs["Flow.token"], inputs["Flow.paymentId"], inputs["Flow.status"]) == (
        "tok_abc123", "pay_xyz789", "approved")
    assert (inputs["Flow.cardBrand"], inputs["Flow.cardLast4"], inputs["Flow.reference"]) == ("visa", "4242", "INV-7")
    assert (inputs["Flow.conversationId"], inputs["Flow.customerAccountId"], inputs["Flow.intent"]) == (
        "conv-1", "ACME-1", "payment")
    assert inputs["Flow.declineCode"] == "" and inputs["Flow.eventSequence"] == "1"
    assert (inputs["Flow.objectType"], inputs["Flow.refundId"], inputs["Flow.reviewDisposition"]) == (
        "payment_session", "", "")
    assert_no_card_data(genesys.bodies())


def test_500_is_retried_then_delivered(Session, genesys, clock, http):
    _, event_id = approved_event(Session, genesys, start_workflow=False)
    genesys.fail_next(500)
    d = deliverer(Session, http, clock)
    assert d.run_once() == 1
    row = deliveries(Session, event_id)["genesys_attributes"]
    assert (row.status, row.last_status_code, row.last_error) == ("pending", 500, "http_500: internal.server.error")
    assert d.run_once() == 0  # not due until the clock moves
    clock.advance(1)
    assert d.run_once() == 1
    row = deliveries(Session, event_id)["genesys_attributes"]
    assert (row.status, row.attempts) == ("delivered", 2)
    assert attempt_log(Session, row.id) == [(1, 500, "retry", "http_500: internal.server.error"),
                                            (2, 202, "delivered", None)]


def test_an_older_event_never_overwrites_newer_attributes(Session, genesys, clock, http):
    with Session.begin() as db:
        client = make_client(db)
        configure_genesys(db, client.id, genesys_settings(genesys, start_workflow=False), BOX, production=False)
        db.refresh(client)
        s = make_session(db, client)
        s.attempts, s.decline_code, s.message = 1, "generic_decline", "Declined."
        declined = emit(db, client, s, ev.PAYMENT_DECLINED, START, random_id, status="declined").id
        s.status, s.attempts, s.decline_code, s.token = "approved", 2, None, "tok_new"
        approved = emit(db, client, s, ev.PAYMENT_APPROVED, START, random_id).id
    genesys.fail_next(500)  # the declined event's write fails first
    d = deliverer(Session, http, clock, concurrency=1)
    assert d.run_once() == 2
    assert deliveries(Session, approved)["genesys_attributes"].status == "delivered"
    clock.advance(1)
    assert d.run_once() == 1
    row = deliveries(Session, declined)["genesys_attributes"]
    assert (row.status, row.attempts) == ("delivered", 2)
    assert attempt_log(Session, row.id)[-1] == (2, None, "delivered", "superseded_by_newer_event")
    assert [r["status"] for r in genesys.api_requests("PATCH")] == [500, 202]  # no stale write
    assert genesys.attributes("conv-1", "part-1")["paymentStatus"] == "approved"


def test_429_reschedules_at_retry_after_without_sleeping(Session, genesys, clock, http):
    _, event_id = approved_event(Session, genesys, write_attributes=False)
    genesys.fail_next(429, retry_after=42)
    d = deliverer(Session, http, clock)
    assert d.run_once() == 1
    row = deliveries(Session, event_id)["genesys_workflow"]
    assert (row.status, row.last_status_code) == ("pending", 429)
    assert row.last_error == "http_429: too.many.requests.retry.after"
    # backoff alone would be 0.01 s here; Retry-After wins
    assert row.next_attempt_at >= (START + timedelta(seconds=42)).replace(tzinfo=None)
    clock.advance(41)
    assert d.run_once() == 0
    clock.advance(1)
    assert d.run_once() == 1
    row = deliveries(Session, event_id)["genesys_workflow"]
    assert (row.status, row.attempts) == ("delivered", 2)
    assert [a[2] for a in attempt_log(Session, row.id)] == ["retry", "delivered"]
    assert len(genesys.executions) == 1


def test_retry_after_past_the_retry_window_is_dead(Session, genesys, clock, http):
    _, event_id = approved_event(Session, genesys, write_attributes=False)
    genesys.fail_next(429, retry_after=7200)
    deliverer(Session, http, clock, max_age_seconds=3600).run_once()
    row = deliveries(Session, event_id)["genesys_workflow"]
    assert (row.status, row.last_status_code) == ("dead", 429)


def test_per_minute_budget_429_is_honoured(Session, genesys, clock, http):
    genesys.update_settings(rate_limit_per_minute=1)
    _, first = approved_event(Session, genesys, start_workflow=False)
    _, second = approved_event(Session, genesys, start_workflow=False)
    d = deliverer(Session, http, clock, concurrency=1)
    assert d.run_once() == 2
    rows = [deliveries(Session, e)["genesys_attributes"] for e in (first, second)]
    assert sorted(r.status for r in rows) == ["delivered", "pending"]
    waiting = next(r for r in rows if r.status == "pending")
    assert waiting.next_attempt_at >= (START + timedelta(seconds=60)).replace(tzinfo=None)  # the minute's end
    clock.advance(60)
    assert d.run_once() == 1
    assert deliveries(Session, waiting.event_id)["genesys_attributes"].status == "delivered"


def test_expired_token_is_replaced_within_the_attempt(Session, genesys, clock, http):
    d = deliverer(Session, http, clock)
    _, first = approved_event(Session, genesys, start_workflow=False)
    assert d.run_once() == 1
    assert genesys.token_requests == 1
    genesys.expire_tokens()
    _, second = approved_event(Session, genesys, start_workflow=False)
    assert d.run_once() == 1
    row = deliveries(Session, second)["genesys_attributes"]
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 1, 202)
    assert genesys.token_requests == 2
    assert [r["status"] for r in genesys.api_requests("PATCH")] == [202, 401, 202]


def test_token_is_fetched_again_near_expiry(Session, genesys, clock, http):
    genesys.update_settings(token_ttl_seconds=300)
    d = deliverer(Session, http, clock)
    approved_event(Session, genesys, start_workflow=False)
    d.run_once()
    clock.advance(200)  # 300 s token, refreshed 60 s before its end
    approved_event(Session, genesys, start_workflow=False)
    d.run_once()
    assert genesys.token_requests == 1
    clock.advance(45)
    approved_event(Session, genesys, start_workflow=False)
    d.run_once()
    assert genesys.token_requests == 2
    assert {r["status"] for r in genesys.api_requests("PATCH")} == {202}  # never sent an expired token


def test_rejected_credentials_are_retried_and_not_leaked(Session, genesys, clock, http):
    _, event_id = approved_event(Session, genesys, client_secret="wrong-secret-value", start_workflow=False)
    deliverer(Session, http, clock).run_once()
    row = deliveries(Session, event_id)["genesys_attributes"]
    assert (row.status, row.last_status_code, row.last_error) == ("pending", None,
                                                                   "genesys_oauth_rejected: http_400")
    assert genesys.api_requests() == []
    assert "wrong-secret-value" not in json.dumps([row.last_error])


def test_settings_removed_before_sending_is_dead(Session, genesys, clock, http):
    _, event_id = approved_event(Session, genesys, start_workflow=False)
    with Session.begin() as db:
        session_id = db.scalars(select(PaymentSession.id)).one()
        configure_genesys(db, db.get(PaymentSession, session_id).client_id, None, BOX, production=False)
    deliverer(Session, http, clock).run_once()
    row = deliveries(Session, event_id)["genesys_attributes"]
    assert (row.status, row.last_error) == ("dead", "genesys_not_configured")


def test_worker_deliverer_sends_the_genesys_kinds(db_url, Session, genesys, http, redis_url, state_dir):
    settings = Settings.from_env({"PAYGATE_ENV": "test", "PAYGATE_DATABASE_URL": db_url,
                                  "PAYGATE_REDIS_URL": redis_url, "PAYGATE_SECRET_KEY": "test-secret-key-for-genesys",
                                  "PAYGATE_INSTANCE_PATH": str(state_dir / "instance")})
    clock = FrozenClock(START)
    _, event_id = approved_event(Session, genesys)
    assert build_deliverer(settings, Session, http, clock=clock).run_once() == 2
    assert {d.status for d in deliveries(Session, event_id).values()} == {"delivered"}


# -- through the API: attempts visible, redelivery, a real payment ----------------------------------
def test_payment_write_back_attempts_visible_in_events_and_redelivered(stack, genesys, http):
    from tests.functional.test_checkout_flow import pay

    box = SecretBox(stack.services.settings.secret_key)
    with stack.services.Session.begin() as db:
        configure_genesys(db, stack.client.client_id, genesys_settings(genesys), box, production=False)
    genesys.add_conversation("conv-9", "cust-part-9", media_type="message")
    created = stack.create_session(participant_id="cust-part-9", conversation_id="conv-9")
    assert pay(stack, created["checkout_url"], number="4242 4242 4242 4242").status_code == 303

    senders = build_senders(stack.services.Session, http, clock=stack.clock, box=box,
                            load_settings=genesys_settings_loader(stack.services.Session), timeout=2.0,
                            tokens=TokenProvider(http, stack.clock))
    d = make_deliverer(stack.services.Session, http, stack.clock, senders=senders, concurrency=1,
                       timeout_seconds=0.5)
    genesys.fail_next(503)
    assert d.run_once() == 3  # the webhook (unreachable), attributes, workflow
    stack.clock.advance(1)
    d.run_once()

    listed = stack.http.get(f"/v1/events?session_id={created['session_id']}", headers=stack.auth()).get_json()
    (event,) = listed["data"]
    assert event["type"] == "payment.approved"
    by_kind = {x["kind"]: x for x in event["deliveries"]}
    assert set(by_kind) == {"webhook", "genesys_attributes", "genesys_workflow"}
    for kind in ("genesys_attributes", "genesys_workflow"):
        assert by_kind[kind]["status"] == "delivered"
    logs = {k: [(a["status_code"], a["outcome"]) for a in v["attempt_log"]] for k, v in by_kind.items()}
    failed_first = [k for k in ("genesys_attributes", "genesys_workflow") if len(logs[k]) == 2]
    assert len(failed_first) == 1
    assert logs[failed_first[0]][0] == (503, "retry") and logs[failed_first[0]][1][1] == "delivered"
    assert by_kind["genesys_workflow"]["target"] == f"genesys:flow:{FLOW_ID}"
    assert genesys.attributes("conv-9", "cust-part-9")["paymentCardLast4"] == "4242"
    assert genesys.executions[-1]["inputData"]["Flow.eventId"] == event["id"]

    r = stack.http.post(f"/v1/events/{event['id']}/redeliver", headers=stack.auth())
    assert r.status_code == 202
    d.run_once()
    listed = stack.http.get(f"/v1/events?session_id={created['session_id']}", headers=stack.auth()).get_json()
    again = {x["kind"]: x for x in listed["data"][0]["deliveries"]}
    assert again["genesys_workflow"]["attempt_log"][-1]["outcome"] == "delivered"
    assert len(genesys.executions) == 2
    assert genesys.executions[1]["inputData"]["Flow.eventId"] == event["id"]  # the workflow can dedupe on it
    assert_no_card_data(genesys.bodies())
    assert GC_SECRET not in json.dumps(listed)


# -- the emulator's HTTP knobs: send-link and write-back in one conversation -------------------------
def test_send_link_and_write_back_against_the_emulator(stack, genesys, http):
    from tests.functional.test_checkout_flow import pay

    emulator = genesys.url

    r = http.post(f"{emulator}/api/genesys/conversations", json={
        "id": "conv-emu", "participants": [{"id": "cust-emu", "purpose": "customer"},
                                           {"id": "agent-emu", "purpose": "agent"}]})
    assert r.status_code == 201, r.text
    box = SecretBox(stack.services.settings.secret_key)
    with stack.services.Session.begin() as db:
        configure_genesys(db, stack.client.client_id, GenesysSettings(
            region="us_east_1", client_id=GC_ID, client_secret=GC_SECRET, api_base=emulator, login_base=emulator,
            workflow_id=FLOW_ID, start_workflow=True, sms_from_address="+13175550100"), box, production=False)
    created = stack.create_session(conversation_id="conv-emu", participant_id="cust-emu")

    r = stack.http.post(f"/v1/payment-sessions/{created['session_id']}/send-link",
                        json={"to": "+15551234567", "messenger_type": "sms"}, headers=stack.auth())
    assert r.status_code == 200, r.get_json()
    (message,) = http.get(f"{emulator}/api/genesys/messages").json()
    assert message["id"] == r.get_json()["message_id"] and created["checkout_url"] in message["textBody"]

    assert pay(stack, created["checkout_url"], number="3782 822463 10005", cvc="1234").status_code == 303
    senders = build_senders(stack.services.Session, http, clock=stack.clock, box=box,
                            load_settings=genesys_settings_loader(stack.services.Session), timeout=5.0)
    d = make_deliverer(stack.services.Session, http, stack.clock, senders=senders, concurrency=1,
                       timeout_seconds=0.5)
    assert http.post(f"{emulator}/api/genesys/behaviour",
                     json={"fail_next": 1, "status": 429, "retry_after": 5}).status_code == 200
    d.run_once()
    http.post(f"{emulator}/api/genesys/tokens/expire")  # the retry meets a 401 and fetches a new token
    stack.clock.advance(5)
    d.run_once()

    listed = stack.http.get(f"/v1/events?session_id={created['session_id']}", headers=stack.auth()).get_json()
    by_kind = {x["kind"]: x for x in listed["data"][0]["deliveries"]}
    assert by_kind["genesys_attributes"]["status"] == by_kind["genesys_workflow"]["status"] == "delivered"
    assert sorted(len(by_kind[k]["attempt_log"]) for k in ("genesys_attributes", "genesys_workflow")) == [1, 2]
    conversation = http.get(f"{emulator}/api/genesys/conversations/conv-emu").json()
    customer = next(p for p in conversation["participants"] if p["id"] == "cust-emu")
    assert customer["attributes"]["paymentStatus"] == "approved"
    assert customer["attributes"]["paymentCardBrand"] == "amex"
    assert customer["attributes"]["paymentCardLast4"] == "0005"
    (execution,) = http.get(f"{emulator}/api/genesys/executions").json()
    assert execution["inputData"]["Flow.eventId"] == listed["data"][0]["id"]
    assert_no_card_data([customer["attributes"], execution["inputData"], message, genesys.bodies()])
    assert "378282246310005" not in json.dumps(http.get(f"{emulator}/api/genesys/state").json())


# -- every event object: holds, refunds, disputes; the superseded check per root and object -------------
WORKTYPE = "7d8f1c2e-0b1a-4c3d-9e8f-1a2b3c4d5e6f"


def payment_view(session_id: str | None, **overrides) -> dict:
    """A payment view (docs/api.md, "Payments") of a 50.00 USD hold made with the 4242 card."""
    view = {"payment_id": "pay_h1", "object": "payment", "session_id": session_id, "status": "authorized",
            "intent": "hold", "amount": 5000, "amount_capturable": 5000, "amount_captured": 0, "amount_refunded": 0,
            "currency": "USD", "token": "tok_h1", "card": {"brand": "visa", "last4": "4242", "exp_month": 12,
                                                            "exp_year": 2030, "fingerprint": "fp_h1"},
            "gateway": "sandbox", "gateway_reference": "pi_h1", "capture_before": "2026-11-30T12:00:00Z",
            "conversation_id": "conv-1", "participant_id": "part-1", "customer_account_id": "ACME-1",
            "reference": "DSP-1", "subscription_id": None, "dispute_id": None, "decline_code": None,
            "message": "Payment authorized.", "initiator": "customer", "metadata": {},
            "created_at": "2026-11-23T12:00:00Z", "updated_at": "2026-11-23T12:00:00Z"}
    view.update(overrides)
    return view


def refund_view(**overrides) -> dict:
    """A refund view (docs/api.md, "Refunds") of 20.00 USD on pay_h1, refused by the gateway."""
    view = {"refund_id": "re_1", "object": "refund", "payment_id": "pay_h1", "status": "failed", "amount": 2000,
            "currency": "USD", "reason": "requested_by_customer", "disposition_code": "wrap-REFUND",
            "conversation_id": "conv-2", "participant_id": "cust-2", "reference": None,
            "failure_code": "expired_or_canceled_card", "manual_review": "required",
            "review_disposition": "Refund_Failed_Manual_Review", "gateway_reference": None, "metadata": {},
            "created_at": "2026-11-23T12:00:00Z", "updated_at": "2026-11-23T12:00:00Z"}
    view.update(overrides)
    return view


def dispute_view(**overrides) -> dict:
    view = {"dispute_id": "dsp_1", "object": "dispute", "payment_id": "pay_h1", "status": "needs_response",
            "reason": "fraudulent", "amount": 5000, "currency": "USD", "evidence_due_by": "2026-12-07T00:00:00Z",
            "gateway_reference": "dp_1", "conversation_id": "conv-1", "customer_account_id": "ACME-1",
            "created_at": "2026-11-23T12:00:00Z", "updated_at": "2026-11-23T12:00:00Z"}
    view.update(overrides)
    return view


def configured_client(db, emulator, **settings) -> ApiClient:
    client = make_client(db)
    configure_genesys(db, client.id, genesys_settings(emulator, **settings), BOX, production=False)
    db.refresh(client)
    return client


def record(db, client, event_type: str, object_type: str, data: dict, *, sequence: int, root_id: str,
           session_id: str | None = None, target: tuple[str, str] | None = None) -> str:
    """Records an event the way the domain does: numbered per root, Genesys destinations from the client's
    settings; the attributes go to the view's conversation/participant (the refund's for refund.* events),
    or to ``target`` (the payment's, for a dispute, whose view names no participant)."""
    conversation_id, participant_id = target or (data.get("conversation_id"), data.get("participant_id"))
    event = record_event(
        db, client_id=client.id, event_type=event_type, data=data, now=START, new_id=random_id, sequence=sequence,
        root_id=root_id, session_id=session_id, object_type=object_type,
        destinations=writeback.destinations(settings_of(client), event_type=event_type,
                                            conversation_id=conversation_id, participant_id=participant_id))
    return event.id


def run_until_idle(d: Deliverer, clock, rounds: int = 5) -> None:
    for _ in range(rounds):
        if d.run_once() == 0:
            clock.advance(1)
            if d.run_once() == 0:
                return


def test_every_event_object_writes_its_own_attributes_and_inputs(Session, genesys, clock, http):
    genesys.add_conversation("conv-2", "cust-2")
    genesys.add_worktype(WORKTYPE)
    with Session.begin() as db:
        client = configured_client(db, genesys, worktype_id=WORKTYPE)
        s = make_session(db, client)
        root = s.id
        ids = [record(db, client, ev.HOLD_AUTHORIZED, "payment", payment_view(root), sequence=1, root_id=root,
                      session_id=root),
               record(db, client, ev.HOLD_CAPTURED, "payment",
                      payment_view(root, status="captured", amount_capturable=0, amount_captured=5000),
                      sequence=2, root_id=root, session_id=root),
               record(db, client, ev.REFUND_FAILED, "refund", refund_view(), sequence=3, root_id=root,
                      session_id=root),
               record(db, client, ev.DISPUTE_OPENED, "dispute", dispute_view(), sequence=4, root_id=root,
                      session_id=root, target=("conv-1", "part-1"))]
    assert {k: d.target for k, d in deliveries(Session, ids[2]).items()} == {
        "genesys_attributes": "genesys:attributes:conv-2/cust-2", "genesys_workflow": f"genesys:flow:{FLOW_ID}",
        "genesys_workitem": f"genesys:workitem:{WORKTYPE}"}
    assert "genesys_workitem" not in deliveries(Session, ids[0])
    run_until_idle(deliverer(Session, http, clock, concurrency=1), clock)
    for event_id in ids:
        assert {d.status for d in deliveries(Session, event_id).values()} == {"delivered"}, event_id

    customer = genesys.attributes("conv-1", "part-1")
    assert (customer["paymentHoldStatus"], customer["paymentStatus"], customer["paymentOutcome"]) == (
        "captured", "approved", "approved")
    assert (customer["paymentId"], customer["paymentCardLast4"], customer["paymentGatewayReference"]) == (
        "pay_h1", "4242", "pi_h1")
    assert customer["paymentDisputeStatus"] == "needs_response"
    assert not any(k.startswith("paymentRefund") for k in customer)
    refunded = genesys.attributes("conv-2", "cust-2")  # the refund's own conversation and participant
    assert refunded == {"paymentId": "pay_h1", "paymentRefundId": "re_1", "paymentRefundStatus": "failed",
                        "paymentRefundReviewDisposition": "Refund_Failed_Manual_Review"}
    assert all(isinstance(v, str) for v in [*customer.values(), *refunded.values()])
    assert set(customer) | set(refunded) <= set(ATTRIBUTE_NAMES)

    runs = genesys.executions
    assert [(e["inputData"]["Flow.eventType"], e["inputData"]["Flow.objectType"]) for e in runs] == [
        ("hold.authorized", "payment"), ("hold.captured", "payment"), ("refund.failed", "refund"),
        ("dispute.opened", "dispute")]
    assert [e["name"] for e in runs] == ["paygate hold.authorized pay_h1", "paygate hold.captured pay_h1",
                                         "paygate refund.failed re_1", "paygate dispute.opened dsp_1"]
    assert all(tuple(e["inputData"]) == WORKFLOW_INPUTS for e in runs)
    refund_inputs = runs[2]["inputData"]
    assert (refund_inputs["Flow.refundId"], refund_inputs["Flow.dispositionCode"],
            refund_inputs["Flow.reviewDisposition"], refund_inputs["Flow.status"]) == (
        "re_1", "wrap-REFUND", "Refund_Failed_Manual_Review", "failed")
    (workitem,) = genesys.workitems
    assert (workitem["externalTag"], workitem["type"]["id"], workitem["name"]) == ("re_1", WORKTYPE,
                                                                                   "Refund review re_1")
    assert "Refund_Failed_Manual_Review" in workitem["description"] and workitem["customFields"] == {}
    assert_no_card_data([genesys.bodies(), genesys.platform.snapshot()])


def test_a_late_session_event_never_undoes_a_hold_and_a_refund_never_suppresses_it(Session, genesys, clock, http):
    with Session.begin() as db:
        client = configured_client(db, genesys, start_workflow=False)
        s = make_session(db, client)
        root = s.id
        declined = {"session_id": root, "status": "declined", "outcome": "declined", "conversation_id": "conv-1",
                    "participant_id": "part-1", "token": None, "payment_id": None, "gateway_reference": None,
                    "card": {"brand": "visa", "last4": "0002"}, "decline_code": "generic_decline",
                    "message": "Declined."}
        late = record(db, client, ev.PAYMENT_DECLINED, "payment_session", declined, sequence=1, root_id=root,
                      session_id=root)
        record(db, client, ev.HOLD_AUTHORIZED, "payment", payment_view(root), sequence=2, root_id=root,
               session_id=root)
        record(db, client, ev.REFUND_SUCCEEDED, "refund",
               refund_view(status="succeeded", review_disposition=None, manual_review="none",
                           conversation_id="conv-1", participant_id="part-1"), sequence=3, root_id=root,
               session_id=root)
    genesys.fail_next(500)  # the session's decline is the one that fails first
    d = deliverer(Session, http, clock, concurrency=1)
    assert d.run_once() == 3
    clock.advance(1)
    assert d.run_once() == 1
    row = deliveries(Session, late)["genesys_attributes"]
    assert (row.status, row.attempts) == ("delivered", 2)
    assert attempt_log(Session, row.id)[-1] == (2, None, "delivered", "superseded_by_newer_event")
    customer = genesys.attributes("conv-1", "part-1")
    assert (customer["paymentStatus"], customer["paymentCardLast4"], customer["paymentDeclineCode"]) == (
        "approved", "4242", "")  # the hold's approval, not the earlier decline
    assert (customer["paymentHoldStatus"], customer["paymentRefundStatus"]) == ("authorized", "succeeded")


def test_superseded_compares_the_same_object_of_the_same_root_and_target(Session, genesys, clock, http):
    genesys.add_conversation("conv-2", "cust-2")
    with Session.begin() as db:
        client = configured_client(db, genesys, start_workflow=False)
        root = "pay_mit1"  # a merchant-initiated hold: the payment is the root
        hold = payment_view(None, payment_id=root, initiator="merchant", reference=None)
        authorized = record(db, client, ev.HOLD_AUTHORIZED, "payment", hold, sequence=1, root_id=root)
        refund = refund_view(payment_id=root, status="succeeded", review_disposition=None, manual_review="none",
                             conversation_id="conv-1", participant_id="part-1")
        record(db, client, ev.REFUND_SUCCEEDED, "refund", refund, sequence=2, root_id=root)
        other_root = record(db, client, ev.HOLD_VOIDED, "payment",
                            payment_view(None, payment_id="pay_other", status="voided"), sequence=1,
                            root_id="pay_other")
    genesys.fail_next(500)
    d = deliverer(Session, http, clock, concurrency=1)
    assert d.run_once() == 3  # the hold's write fails; the refund's and another root's go through
    clock.advance(1)
    assert d.run_once() == 1
    row = deliveries(Session, authorized)["genesys_attributes"]
    assert (row.status, row.last_status_code) == ("delivered", 202)  # a later refund does not suppress it
    patches = genesys.bodies("PATCH")
    assert patches[-1]["attributes"]["paymentHoldStatus"] == "authorized"
    assert "paymentId" not in patches[-1]["attributes"]  # the refund, newer, already wrote it
    assert genesys.attributes("conv-1", "part-1")["paymentStatus"] == "approved"
    assert deliveries(Session, other_root)["genesys_attributes"].status == "delivered"

    with Session.begin() as db:
        client = db.get(ApiClient, client.id)
        voided = record(db, client, ev.HOLD_VOIDED, "payment", {**hold, "status": "voided"}, sequence=3,
                        root_id=root)
        moved = record(db, client, ev.REFUND_FAILED, "refund",
                       refund_view(payment_id=root, refund_id="re_2"), sequence=4, root_id=root)
    assert d.run_once() == 2
    assert genesys.attributes("conv-1", "part-1")["paymentHoldStatus"] == "voided"
    with Session.begin() as db:
        outbox.redeliver(db, authorized, clock())  # an old hold event sent again: same object, newer write
    assert d.run_once() == 1
    assert attempt_log(Session, row.id)[-1] == (3, None, "delivered", "superseded_by_newer_event")
    assert genesys.attributes("conv-1", "part-1")["paymentHoldStatus"] == "voided"
    assert deliveries(Session, moved)["genesys_attributes"].target == "genesys:attributes:conv-2/cust-2"
    assert genesys.attributes("conv-2", "cust-2")["paymentRefundId"] == "re_2"
    assert deliveries(Session, voided)["genesys_attributes"].status == "delivered"


def test_a_failed_refund_gets_one_workitem_however_often_it_fails(Session, genesys, clock, http):
    genesys.add_worktype(WORKTYPE, name="Refund review")
    genesys.add_conversation("conv-2", "cust-2")
    with Session.begin() as db:
        client = configured_client(db, genesys, start_workflow=False, write_attributes=False, worktype_id=WORKTYPE)
        first = record(db, client, ev.REFUND_FAILED, "refund", refund_view(), sequence=1, root_id="pay_h1")
    assert set(deliveries(Session, first)) == {"genesys_workitem"}
    d = deliverer(Session, http, clock, concurrency=1)
    genesys.fail_next(429, retry_after=30)  # the query meets a 429
    assert d.run_once() == 1
    row = deliveries(Session, first)["genesys_workitem"]
    assert (row.status, row.last_status_code, row.target) == ("pending", 429, f"genesys:workitem:{WORKTYPE}")
    assert row.next_attempt_at >= (START + timedelta(seconds=30)).replace(tzinfo=None)
    clock.advance(30)
    assert d.run_once() == 1
    row = deliveries(Session, first)["genesys_workitem"]
    assert (row.status, row.last_status_code) == ("delivered", 201)
    (workitem,) = genesys.workitems
    assert workitem["externalTag"] == "re_1" and workitem["type"]["name"] == "Refund review"

    with Session.begin() as db:  # the refund is retried and fails again: a second refund.failed
        client = db.get(ApiClient, client.id)
        again = record(db, client, ev.REFUND_FAILED, "refund", refund_view(updated_at="2026-11-23T13:00:00Z"),
                       sequence=2, root_id="pay_h1")
    assert d.run_once() == 1
    row = deliveries(Session, again)["genesys_workitem"]
    assert row.status == "delivered"
    assert attempt_log(Session, row.id) == [(1, 200, "delivered", "workitem_exists")]
    with Session.begin() as db:
        outbox.redeliver(db, first, clock())
    d.run_once()
    assert len(genesys.workitems) == 1
    creates = [r for r in genesys.api_requests("POST") if r["path"] == "/api/v2/taskmanagement/workitems"]
    assert [r["status"] for r in creates] == [201]
    queries = [b for b in genesys.bodies("POST") if "filters" in b]
    assert all({"name": "externalTag", "type": "String", "operator": "EQ", "values": ["re_1"]} in q["filters"]
               for q in queries) and len(queries) == 4  # 429, create, exists, exists

    with Session.begin() as db:  # a worktype Genesys does not know: 404, final
        unknown = configured_client(db, genesys, start_workflow=False, write_attributes=False,
                                    worktype_id="11111111-2222-4333-8444-555555555555")
        lost = record(db, unknown, ev.REFUND_FAILED, "refund", refund_view(refund_id="re_9"), sequence=1,
                      root_id="pay_x9")
    d.run_once()
    row = deliveries(Session, lost)["genesys_workitem"]
    assert (row.status, row.last_status_code, row.last_error) == ("dead", 404, "http_404: not.found.error")
    assert_no_card_data([genesys.bodies(), genesys.workitems])


def test_a_refund_that_fails_later_reaches_genesys_through_the_domain(stack, genesys, http):
    """The payments domain's own refund events: refund.succeeded, then the gateway's late refusal
    (refund.failed) written on the refund's customer participant, with one review workitem."""
    from payments.models import Refund
    from payments.refunds import RefundInput
    from tests.functional.test_checkout_flow import pay

    box = SecretBox(stack.services.settings.secret_key)
    genesys.add_worktype(WORKTYPE)
    genesys.add_conversation("conv-r", "cust-r")
    genesys.add_conversation("conv-acw", "cust-acw")
    with stack.services.Session.begin() as db:
        configure_genesys(db, stack.client.client_id, genesys_settings(genesys, worktype_id=WORKTYPE), box,
                          production=False)
    created = stack.create_session(conversation_id="conv-r", participant_id="cust-r")
    assert pay(stack, created["checkout_url"], number="4000 0000 0000 5126").status_code == 303
    session = stack.http.get(f"/v1/payment-sessions/{created['session_id']}", headers=stack.auth()).get_json()
    refund, fresh = stack.services.refunds.create(stack.client.client_id, RefundInput(
        payment_id=session["payment_id"], disposition_code="wrap-REFUND", conversation_id="conv-acw",
        participant_id="cust-acw"))
    assert fresh and refund.status == "succeeded"  # the sandbox refuses this card's refunds later
    with stack.services.Session.begin() as db:
        stack.services.refunds.fail(db, db.get(Refund, refund.id), "expired_or_canceled_card", stack.clock())

    senders = build_senders(stack.services.Session, http, clock=stack.clock, box=box,
                            load_settings=genesys_settings_loader(stack.services.Session), timeout=5.0)
    d = make_deliverer(stack.services.Session, http, stack.clock, senders=senders, concurrency=1,
                       timeout_seconds=0.5)
    for _ in range(3):
        d.run_once()
        stack.clock.advance(60)
    with stack.services.Session() as db:
        kinds = {(e.type, d.kind): d.status for e, d in db.execute(
            select(Event, Delivery).join(Delivery, Delivery.event_id == Event.id)
            .where(Event.root_id == created["session_id"]))}
    assert kinds[("refund.failed", "genesys_workitem")] == "delivered"
    assert kinds[("refund.failed", "genesys_attributes")] == kinds[("refund.succeeded", "genesys_attributes")] \
        == "delivered"
    assert ("refund.succeeded", "genesys_workitem") not in kinds
    refunded = genesys.attributes("conv-acw", "cust-acw")  # the refund's participant, not the payment's
    assert (refunded["paymentRefundId"], refunded["paymentRefundStatus"],
            refunded["paymentRefundReviewDisposition"]) == (refund.id, "failed", "Refund_Failed_Manual_Review")
    assert "paymentStatus" not in refunded
    payer = genesys.attributes("conv-r", "cust-r")
    assert payer["paymentStatus"] == "approved" and not any(k.startswith("paymentRefund") for k in payer)
    (workitem,) = genesys.workitems
    assert workitem["externalTag"] == refund.id and "expired_or_canceled_card" in workitem["description"]
    failed_run = next(e for e in genesys.executions if e["inputData"]["Flow.eventType"] == "refund.failed")
    assert (failed_run["inputData"]["Flow.objectType"], failed_run["inputData"]["Flow.dispositionCode"]) == (
        "refund", "wrap-REFUND")
    assert_no_card_data([genesys.bodies(), genesys.platform.snapshot()])
