"""A private scale-out deployment for the fault-injection tests (tests/functional/test_scale_out.py): its own
PostgreSQL cluster and its own Redis server (so stopping or restarting them disturbs no other test, even under
pytest-xdist), two gunicorn instances with the shipped ``gunicorn.conf.py`` and two ``paygate worker``
processes, all on that one database and that one Redis.

Building blocks are reused from the suite: :data:`tests.services.PGBIN` and :func:`tests.services.state_dir`,
the restartable :class:`~tests.functional.test_readiness.PrivateRedis` (no persistence: a restart comes back
empty), the gunicorn :class:`~tests.functional.test_serving.Server`. Everything writes its logs under the test
state directory (``logs/``) so the PCI scan that runs last reads them too.
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import redis as redis_lib

from kernel.clock import random_id, system_clock
from kernel.db import make_engine, make_sessionmaker
from paygate.migrate import upgrade
from paygate.processes import free_port, port_open, stop_processes, wait_until
from payments.clients import create_client
from tests.functional.test_readiness import PrivateRedis
from tests.functional.test_serving import Server
from tests.services import PGBIN

ROOT = Path(__file__).resolve().parents[1]
PAYGATE = str(Path(sys.executable).with_name("paygate"))
RATE_LIMIT_SCOPES = ("API", "TOKEN", "TOKEN_FAILURES_CLIENT", "TOKEN_FAILURES_IP", "CHECKOUT_SESSION", "CHECKOUT_IP")


def postgres_available() -> bool:
    """True when PostgreSQL 15's server binaries and ``runuser`` (to run them as ``postgres``) are here."""
    return (PGBIN / "initdb").exists() and shutil.which("runuser") is not None


class PrivatePostgres:
    """A PostgreSQL cluster of its own (initdb'd as ``postgres`` under ``state_dir``, trust auth on 127.0.0.1, a
    free port) with one database, ``paygate``, migrated to head. :meth:`stop` (``-m fast`` or ``immediate``: the
    latter is a crash, recovered from at the next start) and :meth:`start` keep the port, so every client's URL
    stays valid across the outage.

    ``synchronous_commit`` stays on (unlike the suite's shared server): with it off, a crash (``-m immediate``)
    loses transactions already reported committed — an event a worker had delivered vanished from the outbox and
    its session was settled again under a new event id. ``fsync=off`` is harmless here: the server crashes, the
    machine does not, so what was written reaches the disk from the page cache."""

    def __init__(self, state_dir: Path):
        self.port = free_port()
        self.dir = state_dir / f"pg-fault-{self.port}"
        self.sock = state_dir / f"pgsock-fault-{self.port}"
        for p in (self.dir, self.sock):
            p.mkdir()
            shutil.chown(p, "postgres", "postgres")
        self._pg("initdb", "-D", str(self.dir), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()
        atexit.register(self.stop, "immediate")  # should the test process die before its fixture ends
        admin = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        engine = make_engine(admin)
        try:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("CREATE DATABASE paygate")
        finally:
            engine.dispose()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/paygate"
        upgrade(self.url)

    def _pg(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", "postgres", "--", str(PGBIN / tool), *args], check=check,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        """Starts the server and waits until it accepts connections (``pg_ctl -w``)."""
        self._pg("pg_ctl", "-D", str(self.dir), "-l", str(self.dir / "server.log"), "-w", "-o",
                 f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                 f"-c full_page_writes=off -c max_connections=300", "start")

    def stop(self, mode: str = "fast") -> None:
        """Stops the server (``pg_ctl stop -m mode``); already stopped is fine."""
        self._pg("pg_ctl", "-D", str(self.dir), "-m", mode, "-w", "stop", check=False)
        wait_until(lambda: not port_open(self.port), timeout=30, interval=0.05, what="PostgreSQL stopped",
                   error=RuntimeError)


class FaultStack:
    """Two gunicorn instances and two ``paygate worker`` processes on one private PostgreSQL and one private Redis.

    ``env`` extra PAYGATE_* settings for every process (e.g. ``PAYGATE_SANDBOX_LATENCY_MS``). Rate limits and the
    fraud velocity rules are set far out of reach and admission control lets a request wait for its slot (the tests
    load the system on purpose); the workers get a short delivery lease (3 s, with a 2.5 s send timeout: a claim
    is 8 rows), a short backoff and ``PAYGATE_RECONCILE_AFTER_SECONDS=5``, so a submission whose answer was lost to
    an outage is reconciled within seconds. Use :meth:`close` (or the fixture) to stop everything.
    """

    LEASE_SECONDS = 3
    RECONCILE_AFTER_SECONDS = 5

    def __init__(self, state_dir: Path, env: dict[str, str] | None = None, *, instances: int = 2, workers: int = 2):
        self.state_dir = state_dir
        self.logs = state_dir / "logs"
        self.logs.mkdir(exist_ok=True)
        self.tag = random_id("fault")
        self.servers: list[Server] = []
        self.workers: list[subprocess.Popen | None] = []
        self.pg = PrivatePostgres(state_dir)
        self.redis = PrivateRedis(state_dir)
        self.redis_client = redis_lib.Redis.from_url(self.redis.url)
        base = {k: v for k, v in os.environ.items() if not k.startswith(("PAYGATE_", "GUNICORN_"))}
        self.env = {
            **base, "PAYGATE_ENV": "test", "PAYGATE_DATABASE_URL": self.pg.url, "PAYGATE_REDIS_URL": self.redis.url,
            "PAYGATE_INSTANCE_PATH": str(state_dir / "instance"), "PAYGATE_GATEWAY": "sandbox",
            "PAYGATE_WEB_WORKERS": "2",
            "PAYGATE_FRAUD_IP_ATTEMPTS_PER_HOUR": "1000000", "PAYGATE_FRAUD_CARD_SESSIONS_PER_HOUR": "1000000",
            "PAYGATE_FRAUD_CARD_DECLINES_PER_DAY": "1000000",
            **{f"PAYGATE_RATE_LIMIT_{scope}": "1000000 per minute" for scope in RATE_LIMIT_SCOPES},
            # admission control (app/admission.py) sheds what waits longer than this for a slot with a 503: the
            # tests queue a thousand submissions on purpose, so every one of them is let wait its turn
            "PAYGATE_ADMISSION_WAIT_SECONDS": "300",
            **(env or {}),
        }
        try:
            for i in range(instances):
                self.servers.append(Server(self.env, self.logs / f"gunicorn-{self.tag}-{i}.log"))
            for server in self.servers:
                server.wait_ready()
            self.workers = [None] * workers
            for i in range(workers):
                self.start_worker(i)
        except BaseException:
            self.close()
            raise

    # -- processes ----------------------------------------------------------------------------------------------
    def worker_log(self, i: int) -> Path:
        return self.logs / f"worker-{self.tag}-{i}.log"

    def start_worker(self, i: int) -> subprocess.Popen:
        """Starts ``paygate worker`` number ``i`` (its own process group; output appended to its log)."""
        env = {**self.env, "PAYGATE_DELIVERY_LEASE_SECONDS": str(self.LEASE_SECONDS),
               "PAYGATE_DELIVERY_TIMEOUT_SECONDS": "2.5", "PAYGATE_DELIVERY_BACKOFF_BASE": "0.05",
               "PAYGATE_DELIVERY_BACKOFF_CAP": "1", "PAYGATE_RECONCILE_AFTER_SECONDS": str(self.RECONCILE_AFTER_SECONDS),
               "PAYGATE_PUBLIC_BASE_URL": self.servers[0].base}
        with open(self.worker_log(i), "ab") as log:
            proc = subprocess.Popen([PAYGATE, "worker"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        self.workers[i] = proc
        return proc

    def kill_worker(self, i: int) -> None:
        """SIGKILLs worker ``i`` (no clean-up of any kind runs) and reaps it."""
        proc = self.workers[i]
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(15) == -signal.SIGKILL

    def workers_alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in self.workers)

    def gunicorn_problems(self) -> list[str]:
        """Lines of the gunicorn logs that show an unhandled error (a 500's ``unhandled error`` record, a Python
        traceback, a worker that died or timed out)."""
        markers = ("unhandled error", "Traceback (most recent call last)", "WORKER TIMEOUT", "was sent SIGKILL",
                   "internal_error", '"status": 500')
        found = []
        for server in self.servers:
            server.log.flush()
            for line in Path(server.log.name).read_text(errors="replace").splitlines():
                if any(m in line for m in markers):
                    found.append(line[:300])
        return found

    def ready(self) -> bool:
        """Both instances answer ``/readyz`` 200 (database and Redis reachable from each)."""
        return all(httpx.get(f"{s.base}/readyz", timeout=5).status_code == 200 for s in self.servers)

    def close(self) -> None:
        stop_processes([p for p in self.workers if p is not None], timeout=10)
        for server in self.servers:
            server.stop()
        self.redis_client.close()
        try:
            self.redis.stop()
        except RuntimeError:
            pass
        self.pg.stop("immediate")

    # -- the API ------------------------------------------------------------------------------------------------
    def new_client(self, callback_url: str) -> tuple[str, dict]:
        """A new API client whose events go to ``callback_url``; returns ``(client_id, auth headers)``."""
        engine = make_engine(self.pg.url)
        try:
            with make_sessionmaker(engine).begin() as db:
                created = create_client(db, name=f"fault-{random_id('c')}", callback_url=callback_url,
                                        now=system_clock(), new_id=random_id)
        finally:
            engine.dispose()
        r = httpx.post(f"{self.servers[0].base}/oauth/token", data={"grant_type": "client_credentials"},
                       auth=(created.client_id, created.client_secret), timeout=30)
        assert r.status_code == 200, r.text
        return created.client_id, {"Authorization": f"Bearer {r.json()['access_token']}"}
