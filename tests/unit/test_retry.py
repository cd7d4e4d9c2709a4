"""The retry policy: classification, exponential backoff with jitter, maximum age."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import pytest

from callbacks.retry import RetryPolicy, backoff_seconds, classify, decide


@pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
def test_2xx_is_delivered(status):
    assert classify(status, False) == "delivered"


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504, 599])
def test_retryable_statuses(status):
    assert classify(status, False) == "retry"


def test_transport_errors_retry_whatever_the_status():
    assert classify(None, True) == "retry"
    assert classify(None, False) == "retry"


@pytest.mark.parametrize("status", [100, 301, 302, 304, 400, 401, 403, 404, 405, 409, 410, 413, 422, 451])
def test_other_statuses_are_dead(status):
    assert classify(status, False) == "dead"


def test_backoff_grows_exponentially_within_jitter_bounds():
    rng = random.Random(7)
    for attempt in range(1, 12):
        raw = min(60.0, 2.0 * 2 ** (attempt - 1))
        for _ in range(50):
            delay = backoff_seconds(attempt, base=2.0, cap=60.0, rng=rng)
            assert raw * 0.5 <= delay <= raw


def test_backoff_is_capped_and_survives_huge_attempt_numbers():
    rng = random.Random(1)
    assert backoff_seconds(10_000, base=2.0, cap=3600.0, rng=rng) <= 3600.0


def test_backoff_jitter_varies_and_is_reproducible_with_a_seed():
    a = [backoff_seconds(3, base=1.0, cap=100.0, rng=random.Random(42)) for _ in range(2)]
    assert a[0] == a[1]
    rng = random.Random(42)
    spread = {backoff_seconds(3, base=1.0, cap=100.0, rng=rng) for _ in range(20)}
    assert len(spread) > 1


def test_backoff_rejects_attempt_zero():
    with pytest.raises(ValueError):
        backoff_seconds(0, base=1.0, cap=10.0, rng=random.Random())


T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)
POLICY = RetryPolicy(base=10.0, cap=3600.0, max_age=86400)


def test_decide_schedules_a_retry_after_backoff():
    now = T0 + timedelta(seconds=5)
    d = decide(500, False, 1, now=now, event_created_at=T0, policy=POLICY, rng=random.Random(3))
    assert d.outcome == "retry"
    assert now + timedelta(seconds=5) <= d.next_attempt_at <= now + timedelta(seconds=10)


def test_decide_delivered_and_dead_have_no_next_attempt():
    ok = decide(204, False, 1, now=T0, event_created_at=T0, policy=POLICY, rng=random.Random())
    assert (ok.outcome, ok.next_attempt_at) == ("delivered", None)
    d = decide(410, False, 1, now=T0, event_created_at=T0, policy=POLICY, rng=random.Random())
    assert (d.outcome, d.next_attempt_at) == ("dead", None)


def test_decide_dead_once_max_age_has_passed():
    late = T0 + timedelta(seconds=86400)
    assert decide(503, False, 30, now=late, event_created_at=T0, policy=POLICY, rng=random.Random()).outcome == "dead"
    assert decide(None, True, 30, now=late, event_created_at=T0, policy=POLICY, rng=random.Random()).outcome == "dead"


def test_decide_never_schedules_past_the_deadline():
    almost = T0 + timedelta(seconds=86400 - 1)
    d = decide(503, False, 20, now=almost, event_created_at=T0, policy=POLICY, rng=random.Random())
    assert d.outcome == "retry" and d.next_attempt_at == T0 + timedelta(seconds=86400)
