"""Fixtures for the functional suite: the real app on a real database (SQLite and PostgreSQL) and a
real Redis, driven through Flask's test client. Nothing of ours is mocked; time is a FrozenClock."""

from __future__ import annotations

import base64
import itertools
from datetime import datetime, timezone

import pytest

from app import create_app
from kernel.clock import FrozenClock, random_id
from kernel.settings import Settings
from paygate.services import build_services
from payments.clients import create_client

_n = itertools.count()
START = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)


def make_settings(db_url: str, redis_url: str, state_dir, **env) -> Settings:
    base = {
        "PAYGATE_ENV": "test",
        "PAYGATE_DATABASE_URL": db_url,
        "PAYGATE_REDIS_URL": redis_url,
        "PAYGATE_INSTANCE_PATH": str(state_dir / "instance"),
        "PAYGATE_PUBLIC_BASE_URL": "http://127.0.0.1:8000",
        "PAYGATE_FRAME_ANCESTORS": "'self' http://127.0.0.1:8010",
        # the suite loads the API on purpose (fifty concurrent refunds, a token per stack, many card posts from
        # one address): generous rate limits, still enforced; tests/functional/test_rate_limits.py sets tight ones
        **{f"PAYGATE_RATE_LIMIT_{scope}": "1000000 per minute" for scope in (
            "API", "TOKEN", "TOKEN_FAILURES_CLIENT", "TOKEN_FAILURES_IP", "CHECKOUT_SESSION", "CHECKOUT_IP")},
    }
    base.update({f"PAYGATE_{k}": str(v) for k, v in env.items()})
    return Settings.from_env(base)


class Stack:
    """The app plus handles tests use: services, clock, an API client with its secrets and a token."""

    def __init__(self, app, services, clock):
        self.app = app
        self.services = services
        self.clock = clock
        self.http = app.test_client()
        self.client = None

    def new_client(self, name="genesys", callback_url=None):
        with self.services.Session.begin() as db:
            created = create_client(db, name=name, callback_url=callback_url, now=self.clock(), new_id=random_id)
        return created

    def token_for(self, created) -> str:
        basic = base64.b64encode(f"{created.client_id}:{created.client_secret}".encode()).decode()
        r = self.http.post("/oauth/token", data={"grant_type": "client_credentials"},
                           headers={"Authorization": f"Basic {basic}"})
        assert r.status_code == 200, r.get_json()
        return r.get_json()["access_token"]

    def auth(self, token=None) -> dict:
        return {"Authorization": f"Bearer {token or self.token}"}

    def create_session(self, **overrides):
        body = {"conversation_id": "conv-1", "participant_id": "part-1", "customer_account_id": "ACME-1",
                "amount": 2500, "currency": "USD", "channel": "messaging", "reference": "INV-1"}
        body.update(overrides)
        r = self.http.post("/v1/payment-sessions", json=body, headers=self.auth())
        assert r.status_code == 201, r.get_json()
        return r.get_json()


@pytest.fixture
def stack_factory(db_url, redis_url, redis_client, state_dir):
    """Builds stacks on this test's database; ``stack_factory(**env)`` overrides PAYGATE_* settings."""
    built = []

    def factory(clock=None, gateway=None, **env):
        settings = make_settings(db_url, redis_url, state_dir, **env)
        clock = clock or FrozenClock(START)
        services = build_services(settings, clock=clock, gateway=gateway)
        app = create_app(settings, services=services)
        app.config.update(TESTING=True)
        stack = Stack(app, services, clock)
        created = stack.new_client(callback_url="http://127.0.0.1:9/unused")
        stack.client = created
        stack.token = stack.token_for(created)
        built.append(stack)
        return stack

    yield factory
    for stack in built:
        stack.services.close()


@pytest.fixture
def stack(stack_factory):
    return stack_factory()
