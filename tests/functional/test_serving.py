"""The shipped serving configuration (``gunicorn.conf.py``): a real gunicorn keeps answering polls and page loads
while card submissions wait on a slow gateway (``PAYGATE_SANDBOX_LATENCY_MS``), and the configuration file
loads with its environment overrides."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from kernel.clock import random_id, system_clock
from kernel.db import make_engine, make_sessionmaker
from kernel.settings import Settings
from paygate import processes
from payments.clients import create_client

ROOT = Path(__file__).resolve().parents[2]
LATENCY_MS = 1000
SUBMISSIONS = 20
FAST_MS = 500  # well under one gateway call: a poll never waits behind a submission
VISA = "4242424242424242"


class Server:
    """A gunicorn with the shipped configuration, on a free port, stopped (its whole process group) at the end."""

    def __init__(self, env: dict[str, str], log: Path):
        self.port = processes.free_port()
        self.base = f"http://{processes.HOST}:{self.port}"
        env = {**env, "PAYGATE_PUBLIC_BASE_URL": self.base}
        self.log = open(log, "ab")
        self.proc = subprocess.Popen(processes.gunicorn_command(self.port), cwd=ROOT, env=env, stdout=self.log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def dead(self) -> str | None:
        code = self.proc.poll()
        return None if code is None else f"gunicorn exited with status {code}"

    def wait_ready(self) -> None:
        processes.wait_until(lambda: httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200, timeout=60,
                             what="gunicorn to answer /healthz", abort=self.dead, error=AssertionError)

    def stop(self) -> None:
        processes.stop_processes([self.proc], timeout=15)
        self.log.close()


NO_RATE_LIMITS = {f"PAYGATE_RATE_LIMIT_{scope}": "1000000 per minute" for scope in (
    "API", "TOKEN", "TOKEN_FAILURES_CLIENT", "TOKEN_FAILURES_IP", "CHECKOUT_SESSION", "CHECKOUT_IP")}
"""Rate limits out of reach, for tests that load a server on purpose."""


def gunicorn_env(db_url: str, redis_url: str, state_dir, **paygate: str) -> dict[str, str]:
    """The environment of a test gunicorn: this process's without any ``PAYGATE_``/``GUNICORN_`` variable, then the
    test's database and Redis, the sandbox gateway, :data:`NO_RATE_LIMITS`, and ``paygate`` (``PAYGATE_*`` names)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAYGATE_", "GUNICORN_"))}
    env.update({"PAYGATE_ENV": "test", "PAYGATE_DATABASE_URL": db_url, "PAYGATE_REDIS_URL": redis_url,
                "PAYGATE_INSTANCE_PATH": str(state_dir / "instance"), "PAYGATE_GATEWAY": "sandbox",
                **NO_RATE_LIMITS, **paygate})
    return env


def new_api_client(db_url: str, name: str):
    """A new API client in the database at ``db_url`` (its callback URL goes nowhere); the created client, with its
    secret."""
    engine = make_engine(db_url)
    try:
        with make_sessionmaker(engine).begin() as db:
            return create_client(db, name=name, callback_url="http://127.0.0.1:9/unused", now=system_clock(),
                                 new_id=random_id)
    finally:
        engine.dispose()


@contextmanager
def running_servers(env: dict[str, str], state_dir, name: str, count: int = 1) -> Iterator[list[Server]]:
    """``count`` gunicorn instances with ``env``, each logging to ``logs/gunicorn-{name}-…`` in the state dir, ready
    when yielded and stopped after."""
    servers = []
    try:
        for i in range(count):
            log = state_dir / "logs" / f"gunicorn-{name}-{i}-{random_id('x')}.log"
            log.parent.mkdir(exist_ok=True)
            servers.append(Server(env, log))
        for server in servers:
            server.wait_ready()
        yield servers
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def slow_gateway_server(db_url, redis_url, redis_client, state_dir):
    """gunicorn (the shipped gunicorn.conf.py, 2 workers) on this test's database, the sandbox gateway taking
    :data:`LATENCY_MS` per call; yields ``(server, api_client)``."""
    env = gunicorn_env(db_url, redis_url, state_dir, PAYGATE_SANDBOX_LATENCY_MS=str(LATENCY_MS),
                       PAYGATE_WEB_WORKERS="2", PAYGATE_FRAUD_IP_ATTEMPTS_PER_HOUR="100000",
                       PAYGATE_FRAUD_CARD_SESSIONS_PER_HOUR="100000")
    client = new_api_client(db_url, "serving")
    with running_servers(env, state_dir, "serving") as (server,):
        yield server, client


def open_sessions(server: Server, client, count: int, *, prefix: str, timeout: float = 30):
    """Takes a token for ``client`` at ``server`` and opens ``count`` voice sessions of 25.00 USD (each its own
    customer ``{prefix}-{n}``); returns ``(http, auth_headers, session_views)`` (the caller closes ``http``)."""
    http = httpx.Client(base_url=server.base, timeout=timeout)
    r = http.post("/oauth/token", data={"grant_type": "client_credentials"},
                  auth=(client.client_id, client.client_secret))
    assert r.status_code == 200, r.text
    auth = {"Authorization": f"Bearer {r.json()['access_token']}"}
    views = []
    for n in range(count):
        r = http.post("/v1/payment-sessions", headers=auth, json={
            "conversation_id": f"conv-{n}", "participant_id": f"part-{n}", "customer_account_id": f"{prefix}-{n}",
            "amount": 2500, "currency": "USD", "channel": "voice", "reference": f"INV-{n}"})
        assert r.status_code == 201, r.text
        views.append(r.json())
    return http, auth, views


class Submissions:
    """Voice card submissions (Visa, approved) of ``session_ids`` at ``server``, one thread and connection each,
    all started at once. ``answers`` maps a session id to its response (or the exception); ``done`` is set once
    every one has answered; ``started`` is their start (``time.perf_counter``)."""

    def __init__(self, server: Server, auth: dict, session_ids: list[str], *, timeout: float):
        self.server, self.auth, self.count = server, auth, len(session_ids)
        self.answers: dict[str, httpx.Response | Exception] = {}
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._submit, args=(sid, timeout), daemon=True)
                        for sid in session_ids]
        self.started = time.perf_counter()
        for t in self.threads:
            t.start()

    def _submit(self, sid: str, timeout: float) -> None:
        try:
            with httpx.Client(base_url=self.server.base, timeout=timeout) as c:
                self.answers[sid] = c.post(f"/v1/payment-sessions/{sid}/card", headers=self.auth,
                                           json={"number": VISA, "exp_month": "12", "exp_year": "30", "cvc": "123"})
        except Exception as exc:  # reported by the callers' assertions
            self.answers[sid] = exc
        if len(self.answers) == self.count:
            self.done.set()

    def wait_processing(self, http: httpx.Client, count: int) -> None:
        """Waits (30 s at most, AssertionError) until ``count`` sessions are processing: in the gateway's hands."""
        def in_gateway() -> bool:
            r = http.get("/v1/payment-sessions", params={"status": "processing", "limit": 100}, headers=self.auth)
            return len(r.json()["data"]) >= count

        processes.wait_until(in_gateway, timeout=30, interval=0.02, what=f"{count} submissions processing",
                             abort=self.server.dead, error=AssertionError)

    def join(self, timeout: float | None = None) -> None:
        for t in self.threads:
            t.join(timeout)

    def not_approved(self) -> dict:
        """The answers that are not a 200 ``approved``."""
        return {sid: a for sid, a in self.answers.items()
                if isinstance(a, Exception) or a.status_code != 200 or a.json().get("outcome") != "approved"}


def _ms(t0: float) -> float:
    return (time.perf_counter() - t0) * 1000


def test_polls_and_pages_answer_fast_while_card_submissions_wait_on_a_slow_gateway(slow_gateway_server):
    server, client = slow_gateway_server
    http, auth, sessions = open_sessions(server, client, SUBMISSIONS + 1, prefix="SERVE")
    watched = sessions.pop()  # a customer who only opens the page, and a flow polling it
    for _ in range(4):  # both workers have served a poll and the page before timing
        assert http.get(f"/v1/payment-sessions/{watched['session_id']}", headers=auth).status_code == 200
        assert httpx.get(watched["checkout_url"], timeout=30).status_code == 200

    submissions = Submissions(server, auth, [s["session_id"] for s in sessions], timeout=60)
    answers = submissions.answers
    # the submissions are in the gateway's hands: at least half of them processing at once (two sync workers
    # could never have more than two), none answered yet
    submissions.wait_processing(http, SUBMISSIONS // 2)
    timings = []
    for _ in range(3):
        t0 = time.perf_counter()
        r = http.get(f"/v1/payment-sessions/{watched['session_id']}", headers=auth)
        timings.append(("poll", round(_ms(t0), 1), r.status_code, len(answers)))
        t0 = time.perf_counter()
        r = httpx.get(watched["checkout_url"], timeout=30)
        timings.append(("page", round(_ms(t0), 1), r.status_code, len(answers)))
    # measured while submissions still waited on the gateway, each far below one gateway call
    assert all(status == 200 for _, _, status, _ in timings), timings
    assert all(finished < SUBMISSIONS for _, _, _, finished in timings), timings
    assert max(ms for _, ms, _, _ in timings) < FAST_MS, timings

    # and the submissions all complete: approved, in about one gateway call each, not one after another
    assert submissions.done.wait(timeout=60), f"{len(answers)} of {SUBMISSIONS} submissions answered"
    elapsed = time.perf_counter() - submissions.started
    submissions.join()
    bad = submissions.not_approved()
    assert not bad, bad
    assert elapsed < SUBMISSIONS * LATENCY_MS / 1000 / 4, elapsed  # sync workers: 10 gateway calls in a row
    for s in sessions:
        assert http.get(f"/v1/payment-sessions/{s['session_id']}", headers=auth).json()["status"] == "approved"
    http.close()


def _loaded_config(env: dict[str, str], *argv: str) -> dict:
    """gunicorn's own parsing (``WSGIApplication``: config file, then ``GUNICORN_CMD_ARGS``, then ``argv``) run
    from the project's root in a child with ``env``; the resulting settings that matter here."""
    code = (
        "import json, sys\n"
        "from gunicorn.app.wsgiapp import WSGIApplication\n"
        "sys.argv = ['gunicorn', *sys.argv[1:]]\n"
        "cfg = WSGIApplication('%(prog)s [OPTIONS] [APP_MODULE]').cfg\n"
        "names = ['worker_class_str', 'workers', 'threads', 'bind', 'timeout', 'graceful_timeout', 'keepalive',\n"
        "         'accesslog', 'max_requests', 'max_requests_jitter', 'preload_app', 'worker_tmp_dir',\n"
        "         'control_socket_disable', 'control_socket']\n"
        "import gc\n"
        "hooks = {'post_fork': cfg.post_fork.__module__, 'post_worker_init': cfg.post_worker_init.__module__}\n"
        "cfg.post_worker_init(None)\n"
        "print(json.dumps({n: getattr(cfg, n) for n in names} | hooks | {'frozen': gc.get_freeze_count()}))\n"
    )
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PAYGATE_", "GUNICORN_")) and k != "PORT"}
    out = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, env={**base, **env}, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_gunicorn_picks_up_the_shipped_configuration_from_the_project_root():
    cfg = _loaded_config({}, "app:create_app()")  # no -c: gunicorn's default ./gunicorn.conf.py
    assert cfg["worker_class_str"] == "gthread"
    assert (cfg["workers"], cfg["threads"]) == (2, 128)
    assert cfg["bind"] == ["127.0.0.1:8000"]
    assert (cfg["timeout"], cfg["graceful_timeout"], cfg["keepalive"]) == (30, 30, 5)
    assert cfg["accesslog"] is None
    assert (cfg["max_requests"], cfg["max_requests_jitter"]) == (10_000, 1_000)
    assert cfg["preload_app"] is False
    assert cfg["worker_tmp_dir"] == ("/dev/shm" if os.access("/dev/shm", os.W_OK) else None)
    assert cfg["control_socket_disable"] is True
    assert cfg["post_fork"] == "__config__"  # the file's hook, not gunicorn's default (gunicorn.config)
    # once a worker has built the app, its objects are out of the garbage collector's full collections
    assert cfg["post_worker_init"] == "__config__" and cfg["frozen"] > 10_000


def test_the_environment_and_gunicorns_own_overrides_apply():
    cfg = _loaded_config({"PAYGATE_WEB_WORKERS": "3", "PAYGATE_WEB_THREADS": "8", "PAYGATE_BIND": "0.0.0.0:9000",
                          "PAYGATE_WEB_TIMEOUT": "60", "PAYGATE_WEB_KEEPALIVE": "75",
                          "PAYGATE_WEB_CONTROL_SOCKET": "/tmp/paygate-test.ctl"}, "app:create_app()")
    assert (cfg["workers"], cfg["threads"], cfg["bind"]) == (3, 8, ["0.0.0.0:9000"])
    assert (cfg["timeout"], cfg["keepalive"]) == (60, 75)
    assert (cfg["control_socket_disable"], cfg["control_socket"]) == (False, "/tmp/paygate-test.ctl")
    # GUNICORN_CMD_ARGS beats the file, the command line beats both; an explicit -c reads the same file
    cfg = _loaded_config({"PAYGATE_WEB_WORKERS": "3", "GUNICORN_CMD_ARGS": "--workers 5 --bind 127.0.0.1:7000"},
                         "-c", str(processes.GUNICORN_CONF), "--bind", "127.0.0.1:7001", "app:create_app()")
    assert (cfg["worker_class_str"], cfg["workers"], cfg["bind"]) == ("gthread", 5, ["127.0.0.1:7001"])
    # the pools of each process follow the threads (kernel.settings reads the same variable)
    settings = Settings.from_env({"PAYGATE_ENV": "test", "PAYGATE_WEB_THREADS": "8"})
    assert (settings.db_pool_size, settings.db_max_overflow, settings.redis_max_connections) == (8, 4, 24)


@pytest.mark.parametrize("value", ["0", "many", "1000"])
def test_a_bad_worker_count_stops_gunicorn_with_the_variables_name(value):
    code = "import runpy, sys; runpy.run_path(sys.argv[1])"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PAYGATE_", "GUNICORN_"))}
    out = subprocess.run([sys.executable, "-c", code, str(processes.GUNICORN_CONF)], cwd=ROOT, capture_output=True,
                         text=True, env={**base, "PAYGATE_WEB_WORKERS": value}, timeout=60)
    assert out.returncode != 0 and "PAYGATE_WEB_WORKERS must be" in out.stderr
