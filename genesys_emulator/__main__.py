"""``python -m genesys_emulator --host 127.0.0.1 --port 8010 [--signing-secret S ...] [--record FILE]``.

Serves the emulator with Werkzeug's threaded server (a test fixture, not a production server).
"""

from __future__ import annotations

import argparse
import logging

from werkzeug.serving import run_simple

from . import create_app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m genesys_emulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8010)
    parser.add_argument("--signing-secret", action="append", default=[], dest="secrets",
                        help="a paygate signing secret to accept (repeat for several)")
    parser.add_argument("--record", default=None, help="append every raw callback body to this file (JSON lines)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    if args.quiet:
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
    app = create_app(args.secrets, record_path=args.record)
    run_simple(args.host, args.port, app, threaded=True, use_reloader=False, use_debugger=False)


if __name__ == "__main__":
    main()
