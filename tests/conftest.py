"""Fixtures shared by every suite: real Redis, real SQLite and PostgreSQL databases.

``db_url`` is parametrized over both engines; each test gets a fresh, migrated
database that is kept (not dropped) so the final PCI scan can read it.

The suite runs in parallel under pytest-xdist (``scripts/test.sh`` passes ``-n``): each worker has its own
Redis database (``tests.services.redis_url``), its own PostgreSQL template database and pid-named SQLite
files. The PCI scan (tests/test_zz_pci_scan.py) must see what every worker left, so xdist workers deselect
it and ``scripts/test.sh`` runs it in a second, serial pytest invocation after the parallel one; a plain
serial ``pytest`` still runs it last.
"""

from __future__ import annotations

import itertools
import os
import shutil
from pathlib import Path

import pytest
import redis as redis_lib
from sqlalchemy import create_engine, text

from paygate.migrate import upgrade as migrate
from tests import services

_counter = itertools.count()
_pg_template_ready = False
_sqlite_template: Path | None = None
PCI_SCAN = "tests/test_zz_pci_scan.py"


def _xdist_controller(config) -> bool:
    """True in the process that drives xdist workers (``-n`` given and > 0), not in a worker."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


def pytest_configure(config):
    if _xdist_controller(config):
        # before the workers start: they inherit PAYGATE_TEST_STATE_DIR (one state directory for the run), and
        # the development secrets the tests' PAYGATE_INSTANCE_PATH holds exist before several workers need them
        from kernel.settings import Settings

        Settings.from_env({"PAYGATE_ENV": "test", "PAYGATE_INSTANCE_PATH": str(services.state_dir() / "instance")})


def pytest_collection_modifyitems(session, config, items):
    """The PCI scan runs last, after every other suite has left its traces: at the end of a serial run, or
    (xdist workers deselect it) in the serial pass ``scripts/test.sh`` runs after the parallel one."""
    last = [i for i in items if i.nodeid.startswith(PCI_SCAN)]
    rest = [i for i in items if i not in last]
    if last and hasattr(config, "workerinput"):
        config.hook.pytest_deselected(items=last)
        last = []
    items[:] = rest + last


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _xdist_controller(config):
        terminalreporter.write_line(f"{PCI_SCAN} is not run by xdist workers: scripts/test.sh runs it in its own "
                                    "pass after this one", yellow=True)


@pytest.fixture(scope="session")
def state_dir():
    return services.state_dir()


@pytest.fixture(scope="session")
def redis_url():
    return services.redis_url()


@pytest.fixture
def redis_client(redis_url):
    """A Redis client on this worker's flushed database (tests do not share counters or locks; 0 outside xdist)."""
    client = redis_lib.Redis.from_url(redis_url, decode_responses=False)
    client.flushdb()
    yield client
    client.close()


def _new_sqlite_url(state_dir) -> str:
    path = state_dir / "sqlite" / f"test-{os.getpid()}-{next(_counter)}.sqlite3"
    path.parent.mkdir(exist_ok=True)
    return f"sqlite:///{path}"


def _migrated_sqlite_url(state_dir) -> str:
    """A fresh SQLite database with every migration applied: a copy of a template migrated once per process
    (the same file a migration would produce, without running Alembic for every test)."""
    global _sqlite_template
    if _sqlite_template is None or not _sqlite_template.exists():
        template = state_dir / "sqlite" / f"template-{os.getpid()}.sqlite3"
        template.parent.mkdir(exist_ok=True)
        migrate(f"sqlite:///{template}")
        for suffix in ("-wal", "-shm"):
            if Path(f"{template}{suffix}").exists():
                raise RuntimeError("the SQLite template must be a single file")
        _sqlite_template = template
    url = _new_sqlite_url(state_dir)
    shutil.copyfile(_sqlite_template, url.removeprefix("sqlite:///"))
    return url


def _new_pg_url() -> str:
    """A fresh database copied from a migrated template. The template is this process's own
    (``paygate_template_<worker>_<pid>``): PostgreSQL refuses to copy a template another session is connected to,
    so xdist workers sharing one would race."""
    global _pg_template_ready
    base = services.pg_url()
    if base is None:
        pytest.skip("PostgreSQL is not installed")
    template = f"paygate_template_{services.worker_id()}_{os.getpid()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not _pg_template_ready:
            conn.execute(text(f"DROP DATABASE IF EXISTS {template}"))
            conn.execute(text(f"CREATE DATABASE {template}"))
            migrate(base.rsplit("/", 1)[0] + "/" + template)
            _pg_template_ready = True
        name = f"paygate_t{os.getpid()}_{next(_counter)}"
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE {template}"))
    admin.dispose()
    return base.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, state_dir):
    """A fresh migrated database URL, once per engine."""
    if request.param == "sqlite":
        return _migrated_sqlite_url(state_dir)
    return _new_pg_url()


@pytest.fixture
def sqlite_url(state_dir):
    """A fresh migrated SQLite database URL (for tests that need only one engine)."""
    return _migrated_sqlite_url(state_dir)
