"""``python -m bench.run [--duration S] [--concurrency N] [--rounds R] [--procs P]``

Runs every phase below on each of ``--engines`` (default: ``sqlite``, one instance; then ``postgresql``,
``--pg-instances`` instances on a private PostgreSQL cluster it starts) and prints each target of issue 9 with
MET / NOT MET (docs/benchmarks.md). Per engine it starts a private paygate stack on loopback — Redis (temp dir,
private port), the database, gunicorn with the shipped ``gunicorn.conf.py`` (2 gthread workers × 128 threads,
admission control) serving the app, ``paygate worker``
delivering callbacks, a minimal callback receiver — plus the same gunicorn configuration serving
:mod:`bench.baseline_app`, and a second paygate server on the same database and Redis whose sandbox gateway
takes ``--slow-latency-ms`` per call, then measures with one load harness (Python threads, one ``httpx.Client``
each, spread over ``P`` processes):

1. baseline: ``GET /`` on the bare Flask app — requests/s, p50, p99;
2. session creations: ``POST /v1/payment-sessions`` with a bearer token — requests/s, p50, p99, and
   the ratio to the baseline;
3. card submissions: each simulated customer creates a session and GETs the page (untimed), then
   POSTs the card form (timed, sandbox card 4242…4242) — submissions/s, p50, p99;
4. captures: each simulated client creates a ``hold`` session and pays it by the voice API (untimed), then
   captures the payment (``POST /v1/payments/{id}/capture``, timed) — captures/s, p50, p99;
5. refunds: each client creates a session and pays it by the voice API (untimed), then refunds the payment by
   disposition (``POST /v1/refunds``, timed) — refunds/s, p50, p99;
6. callback lag: ``events.created_at`` (naive UTC, µs) to the receiver's clock on receipt, joined on
   ``Paygate-Event-Id`` — p50, p99;
7. renewals (after every other phase, because it moves the sandbox clock and event times are business time):
   ``--renewals`` subscriptions are created by ``POST /v1/subscriptions`` with ``start_at`` one day ahead
   (untimed), then the sandbox clock is moved past it and the stack's own ``paygate worker`` charges them all
   (its renewal task, the code path of every renewal and retry) — renewals/s = count / seconds from the clock
   move until the last one is charged;
7b. slow gateway (every round, after refunds): ``--slow-concurrency`` (200) customers as in 3. against the
   server whose sandbox gateway takes ``--slow-latency-ms`` (250) per call — submissions/s against the CPU
   bound (cores × 1000 / ms; ms = the server's CPU per customer in phase 3 + the harness's in this phase),
   while one client polls ``GET /v1/payment-sessions/{id}`` of another session every 50 ms — poll p50, p99;
8. peak RSS (``VmHWM``) of the gunicorn master, each web worker, the delivery worker and Redis.

Each measurement is repeated ``R`` short rounds and the median of each figure is reported. A table goes
to stdout and a JSON file to ``bench/results/``. Every process started is stopped on exit, on Ctrl-C,
on SIGTERM and on failure. The fraud rule limits are raised to 10^9 for this stack so that the velocity
rules (one card, one IP, thousands of attempts) do not send every submission to an agent, and so are the
``PAYGATE_RATE_LIMIT_*`` rates (one API client, one address): the limits are still checked in Redis on every
request, so their cost is in the figures.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import queue
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

from paygate import processes

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
RESULTS = Path(__file__).resolve().parent / "results"
CARD = "4242 4242 4242 4242"
HIGH_LIMIT = str(10**9)
TARGETS = {  # issue 9's acceptance (docs/benchmarks.md)
    "slow_submit_share_of_cpu_bound_min": 0.80,
    "slow_poll_p99_ms_max": 100.0,
    "web_cpu_ms_per_customer_max": 15.0,
    "create_ratio_min": 0.60,
    "callback_lag_p99_ms_max": 250.0,
    "web_worker_peak_rss_mb_max": 150.0,
}
_FIELDS = re.compile(r'name="(csrf_token|submission_id)"[^>]*value="([^"]*)"')
_FIELDS_REV = re.compile(r'value="([^"]*)"[^>]*name="(csrf_token|submission_id)"')


class BenchError(Exception):
    """A benchmark step failed (a process died, a server did not come up, every request failed)."""


def wait_until(check, *, timeout: float, what: str, procs=()) -> None:
    """Polls ``check`` until truthy; raises :class:`BenchError` on timeout or when a process in ``procs`` died."""

    def dead() -> str | None:
        gone = next((p for p in procs if p.popen.poll() is not None), None)
        return f"{gone.name} exited with status {gone.popen.returncode}" if gone is not None else None

    processes.wait_until(check, timeout=timeout, what=what, abort=dead, error=BenchError)


# --- the callback receiver ---------------------------------------------------------------------------------

def serve_receiver(port: int, record: str) -> None:
    """Runs a minimal callback receiver on 127.0.0.1:``port`` until SIGTERM: every POST is answered 200
    and one JSON line ``{"event_id", "t"}`` (``t``: unix seconds, float, taken as soon as the body has
    been read) is appended to ``record``. It does not verify signatures: the lag is paygate's, not ours."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    lock = threading.Lock()
    fh = open(record, "a", encoding="utf-8", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):  # noqa: N802 - http.server naming
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            t = time.time()
            line = json.dumps({"event_id": self.headers.get("Paygate-Event-Id"), "t": t})
            with lock:
                fh.write(line + "\n")
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_GET(self):  # noqa: N802 - health check
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        fh.close()


# --- the stack ----------------------------------------------------------------------------------------------

@dataclass
class Proc:
    name: str
    popen: subprocess.Popen = field(repr=False)


PGBIN = Path("/usr/lib/postgresql/15/bin")
"""Where the PostgreSQL server binaries are (Debian's postgresql-15), for the ``postgresql`` engine."""


class BenchStack:
    """Every process of the benchmark, under one temp dir; :meth:`stop` is safe to call at any point.

    ``engine``: ``"sqlite"`` (a file in the temp dir, or ``database_url``) or ``"postgresql"`` (``database_url``,
    or else a private PostgreSQL cluster started here as the ``postgres`` user, like ``tests/services.py``).
    ``instances``: how many paygate instances (each a gunicorn + a ``paygate worker``), slow-gateway instances and
    baseline instances share the database and Redis; the harness spreads its clients over them. Each gunicorn runs
    :func:`web_workers` processes (``PAYGATE_WEB_WORKERS``): the instances on this one host share its cores."""

    def __init__(self, tmp: Path, database_url: str | None = None, slow_latency_ms: int = 250, *,
                 engine: str = "sqlite", instances: int = 1):
        self.tmp = tmp
        self.logs = tmp / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.procs: list[Proc] = []
        self.engine = engine
        self.instances = instances
        self.recv_port, self.redis_port, self.pg_port = (processes.free_port() for _ in range(3))
        self.bases = [f"http://127.0.0.1:{processes.free_port()}" for _ in range(instances)]
        self.slows = [f"http://127.0.0.1:{processes.free_port()}" for _ in range(instances)]
        self.baselines = [f"http://127.0.0.1:{processes.free_port()}" for _ in range(instances)]
        self.base, self.slow, self.baseline = self.bases[0], self.slows[0], self.baselines[0]
        self.slow_latency_ms = slow_latency_ms
        self.receiver = f"http://127.0.0.1:{self.recv_port}"
        self.own_postgres = engine == "postgresql" and not database_url
        if self.own_postgres:
            database_url = f"postgresql+psycopg://postgres@127.0.0.1:{self.pg_port}/postgres"
        self.database_url = database_url or f"sqlite:///{tmp / 'bench.sqlite3'}"
        self.record = tmp / "received.jsonl"
        self.env = {
            **os.environ,
            "PAYGATE_ENV": "development",
            "PAYGATE_INSTANCE_PATH": str(tmp / "instance"),
            "PAYGATE_DATABASE_URL": self.database_url,
            "PAYGATE_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "PAYGATE_PUBLIC_BASE_URL": self.base,
            "PAYGATE_GATEWAY": "sandbox",
            "PAYGATE_FRAUD_IP_ATTEMPTS_PER_HOUR": HIGH_LIMIT,
            "PAYGATE_FRAUD_CARD_SESSIONS_PER_HOUR": HIGH_LIMIT,
            "PAYGATE_FRAUD_CARD_DECLINES_PER_DAY": HIGH_LIMIT,
            # the bench is one API client and one address on purpose: rate limits high, still counted in Redis
            **{f"PAYGATE_RATE_LIMIT_{scope}": f"{HIGH_LIMIT} per minute" for scope in (
                "API", "TOKEN", "TOKEN_FAILURES_CLIENT", "TOKEN_FAILURES_IP", "CHECKOUT_SESSION", "CHECKOUT_IP")},
            "PYTHONUNBUFFERED": "1",
            "PAYGATE_WEB_WORKERS": str(web_workers(instances)),
        }
        self.client: dict = {}

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> Proc:
        log = open(self.logs / f"{name}.log", "ab")
        popen = subprocess.Popen(args, cwd=ROOT, env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL,
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        proc = Proc(name, popen)
        self.procs.append(proc)
        return proc

    def proc(self, name: str) -> Proc:
        return next(p for p in self.procs if p.name == name)

    def group(self, kind: str) -> list[Proc]:
        """The processes of one kind over every instance (``web``, ``web2``, ...)."""
        return [p for p in self.procs if re.fullmatch(rf"{kind}\d*", p.name)]

    @staticmethod
    def _name(kind: str, i: int) -> str:
        return kind if i == 0 else f"{kind}{i + 1}"

    def _start_postgres(self) -> None:
        """initdb + postgres (as the ``postgres`` user, fsync off, like the test suite's server) under the temp
        dir on a private port; it runs in the foreground as one of the stack's processes."""
        if not (PGBIN / "postgres").exists() or shutil.which("runuser") is None:
            raise BenchError(f"PostgreSQL 15 is not installed ({PGBIN}) or runuser is missing; "
                             "pass --database-url or --engines sqlite")
        os.chmod(self.tmp, 0o755)
        data, sock = self.tmp / "pg", self.tmp / "pgsock"
        for d in (data, sock):
            d.mkdir()
            shutil.chown(d, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", str(PGBIN / "initdb"), "-D", str(data), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, stdout=subprocess.DEVNULL)
        self.spawn("postgres", ["runuser", "-u", "postgres", "--", str(PGBIN / "postgres"), "-D", str(data),
                                "-p", str(self.pg_port), "-k", str(sock), "-c", "listen_addresses=127.0.0.1",
                                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                                "-c", "max_connections=600"])
        wait_until(lambda: processes.port_open(self.pg_port), timeout=30, what="postgres", procs=self.procs)

    def start(self) -> None:
        redis_dir = self.tmp / "redis"
        redis_dir.mkdir()
        server = shutil.which("redis-server")
        if server is None:
            raise BenchError("redis-server is not installed")
        self.spawn("redis", [server, "--port", str(self.redis_port), "--bind", "127.0.0.1", "--dir",
                             str(redis_dir), "--save", "", "--appendonly", "no", "--loglevel", "warning"])
        wait_until(lambda: processes.port_open(self.redis_port), timeout=15, what="redis", procs=self.procs)
        if self.own_postgres:
            self._start_postgres()
        subprocess.run([str(BIN / "paygate"), "db", "upgrade"], cwd=ROOT, env=self.env, check=True,
                       stdout=subprocess.DEVNULL)
        out = subprocess.run([str(BIN / "paygate"), "clients", "create", "bench", "--callback-url",
                              f"{self.receiver}/callbacks"], cwd=ROOT, env=self.env, check=True,
                             capture_output=True, text=True).stdout
        self.client = json.loads(out.strip().splitlines()[-1])
        self.spawn("receiver", [sys.executable, "-c", "import sys; from bench.run import serve_receiver; "
                                "serve_receiver(int(sys.argv[1]), sys.argv[2])", str(self.recv_port),
                                str(self.record)])
        # every server runs the shipped gunicorn.conf.py (PAYGATE_WEB_WORKERS/THREADS from the environment)
        for i in range(self.instances):
            self.spawn(self._name("web", i), processes.gunicorn_command(_port(self.bases[i])),
                       env={"PAYGATE_PUBLIC_BASE_URL": self.bases[i]})
            self.spawn(self._name("baseline", i), processes.gunicorn_command(
                _port(self.baselines[i]), "bench.baseline_app:create_app()"))
            # the same app behind a slow gateway (sandbox latency), on the same database and Redis
            self.spawn(self._name("slow", i), processes.gunicorn_command(_port(self.slows[i])), env={
                "PAYGATE_SANDBOX_LATENCY_MS": str(self.slow_latency_ms), "PAYGATE_PUBLIC_BASE_URL": self.slows[i]})
            self.spawn(self._name("worker", i), [str(BIN / "paygate"), "worker"])
        wait_until(lambda: httpx.get(f"{self.receiver}/", timeout=2).status_code == 200, timeout=30,
                   what="the callback receiver", procs=self.procs)
        for what, urls, path in (("the paygate web app", self.bases, "/healthz"),
                                 ("the baseline app", self.baselines, "/"),
                                 ("the slow-gateway web app", self.slows, "/healthz")):
            for url in urls:
                wait_until(lambda: httpx.get(url + path, timeout=2).status_code == 200, timeout=60,
                           what=f"{what} at {url}", procs=self.procs)
        # every worker of each server must be up before timing (gunicorn boots them in parallel)
        workers = int(self.env["PAYGATE_WEB_WORKERS"])
        for kind in ("web", "baseline", "slow"):
            for proc in self.group(kind):
                wait_until(lambda: len(_children(proc.popen.pid)) >= workers, timeout=30, what=f"{proc.name} workers")

    def token(self) -> str:
        r = httpx.post(f"{self.base}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(self.client["client_id"], self.client["client_secret"]), timeout=10)
        r.raise_for_status()
        return r.json()["access_token"]

    def redis_commands(self) -> int:
        """Redis's ``total_commands_processed`` counter (to report commands per benchmarked request)."""
        import redis

        client = redis.Redis(port=self.redis_port, socket_timeout=5)
        try:
            return int(client.info("stats")["total_commands_processed"])
        finally:
            client.close()

    def cpu_seconds(self) -> dict[str, float]:
        """CPU time (user + system, seconds) used so far by each server-side group of processes (every
        instance's)."""
        tick = os.sysconf("SC_CLK_TCK")

        def kids(kind):
            return [pid for p in self.group(kind) for pid in _children(p.popen.pid)]

        def own(kind):
            return [p.popen.pid for p in self.group(kind)]

        # a gunicorn group counts its master too: the master's reaped-children times hold the CPU of the workers
        # that max_requests recycled during the phase (gone from /proc, their time would be lost otherwise)
        groups = {"web": own("web") + kids("web"), "baseline": own("baseline") + kids("baseline"),
                  "slow web": own("slow") + kids("slow"),
                  "delivery worker": own("worker"), "redis": own("redis"), "receiver": own("receiver")}
        if self.own_postgres:  # the postmaster's children: one backend per connection, plus its helpers
            groups["postgres"] = [pid for p in self.group("postgres") for child in _children(p.popen.pid)
                                  for pid in [child, *_children(child), *_grandchildren(child)]]
        out = {}
        for name, pids in groups.items():
            total = 0
            for pid in set(pids):
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    total += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
                except (OSError, IndexError, ValueError):
                    pass
            out[name] = total / tick
        return out

    def check_alive(self) -> None:
        for p in self.procs:
            if p.popen.poll() is not None:
                raise BenchError(f"{p.name} exited with status {p.popen.returncode}; see {self.logs}")

    def peak_rss(self) -> dict[str, float]:
        """VmHWM in MB per process: each gunicorn master and web worker (the slow-gateway servers' too), the
        delivery workers, Redis (and, for reference, the baseline app's processes and the receiver)."""
        out: dict[str, float] = {}
        for kind, label in (("web", "web"), ("slow", "slow web"), ("baseline", "baseline")):
            for n, proc in enumerate(self.group(kind), 1):
                suffix = f" (instance {n})" if self.instances > 1 else ""
                out[f"{label} master{suffix}"] = _vm_hwm_mb(proc.popen.pid)
                for i, pid in enumerate(sorted(_children(proc.popen.pid)), 1):
                    out[f"{label} worker {i}{suffix}"] = _vm_hwm_mb(pid)
        for n, proc in enumerate(self.group("worker"), 1):
            out["delivery worker" + (f" {n}" if self.instances > 1 else "")] = _vm_hwm_mb(proc.popen.pid)
        out["redis"] = _vm_hwm_mb(self.proc("redis").popen.pid)
        out["callback receiver"] = _vm_hwm_mb(self.proc("receiver").popen.pid)
        return out

    def stop(self) -> None:
        """SIGTERM to each process group (apps first, Redis last), SIGKILL after 5 s."""
        apps = [p.popen for p in reversed(self.procs) if p.name not in ("redis", "postgres")]
        infra = [p.popen for p in self.procs if p.name in ("redis", "postgres")]
        for group in (apps, infra):
            processes.stop_processes(group, timeout=5)


def _children(pid: int) -> list[int]:
    try:
        return [int(x) for x in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _grandchildren(pid: int) -> list[int]:
    return [g for c in _children(pid) for g in _children(c)]


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _harness_cpu() -> float:
    """CPU seconds used by this process's finished children (the load harness processes)."""
    t = os.times()
    return t.children_user + t.children_system


def _vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


# --- the load harness ----------------------------------------------------------------------------------------

def _session_body(intent: str = "payment") -> dict:
    # one customer per session: a customer's second session answers busy while the first is processing
    return {"conversation_id": str(uuid.uuid4()), "participant_id": str(uuid.uuid4()),
            "customer_account_id": f"BENCH-{uuid.uuid4().hex[:12]}", "intent": intent, "amount": 2500,
            "currency": "USD", "channel": "messaging", "reference": "BENCH"}


def _paid_payment(c: httpx.Client, p: dict, auth: dict, intent: str) -> str | None:
    """Creates a session and pays it by the voice API (sandbox card 4242…4242); the payment id, or None."""
    r = c.post(p["base"] + "/v1/payment-sessions", json=_session_body(intent), headers=auth)
    if r.status_code != 201:
        return None
    sid = r.json()["session_id"]
    r = c.post(f"{p['base']}/v1/payment-sessions/{sid}/card", headers=auth,
               json={"number": CARD.replace(" ", ""), "exp_month": "12", "exp_year": "30", "cvc": "123"})
    if r.status_code != 200 or r.json().get("outcome") != "approved":
        return None
    return c.get(f"{p['base']}/v1/payment-sessions/{sid}", headers=auth).json().get("payment_id")


def _hidden_fields(html: str) -> dict[str, str]:
    fields = dict(_FIELDS.findall(html))
    if len(fields) < 2:
        fields.update({n: v for v, n in _FIELDS_REV.findall(html)})
    return fields


def _one(scenario: str, c: httpx.Client, p: dict) -> tuple[float | None, bool]:
    """One iteration of ``scenario``; returns (seconds of the timed request or None, succeeded)."""
    if scenario == "baseline":
        t = time.perf_counter()
        r = c.get(p["baseline"] + "/")
        return time.perf_counter() - t, r.status_code == 200
    auth = {"Authorization": f"Bearer {p['token']}"}
    if scenario == "create":
        t = time.perf_counter()
        r = c.post(p["base"] + "/v1/payment-sessions", json=_session_body(), headers=auth)
        return time.perf_counter() - t, r.status_code == 201
    if scenario in ("capture", "refund"):
        payment_id = _paid_payment(c, p, auth, "hold" if scenario == "capture" else "payment")
        if payment_id is None:
            return None, False
        t = time.perf_counter()
        if scenario == "capture":
            r = c.post(f"{p['base']}/v1/payments/{payment_id}/capture", json={}, headers=auth)
            return time.perf_counter() - t, r.status_code == 200
        r = c.post(p["base"] + "/v1/refunds", headers=auth,
                   json={"payment_id": payment_id, "amount": "1250", "disposition_code": "REFUND_PARTIAL",
                         "conversation_id": str(uuid.uuid4()), "reason": "requested_by_customer"})
        return time.perf_counter() - t, r.status_code == 201
    # "submit": a customer — session + page untimed, the card POST timed
    c.cookies.clear()
    r = c.post(p["base"] + "/v1/payment-sessions", json=_session_body(), headers=auth)
    if r.status_code != 201:
        return None, False
    url = r.json()["checkout_url"]
    page = c.get(url)
    fields = _hidden_fields(page.text)
    if page.status_code != 200 or len(fields) < 2:
        return None, False
    form = {**fields, "number": CARD, "expiry": "12/30", "cvc": "123", "cardholder_name": "Bench Customer"}
    t = time.perf_counter()
    r = c.post(url, data=form)
    return time.perf_counter() - t, r.status_code == 303


def _load_process(scenario: str, params: dict, threads: int, duration: float, ready, start, results,
                  offset: int = 0) -> None:
    """One harness process: ``threads`` threads, each with its own client, loop ``scenario`` until the
    shared deadline; puts ``{"lat": [seconds...], "errors", "t0", "t1"}`` on ``results``. Thread ``i`` talks to
    instance ``(offset + i) % n`` of ``params["bases"]``/``params["baselines"]`` (when given)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and terminates us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if params.get("nice"):
        os.nice(params["nice"])  # below the server's priority (--harness-nice): see HARNESS_NICE
    lat: list[float] = []
    errors = [0]
    ends: list[float] = []
    lock = threading.Lock()
    go = threading.Event()
    t0 = [0.0]

    def loop(k: int) -> None:
        mine, bad = [], 0
        p = dict(params)
        for key, many in (("base", "bases"), ("baseline", "baselines")):
            if params.get(many):
                p[key] = params[many][k % len(params[many])]
        with httpx.Client(timeout=30, follow_redirects=False) as c:
            go.wait()
            deadline = t0[0] + duration
            while time.monotonic() < deadline:
                try:
                    seconds, ok = _one(scenario, c, p)
                except httpx.HTTPError:
                    seconds, ok = None, False
                if ok and seconds is not None:
                    mine.append(seconds)
                else:
                    bad += 1
        with lock:
            lat.extend(mine)
            errors[0] += bad
            ends.append(time.monotonic())

    workers = [threading.Thread(target=loop, args=(offset + i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    ready.put(1)
    start.wait()
    t0[0] = time.monotonic()
    go.set()
    for w in workers:
        w.join()
    results.put({"lat": lat, "errors": errors[0], "t0": t0[0], "t1": max(ends)})


@dataclass
class LoadResult:
    """One measured phase: completed timed requests per second of wall time and their latency (ms)."""

    rps: float
    p50_ms: float
    p99_ms: float
    count: int
    errors: int
    seconds: float


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of a non-empty list."""
    s = sorted(values)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


HARNESS_NICE = 10
"""Niceness the load harness's processes add to themselves (``--harness-nice``). In production the customers'
browsers and the Genesys flows run on other machines; here the harness shares the 2 cores with the server, and at
the same priority the scheduler hands it the CPU while a server thread is ready to run, which shows up as server
latency. Niced, it gets the cores when the server does not need them. CPU-time figures (per operation, the CPU
bound) do not depend on it; the slow-gateway phase's polling client runs in the main process and is not niced, so
its latencies include its own scheduling."""


def run_load(scenario: str, params: dict, *, concurrency: int, duration: float, procs: int) -> LoadResult:
    """Runs ``concurrency`` simulated clients (threads spread over ``procs`` forked processes) for
    ``duration`` seconds; no new iteration starts after the deadline, started ones finish."""
    ctx = mp.get_context("fork")
    ready, results, start = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = max(1, min(procs, concurrency))
    shares = [concurrency // procs + (1 if i < concurrency % procs else 0) for i in range(procs)]
    children = [ctx.Process(target=_load_process, args=(scenario, params, n, duration, ready, start, results,
                                                        sum(shares[:i])), daemon=True) for i, n in enumerate(shares)]
    try:
        for ch in children:
            ch.start()
        for _ in children:
            ready.get(timeout=60)
        start.set()
        parts = [results.get(timeout=duration + 120) for _ in children]
    except queue.Empty:
        raise BenchError(f"load harness for {scenario} did not report") from None
    finally:
        for ch in children:
            if ch.is_alive():
                ch.join(5)
            if ch.is_alive():
                ch.terminate()
                ch.join()
    lat = [x for part in parts for x in part["lat"]]
    errors = sum(part["errors"] for part in parts)
    seconds = max(p["t1"] for p in parts) - min(p["t0"] for p in parts)
    if not lat:
        raise BenchError(f"{scenario}: no request succeeded ({errors} failed)")
    return LoadResult(rps=round(len(lat) / seconds, 1), p50_ms=round(percentile(lat, 50) * 1000, 2),
                      p99_ms=round(percentile(lat, 99) * 1000, 2), count=len(lat), errors=errors,
                      seconds=round(seconds, 2))


# --- renewals --------------------------------------------------------------------------------------------------

def _subscription_token(params: dict) -> str:
    """The vault token of one session paid by the voice API (the card every bench subscription charges)."""
    auth = {"Authorization": f"Bearer {params['token']}"}
    with httpx.Client(timeout=30) as c:
        payment_id = _paid_payment(c, params, auth, "payment")
        if payment_id is None:
            raise BenchError("renewals: the voice payment that gives the token failed")
        return c.get(f"{params['base']}/v1/payments/{payment_id}", headers=auth).json()["token"]


def _advance_clock(params: dict, seconds: int) -> datetime:
    r = httpx.post(params["base"] + "/v1/sandbox/clock", json={"advance_seconds": seconds}, timeout=30,
                   headers={"Authorization": f"Bearer {params['token']}"})
    if r.status_code != 200:
        raise BenchError(f"renewals: the sandbox clock answered {r.status_code}")
    return datetime.fromisoformat(r.json()["now"].replace("Z", "+00:00"))


def _charged(database_url: str, reference: str) -> int:
    """How many subscriptions with ``reference`` have had their first period charged."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as con:
            return con.execute(text("SELECT count(*) FROM subscriptions WHERE reference = :ref AND period >= 1"),
                               {"ref": reference}).scalar_one()
    finally:
        engine.dispose()


def measure_renewals(stack: BenchStack, params: dict, token: str, *, count: int, tag: str,
                     timeout: float = 300) -> dict:
    """Creates ``count`` subscriptions on ``token`` due one day ahead (business time; 20 client threads,
    untimed), moves the sandbox clock past that moment and times the stack's worker until it has charged every
    one. Returns ``{"rps", "count", "seconds", "errors"}`` (errors: creations that failed)."""
    reference = f"BENCH-{tag}-{uuid.uuid4().hex[:8]}"
    start_at = _advance_clock(params, 1) + timedelta(days=1)
    auth = {"Authorization": f"Bearer {params['token']}"}
    body = {"token": token, "amount": 1500, "currency": "USD", "interval": "month", "interval_count": 1,
            "customer_account_id": "BENCH-1", "reference": reference,
            "start_at": start_at.isoformat().replace("+00:00", "Z")}
    made, errors, lock, todo = [0], [0], threading.Lock(), iter(range(count))

    def create() -> None:
        with httpx.Client(timeout=30) as c:
            while True:
                with lock:
                    n = next(todo, None)
                if n is None:
                    return
                r = c.post(params["base"] + "/v1/subscriptions", json=body,
                           headers={**auth, "Idempotency-Key": f"{reference}-{n}"})
                with lock:
                    if r.status_code == 201:
                        made[0] += 1
                    else:
                        errors[0] += 1

    threads = [threading.Thread(target=create, daemon=True) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if not made[0]:
        raise BenchError(f"renewals: no subscription was created ({errors[0]} failed)")
    t0 = time.monotonic()
    _advance_clock(params, 86400 + 1)
    while _charged(stack.database_url, reference) < made[0]:
        if time.monotonic() - t0 > timeout:
            raise BenchError(f"renewals: the worker did not charge {made[0]} subscriptions in {timeout} s")
        stack.check_alive()
        time.sleep(0.05)
    seconds = time.monotonic() - t0
    return {"rps": round(made[0] / seconds, 1), "count": made[0], "seconds": round(seconds, 2), "errors": errors[0]}


# --- callback lag -----------------------------------------------------------------------------------------

def _received(record: Path) -> dict[str, float]:
    """event id -> first receipt time (unix seconds) from the receiver's record file."""
    first: dict[str, float] = {}
    if record.exists():
        for line in record.read_text().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a line still being written
            first.setdefault(item["event_id"], item["t"])
    return first


def _events_since(database_url: str, since: datetime) -> dict[str, float]:
    """event id -> created_at as unix seconds, for events created at or after ``since`` (naive UTC)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.connect() as con:
            rows = con.execute(text("SELECT id, created_at FROM events WHERE created_at >= :since"),
                               {"since": since}).all()
    finally:
        engine.dispose()
    out = {}
    for event_id, created in rows:
        if isinstance(created, str):  # SQLite without type information
            created = datetime.fromisoformat(created)
        out[event_id] = created.replace(tzinfo=timezone.utc).timestamp()
    return out


def callback_lag(stack: BenchStack, since: datetime, *, timeout: float = 60) -> dict:
    """Waits (up to ``timeout`` s) until every event created since ``since`` has reached the receiver,
    then returns ``{"events", "p50_ms", "p99_ms", "max_ms", "missing"}``."""
    events = _events_since(stack.database_url, since)
    deadline = time.monotonic() + timeout
    while True:
        got = _received(stack.record)
        missing = [e for e in events if e not in got]
        if not missing or time.monotonic() >= deadline:
            break
        stack.check_alive()
        time.sleep(0.2)
    lags = [got[e] - created for e, created in events.items() if e in got]
    if not lags:
        raise BenchError("no callback reached the receiver")
    return {"events": len(lags), "p50_ms": round(percentile(lags, 50) * 1000, 1),
            "p99_ms": round(percentile(lags, 99) * 1000, 1), "max_ms": round(max(lags) * 1000, 1),
            "missing": len(missing)}


# --- slow gateway -----------------------------------------------------------------------------------------

POLL_INTERVAL = 0.05
"""Seconds between two polls of the slow-gateway phase's watched session (a Genesys flow's cadence, roughly)."""


def measure_slow(stack: BenchStack, params: dict, run) -> dict:
    """The slow-gateway phase: ``run()`` drives the card-submission customers against the server whose sandbox
    gateway takes ``--slow-latency-ms`` per call, while one client polls ``GET /v1/payment-sessions/{id}`` of
    another session every :data:`POLL_INTERVAL` s. Returns ``run()``'s figures plus ``"poll": {"count",
    "errors", "p50_ms", "p99_ms", "max_ms"}``."""
    auth = {"Authorization": f"Bearer {params['token']}"}
    with httpx.Client(timeout=30) as c:
        r = c.post(params["base"] + "/v1/payment-sessions", json=_session_body(), headers=auth)
        if r.status_code != 201:
            raise BenchError(f"slow gateway: creating the polled session answered {r.status_code}")
        url = f"{params['base']}/v1/payment-sessions/{r.json()['session_id']}"
    lat: list[float] = []
    errors = [0]
    stop = threading.Event()

    def poll() -> None:
        with httpx.Client(timeout=30) as c:
            while not stop.is_set():
                t = time.perf_counter()
                try:
                    ok = c.get(url, headers=auth).status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    lat.append(time.perf_counter() - t)
                else:
                    errors[0] += 1
                stop.wait(POLL_INTERVAL)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        result = run()
    finally:
        stop.set()
        poller.join()
    if not lat:
        raise BenchError("slow gateway: no poll succeeded")
    result["poll"] = {"count": len(lat), "errors": errors[0], "p50_ms": round(percentile(lat, 50) * 1000, 2),
                      "p99_ms": round(percentile(lat, 99) * 1000, 2), "max_ms": round(max(lat) * 1000, 2)}
    return result


def cpu_bound(submit_cpu_ms: dict[str, float], slow_cpu_ms: dict[str, float], rps: float) -> dict:
    """What the CPU allows the slow-gateway phase: ``cores × 1000 / ms`` customers per second, where ``ms`` is
    what one customer (create + page + card POST) costs the server side when it never waits — every server
    process's CPU per customer in the zero-latency card phase (``submit_cpu_ms``) — plus what the load harness,
    which shares the cores, spent per customer in the slow phase itself (``slow_cpu_ms``: 200 threads cost it
    more than 20). Also the bound of the server side alone, and ``rps`` as a share of the first."""
    cores = os.cpu_count() or 1
    server = sum(v for k, v in submit_cpu_ms.items() if k != "load harness")
    total = server + slow_cpu_ms.get("load harness", 0.0)
    bound = cores * 1000 / total if total else float("inf")
    return {"cpu_ms_per_customer": round(total, 2), "server_cpu_ms_per_customer": round(server, 2),
            "cpu_bound_rps": round(bound, 1),
            "server_cpu_bound_rps": round(cores * 1000 / server, 1) if server else None,
            "share_of_bound": round(rps / bound, 3)}


def web_workers(instances: int) -> int:
    """Web processes per gunicorn: ``PAYGATE_WEB_WORKERS`` when the environment sets it, else this host's cores
    divided among the ``instances`` that share it, at least 1 (2 for one instance on 2 cores, 1 each for two).
    Every gunicorn of the stack (paygate, slow gateway, baseline) runs that many, so the phases compare like with
    like; docs/operations.md ("Sizing") gives the same rule to operators."""
    raw = os.environ.get("PAYGATE_WEB_WORKERS", "").strip()
    if raw:
        return int(raw)
    return max(1, (os.cpu_count() or 1) // max(1, instances))


def serving_config(env: dict[str, str]) -> str:
    """How the bench's gunicorns serve (the shipped ``gunicorn.conf.py`` and its environment)."""
    from kernel.settings import Settings

    s = Settings.from_env({**env, "PAYGATE_ENV": "development"})
    workers = env.get("PAYGATE_WEB_WORKERS") or "cores ÷ instances per host"
    return (f"-c gunicorn.conf.py (gthread): PAYGATE_WEB_WORKERS={workers}, "
            f"PAYGATE_WEB_THREADS={s.web_threads}, PAYGATE_ADMISSION_SLOTS={s.admission_slots}, "
            f"PAYGATE_WEB_SWITCH_INTERVAL_MS={env.get('PAYGATE_WEB_SWITCH_INTERVAL_MS') or 1}")


# --- the run ----------------------------------------------------------------------------------------------

def _machine() -> dict:
    info = {"cpus": os.cpu_count(), "python": platform.python_version(), "kernel": platform.release()}
    try:
        info["os"] = next(line.split("=", 1)[1].strip('"') for line in Path("/etc/os-release").read_text()
                          .splitlines() if line.startswith("PRETTY_NAME="))
    except (OSError, StopIteration):
        info["os"] = platform.platform()
    try:
        info["cpu"] = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                           .splitlines() if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return info


def _median(rounds: list[dict], *keys: str) -> float:
    values = []
    for r in rounds:
        v = r
        for k in keys:
            v = v[k]
        values.append(v)
    return round(statistics.median(values), 2)


def bench_engine(args: argparse.Namespace, log, engine: str) -> dict:
    """Every phase on one database engine (``sqlite``: one instance; ``postgresql``: ``--pg-instances``
    instances on one PostgreSQL and one Redis); the figures, their medians and the targets."""
    tmp = Path(tempfile.mkdtemp(prefix=f"paygate-bench-{engine}-"))
    instances = 1 if engine == "sqlite" else args.pg_instances
    url = args.database_url if (args.database_url or "").startswith(engine) else None
    stack = BenchStack(tmp, url, args.slow_latency_ms, engine=engine, instances=instances)
    try:
        t_start = time.monotonic()
        log(f"[{engine}] starting the stack ({instances} instance(s)) under {tmp} ...")
        stack.start()
        params = {"base": stack.base, "baseline": stack.baseline, "bases": stack.bases,
                  "baselines": stack.baselines, "token": stack.token(), "nice": args.harness_nice}
        load = dict(concurrency=args.concurrency, procs=args.procs)
        log(f"[{engine}] stack up in {time.monotonic() - t_start:.1f} s; warming up ...")
        def warm(scenario: str, p: dict, **how) -> None:
            try:
                run_load(scenario, p, duration=args.warmup, **how)
            except BenchError as err:  # a busy host can start the threads after a short warm-up's deadline
                log(f"[{engine}] warm-up of {scenario}: {err}")

        for scenario in ("baseline", "create", "submit", "capture", "refund"):
            warm(scenario, params, **load)
        slow_params = {**params, "base": stack.slow, "bases": stack.slows}
        # at most 25 customers (threads) per harness process: more make the harness's own CPU per customer climb
        slow_load = dict(concurrency=args.slow_concurrency, procs=max(args.procs, -(-args.slow_concurrency // 25)))
        warm("submit", slow_params, **slow_load)
        rounds = []

        def measure(scenario: str, p: dict = params, **how) -> dict:
            before, cpu0, harness0 = stack.redis_commands(), stack.cpu_seconds(), _harness_cpu()
            result = asdict(run_load(scenario, p, duration=args.duration, **{**load, **how}))
            ops = result["count"] + result["errors"]
            result["redis_commands_per_op"] = round((stack.redis_commands() - before - 1) / ops, 1)
            cpu1 = stack.cpu_seconds()
            result["cpu_ms_per_op"] = {k: round((cpu1[k] - cpu0[k]) * 1000 / ops, 2) for k in cpu1}
            result["cpu_ms_per_op"]["load harness"] = round((_harness_cpu() - harness0) * 1000 / ops, 2)
            stack.check_alive()
            return result

        for i in range(1, args.rounds + 1):
            rnd = {}
            rnd["baseline"] = measure("baseline")
            rnd["create"] = measure("create")
            rnd["create_ratio"] = round(rnd["create"]["rps"] / rnd["baseline"]["rps"], 3)
            since = datetime.now(timezone.utc).replace(tzinfo=None)
            rnd["submit"] = measure("submit")
            rnd["callback_lag"] = callback_lag(stack, since)
            rnd["capture"] = measure("capture")
            rnd["refund"] = measure("refund")
            rnd["slow"] = measure_slow(stack, slow_params, lambda: measure("submit", slow_params, **slow_load))
            rnd["slow"].update(cpu_bound(rnd["submit"]["cpu_ms_per_op"], rnd["slow"]["cpu_ms_per_op"],
                                         rnd["slow"]["rps"]))
            rounds.append(rnd)
            log(f"[{engine}] round {i}: baseline {rnd['baseline']['rps']} req/s, create {rnd['create']['rps']} req/s "
                f"({rnd['create_ratio']:.0%}), submit {rnd['submit']['rps']}/s p99 {rnd['submit']['p99_ms']} ms, "
                f"web CPU {rnd['submit']['cpu_ms_per_op']['web']} ms/customer, "
                f"callback lag p99 {rnd['callback_lag']['p99_ms']} ms, capture {rnd['capture']['rps']}/s "
                f"p99 {rnd['capture']['p99_ms']} ms, refund {rnd['refund']['rps']}/s p99 {rnd['refund']['p99_ms']} ms")
            log(f"[{engine}] round {i}, slow gateway ({args.slow_latency_ms} ms, {args.slow_concurrency} customers): "
                f"submit {rnd['slow']['rps']}/s = {rnd['slow']['share_of_bound']:.0%} of the CPU bound "
                f"{rnd['slow']['cpu_bound_rps']}/s, poll p50 {rnd['slow']['poll']['p50_ms']} ms "
                f"p99 {rnd['slow']['poll']['p99_ms']} ms")
        token = _subscription_token(params)
        for i, rnd in enumerate(rounds, start=1):  # last: moving the clock shifts event times (business time)
            rnd["renewal"] = measure_renewals(stack, params, token, count=args.renewals, tag=f"R{i}")
            log(f"[{engine}] renewals round {i}: {rnd['renewal']['rps']}/s ({rnd['renewal']['count']} in "
                f"{rnd['renewal']['seconds']} s)")
        rss = stack.peak_rss()
    finally:
        stack.stop()
        if args.keep_tmp:
            log(f"[{engine}] kept {tmp} (logs in {stack.logs})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    med = {
        "baseline": {k: _median(rounds, "baseline", k) for k in ("rps", "p50_ms", "p99_ms")},
        "create": {k: _median(rounds, "create", k) for k in ("rps", "p50_ms", "p99_ms")},
        "create_ratio": _median(rounds, "create_ratio"),
        "submit": {k: _median(rounds, "submit", k) for k in ("rps", "p50_ms", "p99_ms")},
        "web_cpu_ms_per_customer": _median(rounds, "submit", "cpu_ms_per_op", "web"),
        "callback_lag": {k: _median(rounds, "callback_lag", k) for k in ("p50_ms", "p99_ms", "max_ms")},
        "capture": {k: _median(rounds, "capture", k) for k in ("rps", "p50_ms", "p99_ms")},
        "refund": {k: _median(rounds, "refund", k) for k in ("rps", "p50_ms", "p99_ms")},
        "renewal": {k: _median(rounds, "renewal", k) for k in ("rps", "seconds")},
        "slow": {**{k: _median(rounds, "slow", k) for k in (
            "rps", "p50_ms", "p99_ms", "cpu_ms_per_customer", "server_cpu_ms_per_customer", "cpu_bound_rps",
            "server_cpu_bound_rps", "share_of_bound")},
                 "poll": {k: _median(rounds, "slow", "poll", k) for k in ("p50_ms", "p99_ms", "max_ms")}},
    }
    workers = [v for k, v in rss.items() if k.startswith(("web worker", "slow web worker"))]
    med["web_worker_peak_rss_mb"] = max(workers) if workers else float("nan")
    return {
        "engine": engine,
        "instances": instances,
        "web_workers_per_instance": int(stack.env["PAYGATE_WEB_WORKERS"]),
        "database": stack.database_url.split(":", 1)[0],
        "rounds": rounds,
        "median": med,
        "peak_rss_mb": rss,
        "targets": targets(med),
        "wall_seconds": round(time.monotonic() - t_start, 1),
    }


def targets(med: dict) -> dict[str, dict]:
    """Each acceptance target of issue 9 (docs/benchmarks.md): ``{name: {"value", "limit", "met", "unit"}}``."""
    t = TARGETS
    bound = med["slow"]["cpu_bound_rps"]
    checks = [
        (f"slow gateway: card submissions/s >= {t['slow_submit_share_of_cpu_bound_min']:.0%} of the CPU bound "
         f"({bound}/s)", med["slow"]["share_of_bound"], t["slow_submit_share_of_cpu_bound_min"], ">=", "of bound"),
        ("slow gateway: concurrent session poll p99", med["slow"]["poll"]["p99_ms"], t["slow_poll_p99_ms_max"], "<=",
         "ms"),
        ("web CPU per customer (create + page + card POST)", med["web_cpu_ms_per_customer"],
         t["web_cpu_ms_per_customer_max"], "<=", "ms"),
        ("session creations / bare-Flask baseline", med["create_ratio"], t["create_ratio_min"], ">=", "x"),
        ("callback lag p99", med["callback_lag"]["p99_ms"], t["callback_lag_p99_ms_max"], "<=", "ms"),
        ("peak RSS per web worker (largest)", med["web_worker_peak_rss_mb"], t["web_worker_peak_rss_mb_max"], "<=",
         "MB"),
    ]
    return {name: {"value": value, "limit": limit, "op": op, "unit": unit,
                   "met": bool(value >= limit if op == ">=" else value <= limit)}
            for name, value, limit, op, unit in checks}


def bench(args: argparse.Namespace, log) -> dict:
    """Runs :func:`bench_engine` for each of ``args.engines``; one JSON-able result."""
    t_start = time.monotonic()
    engines = {}
    for engine in args.engines:
        engines[engine] = bench_engine(args, log, engine)
    env = {**os.environ}
    return {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python -m bench.run " + " ".join(sys.argv[1:]),
        "config": {"duration_s": args.duration, "warmup_s": args.warmup, "rounds": args.rounds,
                   "concurrency": args.concurrency, "harness_processes": args.procs,
                   "harness_nice": args.harness_nice,
                   "gunicorn": serving_config(env), "renewals": args.renewals,
                   "slow_gateway": {"sandbox_latency_ms": args.slow_latency_ms, "customers": args.slow_concurrency,
                                    "poll_interval_s": POLL_INTERVAL},
                   "engines": args.engines, "pg_instances": args.pg_instances,
                   "gateway": "sandbox", "fraud_limits": HIGH_LIMIT},
        "machine": _machine(),
        "engines": engines,
        "wall_seconds": round(time.monotonic() - t_start, 1),
    }


def table(result: dict) -> str:
    """Every engine's figures, then the targets of every engine, MET / NOT MET."""
    out = [f"serving: {result['config']['gunicorn']}; load harness niceness +{result['config'].get('harness_nice', 0)}"]
    for engine, res in result["engines"].items():
        workers = res.get("web_workers_per_instance")
        each = f", {workers} web worker(s) each" if workers else ""
        out += ["", f"=== {engine} ({res['instances']} instance(s){each} on one {res['database']} and one Redis) ===",
                engine_table(res, result["config"])]
    out += ["", "TARGETS (issue 9)"]
    for engine, res in result["engines"].items():
        for name, tgt in res["targets"].items():
            out.append(f"  [{engine:<10}] {name:<72} {tgt['value']:>9} {tgt['unit']:<8} "
                       f"{'MET    ' if tgt['met'] else 'NOT MET'} ({tgt['op']} {tgt['limit']})")
    return "\n".join(out)


def engine_table(result: dict, config: dict) -> str:
    m, rounds = result["median"], result["rounds"]
    cfg = config["slow_gateway"]

    def row(label, keys, unit="", target="", median_keys=None):
        per = [_dig(r, keys) for r in rounds]
        return (f"{label:<34}{_dig(m, median_keys or keys):>10}{unit:<6} {'  '.join(f'{v:>8}' for v in per):<32} "
                f"{target}")

    def met(name_start: str) -> str:
        tgt = next(v for k, v in result["targets"].items() if k.startswith(name_start))
        return f"{'MET    ' if tgt['met'] else 'NOT MET'} {tgt['op']} {tgt['limit']}"

    lines = [f"{'figure (median of ' + str(len(rounds)) + ' rounds)':<34}{'median':>10}{'':<6} "
             f"{'per round':<32} target",
             row("baseline req/s", ("baseline", "rps")),
             row("baseline p50", ("baseline", "p50_ms"), " ms"),
             row("baseline p99", ("baseline", "p99_ms"), " ms"),
             row("session creations/s", ("create", "rps")),
             row("session creation p50", ("create", "p50_ms"), " ms"),
             row("session creation p99", ("create", "p99_ms"), " ms"),
             row("creations / baseline", ("create_ratio",), "", met("session creations")),
             row("card submissions/s", ("submit", "rps")),
             row("card submission p50", ("submit", "p50_ms"), " ms"),
             row("card submission p99", ("submit", "p99_ms"), " ms"),
             row("web CPU per customer", ("submit", "cpu_ms_per_op", "web"), " ms", met("web CPU"),
                 ("web_cpu_ms_per_customer",)),
             row("callback lag p50", ("callback_lag", "p50_ms"), " ms"),
             row("callback lag p99", ("callback_lag", "p99_ms"), " ms", met("callback lag")),
             row("callback lag max", ("callback_lag", "max_ms"), " ms"),
             row("captures/s", ("capture", "rps")),
             row("capture p50", ("capture", "p50_ms"), " ms"),
             row("capture p99", ("capture", "p99_ms"), " ms"),
             row("refunds/s", ("refund", "rps")),
             row("refund p50", ("refund", "p50_ms"), " ms"),
             row("refund p99", ("refund", "p99_ms"), " ms"),
             row("renewals/s", ("renewal", "rps")),
             "",
             f"slow gateway: PAYGATE_SANDBOX_LATENCY_MS={cfg['sandbox_latency_ms']}, {cfg['customers']} customers",
             row("server CPU ms per customer (0 ms)", ("slow", "server_cpu_ms_per_customer"), " ms"),
             row("+ harness CPU ms per customer", ("slow", "cpu_ms_per_customer"), " ms"),
             row("CPU bound (cores × 1000 / ms)", ("slow", "cpu_bound_rps"), "/s"),
             row("card submissions/s", ("slow", "rps"), "/s"),
             row("  share of the CPU bound", ("slow", "share_of_bound"), "", met("slow gateway: card")),
             row("card submission p50", ("slow", "p50_ms"), " ms"),
             row("card submission p99", ("slow", "p99_ms"), " ms"),
             row("session poll p50", ("slow", "poll", "p50_ms"), " ms"),
             row("session poll p99", ("slow", "poll", "p99_ms"), " ms", met("slow gateway: concurrent")),
             "",
             f"{'peak RSS (VmHWM)':<34}{'MB':>10}"]
    for name, mb in result["peak_rss_mb"].items():
        target = met("peak RSS") if name.startswith(("web worker", "slow web worker")) else ""
        lines.append(f"{name:<34}{mb:>10}       {target}")
    errors = {k: sum(r[k]["errors"] for r in rounds)
              for k in ("baseline", "create", "submit", "capture", "refund", "renewal", "slow")}
    errors["slow poll"] = sum(r["slow"]["poll"]["errors"] for r in rounds)
    per_op = {k: _median(rounds, k, "redis_commands_per_op") for k in ("create", "submit")}
    lines += ["", "CPU ms per timed operation (median; 'submit' = one customer: create + page + card POST; "
              "'capture'/'refund' include creating and paying their session by voice)"]
    for k in ("baseline", "create", "submit", "capture", "refund", "slow"):
        groups = rounds[0][k]["cpu_ms_per_op"].keys()
        values = {g: _median(rounds, k, "cpu_ms_per_op", g) for g in groups}
        lines.append(f"  {k:<10}" + ", ".join(f"{g} {v}" for g, v in values.items() if v))
    lines += [f"redis commands per session creation: {per_op['create']}; per customer (create + page + "
              f"submit): {per_op['submit']}",
              f"failed requests: {errors}; callbacks not received: "
                  f"{sum(r['callback_lag']['missing'] for r in rounds)}; wall time {result['wall_seconds']} s"]
    return "\n".join(lines)


def _dig(d, keys):
    for k in keys:
        d = d[k]
    return d


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measured phase per round")
    parser.add_argument("--concurrency", type=int, default=20, help="simulated clients (threads) per phase")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each figure is the median")
    parser.add_argument("--warmup", type=float, default=1.5, help="untimed seconds per phase before round 1")
    parser.add_argument("--procs", type=int, default=4, help="harness processes the threads are spread over")
    parser.add_argument("--renewals", type=int, default=300, help="subscriptions renewed at once per round")
    parser.add_argument("--slow-latency-ms", type=int, default=250,
                        help="PAYGATE_SANDBOX_LATENCY_MS of the slow-gateway server")
    parser.add_argument("--slow-concurrency", type=int, default=200,
                        help="simulated customers of the slow-gateway phase")
    parser.add_argument("--engines", default="sqlite,postgresql",
                        help="comma-separated: sqlite (one instance) and/or postgresql (--pg-instances instances "
                             "on a private PostgreSQL cluster this command starts, or on --database-url)")
    parser.add_argument("--pg-instances", type=int, default=2,
                        help="paygate instances (gunicorn + paygate worker each) on the PostgreSQL engine")
    parser.add_argument("--database-url", default=None,
                        help="an EMPTY database instead of the private one of its engine (sqlite:///… or "
                             "postgresql+psycopg://…); it is migrated and written to")
    parser.add_argument("--keep-tmp", action="store_true", help="keep the temp dir (server logs) after the run")
    parser.add_argument("--harness-nice", type=int, default=HARNESS_NICE,
                        help="niceness added to the load harness's processes (0: the same priority as the server); "
                             "the polling client of the slow-gateway phase is never niced")
    args = parser.parse_args(argv)
    args.engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not args.engines or set(args.engines) - {"sqlite", "postgresql"}:
        parser.error("--engines takes sqlite and/or postgresql")

    def log(msg: str) -> None:
        print(f"[bench] {msg}", file=sys.stderr, flush=True)

    def on_term(*_):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started in the background with SIGINT ignored
    try:
        result = bench(args, log)
    except KeyboardInterrupt:
        log("interrupted; everything stopped")
        return 130
    except (BenchError, subprocess.CalledProcessError) as err:
        log(f"failed: {err}")
        return 1
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"bench-{datetime.now().strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(table(result))
    log(f"results written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
