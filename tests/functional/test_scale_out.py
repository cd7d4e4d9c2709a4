"""Scale-out and fault injection (docs/operations.md, "What the fault tests prove"): two gunicorn instances (the
shipped ``gunicorn.conf.py``) and two ``paygate worker`` processes on one PostgreSQL and one Redis, all private to
this module (:class:`tests.faultstack.FaultStack`), so stopping them disturbs no other test.

1. 1,000 concurrent identical card submissions of one session across both instances → one authorization, every
   answer the first submission's outcome (``processing`` while unknown), never ``pending``, no 5xx.
2. The delivery workers SIGKILLed again and again while callbacks are in flight → every event reaches the
   receiver (at least once), every delivery ends ``delivered``, one charge per session.
3. Redis stopped and started empty in the middle of a stream of payments, and
4. PostgreSQL stopped (``-m immediate``: a crash) and started in the middle of one → clean 503s with
   ``Retry-After`` (never a 500), no double charge, the instances and the workers reconnect by themselves, every
   session that answered 503 before its attempt began is still payable, every event delivered afterwards.

What "no double charge" is observed by. The sandbox gateway's ledger lives in Redis (``RedisSandboxLedger``: one
entry per idempotency key ``<session>:<attempt>:authorize``, first result wins), so a Redis restart wipes it.
What survives is the database: one ``payments`` row per approved session, carrying the idempotency key of the
attempt that was charged (``gateway_key``), and the ``payment_attempts`` rows, unique per (session, number). The
tests therefore check, per session: at most one payment (exactly one when the session is ``approved``), at most
one attempt with outcome ``approved``, and every approved authorization the ledger ever showed (read just before
Redis is stopped, and again at the end) is that payment's key — a charge the database does not know of, or two
charged keys for one session, fails the test. The compare-and-set on (status, attempts) is what makes a second
key impossible; the gateway's idempotency is what makes a replay of one key a single charge.

Synchronisation is by polling with deadlines (the receiver's slow answers are a simulated slow endpoint, not a
wait). The module's stack is shared by its tests (started once, about 10 s), each with its own API client and
callback receiver; every test leaves the stack healthy (both instances ready, both workers running).
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from callbacks.models import Delivery, Event
from kernel.db import make_engine, make_sessionmaker
from paygate.processes import wait_until
from payments.models import Payment, PaymentAttempt, PaymentSession
from tests.faultstack import FaultStack, postgres_available
from tokenizer.gateways.sandbox import RedisSandboxLedger

from .test_delivery import Receiver, Reply

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("faultstack")]

VISA = "4242424242424242"
CARD = {"number": VISA, "exp_month": "12", "exp_year": "30", "cvc": "123"}
DUPLICATES = 1000
LATENCY_MS = 200


@pytest.fixture(scope="module")
def stack(state_dir):
    if not postgres_available():
        pytest.skip("the scale-out tests need PostgreSQL 15")
    built = FaultStack(state_dir, {"PAYGATE_SANDBOX_LATENCY_MS": str(LATENCY_MS)})
    built.engine = make_engine(built.pg.url)
    built.Session = make_sessionmaker(built.engine)
    yield built
    built.engine.dispose()
    built.close()


@pytest.fixture
def fault_stack(stack):
    """The module's stack, healthy before the test and checked healthy after it: both instances ready, both
    workers running, no unhandled error in the gunicorn logs."""
    assert stack.ready() and stack.workers_alive()
    yield stack
    assert stack.workers_alive(), "a delivery worker exited by itself"
    assert stack.gunicorn_problems() == []
    wait_until(stack.ready, timeout=30, what="both instances ready again", error=AssertionError)


@pytest.fixture
def receiver(state_dir):
    r = Receiver(state_dir)
    r.server.handle_error = lambda *_: None  # a worker SIGKILLed mid-request resets its connection: expected here
    yield r
    r.close()


# -- helpers ---------------------------------------------------------------------------------------------------
def create_sessions(stack: FaultStack, auth: dict, n: int, prefix: str) -> list[str]:
    """``n`` voice sessions of distinct customers, created alternately through each instance."""
    ids = []
    with httpx.Client(timeout=30) as http:
        for i in range(n):
            r = http.post(f"{stack.servers[i % 2].base}/v1/payment-sessions", headers=auth, json={
                "conversation_id": f"conv-{prefix}-{i}", "participant_id": f"part-{i}",
                "customer_account_id": f"{prefix}-{i}", "amount": 1000 + i, "currency": "USD", "channel": "voice",
                "reference": f"INV-{prefix}-{i}"})
            assert r.status_code == 201, r.text
            ids.append(r.json()["session_id"])
    return ids


def pay(http: httpx.Client, base: str, auth: dict, sid: str) -> tuple[int, dict, str | None]:
    """One voice card submission: ``(status code, body, Retry-After)``."""
    r = http.post(f"{base}/v1/payment-sessions/{sid}/card", headers=auth, json=CARD)
    return r.status_code, r.json(), r.headers.get("Retry-After")


def view(stack: FaultStack, auth: dict, sid: str, instance: int = 1) -> dict:
    r = httpx.get(f"{stack.servers[instance].base}/v1/payment-sessions/{sid}", headers=auth, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def outbox(stack: FaultStack, client_id: str) -> dict[str, list[str]]:
    """``{event id: [status of each delivery]}`` for every event of ``client_id``."""
    with stack.Session() as db:
        rows = db.execute(select(Event.id, Delivery.status).join(Delivery, Delivery.event_id == Event.id, isouter=True)
                          .where(Event.client_id == client_id)).all()
    out: dict[str, list[str]] = {}
    for event_id, status in rows:
        out.setdefault(event_id, []).append(status)
    return out


def assert_everything_delivered(stack: FaultStack, client_id: str, receiver: Receiver, timeout: float = 60) -> Counter:
    """Waits until every delivery of ``client_id``'s events is ``delivered`` (none dead or pending) and checks
    the receiver got every event id at least once and nothing else; returns how often each id arrived."""

    def done():
        events = outbox(stack, client_id)
        return events if events and all(s == ["delivered"] for s in events.values()) else None

    try:
        events = wait_until(done, timeout=timeout, interval=0.2, what="every delivery delivered", error=AssertionError)
    except AssertionError:
        left = {e: s for e, s in outbox(stack, client_id).items() if s != ["delivered"]}
        raise AssertionError(f"{len(left)} events not delivered: {dict(list(left.items())[:5])}") from None
    received = Counter(receiver.event_ids())
    assert set(events) - set(received) == set(), "an event marked delivered never reached the receiver"
    assert set(received) - set(events) == set(), "the receiver got an event the outbox does not have"
    return received


def ledger_keys(stack: FaultStack) -> dict[str, dict]:
    """The sandbox gateway's authorizations now: ``{idempotency key: entry}``."""
    ledger = RedisSandboxLedger(stack.redis_client)
    raw = stack.redis_client.hgetall(ledger.hash_key)
    return {k.decode(): json.loads(v) for k, v in raw.items()}


def assert_one_charge_per_session(stack: FaultStack, sids: list[str], *ledgers: dict[str, dict]) -> None:
    """No double charge (see the module docstring): per session at most one payment — exactly one when it is
    approved — at most one approved attempt, and every approved authorization in ``ledgers`` (snapshots of the
    sandbox's ledger) is the idempotency key of that session's payment."""
    with stack.Session() as db:
        payments = db.execute(select(Payment.session_id, Payment.gateway_key).where(Payment.session_id.in_(sids))).all()
        statuses = dict(db.execute(select(PaymentSession.id, PaymentSession.status)
                                   .where(PaymentSession.id.in_(sids))).all())
        approved_attempts = Counter(db.scalars(select(PaymentAttempt.session_id).where(
            PaymentAttempt.session_id.in_(sids), PaymentAttempt.outcome == "approved")))
    per_session = Counter(sid for sid, _ in payments)
    assert [sid for sid, n in per_session.items() if n > 1] == [], "a session with two payments"
    assert [sid for sid, n in approved_attempts.items() if n > 1] == [], "a session with two approved attempts"
    assert {sid for sid in sids if statuses[sid] == "approved"} == set(per_session)
    key_of = dict(payments)
    charged: dict[str, set[str]] = {}
    for ledger in ledgers:
        for key, entry in ledger.items():
            sid = key.split(":", 1)[0]
            if sid in statuses and entry.get("status") == "approved":
                charged.setdefault(sid, set()).add(key)
    wrong = {sid: keys for sid, keys in charged.items() if keys != {key_of.get(sid)}}
    assert wrong == {}, f"gateway charges the database does not account for: {wrong}"


# -- 1. duplicates across instances ----------------------------------------------------------------------------
def test_1000_concurrent_duplicates_across_two_instances_make_one_authorization(fault_stack, receiver):
    """1,000 identical voice submissions of one session, released at once from 1,000 threads (each its own
    connection), alternately to the two instances; the sandbox answers after 200 ms so most of them arrive while
    the one authorization is under way. Exactly one ledger entry (``<sid>:1:authorize``, approved), one payment,
    the session approved with one attempt; every answer 200 ``approved`` (``processing`` allowed: a duplicate
    that waited longer than its bound), none ``pending``, no 5xx; the session's events delivered as the outbox
    says (each id received, each delivery ``delivered``)."""
    stack = fault_stack
    client_id, auth = stack.new_client(receiver.url)
    (sid,) = create_sessions(stack, auth, 1, "DUP")
    body = json.dumps(CARD)
    headers = {**auth, "Content-Type": "application/json"}
    barrier = threading.Barrier(DUPLICATES)
    answers: list = [None] * DUPLICATES

    def one(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", stack.servers[i % 2].port, timeout=120)
        try:
            barrier.wait(timeout=120)
            conn.request("POST", f"/v1/payment-sessions/{sid}/card", body=body, headers=headers)
            response = conn.getresponse()
            answers[i] = (response.status, json.loads(response.read()))
        except Exception as exc:  # noqa: BLE001 — reported by the assertions below
            answers[i] = (None, {"exception": repr(exc)})
        finally:
            conn.close()

    previous = threading.stack_size(256 * 1024)
    try:
        threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(DUPLICATES)]
        for t in threads:
            t.start()
    finally:
        threading.stack_size(previous)
    for t in threads:
        t.join(timeout=180)
    assert not any(t.is_alive() for t in threads), "submissions still running after 180 s"

    counted = Counter(b.get("outcome") if status == 200 else f"http {status}: {b}" for status, b in answers)
    assert set(counted) <= {"approved", "processing"}, counted
    assert counted["approved"] >= 1, counted
    odd = [b for _, b in answers if b["outcome"] == "approved" and b["card_last4"] != "4242"]
    assert odd == [], (len(odd), odd[:3])
    keys = {k: e for k, e in ledger_keys(stack).items() if k.startswith(f"{sid}:")}
    assert list(keys) == [f"{sid}:1:authorize"] and keys[f"{sid}:1:authorize"]["status"] == "approved"
    assert_one_charge_per_session(stack, [sid], keys)
    v = view(stack, auth, sid)
    assert (v["status"], v["attempts"]) == ("approved", 1)
    with stack.Session() as db:
        assert db.scalar(select(func.count()).select_from(PaymentAttempt).where(PaymentAttempt.session_id == sid)) == 1
    received = assert_everything_delivered(stack, client_id, receiver)
    assert "payment.approved" in {e["type"] for e in _events(stack, client_id)}
    print(f"\n1,000 duplicates: {dict(counted)}; callbacks received {sum(received.values())} "
          f"for {len(received)} events")


def _events(stack: FaultStack, client_id: str) -> list[dict]:
    with stack.Session() as db:
        return [json.loads(b) for b in db.scalars(select(Event.body).where(Event.client_id == client_id))]


# -- 2. workers SIGKILLed during delivery ----------------------------------------------------------------------
KILL_SESSIONS = 40
KILL_ROUNDS = 5


def test_workers_sigkilled_repeatedly_during_delivery_lose_no_event(fault_stack, receiver):
    """40 sessions paid through both instances (8 at a time) while the receiver takes 0.5 s per callback, so the
    workers always hold leased deliveries in flight; five times a worker (once both) is SIGKILLed while
    deliveries are leased and a new one started at once. Afterwards: every event id reached the receiver (at least
    once: a callback that arrived just before its worker died is sent again when the 3 s lease runs out, so some
    arrive twice — counted, and at least one such redelivery proves the kills landed mid-delivery), every
    delivery row is ``delivered``, every session approved with exactly one charge."""
    stack = fault_stack
    receiver.script(*[Reply(200, delay=0.5)] * (KILL_SESSIONS * 4))
    client_id, auth = stack.new_client(receiver.url)
    sids = create_sessions(stack, auth, KILL_SESSIONS, "KILL")

    def pay_one(i_sid):
        i, sid = i_sid
        with httpx.Client(timeout=60) as http:
            return pay(http, stack.servers[i % 2].base, auth, sid)

    def leased() -> int:
        with stack.Session() as db:
            return db.scalar(select(func.count()).select_from(Delivery).join(Event, Event.id == Delivery.event_id)
                             .where(Event.client_id == client_id, Delivery.status == "pending",
                                    Delivery.lock_token.is_not(None)))

    kills = []
    with ThreadPoolExecutor(8) as pool:
        answers = pool.map(pay_one, enumerate(sids))
        for round_ in range(KILL_ROUNDS):
            arrived = len(receiver.requests)
            wait_until(lambda: len(receiver.requests) >= arrived + 3 and leased() > 0, timeout=60, interval=0.05,
                       what=f"callbacks in flight before kill {round_ + 1}", error=AssertionError)
            victims = [0, 1] if round_ == 2 else [round_ % 2]
            in_flight = leased()
            for i in victims:
                stack.kill_worker(i)
            kills.append((victims, in_flight))
            for i in victims:
                stack.start_worker(i)
        answers = list(answers)
    assert [a[1].get("outcome") for a in answers] == ["approved"] * KILL_SESSIONS, answers

    received = assert_everything_delivered(stack, client_id, receiver, timeout=90)
    redelivered = {e: n for e, n in received.items() if n > 1}
    assert len(received) >= KILL_SESSIONS  # at least payment.approved of each session
    assert redelivered, "no callback was sent twice: the kills did not land mid-delivery"
    assert_one_charge_per_session(stack, sids, ledger_keys(stack))
    print(f"\nkills (workers, leased deliveries at the kill): {kills}; {len(received)} events, "
          f"{sum(received.values())} callbacks, {len(redelivered)} events sent more than once")


# -- 3 and 4. Redis and PostgreSQL restarted mid-stream -------------------------------------------------------
STREAM_SESSIONS = 40
STREAM_THREADS = 4


def _stream_through_outage(stack: FaultStack, auth: dict, sids: list[str], stop, start, *,
                           before_stop=lambda: None) -> dict[str, tuple[int, dict, str | None]]:
    """Pays ``sids`` from :data:`STREAM_THREADS` threads (each its share, one after another, alternating the
    instances); after a quarter have answered, calls ``before_stop()`` then ``stop()``, waits until
    :data:`STREAM_THREADS` + 2 submissions answered 503 during the outage (so at least two began after the
    dependency went away, whatever the ones in flight did), and calls ``start()``. Returns each session's answer."""
    answers: dict[str, tuple[int, dict, str | None]] = {}
    lock = threading.Lock()

    def share(k: int) -> None:
        with httpx.Client(timeout=60) as http:
            for j, sid in enumerate(sids[k::STREAM_THREADS]):
                try:
                    answer = pay(http, stack.servers[(k + j) % 2].base, auth, sid)
                except httpx.HTTPError as exc:
                    answer = (None, {"exception": repr(exc)}, None)
                with lock:
                    answers[sid] = answer

    threads = [threading.Thread(target=share, args=(k,), daemon=True) for k in range(STREAM_THREADS)]
    for t in threads:
        t.start()
    wait_until(lambda: len(answers) >= len(sids) // 4, timeout=60, interval=0.01, what="the stream under way",
               error=AssertionError)
    before_stop()
    # counted from before the stop: a 503 answers in milliseconds, so the whole rest of the stream can have
    # answered by the time stop() returns
    seen = len(answers)
    stop()
    try:
        wait_until(lambda: sum(a[0] == 503 for a in list(answers.values())[seen:]) >= STREAM_THREADS + 2,
                   timeout=60, interval=0.01, what="503s during the outage", error=AssertionError)
    finally:
        start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    return answers


def _settle_and_pay_again(stack: FaultStack, auth: dict, sids: list[str],
                          answers: dict[str, tuple[int, dict, str | None]]) -> dict[str, str]:
    """Checks each answer is 200 approved or a clean 503 (``service_unavailable``, ``Retry-After``); waits until
    no session is ``processing`` (an attempt the outage interrupted after it began is settled by the worker's
    reconciliation); then pays again every 503'd session that is still payable. Returns how each 503'd session
    ended up: ``payable`` (pending, attempts unchanged, then approved) or ``reconciled:<status>``."""
    wrong = {sid: a for sid, a in answers.items()
             if not ((a[0] == 200 and a[1].get("outcome") == "approved")
                     or (a[0] == 503 and a[1]["error"]["code"] == "service_unavailable" and int(a[2]) >= 1))}
    assert wrong == {}, wrong
    wait_until(stack.ready, timeout=60, what="both instances ready", error=AssertionError)

    def none_processing():
        with stack.Session() as db:
            return db.scalar(select(func.count()).select_from(PaymentSession).where(
                PaymentSession.id.in_(sids), PaymentSession.status == "processing")) == 0

    wait_until(none_processing, timeout=60, interval=0.2, what="no session left processing", error=AssertionError)
    ended: dict[str, str] = {}
    for n, sid in enumerate(s for s, a in answers.items() if a[0] == 503):
        v = view(stack, auth, sid, instance=n % 2)
        if v["status"] == "pending":
            assert v["attempts"] == 0, v  # the 503 came before the attempt began: nothing used
            ended[sid] = "payable"
        else:
            assert v["attempts"] == 1, v
            ended[sid] = f"reconciled:{v['status']}"
    assert "payable" in ended.values(), ended

    def pay_again(n_sid):
        n, sid = n_sid
        with httpx.Client(timeout=60) as http:
            return pay(http, stack.servers[n % 2].base, auth, sid)

    with ThreadPoolExecutor(STREAM_THREADS) as pool:
        again = list(pool.map(pay_again, enumerate(s for s, how in ended.items() if how == "payable")))
    assert [(status, body.get("outcome")) for status, body, _ in again] == [(200, "approved")] * len(again), again
    return ended


def test_redis_restarted_mid_stream_loses_no_event_and_charges_once(fault_stack, receiver):
    """Redis is shut down (``SHUTDOWN NOSAVE``) after a quarter of 40 payments answered and started again, empty,
    once six submissions answered 503. Every answer is 200 ``approved`` or 503 ``service_unavailable`` with
    ``Retry-After``. A 503'd session is still ``pending`` with no attempt used and is paid afterwards — except
    one whose attempt had already begun when Redis went away: the sandbox gateway keeps its ledger in Redis,
    so its call failed without a charge, and the worker's reconciliation (which asks the gateway after 5 s, here
    an empty ledger: "no payment was made") settles it ``failed`` with ``gateway_no_payment`` — true, nothing
    was charged. (With Stripe the gateway call does not touch Redis.) No double charge, judged on the ledger
    read just before the shutdown plus the one at the end; every event delivered afterwards, without
    restarting a worker or an instance."""
    stack = fault_stack
    client_id, auth = stack.new_client(receiver.url)
    sids = create_sessions(stack, auth, STREAM_SESSIONS, "REDIS")
    before: dict[str, dict] = {}
    answers = _stream_through_outage(stack, auth, sids, stack.redis.stop, stack.redis.start,
                                     before_stop=lambda: before.update(ledger_keys(stack)))
    ended = _settle_and_pay_again(stack, auth, sids, answers)
    for sid, how in ended.items():
        if how != "payable":
            v = view(stack, auth, sid)
            assert (v["status"], v["decline_code"]) == ("failed", "gateway_no_payment"), v
    assert_one_charge_per_session(stack, sids, before, ledger_keys(stack))
    received = assert_everything_delivered(stack, client_id, receiver)
    statuses = Counter(view(stack, auth, sid)["status"] for sid in sids)
    assert statuses["approved"] >= STREAM_SESSIONS - list(ended.values()).count("reconciled:failed")
    print(f"\nRedis restart: 503s {Counter(ended.values())}; sessions {dict(statuses)}; "
          f"{sum(received.values())} callbacks for {len(received)} events")


def test_postgresql_restarted_mid_stream_loses_no_event_and_charges_once(fault_stack, receiver):
    """PostgreSQL is stopped with ``-m immediate`` (a crash: connections cut, recovery at the next start) after a
    quarter of 40 payments answered, and started again once six submissions answered 503. Every answer is 200
    ``approved`` or 503 ``service_unavailable`` with ``Retry-After`` (no 500, no traceback in the gunicorn logs:
    the pools' pre-ping drops the dead connections). A 503'd session is either still ``pending`` with no attempt
    used (the database went away before the compare-and-set) and is paid afterwards, or its attempt had begun: the
    gateway charged it but the outcome could not be written, so the worker's reconciliation finds the charge by
    its idempotency key and settles it ``approved`` — one charge either way. All 40 end approved; every event
    delivered afterwards by the same workers and instances, none restarted."""
    stack = fault_stack
    client_id, auth = stack.new_client(receiver.url)
    sids = create_sessions(stack, auth, STREAM_SESSIONS, "PG")
    answers = _stream_through_outage(stack, auth, sids, lambda: stack.pg.stop("immediate"), stack.pg.start)
    ended = _settle_and_pay_again(stack, auth, sids, answers)
    assert set(ended.values()) <= {"payable", "reconciled:approved"}, ended
    views = [view(stack, auth, sid) for sid in sids]
    assert [v["status"] for v in views] == ["approved"] * STREAM_SESSIONS
    assert all(v["card"]["last4"] == "4242" for v in views)  # a reconciled approval describes its card too
    assert_one_charge_per_session(stack, sids, ledger_keys(stack))
    keys = ledger_keys(stack)
    assert all(keys[f"{sid}:1:authorize"]["status"] == "approved" for sid in sids)  # nothing was wiped here
    received = assert_everything_delivered(stack, client_id, receiver)
    print(f"\nPostgreSQL restart: 503s {Counter(ended.values())}; "
          f"{sum(received.values())} callbacks for {len(received)} events")


# -- what scenario 4 found, in one process ----------------------------------------------------------------------
class _AnswerLost:
    """The gateway acts, then the answer never reaches the submission (its database went away: here the error
    the app answers 503 for)."""

    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def authorize(self, request):
        self._inner.authorize(request)
        raise OperationalError("UPDATE payment_sessions ...", {}, ConnectionError("server closed the connection"))


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_an_approval_settled_by_reconciliation_keeps_the_card_and_its_token(stack_factory):
    """A submission charged at the gateway whose outcome could not be written (scenario 4's mid-attempt 503s) is
    settled ``approved`` by the reconciliation; the session and its payment carry the card (brand, last four,
    expiry) and the vault token like any approval — before the fix they had none (the token was kept only by the
    submission's own :meth:`~payments.submission.PaymentProcessor._finish`)."""
    stack = stack_factory(RECONCILE_AFTER_SECONDS=60)
    sid = stack.create_session(channel="voice")["session_id"]
    processor = stack.services.payments
    processor.gateway = _AnswerLost(processor.gateway)
    r = stack.http.post(f"/v1/payment-sessions/{sid}/card", json=CARD, headers=stack.auth())
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "service_unavailable"
    processor.gateway = processor.gateway._inner
    assert stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth()).get_json()["status"] == "processing"
    stack.clock.advance(61)
    assert processor.reconcile_due() == 1
    v = stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth()).get_json()
    assert v["status"] == "approved" and v["token"].startswith("tok_")
    assert (v["card"]["brand"], v["card"]["last4"], v["card"]["exp_month"], v["card"]["exp_year"]) == (
        "visa", "4242", 12, 2030)
    p = stack.http.get(f"/v1/payments/{v['payment_id']}", headers=stack.auth()).get_json()
    assert (p["card"]["last4"], p["token"]) == ("4242", v["token"])
