"""One payment in flight per customer ("busy") and the link that ends with the conversation (docs/api.md,
"Contact-center rules"), on the real app with the sandbox gateway: the sandbox's timeout card keeps a session
``processing`` until the reconciler looks it up."""

from __future__ import annotations

import threading

from callbacks import outbox
from payments.context import RedisLock
from payments.models import PaymentAttempt
from tests.functional.money import VISA, events, post, types
from tests.functional.test_checkout_flow import pay
from tokenizer.gateways.sandbox import TIMEOUT_CARD

BUSY_WORDS = "A previous payment on your account is still being processed. Please wait a moment and try again."
DECLINE = "4000000000000002"


def card(stack, sid, number=VISA, token=None) -> dict:
    r = post(stack, f"/v1/payment-sessions/{sid}/card",
             {"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123"}, token=token)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def view(stack, sid, token=None) -> dict:
    return stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth(token)).get_json()


def attempts_of(stack, sid) -> int:
    with stack.services.Session() as db:
        return db.query(PaymentAttempt).filter_by(session_id=sid).count()


def held_processing(stack, customer="ACME-BUSY", **session) -> str:
    """A session of ``customer`` left ``processing`` by a gateway timeout."""
    sid = stack.create_session(customer_account_id=customer, **session)["session_id"]
    assert card(stack, sid, TIMEOUT_CARD)["outcome"] == "processing"
    assert view(stack, sid)["status"] == "processing"
    return sid


# -- busy -------------------------------------------------------------------------------------------------------------
def test_busy_by_voice_while_the_same_customer_has_a_payment_processing(stack_factory):
    stack = stack_factory(RECONCILE_AFTER_SECONDS=60)
    first = held_processing(stack)
    second = stack.create_session(customer_account_id="ACME-BUSY", conversation_id="conv-2")["session_id"]
    answer = card(stack, second)
    assert answer["outcome"] == "busy" and answer["status"] == "pending"
    assert answer["message"] == BUSY_WORDS and answer["attempts_remaining"] == 3 and answer["token"] is None
    v = view(stack, second)
    assert v["status"] == "pending" and v["attempts"] == 0 and attempts_of(stack, second) == 0
    assert types(stack, second) == []  # nothing happened: no event

    # another customer of the same client, and the same account id at another API client, are not held up
    other = stack.create_session(customer_account_id="ACME-OTHER")["session_id"]
    assert card(stack, other)["outcome"] == "approved"
    token = stack.token_for(stack.new_client(name="second-org"))
    r = stack.http.post("/v1/payment-sessions", headers=stack.auth(token), json={
        "conversation_id": "conv-x", "customer_account_id": "ACME-BUSY", "amount": 100, "currency": "USD"})
    assert card(stack, r.get_json()["session_id"], token=token)["outcome"] == "approved"

    # the flow's pre-check
    r = stack.http.get("/v1/payment-sessions?customer_account_id=ACME-BUSY&status=processing", headers=stack.auth())
    assert r.status_code == 200 and [s["session_id"] for s in r.get_json()["data"]] == [first]
    r = stack.http.get("/v1/payment-sessions?customer_account_id=ACME-OTHER&status=processing", headers=stack.auth())
    assert r.get_json()["data"] == []

    # once the first is settled (the reconciler finds no payment: failed), the second goes through
    stack.clock.advance(61)
    assert stack.services.payments.reconcile_due() == 1
    assert view(stack, first)["status"] == "failed"
    assert card(stack, second)["outcome"] == "approved"
    assert view(stack, second)["attempts"] == 1


def test_busy_on_the_page(stack_factory):
    stack = stack_factory(RECONCILE_AFTER_SECONDS=60)
    held_processing(stack, channel="voice")
    created = stack.create_session(customer_account_id="ACME-BUSY", channel="messaging")
    r = pay(stack, created["checkout_url"])
    assert r.status_code == 409
    html = r.get_data(as_text=True)
    assert BUSY_WORDS in html and 'id="busy-notice"' in html and 'role="alert"' in html
    assert 'name="number"' in html and "4242" not in html  # the form again, without the card
    v = view(stack, created["session_id"])
    assert v["status"] == "pending" and v["attempts"] == 0 and attempts_of(stack, created["session_id"]) == 0
    # the refreshed page is the plain form, and the customer may pay as soon as the other payment settled
    stack.clock.advance(61)
    assert stack.services.payments.reconcile_due() == 1
    assert pay(stack, created["checkout_url"]).status_code == 303
    assert view(stack, created["session_id"])["status"] == "approved"


def test_two_sessions_of_one_customer_submitted_at_once_start_one_payment(stack):
    a = stack.create_session(customer_account_id="ACME-RACE")["session_id"]
    b = stack.create_session(customer_account_id="ACME-RACE")["session_id"]
    barrier = threading.Barrier(2)
    outcomes = {}

    def go(sid):
        client = stack.app.test_client()
        barrier.wait()
        r = client.post(f"/v1/payment-sessions/{sid}/card", headers=stack.auth(), json={
            "number": TIMEOUT_CARD, "exp_month": "12", "exp_year": "30", "cvc": "123"})
        outcomes[sid] = r.get_json()["outcome"]

    threads = [threading.Thread(target=go, args=(sid,)) for sid in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes.values()) == ["busy", "processing"], outcomes
    busy = next(sid for sid, outcome in outcomes.items() if outcome == "busy")
    assert view(stack, busy)["attempts"] == 0 and attempts_of(stack, busy) == 0


# -- conversation close -------------------------------------------------------------------------------------------------
def close(stack, conversation_id, token=None):
    r = post(stack, f"/v1/conversations/{conversation_id}/close", token=token)
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_closing_a_conversation_cancels_its_pending_links_and_leaves_processing_ones(stack_factory):
    stack = stack_factory(RECONCILE_AFTER_SECONDS=60)
    p1 = stack.create_session(conversation_id="conv-end")
    stack.clock.advance(1)  # "oldest first": at one frozen instant the order would fall to the random ids
    p2 = stack.create_session(conversation_id="conv-end", amount_range={"min": 100, "max": 900}, amount=None)
    running = held_processing(stack, conversation_id="conv-end")
    approved = stack.create_session(conversation_id="conv-end")["session_id"]
    assert card(stack, approved)["outcome"] == "approved"
    elsewhere = stack.create_session(conversation_id="conv-other")["session_id"]
    token = stack.token_for(stack.new_client(name="second-org"))
    theirs = stack.http.post("/v1/payment-sessions", headers=stack.auth(token), json={
        "conversation_id": "conv-end", "customer_account_id": "X", "amount": 100, "currency": "USD"}).get_json()

    answer = close(stack, "conv-end")
    assert answer == {"canceled": [p1["session_id"], p2["session_id"]], "processing": [running]}
    for created in (p1, p2):
        v = view(stack, created["session_id"])
        assert (v["status"], v["cancel_reason"]) == ("canceled", "conversation_ended")
        sent = events(stack, created["session_id"])
        assert [t for t, _ in sent] == ["payment_session.canceled"]
        assert sent[0][1]["data"]["cancel_reason"] == "conversation_ended"
        assert sent[0][1]["data"]["status"] == "canceled"
        page = stack.http.get(created["checkout_url"].replace("http://127.0.0.1:8000", ""))
        assert "canceled" in page.get_data(as_text=True) and 'name="number"' not in page.get_data(as_text=True)
    assert view(stack, running)["status"] == "processing" and view(stack, running)["cancel_reason"] is None
    assert view(stack, approved)["status"] == "approved"
    assert view(stack, elsewhere)["status"] == "pending"
    assert view(stack, theirs["session_id"], token=token)["status"] == "pending"  # another client's: untouched

    assert close(stack, "conv-end") == {"canceled": [], "processing": [running]}  # safe to repeat
    assert close(stack, "conv-unknown") == {"canceled": [], "processing": []}
    stack.clock.advance(61)
    assert stack.services.payments.reconcile_due() == 1  # the processing one finishes on its own
    assert view(stack, running)["status"] == "failed"
    assert close(stack, "conv-end") == {"canceled": [], "processing": []}
    # the other client closes its own
    assert close(stack, "conv-end", token=token) == {"canceled": [theirs["session_id"]], "processing": []}


def test_a_processing_session_declined_after_its_conversation_closed_is_canceled(stack_factory):
    stack = stack_factory(SANDBOX_LATENCY_MS=1500)
    sid = stack.create_session(conversation_id="conv-late")["session_id"]
    answers = {}
    submitting = threading.Thread(target=lambda: answers.update(card(stack, sid, DECLINE)))
    submitting.start()
    try:
        for _ in range(400):  # the gateway call takes 1.5 s: close while it runs
            if view(stack, sid)["status"] == "processing":
                break
            threading.Event().wait(0.01)
        assert close(stack, "conv-late") == {"canceled": [], "processing": [sid]}
    finally:
        submitting.join(timeout=30)
    assert answers["outcome"] == "declined"  # what the attempt itself answered
    v = view(stack, sid)  # the decline does not reopen the link of an ended conversation
    assert (v["status"], v["cancel_reason"]) == ("canceled", "conversation_ended")
    assert types(stack, sid) == ["payment.declined", "payment_session.canceled"]
    assert card(stack, sid)["outcome"] == "canceled"


def test_the_worker_cancels_what_a_decline_reopened_after_the_close(stack_factory):
    stack = stack_factory(SANDBOX_LATENCY_MS=1500)
    sid = stack.create_session(conversation_id="conv-worker")["session_id"]
    submitting = threading.Thread(target=lambda: card(stack, sid, DECLINE))
    submitting.start()
    try:
        for _ in range(400):
            with stack.services.Session() as db:
                from payments.models import PaymentSession

                if db.get(PaymentSession, sid).status == "processing":
                    break
            threading.Event().wait(0.01)
        assert close(stack, "conv-worker")["processing"] == [sid]
    finally:
        submitting.join(timeout=30)
    assert stack.services.sessions.expire_due() == 1  # nobody read it: the worker's round does it
    assert types(stack, sid) == ["payment.declined", "payment_session.canceled"]


# -- leases and the outbox's wake ---------------------------------------------------------------------------------
def test_a_finished_submission_leaves_no_lease_and_wakes_the_outbox(stack, redis_client):
    """The session's and the customer's leases go back, and the outbox's wake list is pushed, in the round trip
    that ends the submission; a Redis that lost its scripts (SCRIPT FLUSH) still gets both."""
    for flush in (False, True):
        redis_client.delete(outbox.WAKE_KEY)
        if flush:
            redis_client.script_flush()
        sid = stack.create_session(customer_account_id=f"ACME-WAKE-{flush}")["session_id"]
        assert card(stack, sid)["outcome"] == "approved"
        assert redis_client.keys("paygate:lock:*") == []
        assert redis_client.llen(outbox.WAKE_KEY) == 1


def test_a_busy_answer_does_not_wake_the_outbox(stack_factory, redis_client):
    stack = stack_factory(RECONCILE_AFTER_SECONDS=60)
    held_processing(stack, customer="ACME-NOWAKE")
    redis_client.delete(outbox.WAKE_KEY)
    second = stack.create_session(customer_account_id="ACME-NOWAKE", conversation_id="conv-2")["session_id"]
    assert card(stack, second)["outcome"] == "busy"
    assert redis_client.llen(outbox.WAKE_KEY) == 0
    assert redis_client.keys("paygate:lock:*") == []


def test_the_customers_lease_is_taken_only_with_the_sessions_lock(redis_client):
    locks = RedisLock(redis_client)
    assert locks.acquire_then("paygate:lock:t:a", "one", ttl_ms=5000, then="paygate:lock:t:b",
                              then_ttl_ms=5000) == (True, True)
    assert redis_client.get("paygate:lock:t:b") == b"one"
    # the first lease is held: the second is not taken either, so there is nothing to give back
    redis_client.delete("paygate:lock:t:b")
    assert locks.acquire_then("paygate:lock:t:a", "two", ttl_ms=5000, then="paygate:lock:t:b",
                              then_ttl_ms=5000) == (False, False)
    assert redis_client.get("paygate:lock:t:b") is None
    # the second is held by another: the first alone (the caller then waits for the second itself)
    redis_client.set("paygate:lock:t:b", "other")
    assert locks.acquire_then("paygate:lock:t:c", "three", ttl_ms=5000, then="paygate:lock:t:b",
                              then_ttl_ms=5000) == (True, False)
    assert redis_client.get("paygate:lock:t:b") == b"other"
    assert 0 < redis_client.pttl("paygate:lock:t:c") <= 5000


def test_simultaneous_submissions_of_one_session_leave_no_lease(stack, redis_client):
    sid = stack.create_session(customer_account_id="ACME-TWICE")["session_id"]
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(card(stack, sid))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(a["outcome"] for a in answers) == ["approved"] * 4
    assert attempts_of(stack, sid) == 1
    assert redis_client.keys("paygate:lock:*") == []
