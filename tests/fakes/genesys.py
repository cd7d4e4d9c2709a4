"""The Genesys emulator (``integrations.genesys.emulator/``) on a real threaded HTTP server, for tests of paygate's
Genesys write-back and send-link code.

:class:`GenesysEmulator` adds no Genesys behaviour of its own: OAuth, participant attributes, workflow
executions, agentless messages, workitems, 401/429 answers and failure injection are the emulator's. The class
serves ``integrations.genesys.emulator.create_app(...)`` with ``werkzeug.serving.make_server(..., threaded=True)``
in a thread and reads what tests need from the emulator's own state (its ``PlatformStore`` at
``app.extensions["genesys_platform"]``: request log, conversations, executions, messages) and from its
record file (every body written to the Platform API, before any validation).

The record file is a new ``*.jsonl`` under ``<state_dir>/genesys-emulator/``, so the PCI scan that runs
last (tests/test_zz_pci_scan.py) reads every body paygate sent to Genesys.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Mapping

from werkzeug.serving import make_server

from integrations.genesys.emulator import PlatformStore, create_app
from integrations.genesys.emulator.platform import iso
from integrations.genesys.emulator.platform_store import ApiBehaviour, Settings
from tests.fakes.stripe_server import _QuietHandler

TOKEN_PATH = "/oauth/token"
API_PREFIX = "/api/v2/"


class GenesysEmulator:
    """The emulator app served on ``127.0.0.1`` (a free port) until :meth:`close`.

    ``clients``: OAuth client id → secret. ``state_dir``: where the record file goes. ``clock``: unix
    seconds (token expiry, rate-limit windows); ``time.time`` unless a test freezes it.
    """

    def __init__(self, clients: Mapping[str, str], state_dir: Path, *, clock: Callable[[], float] = time.time):
        self.clock = clock
        self.record_path = state_dir / "genesys-emulator" / f"{uuid.uuid4().hex}.jsonl"
        self.record_path.parent.mkdir(parents=True, exist_ok=True)
        self.app = create_app(record_path=self.record_path, clock=clock, genesys_clients=clients)
        self.platform: PlatformStore = self.app.extensions["genesys_platform"]
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler)
        self.port = self.server.server_port
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="genesys-emulator", daemon=True)
        self._thread.start()
        self._closed = False

    @property
    def url(self) -> str:
        """Base address of both the login and the API host (``http://127.0.0.1:PORT``)."""
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        """Stops serving and frees the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def __enter__(self) -> "GenesysEmulator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # --- set-up and knobs (the emulator's own) -----------------------------------------------------
    def add_conversation(self, conversation_id: str, customer_id: str, *, media_type: str = "call") -> dict:
        """A conversation with a customer participant ``customer_id`` and an agent, as Genesys has it
        before paygate writes attributes to it."""
        return self.platform.create_conversation(
            conversation_id=conversation_id, media_type=media_type, now=iso(self.clock()),
            participants=[{"id": customer_id, "purpose": "customer"}, {"purpose": "agent"}])

    def fail_next(self, status: int, *, retry_after: int = 1, count: int = 1) -> None:
        """The next ``count`` ``/api/v2`` calls are answered ``status`` (a 429 with ``Retry-After``)."""
        self.platform.set_behaviour(ApiBehaviour(fail_next=count, status=status, retry_after=retry_after))

    def expire_tokens(self) -> None:
        """Every token issued so far is expired as of the emulator's clock."""
        self.platform.expire_tokens(self.clock())

    def add_worktype(self, worktype_id: str, name: str = "Refund review", custom_fields: list[str] | None = None) -> dict:
        """Registers a Task Management worktype; from then on only registered worktypes take workitems."""
        return self.platform.add_worktype(worktype_id=worktype_id, name=name, custom_fields=custom_fields)

    def update_settings(self, **changes: Any) -> Settings:
        """``token_ttl_seconds`` (tokens issued afterwards), ``rate_limit_per_minute`` (per token)."""
        return self.platform.update_settings(**changes)

    # --- what the emulator saw -------------------------------------------------------------------------
    def requests(self, method: str | None = None, path_prefix: str = "/") -> list[dict]:
        """The emulator's request log for the token endpoint and ``/api/v2``: ``{at, method, path, status,
        client_id}`` oldest first; ``client_id`` is the OAuth client the emulator authenticated (HTTP Basic
        on the token endpoint, the bearer token's owner on ``/api/v2``), None when it did not."""
        return [r for r in self.platform.requests()
                if r["path"].startswith(path_prefix) and (method is None or r["method"] == method)]

    def api_requests(self, method: str | None = None) -> list[dict]:
        return self.requests(method, API_PREFIX)

    @property
    def token_requests(self) -> int:
        return len(self.requests("POST", TOKEN_PATH))

    def bodies(self, method: str | None = None) -> list[Any]:
        """Every JSON body written to ``/api/v2`` (from the record file), oldest first, failed calls too."""
        if not self.record_path.exists():
            return []
        entries = [json.loads(line) for line in self.record_path.read_text(encoding="utf-8").splitlines()]
        return [e["body"] for e in entries
                if e.get("source") == "genesys_api" and (method is None or e["method"] == method)]

    def attributes(self, conversation_id: str, participant_id: str) -> dict[str, str]:
        """One participant's attributes as the emulator holds them."""
        conversation = self.platform.conversation(conversation_id)
        (participant,) = [p for p in conversation["participants"] if p["id"] == participant_id]
        return participant["attributes"]

    @property
    def executions(self) -> list[dict]:
        """Workflow launches ``{id, flowId, name, flowVersion, inputData, launchedAt}``, oldest first."""
        return self.platform.executions()

    @property
    def workitems(self) -> list[dict]:
        """Workitems created ``{id, name, type:{id}, description, externalTag, statusCategory, ...}``, oldest first."""
        return self.platform.workitems()

    @property
    def messages(self) -> list[dict]:
        """Agentless messages ``{id, conversationId, fromAddress, toAddress, messengerType, textBody, ...}``."""
        return self.platform.messages()
