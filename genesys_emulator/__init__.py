"""A local stand-in for the Genesys Cloud side of the integration.

This first version is the receiving end of paygate's signed callbacks (the endpoint a Genesys
"Webhook for Events" invocation URL or an integrator's middleware would be) plus two pages for people:
a live list of what arrived and an agent-desktop mock-up that frames the checkout page. It is a separate
Flask app, never imported by paygate itself; tests, the e2e suite and ``paygate demo`` run it as its
own process with ``python -m genesys_emulator``.

Blueprints: :mod:`.webhooks` (receiver + test API), :mod:`.pages` (HTML). Later blueprints add the
Genesys Platform API fakes (OAuth, participant attributes, flow executions, agentless messages).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Sequence

from flask import Flask

from .store import ReceiverStore

__all__ = ["create_app", "ReceiverStore"]


def create_app(signing_secrets: Sequence[str] | None = None, *, record_path: str | Path | None = None,
               clock: Callable[[], float] = time.time) -> Flask:
    """Builds the emulator app.

    ``signing_secrets``: the paygate signing secrets the receiver accepts (replaceable later through
    ``POST /api/secrets``); with none, every callback is rejected as ``signature_mismatch``.
    ``record_path``: append every raw callback body there as a JSON line. ``clock``: unix seconds, used
    for the signature age check and ``received_at``.
    The store is at ``app.extensions["genesys_emulator"]``.
    """
    app = Flask(__name__)
    app.config.update(EMULATOR_CLOCK=clock, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    app.extensions["genesys_emulator"] = ReceiverStore(signing_secrets or (), record_path)

    from . import pages, webhooks

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(pages.bp)
    return app
