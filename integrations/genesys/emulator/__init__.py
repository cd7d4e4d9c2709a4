"""A local stand-in for the Genesys Cloud side of the integration.

It is the receiving end of paygate's signed callbacks (the endpoint a Genesys "Webhook for Events"
invocation URL or an integrator's middleware would be), a fake of the parts of the Genesys Cloud
Platform API paygate writes to (OAuth client credentials, conversations and participant attributes,
workflow executions, agentless messages, Task Management workitems), and pages for people: the
callbacks received, the platform state, and an agent-desktop mock-up that frames the checkout page.
It is a separate Flask app, never imported by paygate itself; tests, the e2e suite and ``paygate demo``
run it as its own process with ``python -m integrations.genesys.emulator``.

Blueprints: :mod:`.webhooks` (receiver + test API), :mod:`.pages` (HTML), :mod:`.platform` (``/oauth/token``,
``/api/v2/*``, the ``/api/genesys/*`` knobs and the ``/genesys`` page).
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Callable, Mapping, Sequence

from flask import Flask

from .platform_store import PlatformStore
from .store import ReceiverStore

__all__ = ["create_app", "ReceiverStore", "PlatformStore"]


def _uuid() -> str:
    return str(uuid.uuid4())


def create_app(signing_secrets: Sequence[str] | None = None, *, record_path: str | Path | None = None,
               clock: Callable[[], float] = time.time, genesys_clients: Mapping[str, str] | None = None,
               new_id: Callable[[], str] = _uuid) -> Flask:
    """Builds the emulator app.

    ``signing_secrets``: the paygate signing secrets the receiver accepts (replaceable later through
    ``POST /api/secrets``); with none, every callback is rejected as ``signature_mismatch``.
    ``record_path``: append every raw callback body there as a JSON line, and every body written to the
    Platform API as ``{"source": "genesys_api", "method", "path", "body"}``. ``clock``: unix seconds, used
    for the signature age check, ``received_at``, token expiry and rate-limit windows.
    ``genesys_clients``: OAuth client id → secret accepted by ``POST /oauth/token`` (more can be added
    through ``POST /api/genesys/clients``). ``new_id``: id generator for the Platform API's objects.
    The stores are at ``app.extensions["integrations.genesys.emulator"]`` (callbacks) and
    ``app.extensions["genesys_platform"]`` (Platform API).
    """
    app = Flask(__name__)
    app.config.update(EMULATOR_CLOCK=clock, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    receiver = ReceiverStore(signing_secrets or (), record_path)
    app.extensions["integrations.genesys.emulator"] = receiver
    app.extensions["genesys_platform"] = PlatformStore(genesys_clients, new_id=new_id,
                                                       record=receiver.record_json)

    from . import pages, platform, webhooks

    app.register_blueprint(webhooks.bp)
    app.register_blueprint(pages.bp)
    app.register_blueprint(platform.login_bp)
    app.register_blueprint(platform.api_bp)
    app.register_blueprint(platform.knobs_bp)
    app.register_error_handler(404, platform.api_not_found_or_not_allowed)
    app.register_error_handler(405, platform.api_not_found_or_not_allowed)
    return app
