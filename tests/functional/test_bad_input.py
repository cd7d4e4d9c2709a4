"""Every bad input is a clean 4xx, on SQLite and PostgreSQL: one regression test per input that once reached a
500 (docs/api.md, "Conventions"), and the HTML pages a browser gets on the checkout and agent paths."""

from __future__ import annotations

import base64
import json
import re
import time

import pytest

from tokenizer.gateways.stripe_webhooks import sign_payload

from .money import VISA, paid, payment, signed_webhook

ARABIC_INDIC = "٤٢٤٢٤٢٤٢٤٢٤٢٤٢٤٢"  # 4242424242424242 in U+0660..U+0669: str.isdigit() is True
FULLWIDTH = "４２４２４２４２４２４２４２４２"
SUPERSCRIPT = "4242424242424²"  # isdigit() True, int() refuses it
SESSION = {"conversation_id": "conv-1", "customer_account_id": "ACME-1", "amount": 2500, "currency": "USD"}


def raw(stack, path, data, content_type="application/json", method="post", **headers):
    return getattr(stack.http, method)(path, data=data, headers={**stack.auth(), "Content-Type": content_type,
                                                                  **headers})


def error_of(r) -> dict:
    assert r.is_json, r.get_data()[:200]
    return r.get_json()["error"]


@pytest.mark.parametrize("field, value", [("locale", 5), ("locale", ["en-US"]), ("locale", {"a": "b"}),
                                          ("locale", True), ("callback_url", 5), ("callback_url", ["https://x"]),
                                          ("callback_url", {"url": "https://x"})])
def test_a_non_string_locale_or_callback_url(stack, field, value):
    r = stack.http.post("/v1/payment-sessions", json={**SESSION, field: value}, headers=stack.auth())
    assert r.status_code == 400
    assert error_of(r)["code"] == "validation_error" and error_of(r)["fields"] == {field: "must_be_string"}


@pytest.mark.parametrize("url", ["https://[::1", "https://[::1/x", "http://]/"])
def test_a_callback_url_that_does_not_parse(stack, url):
    r = stack.http.post("/v1/payment-sessions", json={**SESSION, "callback_url": url}, headers=stack.auth())
    assert r.status_code == 400, r.get_json()
    assert error_of(r)["fields"] == {"callback_url": "invalid_url"}


@pytest.mark.parametrize("number", [ARABIC_INDIC, FULLWIDTH, SUPERSCRIPT, "４２４２４２", "424242\u0663"])
def test_inspect_takes_ascii_digits_only(stack, number):
    r = stack.http.post("/v1/cards/inspect", json={"number": number}, headers=stack.auth())
    assert r.status_code == 400
    assert error_of(r)["fields"] == {"number": "invalid_number"}
    assert number not in r.get_data(as_text=True)


@pytest.mark.parametrize("field, value, code", [
    ("number", ARABIC_INDIC, "invalid_number"), ("number", FULLWIDTH, "invalid_number"),
    ("number", SUPERSCRIPT, "invalid_number"), ("exp_month", "١٢", "invalid_expiry_month"),
    ("exp_year", "٣٠", "invalid_expiry_year"), ("exp_year", "²⁰³⁰", "invalid_expiry_year"),
    ("cvc", "١٢٣", "invalid_cvc"), ("cvc", "１２３", "invalid_cvc")])
def test_voice_card_digits_are_ascii_only(stack, field, value, code):
    sid = stack.create_session()["session_id"]
    body = {"number": VISA, "exp_month": "12", "exp_year": "30", "cvc": "123", field: value}
    r = stack.http.post(f"/v1/payment-sessions/{sid}/card", json=body, headers=stack.auth())
    assert r.status_code == 200
    assert (r.get_json()["outcome"], r.get_json()["field_errors"]) == ("invalid", {field: code})


@pytest.mark.parametrize("body", ["[" * 5000 + "]" * 5000, '{"a":' * 5000 + "1" + "}" * 5000,
                                  '{"conversation_id": "c", "metadata": ' + '{"a":' * 5000 + '"x"' + "}" * 5001])
def test_json_nested_5000_deep(stack, body):
    r = raw(stack, "/v1/payment-sessions", body)
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"


@pytest.mark.parametrize("field, value", [("conversation_id", "conv-\ud800"), ("reference", "\udfff"),
                                          ("locale", "en-\ud800"), ("callback_url", "https://\ud800.example"),
                                          ("metadata", {"k": "\ud800"}), ("metadata", {"\ud800": "v"})])
def test_a_lone_surrogate_in_a_json_string(stack, field, value):
    body = json.dumps({**SESSION, field: value})  # ensure_ascii: "\ud800" on the wire, as a client would send it
    assert "\\ud800" in body or "\\udfff" in body
    r = raw(stack, "/v1/payment-sessions", body)
    assert r.status_code == 400 and error_of(r)["code"] == "validation_error"
    assert field in error_of(r)["fields"]


@pytest.mark.parametrize("field, outcome", [("number", "invalid"), ("cvc", "invalid"), ("cardholder_name", "invalid"),
                                            ("ani", "approved"), ("call_id", None)])
def test_a_lone_surrogate_in_a_voice_card_field(stack, field, outcome):
    """Card fields are judged (``invalid``); an unreadable ``ani`` is no caller (the card is processed); a
    ``call_id`` that no database can store is refused (400)."""
    sid = stack.create_session()["session_id"]
    body = json.dumps({"number": VISA, "exp_month": "12", "exp_year": "30", "cvc": "123", field: "1\ud800"})
    r = raw(stack, f"/v1/payment-sessions/{sid}/card", body)
    if outcome is None:
        assert r.status_code == 400 and error_of(r)["fields"] == {field: "invalid"}
    else:
        assert r.status_code == 200 and r.get_json()["outcome"] == outcome


def test_nul_in_json_query_and_path(stack):
    r = stack.http.post("/v1/payment-sessions", json={**SESSION, "reference": "a\x00b"}, headers=stack.auth())
    assert r.status_code == 400 and error_of(r)["fields"] == {"reference": "invalid_characters"}
    r = stack.http.post("/v1/payment-sessions", json={**SESSION, "metadata": {"a\x00": "b"}}, headers=stack.auth())
    assert r.status_code == 400
    for path in ("/v1/payments?starting_after=%00", "/v1/payment-sessions?conversation_id=a%00",
                 "/v1/refunds?payment_id=%00"):
        r = stack.http.get(path, headers=stack.auth())
        assert r.status_code == 400, path
    for path in ("/v1/payments/pay_%00", "/v1/payment-sessions/%00", "/v1/disputes/%00x"):
        assert stack.http.get(path, headers=stack.auth()).status_code == 404, path
    r = stack.http.post("/v1/conversations/c%00/close", json={}, headers=stack.auth())
    assert r.status_code == 404


@pytest.mark.parametrize("data, content_type", [
    (b"{", "application/json"), (b"\xff\xfe{}", "application/json"), (b'{"a": 1}', "text/plain"),
    (b"conversation_id=c", "application/x-www-form-urlencoded"), (b"NaN", "application/json"),
    (b"", "application/json"), (b'"\\ud800"', "application/json")])
def test_malformed_json_and_wrong_content_types(stack, data, content_type):
    r = raw(stack, "/v1/payment-sessions", data, content_type)
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"


def test_huge_bodies_and_wrong_methods(stack):
    r = raw(stack, "/v1/payment-sessions", b" " * (64 * 1024 + 1))
    assert r.status_code == 413 and error_of(r)["code"] == "request_too_large"
    r = stack.http.delete("/v1/payment-sessions", headers=stack.auth())
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"
    assert set(r.headers["Allow"].split(", ")) >= {"GET", "POST"}
    r = stack.http.get("/oauth/token")
    assert r.status_code == 405 and r.headers["Allow"]


def _is_page(r, status: int) -> bool:
    return r.status_code == status and r.mimetype == "text/html" and "<!doctype html>" in r.get_data(as_text=True)


def test_a_browser_gets_html_pages_on_the_checkout_and_agent_paths(stack):
    created = stack.create_session()
    checkout = created["checkout_url"].removeprefix("http://127.0.0.1:8000")
    agent = created["agent_url"].removeprefix("http://127.0.0.1:8000")
    path, _, query = checkout.partition("?")
    apath, _, aquery = agent.partition("?")
    assert _is_page(stack.http.get("/checkout/"), 404) and _is_page(stack.http.get("/checkout"), 404)
    assert _is_page(stack.http.get(f"{path}/more?{query}"), 404)
    assert _is_page(stack.http.put(checkout), 405) and _is_page(stack.http.delete(checkout), 405)
    assert _is_page(stack.http.post(checkout, data={"number": "4" * 70000}), 413)
    assert _is_page(stack.http.get(f"{apath}/cancel?{aquery}"), 405)
    assert _is_page(stack.http.post(f"{apath}/cancel?{aquery}", data={"x": "y" * 70000}), 413)
    assert _is_page(stack.http.get(f"{apath}?e=%C2%B2&t=x"), 404)  # "²".isdigit() is True, int("²") raises
    assert _is_page(stack.http.get(f"{apath}?e={'9' * 5000}&t=x"), 404)
    # the agent page's status.json stays JSON for its script
    r = stack.http.get(f"{apath}/status.json?e=%C2%B2&t=x")
    assert r.status_code == 404 and r.is_json and error_of(r)["code"] == "not_found"
    # and the API keeps its envelope
    r = stack.http.put("/v1/payment-sessions", headers=stack.auth())
    assert r.status_code == 405 and r.is_json


def _csrf(page: str) -> str:
    return re.search(r'id="csrf_token" name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


@pytest.mark.parametrize("submission_id", ["\x00", "x" * 5000, "a b", "é"])
def test_an_altered_submission_nonce_on_the_checkout_form(stack, submission_id):
    url = stack.create_session()["checkout_url"].removeprefix("http://127.0.0.1:8000")
    form = {"number": VISA, "expiry": "12/30", "cvc": "123", "cardholder_name": "Ada Lovelace",
            "submission_id": submission_id, "csrf_token": _csrf(stack.http.get(url).get_data(as_text=True))}
    r = stack.http.post(url, data=form)
    assert _is_page(r, 400)
    assert VISA not in r.get_data(as_text=True)
    sid = url.split("/")[2].split("?")[0]
    assert stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth()).get_json()["attempts"] == 0


@pytest.mark.parametrize("form, basic", [
    ({"client_id": "\x00", "client_secret": "x"}, None), ({"client_id": "cli_\x00x", "client_secret": "x"}, None),
    ({}, ("\x00", "secret")), ({}, ("cli_x\x00", "\x00"))])
def test_token_requests_with_nul_in_the_client_id(stack, form, basic):
    headers = {}
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(basic).encode()).decode()
    r = stack.http.post("/oauth/token", data={"grant_type": "client_credentials", **form}, headers=headers)
    assert r.status_code == 401 and r.get_json() == {"error": "invalid_client"}


def _signed(stack, payload: bytes):
    signature = sign_payload(payload, stack.services.settings.stripe_webhook_secret, int(time.time()))
    return stack.http.post("/webhooks/stripe", data=payload,
                           headers={"Content-Type": "application/json", "Stripe-Signature": signature})


@pytest.mark.parametrize("payload, status", [
    (b'{"id": "evt_1", "type": "charge.dispute.created", "data": 5}', 200),
    (b'{"id": "evt_2", "type": "charge.dispute.created", "data": {"object": [1]}}', 200),
    (b'{"id": 7, "type": ["x"]}', 200),
    (b'{"id": "evt_\\u0000", "type": "charge.dispute.created"}', 400),
    (b'{"id": "evt_\\ud800", "type": "charge.refunded", "data": {"object": {"id": "ch_1"}}}', 400),
    (b'{"id": "evt_3", "type": "refund.failed", "data": {"object": {"id": "re_\\u0000", "status": "failed"}}}', 400),
    (b"[" * 5000 + b"]" * 5000, 400), (b'{"a":' * 5000 + b"1" + b"}" * 5000, 400)])
def test_odd_signed_webhook_bodies(stack, payload, status):
    r = _signed(stack, payload)
    assert r.status_code == status, r.get_json()
    if status == 400:
        assert r.get_json()["error"]["code"] == "invalid_payload"


def test_a_signed_dispute_with_odd_fields_for_a_real_payment(stack):
    _, pid = paid(stack)
    pi = payment(stack, pid)["gateway_reference"]
    obj = {"id": "dp_odd", "object": "dispute", "payment_intent": pi, "amount": 10**30, "currency": "not-a-code",
           "reason": "r" * 500, "status": ["needs_response"], "evidence_details": 5}
    r = signed_webhook(stack, {"id": "evt_odd", "type": "charge.dispute.created", "data": {"object": obj}})
    assert r.status_code == 200 and r.get_json()["result"] == "handled"
    d = stack.http.get(f"/v1/disputes/{payment(stack, pid)['dispute_id']}", headers=stack.auth()).get_json()
    assert (d["status"], d["reason"], d["amount"], d["currency"], d["evidence_due_by"]) == (
        "needs_response", "general", 2500, "USD", None)
    update = {**obj, "evidence_details": {"due_by": 1e300}, "amount": 1200, "status": "under_review"}
    r = signed_webhook(stack, {"id": "evt_odd2", "type": "charge.dispute.updated", "data": {"object": update}})
    assert r.status_code == 200
    d = stack.http.get(f"/v1/disputes/{d['dispute_id']}", headers=stack.auth()).get_json()
    assert (d["status"], d["amount"], d["evidence_due_by"]) == ("under_review", 1200, None)
