"""Rate limits (docs/api.md, "Rate limits"): 429 ``rate_limited`` with ``Retry-After`` per scope, counted per API
client / client id / session / address in the shared Redis, health endpoints exempt, failing open while the
limits' Redis is down, and the 429 documented on every operation.

Every test sets the limits it exercises (the suite's default, tests/functional/conftest.py, is generous) and sends
from addresses of its own (``REMOTE_ADDR``), so parallel tests on the same Redis never share a counter."""

from __future__ import annotations

import base64
import itertools
import logging
import os
import random
import secrets
import shutil
import subprocess
import threading

import pytest
from limits import parse_many

from app.openapi import openapi_document
from kernel.settings import Settings
from paygate.processes import free_port, port_open, wait_until
from tests.functional.test_openapi import BASE, conforms

_run = random.Random(os.getpid() ^ id(object()))
_octets = itertools.count(_run.randrange(1, 200))


def new_ip() -> str:
    """An address no other test of this run sends from (TEST-NET ranges, RFC 5737)."""
    n = next(_octets)
    return f"198.51.{n % 250}.{_run.randrange(1, 250)}"


class Captured(logging.Handler):
    """Records of one logger (the app's logging set-up replaces the root handlers, pytest's capture included)."""

    def __init__(self, name: str):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.logger = logging.getLogger(name)

    def emit(self, record):
        self.records.append(record)

    def __enter__(self):
        self.logger.addHandler(self)
        return self

    def __exit__(self, *exc):
        self.logger.removeHandler(self)

    def warnings(self, text: str) -> list[logging.LogRecord]:
        return [r for r in self.records if r.levelno == logging.WARNING and text in r.getMessage()]


def from_ip(ip: str) -> dict:
    return {"environ_base": {"REMOTE_ADDR": ip}}


def basic(client_id: str, secret: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def token_request(stack, client_id, secret, ip):
    return stack.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers=basic(client_id, secret), **from_ip(ip))


def assert_rate_limited(r, *, oauth=False, window=60):
    assert r.status_code == 429, (r.status_code, r.get_data(as_text=True)[:500])
    retry = r.headers.get("Retry-After")
    assert retry is not None and retry.isdigit() and 1 <= int(retry) <= window, retry
    if oauth:
        assert r.get_json() == {"error": "rate_limited"}
    else:
        body = r.get_json()["error"]
        assert body["code"] == "rate_limited" and body["request_id"] == r.headers["Request-Id"]


@pytest.fixture
def db_url(sqlite_url):
    """One engine: the limits live in Redis, whatever the database."""
    return sqlite_url


@pytest.fixture(scope="module")
def doc():
    return openapi_document(BASE)


# -- /v1 per API client --------------------------------------------------------------------------------------------
def test_v1_limit_is_per_client_with_retry_after_and_the_documented_shape(stack_factory, doc):
    stack = stack_factory(RATE_LIMIT_API="5 per minute")
    ip = new_ip()
    for _ in range(5):
        assert stack.http.get("/v1/payments", headers=stack.auth(), **from_ip(ip)).status_code == 200
    r = stack.http.get("/v1/payments", headers=stack.auth(), **from_ip(ip))
    assert_rate_limited(r)
    conforms(doc, "GET", "/v1/payments", r)
    # every /v1 route shares the client's budget, POSTs included, and nothing is stored under the Idempotency-Key
    keyed = {**stack.auth(), "Idempotency-Key": "rl-1"}
    r = stack.http.post("/v1/payment-sessions", json={}, headers=keyed, **from_ip(new_ip()))
    assert_rate_limited(r)
    conforms(doc, "POST", "/v1/payment-sessions", r)
    roomy = stack_factory()  # another instance with room: the same key and body run, not a replayed 429
    r = roomy.http.post("/v1/payment-sessions", json={}, headers=keyed, **from_ip(ip))
    assert r.status_code == 400 and "Idempotent-Replayed" not in r.headers, r.get_json()

    other = stack.new_client(name="other")
    token = stack.token_for(other)
    for _ in range(5):  # another client of the same deployment, from the same address, is not held up
        assert stack.http.get("/v1/payments", headers=stack.auth(token), **from_ip(ip)).status_code == 200
    assert_rate_limited(stack.http.get("/v1/payments", headers=stack.auth(token), **from_ip(ip)))


def test_v1_requests_without_a_valid_token_count_per_address(stack_factory):
    stack = stack_factory(RATE_LIMIT_API="3 per minute")
    ip = new_ip()
    for _ in range(3):
        assert stack.http.get("/v1/payments", headers={"Authorization": "Bearer forged"},
                              **from_ip(ip)).status_code == 401
    assert_rate_limited(stack.http.get("/v1/payments", **from_ip(ip)))
    # the address's budget is its own: the client's requests (any address) still pass
    assert stack.http.get("/v1/payments", headers=stack.auth(), **from_ip(ip)).status_code == 200
    assert stack.http.get("/v1/payments", headers={"Authorization": "Bearer forged"},
                          **from_ip(new_ip())).status_code == 401


def test_v1_limit_is_shared_by_every_instance(stack_factory):
    """Two app instances on one Redis count one budget per client."""
    one = stack_factory(RATE_LIMIT_API="4 per minute")
    two = stack_factory(RATE_LIMIT_API="4 per minute")
    ip = new_ip()
    for http in (one.http, two.http, one.http, two.http):
        assert http.get("/v1/payments", headers=one.auth(), **from_ip(ip)).status_code == 200
    assert_rate_limited(two.http.get("/v1/payments", headers=one.auth(), **from_ip(ip)))
    assert_rate_limited(one.http.get("/v1/payments", headers=one.auth(), **from_ip(ip)))


def test_default_limits_leave_room_for_integration_traffic(stack_factory):
    """Defaults: at least 1,200 /v1 requests per client per minute and a burst of 50 at once; a failed token
    request streak is cut well before 100."""
    defaults = Settings.from_env({"PAYGATE_ENV": "test", "PAYGATE_INSTANCE_PATH": "/nonexistent-unused",
                                  "PAYGATE_SECRET_KEY": "k" * 40, "PAYGATE_VAULT_KEYS": "k1:" + "A" * 43,
                                  "PAYGATE_FINGERPRINT_KEY": "B" * 43})
    for item in parse_many(defaults.rate_limit_api):
        window = item.get_expiry()
        assert item.amount >= 50, item
        if window <= 60:
            assert item.amount * (60 // window) >= 1200, item
    for rates in (defaults.rate_limit_token_failures_client, defaults.rate_limit_token_failures_ip):
        assert all(item.amount <= 30 for item in parse_many(rates)), rates

    stack = stack_factory(RATE_LIMIT_API="")  # the default
    ip = new_ip()
    answers, start = [], threading.Barrier(50)

    def call():
        http = stack.app.test_client()
        start.wait()
        answers.append(http.get("/v1/payments", headers=stack.auth(), **from_ip(ip)).status_code)

    threads = [threading.Thread(target=call) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [200] * 50


# -- /oauth/token ----------------------------------------------------------------------------------------------
def test_token_requests_are_limited_per_client_id(stack_factory, doc):
    stack = stack_factory(RATE_LIMIT_TOKEN="3 per minute")
    created = stack.new_client(name="tokens")
    ip = new_ip()
    for _ in range(3):
        assert token_request(stack, created.client_id, created.client_secret, ip).status_code == 200
    r = token_request(stack, created.client_id, created.client_secret, new_ip())
    assert_rate_limited(r, oauth=True)
    assert r.headers["Cache-Control"] == "no-store"
    conforms(doc, "POST", "/oauth/token", r)
    # another client id is not affected
    assert token_request(stack, stack.client.client_id, stack.client.client_secret, ip).status_code == 200


def test_failed_token_requests_are_limited_per_client_id(stack_factory):
    stack = stack_factory(RATE_LIMIT_TOKEN_FAILURES_CLIENT="3 per minute")
    victim, bystander = stack.new_client(name="victim"), stack.new_client(name="bystander")
    attacker = new_ip()
    for _ in range(3):
        assert token_request(stack, victim.client_id, "wrong", attacker).status_code == 401
    # the client id is locked for the window, whatever the address and even with its right secret
    assert_rate_limited(token_request(stack, victim.client_id, "wrong", attacker), oauth=True)
    assert_rate_limited(token_request(stack, victim.client_id, victim.client_secret, new_ip()), oauth=True)
    # a client's successful requests never count as failures, and others' failures do not hold it up
    for _ in range(5):
        assert token_request(stack, bystander.client_id, bystander.client_secret, attacker).status_code == 200
    # the failure count covers the form's credentials and bad requests too
    ip = new_ip()
    r = stack.http.post("/oauth/token", data={"grant_type": "password", "client_id": bystander.client_id,
                                              "client_secret": bystander.client_secret}, **from_ip(ip))
    assert r.status_code == 400 and r.get_json() == {"error": "unsupported_grant_type"}
    for _ in range(2):
        assert stack.http.post("/oauth/token", data={"grant_type": "client_credentials",
                                                     "client_id": bystander.client_id, "client_secret": "x"},
                               **from_ip(ip)).status_code == 401
    assert_rate_limited(token_request(stack, bystander.client_id, bystander.client_secret, ip), oauth=True)


def test_failed_token_requests_are_limited_per_address(stack_factory):
    """Spraying client ids from one address: cut off after the per-address count, other addresses unaffected."""
    stack = stack_factory(RATE_LIMIT_TOKEN_FAILURES_IP="4 per minute")
    sprayer = new_ip()
    for n in range(4):
        assert token_request(stack, f"cli_guess{n}", "wrong", sprayer).status_code == 401
    assert_rate_limited(token_request(stack, "cli_guess9", "wrong", sprayer), oauth=True)
    assert_rate_limited(token_request(stack, stack.client.client_id, stack.client.client_secret, sprayer),
                        oauth=True)
    assert token_request(stack, stack.client.client_id, stack.client.client_secret, new_ip()).status_code == 200


def test_default_failure_limits_cut_a_wrong_secret_streak_well_before_100(stack_factory):
    stack = stack_factory(RATE_LIMIT_TOKEN_FAILURES_CLIENT="", RATE_LIMIT_TOKEN_FAILURES_IP="")
    ip = new_ip()
    for attempt in range(1, 100):
        r = token_request(stack, stack.client.client_id, "wrong", ip)
        if r.status_code == 429:
            break
        assert r.status_code == 401
    assert attempt <= 31, attempt
    assert_rate_limited(r, oauth=True)


def test_token_floods_are_cut_in_production_per_customer_address_behind_a_proxy(stack_factory):
    """Production configuration, default limits, one trusted proxy: the per-address count is the client's
    address from X-Forwarded-For, not the load balancer's."""
    key = lambda: base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()  # noqa: E731
    stack = stack_factory(ENV="production", PUBLIC_BASE_URL="https://pay.example.com", TRUSTED_PROXIES="1",
                          SECRET_KEY=secrets.token_urlsafe(48), VAULT_KEYS=f"k1:{key()}", FINGERPRINT_KEY=key(),
                          RATE_LIMIT_TOKEN_FAILURES_CLIENT="", RATE_LIMIT_TOKEN_FAILURES_IP="")
    balancer, flooder = new_ip(), new_ip()
    for n in range(1, 100):  # a different client id each time: only the address's failure count can stop it
        r = stack.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                            headers={**basic(f"cli_guess{n}", "wrong"), "X-Forwarded-For": flooder},
                            **from_ip(balancer))
        if r.status_code == 429:
            break
        assert r.status_code == 401
    assert n <= 31, n
    assert_rate_limited(r, oauth=True)
    r = stack.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                        headers={**basic(stack.client.client_id, stack.client.client_secret),
                                 "X-Forwarded-For": new_ip()}, **from_ip(balancer))
    assert r.status_code == 200, r.get_json()  # another customer behind the same balancer


# -- checkout POST -----------------------------------------------------------------------------------------------
def _checkout_path(stack, **overrides) -> str:
    return stack.create_session(**overrides)["checkout_url"].replace("http://127.0.0.1:8000", "")


def test_checkout_post_is_limited_per_session(stack_factory):
    stack = stack_factory(RATE_LIMIT_CHECKOUT_SESSION="2 per minute")
    path = _checkout_path(stack)
    ip = new_ip()
    for _ in range(2):  # without the form's CSRF token: "page expired", still a POST that counts
        assert stack.http.post(path, data={"number": "4242"}, **from_ip(ip)).status_code == 400
    r = stack.http.post(path, data={"number": "4242"}, **from_ip(new_ip()))  # any address
    assert r.status_code == 429 and r.mimetype == "text/html"  # a browser's page, like the path's other errors
    assert 1 <= int(r.headers["Retry-After"]) <= 60
    assert "Too many attempts" in r.get_data(as_text=True) and "4242" not in r.get_data(as_text=True)
    assert stack.http.get(path, **from_ip(ip)).status_code == 200  # the page itself stays reachable
    other = _checkout_path(stack, reference="INV-2")
    assert stack.http.post(other, data={}, **from_ip(ip)).status_code == 400  # another session: its own count


def test_checkout_post_is_limited_per_address(stack_factory):
    stack = stack_factory(RATE_LIMIT_CHECKOUT_IP="3 per minute")
    paths = [_checkout_path(stack, reference=f"INV-{n}") for n in range(5)]
    ip = new_ip()
    for path in paths[:3]:
        assert stack.http.post(path, data={}, **from_ip(ip)).status_code == 400
    r = stack.http.post(paths[3], data={}, **from_ip(ip))
    assert r.status_code == 429 and "Retry-After" in r.headers
    assert stack.http.post(paths[4], data={}, **from_ip(new_ip())).status_code == 400


# -- exemptions and failing open -------------------------------------------------------------------------------
def test_health_endpoints_are_never_limited(stack_factory):
    stack = stack_factory(RATE_LIMIT_API="1 per minute", RATE_LIMIT_CHECKOUT_IP="1 per minute",
                          RATE_LIMIT_TOKEN_FAILURES_IP="1 per minute")
    ip = new_ip()
    for _ in range(30):
        assert stack.http.get("/healthz", **from_ip(ip)).status_code == 200
        assert stack.http.get("/readyz", **from_ip(ip)).status_code in (200, 404, 503)  # never 429
    assert stack.http.get("/v1/payments", headers=stack.auth(), **from_ip(ip)).status_code == 200
    assert_rate_limited(stack.http.get("/v1/payments", headers=stack.auth(), **from_ip(ip)))


def test_limits_fail_open_while_their_redis_is_unreachable(stack_factory):
    stack = stack_factory(RATE_LIMIT_API="1 per minute", RATE_LIMIT_TOKEN="1 per minute",
                          RATE_LIMIT_TOKEN_FAILURES_IP="1 per minute",
                          RATE_LIMIT_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    ip = new_ip()
    with Captured("flask-limiter") as log:
        for _ in range(5):
            assert stack.http.get("/v1/payments", headers=stack.auth(), **from_ip(ip)).status_code == 200
            assert token_request(stack, stack.client.client_id, "wrong", ip).status_code == 401
    warnings = log.warnings("rate limits not enforced")
    assert len(warnings) >= 10 and all(r.exc_info is None for r in warnings)
    assert not [r for r in log.records if r.levelno >= logging.ERROR]


@pytest.fixture
def private_redis(state_dir):
    """A Redis server of this test's own, on a free port: ``(url, stop, start)``."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    d = state_dir / f"redis-ratelimit-{port}"
    d.mkdir()
    procs = []

    def start():
        procs.append(subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
                                       "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL))
        wait_until(lambda: port_open(port), timeout=15, interval=0.05, what=f"redis on {port}", error=RuntimeError)

    def stop():
        proc = procs.pop()
        proc.terminate()
        proc.wait(timeout=15)

    start()
    yield f"redis://127.0.0.1:{port}/0", stop, start
    while procs:
        stop()


def test_limits_come_back_when_their_redis_does(stack_factory, private_redis):
    url, stop, start = private_redis
    stack = stack_factory(RATE_LIMIT_API="2 per minute", RATE_LIMIT_REDIS_URL=url)
    ip = new_ip()

    def get():
        return stack.http.get("/v1/payments", headers=stack.auth(), **from_ip(ip))

    assert [get().status_code for _ in range(2)] == [200, 200]
    assert_rate_limited(get())
    stop()
    with Captured("flask-limiter") as log:
        assert [get().status_code for _ in range(5)] == [200] * 5  # served, unlimited, while it is down
    assert len(log.warnings("rate limits not enforced")) == 5
    start()  # an empty Redis: counting starts again
    assert [get().status_code for _ in range(2)] == [200, 200]
    assert_rate_limited(get())


def test_limits_can_be_turned_off(stack_factory):
    stack = stack_factory(RATE_LIMITS_ENABLED="false", RATE_LIMIT_API="1 per minute")
    ip = new_ip()
    assert [stack.http.get("/v1/payments", headers=stack.auth(), **from_ip(ip)).status_code
            for _ in range(5)] == [200] * 5


def test_a_rate_limit_setting_that_is_not_a_rate_is_refused(stack_factory):
    from kernel.errors import ConfigError

    with pytest.raises(ConfigError, match="PAYGATE_RATE_LIMIT_API"):
        stack_factory(RATE_LIMIT_API="lots")


# -- the document ------------------------------------------------------------------------------------------------
def test_every_operation_documents_429_rate_limited_with_retry_after(doc):
    operations = [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]
    assert len(operations) > 20
    for path, method, operation in operations:
        response = operation["responses"].get("429")
        assert response is not None, f"{method.upper()} {path}"
        assert "rate_limited" in response["description"], f"{method.upper()} {path}"
        assert response["headers"]["Retry-After"]["schema"]["type"] == "integer"
        ref = response["content"]["application/json"]["schema"]["$ref"]
        assert ref.endswith("/OAuthError" if path == "/oauth/token" else "/Error"), (path, ref)
    assert "rate_limited" in doc["components"]["schemas"]["OAuthError"]["properties"]["error"]["enum"]
