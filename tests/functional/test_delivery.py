"""The outbox and the deliverer on real databases (SQLite and PostgreSQL), real Redis and a real HTTP
receiver running in a thread. Time is a FrozenClock, so retries come due only when a test moves it."""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from sqlalchemy import select

from callbacks import events as ev
from callbacks import outbox
from callbacks.delivery import Deliverer, DeliveryJob, SendResult
from callbacks.models import Delivery, DeliveryAttempt, Event
from callbacks.signing import verify
from kernel.clock import FrozenClock, random_id
from kernel.db import make_engine, make_sessionmaker
from kernel.errors import NotFound
from kernel.settings import Settings
from paygate.worker import run_worker
from payments import events as domain_events
from payments.clients import signing_secrets_resolver
from payments.models import ApiClient, PaymentSession

START = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
NEW_SECRET, OLD_SECRET = "whsec_new_0123456789", "whsec_old_9876543210"
_bodies = itertools.count()


# -- a scriptable receiver ------------------------------------------------------------------------
@dataclass
class Reply:
    """How the receiver answers one request: ``status``, after ``delay`` seconds, or held until released."""

    status: int = 200
    delay: float = 0.0
    hold: bool = False


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def event_id(self) -> str:
        return self.headers.get("paygate-event-id", "")


class Receiver:
    """A real HTTP server in a thread. ``script(*replies)`` queues answers (then 200 for everything);
    ``requests`` lists what arrived (recorded on arrival, before answering). Bodies are also written
    under the test state directory so the PCI scan sees them."""

    def __init__(self, state_dir=None):
        self.requests: list[Received] = []
        self._replies: list[Reply] = []
        self._lock = threading.Lock()
        self.release = threading.Event()
        self.dump_dir = None
        if state_dir is not None:
            self.dump_dir = state_dir / "callback-bodies"
            self.dump_dir.mkdir(exist_ok=True)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 - stdlib naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reply = receiver._arrived(Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if reply.hold:
                    receiver.release.wait(30)
                elif reply.delay:
                    time.sleep(reply.delay)  # simulates a slow receiver; not used for synchronisation
                try:
                    payload = b'{"ok":true}'
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks/paygate"

    def script(self, *replies: Reply | int) -> None:
        with self._lock:
            self._replies.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def _arrived(self, received: Received) -> Reply:
        with self._lock:
            self.requests.append(received)
            if self.dump_dir is not None:
                (self.dump_dir / f"{time.time_ns()}-{next(_bodies)}.json").write_bytes(received.body)
            return self._replies.pop(0) if self._replies else Reply(200)

    def event_ids(self) -> list[str]:
        with self._lock:
            return [r.event_id for r in self.requests]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


# -- rows -----------------------------------------------------------------------------------------
def make_client(db, *, secrets=(NEW_SECRET,), callback_url=None, now=START) -> ApiClient:
    client = ApiClient(id=random_id("cli"), name="genesys", secret_hash="x", signing_secrets=list(secrets),
                       callback_url=callback_url, genesys=None, active=True, created_at=now.replace(tzinfo=None))
    db.add(client)
    db.flush()
    return client


def make_session(db, client: ApiClient, *, callback_url=None, now=START) -> PaymentSession:
    naive = now.replace(tzinfo=None)
    s = PaymentSession(id=random_id("ps"), client_id=client.id, conversation_id="conv-1", participant_id="part-1",
                       customer_account_id="ACME-1", intent="payment", amount=2500, currency="USD",
                       channel="voice", callback_url=callback_url, metadata_={"order": "A1"}, status="pending",
                       attempts=0, max_attempts=3, gateway="sandbox", event_sequence=0, created_at=naive,
                       updated_at=naive, expires_at=naive + timedelta(minutes=15))
    db.add(s)
    db.flush()
    return s


def session_data(s: PaymentSession) -> dict:
    return {"session_id": s.id, "status": s.status, "amount": s.amount, "currency": s.currency,
            "card": {"brand": "visa", "last4": "4242"}, "metadata": s.metadata_}


@pytest.fixture
def Session(db_url):
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def receiver(state_dir):
    r = Receiver(state_dir)
    yield r
    r.close()


@pytest.fixture
def clock():
    return FrozenClock(START)


@pytest.fixture
def http():
    with httpx.Client() as client:
        yield client


def make_deliverer(Session, http, clock, **overrides) -> Deliverer:
    kwargs = dict(clock=clock, rng=random.Random(5), backoff_base=0.01, backoff_cap=0.05, max_age_seconds=3600,
                  lease_seconds=30, timeout_seconds=2.0, concurrency=4,
                  signing_secrets=signing_secrets_resolver(Session))
    kwargs.update(overrides)
    return Deliverer(Session, http, **kwargs)


def emit(Session, *, url=None, client_url=None, secrets=(NEW_SECRET,), event_type=ev.PAYMENT_APPROVED, now=START,
         count=1):
    """Creates a client and a session and records ``count`` events in one transaction; returns their ids."""
    with Session.begin() as db:
        client = make_client(db, secrets=secrets, callback_url=client_url)
        s = make_session(db, client, callback_url=url, now=now)
        ids = [domain_events.record(db, client=client, session=s, event_type=event_type, data=session_data(s),
                                   now=now, new_id=random_id).id for _ in range(count)]
    return client.id, s.id, ids


def delivery_of(Session, event_id) -> Delivery:
    with Session() as db:
        return db.scalars(select(Delivery).where(Delivery.event_id == event_id)).one()


def attempts_of(Session, delivery_id) -> list[DeliveryAttempt]:
    with Session() as db:
        return list(db.scalars(select(DeliveryAttempt).where(DeliveryAttempt.delivery_id == delivery_id)
                               .order_by(DeliveryAttempt.number)))


# -- outbox ---------------------------------------------------------------------------------------
def test_record_event_numbers_per_session_and_adds_a_delivery_only_with_a_target(Session):
    with Session.begin() as db:
        client = make_client(db, callback_url=None)
        with_url = make_session(db, client, callback_url="https://hooks.example/a")
        without = make_session(db, client)
        e1 = domain_events.record(db, client=client, session=with_url, event_type=ev.PAYMENT_DECLINED,
                                 data=session_data(with_url), now=START, new_id=random_id)
        e2 = domain_events.record(db, client=client, session=with_url, event_type=ev.PAYMENT_APPROVED,
                                 data=session_data(with_url), now=START, new_id=random_id)
        e3 = domain_events.record(db, client=client, session=without, event_type=ev.PAYMENT_SESSION_EXPIRED,
                                 data=session_data(without), now=START, new_id=random_id)
    with Session() as db:
        assert [e1.sequence, e2.sequence, e3.sequence] == [1, 2, 1]
        assert db.get(PaymentSession, with_url.id).event_sequence == 2
        assert e1.id.startswith("evt_")
        body = json.loads(db.get(Event, e2.id).body)
        assert list(body) == ["id", "type", "object", "created_at", "sequence", "data"]
        assert body["id"] == e2.id and body["type"] == "payment.approved" and body["sequence"] == 2
        assert body["created_at"] == "2026-11-23T12:00:00Z"
        assert db.get(Event, e2.id).body == ev.build_body(e2.id, "payment.approved", "2026-11-23T12:00:00Z", 2,
                                                          session_data(with_url))
        rows = {d.event_id: d for d in db.scalars(select(Delivery))}
        assert set(rows) == {e1.id, e2.id}  # the session without any target gets no delivery
        d = rows[e1.id]
        assert (d.kind, d.target, d.status, d.attempts) == ("webhook", "https://hooks.example/a", "pending", 0)
        assert d.next_attempt_at == START.replace(tzinfo=None)


def test_session_url_overrides_client_url_and_client_url_is_the_fallback(Session):
    _, _, (own,) = emit(Session, url="https://session.example/cb", client_url="https://client.example/cb")
    _, _, (fallback,) = emit(Session, client_url="https://client.example/cb")
    assert delivery_of(Session, own).target == "https://session.example/cb"
    assert delivery_of(Session, fallback).target == "https://client.example/cb"


def test_event_is_written_only_with_the_callers_commit(Session):
    with Session.begin() as db:
        client = make_client(db, callback_url="https://client.example/cb")
        s = make_session(db, client)
    session_id = s.id
    db = Session()
    s = db.get(PaymentSession, session_id)
    s.status = "approved"
    event_id = domain_events.record(db, client=db.get(ApiClient, client.id), session=s,
                                   event_type=ev.PAYMENT_APPROVED, data=session_data(s), now=START,
                                   new_id=random_id).id
    db.rollback()
    db.close()
    with Session() as db:
        assert db.get(Event, event_id) is None
        assert db.scalars(select(Delivery)).all() == []
        assert db.get(PaymentSession, session_id).status == "pending"
        assert db.get(PaymentSession, session_id).event_sequence == 0


def test_wake_pushes_to_a_short_list(redis_client):
    for _ in range(25):
        outbox.wake(redis_client)
    assert 1 <= redis_client.llen(outbox.WAKE_KEY) <= outbox.WAKE_LIST_MAX


# -- delivery -------------------------------------------------------------------------------------
def test_delivered_on_200_with_a_signature_both_active_secrets_verify(Session, receiver, clock, http):
    _, _, (event_id,) = emit(Session, url=receiver.url, secrets=(NEW_SECRET, OLD_SECRET))
    assert make_deliverer(Session, http, clock).run_once() == 1

    (req,) = receiver.requests
    with Session() as db:
        stored = db.get(Event, event_id).body
    assert req.body == stored.encode()
    assert req.path == "/hooks/paygate"
    assert req.headers["content-type"] == "application/json"
    assert req.headers["user-agent"] == "paygate-callbacks/1"
    assert req.headers["paygate-event-id"] == event_id
    header = req.headers["paygate-signature"]
    assert header.count("v1=") == 2
    now = int(clock().timestamp())
    assert verify(req.body, header, [NEW_SECRET], now=now) == now
    assert verify(req.body, header, [OLD_SECRET], now=now) == now

    d = delivery_of(Session, event_id)
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == ("delivered", 1, 200, None)
    assert d.delivered_at == START.replace(tzinfo=None) and d.lock_token is None and d.locked_until is None
    (a,) = attempts_of(Session, d.id)
    assert (a.number, a.status_code, a.outcome, a.error) == (1, 200, "delivered", None)
    assert a.latency_ms >= 0
    assert make_deliverer(Session, http, clock).run_once() == 0  # nothing left


def test_500_is_retried_with_backoff_then_delivered(Session, receiver, clock, http):
    receiver.script(500)
    _, _, (event_id,) = emit(Session, url=receiver.url)
    deliverer = make_deliverer(Session, http, clock)
    assert deliverer.run_once() == 1
    d = delivery_of(Session, event_id)
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == ("pending", 1, 500, "http_500")
    wait = (d.next_attempt_at - START.replace(tzinfo=None)).total_seconds()
    assert 0.005 <= wait <= 0.01  # base 0.01 s with jitter in [50 %, 100 %]
    assert d.lock_token is None

    assert deliverer.run_once() == 0  # not due yet: the clock has not moved
    clock.advance(1)
    assert deliverer.run_once() == 1
    d = delivery_of(Session, event_id)
    assert (d.status, d.attempts, d.last_status_code) == ("delivered", 2, 200)
    log = attempts_of(Session, d.id)
    assert [(a.number, a.status_code, a.outcome) for a in log] == [(1, 500, "retry"), (2, 200, "delivered")]
    assert len(receiver.requests) == 2
    assert receiver.requests[0].body == receiver.requests[1].body  # the stored bytes, every time
    assert receiver.event_ids() == [event_id, event_id]


def test_410_is_dead_without_retry(Session, receiver, clock, http):
    receiver.script(410)
    _, _, (event_id,) = emit(Session, url=receiver.url)
    deliverer = make_deliverer(Session, http, clock)
    assert deliverer.run_once() == 1
    clock.advance(600)
    assert deliverer.run_once() == 0
    d = delivery_of(Session, event_id)
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == ("dead", 1, 410, "http_410")
    assert [a.outcome for a in attempts_of(Session, d.id)] == ["dead"]
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("reply, status, error", [
    (Reply(429), 429, "http_429"),
    (Reply(hold=True), None, "timeout: ReadTimeout"),
])
def test_429_and_timeout_are_retried(Session, receiver, clock, http, reply, status, error):
    receiver.script(reply)
    _, _, (event_id,) = emit(Session, url=receiver.url)
    deliverer = make_deliverer(Session, http, clock, timeout_seconds=0.3)
    assert deliverer.run_once() == 1
    d = delivery_of(Session, event_id)
    assert (d.status, d.last_status_code, d.last_error) == ("pending", status, error)
    clock.advance(1)
    assert deliverer.run_once() == 1
    log = attempts_of(Session, d.id)
    assert [(a.status_code, a.outcome, a.error) for a in log] == [(status, "retry", error), (200, "delivered", None)]


def test_connection_refused_is_retried(Session, clock, http, receiver):
    dead_port = receiver.server.server_address[1]
    receiver.close()  # nothing listens there any more
    _, _, (event_id,) = emit(Session, url=f"http://127.0.0.1:{dead_port}/cb")
    assert make_deliverer(Session, http, clock).run_once() == 1
    d = delivery_of(Session, event_id)
    assert (d.status, d.last_status_code, d.last_error) == ("pending", None, "connection_error: ConnectError")


def test_max_age_exceeded_is_dead(Session, receiver, clock, http):
    receiver.script(503, 503)
    _, _, (event_id,) = emit(Session, url=receiver.url)
    deliverer = make_deliverer(Session, http, clock, max_age_seconds=60)
    assert deliverer.run_once() == 1
    assert delivery_of(Session, event_id).status == "pending"
    clock.advance(61)
    assert deliverer.run_once() == 1
    d = delivery_of(Session, event_id)
    assert (d.status, d.attempts, d.last_status_code) == ("dead", 2, 503)
    assert [a.outcome for a in attempts_of(Session, d.id)] == ["retry", "dead"]
    clock.advance(3600)
    assert deliverer.run_once() == 0


def test_redeliver_a_dead_event(Session, receiver, clock, http):
    receiver.script(404)
    client_id, session_id, (event_id,) = emit(Session, url=receiver.url)
    deliverer = make_deliverer(Session, http, clock)
    deliverer.run_once()
    assert delivery_of(Session, event_id).status == "dead"

    clock.advance(30)
    with Session.begin() as db:
        (queued,) = outbox.redeliver(db, event_id, clock())
        assert queued.status == "pending"
    assert deliverer.run_once() == 1
    d = delivery_of(Session, event_id)
    assert (d.status, d.attempts, d.last_status_code) == ("delivered", 2, 200)
    assert [a.outcome for a in attempts_of(Session, d.id)] == ["dead", "delivered"]
    assert receiver.event_ids() == [event_id, event_id]

    with Session.begin() as db, pytest.raises(NotFound):
        outbox.redeliver(db, "evt_unknown", clock())


def test_unknown_kind_is_dead_and_senders_plug_in_new_kinds(Session, clock, http):
    sent: list[DeliveryJob] = []

    def workflow_sender(job: DeliveryJob) -> SendResult:
        sent.append(job)
        return SendResult(202, False, None, 1.5)

    with Session.begin() as db:
        client = make_client(db)
        s = make_session(db, client)
        event = domain_events.record(db, client=client, session=s, event_type=ev.PAYMENT_APPROVED,
                                    data=session_data(s), now=START, new_id=random_id)
        outbox.add_delivery(db, event, kind="genesys_workflow", target="flow-1", now=START)
        outbox.add_delivery(db, event, kind="carrier_pigeon", target="coop", now=START)
    assert make_deliverer(Session, http, clock, senders={"genesys_workflow": workflow_sender}).run_once() == 2
    with Session() as db:
        rows = {d.kind: d for d in db.scalars(select(Delivery))}
    assert rows["genesys_workflow"].status == "delivered"
    assert (sent[0].event_id, sent[0].target, sent[0].client_id) == (event.id, "flow-1", client.id)
    assert rows["carrier_pigeon"].status == "dead"
    assert rows["carrier_pigeon"].last_error == "unknown_delivery_kind: carrier_pigeon"


def test_deliverers_racing_never_send_a_delivery_twice(db_url, Session, receiver, clock, http):
    """Four deliverers, each with its own engine (like separate processes), drain the same due rows in small
    claims. Every delivery is sent exactly once: no two claims ever win the same row."""
    engines = [make_engine(db_url) for _ in range(3)]
    try:
        makers = [Session] + [make_sessionmaker(e) for e in engines]
        for _ in range(3):
            _, _, ids = emit(Session, url=receiver.url, count=24)
            deliverers = [make_deliverer(m, http, clock, concurrency=2) for m in makers]
            barrier = threading.Barrier(len(deliverers))
            counts = [0] * len(deliverers)

            def run(i):
                barrier.wait()
                while n := deliverers[i].run_once(limit=2):
                    counts[i] += n

            threads = [threading.Thread(target=run, args=(i,)) for i in range(len(deliverers))]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
            assert sum(counts) == 24
            received = [e for e in receiver.event_ids() if e in ids]
            assert sorted(received) == sorted(ids)  # each exactly once
            with Session() as db:
                rows = db.scalars(select(Delivery).where(Delivery.event_id.in_(ids))).all()
                assert {r.status for r in rows} == {"delivered"} and {r.attempts for r in rows} == {1}
                logged = db.scalars(select(DeliveryAttempt).where(
                    DeliveryAttempt.delivery_id.in_([r.id for r in rows]))).all()
                assert len(logged) == 24
    finally:
        for e in engines:
            e.dispose()


def test_list_events_view(Session, receiver, clock, http):
    receiver.script(500)
    client_id, session_id, (first, second) = emit(Session, url=receiver.url, secrets=(NEW_SECRET,), count=2)
    other_client, _, _ = emit(Session, url=receiver.url)
    deliverer = make_deliverer(Session, http, clock, concurrency=1)
    deliverer.run_once()
    clock.advance(1)
    deliverer.run_once()
    with Session() as db:
        views = outbox.list_events(db, client_id=client_id, session_id=session_id)
        assert outbox.list_events(db, client_id=other_client, session_id=session_id) == []
        everything = outbox.list_events(db, client_id=client_id, session_id=None)
    assert [v["id"] for v in views] == [first, second] == [v["id"] for v in everything]
    v = views[0]
    assert list(v) == ["id", "type", "object", "created_at", "sequence", "session_id", "data", "deliveries"]
    assert (v["type"], v["created_at"], v["sequence"], v["session_id"]) == (
        "payment.approved", "2026-11-23T12:00:00Z", 1, session_id)
    assert v["data"]["card"] == {"brand": "visa", "last4": "4242"}
    (d,) = v["deliveries"]
    assert set(d) == {"id", "kind", "target", "status", "attempts", "last_status_code", "last_error",
                      "next_attempt_at", "delivered_at", "attempt_log"}
    assert (d["kind"], d["target"], d["status"], d["attempts"]) == ("webhook", receiver.url, "delivered", 2)
    assert d["delivered_at"] == "2026-11-23T12:00:01Z" and d["next_attempt_at"] is None
    assert [set(a) for a in d["attempt_log"]] == [{"number", "started_at", "status_code", "latency_ms", "error",
                                                   "outcome"}] * 2
    assert [(a["number"], a["status_code"], a["outcome"], a["error"]) for a in d["attempt_log"]] == [
        (1, 500, "retry", "http_500"), (2, 200, "delivered", None)]
    assert d["attempt_log"][0]["started_at"] == "2026-11-23T12:00:00Z"
    assert views[1]["sequence"] == 2 and views[1]["deliveries"][0]["attempts"] == 1
    assert NEW_SECRET not in json.dumps(views)


# -- the worker loop (in a thread) ----------------------------------------------------------------
def test_worker_delivers_promptly_after_wake_and_survives_failing_periodic_tasks(
        db_url, Session, redis_url, redis_client, receiver, state_dir):
    settings = Settings.from_env({"PAYGATE_ENV": "test", "PAYGATE_DATABASE_URL": db_url,
                                  "PAYGATE_REDIS_URL": redis_url, "PAYGATE_DELIVERY_BACKOFF_BASE": "0.05",
                                  "PAYGATE_INSTANCE_PATH": str(state_dir / "instance")})
    calls = {"ok": 0, "boom": 0}

    def ok():
        calls["ok"] += 1

    def boom():
        calls["boom"] += 1
        raise RuntimeError("periodic failure")

    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(settings,),
                              kwargs={"stop": stop, "periodic": [(0.05, ok), (0.05, boom)]})
    worker.start()
    try:
        wait_until(lambda: calls["boom"] >= 2 and calls["ok"] >= 2)  # the failing task did not stop the loop
        receiver.script(503)
        now = datetime.now(timezone.utc)
        _, _, (event_id,) = emit(Session, url=receiver.url, now=now)
        started = time.monotonic()
        outbox.wake(redis_client)
        wait_until(lambda: len(receiver.requests) >= 1, timeout=5)
        assert time.monotonic() - started < 1.0
        wait_until(lambda: delivery_of(Session, event_id).status == "delivered", timeout=10)
        assert receiver.event_ids() == [event_id, event_id]
    finally:
        stop.set()
        worker.join(10)
    assert not worker.is_alive()


def test_the_worker_delivers_events_recorded_after_the_sandbox_clock_moved(
        db_url, Session, redis_url, redis_client, receiver, state_dir):
    """Events are recorded in business time; after ``POST /v1/sandbox/clock`` moved it a month ahead, the worker
    still delivers them at once (its outbox runs on the same clock), and the signature's ``t`` is real time, so
    a receiver checking it against its own clock accepts it."""
    from paygate.services import build_services

    settings = Settings.from_env({"PAYGATE_ENV": "test", "PAYGATE_DATABASE_URL": db_url,
                                  "PAYGATE_REDIS_URL": redis_url, "PAYGATE_INSTANCE_PATH": str(state_dir / "instance")})
    svc = build_services(settings)
    assert svc.sandbox_clock is not None
    svc.sandbox_clock.advance(31 * 86400)
    business_now = svc.clock()
    assert business_now - datetime.now(timezone.utc) > timedelta(days=30)
    _, _, (event_id,) = emit(Session, url=receiver.url, now=business_now)
    stop = threading.Event()
    worker = threading.Thread(target=run_worker, args=(settings,), kwargs={"services": svc, "stop": stop})
    worker.start()
    try:
        outbox.wake(redis_client)
        wait_until(lambda: delivery_of(Session, event_id).status == "delivered", timeout=10)
    finally:
        stop.set()
        worker.join(10)
        svc.close()
    assert not worker.is_alive()
    (req,) = receiver.requests
    real_now = int(time.time())
    assert abs(verify(req.body, req.headers["paygate-signature"], [NEW_SECRET], now=real_now) - real_now) < 60
