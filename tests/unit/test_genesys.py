"""Genesys pieces without a database: settings, payload builders, Retry-After, token cache, API retries
(httpx.MockTransport plays Genesys), plus the ``paygate clients genesys`` command on a SQLite file."""

from __future__ import annotations

import base64
import json
import threading
from datetime import datetime, timezone
from urllib.parse import parse_qs

import httpx
import pytest
from click.testing import CliRunner

from integrations.genesys.client import Credentials, GenesysApi, TokenError, TokenProvider, parse_retry_after
from integrations.genesys.messaging import link_message, mask_address
from integrations.genesys.settings import REGION_DOMAINS, GenesysSettings, SecretBox, region_hosts
from integrations.genesys.writeback import ATTRIBUTE_NAMES, WORKFLOW_INPUTS, participant_attributes, workflow_input
from kernel.clock import FrozenClock
from kernel.errors import PaygateError, ValidationFailed

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=timezone.utc)
CREDS = Credentials("https://api.example.test", "https://login.example.test", "gc-id", "gc-secret")


# -- settings ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("region, api, login", [
    ("us_east_1", "https://api.mypurecloud.com", "https://login.mypurecloud.com"),
    ("eu_west_1", "https://api.mypurecloud.ie", "https://login.mypurecloud.ie"),
    ("ap_southeast_2", "https://api.mypurecloud.com.au", "https://login.mypurecloud.com.au"),
    ("us_east_2", "https://api.use2.us-gov-pure.cloud", "https://login.use2.us-gov-pure.cloud"),
    ("eu_central_2", "https://api.euc2.pure.cloud", "https://login.euc2.pure.cloud"),
])
def test_region_hosts(region, api, login):
    assert region_hosts(region) == (api, login)
    settings = GenesysSettings(region=region, client_id="x", client_secret="y")
    assert (settings.api_url, settings.login_url) == (api, login)


def test_all_seventeen_regions_and_unknown_region():
    assert len(REGION_DOMAINS) == 17
    with pytest.raises(ValidationFailed) as err:
        region_hosts("mars_north_1")
    assert err.value.details["fields"] == {"region": "unknown_region"}


def test_overrides_win_and_trailing_slash_is_dropped():
    s = GenesysSettings(region="us_east_1", client_id="x", client_secret="y", api_base="http://127.0.0.1:8010/",
                        login_base="http://127.0.0.1:8010")
    assert (s.api_url, s.login_url) == ("http://127.0.0.1:8010", "http://127.0.0.1:8010")


def test_secret_never_in_repr_or_public_view_and_sealed_when_stored():
    box = SecretBox("k1")
    s = GenesysSettings(region="us_east_1", client_id="gc-id", client_secret="super-secret-value",
                        workflow_id="wf", start_workflow=True, sms_from_address="+13175550100")
    assert "super-secret-value" not in repr(s) and "super-secret-value" not in json.dumps(s.public_view())
    assert s.public_view()["client_secret_set"] is True
    stored = s.to_stored(box)
    assert "super-secret-value" not in json.dumps(stored)
    back = GenesysSettings.from_stored(stored)
    assert back.client_secret is None and back.secret(box) == "super-secret-value"
    assert back.public_view() == s.public_view()
    with pytest.raises(PaygateError) as err:
        back.secret(SecretBox("another key"))
    assert err.value.code == "genesys_secret_unreadable"
    assert "k1" not in repr(box)


def test_plaintext_secret_written_by_hand_is_read():
    s = GenesysSettings.from_stored({"region": "us_east_1", "client_id": "a", "client_secret": "b"})
    assert s.secret(SecretBox("k")) == "b" and s.write_attributes is True and s.start_workflow is False
    assert GenesysSettings.from_stored(None) is None
    assert GenesysSettings.from_stored({"region": "us_east_1"}) is None


@pytest.mark.parametrize("changes, production, fields", [
    ({"region": "nowhere"}, False, {"region": "unknown_region"}),
    ({"api_base": "http://genesys.example"}, True, {"api_base": "invalid_url"}),
    ({"login_base": "ftp://x"}, False, {"login_base": "invalid_url"}),
    ({"api_base": "https://x.example/?a=b"}, False, {"api_base": "invalid_url"}),
    ({"start_workflow": True}, False, {"workflow_id": "required"}),
    ({"client_secret": None}, False, {"client_secret": "required"}),
    ({"sms_from_address": "has space"}, False, {"sms_from_address": "invalid"}),
])
def test_validation(changes, production, fields):
    values = dict(region="us_east_1", client_id="gc", client_secret="s")
    values.update(changes)
    with pytest.raises(ValidationFailed) as err:
        GenesysSettings(**values).validated(production=production)
    assert err.value.details["fields"] == fields


def test_http_overrides_allowed_for_loopback_in_production_and_anywhere_outside():
    s = GenesysSettings(region="us_east_1", client_id="gc", client_secret="s", api_base="http://127.0.0.1:8010",
                        login_base="http://localhost:8010")
    assert s.validated(production=True) is s
    GenesysSettings(region="us_east_1", client_id="gc", client_secret="s",
                    api_base="http://emulator:8010").validated(production=False)


# -- payload builders ----------------------------------------------------------------------------------
VIEW = {"session_id": "ps_1", "status": "pending", "outcome": "declined", "conversation_id": "c1",
        "participant_id": "p1", "customer_account_id": "A-1", "intent": "topup", "amount": 1999, "currency": "JPY",
        "reference": None, "channel": "voice", "attempts": 1, "max_attempts": 3, "token": None,
        "card": {"brand": "visa", "last4": "0002", "exp_month": 12, "exp_year": 2030, "fingerprint": "fp_x"},
        "payment_id": None, "decline_code": "generic_decline", "message": "Declined.", "metadata": {"a": "b"}}


def test_participant_attributes_are_the_named_strings():
    attrs = participant_attributes(VIEW)
    assert tuple(attrs) == ATTRIBUTE_NAMES
    assert attrs == {"paymentStatus": "pending", "paymentOutcome": "declined", "paymentToken": "",
                     "paymentCardBrand": "visa", "paymentCardLast4": "0002", "paymentId": "",
                     "paymentDeclineCode": "generic_decline", "paymentMessage": "Declined.",
                     "paymentSessionId": "ps_1"}
    assert participant_attributes({"card": None})["paymentCardLast4"] == ""


def test_workflow_input_has_flow_keys_and_string_values():
    inputs = workflow_input({"id": "evt_1", "type": "payment.declined", "sequence": 3,
                             "created_at": "2026-11-23T12:00:00Z", "data": VIEW})
    assert tuple(inputs) == WORKFLOW_INPUTS
    assert all(k.startswith("Flow.") and isinstance(v, str) for k, v in inputs.items())
    assert (inputs["Flow.amount"], inputs["Flow.currency"], inputs["Flow.eventSequence"]) == ("1999", "JPY", "3")
    assert (inputs["Flow.eventId"], inputs["Flow.token"], inputs["Flow.reference"]) == ("evt_1", "", "")
    assert "fp_x" not in json.dumps(inputs)  # the fingerprint is not pushed into Genesys


@pytest.mark.parametrize("header, body, expected", [
    ("42", None, 42.0),
    ("Mon, 23 Nov 2026 12:01:30 GMT", None, 90.0),
    ("Mon, 23 Nov 2026 11:00:00 GMT", None, 0.0),
    (None, b'{"message":"Rate limit exceeded the maximum. Retry the request in [17] seconds"}', 17.0),
    ("soon", None, None),
    (None, None, None),
])
def test_parse_retry_after(header, body, expected):
    assert parse_retry_after(header, body, NOW) == expected


def test_link_message_limits():
    url = "https://pay.example.com/checkout/ps_abc?t=xyz"
    text = link_message(url, "$25.00", "12:15 UTC", "sms")
    assert url in text and "$25.00" in text and len(text) <= 765
    long_url = "https://pay.example.com/" + "a" * 700
    assert link_message(long_url, "$25.00", "x", "sms") == f"Pay securely: {long_url}"
    assert long_url in link_message(long_url, "$25.00", "x", "whatsapp") != f"Pay securely: {long_url}"
    with pytest.raises(ValueError):
        link_message("https://pay.example.com/" + "a" * 800, "$1", "x", "sms")


def test_mask_address():
    assert mask_address("+15551234567") == "+1555***4567"
    assert mask_address("+1234") == "***"


# -- tokens and calls through a mock transport ---------------------------------------------------------
class Genesys:
    """A scripted mock: token endpoint issues numbered tokens; API answers from ``api_replies``."""

    def __init__(self):
        self.tokens_issued = 0
        self.expires_in = 3600
        self.token_reply: httpx.Response | None = None
        self.api_replies: list[httpx.Response] = []
        self.calls: list[httpx.Request] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.calls.append(request)
            if request.url.path == "/oauth/token":
                assert request.url.host == "login.example.test"
                basic = base64.b64encode(b"gc-id:gc-secret").decode()
                assert request.headers["Authorization"] == f"Basic {basic}"
                assert parse_qs(request.content.decode()) == {"grant_type": ["client_credentials"]}
                if self.token_reply is not None:
                    return self.token_reply
                self.tokens_issued += 1
                return httpx.Response(200, json={"access_token": f"t{self.tokens_issued}", "token_type": "bearer",
                                                 "expires_in": self.expires_in})
            assert request.url.host == "api.example.test"
            return self.api_replies.pop(0) if self.api_replies else httpx.Response(202)


@pytest.fixture
def mock():
    return Genesys()


@pytest.fixture
def http(mock):
    with httpx.Client(transport=httpx.MockTransport(mock)) as client:
        yield client


def test_token_cached_until_a_minute_before_expiry(mock, http):
    clock = FrozenClock(NOW)
    tokens = TokenProvider(http, clock)
    assert tokens.token(CREDS) == "t1"
    clock.advance(3539)
    assert tokens.token(CREDS) == "t1"
    clock.advance(1)
    assert tokens.token(CREDS) == "t2"
    other = Credentials(CREDS.api_url, CREDS.login_url, CREDS.client_id, "gc-secret")
    assert tokens.token(other) == "t2"  # same client and secret: same cache entry
    assert "gc-secret" not in repr(CREDS) and "t2" not in repr(tokens)


def test_short_lived_token_is_kept_for_half_its_life(mock, http):
    mock.expires_in = 60
    clock = FrozenClock(NOW)
    tokens = TokenProvider(http, clock)
    tokens.token(CREDS)
    clock.advance(29)
    assert tokens.token(CREDS) == "t1"
    clock.advance(1)
    assert tokens.token(CREDS) == "t2"


def test_invalidate_only_drops_the_failed_token(mock, http):
    tokens = TokenProvider(http, FrozenClock(NOW))
    assert tokens.token(CREDS) == "t1"
    tokens.invalidate(CREDS, "t0-stale")
    assert tokens.token(CREDS) == "t1"
    tokens.invalidate(CREDS, "t1")
    assert tokens.token(CREDS) == "t2"


def test_concurrent_callers_share_one_fetch(mock, http):
    tokens = TokenProvider(http, FrozenClock(NOW))
    barrier = threading.Barrier(8)
    got = []

    def run():
        barrier.wait()
        got.append(tokens.token(CREDS))

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert got == ["t1"] * 8 and mock.tokens_issued == 1


@pytest.mark.parametrize("reply, reason, retry_after", [
    (httpx.Response(400, json={"error": "unauthorized_client"}), "genesys_oauth_rejected", None),
    (httpx.Response(429, headers={"Retry-After": "9"}), "genesys_oauth_rate_limited", 9.0),
    (httpx.Response(503), "genesys_oauth_unavailable", None),
    (httpx.Response(200, json={"nope": 1}), "genesys_oauth_bad_response", None),
])
def test_token_errors(mock, http, reply, reason, retry_after):
    mock.token_reply = reply
    with pytest.raises(TokenError) as err:
        TokenProvider(http, FrozenClock(NOW)).token(CREDS)
    assert (err.value.reason, err.value.retry_after) == (reason, retry_after)
    assert "gc-secret" not in str(err.value)


def test_call_refreshes_the_token_once_on_401(mock, http):
    api = GenesysApi(http, TokenProvider(http, FrozenClock(NOW)))
    mock.api_replies = [httpx.Response(401, json={"code": "bad.credentials"}), httpx.Response(202)]
    result = api.patch_participant_attributes(CREDS, "conv 1", "p/1", {"paymentStatus": "approved"})
    assert result.ok and result.status_code == 202
    patches = [c for c in mock.calls if c.method == "PATCH"]
    assert [c.headers["Authorization"] for c in patches] == ["Bearer t1", "Bearer t2"]
    assert patches[0].url.raw_path == b"/api/v2/conversations/conv%201/participants/p%2F1/attributes"
    assert json.loads(patches[0].content) == {"attributes": {"paymentStatus": "approved"}}

    mock.api_replies = [httpx.Response(401), httpx.Response(401)]
    result = api.patch_participant_attributes(CREDS, "c", "p", {})
    assert (result.status_code, result.error, result.ok) == (401, "http_401", False)
    assert mock.tokens_issued == 3  # refreshed once per call, never in a loop


def test_429_is_returned_with_retry_after_not_slept_on(mock, http):
    api = GenesysApi(http, TokenProvider(http, FrozenClock(NOW)))
    mock.api_replies = [httpx.Response(429, headers={"Retry-After": "42"},
                                       json={"code": "too.many.requests.retry.after"})]
    result = api.start_workflow(CREDS, "wf", "n", {"Flow.a": "1"})
    assert (result.status_code, result.retry_after, result.error) == (
        429, 42.0, "http_429: too.many.requests.retry.after")


def test_call_guards_value_types_and_flow_prefix(http):
    api = GenesysApi(http, TokenProvider(http, FrozenClock(NOW)))
    with pytest.raises(TypeError):
        api.patch_participant_attributes(CREDS, "c", "p", {"paymentAmount": 2500})
    with pytest.raises(ValueError):
        api.start_workflow(CREDS, "wf", "n", {"eventId": "evt_1"})


def test_transport_errors_are_reported_not_raised():
    def boom(request):
        raise httpx.ConnectError("refused", request=request)

    with httpx.Client(transport=httpx.MockTransport(boom)) as http:
        result = GenesysApi(http, TokenProvider(http, FrozenClock(NOW))).call(CREDS, "GET", "/api/v2/x")
    assert (result.status_code, result.transport_error, result.error) == (None, True, "genesys_oauth_unreachable")


# -- the CLI -------------------------------------------------------------------------------------------
def test_cli_configures_and_never_prints_the_secret(sqlite_url, state_dir, redis_url):
    from sqlalchemy import text

    from kernel.db import make_engine
    from paygate.cli import main

    env = {"PAYGATE_ENV": "test", "PAYGATE_DATABASE_URL": sqlite_url, "PAYGATE_REDIS_URL": redis_url,
           "PAYGATE_INSTANCE_PATH": str(state_dir / "instance")}
    runner = CliRunner()
    created = json.loads(runner.invoke(main, ["clients", "create", "acme"], env=env).output)
    cid = created["client_id"]
    r = runner.invoke(main, ["clients", "genesys", cid, "--region", "eu_west_1", "--oauth-client-id", "gc-1",
                             "--workflow-id", "wf-9", "--sms-from", "+13175550100"],
                      env={**env, "PAYGATE_GENESYS_OAUTH_CLIENT_SECRET": "cli-secret-value"})
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert shown == {"client_id": cid, "genesys": {
        "region": "eu_west_1", "api_base": "https://api.mypurecloud.ie", "login_base": "https://login.mypurecloud.ie",
        "client_id": "gc-1", "client_secret_set": True, "workflow_id": "wf-9", "write_attributes": True,
        "start_workflow": True, "sms_from_address": "+13175550100"}}
    assert "cli-secret-value" not in r.output

    r = runner.invoke(main, ["clients", "genesys", cid, "--no-attributes", "--no-workflow",
                             "--api-base", "http://127.0.0.1:8010", "--login-base", "http://127.0.0.1:8010"], env=env)
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)["genesys"]
    assert (shown["write_attributes"], shown["start_workflow"], shown["client_secret_set"]) == (False, False, True)
    assert shown["api_base"] == "http://127.0.0.1:8010" and shown["workflow_id"] == "wf-9"

    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT genesys FROM api_clients WHERE id = :i"), {"i": cid}).scalar_one()
    engine.dispose()
    assert "cli-secret-value" not in stored and "client_secret_sealed" in stored

    r = runner.invoke(main, ["clients", "genesys", cid, "--region", "moon_1"], env=env)
    assert r.exit_code != 0 and "unknown_region" in r.output
    r = runner.invoke(main, ["clients", "genesys", "cli_nope", "--region", "us_east_1"], env=env)
    assert r.exit_code != 0 and "no client" in r.output
    r = runner.invoke(main, ["clients", "genesys", cid, "--remove"], env=env)
    assert json.loads(r.output) == {"client_id": cid, "genesys": None}
