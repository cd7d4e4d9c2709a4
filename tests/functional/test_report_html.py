"""The operator report (docs/operations.md, "The operator report"): `paygate report html` over a realistic mix of
card submissions, refunds and a dispute, on both engines; and the pure aggregation of payments/operator_report.py."""

from __future__ import annotations

import itertools
import re
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from paygate import cli as paygate_cli
from payments.models import PaymentAttempt
from payments.operator_report import AttemptRow, DisputeRow, RefundRow, choose_bucket, percentile, summarize
from tests.functional.money import DISPUTED, REFUND_FAILS, VISA, advance, deliver_sandbox_webhooks, paid
from tests.functional.test_refunds import refund
from tests.functional.test_reports import cli_env
from tests.pci_scan import TEST_PANS

_reports = itertools.count()
LATENCY_MS = 20
DECLINED, INSUFFICIENT, RADAR_BLOCK = "4000000000000002", "4000000000009995", "4100000000000019"


def card(stack, sid, number):
    r = stack.http.post(f"/v1/payment-sessions/{sid}/card", headers=stack.auth(),
                        json={"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123"})
    assert r.status_code == 200, r.get_json()
    return r.get_json()["outcome"]


def report_path(stack):
    """Under the test state directory, so the final card-data scan (tests/test_zz_pci_scan.py) reads it too."""
    folder = stack.services.settings.instance_path.parent / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"operator-{next(_reports)}.html"


def run(stack, monkeypatch, *args):
    cli_env(stack, monkeypatch)
    return CliRunner().invoke(paygate_cli.main, ["report", "html", *args])


def figure(html: str, name: str) -> str:
    found = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert found, name
    return found.group(1)


def rows(html: str, table_id: str) -> dict[str, str]:
    table = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.DOTALL)
    assert table, table_id
    cells = re.findall(r'<tr><th scope="row">(?:<code>)?([^<]*)(?:</code>)?</th><td class="n">([^<]*)</td></tr>',
                       table.group(1))
    return dict(cells)


def assert_self_contained(html: str) -> None:
    assert html.startswith("<!DOCTYPE html>")
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)"', html)
    assert csp and "default-src 'none'" in csp.group(1)
    assert re.search(r"(?i)<(script|link|iframe|img|object|embed|audio|video|source)\b", html) is None
    assert re.search(r"""(?i)\b(src|href|action|srcset)\s*=\s*["']?\s*(https?:)?//""", html) is None
    assert re.search(r"""(?i)(url\(\s*["']?(?!#)|@import)""", html) is None  # url(#clip) points inside the page
    assert "<!DOCTYPE svg" not in html and "<?xml" not in html


def assert_no_card_data(html: str) -> None:
    for pan in TEST_PANS:
        assert pan not in html
    assert "tok_" not in html and "fp_" not in html


def make_history(stack):
    """Three business hours from 12:00 UTC: 4 approved, 2 declines, a pre-screen block (a retry in the same
    session: ``session_attempts`` over the tiny threshold), a Radar block, 2 refunds (one fails later and goes to
    review) and a dispute."""
    paid(stack, VISA)
    _, refunded = paid(stack, VISA, conversation_id="conv-2")
    assert refund(stack, refunded).get_json()["status"] == "succeeded"
    assert card(stack, stack.create_session(conversation_id="conv-3")["session_id"], DECLINED) == "declined"
    advance(stack, 3600)
    retried = stack.create_session(conversation_id="conv-4", customer_account_id="ACME-4")["session_id"]
    assert card(stack, retried, INSUFFICIENT) == "declined"
    assert card(stack, retried, VISA) == "requires_agent"  # fraud_prescreen
    assert card(stack, stack.create_session(conversation_id="conv-5")["session_id"], RADAR_BLOCK) == "requires_agent"
    advance(stack, 3600)
    _, fails = paid(stack, REFUND_FAILS, conversation_id="conv-6")
    assert refund(stack, fails).get_json()["status"] == "succeeded"
    assert deliver_sandbox_webhooks(stack) == 1  # the refund fails after the fact: manual review
    paid(stack, DISPUTED, conversation_id="conv-7")
    advance(stack, 5)
    assert deliver_sandbox_webhooks(stack) == 1  # the dispute


@pytest.fixture
def history(stack_factory):
    stack = stack_factory(FRAUD_THRESHOLD="0.05", SANDBOX_LATENCY_MS=str(LATENCY_MS))
    make_history(stack)
    return stack


def test_the_report_shows_the_runs_figures_in_one_offline_file(history, monkeypatch):
    stack = history
    with stack.services.Session() as db:
        latencies = {a.decline_code: a.gateway_latency_ms for a in db.scalars(select(PaymentAttempt))}
    assert latencies.pop("fraud_prescreen") is None  # never reached the gateway
    assert all(v >= LATENCY_MS for v in latencies.values()) and len(latencies) >= 3

    path = report_path(stack)
    out = run(stack, monkeypatch, "--since", "2026-11-23T12:00:00Z", "--until", "2026-11-23T15:00:00Z",
              "--output", str(path))
    assert out.exit_code == 0, out.output
    assert f"report of 8 card submissions, 2 refunds and 1 disputes written to {path}" in out.output
    html = path.read_text(encoding="utf-8")
    assert_self_contained(html)
    assert_no_card_data(html)

    assert figure(html, "approval_rate") == "50.0 %"  # 4 approved of 8 ended
    assert (figure(html, "attempts"), figure(html, "approved"), figure(html, "declined")) == ("8", "4", "2")
    assert (figure(html, "fraud_blocks"), figure(html, "breaker_blocks"), figure(html, "failed")) == ("2", "0", "0")
    assert int(figure(html, "latency_p50").removesuffix(" ms")) >= LATENCY_MS
    assert int(figure(html, "latency_p99").removesuffix(" ms")) >= int(figure(html, "latency_p50").removesuffix(" ms"))
    assert rows(html, "declines-table") == {"generic_decline": "1", "insufficient_funds": "1"}
    assert rows(html, "fraud-table") == {"session_attempts": "1", "gateway:fraudulent": "1"}
    assert rows(html, "refunds-table") == {"succeeded": "1", "pending": "0", "failed": "1",
                                           "manual review required": "1", "manual review resolved": "0"}
    assert rows(html, "refund-failures-table") == {"expired_or_canceled_card": "1"}
    assert (figure(html, "refunds_failed"), figure(html, "manual_review"), figure(html, "disputes")) == ("1", "1", "1")
    assert rows(html, "disputes-table") == {"needs_response": "1"}
    assert rows(html, "dispute-reasons-table") == {"fraudulent": "1"}
    assert "USD 25.00" in html  # the disputed and refunded amounts
    # the charts: one inline SVG each (approval, declines, fraud, refunds, refund failures, disputes, latency)
    labels = re.findall(r'<svg role="img" aria-label="([^"]*)"', html)
    assert labels == ["Approval rate over time", "Declines by code", "Fraud blocks by rule",
                      "Refunds by status and manual review", "Refund failures by code", "Disputes by status",
                      "Gateway latency p50 and p99 over time"]
    # the chart text is SVG text, from the data: the decline codes are on the bars' axis
    declines_svg = html.split('aria-label="Declines by code"')[1].split("</svg>")[0]
    assert "insufficient_funds" in declines_svg and "generic_decline" in declines_svg
    # three hourly buckets of the approval table: 12:00 (2 of 3), 13:00 (0 of 3), 14:00 (2 of 2)
    assert re.findall(r"<th scope=\"row\">11-23 (\d\d):00</th><td class=\"n\">(\d+)</td><td class=\"n\">(\d+)</td>",
                      html) == [("12", "3", "2"), ("13", "3", "0"), ("14", "2", "2")]


def test_the_period_and_the_client_limit_the_figures(history, monkeypatch):
    stack = history
    path = report_path(stack)
    out = run(stack, monkeypatch, "--since", "2026-11-23T13:00:00Z", "--until", "2026-11-23T14:00:00Z",
              "-o", str(path))
    assert out.exit_code == 0, out.output
    html = path.read_text(encoding="utf-8")
    assert (figure(html, "attempts"), figure(html, "approval_rate"), figure(html, "refunds")) == ("3", "0.0 %", "0")
    assert rows(html, "fraud-table") == {"session_attempts": "1", "gateway:fraudulent": "1"}
    assert "No disputes in this period." in html and "No refunds in this period." in html

    other = stack.new_client(name="other")
    out = run(stack, monkeypatch, "--since", "2026-11-23", "--until", "2026-11-24", "--client", other.client_id)
    assert out.exit_code == 0, out.output
    html = out.output
    assert_self_contained(html)
    assert (figure(html, "attempts"), figure(html, "approval_rate")) == ("0", "–")
    assert "No card submission ended in this period." in html and "<svg" not in html
    mine = run(stack, monkeypatch, "--since", "2026-11-23", "--until", "2026-11-24", "--client", stack.client.client_id,
               "--bucket", "day")
    assert mine.exit_code == 0 and figure(mine.output, "attempts") == "8" and ">2026-11-23</th>" in mine.output
    report_path(stack).write_text(mine.output, encoding="utf-8")

    assert run(stack, monkeypatch, "--since", "2026-11-24", "--until", "2026-11-23").exit_code != 0
    unknown = run(stack, monkeypatch, "--client", "cli_nobody")
    assert unknown.exit_code != 0 and "no client cli_nobody" in unknown.output
    assert run(stack, monkeypatch, "--bucket", "month").exit_code != 0


T0 = datetime(2026, 11, 23, tzinfo=timezone.utc)


def test_summarize_counts_ended_attempts_and_ignores_rows_outside_the_period():
    attempts = [AttemptRow(T0, "approved", gateway_latency_ms=100),
                AttemptRow(T0 + timedelta(minutes=5), "declined", "expired_card", gateway_latency_ms=300),
                AttemptRow(T0 + timedelta(minutes=6), None),  # in flight: counts nowhere
                AttemptRow(T0 + timedelta(minutes=7), "unknown", gateway_latency_ms=30_000),  # a gateway timeout
                AttemptRow(T0 + timedelta(hours=1), "requires_agent", "automation_unavailable"),
                AttemptRow(T0 + timedelta(hours=1), "requires_agent", "fraud_prescreen",
                           [{"code": "ip_velocity"}, {"code": "card_velocity"}]),
                AttemptRow(T0 + timedelta(hours=2), "approved")]  # outside [T0, T0 + 2h)
    refunds = [RefundRow(T0, "failed", None, "resolved", 500, "JPY"), RefundRow(T0 - timedelta(seconds=1), "failed",
                                                                                "x", "required", 1, "USD")]
    disputes = [DisputeRow(T0 + timedelta(hours=2), "won", "fraudulent", 1, "USD")]
    r = summarize(attempts, refunds, disputes, since=T0, until=T0 + timedelta(hours=2), generated_at=T0)
    assert r.bucket == "hour" and [b.start.hour for b in r.series] == [0, 1]
    assert (r.attempts, r.in_flight, r.approved, r.declined, r.fraud_blocks, r.breaker_blocks) == (6, 2, 1, 1, 1, 1)
    assert r.approval_rate == 0.25 and [b.approval_rate for b in r.series] == [0.5, 0.0]
    assert r.fraud_blocks_by_rule == [("card_velocity", 1), ("ip_velocity", 1)]
    assert r.declines_by_code == [("expired_card", 1)]
    assert (r.latency_p50_ms, r.latency_p99_ms, r.latency_count) == (300, 30_000, 3)
    assert r.series[1].latency_p50_ms is None
    assert (r.refunds, r.refunds_by_status["failed"], r.refund_failures_by_code) == (1, 1, [("unknown", 1)])
    assert r.refunds_manual_review == {"required": 0, "resolved": 1} and r.refund_amounts == {"JPY": {"failed": 500}}
    assert r.disputes == 0 and r.dispute_amounts == {}
    with pytest.raises(ValueError):
        summarize([], [], [], since=T0, until=T0, generated_at=T0)


def test_percentile_is_nearest_rank_and_buckets_follow_the_span():
    values = list(range(1, 101))
    assert (percentile(values, 50), percentile(values, 99), percentile(values, 100)) == (50, 99, 100)
    assert percentile([7], 99) == 7 and percentile([], 50) is None
    assert percentile([10, 20], 50) == 10 and percentile([10, 20], 99) == 20
    assert choose_bucket(T0, T0 + timedelta(days=2)) == "hour"
    assert choose_bucket(T0, T0 + timedelta(days=30)) == "day"
    assert choose_bucket(T0, T0 + timedelta(days=365)) == "week"
    r = summarize([], [], [], since=T0 + timedelta(days=2), until=T0 + timedelta(days=200), generated_at=T0)
    assert r.series[0].start.weekday() == 0 and r.approval_rate is None and r.latency_p50_ms is None
