"""The Paygate-Signature matrix (modelled on stripe-python's tests/test_webhook.py)."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from callbacks.signing import SignatureError, compute, parse, sign, verify

BODY = b'{"id":"evt_1","type":"payment.approved","created_at":"2026-11-22T23:15:00Z","sequence":1,"data":{}}'
NOW = 1_763_852_100
OLD, NEW = "whsec_old_secret", "whsec_new_secret"


def test_v1_is_hmac_sha256_of_t_dot_body():
    expected = hmac.new(NEW.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(BODY, [NEW], NOW) == f"t={NOW},v1={expected}"


def test_valid_signature_returns_timestamp():
    assert verify(BODY, sign(BODY, [NEW], NOW), [NEW], now=NOW) == NOW


def test_rotation_header_carries_one_v1_per_secret_and_both_verify():
    header = sign(BODY, [NEW, OLD], NOW)
    t, sigs = parse(header)
    assert t == NOW and sigs == [compute(BODY, NEW, NOW), compute(BODY, OLD, NOW)]
    assert verify(BODY, header, [OLD], now=NOW) == NOW
    assert verify(BODY, header, [NEW], now=NOW) == NOW
    assert verify(BODY, header, ["unrelated", OLD], now=NOW) == NOW


def _code(body, header, secrets, now=NOW, **kw):
    with pytest.raises(SignatureError) as info:
        verify(body, header, secrets, now=now, **kw)
    return info.value.code


def test_wrong_secret_is_a_mismatch():
    assert _code(BODY, sign(BODY, [NEW], NOW), ["whsec_other"]) == "signature_mismatch"


def test_tampered_body_is_a_mismatch():
    header = sign(BODY, [NEW], NOW)
    assert _code(BODY.replace(b"approved", b"declined"), header, [NEW]) == "signature_mismatch"


def test_changed_timestamp_is_a_mismatch():
    header = sign(BODY, [NEW], NOW).replace(f"t={NOW}", f"t={NOW + 1}")
    assert _code(BODY, header, [NEW]) == "signature_mismatch"


@pytest.mark.parametrize("header", [None, ""])
def test_missing_header(header):
    assert _code(BODY, header, [NEW]) == "signature_missing"


@pytest.mark.parametrize("header", ["garbage", f"t={NOW}", "v1=abc", f"t=soon,v1={'0' * 64}", f"t={NOW},v0=abc"])
def test_malformed_header(header):
    assert _code(BODY, header, [NEW]) == "signature_malformed"


def test_expired_timestamp():
    header = sign(BODY, [NEW], NOW - 301)
    assert _code(BODY, header, [NEW]) == "signature_expired"
    assert verify(BODY, sign(BODY, [NEW], NOW - 300), [NEW], now=NOW) == NOW - 300


def test_custom_tolerance_and_disabled_check():
    header = sign(BODY, [NEW], NOW - 100)
    assert _code(BODY, header, [NEW], tolerance=60) == "signature_expired"
    assert verify(BODY, sign(BODY, [NEW], NOW - 10_000), [NEW], now=NOW, tolerance=0) == NOW - 10_000


def test_future_timestamp_is_accepted():
    header = sign(BODY, [NEW], NOW + 3600)
    assert verify(BODY, header, [NEW], now=NOW) == NOW + 3600


def test_unknown_schemes_are_ignored_when_a_v1_matches():
    header = sign(BODY, [NEW], NOW) + ",v0=deadbeef"
    assert verify(BODY, header, [NEW], now=NOW) == NOW


def test_sign_requires_a_secret():
    with pytest.raises(ValueError):
        sign(BODY, [], NOW)
