"""The card vault: envelope encryption, key rotation, AAD binding, tokens and fingerprints."""

from __future__ import annotations

import dataclasses
import math
import re
from datetime import date

import pytest

from kernel.settings import VaultKey
from tokenizer.cards import BRANDS, Card, validate_card
from tokenizer.vault import SealedCard, Vault, VaultError, new_vault_token

K_OLD = VaultKey("k2025", bytes(range(32)))
K_NEW = VaultKey("k2026", bytes(range(100, 132)))
FP_KEY = b"fingerprint-key-for-tests-0123456"


def card(number="4242424242424242", cvc="123", month=12, year=2030):
    result = validate_card(number, month, year, cvc, "Jane Doe", today=date(2026, 11, 23),
                           allowed_brands=tuple(BRANDS))
    assert result.ok, result.errors
    return result.card


def test_round_trip_and_public_fields():
    vault = Vault([K_NEW], FP_KEY)
    sealed = vault.seal(card())
    assert sealed.key_id == "k2026"
    assert (sealed.brand, sealed.last4, sealed.exp_month, sealed.exp_year) == ("visa", "4242", 12, 2030)
    assert len(sealed.nonce) == 12 and len(sealed.wrapped_key) == 12 + 32 + 16
    opened = vault.open(sealed)
    assert (opened.number, opened.exp_month, opened.exp_year) == ("4242424242424242", 12, 2030)
    assert opened.last4 == "4242"


def test_ciphertext_and_reprs_hold_no_card_data():
    vault = Vault([K_NEW], FP_KEY)
    sealed = vault.seal(card(cvc="987"))
    for blob in (sealed.ciphertext, sealed.wrapped_key, sealed.nonce):
        assert b"4242424242424242" not in blob and b"987" not in blob and b"number" not in blob
    for text in (repr(sealed), str(sealed), repr(vault.open(sealed)), repr(vault)):
        assert "4242424242424242" not in text and "987" not in text
    # the CVC is never part of the sealed record: it cannot be recovered
    opened = vault.open(sealed)
    assert opened.cvc is None and opened.cardholder_name is None and opened.brand == "visa"


def test_every_record_gets_a_fresh_data_key_and_nonce():
    vault = Vault([K_NEW], FP_KEY)
    a, b = vault.seal(card()), vault.seal(card())
    assert a.token != b.token
    assert a.nonce != b.nonce and a.wrapped_key != b.wrapped_key and a.ciphertext != b.ciphertext
    assert a.fingerprint == b.fingerprint


def test_rotation_old_records_open_rewrap_and_retire():
    old_vault = Vault([K_OLD], FP_KEY)
    sealed = old_vault.seal(card())
    rotated = Vault([K_NEW, K_OLD], FP_KEY)
    assert rotated.current_key_id == "k2026"
    assert rotated.open(sealed).number == "4242424242424242"
    assert rotated.seal(card()).key_id == "k2026"

    moved = rotated.rewrap(sealed)
    assert moved.token == sealed.token and moved.key_id == "k2026"
    assert (moved.fingerprint, moved.brand, moved.last4) == (sealed.fingerprint, sealed.brand, sealed.last4)
    assert moved.wrapped_key != sealed.wrapped_key
    assert rotated.rewrap(moved) is moved
    assert rotated.open(moved).number == "4242424242424242"

    retired = Vault([K_NEW], FP_KEY)
    assert retired.open(moved).number == "4242424242424242"
    with pytest.raises(VaultError) as info:
        retired.open(sealed)
    assert info.value.code == "vault_key_unknown"
    with pytest.raises(VaultError) as info:
        retired.rewrap(sealed)
    assert info.value.code == "vault_key_unknown"


def _integrity_error(vault, record):
    with pytest.raises(VaultError) as info:
        vault.open(record)
    assert info.value.code == "vault_integrity"
    assert "4242" not in str(info.value)


def test_ciphertext_cannot_move_to_another_token():
    vault = Vault([K_NEW], FP_KEY)
    a, b = vault.seal(card()), vault.seal(card("5555555555554444"))
    # whole envelope (wrapped key, nonce, ciphertext) moved onto another token
    _integrity_error(vault, dataclasses.replace(b, wrapped_key=a.wrapped_key, nonce=a.nonce,
                                                ciphertext=a.ciphertext))
    # only the payload swapped
    _integrity_error(vault, dataclasses.replace(b, nonce=a.nonce, ciphertext=a.ciphertext))
    # token renamed
    _integrity_error(vault, dataclasses.replace(a, token=b.token))


def test_ciphertext_cannot_be_relabelled_with_another_key_id():
    vault = Vault([K_NEW, K_OLD], FP_KEY)
    sealed = vault.seal(card())
    _integrity_error(vault, dataclasses.replace(sealed, key_id="k2025"))


@pytest.mark.parametrize("field", ["wrapped_key", "nonce", "ciphertext"])
def test_tampering_fails(field):
    vault = Vault([K_NEW], FP_KEY)
    sealed = vault.seal(card())
    blob = bytearray(getattr(sealed, field))
    blob[len(blob) // 2] ^= 0x01
    _integrity_error(vault, dataclasses.replace(sealed, **{field: bytes(blob)}))
    _integrity_error(vault, dataclasses.replace(sealed, **{field: bytes(getattr(sealed, field))[:-1]}))
    _integrity_error(vault, dataclasses.replace(sealed, **{field: b""}))


def test_wrong_key_material_under_the_same_id_fails():
    sealed = Vault([K_NEW], FP_KEY).seal(card())
    impostor = Vault([VaultKey("k2026", bytes(32))], FP_KEY)
    _integrity_error(impostor, sealed)


def test_opens_any_record_shaped_object():
    vault = Vault([K_NEW], FP_KEY)
    sealed = vault.seal(card())

    class Row:  # e.g. a payments.models.VaultCard row read back from the database
        token, key_id = sealed.token, sealed.key_id
        wrapped_key, nonce, ciphertext = sealed.wrapped_key, sealed.nonce, sealed.ciphertext

    assert vault.open(Row()).number == "4242424242424242"


def test_token_format_and_entropy():
    tokens = {new_vault_token() for _ in range(2000)}
    assert len(tokens) == 2000
    for token in tokens:
        assert re.fullmatch(r"tok_[0-9A-Za-z]{24}", token)
    assert 24 * math.log2(62) >= 128
    # all 62 symbols appear in every position eventually: no fixed characters
    for position in (4, 27):
        assert len({t[position] for t in tokens}) > 50
    vault = Vault([K_NEW], FP_KEY, new_token=lambda: "tok_fixed")
    assert vault.seal(card()).token == "tok_fixed"


def test_injected_randomness_is_used():
    def make():
        calls = []

        def fake_random(n):
            calls.append(n)
            return bytes([len(calls)]) * n

        return Vault([K_NEW], FP_KEY, random_bytes=fake_random, new_token=lambda: "tok_a"), calls

    (v1, calls), (v2, _) = make(), make()
    first, second = v1.seal(card()), v2.seal(card())
    assert sorted(calls) == [12, 12, 32]          # one data key, one payload nonce, one wrap nonce
    assert first == second                         # fully determined by the injected sources
    assert isinstance(first, SealedCard) and isinstance(v1.open(first), Card)


def test_fingerprint_stable_and_key_dependent():
    number = "4242424242424242"
    fp = Vault([K_NEW], FP_KEY).fingerprint(number)
    assert re.fullmatch(r"fp_[A-Za-z0-9_-]{43}", fp)
    assert Vault([K_OLD], FP_KEY).fingerprint(number) == fp         # independent of the KEK ring
    assert Vault([K_NEW], FP_KEY).seal(card()).fingerprint == fp
    assert Vault([K_NEW], b"another-fingerprint-key").fingerprint(number) != fp
    assert Vault([K_NEW], FP_KEY).fingerprint("5555555555554444") != fp
    assert number not in fp


@pytest.mark.parametrize("keys,fp_key", [
    ([], FP_KEY),
    ([VaultKey("short", b"x" * 16)], FP_KEY),
    ([K_NEW, VaultKey("k2026", bytes(32))], FP_KEY),
    ([K_NEW], b""),
])
def test_bad_configuration_is_rejected(keys, fp_key):
    with pytest.raises(ValueError):
        Vault(keys, fp_key)
