"""Fixtures shared by every suite: real Redis, real SQLite and PostgreSQL databases.

``db_url`` is parametrized over both engines; each test gets a fresh, migrated
database that is kept (not dropped) so the final PCI scan can read it.
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


def pytest_collection_modifyitems(session, config, items):
    """The PCI scan runs last, after every other suite has left its traces."""
    last = [i for i in items if i.nodeid.startswith("tests/test_zz_pci_scan.py")]
    rest = [i for i in items if i not in last]
    items[:] = rest + last


@pytest.fixture(scope="session")
def state_dir():
    return services.state_dir()


@pytest.fixture(scope="session")
def redis_url():
    return services.redis_url()


@pytest.fixture
def redis_client(redis_url):
    """A Redis client on a flushed database 0 (tests do not share counters or locks)."""
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
    global _pg_template_ready
    base = services.pg_url()
    if base is None:
        pytest.skip("PostgreSQL is not installed")
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if not _pg_template_ready:
            conn.execute(text("DROP DATABASE IF EXISTS paygate_template"))
            conn.execute(text("CREATE DATABASE paygate_template"))
            migrate(base.rsplit("/", 1)[0] + "/paygate_template")
            _pg_template_ready = True
        name = f"paygate_t{os.getpid()}_{next(_counter)}"
        conn.execute(text(f"CREATE DATABASE {name} TEMPLATE paygate_template"))
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
