"""The agent view in words (docs/api.md, "Agent view"): status and decline reason in the agent's language, the
attempts as a timeline with UTC times, the link's expiry, a hold's capture deadline and refunds, the merchant's
display name — and never more of the card than brand and last four digits."""

from __future__ import annotations

import html as html_lib
import re

from tests.functional.money import post
from tests.functional.test_checkout_flow import pay

INSUFFICIENT = "4000000000009995"
VISA = "4242424242424242"


def _path(url: str) -> str:
    return url.replace("http://127.0.0.1:8000", "")


def _text(html: str, element_id: str) -> str:
    match = re.search(rf'id="{element_id}"[^>]*>(.*?)</(?:dd|p|ol|ul|h1)>', html, re.S)
    assert match, f"no #{element_id}"
    return re.sub(r"[ \t\n]+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", match.group(1)))).strip()


def _timeline(html: str) -> list[str]:
    items = re.findall(r'<li class="agent-event[^"]*"[^>]*>(.*?)</li>', html, re.S)
    return [re.sub(r"[ \t\n]+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", i))).strip() for i in items]


def _named_client(stack, display_name="Acme Mobile"):
    from payments.clients import update_merchant_identity

    with stack.services.Session.begin() as db:
        update_merchant_identity(db, stack.client.client_id, display_name=display_name)
    stack.services.merchants.forget(stack.client.client_id)


def test_a_decline_then_an_approval_in_words_and_in_order(stack):
    _named_client(stack)
    s = stack.create_session(ttl_seconds=900)
    agent = _path(s["agent_url"])
    html = stack.http.get(agent, headers={"Accept-Language": "en-GB,en;q=0.9"}).get_data(as_text=True)
    assert _text(html, "agent-status") == "Waiting for the customer to enter a card"
    assert 'data-status="pending"' in html and _text(html, "agent-merchant") == "Acme Mobile"
    assert _text(html, "agent-expires") == "Nov 23, 12:15 UTC" and 'datetime="2026-11-23T12:15:00Z"' in html
    assert "agent-timeline" not in html  # nothing tried yet

    assert pay(stack, s["checkout_url"], number=INSUFFICIENT).status_code == 200
    stack.clock.advance(65)
    html = stack.http.get(agent).get_data(as_text=True)
    assert _text(html, "agent-decline") == "Not enough funds on the card"
    assert _text(html, "agent-attempts") == "1 of 3"
    assert _timeline(html) == ["Nov 23, 12:00 UTC Declined Not enough funds on the card "
                               "Attempt 1 · on the payment page · Visa ending 9995"]

    assert pay(stack, s["checkout_url"], number=VISA).status_code == 303
    html = stack.http.get(agent).get_data(as_text=True)
    assert _text(html, "agent-status") == "Approved" and 'data-status="approved"' in html
    assert _text(html, "agent-card") == "Visa ending 4242" and "agent-decline" not in html
    assert "agent-expires" not in html  # paid: the link's expiry no longer matters
    assert _timeline(html) == [
        "Nov 23, 12:00 UTC Declined Not enough funds on the card Attempt 1 · on the payment page · Visa ending 9995",
        "Nov 23, 12:01 UTC Approved Attempt 2 · on the payment page · Visa ending 4242"]
    assert "Times are in UTC." in html
    # never more of the card than brand and last four, in the page or in status.json
    status_url = re.search(r'/agent/[^"]+/status\.json[^"]*', html) or None
    for number in (INSUFFICIENT, VISA):
        assert number[:12] not in re.sub(r"\D", "", html) and number[:6] not in html
    assert "123" not in re.sub(r"<[^>]+>", "", html).replace("12:", "")  # the CVC the test typed
    assert status_url is None  # a finished session is not polled


def test_the_agents_language_from_the_browser_or_the_query(stack):
    _named_client(stack)
    s = stack.create_session()
    pay(stack, s["checkout_url"], number=INSUFFICIENT)
    agent = _path(s["agent_url"])
    es = stack.http.get(agent, headers={"Accept-Language": "es-MX,es;q=0.9,en;q=0.5"}).get_data(as_text=True)
    assert '<html lang="es"' in es
    assert _text(es, "agent-status") == "Esperando a que el cliente ingrese una tarjeta"
    assert _text(es, "agent-decline") == "Fondos insuficientes en la tarjeta"
    assert _timeline(es)[0].startswith("23 nov, 12:00 UTC Rechazado Fondos insuficientes en la tarjeta Intento 1")
    assert "Cancelar el pago" in es
    # ?locale= wins over the browser, and the links of the page (status.json, actions) keep it
    de = stack.http.get(agent + "&locale=de", headers={"Accept-Language": "es"}).get_data(as_text=True)
    assert '<html lang="de"' in de and _text(de, "agent-decline") == "Nicht genug Deckung auf der Karte"
    status_url = html_lib.unescape(re.search(r'data-status-url="([^"]+)"', de).group(1))
    assert "locale=de" in status_url
    state = stack.http.get(status_url, headers={"Accept-Language": "es"}).get_json()
    assert state["status"] == "pending" and state["status_text"] == "Warten, bis der Kunde eine Karte eingibt"
    assert state["decline_code"] == "insufficient_funds" and state["decline_text"] == "Nicht genug Deckung auf der Karte"
    assert state["merchant_name"] == "Acme Mobile" and state["expires_at"] == s["expires_at"]
    (attempt,) = state["timeline"]
    assert attempt == {"number": 1, "at": "2026-11-23T12:00:00Z", "at_text": "23. Nov., 12:00 UTC",
                       "outcome": "declined", "outcome_text": "Abgelehnt", "decline_code": "insufficient_funds",
                       "decline_text": "Nicht genug Deckung auf der Karte", "card_text": "Visa mit Endziffern 9995",
                       "via": "auf der Zahlungsseite"}
    ar = stack.http.get(agent + "&locale=ar").get_data(as_text=True)
    assert '<html lang="ar" dir="rtl"' in ar and "الرصيد غير كافٍ في البطاقة" in ar


def test_a_hold_shows_its_capture_deadline_then_the_refunds(stack):
    s = stack.create_session(intent="hold")
    r = stack.http.post(f"/v1/payment-sessions/{s['session_id']}/card", headers=stack.auth(),
                        json={"number": VISA, "exp_month": "12", "exp_year": "30", "cvc": "123"})
    assert r.status_code == 200 and r.get_json()["outcome"] == "approved", r.get_json()
    pid = stack.http.get(f"/v1/payment-sessions/{s['session_id']}", headers=stack.auth()).get_json()["payment_id"]
    hold = stack.http.get(f"/v1/payments/{pid}", headers=stack.auth()).get_json()
    agent = _path(s["agent_url"])
    html = stack.http.get(agent).get_data(as_text=True)
    assert _text(html, "agent-payment") == "Authorized, not captured yet"
    assert f'datetime="{hold["capture_before"]}"' in html and _text(html, "agent-capture-before").endswith(" UTC")
    assert _timeline(html)[0].endswith("Attempt 1 · by phone keypad · Visa ending 4242")

    assert post(stack, f"/v1/payments/{pid}/capture").status_code == 200
    r = post(stack, "/v1/refunds", {"payment_id": pid, "disposition_code": "REFUND_PART", "amount": 1000})
    assert r.status_code in (200, 201), r.get_json()
    html = stack.http.get(agent).get_data(as_text=True)
    assert "agent-capture-before" not in html
    assert _text(html, "agent-payment") == "Partly refunded"
    assert _text(html, "agent-refunds").startswith("$10.00: Refunded (Nov 23, 12:00 UTC)")
    state = stack.http.get(agent.replace(f"/agent/{s['session_id']}", f"/agent/{s['session_id']}/status.json"))
    refund = state.get_json()["payment"]["refunds"][0]
    assert (refund["status"], refund["amount"], refund["text"]) == ("succeeded", 1000, "$10.00: Refunded")
