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
from integrations.genesys.writeback import (
    ATTRIBUTE_NAMES,
    WORKFLOW_INPUTS,
    destinations,
    participant_attributes,
    workflow_input,
)
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


WORKTYPE = "0f8fad5b-d9cb-469f-a165-70867728950e"


def test_worktype_is_stored_shown_and_optional():
    box = SecretBox("k")
    s = GenesysSettings(region="us_east_1", client_id="gc", client_secret="s", worktype_id=WORKTYPE)
    assert s.validated(production=True) is s and s.workitems_enabled
    stored = s.to_stored(box)
    assert stored["worktype_id"] == WORKTYPE and GenesysSettings.from_stored(stored).worktype_id == WORKTYPE
    assert s.public_view()["worktype_id"] == WORKTYPE
    legacy = GenesysSettings.from_stored({"region": "us_east_1", "client_id": "a", "client_secret": "b"})
    assert legacy.worktype_id is None and not legacy.workitems_enabled
    assert GenesysSettings(region="us_east_1", client_id="gc", client_secret="s",
                           worktype_id=WORKTYPE.upper()).validated(production=False)


def test_destinations_add_a_workitem_for_failed_refunds_only_with_a_worktype():
    base = dict(region="us_east_1", client_id="gc", client_secret="s", workflow_id="wf", start_workflow=True)
    with_type = GenesysSettings(**base, worktype_id=WORKTYPE)
    kinds = {d.kind: d.target for d in destinations(with_type, event_type="refund.failed", conversation_id="c",
                                                    participant_id="p")}
    assert kinds == {"genesys_attributes": "genesys:attributes:c/p", "genesys_workflow": "genesys:flow:wf",
                     "genesys_workitem": f"genesys:workitem:{WORKTYPE}"}
    for other in ("refund.succeeded", "payment.approved", "hold.voided", "dispute.opened"):
        assert "genesys_workitem" not in {d.kind for d in destinations(
            with_type, event_type=other, conversation_id="c", participant_id="p")}
    assert {d.kind for d in destinations(GenesysSettings(**base), event_type="refund.failed", conversation_id="c",
                                         participant_id="p")} == {"genesys_attributes", "genesys_workflow"}
    # no participant: no attributes, but the workitem still goes (the review does not need the conversation)
    assert {d.kind for d in destinations(with_type, event_type="refund.failed", conversation_id=None,
                                         participant_id=None)} == {"genesys_workflow", "genesys_workitem"}
    assert destinations(None, event_type="refund.failed", conversation_id="c", participant_id="p") == []


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
    ({"worktype_id": "not-a-uuid"}, False, {"worktype_id": "invalid"}),
    ({"worktype_id": "{0f8fad5b-d9cb-469f-a165-70867728950e}"}, False, {"worktype_id": "invalid"}),
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
CARD = {"brand": "visa", "last4": "0002", "exp_month": 12, "exp_year": 2030, "fingerprint": "fp_x"}
VIEW = {"session_id": "ps_1", "status": "pending", "outcome": "declined", "conversation_id": "c1",
        "participant_id": "p1", "customer_account_id": "A-1", "intent": "topup", "amount": 1999, "currency": "JPY",
        "reference": None, "channel": "voice", "attempts": 1, "max_attempts": 3, "token": None, "card": CARD,
        "payment_id": None, "gateway_reference": "pi_9", "decline_code": "generic_decline", "message": "Declined.",
        "metadata": {"a": "b"}}
PAYMENT = {"payment_id": "pay_1", "object": "payment", "session_id": "ps_1", "status": "authorized", "intent": "hold",
           "amount": 5000, "amount_capturable": 5000, "amount_captured": 0, "amount_refunded": 0, "currency": "USD",
           "token": "tok_1", "card": {**CARD, "last4": "4242"}, "gateway": "sandbox", "gateway_reference": "pi_1",
           "capture_before": "2026-11-30T12:00:00Z", "conversation_id": "c1", "participant_id": "p1",
           "customer_account_id": "A-1", "reference": "DSP-7", "subscription_id": None, "dispute_id": None,
           "decline_code": None, "message": "Payment authorized.", "initiator": "customer", "metadata": {},
           "created_at": "2026-11-23T12:00:00Z", "updated_at": "2026-11-23T12:00:00Z"}
REFUND = {"refund_id": "re_1", "object": "refund", "payment_id": "pay_1", "status": "failed", "amount": 1500,
          "currency": "USD", "reason": "requested_by_customer", "disposition_code": "wrap-REFUND",
          "conversation_id": "c2", "participant_id": "p2", "reference": None, "failure_code": "expired_or_canceled_card",
          "manual_review": "required", "review_disposition": "Refund_Failed_Manual_Review", "gateway_reference": "re_gw",
          "metadata": {}, "created_at": "2026-11-23T12:00:00Z", "updated_at": "2026-11-23T12:00:00Z"}
DISPUTE = {"dispute_id": "dsp_1", "object": "dispute", "payment_id": "pay_1", "status": "needs_response",
           "reason": "fraudulent", "amount": 5000, "currency": "USD", "evidence_due_by": "2026-12-01T00:00:00Z",
           "gateway_reference": "dp_1", "conversation_id": "c1", "customer_account_id": "A-1",
           "created_at": "2026-11-23T12:00:00Z", "updated_at": "2026-11-23T12:00:00Z"}
SUBSCRIPTION = {"subscription_id": "sub_1", "object": "subscription", "status": "past_due", "token": "tok_1",
                "amount": 999, "currency": "USD", "interval": "month", "interval_count": 1,
                "current_period_start": "2026-11-23T12:00:00Z", "current_period_end": "2026-12-23T12:00:00Z",
                "next_charge_at": "2026-11-24T12:00:00Z", "failed_attempts": 1, "last_payment_id": "pay_9",
                "customer_account_id": "A-1", "reference": None, "cancel_reason": None,
                "created_at": "2026-11-23T12:00:00Z", "canceled_at": None}


def event(event_type: str, data: dict, object_type: str | None = None, **extra) -> dict:
    body = {"id": "evt_1", "type": event_type, "created_at": "2026-11-23T12:00:00Z", "sequence": 3, "data": data}
    if object_type is not None:
        body["object"] = object_type
    return {**body, **extra}


def test_session_events_write_the_section_6_attributes():
    attrs = participant_attributes(event("payment.declined", VIEW, "payment_session"))
    assert list(attrs) == [n for n in ATTRIBUTE_NAMES if n in attrs]  # the documented order
    assert attrs == {"paymentStatus": "pending", "paymentOutcome": "declined", "paymentToken": "",
                     "paymentCardBrand": "visa", "paymentCardLast4": "0002", "paymentId": "",
                     "paymentDeclineCode": "generic_decline", "paymentMessage": "Declined.",
                     "paymentSessionId": "ps_1", "paymentGatewayReference": "pi_9"}
    assert participant_attributes(event("payment.failed", {"card": None}))["paymentCardLast4"] == ""
    # a body without "object" (written before events named it) is a session view
    assert participant_attributes(event("payment.declined", VIEW)) == attrs


@pytest.mark.parametrize("event_type, status, expected", [
    ("hold.authorized", "authorized", {"paymentStatus": "approved", "paymentOutcome": "approved",
                                       "paymentToken": "tok_1", "paymentCardBrand": "visa", "paymentCardLast4": "4242",
                                       "paymentId": "pay_1", "paymentDeclineCode": "",
                                       "paymentMessage": "Payment authorized.", "paymentSessionId": "ps_1",
                                       "paymentGatewayReference": "pi_1", "paymentHoldStatus": "authorized"}),
    ("hold.captured", "captured", {"paymentId": "pay_1", "paymentGatewayReference": "pi_1",
                                   "paymentHoldStatus": "captured"}),
    ("hold.voided", "voided", {"paymentId": "pay_1", "paymentGatewayReference": "pi_1", "paymentHoldStatus": "voided"}),
    ("hold.expiring", "authorized", {"paymentId": "pay_1", "paymentGatewayReference": "pi_1",
                                     "paymentHoldStatus": "authorized"}),
    ("hold.expired", "expired", {"paymentId": "pay_1", "paymentGatewayReference": "pi_1",
                                 "paymentHoldStatus": "expired"}),
])
def test_hold_events_write_the_hold_status(event_type, status, expected):
    assert participant_attributes(event(event_type, {**PAYMENT, "status": status}, "payment")) == expected


def test_merchant_initiated_payment_events_write_the_charge_result():
    mit = {**PAYMENT, "session_id": None, "status": "declined", "intent": "payment", "decline_code": "insufficient_funds",
           "message": "Declined.", "subscription_id": "sub_1", "initiator": "merchant"}
    attrs = participant_attributes(event("payment.declined", mit, "payment"))
    assert (attrs["paymentStatus"], attrs["paymentOutcome"], attrs["paymentDeclineCode"]) == (
        "declined", "declined", "insufficient_funds")
    assert attrs["paymentSessionId"] == "" and attrs["paymentSubscriptionId"] == "sub_1"
    assert "paymentHoldStatus" not in attrs
    captured = participant_attributes(event("payment.approved", {**mit, "status": "captured"}, "payment"))
    assert captured["paymentStatus"] == "approved"  # the session vocabulary, never the payment's "captured"


def test_refund_dispute_and_subscription_events_never_touch_the_payment_status():
    refund = participant_attributes(event("refund.failed", REFUND, "refund"))
    assert refund == {"paymentId": "pay_1", "paymentRefundId": "re_1", "paymentRefundStatus": "failed",
                      "paymentRefundReviewDisposition": "Refund_Failed_Manual_Review"}
    ok = participant_attributes(event("refund.succeeded", {**REFUND, "status": "succeeded", "review_disposition": None,
                                                            "manual_review": "none"}, "refund"))
    assert ok["paymentRefundReviewDisposition"] == "" and ok["paymentRefundStatus"] == "succeeded"
    dispute = participant_attributes(event("dispute.opened", DISPUTE, "dispute"))
    assert dispute == {"paymentId": "pay_1", "paymentDisputeStatus": "needs_response"}
    sub = participant_attributes(event("subscription.payment_failed", SUBSCRIPTION, "subscription"))
    assert sub == {"paymentId": "pay_9", "paymentSubscriptionId": "sub_1", "paymentSubscriptionStatus": "past_due"}
    assert "paymentId" not in participant_attributes(event("subscription.created",
                                                           {**SUBSCRIPTION, "last_payment_id": None}, "subscription"))
    for attrs in (refund, dispute, sub):
        assert not {"paymentStatus", "paymentOutcome", "paymentGatewayReference"} & set(attrs)
        assert set(attrs) <= set(ATTRIBUTE_NAMES)
    # the object is also read from the view itself when the body does not name it
    assert participant_attributes(event("refund.failed", REFUND)) == refund


def test_workflow_input_has_flow_keys_and_string_values():
    inputs = workflow_input(event("payment.declined", VIEW, "payment_session"))
    assert tuple(inputs) == WORKFLOW_INPUTS
    assert all(k.startswith("Flow.") and isinstance(v, str) for k, v in inputs.items())
    assert (inputs["Flow.amount"], inputs["Flow.currency"], inputs["Flow.eventSequence"]) == ("1999", "JPY", "3")
    assert (inputs["Flow.eventId"], inputs["Flow.token"], inputs["Flow.reference"]) == ("evt_1", "", "")
    assert (inputs["Flow.objectType"], inputs["Flow.outcome"], inputs["Flow.refundId"]) == (
        "payment_session", "declined", "")
    assert "fp_x" not in json.dumps(inputs)  # the fingerprint is not pushed into Genesys


def test_workflow_input_per_object():
    refund = workflow_input(event("refund.failed", REFUND, "refund"))
    assert tuple(refund) == WORKFLOW_INPUTS
    assert {k: refund[k] for k in ("Flow.objectType", "Flow.refundId", "Flow.paymentId", "Flow.status",
                                   "Flow.amount", "Flow.dispositionCode", "Flow.reviewDisposition",
                                   "Flow.failureCode", "Flow.conversationId", "Flow.participantId",
                                   "Flow.outcome", "Flow.sessionId", "Flow.disputeId")} == {
        "Flow.objectType": "refund", "Flow.refundId": "re_1", "Flow.paymentId": "pay_1", "Flow.status": "failed",
        "Flow.amount": "1500", "Flow.dispositionCode": "wrap-REFUND",
        "Flow.reviewDisposition": "Refund_Failed_Manual_Review", "Flow.failureCode": "expired_or_canceled_card",
        "Flow.conversationId": "c2", "Flow.participantId": "p2", "Flow.outcome": "", "Flow.sessionId": "",
        "Flow.disputeId": ""}
    hold = workflow_input(event("hold.authorized", PAYMENT, "payment"))
    assert (hold["Flow.objectType"], hold["Flow.status"], hold["Flow.outcome"], hold["Flow.captureBefore"]) == (
        "payment", "authorized", "approved", "2026-11-30T12:00:00Z")
    assert (hold["Flow.paymentId"], hold["Flow.sessionId"], hold["Flow.cardLast4"], hold["Flow.intent"]) == (
        "pay_1", "ps_1", "4242", "hold")
    captured = workflow_input(event("hold.captured", {**PAYMENT, "status": "captured", "dispute_id": "dsp_1"}, "payment"))
    assert (captured["Flow.outcome"], captured["Flow.disputeId"]) == ("", "dsp_1")
    dispute = workflow_input(event("dispute.closed", {**DISPUTE, "status": "lost"}, "dispute"))
    assert (dispute["Flow.objectType"], dispute["Flow.disputeId"], dispute["Flow.status"], dispute["Flow.paymentId"]) == (
        "dispute", "dsp_1", "lost", "pay_1")
    sub = workflow_input(event("subscription.renewed", {**SUBSCRIPTION, "status": "active"}, "subscription"))
    assert (sub["Flow.subscriptionId"], sub["Flow.paymentId"], sub["Flow.token"], sub["Flow.amount"]) == (
        "sub_1", "pay_9", "tok_1", "999")
    for inputs in (refund, hold, dispute, sub):
        assert tuple(inputs) == WORKFLOW_INPUTS and all(isinstance(v, str) for v in inputs.values())


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
    text = link_message(url, "$25.00", 900, "sms")
    assert url in text and "$25.00" in text and "valid for 15 minutes" in text and len(text) <= 765
    assert "UTC" not in text
    long_url = "https://pay.example.com/" + "a" * 700
    assert link_message(long_url, "$25.00", 900, "sms") == f"Pay securely: {long_url}"
    assert long_url in link_message(long_url, "$25.00", 900, "whatsapp") != f"Pay securely: {long_url}"
    with pytest.raises(ValueError):
        link_message("https://pay.example.com/" + "a" * 800, "$1", 900, "sms")


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
                             "--workflow-id", "wf-9", "--sms-from", "+13175550100", "--worktype-id", WORKTYPE],
                      env={**env, "PAYGATE_GENESYS_OAUTH_CLIENT_SECRET": "cli-secret-value"})
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert shown == {"client_id": cid, "genesys": {
        "region": "eu_west_1", "api_base": "https://api.mypurecloud.ie", "login_base": "https://login.mypurecloud.ie",
        "client_id": "gc-1", "client_secret_set": True, "workflow_id": "wf-9", "write_attributes": True,
        "start_workflow": True, "sms_from_address": "+13175550100", "worktype_id": WORKTYPE}}
    assert "cli-secret-value" not in r.output

    r = runner.invoke(main, ["clients", "genesys", cid, "--no-attributes", "--no-workflow",
                             "--api-base", "http://127.0.0.1:8010", "--login-base", "http://127.0.0.1:8010"], env=env)
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)["genesys"]
    assert (shown["write_attributes"], shown["start_workflow"], shown["client_secret_set"]) == (False, False, True)
    assert shown["api_base"] == "http://127.0.0.1:8010" and shown["workflow_id"] == "wf-9"
    assert shown["worktype_id"] == WORKTYPE  # kept when not given

    r = runner.invoke(main, ["clients", "genesys", cid, "--worktype-id", "refunds"], env=env)
    assert r.exit_code != 0 and "worktype_id: invalid" in r.output
    r = runner.invoke(main, ["clients", "genesys", cid, "--worktype-id", ""], env=env)
    assert r.exit_code == 0 and json.loads(r.output)["genesys"]["worktype_id"] is None  # '' turns it off

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


# -- workitems: client calls and the sender, through the mock ------------------------------------------
def test_workitem_calls_check_genesys_limits(http):
    api = GenesysApi(http, TokenProvider(http, FrozenClock(NOW)))
    with pytest.raises(ValueError):
        api.create_workitem(CREDS, name="ab", type_id=WORKTYPE)
    with pytest.raises(ValueError):
        api.create_workitem(CREDS, name="x" * 257, type_id=WORKTYPE)
    with pytest.raises(ValueError):
        api.create_workitem(CREDS, name="Refund review", type_id=WORKTYPE, description="d" * 513)
    with pytest.raises(ValueError):
        api.query_workitems(CREDS, [])
    with pytest.raises(ValueError):
        api.query_workitems(CREDS, [{"name": "typeId"}] * 4)


def workitem_job(data: dict, *, target: str = f"genesys:workitem:{WORKTYPE}", object_type: str = "refund"):
    from callbacks.delivery import DeliveryJob

    body = json.dumps({"id": "evt_9", "type": "refund.failed", "object": object_type,
                       "created_at": "2026-11-23T12:00:00Z", "sequence": 4, "data": data})
    return DeliveryJob(delivery_id=1, kind="genesys_workitem", target=target, attempt=1, event_id="evt_9",
                       event_type="refund.failed", event_created_at=NOW, body=body, client_id="cli_1",
                       signing_secrets=())


@pytest.fixture
def workitem_sender(http):
    from integrations.genesys.workitems import WorkitemSender

    settings = GenesysSettings(region="us_east_1", client_id="gc-id", client_secret="gc-secret",
                               api_base="https://api.example.test", login_base="https://login.example.test",
                               worktype_id=WORKTYPE)
    return WorkitemSender(GenesysApi(http, TokenProvider(http, FrozenClock(NOW))), lambda _cid: settings,
                          SecretBox("k"))


def test_workitem_sender_queries_then_creates_once(mock, workitem_sender):
    mock.api_replies = [httpx.Response(200, json={"entities": []}),
                        httpx.Response(201, json={"id": "wi-1", "statusCategory": "Open"})]
    result = workitem_sender(workitem_job(REFUND))
    assert (result.status_code, result.error, result.skipped) == (201, None, False)
    query, create = [c for c in mock.calls if c.url.path.startswith("/api/v2/")]
    assert (query.method, query.url.path) == ("POST", "/api/v2/taskmanagement/workitems/query")
    assert json.loads(query.content) == {"filters": [
        {"name": "typeId", "type": "String", "operator": "EQ", "values": [WORKTYPE]},
        {"name": "externalTag", "type": "String", "operator": "EQ", "values": ["re_1"]}], "pageSize": 25}
    assert (create.method, create.url.path) == ("POST", "/api/v2/taskmanagement/workitems")
    body = json.loads(create.content)
    assert set(body) == {"name", "typeId", "description", "externalTag"}  # never customFields
    assert (body["name"], body["typeId"], body["externalTag"]) == ("Refund review re_1", WORKTYPE, "re_1")
    for part in ("re_1", "pay_1", "1500 USD", "wrap-REFUND", "expired_or_canceled_card",
                 "Refund_Failed_Manual_Review", "c2"):
        assert part in body["description"], part
    assert len(body["description"]) <= 512

    mock.calls.clear()
    mock.api_replies = [httpx.Response(200, json={"entities": [{"id": "wi-1", "externalTag": "re_1"}]})]
    again = workitem_sender(workitem_job(REFUND))  # a second failure of the same refund, or a redelivery
    assert (again.skipped, again.error, again.status_code) == (True, "workitem_exists", 200)
    assert [c.url.path for c in mock.calls if c.url.path.startswith("/api/v2/")] == [
        "/api/v2/taskmanagement/workitems/query"]


def test_workitem_description_never_carries_card_numbers(mock, workitem_sender):
    mock.api_replies = [httpx.Response(200, json={"entities": []}), httpx.Response(201, json={"id": "wi-2"})]
    sneaky = {**REFUND, "disposition_code": "REFUND 4242 4242 4242 4242", "reference": "4000000000000002",
              "amount": 10**11}
    assert workitem_sender(workitem_job(sneaky)).status_code == 201
    description = json.loads(mock.calls[-1].content)["description"]
    assert "4242 4242 4242 4242" not in description and "4000000000000002" not in description
    assert "****4242" in description and "100000000000 USD" in description


@pytest.mark.parametrize("replies, status, retry_after, error", [
    ([httpx.Response(429, headers={"Retry-After": "30"}, json={"code": "too.many.requests.retry.after"})],
     429, 30.0, "http_429: too.many.requests.retry.after"),
    ([httpx.Response(503)], 503, None, "http_503"),
    ([httpx.Response(200, json={"entities": []}), httpx.Response(404, json={"code": "not.found.error"})],
     404, None, "http_404: not.found.error"),
    ([httpx.Response(200, json={"entities": []}), httpx.Response(429, headers={"Retry-After": "7"})],
     429, 7.0, "http_429"),
])
def test_workitem_sender_errors_are_the_deliverers_to_handle(mock, workitem_sender, replies, status, retry_after, error):
    mock.api_replies = replies
    result = workitem_sender(workitem_job(REFUND))
    assert (result.status_code, result.retry_after, result.error, result.permanent) == (status, retry_after, error, False)


def test_workitem_sender_refuses_what_it_cannot_send(mock, workitem_sender):
    assert workitem_sender(workitem_job(REFUND, target="genesys:workitem:")).error == "invalid_workitem_target"
    not_refund = workitem_sender(workitem_job(PAYMENT, object_type="payment"))
    assert (not_refund.error, not_refund.permanent) == ("not_a_refund_event", True)
    mock.api_replies = [httpx.Response(200, json={"nope": []})]
    odd = workitem_sender(workitem_job(REFUND))
    assert (odd.error, odd.transport_error, odd.status_code) == ("genesys_bad_response", True, None)  # retried
    assert [c for c in mock.calls if c.url.path == "/api/v2/taskmanagement/workitems"] == []
