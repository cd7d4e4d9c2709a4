"""Subscriptions on SQLite and PostgreSQL with the sandbox clock: created by a session's approval or from a stored
token, renewed once per period by the worker's tick, retried on schedule after declines (the sandbox's
decline_next), canceled, never charged twice (concurrent ticks, concurrent submissions, idempotency keys)."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from payments.models import Payment, Subscription
from payments.subscriptions import charge_key
from tokenizer.gateways.sandbox import RedisSandboxLedger

from .money import VISA, advance, events, paid, payment, post, types

DAY = 86400
START = datetime(2026, 11, 23, 12, 0, 0)  # the stack's frozen business time (tests/functional/conftest.py)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def subscribed(stack, number=VISA, **session) -> tuple[str, str, str]:
    """A subscription session paid by voice; returns ``(session_id, first payment_id, subscription_id)``."""
    sid, pid = paid(stack, number, intent="subscription", **session)
    sub_id = payment(stack, pid)["subscription_id"]
    assert sub_id and sub_id.startswith("sub_")
    return sid, pid, sub_id


def sub(stack, sub_id, token=None) -> dict:
    r = stack.http.get(f"/v1/subscriptions/{sub_id}", headers=stack.auth(token))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def sub_payments(stack, sub_id) -> list[dict]:
    r = stack.http.get(f"/v1/payments?subscription_id={sub_id}", headers=stack.auth())
    assert r.status_code == 200, r.get_json()
    return r.get_json()["data"]


def decline_next(stack, token, count, **extra):
    return post(stack, f"/v1/sandbox/tokens/{token}/decline_next", {"count": count, **extra})


def charges(stack) -> int:
    return len(RedisSandboxLedger(stack.services.redis).charges())


def renew(stack) -> int:
    return stack.services.subscriptions.renew_due()


def test_a_monthly_subscription_from_a_session_renews_after_one_month(stack):
    sid, first, sub_id = subscribed(stack)
    s = sub(stack, sub_id)
    assert (s["object"], s["status"], s["interval"], s["interval_count"], s["amount"], s["currency"]) == (
        "subscription", "active", "month", 1, 2500, "USD")
    assert (s["period"], s["failed_attempts"], s["last_payment_id"], s["session_id"]) == (1, 0, first, sid)
    assert at(s["current_period_start"]) == START and at(s["current_period_end"]) == datetime(2026, 12, 23, 12)
    assert s["next_charge_at"] == s["current_period_end"] and s["cancel_reason"] is None
    session_view = stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth()).get_json()
    assert session_view["status"] == "approved" and session_view["payment_id"] == first
    assert types(stack, sid) == ["payment.approved"]  # the first payment's event stays the session's
    assert types(stack, sub_id) == ["subscription.created"]

    assert renew(stack) == 0  # not due yet
    advance(stack, 30 * DAY - 1)
    assert renew(stack) == 0
    advance(stack, 1)
    assert renew(stack) == 1
    assert renew(stack) == 0  # once per period

    renewal, original = sub_payments(stack, sub_id)
    assert original["payment_id"] == first and original["initiator"] == "customer"
    assert (renewal["initiator"], renewal["status"], renewal["amount_captured"], renewal["session_id"]) == (
        "merchant", "captured", 2500, None)
    assert renewal["subscription_id"] == sub_id and renewal["token"] == original["token"]
    with stack.services.Session() as db:
        assert db.get(Payment, renewal["payment_id"]).entry_mode == "stored"
    s = sub(stack, sub_id)
    assert (s["status"], s["period"], s["last_payment_id"]) == ("active", 2, renewal["payment_id"])
    assert at(s["current_period_start"]) == datetime(2026, 12, 23, 12)
    assert at(s["current_period_end"]) == at(s["next_charge_at"]) == datetime(2027, 1, 23, 12)
    assert charges(stack) == 2

    evs = events(stack, sub_id)
    assert [(t, b["object"], b["sequence"]) for t, b in evs] == [
        ("subscription.created", "subscription", 1), ("subscription.renewed", "subscription", 2)]
    assert evs[1][1]["data"]["last_payment_id"] == renewal["payment_id"] and evs[1][1]["data"]["period"] == 2
    # the renewal payment numbers its own events, as every payment without a session does
    (approved,) = events(stack, renewal["payment_id"])
    assert (approved[0], approved[1]["sequence"], approved[1]["data"]["payment_id"]) == (
        "payment.approved", 1, renewal["payment_id"])


def test_the_session_terms_are_used_when_given(stack):
    """``subscription: {interval, interval_count, amount}`` on the session becomes the subscription's terms; the
    first period is the session's own amount."""
    sid, pid = paid(stack, intent="subscription", subscription={"interval": "week", "interval_count": 2,
                                                                 "amount": 999})
    first = payment(stack, pid)
    v = sub(stack, first["subscription_id"])
    assert (v["interval"], v["interval_count"], v["amount"], v["session_id"]) == ("week", 2, 999, sid)
    assert at(v["next_charge_at"]) == START + timedelta(weeks=2)
    assert first["amount"] == 2500
    session_view = stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth()).get_json()
    assert session_view["subscription_id"] == v["subscription_id"]
    advance(stack, 14 * DAY)
    assert renew(stack) == 1
    assert payment(stack, sub(stack, v["subscription_id"])["last_payment_id"])["amount"] == 999


def test_declined_renewals_retry_on_schedule_then_cancel(stack):
    _, first, sub_id = subscribed(stack)
    token = payment(stack, first)["token"]
    r = decline_next(stack, token, 4)
    assert r.status_code == 200 and r.get_json() == {"token": token, "count": 4, "decline_code": "insufficient_funds"}
    due = datetime(2026, 12, 23, 12)
    advance(stack, 30 * DAY)
    assert renew(stack) == 1
    s = sub(stack, sub_id)
    assert (s["status"], s["failed_attempts"], s["period"]) == ("past_due", 1, 1)
    assert at(s["next_charge_at"]) == due + timedelta(days=1)
    declined = payment(stack, s["last_payment_id"])
    assert (declined["status"], declined["decline_code"], declined["initiator"]) == (
        "declined", "insufficient_funds", "merchant")
    assert renew(stack) == 0  # the retry waits for its day

    for failed, next_day in ((2, 3), (3, 5)):
        advance(stack, DAY if failed == 2 else 2 * DAY)
        assert renew(stack) == 1
        s = sub(stack, sub_id)
        assert (s["status"], s["failed_attempts"]) == ("past_due", failed)
        assert at(s["next_charge_at"]) == due + timedelta(days=next_day)

    advance(stack, 2 * DAY)
    assert renew(stack) == 1
    s = sub(stack, sub_id)
    assert (s["status"], s["cancel_reason"], s["next_charge_at"]) == ("canceled", "payment_failed", None)
    assert at(s["canceled_at"]) == due + timedelta(days=5)
    assert [p["status"] for p in sub_payments(stack, sub_id)] == ["declined"] * 4 + ["captured"]
    assert types(stack, sub_id) == ["subscription.created"] + ["subscription.payment_failed"] * 3 + [
        "subscription.canceled"]
    assert [b["sequence"] for _, b in events(stack, sub_id)] == list(range(1, 6))
    renewals = [p for p in sub_payments(stack, sub_id) if p["initiator"] == "merchant"]
    assert len(renewals) == 4 and all(types(stack, p["payment_id"]) == ["payment.declined"] for p in renewals)

    advance(stack, 60 * DAY)
    assert renew(stack) == 0 and len(sub_payments(stack, sub_id)) == 5


def test_a_successful_retry_recovers_to_active(stack):
    _, first, sub_id = subscribed(stack)
    assert decline_next(stack, payment(stack, first)["token"], 1, decline_code="card_declined").status_code == 200
    advance(stack, 30 * DAY)
    assert renew(stack) == 1
    s = sub(stack, sub_id)
    assert s["status"] == "past_due" and payment(stack, s["last_payment_id"])["decline_code"] == "card_declined"
    advance(stack, DAY)
    assert renew(stack) == 1
    s = sub(stack, sub_id)
    assert (s["status"], s["failed_attempts"], s["period"]) == ("active", 0, 2)
    # the next period stays anchored on the start, not on the retry's day
    assert at(s["current_period_start"]) == datetime(2026, 12, 23, 12)
    assert at(s["next_charge_at"]) == datetime(2027, 1, 23, 12)
    assert payment(stack, s["last_payment_id"])["status"] == "captured"
    assert types(stack, sub_id)[-2:] == ["subscription.payment_failed", "subscription.renewed"]


def test_twenty_concurrent_ticks_charge_a_due_period_once(stack):
    _, _, sub_id = subscribed(stack)
    advance(stack, 30 * DAY)
    barrier = threading.Barrier(20)
    made = []

    def tick():
        barrier.wait()
        made.append(stack.services.subscriptions.renew_due())

    threads = [threading.Thread(target=tick) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(made) == 20 and sum(made) == 1
    assert charges(stack) == 2  # the session's payment and one renewal
    assert RedisSandboxLedger(stack.services.redis).get(charge_key(sub_id, 2, 0)) is not None
    assert len(sub_payments(stack, sub_id)) == 2
    assert types(stack, sub_id) == ["subscription.created", "subscription.renewed"]


def test_cancel_stops_further_charges(stack):
    _, _, sub_id = subscribed(stack)
    r = post(stack, f"/v1/subscriptions/{sub_id}/cancel")
    assert r.status_code == 200
    s = r.get_json()
    assert (s["status"], s["cancel_reason"], s["next_charge_at"]) == ("canceled", "requested", None)
    assert at(s["canceled_at"]) == START
    again = post(stack, f"/v1/subscriptions/{sub_id}/cancel")
    assert again.status_code == 200 and again.get_json()["canceled_at"] == s["canceled_at"]
    assert types(stack, sub_id) == ["subscription.created", "subscription.canceled"]
    advance(stack, 40 * DAY)
    assert renew(stack) == 0 and charges(stack) == 1 and len(sub_payments(stack, sub_id)) == 1
    other = stack.token_for(stack.new_client("other"))
    assert post(stack, f"/v1/subscriptions/{sub_id}/cancel", token=other).status_code == 404
    assert stack.http.get(f"/v1/subscriptions/{sub_id}", headers=stack.auth(other)).status_code == 404


def test_a_subscription_session_submitted_twice_at_once_charges_once(stack):
    created = stack.create_session(intent="subscription")
    sid = created["session_id"]
    barrier = threading.Barrier(2)
    answers = []

    def submit():
        with stack.app.test_client() as http:
            barrier.wait()
            r = http.post(f"/v1/payment-sessions/{sid}/card", headers=stack.auth(),
                          json={"number": VISA, "exp_month": "12", "exp_year": "30", "cvc": "123"})
            answers.append((r.status_code, r.get_json()["outcome"]))

    threads = [threading.Thread(target=submit) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    # one approval; the duplicate reports the session as it saw it (approved, or pending when it lost the race
    # for the session lock before the winner moved the session to processing)
    assert (200, "approved") in answers and len(answers) == 2
    assert all(status == 200 and outcome in ("approved", "pending") for status, outcome in answers)
    assert stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth()).get_json()["status"] == "approved"
    assert charges(stack) == 1
    with stack.services.Session() as db:
        subs = db.query(Subscription).filter_by(session_id=sid).all()
        pays = db.query(Payment).filter_by(session_id=sid).all()
    assert len(subs) == 1 and len(pays) == 1 and pays[0].subscription_id == subs[0].id
    assert types(stack, subs[0].id) == ["subscription.created"]


def create(stack, token, key="sub-1", api_token=None, **fields):
    body = {"token": token, "amount": 1999, "currency": "USD", "interval": "month", "interval_count": 1,
            "customer_account_id": "ACME-1", **fields}
    return post(stack, "/v1/subscriptions", body, key=key, token=api_token)


def test_create_from_a_token_charges_the_first_period_once_per_key(stack):
    _, first = paid(stack)
    token = payment(stack, first)["token"]
    missing = create(stack, token, key=None)
    assert missing.status_code == 400 and missing.get_json()["error"]["code"] == "idempotency_key_required"
    r = create(stack, token, reference="PLAN-GOLD", conversation_id="conv-9", metadata={"plan": "gold"})
    assert r.status_code == 201, r.get_json()
    s = r.get_json()
    assert (s["status"], s["period"], s["amount"], s["reference"], s["session_id"]) == (
        "active", 1, 1999, "PLAN-GOLD", None)
    assert at(s["current_period_start"]) == START and at(s["next_charge_at"]) == datetime(2026, 12, 23, 12)
    p = payment(stack, s["last_payment_id"])
    assert (p["initiator"], p["status"], p["amount"], p["subscription_id"], p["intent"]) == (
        "merchant", "captured", 1999, s["subscription_id"], "subscription")
    evs = events(stack, s["subscription_id"])
    assert [(t, b["sequence"]) for t, b in evs] == [("subscription.created", 1)]
    assert evs[0][1]["data"]["last_payment_id"] == p["payment_id"]
    assert types(stack, p["payment_id"]) == ["payment.approved"]

    replay = create(stack, token, reference="PLAN-GOLD", conversation_id="conv-9", metadata={"plan": "gold"})
    assert replay.get_json()["subscription_id"] == s["subscription_id"]
    stack.services.redis.flushdb()  # even once the 24-hour replay is gone, the key finds the same subscription
    again = create(stack, token, reference="PLAN-GOLD", conversation_id="conv-9", metadata={"plan": "gold"})
    assert again.status_code == 200 and again.get_json()["subscription_id"] == s["subscription_id"]
    assert charges(stack) == 0  # nothing charged after the flush
    with stack.services.Session() as db:
        assert db.query(Subscription).count() == 1
        assert db.query(Payment).filter_by(subscription_id=s["subscription_id"]).count() == 1

    listed = stack.http.get("/v1/subscriptions?conversation_id=conv-9&status=active", headers=stack.auth())
    assert [x["subscription_id"] for x in listed.get_json()["data"]] == [s["subscription_id"]]
    assert stack.http.get("/v1/subscriptions?status=canceled", headers=stack.auth()).get_json()["data"] == []


def test_tokens_of_other_clients_are_not_found(stack):
    _, first = paid(stack)
    token = payment(stack, first)["token"]
    other = stack.token_for(stack.new_client("other"))
    r = create(stack, token, api_token=other)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "token_not_found"
    assert create(stack, "tok_doesnotexist", key="k2").get_json()["error"]["code"] == "token_not_found"
    assert decline_next(stack, "tok_doesnotexist", 1).get_json()["error"]["code"] == "token_not_found"
    r = post(stack, f"/v1/sandbox/tokens/{token}/decline_next", {"count": 1}, token=other)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "token_not_found"
    assert decline_next(stack, token, 0).status_code == 400 and decline_next(stack, token, 101).status_code == 400
    with stack.services.Session() as db:
        assert db.query(Subscription).count() == 0


def test_a_future_start_is_charged_by_the_worker_and_a_declined_first_charge_is_past_due(stack):
    _, first = paid(stack)
    token = payment(stack, first)["token"]
    r = create(stack, token, start_at="2027-01-31T09:00:00Z")
    s = r.get_json()
    assert r.status_code == 201 and (s["status"], s["period"], s["last_payment_id"]) == ("active", 0, None)
    assert s["current_period_start"] is None and s["next_charge_at"] == "2027-01-31T09:00:00Z"
    assert types(stack, s["subscription_id"]) == ["subscription.created"]
    advance(stack, int((datetime(2027, 1, 31, 9) - START).total_seconds()))
    assert renew(stack) == 1
    s = sub(stack, s["subscription_id"])
    assert (s["period"], s["current_period_end"]) == (1, "2027-02-28T09:00:00Z")  # calendar months from Jan 31
    advance(stack, 28 * DAY)
    assert renew(stack) == 1
    s = sub(stack, s["subscription_id"])
    assert (s["period"], s["current_period_end"]) == (2, "2027-03-31T09:00:00Z")

    assert decline_next(stack, token, 1).status_code == 200
    declined = create(stack, token, key="sub-2").get_json()
    assert (declined["status"], declined["failed_attempts"], declined["period"]) == ("past_due", 1, 0)
    assert types(stack, declined["subscription_id"]) == ["subscription.created", "subscription.payment_failed"]
    assert types(stack, declined["last_payment_id"]) == ["payment.declined"]


def test_a_charge_the_gateway_never_made_is_a_failed_attempt_once_reconciled(stack):
    _, _, sub_id = subscribed(stack)
    stack.services.gateway.inject_fault("charge_saved_card", "timeout")  # nothing reached the gateway
    advance(stack, 30 * DAY)
    assert renew(stack) == 1
    assert sub(stack, sub_id)["status"] == "active" and renew(stack) == 0
    advance(stack, stack.services.settings.reconcile_after_seconds)
    assert stack.services.merchant.reconcile_due() == 1  # the payment's own reconciler may settle it first
    assert stack.services.subscriptions.reconcile_due() == 1
    s = sub(stack, sub_id)
    assert (s["status"], s["failed_attempts"], s["period"]) == ("past_due", 1, 1)
    failed = payment(stack, s["last_payment_id"])
    assert (failed["status"], failed["decline_code"]) == ("failed", "gateway_no_payment")
    assert types(stack, sub_id) == ["subscription.created", "subscription.payment_failed"]
    advance(stack, DAY)
    assert renew(stack) == 1 and sub(stack, sub_id)["status"] == "active"
    assert charges(stack) == 2


def test_an_unknown_answer_keeps_the_claim_until_reconciled(stack):
    _, _, sub_id = subscribed(stack)
    stack.services.gateway.inject_fault("charge_saved_card", "lost")  # charged, answer lost
    advance(stack, 30 * DAY)
    assert renew(stack) == 1
    s = sub(stack, sub_id)
    assert (s["status"], s["period"], s["failed_attempts"]) == ("active", 1, 0)
    assert renew(stack) == 0  # the claim stays: no second charge
    assert stack.services.subscriptions.reconcile_due() == 0  # too early
    advance(stack, stack.services.settings.reconcile_after_seconds)
    assert stack.services.subscriptions.reconcile_due() == 1
    s = sub(stack, sub_id)
    assert (s["status"], s["period"]) == ("active", 2)
    assert payment(stack, s["last_payment_id"])["status"] == "captured"
    assert charges(stack) == 2
    assert types(stack, sub_id) == ["subscription.created", "subscription.renewed"]
    assert types(stack, s["last_payment_id"]) == ["payment.approved"]
