"""The payments report (docs/api.md, "Reports"): GET /v1/reports/payments.csv and `paygate report payments`."""

from __future__ import annotations

import csv
import io
import itertools
import os

from click.testing import CliRunner

from paygate import cli as paygate_cli
from payments.reports import COLUMNS, PaymentReport, escape_cell
from tests.functional.money import VISA, paid, payment, post
from tests.functional.test_checkout_flow import pay

URL = "/v1/reports/payments.csv"
_reports = itertools.count()


def export(stack, token=None, **params):
    r = stack.http.get(URL, query_string=params, headers=stack.auth(token))
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "text/csv" and r.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert r.headers["Content-Disposition"].startswith("attachment; filename=")
    return r.get_data(as_text=True)


def rows_of(text: str) -> list[dict]:
    assert text.startswith(",".join(COLUMNS) + "\r\n")
    return list(csv.DictReader(io.StringIO(text, newline="")))


def keep_for_the_pci_scan(stack, text: str) -> None:
    """Reports written under the test state directory are read by the final card-data scan
    (tests/test_zz_pci_scan.py)."""
    folder = stack.services.settings.instance_path.parent / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    # named by pid too: pytest-xdist workers share the folder, and a shared name would overwrite what the scan reads
    (folder / f"payments-{os.getpid()}-{next(_reports)}.csv").write_text(text, encoding="utf-8")


def cli_env(stack, monkeypatch):
    settings = stack.services.settings
    for name, value in {"PAYGATE_ENV": "test", "PAYGATE_DATABASE_URL": settings.database_url,
                        "PAYGATE_REDIS_URL": settings.redis_url,
                        "PAYGATE_INSTANCE_PATH": str(settings.instance_path)}.items():
        monkeypatch.setenv(name, value)


def paid_by(stack, token) -> str:
    """A voice payment of another API client (``token``); returns its payment id."""
    r = stack.http.post("/v1/payment-sessions", headers=stack.auth(token), json={
        "conversation_id": "conv-other", "customer_account_id": "OTHER-1", "amount": 700, "currency": "USD"})
    sid = r.get_json()["session_id"]
    r = stack.http.post(f"/v1/payment-sessions/{sid}/card", headers=stack.auth(token),
                        json={"number": VISA, "exp_month": "12", "exp_year": "30", "cvc": "123"})
    assert r.get_json()["outcome"] == "approved", r.get_json()
    return stack.http.get(f"/v1/payment-sessions/{sid}", headers=stack.auth(token)).get_json()["payment_id"]


def test_one_row_per_payment_with_the_documented_columns(stack):
    sid, pid = paid(stack, VISA, intent="topup", channel="voice", reference="INV-9")   # DTMF, sandbox → MOTO
    created = stack.create_session(amount=1999, currency="JPY", reference="INV-10")
    pay(stack, created["checkout_url"], number="5555 5555 5555 4444")
    r = post(stack, "/v1/refunds", {"payment_id": pid, "amount": 500, "disposition_code": "REFUND_PARTIAL"},
             key="re-1")
    assert r.status_code in (200, 201), r.get_json()
    mit = post(stack, "/v1/payments", {"token": payment(stack, pid)["token"], "amount": 1250, "currency": "KWD",
                                       "customer_account_id": "ACME-1"}, key="mit-1")
    assert mit.status_code == 201, mit.get_json()
    text = export(stack)
    keep_for_the_pci_scan(stack, text)
    rows = rows_of(text)
    assert len(rows) == 3 and list(rows[0]) == list(COLUMNS)
    by_id = {row["payment_id"]: row for row in rows}
    voice = by_id[pid]
    view = payment(stack, pid)
    assert voice == {
        "payment_id": pid, "session_id": sid, "subscription_id": "", "status": view["status"],
        "intent": "topup", "initiator": "customer", "entry_mode": "dtmf", "moto": "true", "amount": "2500",
        "amount_captured": "2500", "amount_refunded": "500", "currency": "USD", "amount_decimal": "25.00",
        "amount_captured_decimal": "25.00", "amount_refunded_decimal": "5.00", "card_brand": "visa",
        "card_last4": "4242", "decline_code": "", "conversation_id": "conv-1", "customer_account_id": "ACME-1",
        "reference": "INV-9", "gateway": "sandbox", "gateway_reference": view["gateway_reference"],
        "created_at": view["created_at"], "updated_at": view["updated_at"]}
    page = by_id[payment(stack, stack.http.get(f"/v1/payment-sessions/{created['session_id']}",
                                               headers=stack.auth()).get_json()["payment_id"])["payment_id"]]
    assert (page["entry_mode"], page["moto"], page["amount"], page["amount_decimal"], page["card_brand"]) == (
        "page", "false", "1999", "1999", "mastercard")
    stored = by_id[mit.get_json()["payment_id"]]
    assert (stored["initiator"], stored["entry_mode"], stored["session_id"], stored["amount_decimal"]) == (
        "merchant", "stored", "", "1.250")
    assert "4242424242424242" not in text and "5555555555554444" not in text


def test_created_range_is_after_inclusive_before_exclusive(stack):
    _, first = paid(stack)                                        # 2026-11-23T12:00:00Z
    stack.clock.advance(3600)
    _, second = paid(stack)                                       # 13:00:00
    stack.clock.advance(3600)
    _, third = paid(stack)                                        # 14:00:00
    ids = lambda **q: [row["payment_id"] for row in rows_of(export(stack, **q))]  # noqa: E731
    assert ids() == [first, second, third]                        # oldest first
    assert ids(created_after="2026-11-23T13:00:00Z") == [second, third]
    assert ids(created_before="2026-11-23T13:00:00Z") == [first]
    assert ids(created_after="2026-11-23T12:00:00Z", created_before="2026-11-23T14:00:00Z") == [first, second]
    assert ids(created_after="2026-11-23T08:00:00-05:00", created_before="2026-11-23T09:00:00-05:00") == [
        second]
    assert ids(created_after="2026-11-24") == []
    r = stack.http.get(URL, query_string={"created_after": "yesterday", "created_before": "2026-13-01"},
                       headers=stack.auth())
    assert r.status_code == 400 and r.get_json()["error"]["fields"] == {
        "created_after": "invalid_datetime", "created_before": "invalid_datetime"}
    assert stack.http.get(URL).status_code == 401


def test_cells_that_a_spreadsheet_would_run_are_escaped(stack):
    hostile = {"reference": '=HYPERLINK("http://x.example","go")', "customer_account_id": "@SUM(A1:A9)",
               "conversation_id": "-2+3+cmd|' /C calc'!A0"}
    _, pid = paid(stack, **hostile)
    _, plus = paid(stack, reference="+15551234567", customer_account_id="\tTAB", conversation_id="\rCR")
    _, plain = paid(stack, reference="a=b", customer_account_id="ACME, Inc.", conversation_id='say "hi"')
    text = export(stack)
    keep_for_the_pci_scan(stack, text)
    by_id = {row["payment_id"]: row for row in rows_of(text)}
    assert by_id[pid]["reference"] == "'" + hostile["reference"]
    assert by_id[pid]["customer_account_id"] == "'@SUM(A1:A9)"
    assert by_id[pid]["conversation_id"] == "'" + hostile["conversation_id"]
    assert (by_id[plus]["reference"], by_id[plus]["customer_account_id"], by_id[plus]["conversation_id"]) == (
        "'+15551234567", "'\tTAB", "'\rCR")
    assert (by_id[plain]["reference"], by_id[plain]["customer_account_id"], by_id[plain]["conversation_id"]) == (
        "a=b", "ACME, Inc.", 'say "hi"')                          # only the first character matters; quoting works
    for row in by_id.values():
        for name, value in row.items():
            assert not value.startswith(("=", "+", "-", "@", "\t", "\r")), (name, value)
    assert escape_cell(None) == "" and escape_cell(-5) == -5 and escape_cell("=1") == "'=1"


def test_only_the_calling_clients_payments(stack):
    _, mine = paid(stack)
    other = stack.new_client(name="other-center")
    token = stack.token_for(other)
    theirs = paid_by(stack, token)
    assert [row["payment_id"] for row in rows_of(export(stack))] == [mine]
    assert [row["payment_id"] for row in rows_of(export(stack, token=token))] == [theirs]


def test_a_days_top_ups_reconcile(stack):
    """The day's top-ups from the report agree with the payments list and with what was approved: one row per
    approved top-up, declines leave no payment, other intents and other days are apart."""
    approved = []
    for n, amount in enumerate((500, 1000, 2500, 750)):
        sid, pid = paid(stack, intent="topup", amount=amount, customer_account_id=f"PREPAID-{n}", channel="voice")
        approved.append((pid, amount))
        stack.clock.advance(1800)
    declined = stack.create_session(intent="topup", amount=4000, customer_account_id="PREPAID-9")
    r = stack.http.post(f"/v1/payment-sessions/{declined['session_id']}/card", headers=stack.auth(),
                        json={"number": "4000000000009995", "exp_month": "12", "exp_year": "30", "cvc": "123"})
    assert r.get_json()["outcome"] == "declined"
    paid(stack, intent="payment", amount=9900)                     # not a top-up
    stack.clock.advance(86400)
    paid(stack, intent="topup", amount=100)                        # the next day
    day = {"created_after": "2026-11-23", "created_before": "2026-11-24"}
    rows = rows_of(export(stack, **day))
    topups = [row for row in rows if row["intent"] == "topup"]
    assert sorted((row["payment_id"], int(row["amount_captured"])) for row in topups) == sorted(approved)
    assert sum(int(row["amount_captured"]) for row in topups) == 4750
    assert {row["status"] for row in topups} == {"captured"} and {row["currency"] for row in topups} == {"USD"}
    listed = stack.http.get("/v1/payments", query_string={"intent": "topup", "limit": 100,
                                                           "created_after": "2026-11-23T00:00:00Z",
                                                           "created_before": "2026-11-24T00:00:00Z"},
                            headers=stack.auth()).get_json()["data"]
    assert {p["payment_id"] for p in listed} == {row["payment_id"] for row in topups}


def test_pages_cover_every_payment_once_even_within_one_second(stack):
    made = [paid(stack)[1] for _ in range(7)]                      # the FrozenClock: one created_at for all
    for size in (1, 2, 3, 7, 500):
        report = PaymentReport(stack.services.Session, stack.client.client_id, page_size=size)
        assert sorted(p.id for p in report.payments()) == sorted(made)
        assert report.count() == 7
    lines = PaymentReport(stack.services.Session, stack.client.client_id, page_size=2).lines()
    assert next(lines) == ",".join(COLUMNS) + "\r\n"               # a generator: the header before any page
    assert len(list(lines)) == 7


def test_the_cli_writes_the_same_csv(stack, monkeypatch, tmp_path):
    paid(stack, reference="=1+1")
    stack.clock.advance(60)
    paid(stack, intent="topup")
    stack.clock.advance(60)
    other_client_payment = paid_by(stack, stack.token_for(stack.new_client(name="other")))
    api = export(stack, created_after="2026-11-23T00:00:00Z", created_before="2026-11-24T00:00:00Z")
    cli_env(stack, monkeypatch)
    runner = CliRunner()
    out = runner.invoke(paygate_cli.main, ["report", "payments", "--since", "2026-11-23T00:00:00Z",
                                           "--until", "2026-11-24", "--client", stack.client.client_id])
    assert out.exit_code == 0, out.output
    assert out.stdout_bytes == api.encode("utf-8") and len(rows_of(api)) == 2  # byte for byte, CRLF included
    # to a file, with a progress bar on stderr once the export is large
    monkeypatch.setattr(paygate_cli, "REPORT_PROGRESS_MIN_ROWS", 2)
    target = tmp_path / "day.csv"
    out = runner.invoke(paygate_cli.main, ["report", "payments", "--since", "2026-11-23", "--until", "2026-11-24",
                                           "--client", stack.client.client_id, "--output", str(target)])
    assert out.exit_code == 0, out.output
    assert target.read_bytes() == api.encode("utf-8")
    assert out.stdout_bytes == b"" and "exporting payments" in out.stderr and "2 payments written to" in out.stderr
    # every client's payments without --client; an unknown client or a bad date is an error
    everything = runner.invoke(paygate_cli.main, ["report", "payments"])
    text = everything.stdout_bytes.decode("utf-8")
    assert everything.exit_code == 0 and other_client_payment in text and len(rows_of(text)) == 3
    keep_for_the_pci_scan(stack, text)
    unknown = runner.invoke(paygate_cli.main, ["report", "payments", "--client", "cli_nobody"])
    assert unknown.exit_code != 0 and "no client cli_nobody" in unknown.output
    bad = runner.invoke(paygate_cli.main, ["report", "payments", "--since", "last tuesday"])
    assert bad.exit_code == 2 and "not an RFC 3339" in bad.output
