"""The fraud pre-screen against a real Redis with a FrozenClock (payments.fraud)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from kernel.clock import FrozenClock
from payments.fraud import FraudAssessment, FraudPolicy, FraudScreen, FraudSignal

START = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
FP = "fp_card_one"
FP2 = "fp_card_two"


@pytest.fixture
def clock():
    return FrozenClock(START)


def make(redis_client, clock, **policy):
    return FraudScreen(redis_client, FraudPolicy(**policy), clock)


def codes(assessment):
    return [r.code for r in assessment.reasons]


def test_first_clean_attempt_scores_zero(redis_client, clock):
    screen = make(redis_client, clock)
    result = screen.screen(session_id="ps_1", attempt_number=1, client_ip="203.0.113.5", fingerprint=FP)
    assert result == FraudAssessment(0.0, (), 0.8)
    assert not result.blocked and result.to_json() == []


def test_session_attempts_small_weight_per_extra_attempt(redis_client, clock):
    screen = make(redis_client, clock)
    assert codes(screen.screen(session_id="ps_1", attempt_number=1, client_ip=None, fingerprint=FP)) == []
    third = screen.screen(session_id="ps_1", attempt_number=3, client_ip=None, fingerprint=FP)
    assert codes(third) == ["session_attempts"]
    assert third.score == pytest.approx(0.2) and not third.blocked


def test_ip_velocity_fires_over_its_limit_and_scales(redis_client, clock):
    screen = make(redis_client, clock, ip_attempts_per_hour=4)
    ip = "198.51.100.7"
    for n in range(4):  # exactly at the limit: no signal
        result = screen.screen(session_id=f"ps_{n}", attempt_number=1, client_ip=ip, fingerprint=f"fp_{n}")
        assert result.reasons == ()
    over = screen.screen(session_id="ps_4", attempt_number=1, client_ip=ip, fingerprint="fp_4")
    assert codes(over) == ["ip_velocity"]
    assert 0.5 <= over.score < 0.8 and not over.blocked                 # just over: not blocked alone
    assert "5 attempts" in over.reasons[0].detail and ip not in over.reasons[0].detail
    for n in range(5, 8):
        result = screen.screen(session_id=f"ps_{n}", attempt_number=1, client_ip=ip, fingerprint=f"fp_{n}")
    assert result.score == pytest.approx(1.0) and result.blocked        # 8 = twice the limit
    # another IP is unaffected; no IP skips the rule
    other_ip = screen.screen(session_id="ps_x", attempt_number=1, client_ip="198.51.100.8", fingerprint="fp_x")
    assert other_ip.reasons == ()
    assert screen.screen(session_id="ps_y", attempt_number=1, client_ip=None, fingerprint="fp_y").reasons == ()


def test_same_attempt_screened_twice_counts_once(redis_client, clock):
    screen = make(redis_client, clock, ip_attempts_per_hour=1)
    for _ in range(3):
        result = screen.screen(session_id="ps_1", attempt_number=1, client_ip="192.0.2.1", fingerprint=FP)
    assert result.reasons == ()


def test_ip_window_slides_with_the_clock(redis_client, clock):
    screen = make(redis_client, clock, ip_attempts_per_hour=2)
    ip = "2001:db8::1"
    screen.screen(session_id="ps_a", attempt_number=1, client_ip=ip, fingerprint="fp_a")
    clock.advance(1800)
    screen.screen(session_id="ps_b", attempt_number=1, client_ip=ip, fingerprint="fp_b")
    assert codes(screen.screen(session_id="ps_c", attempt_number=1, client_ip=ip, fingerprint="fp_c")) == \
        ["ip_velocity"]
    clock.advance(1801)  # ps_a is now older than an hour; ps_b, ps_c and this one remain
    assert codes(screen.screen(session_id="ps_d", attempt_number=1, client_ip=ip, fingerprint="fp_d")) == \
        ["ip_velocity"]
    clock.advance(3600)  # everything before has left the window
    assert screen.screen(session_id="ps_e", attempt_number=1, client_ip=ip, fingerprint="fp_e").reasons == ()


def test_card_velocity_counts_distinct_sessions(redis_client, clock):
    screen = make(redis_client, clock, card_sessions_per_hour=3)
    for n in range(3):
        assert screen.screen(session_id=f"ps_{n}", attempt_number=1, client_ip=None, fingerprint=FP).reasons == ()
    # a second attempt in a known session is not a new session
    again = screen.screen(session_id="ps_0", attempt_number=2, client_ip=None, fingerprint=FP)
    assert codes(again) == ["session_attempts"]
    over = screen.screen(session_id="ps_3", attempt_number=1, client_ip=None, fingerprint=FP)
    assert codes(over) == ["card_velocity"] and not over.blocked
    assert over.score == pytest.approx(0.5 * 4 / 3)
    assert screen.screen(session_id="ps_9", attempt_number=1, client_ip=None, fingerprint=FP2).reasons == ()
    clock.advance(3601)
    assert screen.screen(session_id="ps_4", attempt_number=1, client_ip=None, fingerprint=FP).reasons == ()


def test_card_declines_fire_at_the_limit_and_expire_after_a_day(redis_client, clock):
    screen = make(redis_client, clock, card_declines_per_day=3)
    for n in (1, 2):
        assert screen.record_decline(FP) == n
    below = screen.screen(session_id="ps_1", attempt_number=1, client_ip=None, fingerprint=FP)
    assert below.reasons == ()
    clock.advance(600)
    assert screen.record_decline(FP) == 3
    at = screen.screen(session_id="ps_2", attempt_number=1, client_ip=None, fingerprint=FP)
    assert codes(at) == ["card_declines"] and at.score == pytest.approx(0.5) and not at.blocked
    assert screen.screen(session_id="ps_3", attempt_number=1, client_ip=None, fingerprint=FP2).reasons == ()
    for _ in range(3):
        screen.record_decline(FP)
    assert screen.screen(session_id="ps_4", attempt_number=1, client_ip=None, fingerprint=FP).blocked  # 6 = 2x
    clock.advance(86400 - 600 + 1)  # the first two declines leave the one-day window
    left = screen.screen(session_id="ps_5", attempt_number=1, client_ip=None, fingerprint=FP)
    assert codes(left) == ["card_declines"] and left.score == pytest.approx(0.5 * 4 / 3)
    clock.advance(600)
    assert screen.screen(session_id="ps_6", attempt_number=1, client_ip=None, fingerprint=FP).reasons == ()


def test_two_rules_together_block(redis_client, clock):
    screen = make(redis_client, clock, ip_attempts_per_hour=2, card_sessions_per_hour=2)
    ip = "203.0.113.9"
    for n in range(2):
        screen.screen(session_id=f"ps_{n}", attempt_number=1, client_ip=ip, fingerprint=FP)
    both = screen.screen(session_id="ps_2", attempt_number=1, client_ip=ip, fingerprint=FP)
    assert codes(both) == ["ip_velocity", "card_velocity"]
    assert both.blocked and both.score == pytest.approx(1.0)  # clamped
    assert both.to_json() == [{"code": r.code, "score": r.score, "detail": r.detail} for r in both.reasons]


def test_threshold_is_configurable(redis_client, clock):
    strict = make(redis_client, clock, threshold=0.2)
    assert strict.screen(session_id="ps_1", attempt_number=3, client_ip=None, fingerprint=FP).blocked
    assert not strict.screen(session_id="ps_1", attempt_number=2, client_ip=None, fingerprint=FP).blocked


def test_gateway_risk(redis_client, clock):
    screen = make(redis_client, clock)
    base = screen.screen(session_id="ps_1", attempt_number=2, client_ip=None, fingerprint=FP)
    assert screen.with_gateway_risk(base, None) is base
    assert screen.with_gateway_risk(base, "normal") is base
    elevated = screen.with_gateway_risk(base, "elevated")
    assert codes(elevated) == ["session_attempts", "gateway_risk_elevated"]
    assert elevated.score == pytest.approx(0.5) and not elevated.blocked
    highest = screen.with_gateway_risk(base, "highest")
    assert codes(highest)[-1] == "gateway_risk_highest" and highest.score == 1.0 and highest.blocked
    assert base.reasons == (FraudSignal("session_attempts", 0.1, "attempt 2 in this session"),)


def test_keys_are_namespaced_expire_and_hold_no_card_data(redis_client, clock):
    screen = make(redis_client, clock)
    screen.screen(session_id="ps_1", attempt_number=1, client_ip="203.0.113.5", fingerprint=FP)
    screen.record_decline(FP)
    keys = sorted(k.decode() for k in redis_client.keys("*"))
    assert keys == ["paygate:fraud:card:fp_card_one:declines", "paygate:fraud:card:fp_card_one:declines:seq",
                    "paygate:fraud:card:fp_card_one:sessions", "paygate:fraud:ip:203.0.113.5"]
    for key in keys:
        ttl = redis_client.ttl(key)
        assert 0 < ttl <= 86400 + 60, key
    assert redis_client.ttl("paygate:fraud:ip:203.0.113.5") <= 3600 + 60
    assert redis_client.zrange("paygate:fraud:ip:203.0.113.5", 0, -1) == [b"ps_1:1"]
    assert redis_client.zrange("paygate:fraud:card:fp_card_one:sessions", 0, -1) == [b"ps_1"]


def test_policy_validation():
    with pytest.raises(ValueError):
        FraudPolicy(threshold=0)
    with pytest.raises(ValueError):
        FraudPolicy(ip_attempts_per_hour=0)
    with pytest.raises(ValueError):
        FraudPolicy(card_declines_weight=1.5)
    assert FraudPolicy().threshold == 0.8
