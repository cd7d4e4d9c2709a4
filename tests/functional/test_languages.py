"""The checkout page and the SMS in the customer's language (docs/api.md, "Languages"): the session's ``locale`` (best
shipped match), else ``Accept-Language``; ``<html lang>`` names the language served, Arabic is right to left with
left-to-right card fields, and digits typed in Arabic-Indic form pay. Real app, real SQLite/PostgreSQL and Redis."""

from __future__ import annotations

import html as htmllib
import re

import pytest

from payments.models import PaymentSession
from tests.functional.test_checkout_flow import DECLINE, VISA, _path, pay, view
from tests.functional.test_send_link import TO, configure_genesys, genesys  # noqa: F401 - genesys is a fixture

LANGUAGES = {
    # tag: (lang served, dir, card number label, empty-number field error, generic decline message, approved title)
    "en": ("en", "ltr", "Card number", "Enter your card number.",
           "Your card was declined. Please use another card or contact your card issuer.", "Payment approved"),
    "es": ("es", "ltr", "Número de tarjeta", "Introduzca el número de su tarjeta.",
           "Su tarjeta ha sido rechazada. Use otra tarjeta o póngase en contacto con el emisor de su tarjeta.",
           "Pago aprobado"),
    "fr": ("fr", "ltr", "Numéro de carte", "Saisissez votre numéro de carte.",
           "Votre carte a été refusée. Utilisez une autre carte ou contactez l'émetteur de votre carte.",
           "Paiement accepté"),
    "de": ("de", "ltr", "Kartennummer", "Geben Sie Ihre Kartennummer ein.",
           "Ihre Karte wurde abgelehnt. Bitte verwenden Sie eine andere Karte oder wenden Sie sich an Ihre Bank.",
           "Zahlung genehmigt"),
    "pt-BR": ("pt-BR", "ltr", "Número do cartão", "Informe o número do cartão.",
              "Seu cartão foi recusado. Use outro cartão ou entre em contato com o emissor do cartão.",
              "Pagamento aprovado"),
    "ar": ("ar", "rtl", "رقم البطاقة", "أدخل رقم بطاقتك.",
           "تم رفض بطاقتك. يُرجى استخدام بطاقة أخرى أو التواصل مع الجهة المُصدِرة لبطاقتك.", "تمت الموافقة على الدفع"),
}


def page(stack, url, **headers) -> tuple[int, str]:
    r = stack.http.get(_path(url), headers=headers)
    return r.status_code, htmllib.unescape(r.get_data(as_text=True))


def html_tag(text: str) -> str:
    return re.search(r"<html[^>]*>", text).group(0)


def input_tag(text: str, name: str) -> str:
    return re.search(rf'<input[^>]*name="{name}"[^>]*>', text).group(0)


@pytest.mark.parametrize("tag", list(LANGUAGES))
def test_the_page_in_each_language(stack, tag):
    lang, direction, label, field_error, decline, approved = LANGUAGES[tag]
    created = stack.create_session(locale=tag)
    status, text = page(stack, created["checkout_url"], **{"Accept-Language": "de" if tag != "de" else "fr"})
    assert status == 200
    assert html_tag(text) == f'<html lang="{lang}" dir="{direction}">'  # the session's locale beats the browser
    assert f">{label}</label>" in text
    for name in ("number", "expiry", "cvc"):  # card fields stay left to right, in every language
        assert 'dir="ltr"' in input_tag(text, name)
    assert 'dir="ltr"' not in input_tag(text, "cardholder_name")

    r = pay(stack, created["checkout_url"], number="")  # a field error, in the page's language
    assert r.status_code == 422
    answer = htmllib.unescape(r.get_data(as_text=True))
    assert field_error in answer and html_tag(answer) == f'<html lang="{lang}" dir="{direction}">'
    assert "Enter your card number." not in answer or tag == "en"

    r = pay(stack, created["checkout_url"], number=DECLINE)  # a decline, told in words (the form again)
    assert r.status_code == 200 and decline in htmllib.unescape(r.get_data(as_text=True))
    _, text = page(stack, created["checkout_url"])
    assert decline in text and "role=\"alert\"" in text

    assert pay(stack, created["checkout_url"], number=VISA).status_code == 303
    _, text = page(stack, created["checkout_url"])
    assert f">{approved}</h1>" in text and html_tag(text) == f'<html lang="{lang}" dir="{direction}">'


def test_fresh_forms_keep_their_language_in_one_process(stack):
    """A fresh form's inputs are rendered once per language and reused (app/checkout.py): pages in every language,
    twice over and interleaved in one process, each carry their own language's labels."""
    for _ in range(2):
        for tag, (lang, _direction, label, *_rest) in LANGUAGES.items():
            created = stack.create_session(locale=tag)
            status, text = page(stack, created["checkout_url"])
            assert status == 200 and f">{label}</label>" in text, tag
            others = [other[2] for other_tag, other in LANGUAGES.items() if other[2] != label]
            assert not any(f">{other}</label>" in text for other in others), tag


@pytest.mark.parametrize("tag, served", [("es-MX", "es"), ("pt", "pt-BR"), ("PT-pt", "pt-BR"), ("ar-EG", "ar"),
                                         ("zz", "en"), ("xx-YY", "en"), ("zh-Hant-TW", "en"), ("en-x-acme", "en")])
def test_a_valid_tag_uses_the_best_match(stack, tag, served):
    created = stack.create_session(locale=tag)
    _, text = page(stack, created["checkout_url"], **{"Accept-Language": "fr"})
    assert html_tag(text).startswith(f'<html lang="{served}" ')
    with stack.services.Session() as db:  # kept as given: money is formatted with it
        assert db.get(PaymentSession, created["session_id"]).locale == tag


@pytest.mark.parametrize("tag", ["e$", "e", "123", "en_US", "en-", "-en", "en--US", "english-language-tag-x" * 2,
                                 "en-US-toolongsubtag"])
def test_a_malformed_tag_is_invalid_locale(stack, tag):
    r = stack.http.post("/v1/payment-sessions", headers=stack.auth(), json={
        "conversation_id": "c-1", "customer_account_id": "A-1", "amount": 2500, "currency": "USD", "locale": tag})
    assert r.status_code == 400, r.get_json()
    assert r.get_json()["error"]["fields"] == {"locale": "invalid_locale"}


@pytest.mark.parametrize("header, served", [("de-CH, fr;q=0.8", "de"), ("zz, fr;q=0.5, es;q=0.7", "es"),
                                            ("pt-PT", "pt-BR"), ("ar;q=0, fr;q=0.1", "fr"), ("*", "en"),
                                            ("", "en"), ("ja, zh", "en")])
def test_without_a_locale_the_browser_decides(stack, header, served):
    created = stack.create_session()
    _, text = page(stack, created["checkout_url"], **{"Accept-Language": header})
    assert html_tag(text).startswith(f'<html lang="{served}" ')
    assert f">{LANGUAGES[served][2]}</label>" in text


def test_error_pages_follow_the_browser(stack):
    status, text = page(stack, "/checkout/ps_unknown?t=nope", **{"Accept-Language": "fr-CA"})
    assert status == 404 and html_tag(text) == '<html lang="fr" dir="ltr">'
    assert "Ce lien de paiement n'est pas valide" in text


def test_outcome_and_intent_words_are_translated(stack):
    created = stack.create_session(locale="de", intent="subscription", subscription={"interval": "week",
                                                                                     "interval_count": 2})
    _, text = page(stack, created["checkout_url"])
    assert "Abonnement" in text and "und danach alle 2 Wochen." in text
    assert "Ihre Karte wird für dieses Abonnement gespeichert." in text and "every" not in text
    hold = stack.create_session(locale="fr", intent="hold")
    _, text = page(stack, hold["checkout_url"])
    assert "Pré-autorisation" in text and "Autoriser 25,00" in text and "temporairement bloqué" in text
    r = stack.http.post(f"/v1/payment-sessions/{hold['session_id']}/cancel", headers=stack.auth())
    assert r.status_code == 200, r.get_json()
    _, text = page(stack, hold["checkout_url"])
    assert "Ce paiement a été annulé" in text


def test_attempts_left_are_counted_in_the_language(stack):
    created = stack.create_session(locale="ar", max_attempts=3)
    assert pay(stack, created["checkout_url"], number=DECLINE).status_code == 200
    _, text = page(stack, created["checkout_url"])
    assert "يمكنك المحاولة مرتين أخريين." in text  # Arabic's dual: two more tries
    es = stack.create_session(locale="es", max_attempts=2)
    assert pay(stack, es["checkout_url"], number=DECLINE).status_code == 200
    _, text = page(stack, es["checkout_url"])
    assert "Puede intentarlo una vez más." in text


def test_arabic_indic_digits_pay_on_the_page(stack):
    created = stack.create_session(locale="ar")
    r = pay(stack, created["checkout_url"], number="٤٢٤٢ ٤٢٤٢ ٤٢٤٢ ٤٢٤٢", expiry="١٢/۳۰", cvc="۱٢٣")
    assert r.status_code == 303, r.get_data(as_text=True)[:2000]
    v = view(stack, created["session_id"])
    assert v["status"] == "approved" and v["card"]["last4"] == "4242" and v["card"]["exp_year"] == 2030


def test_the_checkout_script_gets_its_messages_in_the_language(stack):
    created = stack.create_session(locale="pt-BR")
    _, text = page(stack, created["checkout_url"])
    assert '"numberRequired": "Informe o número do cartão."' in text
    assert '"amountLow": "O valor deve ser de pelo menos {low}."' in text
    assert 'data-pay-template="Pagar {amount}"' in text


def test_the_sms_is_in_the_sessions_language_with_a_duration(stack, genesys):  # noqa: F811 - fixture
    configure_genesys(stack, genesys)
    for tag, expected in [("es-MX", "válido durante 15 minutos"), ("de", "15 Minuten lang gültig"),
                          ("ar", "صالح لمدة 15 دقيقة"), (None, "valid for 15 minutes")]:
        created = stack.create_session(locale=tag, ttl_seconds=900)
        r = stack.http.post(f"/v1/payment-sessions/{created['session_id']}/send-link",
                            json={"to": TO, "messenger_type": "sms"}, headers=stack.auth())
        assert r.status_code == 200, r.get_json()
        text = genesys.bodies("POST")[-1]["textBody"]
        assert expected in text and created["checkout_url"] in text and "UTC" not in text
