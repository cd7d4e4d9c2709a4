"""SandboxGateway: Stripe test-card outcomes, idempotency, ledgers (memory and real Redis), no PAN stored."""

from __future__ import annotations

import hashlib
import json
import threading

import pytest

from tokenizer.cards import Card
from tokenizer.gateways import sandbox
from tokenizer.gateways.base import AuthorizationRequest, GatewayStatus
from tokenizer.gateways.sandbox import MemorySandboxLedger, RedisSandboxLedger, SandboxGateway

A, D, B, U, F = (GatewayStatus.APPROVED, GatewayStatus.DECLINED, GatewayStatus.BLOCKED, GatewayStatus.UNAVAILABLE,
                 GatewayStatus.FAILED)


def req(number="4242424242424242", key="ps_1:1:authorize", cvc="123", amount=2500, currency="USD", capture=True,
        exp_month=12, metadata=None):
    return AuthorizationRequest(amount=amount, currency=currency, idempotency_key=key, capture=capture,
                                card=Card(number, exp_month, 2030, cvc, "Ada Lovelace"),
                                description="paygate charge INV-1",
                                metadata=metadata if metadata is not None else {"paygate_session_id": "ps_1"})


@pytest.mark.parametrize("number, status, code, risk", [
    ("4242424242424242", A, None, "normal"),
    ("4000000000000002", D, "generic_decline", "normal"),
    ("4000000000009995", D, "insufficient_funds", "normal"),
    ("4000000000000069", D, "expired_card", "normal"),
    ("4000000000000127", D, "incorrect_cvc", "normal"),
    ("4000000000000119", D, "processing_error", "normal"),
    ("4000000000009987", D, "lost_card", "normal"),
    ("4000000000009979", D, "stolen_card", "normal"),
    ("4000000000006975", D, "card_velocity_exceeded", "normal"),
    ("4100000000000019", B, "fraudulent", "highest"),
    ("4000000000004954", B, "fraudulent", "highest"),
    ("4000000000009235", A, None, "elevated"),
    # other brands' published test numbers
    ("378282246310005", A, None, "normal"),
    ("371449635398431", A, None, "normal"),
    ("5555555555554444", A, None, "normal"),
    ("2223003122003222", A, None, "normal"),
    ("5200828282828210", A, None, "normal"),
    ("5105105105105100", A, None, "normal"),
    ("6011111111111117", A, None, "normal"),
    ("6011000990139424", A, None, "normal"),
    ("3056930009020004", A, None, "normal"),
    ("36227206271667", A, None, "normal"),
    ("3566002020360505", A, None, "normal"),
    ("6200000000000005", A, None, "normal"),
    ("6205500000000000004", A, None, "normal"),
    ("4000056655665556", A, None, "normal"),
    # any other Luhn-valid number approves; a Luhn-invalid one is an incorrect number
    ("4111111111111111", A, None, "normal"),
    ("4242424242424241", D, "incorrect_number", None),
])
def test_card_outcomes(number, status, code, risk):
    gw = SandboxGateway()
    result = gw.authorize(req(number))
    assert (result.status, result.decline_code, result.risk_level) == (status, code, risk)
    if status is A:
        assert result.message is None
    else:
        assert result.message and number not in result.message
    assert gw.identifier == "sandbox"


def test_fraud_flavoured_declines_show_the_generic_message():
    gw = SandboxGateway()
    generic = gw.authorize(req("4000000000000002", key="k1")).message
    assert gw.authorize(req("4000000000009987", key="k2")).message == generic
    assert gw.authorize(req("4100000000000019", key="k3")).message == generic
    assert gw.authorize(req("4000000000009995", key="k4")).message != generic


def test_incorrect_cvc_card_approves_without_a_cvc():
    gw = SandboxGateway()
    assert gw.authorize(req("4000000000000127", key="with", cvc="123")).decline_code == "incorrect_cvc"
    assert gw.authorize(req("4000000000000127", key="without", cvc=None)).status is A


def test_invalid_requests_fail_or_decline_without_a_reference():
    gw = SandboxGateway()
    assert gw.authorize(req(amount=0, key="a")).decline_code == "invalid_amount"
    assert gw.authorize(req(amount=0, key="a")).status is F
    assert gw.authorize(req(currency="US", key="c")).decline_code == "invalid_currency"
    bad_month = gw.authorize(req(exp_month=13, key="m"))
    assert (bad_month.status, bad_month.decline_code) == (D, "invalid_expiry_month")
    assert gw.ledger.charges() == []


def test_approved_reference_is_a_digest_of_the_idempotency_key():
    key = "ps_abc:1:authorize"
    result = SandboxGateway().authorize(req(key=key))
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    assert result.reference == f"pi_sbx_{digest}"
    assert SandboxGateway().authorize(req(key=key)).reference == result.reference  # deterministic
    assert SandboxGateway().authorize(req(key="ps_abc:2:authorize")).reference != result.reference


def test_same_key_returns_the_first_result_and_charges_once():
    gw = SandboxGateway()
    first = gw.authorize(req("4242424242424242", key="k"))
    again = gw.authorize(req("4000000000000002", key="k", amount=9999))  # different card and amount: ignored
    assert again == first and again.status is A
    charges = gw.ledger.charges()
    assert len(charges) == 1 and charges[0]["amount"] == 2500


def test_a_declined_key_stays_declined():
    gw = SandboxGateway()
    assert gw.authorize(req("4000000000009995", key="k")).status is D
    assert gw.authorize(req("4242424242424242", key="k")).decline_code == "insufficient_funds"
    assert gw.ledger.charges() == []


def test_timeout_card_is_unavailable_and_leaves_no_payment():
    from tokenizer.cards import luhn_valid

    assert luhn_valid(sandbox.TIMEOUT_CARD)
    assert sandbox.TIMEOUT_CARD in sandbox.__doc__
    gw = SandboxGateway()
    result = gw.authorize(req(sandbox.TIMEOUT_CARD, key="t"))
    assert result.status is U and result.reference is None and not result.approved
    assert gw.lookup("t") is None
    assert gw.ledger.get("t") is None


def test_lookup_returns_the_recorded_result():
    gw = SandboxGateway()
    assert gw.lookup("k") is None
    first = gw.authorize(req("4100000000000019", key="k"))
    assert gw.lookup("k") == first and first.status is B


def test_hold_is_recorded_with_capture_false():
    gw = SandboxGateway()
    assert gw.authorize(req(key="h", capture=False)).status is A
    (entry,) = gw.ledger.charges()
    assert entry["capture"] is False and entry["currency"] == "USD" and entry["last4"] == "4242"


def test_memory_ledger_first_wins():
    ledger = MemorySandboxLedger()
    stored = ledger.record("k", {"status": "approved", "amount": 1})
    assert stored == {"status": "approved", "amount": 1}
    assert ledger.record("k", {"status": "declined", "amount": 2}) == stored
    assert ledger.get("k") == stored and ledger.get("other") is None
    assert ledger.charges() == [stored]


def test_memory_ledger_returns_copies():
    ledger = MemorySandboxLedger()
    ledger.record("k", {"status": "approved", "metadata": {"a": "1"}})
    ledger.get("k")["metadata"]["a"] = "changed"
    assert ledger.get("k")["metadata"] == {"a": "1"}


def _assert_no_card_data(blob: str, number: str, cvc: str):
    assert number not in blob
    assert f'"{cvc}"' not in blob and "cvc" not in blob.lower()


def test_memory_ledger_entry_has_the_fields_and_no_card_data():
    gw = SandboxGateway()
    gw.authorize(req("5555555555554444", key="ps_9:1:authorize", cvc="987"))
    entry = gw.ledger.get("ps_9:1:authorize")
    assert {k: entry[k] for k in ("amount", "currency", "capture", "status", "last4", "brand")} == {
        "amount": 2500, "currency": "USD", "capture": True, "status": "approved", "last4": "4444",
        "brand": "mastercard"}
    assert entry["reference"].startswith("pi_sbx_") and entry["metadata"] == {"paygate_session_id": "ps_1"}
    _assert_no_card_data(json.dumps(entry), "5555555555554444", "987")


def test_redis_ledger_first_wins_and_stores_json(redis_client):
    ledger = RedisSandboxLedger(redis_client, prefix="t:")
    assert ledger.record("k", {"status": "approved", "amount": 1}) == {"status": "approved", "amount": 1}
    assert ledger.record("k", {"status": "declined", "amount": 2}) == {"status": "approved", "amount": 1}
    assert json.loads(redis_client.hget("t:ledger", "k")) == {"status": "approved", "amount": 1}
    assert ledger.get("missing") is None


def test_redis_ledger_concurrent_first_wins(redis_client):
    ledger = RedisSandboxLedger(redis_client)
    results, barrier = [], threading.Barrier(8)

    def worker(i):
        barrier.wait()
        results.append(SandboxGateway(ledger).authorize(req("4242424242424242" if i % 2 else "4000000000000002",
                                                            key="race")))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(results) == 8 and len(set(results)) == 1
    assert len(ledger.charges()) == (1 if results[0].approved else 0)


def test_redis_backed_gateway_charges_once_and_never_stores_the_pan(redis_client):
    ledger = RedisSandboxLedger(redis_client)
    gw = SandboxGateway(ledger=ledger)
    pans = ["4242424242424242", "378282246310005", "4000000000000002", "4100000000000019"]
    for i, pan in enumerate(pans):
        gw.authorize(req(pan, key=f"ps_{i}:1:authorize", cvc="4321" if pan.startswith("37") else "987"))
        gw.authorize(req(pan, key=f"ps_{i}:1:authorize", cvc="987"))  # a replay
    charges = ledger.charges()
    assert sorted(c["last4"] for c in charges) == ["0005", "4242"]
    # a second gateway on the same Redis (another process) sees the same results
    assert SandboxGateway(RedisSandboxLedger(redis_client)).lookup("ps_0:1:authorize").status is A
    for key in redis_client.keys("*"):
        blob = json.dumps({k.decode(): v.decode() for k, v in redis_client.hgetall(key).items()})
        for pan in pans:
            _assert_no_card_data(blob, pan, "987")
        assert "4321" not in blob


def test_redis_ledger_works_with_decoded_responses(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        client.delete("dec:ledger")
        gw = SandboxGateway(RedisSandboxLedger(client, prefix="dec:"))
        assert gw.authorize(req(key="d")).status is A
        assert gw.lookup("d").status is A and len(gw.ledger.charges()) == 1
    finally:
        client.delete("dec:ledger")
        client.close()


def test_repr_never_shows_card_data():
    request = req("4242424242424242", cvc="987")
    assert "4242424242424242" not in repr(request) and "987" not in repr(request)
    assert "4242" not in repr(SandboxGateway())
