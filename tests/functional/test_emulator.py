"""The Genesys emulator's callback receiver, test knobs and pages (Flask test client, plus one run as a
real process the way the e2e suite and ``paygate demo`` start it)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from urllib.parse import quote

import httpx
import pytest

from callbacks.signing import sign
from integrations.genesys.emulator import create_app
from tests import services

SECRET = "whsec_emulator_test_secret"
NOW = 1_795_000_000


class Clock:
    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def event(event_id="evt_1", type_="payment.approved", sequence=2, session_id="ps_1", **data) -> bytes:
    view = {"session_id": session_id, "status": "approved", "amount": 2500, "currency": "USD",
            "token": "tok_abc", "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2030},
            "message": "Payment approved."}
    view.update(data)
    body = {"id": event_id, "type": type_, "created_at": "2026-11-22T23:15:00Z", "sequence": sequence, "data": view}
    return json.dumps(body, separators=(",", ":")).encode()


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def emulator(clock, tmp_path):
    app = create_app([SECRET], record_path=tmp_path / "callbacks.jsonl", clock=clock)
    app.config.update(TESTING=True)
    return app


@pytest.fixture
def http(emulator):
    return emulator.test_client()


def post(http, body: bytes, *, secrets=(SECRET,), t=NOW, event_id=None, header=None):
    headers = {"Content-Type": "application/json",
               "Paygate-Event-Id": event_id or json.loads(body)["id"]}
    sig = header if header is not None else sign(body, list(secrets), t)
    if sig:
        headers["Paygate-Signature"] = sig
    return http.post("/webhooks/paygate", data=body, headers=headers)


def received(http, **filters):
    r = http.get("/api/received", query_string=filters)
    assert r.status_code == 200
    return r.get_json()


def test_valid_signature_is_recorded_as_verified(http, tmp_path):
    body = event()
    r = post(http, body)
    assert r.status_code == 200 and r.get_json()["outcome"] == "accepted"
    [item] = received(http)
    assert item["event_id"] == "evt_1" and item["type"] == "payment.approved"
    assert item["sequence"] == 2 and item["session_id"] == "ps_1"
    assert item["verified"] is True and item["outcome"] == "accepted" and item["duplicate"] is False
    assert item["received_at"] == "2026-11-18T11:06:40.000000Z"  # from the injected clock
    assert item["body"]["data"]["token"] == "tok_abc"
    lines = (tmp_path / "callbacks.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(body)]


def test_any_of_several_v1_signatures_verifies_during_rotation(http):
    assert post(http, event(), secrets=("whsec_new", SECRET)).status_code == 200
    assert received(http)[0]["verified"] is True


@pytest.mark.parametrize("kwargs, code", [
    ({"secrets": ("whsec_wrong",)}, "signature_mismatch"),
    ({"header": ""}, "signature_missing"),
    ({"header": "v1=abc"}, "signature_malformed"),
    ({"t": NOW - 301}, "signature_expired"),
])
def test_bad_signatures_are_rejected_with_400_and_recorded(http, kwargs, code):
    r = post(http, event(), **kwargs)
    assert r.status_code == 400 and r.get_json() == {"error": code}
    [item] = received(http)
    assert item["verified"] is False and item["outcome"] == "rejected" and item["error"] == code
    assert item["http_status"] == 400 and item["type"] == "payment.approved"


def test_tampered_body_is_rejected(http):
    body = event()
    header = sign(body, [SECRET], NOW)
    r = post(http, body.replace(b"2500", b"2501"), header=header)
    assert r.status_code == 400 and r.get_json()["error"] == "signature_mismatch"


def test_redelivery_is_a_duplicate_and_still_200(http):
    assert post(http, event("evt_a")).status_code == 200
    assert post(http, event("evt_b", sequence=3)).status_code == 200
    again = post(http, event("evt_a"), t=NOW + 5)
    assert again.status_code == 200 and again.get_json()["outcome"] == "duplicate"
    outcomes = [(i["event_id"], i["outcome"], i["duplicate"]) for i in received(http)]
    assert outcomes == [("evt_a", "accepted", False), ("evt_b", "accepted", False), ("evt_a", "duplicate", True)]
    assert [i["event_id"] for i in received(http, outcome="accepted")] == ["evt_a", "evt_b"]


def test_rejected_delivery_does_not_mark_the_event_as_seen(http):
    assert post(http, event(), secrets=("whsec_wrong",)).status_code == 400
    r = post(http, event())
    assert r.status_code == 200 and r.get_json()["outcome"] == "accepted"


def test_fail_next_answers_the_status_then_recovers(http):
    r = http.post("/api/behaviour", json={"fail_next": 2, "status": 503})
    assert r.status_code == 200 and r.get_json()["fail_next"] == 2
    assert post(http, event()).status_code == 503
    assert post(http, event()).status_code == 503
    third = post(http, event())
    assert third.status_code == 200 and third.get_json()["outcome"] == "accepted"  # failures were not "seen"
    assert [i["outcome"] for i in received(http)] == ["failed", "failed", "accepted"]
    assert [i["http_status"] for i in received(http)] == [503, 503, 200]


def test_delay_knob_holds_the_answer(http, monkeypatch):
    slept = []
    monkeypatch.setattr("integrations.genesys.emulator.webhooks.time.sleep", slept.append)
    assert http.post("/api/behaviour", json={"delay_seconds": 1.5}).get_json()["slow_next"] == 1
    assert post(http, event("evt_slow")).status_code == 200
    assert post(http, event("evt_fast")).status_code == 200
    assert slept == [1.5]


@pytest.mark.parametrize("payload, field", [({"fail_next": -1}, "fail_next"), ({"status": 42}, "status"),
                                            ({"delay_seconds": "soon"}, "delay_seconds")])
def test_behaviour_rejects_bad_values(http, payload, field):
    r = http.post("/api/behaviour", json=payload)
    assert r.status_code == 400 and r.get_json()["field"] == field


def test_secrets_can_be_replaced_at_run_time(http):
    assert post(http, event("evt_1"), secrets=("whsec_rotated",)).status_code == 400
    assert http.post("/api/secrets", json={"secrets": ["whsec_rotated"]}).status_code == 200
    assert post(http, event("evt_2"), secrets=("whsec_rotated",)).status_code == 200
    assert post(http, event("evt_3")).status_code == 400  # the old secret is no longer accepted
    assert http.post("/api/secrets", json={"secrets": "x"}).status_code == 400


def test_reset_forgets_records_ids_and_knobs(http):
    post(http, event())
    http.post("/api/behaviour", json={"fail_next": 5})
    assert http.post("/api/reset").status_code == 200
    assert received(http) == []
    r = post(http, event())
    assert r.status_code == 200 and r.get_json()["outcome"] == "accepted"


def test_received_page_shows_events_newest_first(http):
    post(http, event("evt_old", type_="payment.declined", sequence=1, status="pending", token=None, card=None))
    post(http, event("evt_new"))
    post(http, event("evt_bad"), secrets=("whsec_wrong",))
    r = http.get("/")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert '<meta http-equiv="refresh" content="2">' in html
    assert html.index("evt_bad") < html.index("evt_new") < html.index("evt_old")
    assert "payment.approved" in html and "payment.declined" in html
    assert "✓ verified" in html and "✗ signature_mismatch" in html
    assert "$25.00" in html and "tok_abc" in html and "visa ···· 4242" in html and "ps_1" in html


def test_amounts_use_the_currency_exponent(http):
    post(http, event("evt_jpy", amount=2500, currency="JPY"))
    post(http, event("evt_kwd", amount=2500, currency="KWD"))
    html = http.get("/").get_data(as_text=True)
    assert "¥2,500" in html and "KWD2.500" in html.replace("\xa0", "")


def test_empty_page_names_the_endpoint(http):
    assert "/webhooks/paygate" in http.get("/").get_data(as_text=True)


def test_embed_frames_the_checkout_url(http):
    url = "http://127.0.0.1:8000/checkout/ps_1?t=abc.def-ghi"
    for query in (f"url={url}", "url=" + quote(url, safe="")):  # pasted as is, or properly encoded
        r = http.get(f"/embed?{query}")
        assert r.status_code == 200
        html = r.get_data(as_text=True)
        assert f'<iframe src="{url}"' in html and 'allow="payment"' in html and 'width="420"' in html
        # the modal trusts the page's iframe messages only from the checkout page's own origin
        assert 'const PAYGATE_ORIGIN = "http://127.0.0.1:8000";' in html and "event.source !== frame.contentWindow" in html


def test_embed_refuses_non_http_urls(http):
    assert http.get("/embed?url=javascript:alert(1)").status_code == 400
    assert http.get("/embed").status_code == 400


def test_runs_as_a_process_with_the_cli_flags(tmp_path):
    port = services.free_port()
    record = tmp_path / "rec.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "integrations.genesys.emulator", "--host", "127.0.0.1", "--port", str(port),
                             "--signing-secret", "whsec_other", "--signing-secret", SECRET, "--record", str(record),
                             "--quiet"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        services.wait_for_port(port, timeout=15)
        body = event()
        r = httpx.post(f"http://127.0.0.1:{port}/webhooks/paygate", content=body,
                       headers={"Paygate-Signature": sign(body, [SECRET], int(time.time())),
                                "Paygate-Event-Id": "evt_1", "Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        items = httpx.get(f"http://127.0.0.1:{port}/api/received").json()
        assert [(i["event_id"], i["verified"]) for i in items] == [("evt_1", True)]
        assert record.read_text().count("\n") == 1
    finally:
        proc.terminate()
        proc.wait(10)
