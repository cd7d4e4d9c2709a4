"""Schemathesis against the served OpenAPI document (``GET /v1/openapi.json``): every operation, generated
requests (valid and invalid ones), through the real app on SQLite and a real Redis.

Each response must be no 5xx (``not_a_server_error``), use a documented status and content type, and have
the body its document declares (``response_schema_conformance``). The app runs with ``TESTING`` on, so an
answer that does not match its own pydantic model is a 500 as well (:class:`app.api.spec.PaygatePlugin`).

Real objects are seeded first (a pending and a paid session, a hold, a refund, a dispute, a subscription,
events) and most generated path parameters are replaced by their ids, so the operations reach the code
behind a found object, not only the 404 path. The sandbox clock helper moves business time for the whole
deployment: it is reset after each of its calls, so one generated move cannot expire the seeded objects.

SQLite only, with a bounded number of examples per operation (:data:`MAX_EXAMPLES`) and Hypothesis
derandomized (the same cases every run): the whole module runs in about a minute.
"""

from __future__ import annotations

import base64
import itertools
import os
import re

import pytest
import redis as redis_lib
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app import create_app
from app.openapi import openapi_document
from kernel.clock import FrozenClock
from paygate.services import build_services
from payments.sandbox_clock import OFFSET_KEY
from tests.conftest import _migrated_sqlite_url

from .conftest import START, Stack, make_settings
from .money import DISPUTED, advance, deliver_sandbox_webhooks, paid, payment, post

MAX_EXAMPLES = int(os.environ.get("PAYGATE_FUZZ_EXAMPLES", "25"))
"""Generated cases per operation and mode (valid and invalid requests); ``PAYGATE_FUZZ_EXAMPLES`` raises it for a
deeper run by hand, and ``PAYGATE_FUZZ_RANDOM=1`` draws new cases instead of the fixed ones."""

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def seeded(state_dir, redis_url):
    """A stack on a fresh SQLite database (rate limits off: this test floods on purpose) with real objects, shared
    by every operation of the module; ``(stack, ids)`` where ``ids`` maps a path parameter name to ids of
    existing objects."""
    redis_lib.Redis.from_url(redis_url).flushdb()
    settings_ = make_settings(_migrated_sqlite_url(state_dir), redis_url, state_dir, RATE_LIMITS_ENABLED="false",
                              LOG_LEVEL="ERROR")
    clock = FrozenClock(START)
    services = build_services(settings_, clock=clock)
    app = create_app(settings_, services=services)
    app.config.update(TESTING=True)
    stack = Stack(app, services, clock)
    stack.client = stack.new_client(callback_url="http://127.0.0.1:9/unused")
    stack.token = stack.token_for(stack.client)

    pending = stack.create_session(conversation_id="conv-pending")["session_id"]
    sid, pid = paid(stack)
    _, hold_pid = paid(stack, intent="hold", conversation_id="conv-hold")
    refund = post(stack, "/v1/refunds", {"payment_id": pid, "disposition_code": "REFUND_PARTIAL", "amount": 100})
    assert refund.status_code == 201, refund.get_json()
    _, disputed_pid = paid(stack, DISPUTED, conversation_id="conv-dispute")
    advance(stack, 5)
    assert deliver_sandbox_webhooks(stack) == 1
    dispute_id = payment(stack, disputed_pid)["dispute_id"]
    _, sub_pid = paid(stack, intent="subscription", conversation_id="conv-sub")
    first = payment(stack, sub_pid)
    listed = stack.http.get("/v1/events", headers=stack.auth()).get_json()["data"]
    ids = {
        "session_id": [pending, sid],
        "payment_id": [pid, hold_pid, disputed_pid],
        "refund_id": [refund.get_json()["refund_id"]],
        "dispute_id": [dispute_id],
        "subscription_id": [first["subscription_id"]],
        "event_id": [e["id"] for e in listed[:3]],
        "conversation_id": ["conv-1", "conv-hold"],
        "token": [first["token"]],
    }
    assert all(ids.values()), ids
    yield stack, ids
    services.close()


schema = schemathesis.openapi.from_dict(openapi_document("http://localhost"))
"""The document as the app serves it (built from the same declarations, without a running app)."""
OPERATIONS = sorted(result.ok().label for result in schema.get_all_operations())
_turn = itertools.count()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize("label", OPERATIONS)
def test_every_operation_answers_as_documented(label, mode, seeded):
    """Requests that fit the document (positive) and requests that do not (negative), per operation."""
    operation = schema.find_operation_by_label(label)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck),
              derandomize=not os.environ.get("PAYGATE_FUZZ_RANDOM"))
    def run(case):
        exercise(case, *seeded)

    try:
        run()
    except Unsatisfiable:  # nothing of this operation can be made invalid (no parameters, no body)
        assert mode == GenerationMode.NEGATIVE
        pytest.skip("no negative case can be generated")


def exercise(case, stack, ids) -> None:
    """Sends ``case`` (two in three with real ids) with the client's bearer token and runs :data:`CHECKS`."""
    for name in list(case.path_parameters or {}):
        if name in ids and next(_turn) % 3:  # two cases in three address a real object
            known = ids[name]
            case.path_parameters[name] = known[next(_turn) % len(known)]
    if isinstance(case.body, dict):  # body fields naming objects: real ones in two cases of three too
        for name, known in (("token", ids["token"]), ("payment_id", ids["payment_id"])):
            if name in case.body and next(_turn) % 3:
                case.body[name] = known[next(_turn) % len(known)]
    if case.headers and "Idempotency-Key" in case.headers and next(_turn) % 4:
        # generated keys repeat across bodies (422 idempotency_key_reused): most cases go without one
        del case.headers["Idempotency-Key"]
    headers = stack.auth()
    if case.operation.path == "/oauth/token" and next(_turn) % 2:
        credentials = f"{stack.client.client_id}:{stack.client.client_secret}".encode()
        headers = {"Authorization": "Basic " + base64.b64encode(credentials).decode()}
    try:
        case.call_and_validate(app=stack.app, headers=headers, checks=CHECKS)
    finally:
        if case.operation.path == "/v1/sandbox/clock":  # one move at a time: back to the seeded business time
            stack.services.redis.delete(OFFSET_KEY)
            clock = stack.services.sandbox_clock
            if clock is not None:
                clock._read_at = float("-inf")


def test_served_document_is_the_one_tested(seeded):
    """The served document is the one the cases above were generated from."""
    stack, _ = seeded
    served = stack.http.get("/v1/openapi.json").get_json()
    assert served["paths"] == openapi_document("http://localhost")["paths"]


def test_the_document_lists_every_served_operation(seeded):
    """The fuzzing above covers every operation: each served ``/v1`` and ``/oauth`` route is in the document."""
    stack, _ = seeded
    document = stack.http.get("/v1/openapi.json").get_json()
    documented = {(method.upper(), path) for path, item in document["paths"].items() for method in item}
    served = set()
    for rule in stack.app.url_map.iter_rules():
        if rule.rule.startswith(("/v1/", "/oauth/")):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            served |= {(m, path) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert served <= documented, served - documented
    assert len(documented) >= 30
