"""Concurrent duplicate card submissions of one session (docs/api.md, "Voice"): however many identical
submissions arrive at once, through one app or two app instances on the same database and Redis, the gateway
is asked once, and every duplicate answers the first submission's outcome (``processing`` while the gateway's
answer is unknown), never ``pending``. A first submission that started no attempt (``busy``) leaves each
duplicate to be processed as its own submission."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from payments import submission
from payments.models import PaymentAttempt
from tokenizer.gateways.sandbox import TIMEOUT_CARD, RedisSandboxLedger

from .money import VISA

DECLINE = "4000000000000002"
N = 150
ROOT = Path(__file__).resolve().parents[2]


def card(number: str) -> dict:
    return {"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123"}


def burst(stacks, token: str, sid: str, number: str, n: int = N) -> list[tuple[int, dict]]:
    """``n`` identical voice submissions of ``sid`` released at once from ``n`` threads, spread over ``stacks``
    (each thread its own test client); returns ``(status_code, body)`` per submission."""
    barrier = threading.Barrier(n)
    answers: list = [None] * n

    def one(i: int) -> None:
        http = stacks[i % len(stacks)].app.test_client()
        try:
            barrier.wait(timeout=60)
            r = http.post(f"/v1/payment-sessions/{sid}/card", json=card(number),
                          headers={"Authorization": f"Bearer {token}"})
            answers[i] = (r.status_code, r.get_json())
        except Exception as exc:  # noqa: BLE001 — reported by the caller's assertions
            answers[i] = (None, {"exception": repr(exc)})

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads), "submissions still running after 120 s"
    return answers


def outcomes(answers) -> dict[str, int]:
    counted: dict[str, int] = {}
    for status, body in answers:
        key = body.get("outcome") if status == 200 else f"http {status}: {body}"
        counted[key] = counted.get(key, 0) + 1
    return counted


def attempts_of(stack, sid: str) -> int:
    with stack.services.Session() as db:
        return db.scalar(select(func.count()).select_from(PaymentAttempt).where(PaymentAttempt.session_id == sid))


def ledger_entries(stack, sid: str) -> list[dict]:
    """The sandbox gateway's authorizations of ``sid`` (one entry per idempotency key ``<sid>:<n>:authorize``)."""
    ledger = RedisSandboxLedger(stack.services.redis)
    keys = [k.decode() if isinstance(k, bytes) else k for k in stack.services.redis.hkeys(ledger.hash_key)]
    return [ledger.get(k) for k in keys if k.startswith(f"{sid}:")]


class Gate:
    """Holds every gateway authorization until each of ``n`` submitting threads has read the session, so all of
    them are duplicates of the one attempt whatever the machine's speed (the test's way of keeping the race
    window open: nothing of the processing is replaced, the real sandbox answers)."""

    def __init__(self, stacks, sid: str, n: int):
        self.sid, self.n = sid, n
        self.readers: set[int] = set()
        self.lock = threading.Lock()
        self.all_read = threading.Event()
        for stack in stacks:
            processor = stack.services.payments
            processor.gateway = _GatedGateway(processor.gateway, self)
            processor.sessions = _CountingSessions(processor.sessions, self)

    def read(self, session_id: str) -> None:
        if session_id != self.sid:
            return
        with self.lock:
            self.readers.add(threading.get_ident())
            if len(self.readers) >= self.n:
                self.all_read.set()


class _GatedGateway:
    def __init__(self, inner, gate: Gate):
        self._inner, self._gate = inner, gate

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def authorize(self, request):
        assert self._gate.all_read.wait(timeout=60), f"only {len(self._gate.readers)} submissions read the session"
        return self._inner.authorize(request)


class _CountingSessions:
    def __init__(self, inner, gate: Gate):
        self._inner, self._gate = inner, gate

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def get(self, client_id, session_id):
        s = self._inner.get(client_id, session_id)
        self._gate.read(session_id)
        return s


@pytest.fixture(params=["one app", "two apps"])
def stacks(request, stack_factory):
    """One app, or two app instances on the same database and Redis (each with its own services and pools); the
    sandbox gateway answers after 200 ms, so the race window is wide. Admission control is off: a :class:`Gate`
    holds every submission inside its request until all have read the session, which a few admission slots per app
    (app/admission.py) would never let happen; the gunicorn test below runs with it on."""
    env = {"SANDBOX_LATENCY_MS": 200, "ADMISSION_SLOTS": 0}
    first = stack_factory(**env)
    if request.param == "one app":
        return [first]
    return [first, stack_factory(**env)]


@pytest.mark.parametrize("latency_ms", [0, 200])
def test_identical_submissions_answer_approved_with_one_authorization(stack_factory, latency_ms):
    one = stack_factory(SANDBOX_LATENCY_MS=latency_ms)
    two = stack_factory(SANDBOX_LATENCY_MS=latency_ms)
    sid = one.create_session(channel="voice")["session_id"]
    answers = burst([one, two], one.token, sid, VISA)
    assert outcomes(answers) == {"approved": N}
    assert all(body["status"] == "approved" and body["card_last4"] == "4242" for _, body in answers)
    entries = ledger_entries(one, sid)
    assert [e["status"] for e in entries] == ["approved"] and len(RedisSandboxLedger(one.services.redis).charges()) == 1
    assert attempts_of(one, sid) == 1


def test_identical_submissions_of_a_declined_card_all_answer_declined_and_use_one_attempt(stacks):
    first = stacks[0]
    sid = first.create_session(channel="voice")["session_id"]
    Gate(stacks, sid, N)
    answers = burst(stacks, first.token, sid, DECLINE)
    assert outcomes(answers) == {"declined": N}
    assert all((b["status"], b["decline_code"], b["attempts_remaining"]) == ("pending", "generic_decline", 2)
               for _, b in answers)
    assert [e["status"] for e in ledger_entries(first, sid)] == ["declined"]
    assert attempts_of(first, sid) == 1
    view = first.http.get(f"/v1/payment-sessions/{sid}", headers=first.auth()).get_json()
    assert (view["status"], view["attempts"]) == ("pending", 1)


def test_identical_submissions_all_approved_when_every_one_read_the_pending_session(stacks):
    first = stacks[0]
    sid = first.create_session(channel="voice")["session_id"]
    Gate(stacks, sid, N)  # every submission saw the session pending before the one authorization ended
    answers = burst(stacks, first.token, sid, VISA)
    assert outcomes(answers) == {"approved": N}
    assert [e["status"] for e in ledger_entries(first, sid)] == ["approved"]
    assert attempts_of(first, sid) == 1


def test_identical_submissions_answer_processing_while_the_gateway_answer_is_unknown(stacks, monkeypatch):
    monkeypatch.setattr(submission, "DUPLICATE_WAIT_SECONDS", 3.0)  # how long a duplicate waits for an outcome
    first = stacks[0]
    sid = first.create_session(channel="voice")["session_id"]
    answers = burst(stacks, first.token, sid, TIMEOUT_CARD)  # the sandbox's gateway timeout: outcome unknown
    assert outcomes(answers) == {"processing": N}
    assert all(b["status"] == "processing" for _, b in answers)
    assert attempts_of(first, sid) == 1


def test_duplicates_of_a_busy_submission_are_processed_as_their_own(stacks):
    """The first submission started no attempt (another session of the customer is processing): each duplicate
    is then judged by itself — busy too — never left ``pending``."""
    first = stacks[0]
    stuck = first.create_session(channel="voice", customer_account_id="BUSY-1")["session_id"]
    r = first.http.post(f"/v1/payment-sessions/{stuck}/card", json=card(TIMEOUT_CARD), headers=first.auth())
    assert r.get_json()["outcome"] == "processing"
    sid = first.create_session(channel="voice", customer_account_id="BUSY-1")["session_id"]
    answers = burst(stacks, first.token, sid, VISA, n=40)  # each is processed in turn under the session lock
    assert outcomes(answers) == {"busy": 40}
    assert all((b["status"], b["attempts_remaining"]) == ("pending", 3) for _, b in answers)
    assert attempts_of(first, sid) == 0 and ledger_entries(first, sid) == []


# -- two real gunicorn instances on PostgreSQL ------------------------------------------------------------------
GUNICORN_SUBMISSIONS = 200


@pytest.fixture
def two_servers(db_url, redis_url, redis_client, state_dir):
    """Two gunicorn instances (the shipped gunicorn.conf.py, 2 workers each) on this test's PostgreSQL database and
    one Redis, the sandbox answering after 200 ms; yields ``(servers, api_client)``."""
    if not db_url.startswith("postgresql"):
        pytest.skip("two instances share one PostgreSQL database")
    from .test_serving import gunicorn_env, new_api_client, running_servers

    env = gunicorn_env(db_url, redis_url, state_dir, PAYGATE_SANDBOX_LATENCY_MS="200", PAYGATE_WEB_WORKERS="2")
    client = new_api_client(db_url, "duplicates")
    with running_servers(env, state_dir, "duplicates", count=2) as servers:
        yield servers, client


def test_two_gunicorn_instances_on_postgresql_answer_every_duplicate_with_the_one_outcome(two_servers, redis_client):
    servers, client = two_servers
    r = httpx.post(f"{servers[0].base}/oauth/token", data={"grant_type": "client_credentials"},
                   auth=(client.client_id, client.client_secret), timeout=30)
    assert r.status_code == 200, r.text
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    r = httpx.post(f"{servers[0].base}/v1/payment-sessions", headers=auth, timeout=30, json={
        "conversation_id": "conv-dup", "participant_id": "part-dup", "customer_account_id": "DUP-1",
        "amount": 2500, "currency": "USD", "channel": "voice", "reference": "INV-DUP"})
    assert r.status_code == 201, r.text
    sid = r.json()["session_id"]

    barrier = threading.Barrier(GUNICORN_SUBMISSIONS)
    answers: list = [None] * GUNICORN_SUBMISSIONS

    def one(i: int) -> None:
        try:
            with httpx.Client(base_url=servers[i % 2].base, timeout=60) as c:
                barrier.wait(timeout=60)
                r = c.post(f"/v1/payment-sessions/{sid}/card", headers=auth, json=card(VISA))
                answers[i] = (r.status_code, r.json())
        except Exception as exc:  # noqa: BLE001 — reported by the assertions below
            answers[i] = (None, {"exception": repr(exc)})

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(GUNICORN_SUBMISSIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert outcomes(answers) == {"approved": GUNICORN_SUBMISSIONS}
    ledger = RedisSandboxLedger(redis_client)
    keys = [k.decode() for k in redis_client.hkeys(ledger.hash_key)]
    assert [k for k in keys if k.startswith(f"{sid}:")] == [f"{sid}:1:authorize"]
    assert len(ledger.charges()) == 1
    view = httpx.get(f"{servers[1].base}/v1/payment-sessions/{sid}", headers=auth, timeout=30).json()
    assert (view["status"], view["attempts"]) == ("approved", 1)
