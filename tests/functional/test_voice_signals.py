"""Voice signals and MOTO (docs/api.md, "Voice signals and MOTO"): the caller's number and call id on the card
endpoint, the fraud rules per caller number and per API client with their default tuning, and the entry mode
and MOTO flag of payments (the sandbox's record, Stripe's payment_method_options[card][moto])."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from payments.models import Payment, PaymentAttempt
from tests.fakes.stripe_server import FakeStripeServer
from tests.functional.money import post
from tests.functional.test_checkout_flow import pay
from tokenizer.declines import customer_message
from tokenizer.gateways.base import GatewayResult, GatewayStatus
from tokenizer.gateways.sandbox import RedisSandboxLedger

CALLER = "+13175550100"
CALLER_FORMS = ["tel:+13175550100", "sip:+13175550100@host;user=phone", "tel: +1 317 555 0100",
                "+13175550100", "sip:+13175550100@10.87.26.159:5060"]
_numbers = itertools.count(1)


def card(n: int | None = None) -> str:
    """A distinct Luhn-valid Visa number the sandbox approves (not one of its special test cards)."""
    n = next(_numbers) if n is None else n
    body = f"401288{n:09d}"
    total = 0
    for position, char in enumerate(reversed(body)):
        value = int(char) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return body + str((10 - total % 10) % 10)


class StolenCards:
    """The deployment's gateway, except that the cards in ``declined`` are declined by their "issuer"
    (``generic_decline``), as a card tester's list of stolen or closed cards is: the sandbox itself declines
    only a handful of test numbers. Counts the authorizations that reached it."""

    def __init__(self, inner, declined=()):
        self.inner = inner
        self.declined = set(declined)
        self.calls = 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def authorize(self, request):
        self.calls += 1
        if request.card.number in self.declined:
            return GatewayResult(GatewayStatus.DECLINED, decline_code="generic_decline",
                                 message=customer_message("generic_decline"),
                                 reference=f"pi_stolen_{request.idempotency_key.replace(':', '_')}")
        return self.inner.authorize(request)


def stolen_cards(stack, declined=()) -> StolenCards:
    wrapper = StolenCards(stack.services.payments.gateway, declined)
    stack.services.payments.gateway = wrapper
    return wrapper


def voice_session(stack, token=None, **overrides) -> str:
    body = {"conversation_id": "conv-voice", "customer_account_id": "ACME-1", "amount": 2500, "currency": "USD",
            "channel": "voice", **overrides}
    r = stack.http.post("/v1/payment-sessions", json=body, headers=stack.auth(token))
    assert r.status_code == 201, r.get_json()
    return r.get_json()["session_id"]


def submit(stack, session_id, number, *, ani=None, call_id=None, token=None) -> dict:
    body = {"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123"}
    if ani is not None:
        body["ani"] = ani
    if call_id is not None:
        body["call_id"] = call_id
    r = stack.http.post(f"/v1/payment-sessions/{session_id}/card", json=body, headers=stack.auth(token))
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def attempts_of(stack, session_id) -> list[PaymentAttempt]:
    with stack.services.Session() as db:
        return list(db.scalars(select(PaymentAttempt).where(PaymentAttempt.session_id == session_id)
                               .order_by(PaymentAttempt.number)))


def reason_codes(attempt: PaymentAttempt) -> list[str]:
    return [r["code"] for r in attempt.fraud_reasons]


def other_client_token(stack) -> str:
    return stack.token_for(stack.new_client(name="other-center"))


# -- caller numbers ----------------------------------------------------------------------------------------------

def test_sixty_sessions_from_one_caller_with_distinct_cards_are_stopped_at_the_fifth(stack):
    gateway = stolen_cards(stack)  # declines nothing: every card is good, only the caller is suspicious
    outcomes, sessions = [], []
    for i in range(60):
        sid = voice_session(stack)
        sessions.append(sid)
        outcomes.append(submit(stack, sid, card(), ani=CALLER_FORMS[i % len(CALLER_FORMS)],
                               call_id=f"call-{i}")["outcome"])
    stopped_at = outcomes.index("requires_agent") + 1
    # 3 distinct cards per caller per hour never score, the 4th scores 0.67, the 5th blocks (0.83)
    assert stopped_at == 5 and stopped_at < 60 // 6
    assert outcomes[:4] == ["approved"] * 4 and set(outcomes[4:]) == {"requires_agent"}
    assert gateway.calls == 4                             # a blocked attempt never reaches the gateway
    blocked = attempts_of(stack, sessions[4])[0]
    assert blocked.decline_code == "fraud_prescreen" and blocked.fraud_score >= 0.8
    assert reason_codes(blocked) == ["ani_cards"]
    assert "5 distinct cards from this caller number" in blocked.fraud_reasons[0]["detail"]
    assert CALLER not in str(blocked.fraud_reasons)       # reasons carry counts, not the number
    last = attempts_of(stack, sessions[-1])[0]
    assert set(reason_codes(last)) == {"ani_velocity", "ani_cards"} and last.fraud_score == 1.0
    assert {a.ani for sid in sessions for a in attempts_of(stack, sid)} == {CALLER}
    with stack.services.Session() as db:
        assert db.scalar(select(Payment.id).where(Payment.session_id == sessions[4])) is None
    keys = list(stack.services.redis.scan_iter("paygate:fraud:ani:*"))
    assert keys and not [k for k in keys if CALLER.encode() in k or CALLER[1:].encode() in k]  # digests only


def test_tel_and_sip_forms_of_one_number_are_one_caller(stack):
    first = voice_session(stack)
    assert submit(stack, first, card(), ani="tel:+13175550100", call_id="c-1")["outcome"] == "approved"
    sids = [first]
    for ani in ("sip:+13175550100@host;user=phone", "tel: +1 317 555 0100"):
        sids.append(voice_session(stack))
        assert submit(stack, sids[-1], card(), ani=ani)["outcome"] == "approved"
    sids.append(voice_session(stack))
    assert submit(stack, sids[-1], card(), ani="sip:+13175550100@host:5060")["outcome"] == "approved"
    fourth = attempts_of(stack, sids[-1])[0]
    assert reason_codes(fourth) == ["ani_cards"] and 0.6 < fourth.fraud_score < 0.8   # scored, not blocked
    assert "4 distinct cards" in fourth.fraud_reasons[0]["detail"]
    # another caller at the same moment is not affected
    other = voice_session(stack)
    assert submit(stack, other, card(), ani="tel:+13175550199")["outcome"] == "approved"
    assert attempts_of(stack, other)[0].fraud_reasons == []
    fifth = voice_session(stack)
    assert submit(stack, fifth, card(), ani="sip:+13175550100@host;user=phone")["outcome"] == "requires_agent"
    stored = [attempts_of(stack, sid)[0] for sid in sids]
    assert [a.ani for a in stored] == [CALLER] * 4 and stored[0].call_id == "c-1" and stored[1].call_id is None


def test_the_same_card_again_from_the_same_caller_is_not_a_new_card(stack):
    number = card()
    for _ in range(8):  # a caller paying eight bills with one card in an hour
        sid = voice_session(stack)
        assert submit(stack, sid, number, ani="tel:+13175550123")["outcome"] == "approved"
        assert attempts_of(stack, sid)[0].fraud_reasons == []


def test_an_ani_that_is_not_a_number_is_no_error_and_counts_nowhere(stack):
    for ani in ["anonymous", "sip:anonymous@anonymous.invalid", "3175550100", "", "tel:", "+1-800-FLOWERS",
                "sip:0b2c@127.0.0.1;user=ivr", "x" * 5000]:
        sid = voice_session(stack)
        body = submit(stack, sid, card(), ani=ani, call_id="call-anon")
        assert body["outcome"] == "approved", (ani, body)
        (attempt,) = attempts_of(stack, sid)
        assert attempt.ani is None and attempt.call_id == "call-anon" and attempt.fraud_reasons == []
    assert not [k for k in stack.services.redis.keys("paygate:fraud:ani:*")]


def test_ani_and_call_id_types_and_lengths(stack):
    sid = voice_session(stack)
    r = stack.http.post(f"/v1/payment-sessions/{sid}/card", headers=stack.auth(),
                        json={"number": card(), "exp_month": "12", "exp_year": "30", "cvc": "123",
                              "ani": 13175550100, "call_id": "c" * 201})
    assert r.status_code == 400
    assert r.get_json()["error"]["fields"] == {"ani": "must_be_string", "call_id": "too_long"}
    assert submit(stack, sid, card(), ani=None, call_id="")["outcome"] == "approved"
    assert attempts_of(stack, sid)[0].call_id is None


# -- card testing through one API client ---------------------------------------------------------------------------

def test_a_burst_of_declined_cards_through_one_client_is_stopped_early(stack):
    stolen = [card() for _ in range(60)]
    gateway = stolen_cards(stack, declined=stolen)
    outcomes, sessions = [], []
    for number in stolen:  # no IP (voice), no ANI: nothing but the client ties the attempts together
        sid = voice_session(stack)
        sessions.append(sid)
        outcomes.append(submit(stack, sid, number)["outcome"])
        stack.clock.advance(5)                            # 60 cards in five minutes
    stopped_at = outcomes.index("requires_agent") + 1
    # 15 distinct declined cards per client in 10 minutes never score; 24 block (0.5 × 24/15 = 0.8)
    assert stopped_at == 25 and stopped_at <= 60 // 2
    assert outcomes[:24] == ["declined"] * 24 and set(outcomes[24:]) == {"requires_agent"}
    assert gateway.calls == 24
    blocked = attempts_of(stack, sessions[24])[0]
    assert reason_codes(blocked) == ["client_card_testing"] and blocked.decline_code == "fraud_prescreen"
    assert "24 distinct cards declined for this API client in the last 10 minutes" in \
        blocked.fraud_reasons[0]["detail"]
    # the block is per client: another contact center on the same deployment is not affected
    token = other_client_token(stack)
    sid = voice_session(stack, token=token)
    assert submit(stack, sid, card(), token=token)["outcome"] == "approved"
    # and it ends with the window: ten minutes after the last decline the client's good cards go through
    stack.clock.advance(600)
    sid = voice_session(stack)
    assert submit(stack, sid, card())["outcome"] == "approved"


def test_retries_within_sessions_count_the_same(stack):
    """A tester that keys three cards per session (max_attempts) is stopped sooner: the session's own attempts
    add to the client's score."""
    stolen = [card() for _ in range(60)]
    stolen_cards(stack, declined=stolen)
    tried = 0
    outcome = None
    while tried < 60 and outcome != "requires_agent":
        sid = voice_session(stack)
        for _ in range(3):
            outcome = submit(stack, sid, stolen[tried])["outcome"]
            tried += 1
            if outcome != "declined":
                break
    assert outcome == "requires_agent" and tried <= 24


# -- the other side: a busy contact center ----------------------------------------------------------------------------

def test_a_busy_contact_centers_normal_mix_is_never_blocked(stack):
    """200 callers in one hour of business time, each with their own number and card; about one in six first
    cards is declined and the caller then pays with another card in the same call; a lunch peak of 60 callers in
    12 minutes declines one first card in four; some callers withhold their number, some call twice. Nobody is
    blocked or sent to an agent."""
    declined: set[str] = set()
    plan = []  # (ani, first card, second card or None), in call order with the seconds until the next call
    for i in range(200):
        peak = i >= 140
        ani = "anonymous" if i % 25 == 0 else (f"tel:+1317555{1000 + i}" if i % 2 else f"sip:+1317555{1000 + i}"
                                                                                        f"@10.0.0.1;user=phone")
        first = card()
        declines = i % 4 == 0 if peak else i % 6 == 0
        if declines:
            declined.add(first)
        plan.append((ani, first, card() if declines else None, 12 if peak else 20))
    for i in range(0, 40, 4):  # ten callers call back later in the hour and pay again with the same card
        plan.insert(100 + i, (plan[i][0], plan[i][2] or plan[i][1], None, 5))
    gateway = stolen_cards(stack, declined)
    scores, declines_seen = [], 0
    for ani, first, second, gap in plan:
        sid = voice_session(stack)
        outcome = submit(stack, sid, first, ani=ani)["outcome"]
        if second is not None:
            assert outcome == "declined"
            declines_seen += 1
            outcome = submit(stack, sid, second, ani=ani)["outcome"]
        assert outcome == "approved", (ani, [a.fraud_reasons for a in attempts_of(stack, sid)])
        scores += [a.fraud_score for a in attempts_of(stack, sid)]
        stack.clock.advance(gap)
    assert len(plan) == 210 and declines_seen == len(declined) >= 35      # a realistic share of declines
    assert max(scores) < 0.8 and gateway.calls == 210 + declines_seen
    with stack.services.Session() as db:
        assert db.scalar(select(PaymentAttempt.id).where(PaymentAttempt.outcome == "requires_agent")) is None


# -- entry mode and MOTO -------------------------------------------------------------------------------------------

def _payment(stack, session_id) -> dict:
    view = stack.http.get(f"/v1/payment-sessions/{session_id}", headers=stack.auth()).get_json()
    r = stack.http.get(f"/v1/payments/{view['payment_id']}", headers=stack.auth())
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def test_entry_mode_and_moto_in_the_sandbox(stack):
    sid = voice_session(stack)
    assert submit(stack, sid, "4242424242424242", ani=CALLER)["outcome"] == "approved"
    by_phone = _payment(stack, sid)
    assert by_phone["entry_mode"] == "dtmf" and by_phone["moto"] is True
    ledger = RedisSandboxLedger(stack.services.redis)
    assert ledger.get(f"{sid}:1:authorize")["moto"] is True
    assert ledger.get_object(by_phone["gateway_reference"])["moto"] is True

    created = stack.create_session()
    pay(stack, created["checkout_url"], number="4242 4242 4242 4242")
    on_page = _payment(stack, created["session_id"])
    assert on_page["entry_mode"] == "page" and on_page["moto"] is False
    assert ledger.get(f"{created['session_id']}:1:authorize")["moto"] is False

    r = post(stack, "/v1/payments", {"token": by_phone["token"], "amount": 900, "currency": "USD",
                                     "customer_account_id": "ACME-1"}, key="stored-1")
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["entry_mode"] == "stored" and r.get_json()["moto"] is False


def _stripe_stack(stack_factory, server, **env):
    return stack_factory(GATEWAY="stripe", STRIPE_API_KEY="sk_test_paygate", STRIPE_API_BASE=server.url, **env)


def test_stripe_gets_moto_for_dtmf_entry_only_when_switched_on(stack_factory):
    with FakeStripeServer() as server:
        stack = _stripe_stack(stack_factory, server, STRIPE_MOTO="true")
        sid = voice_session(stack)
        assert submit(stack, sid, "4242424242424242", ani=CALLER)["outcome"] == "approved"
        (by_phone,) = server.requests_to("/v1/payment_intents", "POST")
        assert by_phone["form"]["payment_method_options[card][moto]"] == "true"
        view = _payment(stack, sid)
        assert view["entry_mode"] == "dtmf" and view["moto"] is True

        created = stack.create_session()
        pay(stack, created["checkout_url"], number="4242 4242 4242 4242")
        on_page = server.requests_to("/v1/payment_intents", "POST")[-1]
        assert not [k for k in on_page["form"] if k.startswith("payment_method_options")]
        assert _payment(stack, created["session_id"])["moto"] is False

    with FakeStripeServer() as server:
        stack = _stripe_stack(stack_factory, server)  # PAYGATE_STRIPE_MOTO off (the default)
        sid = voice_session(stack)
        assert submit(stack, sid, "4242424242424242")["outcome"] == "approved"
        (intent,) = server.requests_to("/v1/payment_intents", "POST")
        assert not [k for k in intent["form"] if k.startswith("payment_method_options")]
        view = _payment(stack, sid)
        assert view["entry_mode"] == "dtmf" and view["moto"] is False
