"""Genesys write-back (contract §6) on real databases (SQLite and PostgreSQL), real Redis and the Genesys
emulator (integrations.genesys.emulator/) on a real threaded HTTP server (tests/fakes/genesys.py). Time is a
FrozenClock, shared with the emulator: retries come due only when a test moves it, and nothing sleeps."""

from __future__ import annotations

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from callbacks import events as ev
from callbacks.delivery import Deliverer
from callbacks.models import Delivery, DeliveryAttempt
from integrations.genesys.client import TokenProvider
from integrations.genesys.settings import GenesysSettings, SecretBox
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
    assert not re.search(r"\d{13,19}", text), "a card-number-like digit run was sent to Genesys"
    assert "cvc" not in text.lower() and "fingerprint" not in text.lower()


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
    assert list(body) == ["attributes"] and tuple(attributes) == ATTRIBUTE_NAMES
    assert all(isinstance(v, str) for v in attributes.values())
    assert attributes == {
        "paymentStatus": "approved", "paymentOutcome": "approved", "paymentToken": "tok_abc123",
        "paymentCardBrand": "visa", "paymentCardLast4": "4242", "paymentId": "pay_xyz789",
        "paymentDeclineCode": "", "paymentMessage": "Payment approved.", "paymentSessionId": session_id}
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
