"""The operator report as one self-contained HTML file (``paygate report html``; docs/operations.md, "The operator
report"): the figures of :mod:`payments.operator_report` drawn as charts, each followed by its numbers in a table.

Charting library: Matplotlib (https://matplotlib.org/, BSD-style licence, maintained since 2003 with regular
releases), drawing every chart as **inline SVG** in the page. Chosen over Plotly (its offline HTML inlines about
3.5 MB of JavaScript and shows nothing without scripts) and Altair/Vega (JavaScript renderers too) because the
report is a file an operator forwards and opens from email or a ticket: a few hundred kilobytes, no script at all,
so it renders in any browser, in viewers that block scripts, when printed to PDF and with the network off, and
the page's own ``Content-Security-Policy`` can forbid every fetch (``default-src 'none'``). SVG text stays text
(``svg.fonttype: none``), so the figures can be searched and copied; the tables carry the same numbers for
screen readers. Matplotlib is used without pyplot (a :class:`matplotlib.figure.Figure` per chart, no global
state, no display), with a per-chart ``svg.hashsalt`` so the element ids of the inlined SVGs never collide and
the output is the same for the same data.

HTML: a Jinja2 template (``paygate/templates/operator_report.html``) with autoescaping on; only the SVG that
Matplotlib wrote (which escapes its own text) is inserted unescaped, stripped of its XML prolog and metadata.
Card data: none (the report holds counts, rates, durations and amounts only).
"""

from __future__ import annotations

import io
import re
from datetime import datetime
from decimal import Decimal

from jinja2 import Environment, PackageLoader
from markupsafe import Markup

from kernel.money import exponent
from payments.operator_report import OperatorReport

__all__ = ["PALETTE", "render_html"]

PALETTE = {"blue": "#0072B2", "orange": "#E69F00", "green": "#009E73", "red": "#D55E00", "purple": "#CC79A7",
           "sky": "#56B4E9", "grey": "#666666"}
"""Okabe–Ito colours (distinguishable with colour-vision deficiencies)."""
MAX_TICKS = 12
_PROLOG = re.compile(r"\A.*?(?=<svg\b)", re.DOTALL)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.DOTALL)


def _environment() -> Environment:
    return Environment(loader=PackageLoader("paygate", "templates"), autoescape=True, trim_blocks=True,
                       lstrip_blocks=True)


def _svg(fig, name: str, label: str) -> Markup:
    """The figure as inline SVG markup with ``role="img"`` and ``aria-label`` ``label``."""
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": f"paygate-{name}"}):
        fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = _METADATA.sub("", _PROLOG.sub("", buffer.getvalue(), count=1), count=1)
    attrs = f'<svg role="img" aria-label="{Markup.escape(label)}" class="chart" '
    return Markup(text.replace("<svg ", attrs, 1))


def _figure(height: float = 2.8):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, height), dpi=96, layout="constrained")
    ax = fig.add_subplot()
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="both", color="#dddddd", linewidth=0.6)
    ax.set_axisbelow(True)
    return fig, ax


def _label(start: datetime, bucket: str) -> str:
    if bucket == "hour":
        return start.strftime("%m-%d %H:00")
    return start.strftime("%Y-%m-%d")


def _time_axis(ax, report: OperatorReport) -> None:
    n = len(report.series)
    every = max(1, -(-n // MAX_TICKS))
    ticks = list(range(0, n, every))
    ax.set_xticks(ticks, [_label(report.series[i].start, report.bucket) for i in ticks], rotation=30, ha="right",
                  fontsize=8)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_xlabel(f"{report.bucket} starting (UTC)", fontsize=8)


def _approval_chart(report: OperatorReport) -> Markup | None:
    if not any(b.approval_rate is not None for b in report.series):
        return None
    fig, ax = _figure()
    xs = range(len(report.series))
    rates = [b.approval_rate * 100 if b.approval_rate is not None else float("nan") for b in report.series]
    ax.bar(xs, [b.attempts for b in report.series], color=PALETTE["sky"], alpha=0.35, label="submissions (right)")
    ax.set_ylabel("submissions", fontsize=8)
    rate_ax = ax.twinx()
    rate_ax.plot(xs, rates, color=PALETTE["blue"], marker="o", markersize=4, linewidth=2, label="approval rate")
    rate_ax.set_ylim(0, 105)
    rate_ax.set_ylabel("approval rate (%)", fontsize=8)
    ax.yaxis.tick_right()
    ax.yaxis.set_label_position("right")
    rate_ax.yaxis.tick_left()
    rate_ax.yaxis.set_label_position("left")
    ax.spines[["top"]].set_visible(False)
    rate_ax.spines[["top"]].set_visible(False)
    _time_axis(ax, report)
    handles = rate_ax.get_legend_handles_labels()[0] + ax.get_legend_handles_labels()[0]
    rate_ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, fontsize=8, frameon=False)
    return _svg(fig, "approval", "Approval rate over time")


def _latency_chart(report: OperatorReport) -> Markup | None:
    if not report.latency_count:
        return None
    fig, ax = _figure()
    xs = range(len(report.series))
    nan = float("nan")
    ax.plot(xs, [b.latency_p50_ms if b.latency_p50_ms is not None else nan for b in report.series],
            color=PALETTE["green"], marker="o", markersize=4, linewidth=2, label="p50")
    ax.plot(xs, [b.latency_p99_ms if b.latency_p99_ms is not None else nan for b in report.series],
            color=PALETTE["red"], marker="s", markersize=4, linewidth=2, linestyle="--", label="p99")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("milliseconds", fontsize=8)
    _time_axis(ax, report)
    ax.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=2, fontsize=8, frameon=False)
    return _svg(fig, "latency", "Gateway latency p50 and p99 over time")


def _bars(name: str, label: str, items: list[tuple[str, int]], color: str) -> Markup | None:
    if not items or not any(count for _, count in items):
        return None
    items = list(reversed(items))  # largest at the top
    fig, ax = _figure(height=max(1.6, 0.45 * len(items) + 0.9))
    bars = ax.barh([name for name, _ in items], [count for _, count in items], height=0.6, color=color)
    ax.bar_label(bars, padding=3, fontsize=8)
    ax.grid(axis="y", visible=False)
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("count", fontsize=8)
    ax.tick_params(axis="y", labelsize=9)
    ax.margins(x=0.12)
    return _svg(fig, name, label)


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f} %"


def _ms(value: int | None) -> str:
    return "–" if value is None else f"{value} ms"


def _amount(minor: int, currency: str) -> str:
    try:
        places = exponent(currency)
    except Exception:  # a currency CLDR does not know: minor units are all there is
        return f"{currency} {minor}"
    return f"{currency} {Decimal(minor).scaleb(-places):,.{places}f}"


def _moment(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def render_html(report: OperatorReport) -> str:
    """The whole HTML document (UTF-8 text) of ``report``: summary, six charts (approval rate over time, declines
    by code, fraud blocks by rule, refunds and their failures, disputes, gateway latency p50/p99) with their
    tables. No external resource is referenced; the page's CSP forbids every fetch."""
    refund_items = [(status, report.refunds_by_status[status]) for status in ("succeeded", "pending", "failed")]
    refund_items += [(f"manual review {state}", count) for state, count in report.refunds_manual_review.items()]
    charts = {
        "approval": _approval_chart(report),
        "declines": _bars("declines", "Declines by code", report.declines_by_code, PALETTE["orange"]),
        "fraud": _bars("fraud", "Fraud blocks by rule", report.fraud_blocks_by_rule, PALETTE["red"]),
        "refunds": _bars("refunds", "Refunds by status and manual review", refund_items, PALETTE["purple"]),
        "refund_failures": _bars("refund_failures", "Refund failures by code", report.refund_failures_by_code,
                                 PALETTE["red"]),
        "disputes": _bars("disputes", "Disputes by status", report.disputes_by_status, PALETTE["grey"]),
        "latency": _latency_chart(report),
    }
    template = _environment().get_template("operator_report.html")
    return template.render(
        r=report, charts=charts, refund_items=refund_items, percent=_percent, ms=_ms, amount=_amount,
        moment=_moment, label=lambda start: _label(start, report.bucket))
