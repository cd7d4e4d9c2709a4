"""Card submissions through the hosted page (Flask test client, real DB + Redis, sandbox gateway):
every outcome, its status transitions and events, single-submit, fraud pre-screen and reconciliation."""

from __future__ import annotations

import json
import re
import threading

import pytest

from callbacks.models import Event
from payments.models import Payment, PaymentAttempt
from tokenizer.gateways.sandbox import RedisSandboxLedger
from tokenizer.models import VaultCard

VISA = "4242 4242 4242 4242"
DECLINE = "4000 0000 0000 0002"
RADAR_BLOCK = "4100 0000 0000 0019"


def _path(url: str) -> str:
    return url.replace("http://127.0.0.1:8000", "")


def open_form(stack, checkout_url: str, http=None) -> dict:
    """GETs the page and returns the hidden fields a browser would send back."""
    html = (http or stack.http).get(_path(checkout_url)).get_data(as_text=True)
    fields = dict(re.findall(r'name="(csrf_token|submission_id)"[^>]*value="([^"]*)"', html))
    if len(fields) < 2:  # attribute order may differ
        fields.update({n: v for v, n in re.findall(r'value="([^"]*)"[^>]*name="(csrf_token|submission_id)"', html)})
    assert "csrf_token" in fields and "submission_id" in fields, html[:2000]
    return fields


def pay(stack, checkout_url, number=VISA, expiry="12/30", cvc="123", name="Ada Lovelace", hidden=None):
    hidden = hidden or open_form(stack, checkout_url)
    return stack.http.post(_path(checkout_url), data={**hidden, "number": number, "expiry": expiry, "cvc": cvc,
                                                      "cardholder_name": name})


def events_of(stack, session_id):
    with stack.services.Session() as db:
        return [(e.type, json.loads(e.body)) for e in
                db.query(Event).filter_by(session_id=session_id).order_by(Event.sequence)]


def charges(stack):
    return RedisSandboxLedger(stack.services.redis).charges()


def view(stack, session_id):
    return stack.http.get(f"/v1/payment-sessions/{session_id}", headers=stack.auth()).get_json()


def test_approved_payment_end_to_end(stack):
    created = stack.create_session()
    sid = created["session_id"]
    r = pay(stack, created["checkout_url"])
    assert r.status_code == 303
    page = stack.http.get(_path(created["checkout_url"])).get_data(as_text=True)
    assert "approved" in page.lower() and "4242" in page and 'name="number"' not in page
    v = view(stack, sid)
    assert v["status"] == "approved" and v["outcome"] == "approved" and v["attempts"] == 1
    assert v["token"].startswith("tok_") and v["payment_id"].startswith("pay_")
    assert v["card"]["brand"] == "visa" and v["card"]["last4"] == "4242"
    assert (v["card"]["exp_month"], v["card"]["exp_year"]) == (12, 2030)
    assert v["card"]["fingerprint"].startswith("fp_") and v["gateway_reference"].startswith("pi_")
    evs = events_of(stack, sid)
    assert [t for t, _ in evs] == ["payment.approved"]
    data = evs[0][1]["data"]
    assert data["token"] == v["token"] and data["card"]["last4"] == "4242" and evs[0][1]["sequence"] == 1
    assert len(charges(stack)) == 1
    with stack.services.Session() as db:
        vaulted = db.get(VaultCard, v["token"])
        assert b"4242424242424242" not in vaulted.ciphertext
        opened = stack.services.vault.open(vaulted)
        assert opened.number == "4242424242424242"
        assert db.query(Payment).filter_by(session_id=sid).one().status == "captured"


def test_hold_intent_authorizes_without_capture(stack):
    created = stack.create_session(intent="hold")
    pay(stack, created["checkout_url"])
    with stack.services.Session() as db:
        assert db.query(Payment).filter_by(session_id=created["session_id"]).one().status == "authorized"
    assert charges(stack)[0]["capture"] is False


def test_decline_then_retry_then_approve(stack):
    created = stack.create_session()
    sid = created["session_id"]
    r = pay(stack, created["checkout_url"], number=DECLINE)
    assert r.status_code == 200 and "declined" in r.get_data(as_text=True).lower()  # the form again, told why
    v = view(stack, sid)
    assert v["status"] == "pending" and v["attempts"] == 1 and v["decline_code"] == "generic_decline"
    assert v["outcome"] == "declined" and "declined" in v["message"].lower()
    page = stack.http.get(_path(created["checkout_url"])).get_data(as_text=True)
    assert "declined" in page.lower() and 'name="number"' in page  # retry allowed
    pay(stack, created["checkout_url"], number=VISA)
    v = view(stack, sid)
    assert v["status"] == "approved" and v["attempts"] == 2 and v["decline_code"] is None
    evs = events_of(stack, sid)
    assert [t for t, _ in evs] == ["payment.declined", "payment.approved"]
    assert evs[0][1]["data"]["status"] == "declined" and [b["sequence"] for _, b in evs] == [1, 2]


def test_max_attempts_declines_require_an_agent(stack):
    created = stack.create_session()
    sid = created["session_id"]
    for _ in range(3):
        pay(stack, created["checkout_url"], number="4000 0000 0000 9995")
    v = view(stack, sid)
    assert v["status"] == "requires_agent" and v["attempts"] == 3 and v["decline_code"] == "insufficient_funds"
    types = [t for t, _ in events_of(stack, sid)]
    assert types == ["payment.declined"] * 3 + ["payment_session.requires_agent"]
    page = stack.http.get(_path(created["checkout_url"])).get_data(as_text=True)
    assert "agent" in page.lower() and 'name="number"' not in page
    assert charges(stack) == []


def test_gateway_risk_block_requires_agent_without_approval(stack):
    created = stack.create_session()
    pay(stack, created["checkout_url"], number=RADAR_BLOCK)
    v = view(stack, created["session_id"])
    assert v["status"] == "requires_agent" and v["payment_id"] is None
    assert [t for t, _ in events_of(stack, created["session_id"])] == ["payment_session.requires_agent"]
    with stack.services.Session() as db:
        attempt = db.query(PaymentAttempt).filter_by(session_id=created["session_id"]).one()
        assert attempt.fraud_score == 1.0 and any(r["code"] == "gateway_risk_highest" for r in attempt.fraud_reasons)
    assert charges(stack) == []


def test_fraud_prescreen_blocks_before_the_gateway(stack_factory):
    stack = stack_factory(FRAUD_CARD_SESSIONS_PER_HOUR=1)
    sessions = [stack.create_session() for _ in range(4)]
    outcomes = []
    for created in sessions:
        pay(stack, created["checkout_url"], number=VISA)
        outcomes.append(view(stack, created["session_id"])["status"])
    assert outcomes[0] == "approved" and outcomes[-1] == "requires_agent"
    blocked = sessions[-1]["session_id"]
    with stack.services.Session() as db:
        attempt = db.query(PaymentAttempt).filter_by(session_id=blocked).one()
        assert attempt.fraud_score >= 0.8 and any(r["code"] == "card_velocity" for r in attempt.fraud_reasons)
    assert len(charges(stack)) == outcomes.count("approved")  # the blocked one never reached the gateway


def test_invalid_card_shows_field_errors_and_uses_no_attempt(stack):
    created = stack.create_session()
    r = pay(stack, created["checkout_url"], number="4242 4242 4242 4241", expiry="01/20", cvc="1")
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "not valid" in html and "expired" in html and "security code" in html.lower()
    assert "4242424242424241" not in html and "4242 4242 4242 4241" not in html
    assert view(stack, created["session_id"])["attempts"] == 0


def test_missing_csrf_token_is_rejected(stack):
    created = stack.create_session()
    r = stack.http.post(_path(created["checkout_url"]), data={"number": VISA, "expiry": "12/30", "cvc": "123",
                                                              "cardholder_name": "A"})
    assert r.status_code == 400
    assert view(stack, created["session_id"])["attempts"] == 0 and charges(stack) == []


def test_resubmitting_the_same_form_charges_once(stack):
    created = stack.create_session()
    hidden = open_form(stack, created["checkout_url"])
    first = pay(stack, created["checkout_url"], hidden=hidden)
    second = pay(stack, created["checkout_url"], hidden=hidden)
    assert first.status_code == second.status_code == 303
    assert len(charges(stack)) == 1
    assert [t for t, _ in events_of(stack, created["session_id"])] == ["payment.approved"]


def test_concurrent_submissions_charge_once(stack):
    created = stack.create_session()
    browsers = [stack.app.test_client() for _ in range(6)]
    forms = [(b, open_form(stack, created["checkout_url"], http=b)) for b in browsers]
    barrier = threading.Barrier(len(forms))
    results = []

    def go(browser, hidden):
        barrier.wait()
        results.append(pay_with(browser, created["checkout_url"], hidden))

    threads = [threading.Thread(target=go, args=f) for f in forms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(results) == len(forms) and all(r == 303 for r in results)
    assert len(charges(stack)) == 1
    v = view(stack, created["session_id"])
    assert v["status"] == "approved" and v["attempts"] == 1


def pay_with(client, checkout_url, hidden):
    return client.post(_path(checkout_url), data={**hidden, "number": VISA, "expiry": "12/30", "cvc": "123",
                                                  "cardholder_name": "Ada"}).status_code


def test_lost_lock_still_cannot_charge_twice(stack):
    """With the Redis lock gone, the compare-and-set on (status, attempts) is what stops a second charge."""
    created = stack.create_session()
    sid = created["session_id"]
    processor = stack.services.payments
    from payments.submission import CardInput
    s = stack.services.sessions.get(None, sid)
    card = CardInput("4242424242424242", 12, 2030, "123", "Ada")
    from tokenizer.cards import validate_card
    checked = validate_card("4242424242424242", 12, 2030, "123", today=stack.clock().date(),
                            allowed_brands=("visa",))
    assert processor._start_attempt(s, checked.card, source="checkout", client_ip=None, submission_id=None,
                                     fingerprint="fp_test")
    # a second submitter that holds its own lock but saw the same pending snapshot loses the CAS
    assert processor._start_attempt(s, checked.card, source="checkout", client_ip=None, submission_id=None,
                                     fingerprint="fp_test") is None
    del card


def test_gateway_timeout_stays_processing_until_reconciled(stack_factory):
    from tokenizer.gateways import sandbox

    stack = stack_factory(RECONCILE_AFTER_SECONDS=60)
    created = stack.create_session()
    sid = created["session_id"]
    pay(stack, created["checkout_url"], number=sandbox.TIMEOUT_CARD)
    v = view(stack, sid)
    assert v["status"] == "processing" and v["payment_id"] is None
    page = stack.http.get(_path(created["checkout_url"])).get_data(as_text=True)
    assert "confirming" in page.lower() and 'name="number"' not in page
    assert stack.services.payments.reconcile_due() == 0  # too early
    stack.clock.advance(61)
    assert stack.services.payments.reconcile_due() == 1
    v = view(stack, sid)
    assert v["status"] == "failed" and v["payment_id"] is None
    assert [t for t, _ in events_of(stack, sid)] == ["payment.failed"]


def test_pan_and_cvc_never_stored_outside_the_vault(stack):
    created = stack.create_session()
    pay(stack, created["checkout_url"], number=VISA, cvc="987")
    from sqlalchemy import inspect, text
    engine = stack.services.engine
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f"SELECT * FROM {table}")):
                for column, value in row._mapping.items():
                    if table == "vault_cards" and column in ("ciphertext", "wrapped_key", "nonce"):
                        continue
                    assert "4242424242424242" not in str(value), (table, column)
    for key in stack.services.redis.scan_iter("*"):
        raw = stack.services.redis.dump(key) or b""
        assert b"4242424242424242" not in key + raw


@pytest.mark.parametrize("number,code", [("4000 0000 0000 0069", "expired_card"),
                                         ("4000 0000 0000 0127", "incorrect_cvc"),
                                         ("4000 0000 0000 0119", "processing_error")])
def test_decline_codes_are_explained(stack, number, code):
    created = stack.create_session()
    pay(stack, created["checkout_url"], number=number)
    v = view(stack, created["session_id"])
    assert v["decline_code"] == code and v["status"] == "pending"


# ---- after a decline: the form keeps name and expiry (never the number or the CVC), the message takes the focus ----

def _tag(html: str, pattern: str) -> str:
    found = re.search(pattern, html)
    assert found, pattern
    return found.group(0)


def _input(html: str, name: str) -> str:
    return _tag(html, rf'<input[^>]*\bid="{name}"[^>]*>')


def _value(tag: str) -> str:
    found = re.search(r'\bvalue="([^"]*)"', tag)
    return found.group(1) if found else ""


def test_a_decline_keeps_name_and_expiry_but_never_the_number_or_cvc(stack):
    created = stack.create_session()
    r = pay(stack, created["checkout_url"], number=DECLINE, name="Ada Lovelace", expiry="11/31", cvc="739")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and view(stack, created["session_id"])["attempts"] == 1
    assert _value(_input(html, "cardholder_name")) == "Ada Lovelace" and _value(_input(html, "expiry")) == "11/31"
    assert _value(_input(html, "number")) == "" and _value(_input(html, "cvc")) == ""
    assert "0000 0002" not in html and "4000000000000002" not in html and 'value="739"' not in html
    # the message is the form's first element (after its hidden inputs) and takes the focus without scripts
    form = html[html.index('<form class="card-form"'):]
    first = re.sub(r'^<form[^>]*>\s*(<input[^>]*type="hidden"[^>]*>\s*)*', "", form)
    notice = _tag(first, r"^<div[^>]*>")
    assert 'id="decline-notice"' in notice and 'role="alert"' in notice and 'tabindex="-1"' in notice
    assert "autofocus" in notice
    # a decline of the card as a whole describes the number field without calling it invalid
    number = _input(html, "number")
    assert "decline-notice" in _tag(number, r'aria-describedby="[^"]*"') and "aria-invalid" not in number
    assert "aria-invalid" not in _input(html, "expiry") and "aria-invalid" not in _input(html, "cardholder_name")


def test_a_decline_about_one_field_marks_that_field(stack):
    created = stack.create_session()
    html = pay(stack, created["checkout_url"], number="4000 0000 0000 0069").get_data(as_text=True)  # expired_card
    expiry = _input(html, "expiry")
    assert 'aria-invalid="true"' in expiry and "decline-notice" in _tag(expiry, r'aria-describedby="[^"]*"')
    assert "aria-invalid" not in _input(html, "number")


def test_the_declined_form_posted_again_is_a_duplicate_and_a_reload_keeps_nothing(stack):
    created = stack.create_session()
    hidden = open_form(stack, created["checkout_url"])
    first = pay(stack, created["checkout_url"], number=DECLINE, hidden=hidden)
    again = pay(stack, created["checkout_url"], number=DECLINE, hidden=hidden)  # the browser's "resubmit"
    assert first.status_code == again.status_code == 200
    assert view(stack, created["session_id"])["attempts"] == 1 and charges(stack) == []
    html = stack.http.get(_path(created["checkout_url"])).get_data(as_text=True)
    assert 'id="decline-notice"' in html and "autofocus" not in html  # told again, but not a fresh answer
    assert _value(_input(html, "cardholder_name")) == "" and _value(_input(html, "expiry")) == ""


def test_the_last_decline_still_redirects_to_the_outcome(stack):
    created = stack.create_session()
    results = [pay(stack, created["checkout_url"], number="4000 0000 0000 9995").status_code for _ in range(3)]
    assert results == [200, 200, 303]


# ---- iframe messages: the allowed parent origins, rendered exactly ----

def _frame_origins(html: str) -> list:
    raw = _tag(html, r'data-frame-origins="[^"]*"').split("=", 1)[1].strip('"')
    return json.loads(raw.replace("&#34;", '"').replace("&quot;", '"').replace("&#39;", "'"))


def test_frame_origins_are_exact_origins_only(stack_factory):
    stack = stack_factory(FRAME_ANCESTORS="'self' https://Desk.Example.com:443/ https://*.example.org https: "
                                          "http://localhost:8080 example.net 'none' * https://desk.example.com")
    created = stack.create_session()
    html = stack.http.get(_path(created["checkout_url"])).get_data(as_text=True)
    assert _frame_origins(html) == ["'self'", "https://desk.example.com", "http://localhost:8080"]
    assert "*" not in _tag(html, r'data-frame-origins="[^"]*"')
    # the error pages carry them too (a broken link inside the frame still sizes it)
    broken = stack.http.get("/checkout/ps_nope?t=x").get_data(as_text=True)
    assert _frame_origins(broken) == ["'self'", "https://desk.example.com", "http://localhost:8080"]


def test_outcome_page_names_session_and_final_status_for_the_frame(stack):
    created = stack.create_session()
    pay(stack, created["checkout_url"])
    html = stack.http.get(_path(created["checkout_url"])).get_data(as_text=True)
    assert _frame_origins(html) == ["'self'", "http://127.0.0.1:8010"]
    section = _tag(html, r'<section class="outcome[^>]*>')
    assert f'data-session-id="{created["session_id"]}"' in section and 'data-outcome="approved"' in section
    form = stack.http.get(_path(stack.create_session()["checkout_url"])).get_data(as_text=True)
    assert "data-outcome" not in form
