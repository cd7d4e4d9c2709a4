"""``paygate demo``: the whole product on one machine, started the way production runs it (README, "Processes and commands").

Processes, all on 127.0.0.1, each in its own process group and with its output prefixed by its name:

* ``redis``: a private redis-server in a temporary directory (skipped when ``PAYGATE_REDIS_URL`` is set);
* ``emulator``: the Genesys emulator (``python -m integrations.genesys.emulator``), holding the demo client's signing
  secret so it can verify every callback, and a Genesys OAuth client for the write-back;
* ``web``: ``gunicorn -c gunicorn.conf.py 'app:create_app()'`` (the shipped serving configuration: 2 workers of 16
  threads unless ``PAYGATE_WEB_WORKERS``/``PAYGATE_WEB_THREADS`` say otherwise);
* ``worker``: ``paygate worker``, which delivers the events to the emulator.

Before starting them it migrates the configured database and creates an API client named ``demo`` whose
callback URL is the emulator and whose Genesys settings (docs/api.md, "Genesys write-back") point at the emulator: participant
attributes and a workflow start per event, SMS from a demo number. Once everything answers it does what
a Genesys flow does: creates a messaging conversation in the emulator, gets a client-credentials token,
``POST /v1/payment-sessions`` for that conversation, texts the link with ``send-link``, and prints the
checkout link, the agent view, the emulator pages and the test cards. Before printing them it also starts the
money after the authorization (a hold, a chargeback, a failing refund) and the contact-center features (a top-up
whose amount the customer chooses, a monthly subscription keyed by DTMF with the caller's number, a customer whose
second link answers busy, a conversation closed with its link pending, the report commands); each of these is
reported and none is fatal. Ctrl-C (SIGINT) or SIGTERM stops every child and removes the temporary files;
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
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, TextIO
from urllib.parse import quote

import httpx

from kernel.errors import ConfigError
from kernel.settings import Settings
from payments.subscriptions import period_bounds

from .processes import free_port, gunicorn_command, port_free, stop_processes, wait_until

ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

GENESYS_CLIENT_ID = "demo-genesys-oauth-client"
DEMO_WORKFLOW_ID = "demo-billing-workflow"
DEMO_WORKTYPE_ID = "5d1e6a0c-7b2f-4c3d-8e9a-0f1b2c3d4e5f"
"""The Task Management worktype failed refunds become workitems of (registered at the emulator)."""
DEMO_SMS_FROM = "+15550100100"
DEMO_DISPLAY_NAME = "Acme Mobile"
"""The name the demo client shows customers: the page title and heading, the SMS and the agent view."""
DEMO_CUSTOMER_PHONE = "+15550100199"
DEMO_CALLER_ANI = "tel:+15550100199"
"""``Call.Ani`` of the demo's voice payments, the way Genesys gives it (docs/api.md, "Voice signals and MOTO")."""
DEMO_ACCOUNT = "ACME-1001"
BUSY_ACCOUNT = "ACME-2002"
"""The customer whose payment the demo leaves processing, so another link of theirs answers busy."""
BUSY_CALLER_ANI = "tel:+15550100288"
DEMO_RECONCILE_AFTER_SECONDS = "900"
"""The demo's default ``PAYGATE_RECONCILE_AFTER_SECONDS``: the payment left processing (and so the busy answer)
lasts as long as the busy link (15 minutes), unless the environment sets it or the sandbox clock moves."""

TEST_CARDS = (
    ("4242 4242 4242 4242", "approves"),
    ("4000 0000 0000 0002", "is declined (the customer may try again)"),
    ("4100 0000 0000 0019", "is blocked as highest risk and goes to an agent"),
    ("4000 0000 0000 0259", "approves, then is disputed (a chargeback) a few seconds later"),
    ("4000 0000 0000 5126", "approves, but its refunds fail and go to the review queue"),
)
DISPUTE_CARD = "4000000000000259"
REFUND_FAIL_CARD = "4000000000005126"
APPROVE_CARD = "4242424242424242"
TIMEOUT_CARD = "4000000000009904"
"""Sandbox only: the gateway never answers, the session stays processing until the reconciler looks."""
MONTH_AND_A_DAY = 31 * 86400


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
    queue; ``access_token``: a bearer token for the printed commands (valid an hour).

    Contact-center features (each None when its step failed): ``topup_checkout_url``: a top-up link where the
    customer types the amount ($10.00 to $200.00); ``subscription_id`` / ``subscription_token``: a monthly
    subscription paid by DTMF, with ``renewal_advance_seconds`` (the sandbox clock move that reaches its first
    renewal) and ``next_renewal_advance_seconds`` (from there to the second); ``voice_payment_id``: its first
    payment (``entry_mode: dtmf``, ``moto: true``); ``busy_checkout_url``: a link of customer ACME-2002 that
    answers busy while ``busy_processing_session_id`` is processing; ``closed_conversation_id`` /
    ``closed_session_id``: a conversation closed with its pending link, canceled ``conversation_ended``;
    ``report_day``: the day (UTC) the printed report commands cover."""

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
    topup_checkout_url: str | None = None
    topup_session_id: str | None = None
    subscription_id: str | None = None
    subscription_token: str | None = None
    renewal_advance_seconds: int | None = None
    next_renewal_advance_seconds: int | None = None
    voice_payment_id: str | None = None
    busy_checkout_url: str | None = None
    busy_session_id: str | None = None
    busy_processing_session_id: str | None = None
    closed_conversation_id: str | None = None
    closed_session_id: str | None = None
    report_day: date | None = None


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
                                        now=system_clock(), new_id=random_id, display_name=DEMO_DISPLAY_NAME)
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
        self.spawn("web", gunicorn_command(self.port, python=py))  # the shipped gunicorn.conf.py
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
                 reference: str, channel: str = "messaging", **fields) -> dict:
        """``POST /v1/payment-sessions`` ($25.00 for ACME-1001 unless ``fields`` say otherwise)."""
        body = {"conversation_id": conversation_id, "participant_id": participant_id,
                "customer_account_id": DEMO_ACCOUNT, "intent": intent, "amount": 2500, "currency": "USD",
                "channel": channel, "reference": reference, **fields}
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
                r = self._key_card(http, auth, s["session_id"], number, conversation["id"])
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

    def _key_card(self, http: httpx.Client, auth: dict, session_id: str, number: str, call_id: str,
                  ani: str = DEMO_CALLER_ANI) -> httpx.Response:
        """What a Genesys secure flow's data action sends after the caller keyed the card by DTMF, with the
        flow's ``Call.Ani`` and conversation id as voice signals."""
        return http.post(f"{self.base_url}/v1/payment-sessions/{session_id}/card", headers=auth, timeout=60,
                         json={"number": number, "exp_month": "12", "exp_year": "30", "cvc": "123", "ani": ani,
                               "call_id": call_id})

    def contact_center(self, token: str) -> dict:
        """The contact-center features, each step reported and none fatal (docs/api.md, "Contact-center rules",
        "Subscriptions", "Voice signals and MOTO"): a top-up link where the customer chooses the amount; a
        monthly subscription keyed by DTMF with the caller's number (its first payment is ``entry_mode: dtmf``,
        ``moto: true``); a payment of ACME-2002 left processing with the sandbox timeout card and a second link
        of that customer that answers busy; a conversation closed with its link still pending. Returns the
        ids and links for the banner."""
        auth = {"Authorization": f"Bearer {token}"}
        out: dict = {}
        steps = (("the top-up link", self._topup), ("the subscription", self._subscription),
                 ("the busy customer", self._busy), ("the conversation close", self._close))
        with httpx.Client(timeout=15) as http:
            for what, step in steps:
                try:
                    out.update(step(http, auth))
                except (httpx.HTTPError, DemoError, KeyError, ValueError) as err:
                    self.out.line("demo", f"{what} did not start: {err}")
        return out

    def _topup(self, http: httpx.Client, auth: dict) -> dict:
        conversation, customer = self._conversation(http)
        s = self._session(http, auth, conversation["id"], customer["id"], "topup", "TOPUP-1",
                          amount_range={"min": 1000, "max": 20000})
        self.out.line("demo", f"top-up session {s['session_id']}: the customer chooses $10.00 to $200.00 "
                              "(suggested $25.00)")
        return {"topup_checkout_url": s["checkout_url"], "topup_session_id": s["session_id"]}

    def _subscription(self, http: httpx.Client, auth: dict) -> dict:
        conversation, customer = self._conversation(http, "call")
        s = self._session(http, auth, conversation["id"], customer["id"], "subscription", "PLAN-MONTHLY",
                          channel="voice", subscription={"interval": "month", "interval_count": 1})
        r = self._key_card(http, auth, s["session_id"], APPROVE_CARD, conversation["id"])
        if r.status_code != 200 or r.json().get("outcome") != "approved":
            raise DemoError("subscription_failed", f"the subscription's card answered {r.status_code}: "
                                                   f"{r.text[:200]}")
        view = http.get(f"{self.base_url}/v1/payment-sessions/{s['session_id']}", headers=auth).json()
        sub = http.get(f"{self.base_url}/v1/subscriptions/{view['subscription_id']}", headers=auth).json()
        payment = http.get(f"{self.base_url}/v1/payments/{view['payment_id']}", headers=auth).json()
        self.out.line("demo", f"subscription {sub['subscription_id']} {sub['status']} (monthly $25.00, keyed by "
                              f"DTMF); its first payment {payment['payment_id']}: entry_mode {payment['entry_mode']}, "
                              f"moto {str(payment['moto']).lower()}")
        # business time now is the first period's start: the clock moves that reach the next two renewals
        start = datetime.fromisoformat(sub["current_period_start"].replace("Z", "+00:00"))
        _, end1 = period_bounds(start, sub["interval"], sub["interval_count"], 1)
        _, end2 = period_bounds(start, sub["interval"], sub["interval_count"], 2)
        return {"subscription_id": sub["subscription_id"], "subscription_token": sub["token"],
                "voice_payment_id": payment["payment_id"],
                "renewal_advance_seconds": int((end1 - start).total_seconds()) + 60,
                "next_renewal_advance_seconds": int((end2 - end1).total_seconds())}

    def _busy(self, http: httpx.Client, auth: dict) -> dict:
        conversation, customer = self._conversation(http, "call")
        first = self._session(http, auth, conversation["id"], customer["id"], "payment", "BUSY-1", channel="voice",
                              customer_account_id=BUSY_ACCOUNT)
        r = self._key_card(http, auth, first["session_id"], TIMEOUT_CARD, conversation["id"], ani=BUSY_CALLER_ANI)
        if r.status_code != 200 or r.json().get("outcome") != "processing":
            raise DemoError("busy_failed", f"the timeout card answered {r.status_code}: {r.text[:200]}")
        conversation, customer = self._conversation(http)
        second = self._session(http, auth, conversation["id"], customer["id"], "payment", "BUSY-2",
                               customer_account_id=BUSY_ACCOUNT)
        self.out.line("demo", f"{BUSY_ACCOUNT}'s payment {first['session_id']} is processing (the gateway timed out); "
                              f"their other link {second['session_id']} answers busy until it is settled")
        return {"busy_processing_session_id": first["session_id"], "busy_checkout_url": second["checkout_url"],
                "busy_session_id": second["session_id"]}

    def _close(self, http: httpx.Client, auth: dict) -> dict:
        conversation, customer = self._conversation(http)
        s = self._session(http, auth, conversation["id"], customer["id"], "payment", "INV-CLOSED")
        r = http.post(f"{self.base_url}/v1/conversations/{conversation['id']}/close", headers=auth)
        if r.status_code != 200 or s["session_id"] not in r.json().get("canceled", []):
            raise DemoError("close_failed", f"closing the conversation answered {r.status_code}: {r.text[:200]}")
        self.out.line("demo", f"conversation {conversation['id']} ended: its pending link {s['session_id']} canceled "
                              "(payment_session.canceled, conversation_ended)")
        return {"closed_conversation_id": conversation["id"], "closed_session_id": s["session_id"]}

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
        return "\n".join(lines + self._contact_center_commands(info)) + "\n\n"

    def _contact_center_commands(self, info: DemoInfo) -> list[str]:
        b = self.base_url
        auth = '-H "Authorization: Bearer $TOKEN"'
        json = "-H 'Content-Type: application/json'"

        def clock(seconds: int, why: str) -> str:
            return (f"      curl -s -X POST {b}/v1/sandbox/clock {auth} {json} "
                    f"-d '{{\"advance_seconds\": {seconds}}}'   # {why}")

        lines = []
        if info.subscription_id and info.renewal_advance_seconds and info.next_renewal_advance_seconds:
            sub = info.subscription_id
            lines += [f"      # subscription {sub}, in order: to its first renewal (payment.approved, then",
                      "      # subscription.renewed on the emulator; this also settles ACME-2002's payment and",
                      "      # ends the busy answer), then the next renewal declines: past_due, a failed retry,",
                      "      # then a retry that pays",
                      clock(info.renewal_advance_seconds, "a month: renewed"),
                      f"      curl -s {b}/v1/subscriptions/{sub} {auth} | jq '{{status, period, next_charge_at}}'",
                      f"      curl -s -X POST {b}/v1/sandbox/tokens/{info.subscription_token}/decline_next {auth} "
                      f"{json} -d '{{\"count\": 2}}'",
                      clock(info.next_renewal_advance_seconds, "the next month: payment_failed, past_due"),
                      clock(86400, "a day later: the first retry declines too"),
                      clock(2 * 86400, "two days later: the second retry pays, active"),
                      f"      curl -s {b}/v1/subscriptions/{sub} {auth} | jq '{{status, failed_attempts, period}}'"]
        if info.voice_payment_id:
            lines += ["      # a payment keyed by DTMF: entry_mode dtmf, moto true",
                      f"      curl -s {b}/v1/payments/{info.voice_payment_id} {auth} | jq '{{entry_mode, moto}}'"]
        if info.report_day:
            since, until = info.report_day.isoformat(), (info.report_day + timedelta(days=1)).isoformat()
            lines += ["      # today's payments as CSV, from the API or from the command line",
                      f"      curl -s \"{b}/v1/reports/payments.csv?created_after={since}&created_before={until}\" "
                      f"{auth}",
                      f"      {self._paygate_command()} report payments --since {since} --until {until} "
                      f"--client {info.client_id}",
                      "      # the operator's picture of the day as one offline HTML file with charts (approval rate,",
                      "      # declines, fraud blocks, refunds, disputes, gateway latency)",
                      f"      {self._paygate_command()} report html --since {since} --until {until} "
                      f"-o paygate-report.html"]
        lines += ["      # operations: readiness (database, Redis, the gateway breaker) and the breaker a flow checks",
                  f"      curl -s {b}/readyz",
                  f"      curl -s {b}/v1/gateway-status {auth}"]
        return lines

    def _paygate_command(self) -> str:
        """How to run ``paygate`` from another shell against the demo's database and Redis."""
        exe = Path(sys.executable).parent / "paygate"
        env = [f"PAYGATE_INSTANCE_PATH={self.env['PAYGATE_INSTANCE_PATH']}"]
        if self.env.get("PAYGATE_REDIS_URL"):
            env.append(f"PAYGATE_REDIS_URL={self.env['PAYGATE_REDIS_URL']}")
        db_url = self.env.get("PAYGATE_DATABASE_URL", "")
        default_url = f"sqlite:///{Path(self.env['PAYGATE_INSTANCE_PATH']) / 'paygate.sqlite3'}"
        if db_url != default_url and _redact(db_url) == db_url:  # a password stays in the reader's environment
            env.append(f"PAYGATE_DATABASE_URL='{db_url}'")
        return " ".join(env + [str(exe)])

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
            f"{self._contact_center_banner(info)}"
            "  Test cards (any future expiry such as 12/30, any CVC such as 123):\n"
            f"{cards}\n\n"
            f"  API client {info.client_id}  secret {info.client_secret}\n"
            f"  (POST {self.base_url}/oauth/token with HTTP Basic, then POST /v1/payment-sessions for more links)\n"
            f"  API reference (browsable): {self.base_url}/docs\n\n"
            f"{self._command_lines(info)}"
            "  Press Ctrl-C to stop everything.\n"
            "==================================================================================\n\n"
        )

    def _contact_center_banner(self, info: DemoInfo) -> str:
        items = []
        if info.topup_checkout_url:
            items.append("  A top-up where the customer chooses the amount ($10.00 to $200.00, suggested $25.00):\n"
                         f"      {info.topup_checkout_url}")
        if info.subscription_id:
            items.append(f"  Subscription {info.subscription_id}: monthly $25.00, the card keyed by DTMF on a call "
                         "(subscription.created\n      on the emulator); the commands below renew it and show a "
                         "failed renewal and its retries")
        if info.voice_payment_id:
            items.append("  Voice signals: the voice payments send the caller's number (ani) and the call id; "
                         f"payment\n      {info.voice_payment_id} shows entry_mode dtmf and moto true (a "
                         "telephone order, outside SCA)")
        if info.busy_checkout_url:
            items.append(f"  Busy: {BUSY_ACCOUNT}'s voice payment {info.busy_processing_session_id} is left "
                         "processing (sandbox card\n      4000 0000 0000 9904: the gateway never answers). This "
                         "other link of theirs answers \"A previous\n      payment on your account is still being "
                         "processed\" (no attempt used) until the reconciler settles\n      the first one "
                         f"({self.env.get('PAYGATE_RECONCILE_AFTER_SECONDS')} s, or at once after a clock move):\n"
                         f"      {info.busy_checkout_url}")
        if info.closed_session_id:
            items.append(f"  Conversation close: conversation {info.closed_conversation_id} ended with its link "
                         f"{info.closed_session_id}\n      still pending: payment_session.canceled, cancel_reason "
                         "conversation_ended on the emulator")
        if not items:
            return ""
        return "  Contact center:\n" + "\n".join(items) + "\n\n"

    def run(self, on_ready: Callable[[DemoInfo], None] | None = None) -> int:
        """Runs until ``stop`` is set (0) or a child dies (1). Startup failures print a reason and give 1."""
        self.env.update({
            "PAYGATE_PUBLIC_BASE_URL": self.base_url,
            "PAYGATE_FRAME_ANCESTORS": f"'self' {self.emulator_url}",
            "PYTHONUNBUFFERED": "1",
        })
        self.env.setdefault("PAYGATE_RECONCILE_AFTER_SECONDS", DEMO_RECONCILE_AFTER_SECONDS)
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
                            access_token=session["access_token"], report_day=datetime.now(timezone.utc).date(),
                            **self.contact_center(session["access_token"]))
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
