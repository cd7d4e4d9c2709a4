"""Merchant identity (docs/api.md, "Merchant identity"): an API client's display name, support phone and accent
colour, set with ``paygate clients create/update`` and shown on the page, in the SMS and in the agent view."""

from __future__ import annotations

import html as html_lib
import json
import re

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from paygate.cli import main as cli
from payments.clients import CreatedClient, MerchantDirectory, clean_accent_color, contrast_ratio
from payments.models import ApiClient
from tests.fakes.genesys import GenesysEmulator
from tests.functional.test_checkout_flow import pay
from tests.functional.test_security import cli_env
from tests.functional.test_send_link import GC_ID, GC_SECRET, TO, configure_genesys, send


def run(stack, *args):
    return CliRunner().invoke(cli, list(args), env=cli_env(stack))


def _create(stack, *args) -> CreatedClient:
    out = run(stack, "clients", "create", *args)
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    return CreatedClient(data["client_id"], data["client_secret"], data["signing_secret"])


def _page(stack, created, **session) -> tuple[str, str]:
    """(checkout page HTML, checkout URL) of a new session of API client ``created``."""
    stack.token = stack.token_for(created)
    s = stack.create_session(**session)
    path = s["checkout_url"].replace("http://127.0.0.1:8000", "")
    r = stack.http.get(path)
    assert r.status_code == 200
    return r.get_data(as_text=True), s["checkout_url"]


def _title(html: str) -> str:
    return html_lib.unescape(re.search(r"<title>(.*?)</title>", html, re.S).group(1)).strip()


def _h1(html: str) -> str:
    inner = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S).group(1)
    return re.sub(r"[ \t\n]+", " ", html_lib.unescape(re.sub(r"<[^>]+>", " ", inner))).strip()


def test_migration_adds_the_identity_columns(stack):
    columns = {c["name"]: c for c in sa.inspect(stack.services.engine).get_columns("api_clients")}
    assert {"display_name", "support_phone", "accent_color"} <= set(columns)
    assert all(columns[name]["nullable"] for name in ("display_name", "support_phone", "accent_color"))


def test_create_with_identity_names_the_merchant_on_the_page(stack):
    created = _create(stack, "acme-prod", "--display-name", "  Acme   Mobile ", "--support-phone", "+1 (415) 555-0132",
                      "--accent-color", "#1A5FB4")
    listed = [json.loads(line) for line in run(stack, "clients", "list", "--json").output.splitlines()]
    (row,) = [c for c in listed if c["client_id"] == created.client_id]
    assert (row["name"], row["display_name"]) == ("acme-prod", "Acme Mobile")
    table = run(stack, "clients", "list").output
    assert any(line.startswith(created.client_id) and line.endswith("\tAcme Mobile") for line in table.splitlines())

    html, _ = _page(stack, created)
    assert _title(html) == "Pay Acme Mobile $25.00"
    assert _h1(html) == "Payment to Acme Mobile $25.00"
    # the support phone, stored E.164, shown readable with a tel: link
    assert re.search(r'<a href="tel:\+14155550132" dir="ltr">\+1 415-555-0132</a>', html)
    # the accent colour comes as a same-origin stylesheet: the CSP keeps no inline styles
    link = re.search(r'<link rel="stylesheet" href="(/theme/accent-1a5fb4\.css)">', html).group(1)
    css = stack.http.get(link)
    assert css.status_code == 200 and css.mimetype == "text/css"
    assert "--accent: #1a5fb4;" in css.get_data(as_text=True)
    # the same URL always holds the same colour: cached for a year; a 404 is not cached
    assert css.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    page = stack.http.get(_page(stack, created)[1].replace("http://127.0.0.1:8000", ""))
    csp = page.headers["Content-Security-Policy"]
    assert "style-src 'self'" in csp and "unsafe-inline" not in csp and "style=" not in html
    # a colour a merchant could not set is not served either
    missing = stack.http.get("/theme/accent-ffcc00.css")
    assert missing.status_code == 404 and missing.headers["Cache-Control"] == "no-store"
    assert stack.http.get("/theme/accent-zzzzzz.css").status_code == 404


def test_outcome_pages_name_the_merchant(stack):
    created = _create(stack, "acme", "--display-name", "Acme Mobile")
    _, url = _page(stack, created)
    assert pay(stack, url).status_code == 303
    html = stack.http.get(url.replace("http://127.0.0.1:8000", "")).get_data(as_text=True)
    assert _title(html) == "Payment approved · Acme Mobile"
    assert "Payment to Acme Mobile" in html


@pytest.mark.parametrize("locale, title, heading", [
    ("es", "Pagar 25,00\xa0US$ a Acme Mobile", "Pago a Acme Mobile 25,00\xa0US$"),
    ("fr", "Payer 25,00\xa0$US à Acme Mobile", "Paiement à Acme Mobile 25,00\xa0$US"),
    ("de", "25,00\xa0$ an Acme Mobile zahlen", "Zahlung an Acme Mobile 25,00\xa0$"),
    ("pt-BR", "Pagar US$\xa025,00 para Acme Mobile", "Pagamento para Acme Mobile US$\xa025,00"),
    ("ar", "ادفع \u2066\u200f25.00\xa0US$\u2069 إلى Acme Mobile", "دفعة إلى Acme Mobile \u2066\u200f25.00\xa0US$\u2069"),
])
def test_title_and_heading_in_the_sessions_language(stack, locale, title, heading):
    created = _create(stack, "acme", "--display-name", "Acme Mobile")
    html, _ = _page(stack, created, locale=locale)
    assert _title(html) == title
    assert _h1(html) == heading


def test_a_client_without_display_name_shows_its_name(stack):
    html, _ = _page(stack, stack.client)
    assert _title(html) == "Pay genesys $25.00" and "Payment to genesys" in _h1(html)
    assert "merchant-support" not in html and "/theme/" not in html  # nothing set, nothing shown


def test_the_directory_keeps_an_identity_for_its_ttl(stack):
    """A change made in the database reaches a process's MerchantDirectory once its entry is older than the TTL,
    not before (the timer is the directory's own, injected)."""
    created = _create(stack, "ttl-merchant")
    now = [1000.0]
    directory = MerchantDirectory(stack.services.Session, ttl_seconds=30, monotonic=lambda: now[0])
    assert directory.get(created.client_id).name == "ttl-merchant"
    with stack.services.Session.begin() as db:
        db.execute(sa.update(ApiClient).where(ApiClient.id == created.client_id).values(display_name="Renamed"))
    now[0] += 29.9
    assert directory.get(created.client_id).name == "ttl-merchant"
    now[0] += 0.2
    assert directory.get(created.client_id).name == "Renamed"
    assert directory.get("cli_nobody") is None


def test_update_changes_what_customers_see(stack):
    created = _create(stack, "acme")
    out = run(stack, "clients", "update", created.client_id, "--display-name", "Acme Mobile", "--support-phone",
              "+442079460958", "--accent-color", "#0B5CD5")
    assert out.exit_code == 0, out.output
    assert json.loads(out.output) == {"client_id": created.client_id, "name": "acme", "display_name": "Acme Mobile",
                                      "support_phone": "+442079460958", "accent_color": "#0b5cd5"}
    # empty values clear the optional fields; the display name goes back to the client's name
    out = run(stack, "clients", "update", created.client_id, "--support-phone", "", "--accent-color", "")
    assert out.exit_code == 0 and json.loads(out.output)["support_phone"] is None
    assert json.loads(out.output)["display_name"] == "Acme Mobile"
    html, _ = _page(stack, created)
    assert _title(html) == "Pay Acme Mobile $25.00" and "merchant-support" not in html


@pytest.mark.parametrize("option, value, code, extra", [
    ("--accent-color", "#ffcc00", "accent_color_low_contrast", "contrast ratio of 1.51:1"),
    ("--accent-color", "#777777", "accent_color_low_contrast", "4.47:1"),
    ("--accent-color", "blue", "invalid_accent_color", "#RRGGBB"),
    ("--support-phone", "4155550132", "invalid_support_phone", "country code"),
    ("--support-phone", "+1 555 0100", "invalid_support_phone", "not a valid phone number"),
    ("--display-name", "   ", "invalid_display_name", "1 to 100"),
    ("--display-name", "x" * 101, "invalid_display_name", "1 to 100"),
    ("--display-name", "Acme\u202eMobile", "invalid_display_name", "printable"),
])
def test_bad_identity_values_are_refused_before_anything_is_stored(stack, option, value, code, extra):
    before = run(stack, "clients", "list").output
    out = run(stack, "clients", "create", "acme", option, value)
    assert out.exit_code == 2 and code in out.output and extra in out.output and option in out.output, out.output
    assert run(stack, "clients", "list").output == before
    created = _create(stack, "acme2", "--display-name", "Acme Mobile")
    out = run(stack, "clients", "update", created.client_id, option, value)
    assert out.exit_code == 2 and code in out.output, out.output


def test_update_errors(stack):
    out = run(stack, "clients", "update", "cli_nope", "--display-name", "X")
    assert out.exit_code == 1 and "no client cli_nope" in out.output
    out = run(stack, "clients", "update", stack.client.client_id)
    assert out.exit_code == 2 and "nothing to change" in out.output
    for command in (["clients", "create", "--help"], ["clients", "update", "--help"]):
        text = run(stack, *command).output
        for option in ("--display-name", "--support-phone", "--accent-color"):
            assert re.search(re.escape(option) + r"\s+\S+\s+\w", text), (command, option, text)


def test_contrast_follows_wcag():
    assert round(contrast_ratio("#ffffff", "#000000"), 2) == 21.0
    assert round(contrast_ratio("#ffffff", "#0b5cd5"), 2) == 5.99
    assert clean_accent_color("#767676") == "#767676"  # 4.54:1, the lightest grey that passes


@pytest.fixture
def genesys(state_dir):
    with GenesysEmulator({GC_ID: GC_SECRET}, state_dir) as emulator:
        yield emulator


@pytest.mark.parametrize("locale, expected", [
    ("en", "Acme Mobile: here is your secure payment link for $25.00, valid for 15 minutes: "),
    ("es", "Acme Mobile: este es su enlace de pago seguro por 25,00\xa0US$, válido durante 15 minutos: "),
])
def test_the_sms_names_the_merchant(stack, genesys, locale, expected):
    created = _create(stack, "acme", "--display-name", "Acme Mobile")
    configure_genesys(stack, genesys, client_id=created.client_id)
    stack.token = stack.token_for(created)
    s = stack.create_session(locale=locale, ttl_seconds=900)
    r = send(stack, s["session_id"], {"to": TO, "messenger_type": "sms"})
    assert r.status_code == 200, r.get_json()
    (body,) = genesys.bodies("POST")
    assert body["textBody"].startswith(expected + s["checkout_url"]), body["textBody"]
