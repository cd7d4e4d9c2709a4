"""Throwaway Redis and PostgreSQL servers for the test suites.

When ``PAYGATE_TEST_REDIS_URL`` / ``PAYGATE_TEST_PG_URL`` are set (``scripts/test.sh``
sets them) those servers are used; otherwise the first test that needs one starts
it on a free loopback port under the state directory and stops it at exit.
Everything tests write (SQLite files, server logs, callback bodies) lives under
:func:`state_dir` so the PCI scan that runs last can read it.

Under pytest-xdist (``scripts/test.sh`` runs ``pytest -n``) every worker gets its own Redis databases on the
shared server (:func:`redis_url`, :func:`e2e_redis_url`: two per worker, see :func:`worker_index`), its own
PostgreSQL template database (tests/conftest.py) and its own e2e stack directory; SQLite files are named by pid.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from paygate.processes import free_port, port_open, wait_until

PGBIN = Path("/usr/lib/postgresql/15/bin")
_started: dict[str, str] = {}


def state_dir() -> Path:
    """The directory for this run's test state (``PAYGATE_TEST_STATE_DIR`` or a fresh temp dir)."""
    path = os.environ.get("PAYGATE_TEST_STATE_DIR")
    if not path:
        path = tempfile.mkdtemp(prefix="paygate-test-")
        os.environ["PAYGATE_TEST_STATE_DIR"] = path
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, 0o755)
    return p


def wait_for_port(port: int, timeout: float = 15.0) -> None:
    """Waits until something accepts connections on 127.0.0.1:``port`` (RuntimeError after ``timeout`` s)."""
    wait_until(lambda: port_open(port), timeout=timeout, interval=0.05, what=f"127.0.0.1:{port}", error=RuntimeError)


REDIS_DATABASES = 64
"""How many databases a test Redis is started with (``scripts/lib.sh`` starts it the same way): two per xdist
worker, so up to 32 workers."""


def worker_id() -> str:
    """This process's pytest-xdist worker id (``gw0``, ``gw1``...; also seen by the processes tests spawn, which
    inherit ``PYTEST_XDIST_WORKER``), or ``main`` outside xdist."""
    return os.environ.get("PYTEST_XDIST_WORKER") or "main"


def worker_index() -> int:
    """0 for ``main`` and ``gw0``, n for ``gw<n>``."""
    wid = worker_id()
    return int(wid[2:]) if wid.startswith("gw") and wid[2:].isdigit() else 0


def redis_server_url() -> str:
    """URL of the Redis server for tests (``PAYGATE_TEST_REDIS_URL``, whatever database it names); started on
    demand with :data:`REDIS_DATABASES` databases."""
    if os.environ.get("PAYGATE_TEST_REDIS_URL"):
        return os.environ["PAYGATE_TEST_REDIS_URL"]
    if "redis" not in _started:
        port = free_port()
        d = state_dir() / f"redis-{port}"
        d.mkdir()
        subprocess.run(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--daemonize", "yes",
                        "--dir", str(d), "--save", "", "--appendonly", "yes", "--appendfsync", "no",
                        "--databases", str(REDIS_DATABASES),
                        "--pidfile", str(d / "redis.pid"), "--logfile", str(d / "redis.log")], check=True)
        wait_for_port(port)
        atexit.register(lambda: _kill_pidfile(d / "redis.pid"))
        _started["redis"] = f"redis://127.0.0.1:{port}/0"
        os.environ["PAYGATE_TEST_REDIS_URL"] = _started["redis"]
    return _started["redis"]


def _redis_db(number: int) -> str:
    if number >= REDIS_DATABASES:
        raise RuntimeError(f"xdist worker {worker_id()} needs Redis database {number}: run fewer workers "
                           f"(at most {REDIS_DATABASES // 2})")
    return urlsplit(redis_server_url())._replace(path=f"/{number}").geturl()


def redis_url() -> str:
    """URL of this worker's Redis database for tests: database 2 × :func:`worker_index` (0 outside xdist), which
    the ``redis_client`` fixture flushes before each test. Every process a test starts must get this URL."""
    return _redis_db(2 * worker_index())


def e2e_redis_url() -> str:
    """URL of this worker's Redis database for the e2e stack (2 × :func:`worker_index` + 1), never flushed."""
    return _redis_db(2 * worker_index() + 1)


def pg_url() -> str | None:
    """URL of a PostgreSQL server (database ``postgres``) for tests, or None when PostgreSQL is not installed."""
    if os.environ.get("PAYGATE_TEST_PG_URL"):
        return os.environ["PAYGATE_TEST_PG_URL"]
    if "pg" not in _started:
        if not (PGBIN / "initdb").exists() or shutil.which("runuser") is None:
            return None
        port = free_port()
        d = state_dir() / f"pg-{port}"
        sock = state_dir() / f"pgsock-{port}"
        for p in (d, sock):
            p.mkdir()
            shutil.chown(p, "postgres", "postgres")
        subprocess.run(["runuser", "-u", "postgres", "--", str(PGBIN / "initdb"), "-D", str(d), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["runuser", "-u", "postgres", "--", str(PGBIN / "pg_ctl"), "-D", str(d), "-l",
                        str(d / "server.log"), "-w", "-o",
                        f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                        f"-c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                        "start"], check=True, stdout=subprocess.DEVNULL)
        atexit.register(lambda: subprocess.run(
            ["runuser", "-u", "postgres", "--", str(PGBIN / "pg_ctl"), "-D", str(d), "-m", "immediate", "-w",
             "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        _started["pg"] = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        os.environ["PAYGATE_TEST_PG_URL"] = _started["pg"]
    return _started["pg"]


def _kill_pidfile(pidfile: Path) -> None:
    try:
        os.kill(int(pidfile.read_text().strip()), 15)
    except (OSError, ValueError):
        pass
