"""``python -m integrations.genesys.emulator --host 127.0.0.1 --port 8010 [--signing-secret S ...] [--record FILE]
[--genesys-client ID:SECRET ...] [--token-ttl SECONDS] [--rate-limit PER_MINUTE]``.

Serves the emulator with Werkzeug's threaded server (a test fixture, not a production server).
"""

from __future__ import annotations

import argparse
import logging

from flask import Flask
from werkzeug.serving import run_simple

from . import create_app


def _client(value: str) -> tuple[str, str]:
    client_id, sep, secret = value.partition(":")
    if not sep or not client_id or not secret:
        raise argparse.ArgumentTypeError("expected CLIENT_ID:SECRET")
    return client_id, secret


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m integrations.genesys.emulator",
                                     description="Serve the Genesys emulator: callback receiver and fake Platform API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--signing-secret", action="append", default=[], dest="secrets",
                        help="a paygate signing secret to accept (repeat for several)")
    parser.add_argument("--record", default=None,
                        help="append every raw callback body and every Platform API write-back body to this "
                             "file (JSON lines)")
    parser.add_argument("--genesys-client", action="append", default=[], dest="clients", type=_client,
                        metavar="ID:SECRET", help="an OAuth client accepted by POST /oauth/token (repeatable)")
    parser.add_argument("--token-ttl", type=_positive, default=None, metavar="SECONDS",
                        help="lifetime of issued tokens (default 86399)")
    parser.add_argument("--rate-limit", type=_positive, default=None, metavar="PER_MINUTE",
                        help="API requests per token per minute before 429 (default 300)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    return parser


def build_app(argv: list[str] | None = None) -> tuple[Flask, argparse.Namespace]:
    """Parses the command line and builds the configured app (without serving it)."""
    args = build_parser().parse_args(argv)
    app = create_app(args.secrets, record_path=args.record, genesys_clients=dict(args.clients))
    settings = {k: v for k, v in (("token_ttl_seconds", args.token_ttl),
                                  ("rate_limit_per_minute", args.rate_limit)) if v is not None}
    if settings:
        app.extensions["genesys_platform"].update_settings(**settings)
    return app, args


def main(argv: list[str] | None = None) -> None:
    app, args = build_app(argv)
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False, use_debugger=False)


if __name__ == "__main__":
    main()
