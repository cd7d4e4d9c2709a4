"""Production hardening (docs/api.md, "Callback URLs in production", "Clients and secrets", "Headers"):
internal callback URLs refused at creation and before each delivery, weak secrets refused at start-up, tokens
checked against an active client with the ``paygate clients`` commands, HSTS, and trusted proxies.

Production stacks are built with strong secrets made here; the app, the database, Redis and the CLI are real."""

from __future__ import annotations

import base64
import json
import secrets
from urllib.parse import urlsplit

import httpx
import pytest
import redis as redis_lib
from click.testing import CliRunner
from redis.backoff import NoBackoff
from redis.retry import Retry
from sqlalchemy import select

from callbacks.models import Delivery, Event
from kernel import netguard
from paygate.cli import main as cli
from paygate.worker import build_deliverer
from payments.clients import ClientStates
from payments.fraud import FraudScreen
from payments.models import ApiClient
from tests.functional.money import VISA, paid, payment, post
from tests.functional.test_checkout_flow import _path, open_form
from tests.functional.test_delivery import Receiver, wait_until

INTERNAL_URLS = [
    "https://169.254.169.254/latest/meta-data/",
    "https://10.0.0.1/cb",
    "https://172.16.5.4/cb",
    "https://192.168.1.20:8443/cb",
    "https://100.64.0.1/cb",
    "https://127.0.0.1/cb",
    "http://127.0.0.1:9000/cb",          # loopback http is for development and test only
    "http://localhost:9000/cb",
    "https://localhost/cb",
    "https://127.1/cb",                  # inet_aton spellings of 127.0.0.1
    "https://2130706433/cb",
    "https://0.0.0.0/cb",
    "https://224.0.0.1/cb",
    "https://240.0.0.1/cb",
    "https://[::1]/cb",
    "https://[::]/cb",
    "https://[fe80::1]/cb",
    "https://[fd00::1]/cb",
    "https://[ff02::1]/cb",
    "https://[::ffff:169.254.169.254]/cb",
    "https://[::ffff:10.0.0.1]/cb",
    "https://[::10.0.0.1]/cb",
    "https://[64:ff9b::a9fe:a9fe]/cb",
    "https://[64:ff9b::10.0.0.1]/cb",
    "https://[2002:a9fe:a9fe::1]/cb",
]


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def strong_secrets() -> dict[str, str]:
    return {"SECRET_KEY": secrets.token_urlsafe(48), "VAULT_KEYS": f"k1:{b64(secrets.token_bytes(32))}",
            "FINGERPRINT_KEY": b64(secrets.token_bytes(32))}


@pytest.fixture
def production(stack_factory):
    return stack_factory(ENV="production", PUBLIC_BASE_URL="https://pay.example.com", **strong_secrets())


def session_body(**overrides) -> dict:
    return {"conversation_id": "conv-1", "participant_id": "part-1", "customer_account_id": "ACME-1",
            "amount": 2500, "currency": "USD", "channel": "messaging", **overrides}


def cli_env(stack, **extra) -> dict[str, str]:
    """The environment the ``paygate`` command needs to work on ``stack``'s database and Redis."""
    s = stack.services.settings
    env = {"PAYGATE_ENV": s.env, "PAYGATE_DATABASE_URL": s.database_url, "PAYGATE_REDIS_URL": s.redis_url,
           "PAYGATE_INSTANCE_PATH": str(s.instance_path)}
    env.update({f"PAYGATE_{k}": v for k, v in extra.items()})
    return env


def run_cli(stack, *args, **extra):
    return CliRunner().invoke(cli, list(args), env=cli_env(stack, **extra), catch_exceptions=False)


# -- callback URLs -------------------------------------------------------------------------------------------

def test_internal_callback_urls_are_refused_in_production(production):
    for url in INTERNAL_URLS:
        r = production.http.post("/v1/payment-sessions", json=session_body(callback_url=url),
                                 headers=production.auth())
        assert r.status_code == 400, (url, r.get_json())
        error = r.get_json()["error"]
        assert error["code"] == "callback_url_not_allowed", (url, error)
        assert error["fields"] == {"callback_url": "callback_url_not_allowed"}


def test_with_other_invalid_fields_the_code_stays_validation_error(production):
    r = production.http.post("/v1/payment-sessions", json=session_body(callback_url="https://10.0.0.1/cb",
                                                                       amount_range={"min": 900, "max": 100}),
                             headers=production.auth())
    error = r.get_json()["error"]
    assert r.status_code == 400 and error["code"] == "validation_error"
    assert error["fields"]["callback_url"] == "callback_url_not_allowed"


def test_public_and_not_yet_resolvable_callback_urls_are_accepted_in_production(production):
    for url in ("https://8.8.8.8/cb", "https://[2606:4700:4700::1111]/cb", "https://hooks.merchant.example/cb",
                "https://[64:ff9b::808:808]/cb"):
        r = production.http.post("/v1/payment-sessions", json=session_body(callback_url=url),
                                 headers=production.auth())
        assert r.status_code == 201, (url, r.get_json())
    plain = production.http.post("/v1/payment-sessions", json=session_body(callback_url="http://8.8.8.8/cb"),
                                 headers=production.auth())
    assert plain.status_code == 400 and plain.get_json()["error"]["fields"] == {"callback_url": "invalid_url"}


def test_outside_production_loopback_callback_urls_keep_working(stack):
    for url in ("http://127.0.0.1:9000/cb", "http://localhost:9000/cb", "https://10.0.0.1/cb"):
        r = stack.http.post("/v1/payment-sessions", json=session_body(callback_url=url), headers=stack.auth())
        assert r.status_code == 201, (url, r.get_json())


def test_merchant_payment_refund_and_subscription_callback_urls_are_checked(production):
    _, pid = paid(production)
    token = payment(production, pid)["token"]
    bad = "https://169.254.169.254/cb"
    answers = {
        "payment": post(production, "/v1/payments", {"token": token, "amount": 1200, "currency": "USD",
                                                     "customer_account_id": "ACME-1", "callback_url": bad},
                        key="p-1"),
        "refund": post(production, "/v1/refunds", {"payment_id": pid, "disposition_code": "REFUND_FULL",
                                                   "callback_url": bad}, key="r-1"),
        "subscription": post(production, "/v1/subscriptions", {
            "token": token, "amount": 1999, "currency": "USD", "interval": "month", "interval_count": 1,
            "customer_account_id": "ACME-1", "callback_url": bad}, key="s-1"),
    }
    for name, r in answers.items():
        assert r.status_code == 400, (name, r.get_json())
        assert r.get_json()["error"]["code"] == "callback_url_not_allowed", name
        assert r.get_json()["error"]["fields"] == {"callback_url": "callback_url_not_allowed"}, name
    ok = post(production, "/v1/refunds", {"payment_id": pid, "disposition_code": "REFUND_FULL",
                                          "callback_url": "https://hooks.merchant.example/cb"}, key="r-2")
    assert ok.status_code == 201, ok.get_json()


def test_a_client_callback_url_is_checked_by_clients_create(production):
    extra = {k: str(v) for k, v in strong_secrets().items()}
    extra["PUBLIC_BASE_URL"] = "https://pay.example.com"
    refused = CliRunner().invoke(cli, ["clients", "create", "acme", "--callback-url", "https://10.0.0.1/hooks"],
                                 env=cli_env(production, **extra))
    assert refused.exit_code != 0 and "callback_url_not_allowed" in refused.output
    created = run_cli(production, "clients", "create", "acme", "--callback-url", "https://8.8.8.8/hooks", **extra)
    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["client_id"].startswith("cli_")


@pytest.fixture
def receiver(state_dir):
    r = Receiver(state_dir)
    yield r
    r.close()


def _deliver(stack, resolver):
    """One worker turn on ``stack`` with the production deliverer of paygate.worker (resolver injected)."""
    with httpx.Client() as http:
        deliverer = build_deliverer(stack.services.settings, stack.services.Session, http, clock=stack.clock,
                                    resolver=resolver)
        try:
            return deliverer.run_once()
        finally:
            deliverer.close()


def _webhook_deliveries(stack, session_id):
    with stack.services.Session() as db:
        return db.execute(select(Delivery).join(Event, Event.id == Delivery.event_id)
                          .where(Event.session_id == session_id, Delivery.kind == "webhook")).scalars().all()


def _client_with_stored_url(stack, url):
    """A client whose endpoint was stored before the rules (or points at a name that later moved)."""
    created = stack.new_client(name="legacy", callback_url=url)
    return created, stack.token_for(created)


def test_delivery_checks_the_address_again_and_dead_letters_an_internal_one(production, receiver):
    """DNS rebinding: the name resolved to nothing (or a public address) at creation, now to 127.0.0.1."""
    port = urlsplit(receiver.url).port
    _, token = _client_with_stored_url(production, f"http://rebind.example:{port}/cb")
    r = production.http.post("/v1/payment-sessions", json=session_body(), headers=production.auth(token))
    assert r.status_code == 201, r.get_json()
    sid = r.get_json()["session_id"]
    assert post(production, f"/v1/payment-sessions/{sid}/cancel", token=token).status_code == 200
    calls = []

    def rebinding(host, port_):
        calls.append(host)
        return ["127.0.0.1"]

    assert _deliver(production, rebinding) >= 1
    [delivery] = _webhook_deliveries(production, sid)
    assert delivery.status == "dead"
    assert delivery.last_error.startswith("callback_url_not_allowed: rebind.example resolves to 127.0.0.1")
    assert calls == ["rebind.example"]
    assert receiver.requests == []


def test_the_same_delivery_goes_out_when_the_address_is_allowed(production, receiver, monkeypatch):
    """The control of the test above: with loopback let through, the pinned request reaches the receiver with
    the URL's host name in its Host header."""
    original = netguard.refusal
    monkeypatch.setattr(netguard, "refusal", lambda a: None if str(a) == "127.0.0.1" else original(a))
    port = urlsplit(receiver.url).port
    _, token = _client_with_stored_url(production, f"http://rebind.example:{port}/cb")
    r = production.http.post("/v1/payment-sessions", json=session_body(), headers=production.auth(token))
    sid = r.get_json()["session_id"]
    assert post(production, f"/v1/payment-sessions/{sid}/cancel", token=token).status_code == 200
    assert _deliver(production, lambda host, port_: ["127.0.0.1"]) >= 1
    wait_until(lambda: receiver.requests)
    assert receiver.requests[0].headers["host"] == f"rebind.example:{port}"
    [delivery] = _webhook_deliveries(production, sid)
    assert delivery.status == "delivered"


# -- secrets -------------------------------------------------------------------------------------------------

def test_production_refuses_to_start_with_weak_or_reused_secrets(stack):
    strong = strong_secrets()
    shared = b64(secrets.token_bytes(32))
    cases = {
        "PAYGATE_SECRET_KEY": {**strong, "SECRET_KEY": "x"},
        "PAYGATE_VAULT_KEYS[k1]": {**strong, "VAULT_KEYS": f"k1:{b64(bytes(32))}"},
        "PAYGATE_FINGERPRINT_KEY": {**strong, "FINGERPRINT_KEY": b64(b"\x07" * 32)},
        "reused": {**strong, "VAULT_KEYS": f"k1:{shared}", "FINGERPRINT_KEY": shared},
    }
    for name, env in cases.items():
        r = CliRunner().invoke(cli, ["db", "upgrade"], env=cli_env(stack, ENV="production",
                                                                   PUBLIC_BASE_URL="https://pay.example.com",
                                                                   **env))
        assert r.exit_code != 0, name
        assert "configuration error" in r.output, r.output
        assert (name if name != "reused" else "PAYGATE_FINGERPRINT_KEY") in r.output, r.output
    ok = CliRunner().invoke(cli, ["db", "upgrade"], env=cli_env(stack, ENV="production",
                                                                PUBLIC_BASE_URL="https://pay.example.com", **strong))
    assert ok.exit_code == 0, ok.output


# -- clients and tokens --------------------------------------------------------------------------------------

def sessions_status(stack, token) -> int:
    return stack.http.get("/v1/payments", headers=stack.auth(token)).status_code


def test_a_disabled_clients_token_is_refused_at_once_and_enable_restores_it(stack):
    token = stack.token
    assert sessions_status(stack, token) == 200  # the active state is now cached
    other = stack.new_client(name="other")
    other_token = stack.token_for(other)

    r = run_cli(stack, "clients", "disable", stack.client.client_id)
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"client_id": stack.client.client_id, "status": "disabled"}
    refused = stack.http.get("/v1/payments", headers=stack.auth(token))
    assert refused.status_code == 401 and refused.get_json()["error"]["code"] == "invalid_token"
    assert stack.http.post("/v1/payment-sessions", json=session_body(), headers=stack.auth(token)).status_code == 401
    basic = base64.b64encode(f"{stack.client.client_id}:{stack.client.client_secret}".encode()).decode()
    no_token = stack.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                               headers={"Authorization": f"Basic {basic}"})
    assert no_token.status_code == 401 and no_token.get_json() == {"error": "invalid_client"}
    assert sessions_status(stack, other_token) == 200  # other clients are untouched

    listed = run_cli(stack, "clients", "list", "--json")
    statuses = {row["client_id"]: row["status"] for row in map(json.loads, listed.output.splitlines())}
    assert statuses[stack.client.client_id] == "disabled" and statuses[other.client_id] == "active"
    table = run_cli(stack, "clients", "list").output
    assert f"{stack.client.client_id}\tdisabled\t" in table
    assert "secret" not in listed.output + table and stack.client.client_secret not in listed.output + table

    assert run_cli(stack, "clients", "enable", stack.client.client_id).exit_code == 0
    assert sessions_status(stack, token) == 200
    assert sessions_status(stack, stack.token_for(stack.client)) == 200


def test_rotate_secret_prints_a_new_secret_once_and_the_old_secret_and_tokens_stop(stack):
    old_token = stack.token
    assert sessions_status(stack, old_token) == 200
    r = run_cli(stack, "clients", "rotate-secret", stack.client.client_id)
    assert r.exit_code == 0, r.output
    printed = json.loads(r.output)
    assert printed["client_id"] == stack.client.client_id and printed["client_secret"].startswith("pgcs_")
    assert printed["client_secret"] != stack.client.client_secret
    assert sessions_status(stack, old_token) == 401

    def token_with(secret):
        basic = base64.b64encode(f"{stack.client.client_id}:{secret}".encode()).decode()
        return stack.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                               headers={"Authorization": f"Basic {basic}"})

    assert token_with(stack.client.client_secret).status_code == 401
    fresh = token_with(printed["client_secret"])
    assert fresh.status_code == 200
    assert sessions_status(stack, fresh.get_json()["access_token"]) == 200
    with stack.services.Session() as db:  # only a hash is stored
        assert printed["client_secret"] not in db.get(ApiClient, stack.client.client_id).secret_hash


def test_unknown_clients_are_refused_by_the_commands(stack):
    for command in ("disable", "enable", "rotate-secret"):
        r = CliRunner().invoke(cli, ["clients", command, "cli_nope"], env=cli_env(stack))
        assert r.exit_code != 0 and "no client cli_nope" in r.output


def test_a_deleted_clients_token_is_refused(stack):
    other = stack.new_client(name="short-lived")
    token = stack.token_for(other)
    assert sessions_status(stack, token) == 200
    with stack.services.Session.begin() as db:
        db.delete(db.get(ApiClient, other.client_id))
    ClientStates(stack.services.Session, stack.services.redis).refresh(other.client_id)
    assert sessions_status(stack, token) == 401


def test_client_state_reads_the_database_while_redis_is_down(stack):
    down = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    states = ClientStates(stack.services.Session, down)
    assert states.current(stack.client.client_id)
    with stack.services.Session.begin() as db:
        db.get(ApiClient, stack.client.client_id).active = False
    assert states.current(stack.client.client_id) is None
    assert states.refresh(stack.client.client_id) is False


def test_client_state_skips_redis_for_a_while_after_an_error(stack):
    """After a Redis error the state comes from the database without asking Redis for ``skip_seconds`` (the
    injected timer), then Redis is asked again."""
    calls = []

    class Flaky:
        def get(self, key):
            calls.append(key)
            raise redis_lib.ConnectionError("down")

        def set(self, *a, **kw):
            raise redis_lib.ConnectionError("down")

    now = [50.0]
    states = ClientStates(stack.services.Session, Flaky(), skip_seconds=5.0, monotonic=lambda: now[0])
    assert states.current(stack.client.client_id) and len(calls) == 1
    now[0] += 4.9
    assert states.current(stack.client.client_id) and len(calls) == 1  # the database only
    now[0] += 0.2
    assert states.current(stack.client.client_id) and len(calls) == 2


# -- headers and proxies -------------------------------------------------------------------------------------

HSTS = "max-age=63072000; includeSubDomains"


def test_hsts_on_every_response_in_production(production):
    created = production.create_session()
    answers = [production.http.get("/healthz"), production.http.get("/v1/payments", headers=production.auth()),
               production.http.get("/v1/payments"), production.http.get("/nowhere"),
               production.http.get(_path(created["checkout_url"])), production.http.get("/v1/openapi.json"),
               production.http.post("/oauth/token", data={"grant_type": "client_credentials"})]
    for r in answers:
        assert r.headers.get("Strict-Transport-Security") == HSTS, (r.request.path, r.status_code)


def test_no_hsts_outside_production(stack):
    assert "Strict-Transport-Security" not in stack.http.get("/healthz").headers


def _pay_from(stack, forwarded_for: str | None):
    created = stack.create_session()
    hidden = open_form(stack, created["checkout_url"])
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    r = stack.http.post(_path(created["checkout_url"]), headers=headers,
                        data={**hidden, "number": VISA, "expiry": "12/30", "cvc": "123",
                              "cardholder_name": "Ada Lovelace"})
    assert r.status_code in (200, 303), r.status_code


def test_with_one_trusted_proxy_the_fraud_ip_rule_sees_the_customer(stack_factory):
    stack = stack_factory(TRUSTED_PROXIES=1)
    redis = stack.services.redis
    _pay_from(stack, "198.51.100.77, 203.0.113.9")  # a spoofed first hop, then what our balancer saw
    assert redis.exists(FraudScreen.ip_key("203.0.113.9"))
    assert not redis.exists(FraudScreen.ip_key("198.51.100.77"))
    assert not redis.exists(FraudScreen.ip_key("127.0.0.1"))


def test_without_trusted_proxies_forwarded_headers_are_ignored(stack):
    _pay_from(stack, "203.0.113.9")
    redis = stack.services.redis
    assert not redis.exists(FraudScreen.ip_key("203.0.113.9"))
    assert redis.exists(FraudScreen.ip_key("127.0.0.1"))
