"""Production refuses weak or reused secrets at start-up (docs/api.md, "Clients and secrets"); development and
test keep accepting what they are given."""

from __future__ import annotations

import base64
import secrets

import pytest

from kernel.errors import ConfigError
from kernel.settings import Settings


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def strong_env(tmp_path, **overrides) -> dict[str, str]:
    env = {
        "PAYGATE_ENV": "production",
        "PAYGATE_DATABASE_URL": f"sqlite:///{tmp_path / 'p.sqlite3'}",
        "PAYGATE_PUBLIC_BASE_URL": "https://pay.example.com",
        "PAYGATE_INSTANCE_PATH": str(tmp_path / "instance"),
        "PAYGATE_SECRET_KEY": secrets.token_urlsafe(48),
        "PAYGATE_VAULT_KEYS": f"k2:{b64(secrets.token_bytes(32))},k1:{b64(secrets.token_bytes(32))}",
        "PAYGATE_FINGERPRINT_KEY": b64(secrets.token_bytes(32)),
    }
    env.update({f"PAYGATE_{k}": v for k, v in overrides.items()})
    return env


def refused(tmp_path, **overrides) -> str:
    with pytest.raises(ConfigError) as err:
        Settings.from_env(strong_env(tmp_path, **overrides))
    return err.value.message


def test_strong_distinct_secrets_start(tmp_path):
    settings = Settings.from_env(strong_env(tmp_path))
    assert settings.production and len(settings.vault_keys) == 2


@pytest.mark.parametrize("secret_key", ["x", "short-secret", "a" * 31, "é" * 15])
def test_a_secret_key_shorter_than_32_bytes_is_refused(tmp_path, secret_key):
    assert "PAYGATE_SECRET_KEY" in refused(tmp_path, SECRET_KEY=secret_key)
    assert "32 bytes" in refused(tmp_path, SECRET_KEY=secret_key)


def test_32_bytes_count_utf8_bytes_not_characters(tmp_path):
    Settings.from_env(strong_env(tmp_path, SECRET_KEY="é" * 16 + "Xy"))  # 34 bytes, 18 characters


@pytest.mark.parametrize("secret_key", ["a" * 32, "0" * 64, "é" * 40])
def test_a_secret_key_of_one_repeated_character_is_refused(tmp_path, secret_key):
    message = refused(tmp_path, SECRET_KEY=secret_key)
    assert "PAYGATE_SECRET_KEY" in message and "repeated" in message


@pytest.mark.parametrize("byte", [b"\x00", b"\xff", b"A"])
def test_a_vault_key_of_one_repeated_byte_is_refused_naming_it(tmp_path, byte):
    good = b64(secrets.token_bytes(32))
    message = refused(tmp_path, VAULT_KEYS=f"new:{good},old:{b64(byte * 32)}")
    assert "PAYGATE_VAULT_KEYS[old]" in message and "repeated byte" in message


@pytest.mark.parametrize("byte", [b"\x00", b"\x01"])
def test_a_fingerprint_key_of_one_repeated_byte_is_refused(tmp_path, byte):
    message = refused(tmp_path, FINGERPRINT_KEY=b64(byte * 32))
    assert "PAYGATE_FINGERPRINT_KEY" in message and "repeated byte" in message


def test_a_vault_key_reused_as_the_fingerprint_key_is_refused(tmp_path):
    shared = secrets.token_bytes(32)
    message = refused(tmp_path, VAULT_KEYS=f"k2:{b64(secrets.token_bytes(32))},k1:{b64(shared)}",
                      FINGERPRINT_KEY=b64(shared))
    assert "PAYGATE_VAULT_KEYS[k1]" in message and "PAYGATE_FINGERPRINT_KEY" in message


def test_a_vault_key_equal_to_the_secret_keys_bytes_is_refused(tmp_path):
    raw_text = secrets.token_hex(16)  # 32 ASCII characters: the secret key's bytes are a valid 32-byte key
    message = refused(tmp_path, SECRET_KEY=raw_text, VAULT_KEYS=f"k1:{b64(raw_text.encode())}")
    assert "PAYGATE_VAULT_KEYS[k1]" in message and "PAYGATE_SECRET_KEY" in message


def test_the_same_base64_text_as_secret_key_and_vault_key_is_refused(tmp_path):
    shared = b64(secrets.token_bytes(32))
    message = refused(tmp_path, SECRET_KEY=shared, VAULT_KEYS=f"k1:{shared}")
    assert "PAYGATE_VAULT_KEYS[k1]" in message and "PAYGATE_SECRET_KEY" in message


def test_the_fingerprint_key_reused_as_the_secret_key_is_refused(tmp_path):
    shared = b64(secrets.token_bytes(32))
    message = refused(tmp_path, SECRET_KEY=shared, FINGERPRINT_KEY=shared)
    assert "PAYGATE_FINGERPRINT_KEY" in message and "PAYGATE_SECRET_KEY" in message


def test_outside_production_the_same_values_are_accepted(tmp_path):
    zero = b64(b"\x00" * 32)
    for env in ("development", "test"):
        settings = Settings.from_env(strong_env(tmp_path, ENV=env, SECRET_KEY="x", VAULT_KEYS=f"k1:{zero}",
                                                FINGERPRINT_KEY=zero))
        assert settings.secret_key == "x" and not settings.production


def test_trusted_proxies_is_a_small_count(tmp_path):
    assert Settings.from_env(strong_env(tmp_path)).trusted_proxies == 0
    assert Settings.from_env(strong_env(tmp_path, TRUSTED_PROXIES="2")).trusted_proxies == 2
    for bad in ("-1", "11", "two"):
        assert "PAYGATE_TRUSTED_PROXIES" in refused(tmp_path, TRUSTED_PROXIES=bad)
