"""The payments report: one CSV row per payment, for reconciliation (docs/api.md, "Reports").

Served by ``GET /v1/reports/payments.csv`` (the calling client's payments) and written by
``paygate report payments`` (one client's, or every client's). Both stream: rows are read in pages of
:data:`PAGE_SIZE` by keyset pagination on ``(created_at, id)``, each page in its own short database session,
and each row is written out before the next page is read, so an export of any size holds one page in memory.

Format: RFC 4180 (https://www.rfc-editor.org/rfc/rfc4180) — comma separated, fields quoted when they hold a
comma, quote or line break, CRLF line ends, UTF-8 without a byte order mark, one header line of
:data:`COLUMNS`. Order: oldest first (``created_at``, then ``payment_id``). Range: ``created_after``
inclusive, ``created_before`` exclusive, so consecutive ranges (days) neither overlap nor miss a payment.

Values: amounts are integers in the currency's minor unit (USD 2500 = $25.00), as everywhere in the API;
the ``*_decimal`` columns give the same amounts in major units with the currency's exponent (``25.00``, JPY
``2500``, KWD ``1.250``) for spreadsheets. Times are RFC 3339 UTC. Empty cell: no value (null). ``moto`` is
``true`` / ``false``.

Formula injection (OWASP, https://owasp.org/www-community/attacks/CSV_Injection): a text cell that begins
with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is prefixed with a single quote (``'``), so a
spreadsheet shows it as text instead of running it. Only text that came from outside is affected (references,
account and conversation ids); numbers and paygate's own ids never start with those characters.

Card data: brand and last four digits only, as in the payment view.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import sessionmaker

from kernel.clock import naive_utc, rfc3339
from kernel.money import exponent

from .models import Payment

__all__ = ["COLUMNS", "FORMULA_PREFIXES", "PAGE_SIZE", "PaymentReport", "escape_cell"]

PAGE_SIZE = 500
"""Rows read per database round trip."""

COLUMNS = (
    "payment_id", "session_id", "subscription_id", "status", "intent", "initiator", "entry_mode", "moto",
    "amount", "amount_captured", "amount_refunded", "currency", "amount_decimal", "amount_captured_decimal",
    "amount_refunded_decimal", "card_brand", "card_last4", "decline_code", "conversation_id",
    "customer_account_id", "reference", "gateway", "gateway_reference", "created_at", "updated_at",
)
"""The report's columns, in order (the header line)."""

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
"""First characters that make a spreadsheet read a cell as a formula (OWASP CSV injection)."""


def escape_cell(value: object) -> object:
    """``value`` made safe for a spreadsheet: text beginning with one of :data:`FORMULA_PREFIXES` gets a
    leading ``'``; None becomes ``""``; other values are returned as they are."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _decimal(amount: int | None, currency: str) -> str:
    if amount is None:
        return ""
    try:
        places = exponent(currency)
    except Exception:  # a currency CLDR does not know: minor units are all there is
        return str(amount)
    return f"{Decimal(amount).scaleb(-places):.{places}f}"


def _row(p: Payment) -> list:
    return [escape_cell(v) for v in (
        p.id, p.session_id, p.subscription_id, p.status, p.intent, p.initiator,
        p.entry_mode or ("stored" if p.initiator == "merchant" else "page"), "true" if p.moto else "false",
        p.amount, p.amount_captured, p.amount_refunded, p.currency, _decimal(p.amount, p.currency),
        _decimal(p.amount_captured, p.currency), _decimal(p.amount_refunded, p.currency), p.card_brand,
        p.card_last4, p.decline_code, p.conversation_id, p.customer_account_id, p.reference, p.gateway,
        p.gateway_reference, rfc3339(p.created_at), rfc3339(p.updated_at))]


@dataclass(frozen=True)
class PaymentReport:
    """The payments of ``client_id`` (None: every client, for the operator's CLI) created in
    [``created_after``, ``created_before``) (aware or naive UTC; None: unbounded), read from ``Session``."""

    Session: sessionmaker
    client_id: str | None
    created_after: datetime | None = None
    created_before: datetime | None = None
    page_size: int = PAGE_SIZE

    def _where(self):
        conditions = []
        if self.client_id is not None:
            conditions.append(Payment.client_id == self.client_id)
        if self.created_after is not None:
            conditions.append(Payment.created_at >= naive_utc(self.created_after))
        if self.created_before is not None:
            conditions.append(Payment.created_at < naive_utc(self.created_before))
        return conditions

    def count(self) -> int:
        """How many rows :meth:`lines` will write (one query; for a progress bar)."""
        with self.Session() as db:
            return int(db.scalar(select(func.count()).select_from(Payment).where(*self._where())) or 0)

    def payments(self) -> Iterator[Payment]:
        """The payments, oldest first, read :attr:`page_size` at a time (keyset pagination on
        ``(created_at, id)``, so rows added meanwhile neither repeat nor shift a page)."""
        after: tuple[datetime, str] | None = None
        while True:
            stmt = select(Payment).where(*self._where())
            if after is not None:
                stmt = stmt.where(or_(Payment.created_at > after[0],
                                      and_(Payment.created_at == after[0], Payment.id > after[1])))
            with self.Session() as db:
                page = list(db.scalars(stmt.order_by(Payment.created_at, Payment.id).limit(self.page_size)))
                db.expunge_all()
            yield from page
            if len(page) < self.page_size:
                return
            after = (page[-1].created_at, page[-1].id)

    def lines(self) -> Iterator[str]:
        """The CSV text: the header line, then one line per payment (each ending in CRLF)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")

        def take() -> str:
            text = buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            return text

        writer.writerow(COLUMNS)
        yield take()
        for payment in self.payments():
            writer.writerow(_row(payment))
            yield take()
