"""The end-to-end stack: gunicorn (the shipped ``gunicorn.conf.py``: 2 gthread workers) serving the app, the
delivery worker, the Genesys emulator (an allowed iframe parent) and a second emulator on an origin that is NOT
allowed to frame the page — all real processes on loopback — driven by Playwright with Debian's Chromium.

The e2e API client is set up the way an operator sets up a Genesys org (``paygate clients genesys``):
write-back (participant attributes and the workflow :data:`WORKFLOW_ID`) and link sending go to the
emulator, which knows the Genesys OAuth client :data:`GENESYS_CLIENT_ID` and has the secure flow
:data:`SECURE_FLOW_ID` published with the paygate data actions' credential. The emulator records every
callback and write-back body into ``logs/callbacks.jsonl``; its whole state is dumped to
``logs/genesys-state.json`` after every test (and at stop) so the PCI scan reads it, whether it runs at the
end of the same serial session (before the session's fixtures are torn down) or in its own pass after a
parallel run (``scripts/test.sh``).

Under pytest-xdist each worker that runs e2e tests starts its own stack: its own directory
(:func:`e2e_dir_name`), its own Redis database (``tests.services.e2e_redis_url``), free ports and its own
Chromium.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from paygate.processes import gunicorn_command, stop_processes, wait_until
from tests import services

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
GENESYS_CLIENT_ID = "gc-e2e"
"""The Genesys OAuth client (client credentials) paygate and the test's "agent" use at the emulator."""
WORKFLOW_ID = "wf-e2e-payment-result"
"""The Architect workflow paygate starts for every event of the e2e client."""
SECURE_FLOW_ID = "flow-paygate-secure-card-entry"
"""The secure call flow published at the emulator (recipe 3, played by ``integrations.genesys.emulator.flows``)."""
SMS_FROM = "+13175550100"
"""The e2e client's default agentless SMS sender."""


def e2e_dir_name() -> str:
    """The e2e stack's directory under the test state directory: ``e2e`` outside xdist and on worker ``gw0``,
    ``e2e-gw<n>`` on the other workers (the PCI scan reads every ``e2e*/logs``)."""
    return "e2e" if services.worker_index() == 0 else f"e2e-{services.worker_id()}"


def poll(fn, *, timeout=15.0, interval=0.1, what="condition"):
    """Calls ``fn`` until it returns something truthy (returned) or ``timeout`` passes (the test fails)."""
    return wait_until(fn, timeout=timeout, interval=interval, what=what, error=AssertionError)


class Stack:
    def __init__(self, state: Path):
        self.state = state
        self.logs = state / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[subprocess.Popen] = []
        self.web_port = services.free_port()
        self.emu_port = services.free_port()
        self.evil_port = services.free_port()
        self.base = f"http://127.0.0.1:{self.web_port}"
        self.emulator = f"http://127.0.0.1:{self.emu_port}"
        self.evil = f"http://127.0.0.1:{self.evil_port}"
        self.redis_url = services.e2e_redis_url()  # this xdist worker's own database, never flushed by tests
        self.genesys_secret = secrets.token_urlsafe(24)
        self.env = {
            **os.environ,
            "PAYGATE_ENV": "development",
            "PAYGATE_INSTANCE_PATH": str(state / "instance"),
            "PAYGATE_DATABASE_URL": f"sqlite:///{state / 'e2e.sqlite3'}",
            "PAYGATE_REDIS_URL": self.redis_url,
            "PAYGATE_PUBLIC_BASE_URL": self.base,
            "PAYGATE_FRAME_ANCESTORS": f"'self' {self.emulator}",
            "PAYGATE_DELIVERY_BACKOFF_BASE": "0.2",
            "PAYGATE_FRAUD_CARD_SESSIONS_PER_HOUR": "100",
            "PAYGATE_FRAUD_IP_ATTEMPTS_PER_HOUR": "1000",
            # the suite declines the same sandbox cards many times (every language, both widths, with and without scripts)
            "PAYGATE_FRAUD_CARD_DECLINES_PER_DAY": "1000",
            # one server driven from one address by every e2e test: generous rate limits (still enforced)
            **{f"PAYGATE_RATE_LIMIT_{scope}": "1000000 per minute" for scope in (
                "API", "TOKEN", "TOKEN_FAILURES_CLIENT", "TOKEN_FAILURES_IP", "CHECKOUT_SESSION", "CHECKOUT_IP")},
        }

    def spawn(self, name: str, args: list[str]):
        log = open(self.logs / f"{name}.log", "ab")
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.name = name
        self.procs.append(proc)
        return proc

    def start(self):
        subprocess.run([str(BIN / "paygate"), "db", "upgrade"], cwd=ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        out = subprocess.run([str(BIN / "paygate"), "clients", "create", "e2e", "--callback-url",
                              f"{self.emulator}/webhooks/paygate"], cwd=ROOT, env=self.env, check=True,
                             capture_output=True, text=True).stdout
        self.client = json.loads(out.strip().splitlines()[-1])
        subprocess.run([str(BIN / "paygate"), "clients", "genesys", self.client["client_id"], "--region", "us_east_1",
                        "--api-base", self.emulator, "--login-base", self.emulator,
                        "--oauth-client-id", GENESYS_CLIENT_ID, "--workflow-id", WORKFLOW_ID,
                        "--attributes", "--workflow", "--sms-from", SMS_FROM], cwd=ROOT, check=True,
                       env={**self.env, "PAYGATE_GENESYS_OAUTH_CLIENT_SECRET": self.genesys_secret},
                       stdout=subprocess.DEVNULL)
        self.spawn("emulator", [sys.executable, "-m", "integrations.genesys.emulator", "--host", "127.0.0.1", "--port",
                                str(self.emu_port), "--signing-secret", self.client["signing_secret"],
                                "--genesys-client", f"{GENESYS_CLIENT_ID}:{self.genesys_secret}",
                                "--record", str(self.logs / "callbacks.jsonl")])
        self.spawn("evil", [sys.executable, "-m", "integrations.genesys.emulator", "--host", "127.0.0.1", "--port",
                            str(self.evil_port)])
        self.spawn("web", gunicorn_command(self.web_port))  # the shipped gunicorn.conf.py
        self.spawn("worker", [str(BIN / "paygate"), "worker"])
        for port in (self.emu_port, self.evil_port, self.web_port):
            services.wait_for_port(port, timeout=30)
        # gunicorn's workers import the whole app before answering: on a busy 2-core machine, with other xdist
        # workers starting their own stacks at the same time, that takes longer than one page load
        poll(lambda: self._ok(f"{self.base}/healthz"), timeout=90, what="web app health")
        self.token = self._token()
        # the conversation the checkout tests' sessions name, so their write-backs land somewhere
        self.create_conversation(conversation_id="e2e-conv", customer_id="e2e-part")
        r = httpx.post(f"{self.emulator}/api/genesys/secure-flows",
                       json={"id": SECURE_FLOW_ID, "credentials": self.data_action_credentials()})
        r.raise_for_status()

    def _ok(self, url):
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def _token(self) -> str:
        r = httpx.post(f"{self.base}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(self.client["client_id"], self.client["client_secret"]))
        r.raise_for_status()
        return r.json()["access_token"]

    def create_session(self, **overrides) -> dict:
        body = {"conversation_id": "e2e-conv", "participant_id": "e2e-part", "customer_account_id": "ACME-7",
                "amount": 2500, "currency": "USD", "channel": "messaging"}
        body.update(overrides)
        r = httpx.post(f"{self.base}/v1/payment-sessions", json=body,
                       headers={"Authorization": f"Bearer {self.token}"})
        assert r.status_code == 201, r.text
        return r.json()

    def session(self, session_id: str) -> dict:
        return httpx.get(f"{self.base}/v1/payment-sessions/{session_id}",
                         headers={"Authorization": f"Bearer {self.token}"}).json()

    def data_action_credentials(self) -> dict:
        """The paygate integration's User Defined (OAuth) credential fields (integrations/genesys/data-actions/README.md)."""
        return {"clientId": self.client["client_id"], "clientSecret": self.client["client_secret"],
                "loginUrl": f"{self.base}/oauth/token", "baseUrl": self.base}

    def events(self, session_id: str) -> list[dict]:
        """``GET /v1/events?session_id=``: the session's events in sequence order."""
        r = httpx.get(f"{self.base}/v1/events", params={"session_id": session_id},
                      headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        return r.json()["data"]

    # --- the Genesys emulator ------------------------------------------------------------------------------
    def create_conversation(self, media_type: str = "call", *, conversation_id: str | None = None,
                            customer_id: str | None = None) -> dict:
        """A conversation at the emulator with a customer and an agent participant →
        ``{"id", "customer", "agent"}`` (ids; fresh UUIDs unless given)."""
        r = httpx.post(f"{self.emulator}/api/genesys/conversations", json={
            **({"id": conversation_id} if conversation_id else {}), "media_type": media_type,
            "participants": [{"purpose": "customer", **({"id": customer_id} if customer_id else {})},
                             {"purpose": "agent"}]})
        r.raise_for_status()
        conv = r.json()
        by_purpose = {p["purpose"]: p["id"] for p in conv["participants"]}
        return {"id": conv["id"], "customer": by_purpose["customer"], "agent": by_purpose["agent"]}

    def participant_attributes(self, conversation_id: str, participant_id: str) -> dict:
        """The participant's attributes as the emulator holds them."""
        conv = httpx.get(f"{self.emulator}/api/genesys/conversations/{conversation_id}").json()
        return next(p["attributes"] for p in conv["participants"] if p["id"] == participant_id)

    def executions(self, conversation_id: str) -> list[dict]:
        """Workflow executions whose ``Flow.conversationId`` is ``conversation_id``."""
        return httpx.get(f"{self.emulator}/api/genesys/executions",
                         params={"conversation_id": conversation_id}).json()

    def genesys_auth(self) -> dict:
        """A bearer header from the emulator's login endpoint for the Genesys OAuth client."""
        r = httpx.post(f"{self.emulator}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(GENESYS_CLIENT_ID, self.genesys_secret))
        r.raise_for_status()
        return {"Authorization": f"bearer {r.json()['access_token']}"}

    def dump_state(self) -> Path:
        """Writes the emulator's ``/api/genesys/state`` to ``logs/genesys-state.json`` (for the PCI scan)."""
        path = self.logs / "genesys-state.json"
        path.write_text(httpx.get(f"{self.emulator}/api/genesys/state", timeout=10).text, encoding="utf-8")
        return path

    def received(self, session_id: str | None = None) -> list[dict]:
        items = httpx.get(f"{self.emulator}/api/received").json()
        return [i for i in items if session_id is None or i.get("session_id") == session_id]

    def charges(self, session_id: str) -> list[dict]:
        import redis

        from tokenizer.gateways.sandbox import RedisSandboxLedger

        client = redis.Redis.from_url(self.env["PAYGATE_REDIS_URL"])
        try:
            return [c for c in RedisSandboxLedger(client).charges() if session_id in json.dumps(c)]
        finally:
            client.close()

    def stop(self):
        try:
            self.dump_state()
        except (httpx.HTTPError, OSError):
            pass  # the emulator is already gone; the dump after the last test stays
        stop_processes(self.procs, timeout=10)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Names the folder of the run's review screenshots (e2e/accessibility.py), once, in the main process."""
    state = os.environ.get("PAYGATE_TEST_STATE_DIR")
    if state and (Path(state) / "screenshots").is_dir() and not hasattr(config, "workerinput"):
        terminalreporter.write_line(f"screenshots of every page state for review: {Path(state) / 'screenshots'}")


@pytest.fixture(scope="session")
def e2e_stack():
    # one stack per xdist worker that runs e2e tests, each in its own directory (e2e, or e2e-gw1...)
    state = services.state_dir() / e2e_dir_name()
    state.mkdir(exist_ok=True)
    stack = Stack(state)
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


@pytest.fixture(autouse=True)
def _dump_emulator_state(request):
    """After each test that used the stack: the emulator's state into the logs for the PCI scan."""
    yield
    if "e2e_stack" in request.fixturenames:
        request.getfixturevalue("e2e_stack").dump_state()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 375, "height": 812})
    pg = context.new_page()
    pg.set_default_timeout(15000)
    yield pg
    context.close()
