"""Readiness and dependency failures (docs/api.md, "Readiness"): ``/readyz`` names what is down, ``/healthz``
stays up, and a card submission that meets Redis or the database down answers 503 with ``Retry-After`` while
the session stays ``pending`` with its attempts unchanged, payable once the dependency is back.

Each test here runs its own redis-server on a free port (stopped and restarted by the test)."""

from __future__ import annotations

import re
import subprocess

import pytest

from app import create_app
from app.openapi import openapi_document
from paygate.processes import free_port, port_open, wait_until
from paygate.services import build_services
from payments.models import PaymentSession

from .conftest import make_settings

CARD = {"number": "4242424242424242", "exp_month": "12", "exp_year": "30", "cvc": "123"}


class PrivateRedis:
    """A redis-server of this test alone (no persistence: a restart comes back empty, the harder case)."""

    def __init__(self, state_dir):
        self.port = free_port()
        self.dir = state_dir / f"redis-readiness-{self.port}"
        self.dir.mkdir()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.start()

    def start(self):
        subprocess.run(["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--daemonize", "yes",
                        "--dir", str(self.dir), "--save", "", "--appendonly", "no",
                        "--pidfile", str(self.dir / "redis.pid"), "--logfile", str(self.dir / "redis.log")],
                       check=True)
        wait_until(lambda: port_open(self.port), timeout=15, interval=0.05, what="private redis", error=RuntimeError)

    def stop(self):
        subprocess.run(["redis-cli", "-p", str(self.port), "shutdown", "nosave"], capture_output=True)
        wait_until(lambda: not port_open(self.port), timeout=15, interval=0.05, what="redis stopped",
                   error=RuntimeError)


@pytest.fixture
def private_redis(state_dir):
    server = PrivateRedis(state_dir)
    yield server
    server.stop()


@pytest.fixture
def redis_url(private_redis):
    """The stacks of this module use the private server."""
    return private_redis.url


def conforms(doc, method, path, response):
    """The answer's status is documented for the operation, with its documented headers."""
    template = next(p for p in doc["paths"] if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), path))
    operation = doc["paths"][template][method.lower()]
    assert str(response.status_code) in operation["responses"], (path, response.status_code)
    for header in operation["responses"][str(response.status_code)].get("headers", {}):
        assert header in response.headers, (path, header)


def pending_row(stack, sid) -> tuple[str, int]:
    with stack.services.Session() as db:
        s = db.get(PaymentSession, sid)
        return s.status, s.attempts


def hidden_fields(stack, url) -> dict:
    html = stack.http.get(url).get_data(as_text=True)
    fields = {}
    for name in ("csrf_token", "submission_id"):
        m = re.search(rf'name="{name}"[^>]*value="([^"]*)"', html) or re.search(
            rf'value="([^"]*)"[^>]*name="{name}"', html)
        fields[name] = m.group(1)
    return fields


def test_redis_down_readyz_names_it_and_card_submissions_wait_until_it_is_back(stack, private_redis):
    ready = stack.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.get_json() == {"database": "ok", "redis": "ok", "gateway": "closed"}
    voice = stack.create_session(customer_account_id="R-1")["session_id"]
    page = stack.create_session(customer_account_id="R-2")
    page_path = page["checkout_url"].replace("http://127.0.0.1:8000", "")
    hidden = hidden_fields(stack, page_path)

    private_redis.stop()
    assert stack.http.get("/healthz").status_code == 200
    down = stack.http.get("/readyz")
    assert down.status_code == 503 and down.headers["Retry-After"]
    assert down.get_json() == {"database": "ok", "redis": "unavailable", "gateway": "unknown"}

    r = stack.http.post(f"/v1/payment-sessions/{voice}/card", json=CARD, headers=stack.auth())
    assert r.status_code == 503 and int(r.headers["Retry-After"]) >= 1
    assert r.get_json()["error"]["code"] == "service_unavailable" and r.get_json()["error"]["request_id"]
    conforms(openapi_document("http://127.0.0.1:8000"), "POST", f"/v1/payment-sessions/{voice}/card", r)
    keyed = stack.http.post(f"/v1/payment-sessions/{voice}/card", json=CARD,
                            headers={**stack.auth(), "Idempotency-Key": "voice-1"})
    assert keyed.status_code == 503
    r = stack.http.post(page_path, data={**hidden, "number": CARD["number"], "expiry": "12/30", "cvc": "123",
                                         "cardholder_name": "Ada"})
    assert r.status_code == 503 and r.headers["Retry-After"] and r.mimetype == "text/html"
    assert "not charged" in r.get_data(as_text=True) and CARD["number"] not in r.get_data(as_text=True)
    assert pending_row(stack, voice) == ("pending", 0)
    assert pending_row(stack, page["session_id"]) == ("pending", 0)

    private_redis.start()  # back, and empty
    assert stack.http.get("/readyz").status_code == 200
    r = stack.http.post(f"/v1/payment-sessions/{voice}/card", json=CARD,
                        headers={**stack.auth(), "Idempotency-Key": "voice-1"})  # the 503 was not kept for the key
    assert r.status_code == 200 and r.get_json()["outcome"] == "approved", r.get_json()
    r = stack.http.post(page_path, data={**hidden_fields(stack, page_path), "number": CARD["number"],
                                         "expiry": "12/30", "cvc": "123", "cardholder_name": "Ada"})
    assert r.status_code == 303
    assert pending_row(stack, voice) == ("approved", 1) and pending_row(stack, page["session_id"]) == ("approved", 1)


def test_redis_failing_after_the_lock_leaves_the_session_pending_not_failed(stack, private_redis):
    """Redis dies just after the submission took its lock (in the fraud screen): nothing was charged, so the
    session is not left processing for reconciliation to fail it."""
    sid = stack.create_session(customer_account_id="R-3", ttl_seconds=3600)["session_id"]
    fraud = stack.services.payments.fraud
    screen_and = fraud.screen_and  # the fraud screen (and the breaker's admission, in its round trip)

    def redis_dies_now(*args, **kwargs):
        private_redis.stop()
        return screen_and(*args, **kwargs)

    fraud.screen_and = redis_dies_now
    r = stack.http.post(f"/v1/payment-sessions/{sid}/card", json=CARD, headers=stack.auth())
    fraud.screen_and = screen_and
    assert r.status_code == 503 and r.get_json()["error"]["code"] == "service_unavailable"
    assert pending_row(stack, sid) == ("pending", 0)
    stack.clock.advance(600)  # well past PAYGATE_RECONCILE_AFTER_SECONDS
    assert stack.services.payments.reconcile_due() == 0
    assert pending_row(stack, sid) == ("pending", 0)
    private_redis.start()
    r = stack.http.post(f"/v1/payment-sessions/{sid}/card", json=CARD, headers=stack.auth())
    assert r.get_json()["outcome"] == "approved"


def test_database_down_readyz_is_503_and_healthz_stays_up(redis_url, state_dir):
    unreachable = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/paygate"
    settings = make_settings(unreachable, redis_url, state_dir)
    services = build_services(settings)
    try:
        http = create_app(settings, services=services).test_client()
        assert http.get("/healthz").status_code == 200
        r = http.get("/readyz")
        assert r.status_code == 503 and r.headers["Retry-After"]
        assert r.get_json() == {"database": "unavailable", "redis": "ok", "gateway": "closed"}
        r = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                      headers={"Authorization": "Basic Y2xpX3g6eA=="})
        assert r.status_code == 503 and r.get_json()["error"]["code"] == "service_unavailable"
        assert r.headers["Retry-After"]
    finally:
        services.close()
