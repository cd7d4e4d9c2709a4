"""Property tests (Hypothesis) of the rules every request leans on: card rules never raise and accept what is
valid, vault records round-trip and refuse tampering, callback signatures verify only the signed bytes within
their tolerance, and an Idempotency-Key replays the same request and refuses another.

Examples are bounded (:data:`FAST`) and the runs derandomized, so the module takes seconds and fails the same way
every time it fails."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from callbacks import signing
from kernel.errors import Conflict, IdempotencyKeyReused, ValidationFailed
from kernel.luhn import luhn_valid
from kernel.settings import VaultKey
from payments.idempotency import IdempotencyStore, Reservation, StoredResponse
from tokenizer.cards import (
    _BIN_RANGES,
    BRANDS,
    detect_brand,
    inspect_number,
    normalize_number,
    parse_expiry_text,
    validate_card,
)
from tokenizer.vault import Vault, VaultError

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TODAY = date(2026, 11, 23)
ALL_BRANDS = tuple(BRANDS)

# -- strategies ------------------------------------------------------------------------------------------------
NON_ASCII_DIGITS = st.characters(categories=["Nd", "No"], exclude_characters="0123456789")
anything = st.one_of(st.none(), st.booleans(), st.integers(), st.text(), st.text(alphabet="0123456789 -/"),
                     st.text(alphabet=NON_ASCII_DIGITS), st.floats(allow_nan=True), st.binary().map(str))


def luhn_complete(body: str) -> str:
    """``body`` followed by its Luhn check digit."""
    for check in "0123456789":
        if luhn_valid(body + check):
            return body + check
    raise AssertionError("no check digit")  # pragma: no cover - one of ten always fits


@st.composite
def valid_numbers(draw) -> tuple[str, str]:
    """``(brand, PAN)``: a Luhn-valid number of a length its brand uses, inside one of the brand's ranges."""
    brand, low, high = draw(st.sampled_from(_BIN_RANGES))
    prefix = str(draw(st.integers(low, high)))
    length = draw(st.sampled_from(BRANDS[brand].pan_lengths))
    middle = draw(st.text(alphabet="0123456789", min_size=length - len(prefix) - 1,
                          max_size=length - len(prefix) - 1))
    return brand, luhn_complete(prefix + middle)


@st.composite
def valid_cards(draw):
    """A :class:`tokenizer.cards.Card` built by :func:`validate_card` from valid fields."""
    brand, number = draw(valid_numbers())
    month = draw(st.integers(1, 12))
    year = draw(st.integers(TODAY.year + 1, TODAY.year + 19))
    cvc = draw(st.text(alphabet="0123456789", min_size=BRANDS[brand].cvc_length, max_size=BRANDS[brand].cvc_length))
    result = validate_card(number, month, year, cvc, "Ada Lovelace", today=TODAY, allowed_brands=ALL_BRANDS)
    assert result.ok, result.errors
    return result.card


# -- card rules ------------------------------------------------------------------------------------------------
@FAST
@given(number=anything, month=anything, year=anything, cvc=anything, name=anything, require_name=st.booleans())
def test_validate_card_never_raises(number, month, year, cvc, name, require_name):
    result = validate_card(number, month, year, cvc, name, today=TODAY, allowed_brands=ALL_BRANDS,
                           require_name=require_name)
    assert result.ok == (not result.errors)
    for field, code in result.errors.items():
        assert field in ("number", "exp_month", "exp_year", "cvc", "cardholder_name") and code.isascii()
        if isinstance(number, str) and len(number) >= 6:
            assert number not in code
    if result.ok:  # whatever was accepted is made of ASCII digits only
        card = result.card
        assert card.number.isascii() and card.number.isdigit() and luhn_valid(card.number)
        assert card.cvc is None or (card.cvc.isascii() and card.cvc.isdigit())


@FAST
@given(text=st.text())
def test_brand_luhn_and_parsers_never_raise_on_text(text):
    assert detect_brand(text) in (None, *BRANDS)
    assert luhn_valid(text) in (True, False)
    digits = normalize_number(text)
    assert digits is None or (digits.isascii() and digits.isdigit())
    expiry = parse_expiry_text(text)
    assert expiry is None or all(isinstance(v, int) for v in expiry)
    if text.isascii() and text.isdigit():
        assert inspect_number(text, ALL_BRANDS)["brand"] in (None, *BRANDS)
    else:
        with pytest.raises(ValueError):
            inspect_number(text, ALL_BRANDS)


@FAST
@given(digits=st.text(alphabet=NON_ASCII_DIGITS, min_size=1, max_size=19))
def test_non_ascii_digits_are_never_card_digits(digits):
    assert detect_brand(digits) is None and not luhn_valid(digits) and normalize_number(digits) is None
    result = validate_card(digits, digits[:2], digits[:4], digits[:3], today=TODAY, allowed_brands=ALL_BRANDS)
    assert set(result.errors) == {"number", "exp_month", "exp_year", "cvc"}


@FAST
@given(generated=valid_numbers(), spaced=st.booleans())
def test_luhn_valid_generated_numbers_pass(generated, spaced):
    brand, number = generated
    assert luhn_valid(number) and detect_brand(number) == brand
    typed = " ".join(number[i:i + 4] for i in range(0, len(number), 4)) if spaced else number
    cvc = "1" * BRANDS[brand].cvc_length
    result = validate_card(typed, "12", str(TODAY.year + 1)[2:], cvc, today=TODAY, allowed_brands=ALL_BRANDS)
    if len(typed) <= 23:
        assert result.ok, result.errors
        assert (result.card.number, result.card.brand) == (number, brand)
    inspected = inspect_number(number, ALL_BRANDS)
    assert (inspected["brand"], inspected["luhn_valid"], inspected["cvc_length"]) == (
        brand, True, BRANDS[brand].cvc_length)


@FAST
@given(generated=valid_numbers(), position=st.integers(0, 18), delta=st.integers(1, 9))
def test_one_changed_digit_fails_luhn(generated, position, delta):
    _, number = generated
    position %= len(number)
    changed = number[:position] + str((int(number[position]) + delta) % 10) + number[position + 1:]
    assert not luhn_valid(changed)


# -- vault -----------------------------------------------------------------------------------------------------
KEYS = [VaultKey("k2", bytes(range(32, 64))), VaultKey("k1", bytes(range(32)))]
FP_KEY = b"fingerprint-key-for-property-tests"


@FAST
@given(card=valid_cards())
def test_vault_round_trip(card):
    vault = Vault(KEYS, FP_KEY)
    sealed = vault.seal(card)
    assert card.number.encode() not in sealed.ciphertext + sealed.wrapped_key
    opened = vault.open(sealed)
    assert (opened.number, opened.exp_month, opened.exp_year, opened.brand) == (
        card.number, card.exp_month, card.exp_year, card.brand)
    assert opened.cvc is None and sealed.fingerprint == vault.fingerprint(card.number)
    older = Vault(KEYS[1:], FP_KEY).seal(card)  # sealed under the older key: the ring still opens it
    assert vault.open(older).number == card.number
    assert vault.open(vault.rewrap(older)).number == card.number


@FAST
@given(card=valid_cards(), field=st.sampled_from(["ciphertext", "nonce", "wrapped_key"]), data=st.data())
def test_vault_tampering_is_detected(card, field, data):
    vault = Vault(KEYS, FP_KEY)
    sealed = vault.seal(card)
    blob = getattr(sealed, field)
    index = data.draw(st.integers(0, len(blob) - 1))
    flip = data.draw(st.integers(1, 255))
    tampered = dataclasses.replace(sealed, **{field: blob[:index] + bytes([blob[index] ^ flip]) + blob[index + 1:]})
    with pytest.raises(VaultError):
        vault.open(tampered)


@FAST
@given(one=valid_cards(), other=valid_cards())
def test_a_record_moved_to_another_token_does_not_open(one, other):
    vault = Vault(KEYS, FP_KEY)
    a, b = vault.seal(one), vault.seal(other)
    with pytest.raises(VaultError):
        vault.open(dataclasses.replace(a, token=b.token))
    with pytest.raises(VaultError):
        vault.open(dataclasses.replace(a, key_id="k-unknown"))


# -- callback signatures ---------------------------------------------------------------------------------------
secret_text = st.text(min_size=1, max_size=60)


@FAST
@given(body=st.binary(max_size=2000), secrets=st.lists(secret_text, min_size=1, max_size=3),
       at=st.integers(0, 2**40), age=st.integers(0, signing.DEFAULT_TOLERANCE))
def test_signatures_round_trip(body, secrets, at, age):
    header = signing.sign(body, secrets, at)
    assert signing.verify(body, header, secrets, now=at + age) == at
    for secret in secrets:  # a receiver knowing any one of the secrets accepts it (rotation)
        assert signing.verify(body, header, [secret], now=at) == at


@FAST
@given(body=st.binary(min_size=1, max_size=500), secret=secret_text, data=st.data())
def test_any_changed_byte_fails(body, secret, data):
    header = signing.sign(body, [secret], 1_800_000_000)
    index = data.draw(st.integers(0, len(body) - 1))
    changed = body[:index] + bytes([body[index] ^ data.draw(st.integers(1, 255))]) + body[index + 1:]
    with pytest.raises(signing.SignatureError) as err:
        signing.verify(changed, header, [secret], now=1_800_000_000)
    assert err.value.code == "signature_mismatch"
    other = data.draw(secret_text)
    assume(other != secret)
    with pytest.raises(signing.SignatureError):
        signing.verify(body, header, [other], now=1_800_000_000)


@FAST
@given(body=st.binary(max_size=200), secret=secret_text, at=st.integers(0, 2**40),
       late=st.integers(1, 10**6), early=st.integers(0, 10**6))
def test_timestamp_tolerance(body, secret, at, late, early):
    header = signing.sign(body, [secret], at)
    with pytest.raises(signing.SignatureError) as err:
        signing.verify(body, header, [secret], now=at + signing.DEFAULT_TOLERANCE + late)
    assert err.value.code == "signature_expired"
    assert signing.verify(body, header, [secret], now=at - early) == at  # a clock behind the sender's is fine
    assert signing.verify(body, header, [secret], now=at + 10**9, tolerance=0) == at
    forged = header.replace(f"t={at}", f"t={at + late}")
    with pytest.raises(signing.SignatureError):
        signing.verify(body, forged, [secret], now=at + late)


@FAST
@given(header=st.text(max_size=300))
def test_verify_never_raises_anything_but_signature_error(header):
    try:
        signing.verify(b"{}", header, ["secret"], now=1_800_000_000)
    except signing.SignatureError:
        pass


# -- idempotency -----------------------------------------------------------------------------------------------
keys = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=255)
bodies = st.binary(max_size=300)


@pytest.fixture
def store(redis_client):
    return IdempotencyStore(redis_client, b"idempotency-secret-for-tests")


@FAST
@given(key=keys, body=bodies, other=bodies, status=st.sampled_from([200, 201, 400, 404, 409, 422]),
       answer=st.text(max_size=200))
def test_same_key_and_body_replays_another_body_conflicts(store, key, body, other, status, answer):
    store.redis.flushdb()
    first = store.reserve("cli_a", key, method="POST", path="/v1/payments", body=body)
    assert isinstance(first, Reservation)
    with pytest.raises(Conflict) as running:  # the first request still runs
        store.reserve("cli_a", key, method="POST", path="/v1/payments", body=body)
    assert running.value.code == "idempotency_key_in_use"
    store.complete(first, status, answer)
    assert store.reserve("cli_a", key, method="POST", path="/v1/payments", body=body) == StoredResponse(status, answer)
    if other != body:
        with pytest.raises(IdempotencyKeyReused):
            store.reserve("cli_a", key, method="POST", path="/v1/payments", body=other)
    with pytest.raises(IdempotencyKeyReused):
        store.reserve("cli_a", key, method="POST", path="/v1/refunds", body=body)
    assert isinstance(store.reserve("cli_b", key, method="POST", path="/v1/payments", body=body), Reservation)


@FAST
@given(key=keys, body=bodies, status=st.sampled_from([202, 429, 500, 502, 503]))
def test_unfinished_answers_are_not_kept(store, key, body, status):
    store.redis.flushdb()
    first = store.reserve("cli_a", key, method="POST", path="/v1/payments", body=body)
    store.complete(first, status, "{}")
    assert isinstance(store.reserve("cli_a", key, method="POST", path="/v1/payments", body=body), Reservation)


@FAST
@given(key=st.one_of(st.just(""), st.text(min_size=256, max_size=300),
                     st.text(min_size=1).filter(lambda k: not k.isprintable())))
def test_keys_outside_1_to_255_printable_characters_are_refused(store, key):
    with pytest.raises(ValidationFailed) as err:
        store.reserve("cli_a", key, method="POST", path="/v1/payments", body=b"{}")
    assert err.value.code == "invalid_idempotency_key"
