"""Rotating ``PAYGATE_SECRET_KEY`` (docs/operations.md, "Rotating the secret key"): with the old key in
``PAYGATE_PREVIOUS_SECRET_KEYS``, checkout links, agent links, access tokens and sealed Genesys secrets made under it
keep working after a restart on the new key; ``paygate secrets reseal`` moves the sealed secrets to the new key, after
which the old key can be dropped and what it signed stops working. Plus the settings rules for the new variable."""

from __future__ import annotations

import base64
import json
import secrets

import pytest
from click.testing import CliRunner

from integrations.genesys.settings import GenesysSettings, SecretBox, settings_of
from kernel.errors import ConfigError, PaygateError
from kernel.settings import Settings
from paygate.cli import main
from payments.clients import configure_genesys
from payments.models import ApiClient
from tests.fakes.genesys import GenesysEmulator

KEY_A = secrets.token_urlsafe(32)
KEY_B = secrets.token_urlsafe(32)
GC_ID, GC_SECRET = "gc-rotation-client", "gc-rotation-secret"
TO = "+15551234567"
BASE = "http://127.0.0.1:8000"


@pytest.fixture
def genesys(state_dir):
    with GenesysEmulator({GC_ID: GC_SECRET}, state_dir) as emulator:
        yield emulator


def path_of(url: str) -> str:
    return url.removeprefix(BASE)


def store_genesys(stack, emulator, client_id: str, box: SecretBox) -> str:
    """Configures ``client_id``'s Genesys settings (secret sealed by ``box``); returns the sealed secret."""
    values = GenesysSettings(region="eu_west_1", client_id=GC_ID, client_secret=GC_SECRET, api_base=emulator.url,
                             login_base=emulator.url, write_attributes=False, sms_from_address="+15550001111")
    with stack.services.Session.begin() as db:
        stored = configure_genesys(db, client_id, values, box, production=False)
    return stored.client_secret_sealed


def sealed_of(stack, client_id: str) -> str:
    with stack.services.Session() as db:
        return settings_of(db.get(ApiClient, client_id)).client_secret_sealed


def send_link(stack, session_id: str, token: str):
    """``POST /v1/payment-sessions/{id}/send-link`` by SMS: the app opens the client's sealed Genesys secret to get an
    OAuth token from the emulator, so a 200 proves the secret opened."""
    return stack.http.post(f"/v1/payment-sessions/{session_id}/send-link", json={"to": TO, "messenger_type": "sms"},
                           headers=stack.auth(token))


def reseal(stack, secret_key: str, previous: str = ""):
    s = stack.services.settings
    env = {"PAYGATE_ENV": "test", "PAYGATE_DATABASE_URL": s.database_url, "PAYGATE_REDIS_URL": s.redis_url,
           "PAYGATE_INSTANCE_PATH": str(s.instance_path), "PAYGATE_SECRET_KEY": secret_key,
           "PAYGATE_PREVIOUS_SECRET_KEYS": previous}
    result = CliRunner().invoke(main, ["secrets", "reseal"], env=env)
    return result, json.loads(result.stdout.strip().splitlines()[-1])


def test_links_tokens_and_genesys_secrets_survive_a_rotation_and_reseal_retires_the_old_key(stack_factory, genesys):
    a = stack_factory(SECRET_KEY=KEY_A)
    token_a = a.token
    created = a.create_session()
    sid = created["session_id"]
    checkout, agent = path_of(created["checkout_url"]), path_of(created["agent_url"])
    sealed_a = store_genesys(a, genesys, a.client.client_id, SecretBox(KEY_A))
    assert a.http.get(checkout).status_code == 200 and a.http.get(agent).status_code == 200
    a.services.close()

    # restart on key B, A still accepted
    b = stack_factory(SECRET_KEY=KEY_B, PREVIOUS_SECRET_KEYS=KEY_A)
    assert b.http.get(checkout).status_code == 200
    page = b.http.get(agent)
    assert page.status_code == 200 and "pending" in page.get_data(as_text=True)
    view = b.http.get(f"/v1/payment-sessions/{sid}", headers=b.auth(token_a))
    assert view.status_code == 200 and view.get_json()["status"] == "pending"
    r = send_link(b, sid, token_a)
    assert r.status_code == 200 and r.get_json()["sent"] is True, r.get_json()
    (call,) = genesys.api_requests("POST")
    assert (call["status"], call["client_id"]) == (200, GC_ID)
    # what B makes is signed with B only
    fresh = b.create_session(conversation_id="conv-2")
    token_b = b.token
    with pytest.raises(PaygateError):
        SecretBox(KEY_A).open(store_genesys(b, genesys, b.client.client_id, b.services.link_sender.box))

    # reseal under B: A's sealed secret moves to B, B's own is left alone; a second run has nothing to do
    result, summary = reseal(b, KEY_B, KEY_A)
    assert result.exit_code == 0, result.output
    assert summary == {"resealed": 1, "skipped": 1, "failed": []}
    moved = sealed_of(b, a.client.client_id)
    assert moved != sealed_a and SecretBox(KEY_B).open(moved) == GC_SECRET
    with pytest.raises(PaygateError):
        SecretBox(KEY_A).open(moved)
    result, summary = reseal(b, KEY_B, KEY_A)
    assert result.exit_code == 0 and summary == {"resealed": 0, "skipped": 2, "failed": []}
    assert sealed_of(b, a.client.client_id) == moved

    # A dropped: the Genesys secret still opens, what A signed stops working, what B signed still works
    c = stack_factory(SECRET_KEY=KEY_B)
    assert c.http.get(checkout).status_code == 404
    assert c.http.get(agent).status_code == 404
    old = c.http.get(f"/v1/payment-sessions/{sid}", headers=c.auth(token_a))
    assert old.status_code == 401 and old.get_json()["error"]["code"] == "invalid_token"
    assert c.http.get(f"/v1/payment-sessions/{fresh['session_id']}", headers=c.auth(token_b)).status_code == 200
    assert c.http.get(path_of(fresh["checkout_url"])).status_code == 200
    assert c.http.get(path_of(fresh["agent_url"])).status_code == 200
    token_c = c.token_for(a.client)
    r = send_link(c, sid, token_c)
    assert r.status_code == 200, r.get_json()
    assert [x["status"] for x in genesys.api_requests("POST")] == [200, 200]


def test_reseal_lists_secrets_no_configured_key_opens_and_exits_1(stack_factory, genesys):
    a = stack_factory(SECRET_KEY=KEY_A)
    lost = store_genesys(a, genesys, a.client.client_id, SecretBox(secrets.token_urlsafe(32)))  # a key nobody has
    result, summary = reseal(a, KEY_B, KEY_A)
    assert result.exit_code == 1
    assert summary == {"resealed": 0, "skipped": 0, "failed": [a.client.client_id]}
    assert GC_SECRET not in result.output
    assert sealed_of(a, a.client.client_id) == lost  # left as it was


def test_an_idempotent_retry_across_the_rotation_is_replayed_not_run_twice(stack_factory):
    """The idempotency store recognises a request digested under a previous key (docs/operations.md): a retry made
    after the restart replays the first answer; another request under the same key is still refused."""
    a = stack_factory(SECRET_KEY=KEY_A)
    body = {"conversation_id": "conv-9", "participant_id": "p", "customer_account_id": "ACME-9", "amount": 900,
            "currency": "USD", "channel": "messaging"}
    first = a.http.post("/v1/payment-sessions", json=body, headers={**a.auth(), "Idempotency-Key": "rot-1"})
    assert first.status_code == 201
    b = stack_factory(SECRET_KEY=KEY_B, PREVIOUS_SECRET_KEYS=KEY_A)
    again = b.http.post("/v1/payment-sessions", json=body, headers={**b.auth(a.token), "Idempotency-Key": "rot-1"})
    assert again.status_code == 201 and again.get_json()["session_id"] == first.get_json()["session_id"]
    other = b.http.post("/v1/payment-sessions", json={**body, "amount": 901},
                        headers={**b.auth(a.token), "Idempotency-Key": "rot-1"})
    assert other.status_code == 422 and other.get_json()["error"]["code"] == "idempotency_key_reused"


# -- settings rules -------------------------------------------------------------------------------------------------

def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


FINGERPRINT = secrets.token_bytes(32)
VAULT = secrets.token_bytes(32)


def production_env(**extra) -> dict:
    env = {"PAYGATE_ENV": "production", "PAYGATE_DATABASE_URL": "postgresql+psycopg://u@db/paygate",
           "PAYGATE_PUBLIC_BASE_URL": "https://pay.example.com", "PAYGATE_SECRET_KEY": KEY_B,
           "PAYGATE_VAULT_KEYS": f"k1:{_b64(VAULT)}", "PAYGATE_FINGERPRINT_KEY": _b64(FINGERPRINT)}
    env.update({f"PAYGATE_{k}": v for k, v in extra.items()})
    return env


def test_previous_keys_are_parsed_in_order_and_hidden(tmp_path):
    settings = Settings.from_env(production_env(PREVIOUS_SECRET_KEYS=f" {KEY_A} ,, {'x' * 31}y "),
                                 instance_path=tmp_path)
    assert settings.previous_secret_keys == (KEY_A, "x" * 31 + "y")
    assert KEY_A not in repr(settings)
    assert Settings.from_env(production_env(), instance_path=tmp_path).previous_secret_keys == ()
    assert Settings.from_env(production_env(PREVIOUS_SECRET_KEYS=""), instance_path=tmp_path).previous_secret_keys == ()


@pytest.mark.parametrize("previous, message", [
    (KEY_B, "PAYGATE_PREVIOUS_SECRET_KEYS[1] must differ from PAYGATE_SECRET_KEY"),
    (f"{KEY_A},{KEY_A}", "PAYGATE_PREVIOUS_SECRET_KEYS[2] is listed twice"),
    (f"{KEY_A},short", "PAYGATE_PREVIOUS_SECRET_KEYS[2] must be at least 32 bytes in production"),
    ("z" * 40, "PAYGATE_PREVIOUS_SECRET_KEYS[1] must not be one repeated character"),
    (_b64(FINGERPRINT), "PAYGATE_FINGERPRINT_KEY must not be the same key as PAYGATE_PREVIOUS_SECRET_KEYS[1]"),
    (f"{KEY_A},{_b64(VAULT)}", "PAYGATE_VAULT_KEYS[k1] must not be the same key as PAYGATE_PREVIOUS_SECRET_KEYS[2]"),
], ids=["same-as-secret-key", "listed-twice", "short", "repeated-character", "fingerprint-key", "vault-key"])
# fixed ids: the keys are random per process, and pytest-xdist workers must collect the same test names
def test_production_holds_previous_keys_to_the_secret_key_rules(tmp_path, previous, message):
    with pytest.raises(ConfigError) as err:
        Settings.from_env(production_env(PREVIOUS_SECRET_KEYS=previous), instance_path=tmp_path)
    assert err.value.message == message
    for key in previous.split(","):
        assert key not in err.value.message  # named by position, never by value


def test_outside_production_only_the_differ_and_duplicate_rules_apply(tmp_path):
    env = {"PAYGATE_ENV": "test", "PAYGATE_INSTANCE_PATH": str(tmp_path), "PAYGATE_SECRET_KEY": "dev-key"}
    assert Settings.from_env({**env, "PAYGATE_PREVIOUS_SECRET_KEYS": "old"}).previous_secret_keys == ("old",)
    with pytest.raises(ConfigError, match=r"PREVIOUS_SECRET_KEYS\[1\] must differ"):
        Settings.from_env({**env, "PAYGATE_PREVIOUS_SECRET_KEYS": "dev-key"})


def test_the_signers_sign_with_the_current_key_and_accept_the_previous_ones():
    from payments.clients import TokenIssuer
    from payments.sessions import LinkSigner

    rotated, old_only, new_only = (LinkSigner(KEY_B, (KEY_A,)), LinkSigner(KEY_A), LinkSigner(KEY_B))
    assert rotated.token("ps_1") == new_only.token("ps_1") != old_only.token("ps_1")
    assert rotated.check("ps_1", old_only.token("ps_1")) and rotated.check("ps_1", new_only.token("ps_1"))
    assert not rotated.check("ps_2", old_only.token("ps_1"))
    assert not rotated.check("ps_1", old_only.token("ps_1", "agent"))
    assert not new_only.check("ps_1", old_only.token("ps_1"))
    assert rotated.check_expiring("ps_1", old_only.expiring_token("ps_1", 2_000_000_000), "2000000000", 1.0)

    issued_by_a = TokenIssuer(KEY_A).issue("cl_1")["access_token"]
    assert TokenIssuer(KEY_B, previous_keys=(KEY_A,)).client_id_for(issued_by_a) == "cl_1"
    issued_rotated = TokenIssuer(KEY_B, previous_keys=(KEY_A,)).issue("cl_1")["access_token"]
    assert TokenIssuer(KEY_B).client_id_for(issued_rotated) == "cl_1"
    with pytest.raises(PaygateError):
        TokenIssuer(KEY_A).client_id_for(issued_rotated)

    box = SecretBox(KEY_B, (KEY_A,))
    old_sealed = SecretBox(KEY_A).seal("s3cret")
    assert box.open(old_sealed) == "s3cret" and not box.is_current(old_sealed)
    assert SecretBox(KEY_B).open(box.seal("s3cret")) == "s3cret" and box.is_current(box.seal("s3cret"))
    moved = box.reseal(old_sealed)
    assert SecretBox(KEY_B).open(moved) == "s3cret" and box.is_current(moved)
    with pytest.raises(PaygateError) as err:
        box.reseal(SecretBox("another key").seal("x"))
    assert err.value.code == "genesys_secret_unreadable"
