"""The benchmark's baseline: the smallest Flask app, served by the same gunicorn configuration as
paygate (``gunicorn --workers 2 --no-control-socket 'bench.baseline_app:create_app()'``), so the
paygate figures can be read as a fraction of what this stack can do at all on the machine."""

from __future__ import annotations

from flask import Flask, jsonify


def create_app() -> Flask:
    """A Flask app with one route: ``GET /`` and ``POST /`` answer 200 ``{"ok": true}``."""
    app = Flask(__name__)

    @app.route("/", methods=["GET", "POST"])
    def ok():
        return jsonify({"ok": True})

    return app
