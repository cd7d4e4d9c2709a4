"""Reports: ``GET /v1/reports/payments.csv`` streams the calling client's payments as CSV (docs/api.md,
"Reports"; the rows, columns and escaping are :mod:`payments.reports`')."""

from __future__ import annotations

from flask import Response, g
from pydantic import Field
from spectree import Tag

from payments.reports import COLUMNS, PaymentReport

from .. import services
from ..schemas import Params, RequestDatetime
from . import get

TAGS = [Tag(name="reports", description="Exports for reconciliation (CSV).")]


class PaymentsReportQuery(Params):
    """The created range of ``GET /v1/reports/payments.csv``: [created_after, created_before)."""

    created_after: RequestDatetime | None = Field(
        None, description="Only payments created at or after this moment (RFC 3339; a date alone is midnight UTC; "
                          "without an offset, UTC).")
    created_before: RequestDatetime | None = Field(
        None, description="Only payments created before this moment (RFC 3339), so consecutive ranges neither "
                          "overlap nor miss a payment.")


CSV_SCHEMA = {
    "type": "string",
    "description": "RFC 4180 CSV in UTF-8, CRLF line ends, oldest payment first. Header line: "
                   + ",".join(COLUMNS) + ". Amounts are integer minor units (the *_decimal columns: major units); "
                   "times RFC 3339 UTC; an empty cell is null; a text cell beginning with = + - @, tab or CR is "
                   "prefixed with ' (formula injection).",
    "examples": [",".join(COLUMNS) + "\r\n"
                 "pay_4Qb,ps_9Zx,,captured,topup,customer,dtmf,true,2500,2500,0,USD,25.00,25.00,0.00,visa,4242,,"
                 "conv-1,ACME-1,'=HYPERLINK(1),sandbox,pi_sbx_1,2026-11-23T12:00:00Z,2026-11-23T12:00:00Z\r\n"],
}


@get("/reports/payments.csv", operation_id="exportPaymentsCsv", tags=TAGS,
      ok={200: (None, "The payments as CSV, one row per payment, streamed.")},
      media={200: ("text/csv", CSV_SCHEMA)})
def payments_csv(query: PaymentsReportQuery):
    """Export payments as CSV.

    One row per payment of the calling client created in [created_after, created_before), oldest first: ids,
    status, intent, initiator, entry mode, amounts (minor units and decimal), currency, card brand and last
    four, decline code, conversation, customer account, reference, gateway reference and times. Streamed
    page by page, so a large export starts at once."""
    report = PaymentReport(services().Session, g.client_id, created_after=query.created_after,
                           created_before=query.created_before)
    stamp = "payments"
    if query.created_after is not None:
        stamp += f"-{query.created_after:%Y%m%dT%H%M%S}"
    response = Response(report.lines(), mimetype="text/csv")
    response.headers["Content-Type"] = "text/csv; charset=utf-8"
    response.headers["Content-Disposition"] = f'attachment; filename="{stamp}.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response
