"""Structured JSON logs on stdout with a PAN-redaction filter (defense in depth).

Every record — ours, Flask's, gunicorn's, the stripe SDK's — passes through
:class:`RedactingFilter`, which masks any run of 13–19 digits (spaces or dashes
allowed between them) that looks like a card number, keeping at most the last
four digits, and drops values of keys named like a card field. A run glued to
letters (inside a UUID or a hex id such as ``…-b123-4567-8901-2318…``) is masked
only when it passes the Luhn check, so ids stay traceable while a real PAN, which
always passes it, is masked wherever it sits. The code never
logs card data on purpose; this catches the accident.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

from .luhn import luhn_valid

# 13-19 digits, optionally grouped with single spaces or dashes
_PAN_RE = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
_SENSITIVE_KEYS = re.compile(r"(?i)(card_?number|\bpan\b|\bnumber\b|cvc|cvv|csc|cc-number|cc-csc)")


def redact_text(text: str) -> str:
    """Masks every card-number-like digit run in ``text``: ``4242 4242 4242 4242`` → ``[PAN ****4242]``."""
    def _mask(match: re.Match) -> str:
        digits = re.sub(r"\D", "", match.group(0))
        start, end = match.span()
        glued = (start > 0 and text[start - 1].isalpha()) or (end < len(text) and text[end].isalpha())
        if glued and not luhn_valid(digits):
            return match.group(0)
        return f"[PAN ****{digits[-4:]}]"
    return _PAN_RE.sub(_mask, text)


def redact_value(key: str, value: Any) -> Any:
    """Redacts one structured field: card-field keys are dropped to ``"[redacted]"``, strings are masked."""
    if _SENSITIVE_KEYS.search(key) and value not in (None, ""):
        return "[redacted]"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {k: redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_value(key, v) for v in value]
    return value


def _structlog_redactor(_logger, _name, event_dict: dict) -> dict:
    return {k: (redact_value(k, v) if k != "event" else redact_text(str(v))) for k, v in event_dict.items()}


class RedactingFilter(logging.Filter):
    """A stdlib filter that masks card-number-like text in the message, its arguments and ``extra`` fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, dict):  # a structlog event dict, rendered later by the formatter
            record.msg = {k: (redact_value(k, v) if k != "event" else redact_text(str(v)))
                          for k, v in record.msg.items()}
            return True
        try:
            message = record.getMessage()
        except Exception:  # malformed %-args: keep the template only
            message = str(record.msg)
        record.msg = redact_text(message)
        record.args = None
        for key, value in list(record.__dict__.items()):
            if key in _STD_ATTRS:
                continue
            record.__dict__[key] = redact_value(key, value)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        return True


_STD_ATTRS = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


def configure_logging(level: str = "INFO", *, stream=None) -> None:
    """Sends every logger to ``stream`` (default stdout) as JSON lines through the redaction filter.

    Safe to call more than once (replaces the root handlers).
    """
    timestamper = structlog.processors.TimeStamper(fmt="iso", utc=True)
    pre_chain = [structlog.contextvars.merge_contextvars, structlog.stdlib.add_log_level,
                 structlog.stdlib.add_logger_name, timestamper, structlog.stdlib.ExtraAdder()]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=pre_chain,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    # tracebacks are rendered first so the redactor also sees exception messages
                    structlog.processors.format_exc_info, _structlog_redactor,
                    structlog.processors.JSONRenderer()],
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(formatter)
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("werkzeug", "httpx", "httpcore", "stripe", "urllib3", "alembic"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    structlog.configure(
        processors=[structlog.contextvars.merge_contextvars, structlog.stdlib.filter_by_level, *pre_chain[1:4],
                    structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def get_logger(name: str):
    """A structlog logger bound to ``name``."""
    return structlog.get_logger(name)
