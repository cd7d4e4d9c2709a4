"""The gateway circuit breaker (docs/api.md, "Gateway circuit breaker"): slow calls or technical failures in a
row open it for every instance, card submissions then go to an agent (``automation_unavailable``) without a
gateway call, and after the cooldown one probe closes (or reopens) it. Two app instances share one Redis and
one database; the sandbox gateway's latency (``PAYGATE_SANDBOX_LATENCY_MS``) makes calls slow for real."""

from __future__ import annotations

import itertools
import threading

from tokenizer.gateways.sandbox import TIMEOUT_CARD, RedisSandboxLedger

from .money import VISA, advance, paid, payment, post, types

LOW = {"BREAKER_LATENCY_SECONDS": "0.1", "BREAKER_WINDOW": "3", "BREAKER_COOLDOWN_SECONDS": "60"}
_accounts = itertools.count()


def status(stack) -> dict:
    r = stack.http.get("/v1/gateway-status", headers=stack.auth())
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def submit(stack, number=VISA, *, http=None) -> tuple[str, dict]:
    """A new session (its own customer, so no busy answer) and a voice card submission; ``(session_id, body)``."""
    created = stack.create_session(customer_account_id=f"ACCT-{next(_accounts)}")
    sid = created["session_id"]
    r = (http or stack.http).post(f"/v1/payment-sessions/{sid}/card", headers=stack.auth(),
                                  json={"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123"})
    assert r.status_code == 200, r.get_json()
    return sid, r.get_json()


def gateway_calls(stack, sid) -> dict | None:
    """The sandbox's record of the session's first authorization (None: the gateway was never asked)."""
    return RedisSandboxLedger(stack.services.redis).get(f"{sid}:1:authorize")


def session(stack, sid) -> dict:
    return stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth()).get_json()


def two_instances(stack_factory):
    """A slow instance (every sandbox call takes 150 ms, above the 100 ms limit) and a fast one, same Redis/DB."""
    stacks = stack_factory(SANDBOX_LATENCY_MS=150, **LOW), stack_factory(**LOW)
    for stack in stacks:  # each process caches the shared sandbox clock for 1 s; these see a move at once
        stack.services.sandbox_clock.cache_seconds = 0
    return stacks


def test_slow_calls_open_the_breaker_for_every_instance_and_a_probe_closes_it(stack_factory):
    slow, fast = two_instances(stack_factory)
    first = status(fast)
    assert first == {"gateway": "sandbox", "state": "closed", "since": None, "recent_latency_ms": None}

    for _ in range(2):
        assert submit(slow)[1]["outcome"] == "approved"
    assert status(slow)["state"] == "closed"  # two slow calls are not a window of three yet
    assert submit(slow)[1]["outcome"] == "approved"  # the third slow call is still charged...
    opened = status(fast)  # ...and opens the breaker, on the other instance too
    assert opened["state"] == "open" and opened["recent_latency_ms"] >= 150
    assert opened["since"] == "2026-11-23T12:00:00Z"

    before = len(RedisSandboxLedger(fast.services.redis).charges())
    sid, body = submit(fast)  # the fast instance does not call the gateway while the breaker is open
    assert (body["outcome"], body["decline_code"]) == ("requires_agent", "automation_unavailable")
    assert gateway_calls(fast, sid) is None
    assert len(RedisSandboxLedger(fast.services.redis).charges()) == before
    v = session(fast, sid)
    assert (v["status"], v["decline_code"], v["attempts"]) == ("requires_agent", "automation_unavailable", 1)
    assert types(fast, sid)[-1] == "payment_session.requires_agent"

    advance(fast, 59)
    assert status(slow)["state"] == "open"
    assert submit(slow)[1]["decline_code"] == "automation_unavailable"
    advance(fast, 1)  # the cooldown is business time: the sandbox clock moves it for every instance
    half = status(slow)
    assert (half["state"], half["since"]) == ("half_open", "2026-11-23T12:01:00Z")

    # one probe for all instances: while the fast instance's probe is admitted (held after its admission, when its
    # card is sealed, just before the gateway call: the hold is not gateway latency), the slow one refuses
    entered, release = threading.Event(), threading.Event()
    inner = fast.services.payments.vault

    class Held:
        def __getattr__(self, name):
            return getattr(inner, name)

        def seal(self, card):
            entered.set()
            assert release.wait(30)
            return inner.seal(card)

    fast.services.payments.vault = Held()
    answers = {}
    probe = threading.Thread(target=lambda: answers.update(probe=submit(fast, http=fast.app.test_client())))
    probe.start()
    assert entered.wait(30)
    other_sid, other = submit(slow)
    assert (other["outcome"], other["decline_code"]) == ("requires_agent", "automation_unavailable")
    assert gateway_calls(slow, other_sid) is None
    release.set()
    probe.join(30)
    fast.services.payments.vault = inner
    probe_sid, probe_body = answers["probe"]
    assert probe_body["outcome"] == "approved" and gateway_calls(fast, probe_sid) is not None
    closed = status(slow)
    assert closed["state"] == "closed" and closed["recent_latency_ms"] < 100
    assert submit(fast)[1]["outcome"] == "approved"


def test_a_slow_probe_is_charged_but_reopens_the_breaker(stack_factory):
    slow = stack_factory(SANDBOX_LATENCY_MS=150, **LOW)
    for _ in range(3):
        submit(slow)
    assert status(slow)["state"] == "open"
    advance(slow, 60)
    sid, body = submit(slow)  # the probe: approved (the customer paid) but as slow as before
    assert body["outcome"] == "approved" and gateway_calls(slow, sid) is not None
    reopened = status(slow)
    assert (reopened["state"], reopened["since"]) == ("open", "2026-11-23T12:01:00Z")
    assert submit(slow)[1]["decline_code"] == "automation_unavailable"


def test_a_fraud_block_while_half_open_gives_the_probe_back(stack_factory):
    """The fraud screen and the breaker's admission are asked in one round trip: a submission the screen blocks
    never calls the gateway, so it must not keep the half-open probe from the next one."""
    slow, fast = two_instances(stack_factory)
    strict = stack_factory(FRAUD_CARD_SESSIONS_PER_HOUR=1, **LOW)  # the same card in a 2nd session blocks
    strict.services.sandbox_clock.cache_seconds = 0
    for _ in range(3):
        submit(slow)
    advance(fast, 60)
    assert status(strict)["state"] == "half_open"
    sid, body = submit(strict)
    assert body["outcome"] == "requires_agent" and gateway_calls(strict, sid) is None
    assert fast.services.redis.get("paygate:breaker:sandbox:probe") is None
    sid, body = submit(fast)  # the probe goes to the next submission, and a fast call closes the breaker
    assert body["outcome"] == "approved" and gateway_calls(fast, sid) is not None
    assert status(fast)["state"] == "closed"


def test_a_redis_that_lost_its_scripts_still_admits_and_records(stack):
    stack.services.redis.script_flush()
    sid, body = submit(stack)
    assert body["outcome"] == "approved" and gateway_calls(stack, sid) is not None
    assert status(stack)["recent_latency_ms"] is not None


def test_five_technical_failures_in_a_row_open_it_and_merchant_calls_count(stack):
    for _ in range(4):
        assert submit(stack, TIMEOUT_CARD)[1]["outcome"] == "processing"
    assert submit(stack)[1]["outcome"] == "approved"  # an answer ends the run of failures
    for _ in range(4):
        submit(stack, TIMEOUT_CARD)
    assert status(stack)["state"] == "closed"

    _, first = paid(stack, customer_account_id="ACCT-MIT")
    token = payment(stack, first)["token"]  # that approval ended the run again: four more timeouts
    for _ in range(4):
        submit(stack, TIMEOUT_CARD)
    stack.services.gateway.inject_fault("charge_saved_card", "timeout")
    r = post(stack, "/v1/payments", {"token": token, "amount": 1200, "currency": "USD",
                                     "customer_account_id": "ACCT-MIT"}, key="mit-timeout")
    assert r.get_json()["status"] == "processing"  # the fifth failure in a row: a merchant-initiated charge
    assert status(stack)["state"] == "open"

    sid, body = submit(stack)
    assert (body["outcome"], body["decline_code"]) == ("requires_agent", "automation_unavailable")
    assert gateway_calls(stack, sid) is None
    # merchant-initiated charges are not refused by the breaker (they have their own retries)
    r = post(stack, "/v1/payments", {"token": token, "amount": 1200, "currency": "USD",
                                     "customer_account_id": "ACCT-MIT"}, key="mit-while-open")
    assert r.status_code == 201 and r.get_json()["status"] == "captured", r.get_json()


def test_gateway_status_needs_a_token_and_is_documented(stack):
    assert stack.http.get("/v1/gateway-status").status_code == 401
    doc = stack.http.get("/v1/openapi.json").get_json()
    operation = doc["paths"]["/v1/gateway-status"]["get"]
    assert operation["operationId"] == "getGatewayStatus" and "503" in operation["responses"]
