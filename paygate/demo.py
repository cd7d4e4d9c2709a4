"""``paygate demo``: the whole product on one machine, started the way production runs it (README, "Processes and commands").

Processes, all on 127.0.0.1, each in its own process group and with its output prefixed by its name:

* ``redis``: a private redis-server in a temporary directory (skipped when ``PAYGATE_REDIS_URL`` is set);
* ``emulator``: the Genesys emulator (``python -m integrations.genesys.emulator``), holding the demo client's signing
  secret so it can verify every callback, and a Genesys OAuth client for the write-back;
* ``web``: ``gunicorn --workers 2 'app:create_app()'``;
* ``worker``: ``paygate worker``, which delivers the events to the emulator.

Before starting them it migrates the configured database and creates an API client named ``demo`` whose
callback URL is the emulator and whose Genesys settings (docs/api.md, "Genesys write-back") point at the emulator: participant
attributes and a workflow start per event, SMS from a demo number. Once everything answers it does what
a Genesys flow does: creates a messaging conversation in the emulator, gets a client-credentials token,
``POST /v1/payment-sessions`` for that conversation, texts the link with ``send-link``, and prints the
checkout link, the agent view, the emulator pages and the test cards. Ctrl-C (SIGINT) or SIGTERM stops every child and removes the temporary files;
if any child dies, everything is stopped and the exit status is 1.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, TextIO
from urllib.parse import quote

import httpx

from kernel.errors import ConfigError
from kernel.settings import Settings

from .processes import free_port, port_free, stop_processes, wait_until

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

GENESYS_CLIENT_ID = "demo-genesys-oauth-client"
DEMO_WORKFLOW_ID = "demo-billing-workflow"
DEMO_WORKTYPE_ID = "5d1e6a0c-7b2f-4c3d-8e9a-0f1b2c3d4e5f"
"""The Task Management worktype failed refunds become workitems of (registered at the emulator)."""
DEMO_SMS_FROM = "+15550100100"
DEMO_CUSTOMER_PHONE = "+15550100199"

TEST_CARDS = (
    ("4242 4242 4242 4242", "approves"),
    ("4000 0000 0000 0002", "is declined (the customer may try again)"),
    ("4100 0000 0000 0019", "is blocked as highest risk and goes to an agent"),
    ("4000 0000 0000 0259", "approves, then is disputed (a chargeback) a few seconds later"),
    ("4000 0000 0000 5126", "approves, but its refunds fail and go to the review queue"),
)
DISPUTE_CARD = "4000000000000259"
REFUND_FAIL_CARD = "4000000000005126"


class DemoError(Exception):
    """The demo could not start; ``code`` is a stable snake_case reason."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Child:
    """One process the demo started."""

    name: str
    proc: subprocess.Popen = field(repr=False)


@dataclass(frozen=True)
class DemoInfo:
    """What the demo prints once it is ready (``client_secret`` is shown once, like ``clients create``).
    ``hold_checkout_url``: a hold to pay and then capture or release; ``disputed_payment_id``: a payment the
    sandbox disputes a few seconds after the start; ``failing_refund_id``: a refund that fails into the review
    queue; ``access_token``: a bearer token for the printed commands (valid an hour)."""

    checkout_url: str
    agent_url: str | None
    session_id: str
    emulator_url: str
    embed_url: str
    client_id: str
    client_secret: str = field(repr=False)
    hold_checkout_url: str | None = None
    hold_session_id: str | None = None
    disputed_payment_id: str | None = None
    failing_refund_id: str | None = None
    access_token: str | None = field(default=None, repr=False)


class _Output:
    """Serialises lines written by the per-child pump threads and the demo itself."""

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.lock = threading.Lock()

    def line(self, prefix: str, text: str) -> None:
        with self.lock:
            self.stream.write(f"{prefix:>8} | {text}\n" if prefix else f"{text}\n")
            self.stream.flush()

    def block(self, text: str) -> None:
        with self.lock:
            self.stream.write(text)
            self.stream.flush()


class Demo:
    """Starts, watches and stops the demo's processes; see the module docstring."""

    def __init__(self, *, port: int, emulator_port: int, redis_port: int | None, out: _Output,
                 stop: threading.Event):
        self.port = port
        self.emulator_port = emulator_port
        self.redis_port = redis_port
        self.out = out
        self.stop = stop
        self.children: list[Child] = []
        self.tmp = Path(tempfile.mkdtemp(prefix="paygate-demo-"))
        self.base_url = f"http://127.0.0.1:{port}"
        self.emulator_url = f"http://127.0.0.1:{emulator_port}"
        self.genesys_secret = secrets.token_urlsafe(24)
        self.env = dict(os.environ)

    # --- processes --------------------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str]) -> Child:
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        child = Child(name, proc)
        self.children.append(child)
        threading.Thread(target=self._pump, args=(child,), name=f"demo-{name}", daemon=True).start()
        return child

    def _pump(self, child: Child) -> None:
        for raw in iter(child.proc.stdout.readline, b""):
            self.out.line(child.name, raw.decode("utf-8", "replace").rstrip("\n"))
        child.proc.stdout.close()

    def dead_child(self) -> Child | None:
        return next((c for c in self.children if c.proc.poll() is not None), None)

    def wait_for(self, what: str, check: Callable[[], bool], timeout: float = STARTUP_TIMEOUT) -> None:
        """Polls ``check`` until it is true; raises :class:`DemoError` on timeout, a dead child or Ctrl-C."""

        def abort() -> str | None:
            if self.stop.is_set():
                raise DemoError("interrupted", "interrupted")
            dead = self.dead_child()
            return f"{dead.name} exited with status {dead.proc.returncode}" if dead is not None else None

        try:
            wait_until(check, timeout=timeout, what=what, abort=abort, sleep=self.stop.wait)
        except TimeoutError as err:
            code = "child_exited" if " exited with status " in str(err) else "startup_timeout"
            raise DemoError(code, str(err)) from None

    def shutdown(self) -> None:
        """Stops every child: the app processes first, then Redis (so they can finish cleanly); each
        gets SIGTERM to its process group and SIGKILL after 10 s. Removes the temporary files."""
        names = {id(c.proc): c.name for c in self.children}

        def killing(proc) -> None:
            self.out.line("demo", f"{names[id(proc)]} did not stop in {STOP_TIMEOUT:.0f} s; killing it")

        apps = [c.proc for c in reversed(self.children) if c.name != "redis"]
        infra = [c.proc for c in self.children if c.name == "redis"]
        for group in (apps, infra):
            stop_processes(group, timeout=STOP_TIMEOUT, on_kill=killing)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # --- steps ------------------------------------------------------------------------------------------
    def check_ports(self) -> None:
        busy = [p for p in (self.port, self.emulator_port, self.redis_port) if p is not None and not port_free(p)]
        if busy:
            raise DemoError("port_in_use", f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 are in use; "
                                           "pick others with --port / --emulator-port")

    def start_redis(self) -> None:
        if self.env.get("PAYGATE_REDIS_URL"):
            self.out.line("demo", f"using Redis at {self.env['PAYGATE_REDIS_URL']}")
            return
        port = self.redis_port or free_port()
        redis_dir = self.tmp / "redis"
        redis_dir.mkdir()
        server = shutil.which("redis-server")
        if server is None:
            raise DemoError("redis_missing", "redis-server is not installed (apt-get install redis-server), "
                                             "or set PAYGATE_REDIS_URL")
        self.spawn("redis", [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(redis_dir),
                             "--save", "", "--appendonly", "no", "--loglevel", "warning"])
        self.env["PAYGATE_REDIS_URL"] = f"redis://127.0.0.1:{port}/0"

        def ping() -> bool:
            import redis

            client = redis.Redis.from_url(self.env["PAYGATE_REDIS_URL"], socket_connect_timeout=1)
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()

        self.wait_for("redis", ping)

    def prepare_database(self) -> dict[str, str]:
        """Migrates the database and creates the ``demo`` API client; returns its id and secrets."""
        from integrations.genesys.settings import GenesysSettings, SecretBox
        from kernel.clock import random_id, system_clock
        from kernel.db import make_engine, make_sessionmaker
        from paygate.migrate import upgrade
        from payments.clients import configure_genesys, create_client

        try:
            settings = Settings.from_env(self.env)
        except ConfigError as err:
            raise DemoError("config_error", f"configuration error: {err.message}") from None
        # children must find the same database and development secrets whatever their cwd
        self.env["PAYGATE_INSTANCE_PATH"] = str(settings.instance_path)
        self.env["PAYGATE_DATABASE_URL"] = settings.database_url
        upgrade(settings.database_url, lock_dir=settings.instance_path)
        engine = make_engine(settings.database_url)
        try:
            with make_sessionmaker(engine).begin() as db:
                created = create_client(db, name="demo", callback_url=f"{self.emulator_url}/webhooks/paygate",
                                        now=system_clock(), new_id=random_id)
                configure_genesys(db, created.client_id, GenesysSettings(
                    region="us_east_1", client_id=GENESYS_CLIENT_ID, client_secret=self.genesys_secret,
                    api_base=self.emulator_url, login_base=self.emulator_url, workflow_id=DEMO_WORKFLOW_ID,
                    write_attributes=True, start_workflow=True, sms_from_address=DEMO_SMS_FROM,
                    worktype_id=DEMO_WORKTYPE_ID),
                    SecretBox(settings.secret_key), production=False)
        finally:
            engine.dispose()
        self.out.line("demo", f"database {_redact(settings.database_url)} migrated; API client {created.client_id}")
        return created.as_dict()

    def start_services(self, signing_secret: str) -> None:
        py = sys.executable
        self.spawn("emulator", [py, "-m", "integrations.genesys.emulator", "--host", "127.0.0.1", "--port",
                                str(self.emulator_port), "--signing-secret", signing_secret,
                                "--genesys-client", f"{GENESYS_CLIENT_ID}:{self.genesys_secret}", "--quiet"])
        self.spawn("web", [py, "-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{self.port}",
                           "--no-control-socket", "app:create_app()"])
        # the lead's CLI (paygate/cli.py) provides `paygate worker`: delivery plus expiry/reconciliation
        self.spawn("worker", [py, "-m", "paygate.cli", "worker"])
        self.wait_for("the Genesys emulator",
                      lambda: httpx.get(f"{self.emulator_url}/api/received", timeout=2).status_code == 200)
        httpx.post(f"{self.emulator_url}/api/genesys/worktypes", timeout=5,
                   json={"id": DEMO_WORKTYPE_ID, "name": "Refund review"}).raise_for_status()
        self.wait_for("the web app", lambda: httpx.get(f"{self.base_url}/healthz", timeout=2).status_code == 200)

    def create_session(self, client: dict[str, str]) -> dict:
        """What a Genesys messaging flow does: a conversation exists (created in the emulator), the flow's
        "User Defined (OAuth)" credential gets a token, a data action creates the session for the
        conversation's customer participant, another texts the link (a failed send is reported, not fatal).
        The answer gains ``access_token`` for the money demos that follow."""
        with httpx.Client(timeout=10) as http:
            conversation, customer = self._conversation(http)
            r = http.post(f"{self.base_url}/oauth/token", data={"grant_type": "client_credentials"},
                          auth=(client["client_id"], client["client_secret"]))
            if r.status_code != 200:
                raise DemoError("token_failed", f"POST /oauth/token answered {r.status_code}: {r.text[:200]}")
            token = r.json()["access_token"]
            auth = {"Authorization": f"Bearer {token}"}
            session = self._session(http, auth, conversation["id"], customer["id"], "payment", "INV-1001")
            r = http.post(f"{self.base_url}/v1/payment-sessions/{session['session_id']}/send-link", headers=auth,
                          json={"to": DEMO_CUSTOMER_PHONE, "messenger_type": "sms"})
            if r.status_code == 200:
                self.out.line("demo", f"checkout link texted to {DEMO_CUSTOMER_PHONE} through the emulator")
            else:
                self.out.line("demo", f"send-link answered {r.status_code}: {r.text[:200]}")
            return {**session, "access_token": token}

    def _conversation(self, http: httpx.Client, media_type: str = "message") -> tuple[dict, dict]:
        r = http.post(f"{self.emulator_url}/api/genesys/conversations", json={
            "media_type": media_type, "participants": [
                {"purpose": "customer", "name": "Demo Customer", "address": DEMO_CUSTOMER_PHONE},
                {"purpose": "agent", "name": "Demo Agent"}]})
        if r.status_code != 201:
            raise DemoError("conversation_failed", f"the emulator answered {r.status_code}: {r.text[:200]}")
        conversation = r.json()
        return conversation, next(p for p in conversation["participants"] if p["purpose"] == "customer")

    def _session(self, http: httpx.Client, auth: dict, conversation_id: str, participant_id: str, intent: str,
                 reference: str, channel: str = "messaging") -> dict:
        body = {"conversation_id": conversation_id, "participant_id": participant_id,
                "customer_account_id": "ACME-1001", "intent": intent, "amount": 2500, "currency": "USD",
                "channel": channel, "reference": reference}
        r = http.post(f"{self.base_url}/v1/payment-sessions", json=body, headers=auth)
        if r.status_code != 201:
            raise DemoError("session_failed", f"POST /v1/payment-sessions answered {r.status_code}: {r.text[:200]}")
        return r.json()

    def money_after_authorization(self, token: str) -> dict:
        """The rest of the money's life, started so the emulator's pages show it within seconds: a hold to pay
        on the page and then capture or release; a voice payment with the sandbox's dispute card (a chargeback
        arrives a few seconds later, through the signed Stripe webhook path); a voice payment with the card
        whose refunds fail, refunded by wrap-up code (the failure lands in the review queue and is written back).
        Returns the ids for the banner; a step that fails is reported, not fatal."""
        auth = {"Authorization": f"Bearer {token}"}
        out: dict = {}
        with httpx.Client(timeout=15) as http:
            conversation, customer = self._conversation(http)
            hold = self._session(http, auth, conversation["id"], customer["id"], "hold", "DISPUTE-HOLD-1")
            out.update(hold_checkout_url=hold["checkout_url"], hold_session_id=hold["session_id"])
            for number, key in ((DISPUTE_CARD, "disputed_payment_id"), (REFUND_FAIL_CARD, "refunded_payment_id")):
                conversation, customer = self._conversation(http, "call")
                s = self._session(http, auth, conversation["id"], customer["id"], "payment", f"VOICE-{number[-4:]}",
                                  channel="voice")
                r = http.post(f"{self.base_url}/v1/payment-sessions/{s['session_id']}/card", headers=auth,
                              json={"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123"})
                if r.status_code != 200 or r.json().get("outcome") != "approved":
                    self.out.line("demo", f"voice payment with …{number[-4:]} answered {r.status_code}")
                    continue
                view = http.get(f"{self.base_url}/v1/payment-sessions/{s['session_id']}", headers=auth).json()
                out[key] = view["payment_id"]
            if out.get("refunded_payment_id"):
                r = http.post(f"{self.base_url}/v1/refunds", headers=auth, json={
                    "payment_id": out["refunded_payment_id"], "disposition_code": "REFUND_FULL",
                    "reason": "requested_by_customer"})
                if r.status_code == 201:
                    out["failing_refund_id"] = r.json()["refund_id"]
                    self.out.line("demo", f"refund {out['failing_refund_id']} by wrap-up code REFUND_FULL created; "
                                          "the card's bank will refuse it in a moment (review queue)")
        return out

    def _command_lines(self, info: DemoInfo) -> str:
        if not info.access_token:
            return ""
        b, t = self.base_url, info.access_token
        lines = ["  Try the money after the authorization (this access token is valid for an hour):",
                 f"      export TOKEN='{t}'"]
        if info.hold_session_id:
            lines += ["      # after paying the hold above: its payment, then capture $15.00 of it (or void it)",
                      f"      P=$(curl -s {b}/v1/payment-sessions/{info.hold_session_id} -H \"Authorization: Bearer "
                      f"$TOKEN\" | jq -r .payment_id)",
                      f"      curl -s -X POST {b}/v1/payments/$P/capture -H \"Authorization: Bearer $TOKEN\" "
                      f"-H 'Content-Type: application/json' -d '{{\"amount\": 1500}}'",
                      "      # or let it lapse: move the sandbox clock 7 days (hold.expiring, then hold.expired)",
                      f"      curl -s -X POST {b}/v1/sandbox/clock -H \"Authorization: Bearer $TOKEN\" "
                      f"-H 'Content-Type: application/json' -d '{{\"advance_seconds\": 604800}}'"]
        if info.disputed_payment_id:
            lines += [f"      # the chargeback on {info.disputed_payment_id}, then close it as won, as Stripe would",
                      f"      D=$(curl -s \"{b}/v1/disputes?payment_id={info.disputed_payment_id}\" "
                      f"-H \"Authorization: Bearer $TOKEN\" | jq -r '.data[0].dispute_id')",
                      f"      curl -s -X POST {b}/v1/sandbox/disputes/$D/close -H \"Authorization: Bearer $TOKEN\" "
                      f"-H 'Content-Type: application/json' -d '{{\"status\": \"won\"}}'"]
        lines += ["      # refunds that failed and wait for a person (also: paygate refunds review)",
                  f"      curl -s \"{b}/v1/refunds?manual_review=required\" -H \"Authorization: Bearer $TOKEN\""]
        return "\n".join(lines) + "\n\n"

    def banner(self, info: DemoInfo) -> str:
        cards = "\n".join(f"      {number}   {what}" for number, what in TEST_CARDS)
        agent = f"  Agent view (status only):   {info.agent_url}\n" if info.agent_url else ""
        hold = (f"  A hold (authorize now, capture or release later):\n      {info.hold_checkout_url}\n"
                if info.hold_checkout_url else "")
        money = ""
        if info.disputed_payment_id:
            money += (f"  Payment {info.disputed_payment_id} (card …0259, by voice) is disputed within seconds: "
                      f"dispute.opened on the emulator\n")
        if info.failing_refund_id:
            money += (f"  Refund {info.failing_refund_id} (card …5126) fails at the bank: refund.failed, the review\n"
                      f"      disposition on the customer participant, a review workitem and the review queue\n")
        return (
            "\n"
            "==================================================================================\n"
            "  paygate demo is running\n\n"
            f"  Checkout page:              {info.checkout_url}\n"
            f"{agent}"
            f"  Genesys emulator:           {info.emulator_url}/   (signed callbacks as they arrive)\n"
            f"  Genesys conversation:       {info.emulator_url}/genesys   (the SMS, attributes, workflow runs)\n"
            f"  Checkout in an agent desktop iframe:\n"
            f"      {info.embed_url}\n"
            f"{hold}{money}\n"
            "  Test cards (any future expiry such as 12/30, any CVC such as 123):\n"
            f"{cards}\n\n"
            f"  API client {info.client_id}  secret {info.client_secret}\n"
            f"  (POST {self.base_url}/oauth/token with HTTP Basic, then POST /v1/payment-sessions for more links)\n\n"
            f"{self._command_lines(info)}"
            "  Press Ctrl-C to stop everything.\n"
            "==================================================================================\n\n"
        )

    def run(self, on_ready: Callable[[DemoInfo], None] | None = None) -> int:
        """Runs until ``stop`` is set (0) or a child dies (1). Startup failures print a reason and give 1."""
        self.env.update({
            "PAYGATE_PUBLIC_BASE_URL": self.base_url,
            "PAYGATE_FRAME_ANCESTORS": f"'self' {self.emulator_url}",
            "PYTHONUNBUFFERED": "1",
        })
        try:
            self.check_ports()
            self.start_redis()
            client = self.prepare_database()
            self.start_services(client["signing_secret"])
            session = self.create_session(client)
            try:
                money = self.money_after_authorization(session["access_token"])
            except (httpx.HTTPError, DemoError) as err:
                self.out.line("demo", f"the money demos did not start: {err}")
                money = {}
            info = DemoInfo(checkout_url=session["checkout_url"], agent_url=session.get("agent_url"),
                            session_id=session["session_id"], emulator_url=self.emulator_url,
                            embed_url=f"{self.emulator_url}/embed?url={quote(session['checkout_url'], safe='')}",
                            client_id=client["client_id"], client_secret=client["client_secret"],
                            hold_checkout_url=money.get("hold_checkout_url"),
                            hold_session_id=money.get("hold_session_id"),
                            disputed_payment_id=money.get("disputed_payment_id"),
                            failing_refund_id=money.get("failing_refund_id"),
                            access_token=session["access_token"])
            self.out.block(self.banner(info))
            if on_ready is not None:
                on_ready(info)
            while not self.stop.wait(0.2):
                dead = self.dead_child()
                if dead is not None:
                    self.out.line("demo", f"{dead.name} exited with status {dead.proc.returncode}; stopping")
                    return 1
            self.out.line("demo", "stopping")
            return 0
        except DemoError as err:
            if err.code == "interrupted":
                self.out.line("demo", "interrupted; stopping")
                return 0
            self.out.line("demo", f"error: {err.message}")
            return 2 if err.code == "port_in_use" else 1
        finally:
            self.shutdown()


def _redact(url: str) -> str:
    """A database URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - printing only
        return url.split("@")[-1]


def run_demo(*, port: int = 8000, emulator_port: int = 8010, redis_port: int | None = None,
             stop: threading.Event | None = None, on_ready: Callable[[DemoInfo], None] | None = None,
             out: TextIO | None = None) -> int:
    """Runs the demo until Ctrl-C/SIGTERM (or ``stop`` is set); returns the process exit status:
    0 after a requested stop, 1 when a child died or start-up failed, 2 when a port is taken.

    ``port``: the web app; ``emulator_port``: the Genesys emulator; ``redis_port``: the private Redis
    (default any free port; unused when ``PAYGATE_REDIS_URL`` is set). ``on_ready`` is called with the
    :class:`DemoInfo` once the link works; ``out`` receives the banner and the children's output.
    """
    stop = stop or threading.Event()
    demo = Demo(port=port, emulator_port=emulator_port, redis_port=redis_port, out=_Output(out or sys.stdout),
                stop=stop)
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        return demo.run(on_ready)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
