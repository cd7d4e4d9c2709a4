"""Rotating the vault keys (docs/operations.md): ``paygate vault rewrap`` moves every vaulted card to the newest key
of ``PAYGATE_VAULT_KEYS``, resumably, and the cards still open under the new ring."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from kernel.settings import VaultKey
from paygate.cli import main
from tokenizer.models import VaultCard
from tokenizer.rewrap import outstanding, rewrap_all
from tokenizer.vault import Vault, VaultError

from .money import VISA, paid

MASTERCARD = "5555555555554444"


def ring_text(keys) -> str:
    return ",".join(f"{k.key_id}:{base64.urlsafe_b64encode(k.key).decode().rstrip('=')}" for k in keys)


def cli_env(stack, keys) -> dict:
    s = stack.services.settings
    return {"PAYGATE_ENV": "test", "PAYGATE_DATABASE_URL": s.database_url, "PAYGATE_REDIS_URL": s.redis_url,
            "PAYGATE_INSTANCE_PATH": str(s.instance_path), "PAYGATE_SECRET_KEY": s.secret_key,
            "PAYGATE_FINGERPRINT_KEY": base64.urlsafe_b64encode(s.fingerprint_key).decode().rstrip("="),
            "PAYGATE_VAULT_KEYS": ring_text(keys)}


def records(stack) -> list[VaultCard]:
    with stack.services.Session() as db:
        return list(db.scalars(select(VaultCard).order_by(VaultCard.token)))


def test_rewrap_moves_every_card_to_the_new_key_and_a_second_run_has_nothing_to_do(stack):
    for number in (VISA, MASTERCARD, VISA):
        paid(stack, number)
    old_ring = stack.services.settings.vault_keys
    new_key = VaultKey("k-2027", secrets.token_bytes(32))
    before = {r.token: (r.key_id, bytes(r.ciphertext)) for r in records(stack)}
    assert len(before) == 3 and {k for k, _ in before.values()} == {old_ring[0].key_id}

    result = CliRunner().invoke(main, ["vault", "rewrap", "--batch", "2"], env=cli_env(stack, (new_key, *old_ring)))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {"key_id": "k-2027", "rewrapped": 3, "skipped": 0, "failed": []}

    after = records(stack)
    assert {r.key_id for r in after} == {"k-2027"}
    assert all(bytes(r.ciphertext) != before[r.token][1] for r in after)  # re-encrypted, same tokens
    only_new = Vault([new_key], stack.services.settings.fingerprint_key)
    assert sorted(only_new.open(r).number for r in after) == sorted([VISA, MASTERCARD, VISA])
    with pytest.raises(VaultError) as err:  # the old key can now be retired: it opens nothing any more
        Vault(old_ring, stack.services.settings.fingerprint_key).open(after[0])
    assert err.value.code == "vault_key_unknown"

    again = CliRunner().invoke(main, ["vault", "rewrap"], env=cli_env(stack, (new_key, *old_ring)))
    assert again.exit_code == 0 and json.loads(again.stdout.strip().splitlines()[-1])["rewrapped"] == 0


def test_a_stopped_run_resumes_where_it_stopped(stack):
    for _ in range(5):
        paid(stack)
    old_ring = stack.services.settings.vault_keys
    vault = Vault((VaultKey("k-new", secrets.token_bytes(32)), *old_ring), stack.services.settings.fingerprint_key)

    class Stop(Exception):
        pass

    def stop_after_first_batch(n):
        raise Stop

    with pytest.raises(Stop):
        rewrap_all(stack.services.Session, vault, batch=2, progress=stop_after_first_batch)
    assert outstanding(stack.services.Session, vault) == 3  # the first batch of two is done and committed
    report = rewrap_all(stack.services.Session, vault, batch=2)
    assert (report.rewrapped, report.skipped, report.failed) == (3, 0, [])
    assert outstanding(stack.services.Session, vault) == 0


def test_a_record_that_cannot_be_opened_is_listed_and_the_run_goes_on(stack):
    paid(stack)
    paid(stack)
    old_ring = stack.services.settings.vault_keys
    broken = records(stack)[0].token
    with stack.services.Session.begin() as db:
        db.execute(update(VaultCard).where(VaultCard.token == broken).values(key_id="gone"))
    new_key = VaultKey("k-new", secrets.token_bytes(32))
    result = CliRunner().invoke(main, ["vault", "rewrap"], env=cli_env(stack, (new_key, *old_ring)))
    assert result.exit_code == 1
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary == {"key_id": "k-new", "rewrapped": 1, "skipped": 0, "failed": [broken]}
    assert VISA not in result.output
