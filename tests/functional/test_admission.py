"""Admission control in the web tier (``app/admission.py``): heavy requests hold one of a few slots per process,
polls never wait for one, a request waiting on the gateway gives its slot back, and a request that cannot get a
slot in time is answered 503 before anything is done."""

from __future__ import annotations

import threading
import time
from urllib.parse import urlsplit

import pytest

from app.admission import Slots, is_heavy, is_page_render
from kernel import blocking
from paygate import processes

from .test_serving import Submissions, gunicorn_env, new_api_client, open_sessions, running_servers

LATENCY_MS = 1000
SUBMISSIONS = 12
VISA = "4242424242424242"


# --- the semaphore -----------------------------------------------------------------------------------------

def _waiter(slots: Slots, order: list, name: str, **kw) -> threading.Thread:
    def run():
        assert slots.acquire(**kw)
        order.append(name)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def _until(check, what: str) -> None:
    processes.wait_until(check, timeout=10, interval=0.005, what=what, error=AssertionError)


def test_slots_hand_a_released_slot_to_resuming_waiters_first_then_in_arrival_order():
    slots = Slots(1)
    assert slots.acquire(timeout=0)
    assert not slots.acquire(timeout=0)  # taken: a second one does not get it
    order: list[str] = []
    first = _waiter(slots, order, "start-1")
    _until(lambda: slots.waiting() == 1, "the first waiter")
    second = _waiter(slots, order, "start-2")
    _until(lambda: slots.waiting() == 2, "the second waiter")
    resumed = _waiter(slots, order, "resume", resume=True)
    _until(lambda: slots.waiting() == 3, "the resuming waiter")
    for expected in (["resume"], ["resume", "start-1"], ["resume", "start-1", "start-2"]):
        slots.release()
        _until(lambda: order == expected, f"the slot handed to {expected[-1]}")
    for t in (first, second, resumed):
        t.join(5)
    slots.release()
    assert slots.acquire(timeout=0)  # every slot accounted for: the last release went back to the pool
    slots.release()
    with pytest.raises(RuntimeError):
        slots.release()


def test_a_waiter_that_times_out_leaves_no_slot_behind():
    slots = Slots(1)
    assert slots.acquire()
    t0 = time.monotonic()
    assert slots.acquire(timeout=0.05) is False
    assert time.monotonic() - t0 >= 0.05
    assert slots.waiting() == 0
    slots.release()
    assert slots.acquire(timeout=0)


def test_reads_are_light_and_writes_and_pages_are_heavy():
    assert not is_heavy("GET", "/v1/payment-sessions/ps_1")
    assert not is_heavy("GET", "/checkout/ps_1/status.json")
    assert not is_heavy("HEAD", "/healthz")
    assert is_heavy("POST", "/v1/payment-sessions")
    assert is_heavy("POST", "/oauth/token")
    assert is_heavy("GET", "/checkout/ps_1")
    assert is_heavy("POST", "/checkout/ps_1")
    assert is_heavy("GET", "/agent/ps_1")
    # page renders take their slot from the pages' own slots, card submissions from the writes'
    assert is_page_render("GET", "/checkout/ps_1") and is_page_render("GET", "/agent/ps_1")
    assert not is_page_render("POST", "/checkout/ps_1") and not is_page_render("POST", "/v1/payment-sessions")


# --- the Flask app -----------------------------------------------------------------------------------------

def test_heavy_request_without_a_slot_is_503_while_a_poll_is_answered(stack_factory):
    stack = stack_factory(ADMISSION_SLOTS=1, ADMISSION_WAIT_SECONDS=0.2)
    session = stack.create_session()
    sid = session["session_id"]
    link = urlsplit(session["checkout_url"])
    page_path = f"{link.path}?{link.query}"
    slots = stack.app.extensions["paygate.admission"]
    page_slots = stack.app.extensions["paygate.admission.pages"]
    assert slots.acquire(timeout=0)  # someone else holds the process's only slot for writes
    try:
        r = stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth())
        assert r.status_code == 200, r.get_json()
        r = stack.http.post("/v1/payment-sessions", headers=stack.auth(), json={
            "conversation_id": "conv-2", "participant_id": "part-2", "customer_account_id": "ACME-2",
            "amount": 2500, "currency": "USD", "channel": "messaging", "reference": "INV-2"})
        assert r.status_code == 503, r.get_json()
        assert r.get_json()["error"]["code"] == "service_unavailable"
        assert int(r.headers["Retry-After"]) >= 1
        # a page render has its own slots: it does not queue behind the writes
        assert stack.http.get(page_path).status_code == 200
        assert page_slots.acquire(timeout=0)  # and now someone holds the only page slot too
        try:
            page = stack.http.get(page_path)
            assert page.status_code == 503 and page.mimetype == "text/html"
        finally:
            page_slots.release()
    finally:
        slots.release()
    assert stack.http.get(f"/checkout/{sid}").status_code != 503  # the slots are free again
    for lane in (slots, page_slots):
        assert lane.acquire(timeout=0)  # the requests gave back every slot they took
        lane.release()


def test_the_blocking_hook_is_only_set_inside_a_request(stack_factory):
    stack = stack_factory(ADMISSION_SLOTS=1)
    stack.create_session()  # a heavy request ran (and reset its hook in teardown) on this thread
    assert blocking._hook.get() is None
    with blocking.blocking():  # outside a request: a no-op that needs no slot
        pass
    slots = stack.app.extensions["paygate.admission"]
    assert slots.acquire(timeout=0)
    slots.release()


# --- real gunicorn: slot given back around the gateway call ------------------------------------------------

@pytest.fixture
def one_slot_server(db_url, redis_url, redis_client, state_dir):
    """gunicorn (shipped gunicorn.conf.py) with ONE worker and ONE admission slot; the sandbox gateway takes
    :data:`LATENCY_MS` per call. Yields ``(server, api_client)``."""
    env = gunicorn_env(db_url, redis_url, state_dir, PAYGATE_SANDBOX_LATENCY_MS=str(LATENCY_MS),
                       PAYGATE_WEB_WORKERS="1", PAYGATE_WEB_THREADS="32", PAYGATE_ADMISSION_SLOTS="1",
                       PAYGATE_ADMISSION_WAIT_SECONDS="60", PAYGATE_FRAUD_IP_ATTEMPTS_PER_HOUR="100000",
                       PAYGATE_FRAUD_CARD_SESSIONS_PER_HOUR="100000")
    client = new_api_client(db_url, "admission")
    with running_servers(env, state_dir, "admission") as (server,):
        yield server, client


def test_submissions_give_their_slot_back_while_the_gateway_answers_and_polls_never_wait(one_slot_server):
    server, client = one_slot_server
    http, auth, views = open_sessions(server, client, SUBMISSIONS + 1, prefix="ADM", timeout=60)
    *sessions, watched = [v["session_id"] for v in views]
    submissions = Submissions(server, auth, sessions, timeout=120)
    answers = submissions.answers
    # with one slot, more than one submission waits on the gateway at once only if each gives its slot back
    submissions.wait_processing(http, SUBMISSIONS // 2)
    polls = []
    while len(polls) < 5 and not answers:  # a poll needs no slot: answered while every submission is in flight
        p0 = time.perf_counter()
        r = http.get(f"/v1/payment-sessions/{watched}", headers=auth)
        polls.append((round((time.perf_counter() - p0) * 1000, 1), r.status_code, len(answers)))
    assert polls and all(status == 200 for _, status, _ in polls), polls
    assert max(ms for ms, _, _ in polls) < LATENCY_MS / 2, polls

    submissions.join(120)
    elapsed = time.perf_counter() - submissions.started
    bad = submissions.not_approved()
    assert len(answers) == SUBMISSIONS and not bad, bad
    # one slot held across the gateway call would put the 12 calls of 1 s one after another (12 s)
    assert elapsed < SUBMISSIONS * LATENCY_MS / 1000 / 2, elapsed
    http.close()
