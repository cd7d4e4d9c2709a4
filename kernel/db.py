"""The database engine and units of work (SQLAlchemy 2); migrations are run by :mod:`paygate.migrate`.

SQLite (the development default) runs in WAL mode with a busy timeout so the web
workers and the delivery worker can share one file; PostgreSQL is used unchanged.
"""

from __future__ import annotations

import sqlite3
from typing import Any, TypeVar

from sqlalchemy import create_engine, event, insert
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, make_transient_to_detached, sessionmaker
from sqlalchemy.orm import Session as DbSession


class Base(DeclarativeBase):
    """Declarative base of every paygate table."""


Row = TypeVar("Row", bound=Base)

_INSERTS: dict[type, tuple[Any, tuple[tuple[str, str, Any], ...]]] = {}
""":func:`insert_row`'s INSERT per model and its columns as (attribute, column key, default)."""


def _insert_plan(model: type[Base]) -> tuple[Any, tuple[tuple[str, str, Any], ...]]:
    plan = _INSERTS.get(model)
    if plan is None:
        columns = []
        for attr in model.__mapper__.column_attrs:
            column = attr.columns[0]
            default = column.default
            if default is None:
                fill = None
            elif default.is_scalar:
                fill = default.arg
            elif default.is_callable:
                fill = default.arg  # SQLAlchemy's wrapper, called with the execution context (unused by ours)
            else:
                raise TypeError(f"{model.__name__}.{attr.key}: a SQL default cannot be filled in by insert_row")
            columns.append((attr.key, column.key, fill))
        plan = _INSERTS[model] = (insert(model.__table__), tuple(columns))
    return plan


def insert_row(db: DbSession, model: type[Row], values: dict[str, Any]) -> Row:
    """Inserts one ``model`` row with a Core INSERT in ``db``'s transaction (no unit of work: a fraction of the
    ORM's cost) and returns it as a detached ORM object with every column loaded (``db.add`` it to change it
    later in the same transaction). ``values``: attribute name → value; a column left out gets its Python
    default (``default=``), or None. Pending ORM changes of ``db`` are not flushed first. Raises ``TypeError`` for
    a name that is not one of ``model``'s columns (as the model's constructor would)."""
    statement, columns = _insert_plan(model)
    unknown = set(values).difference(key for key, _column, _fill in columns)
    if unknown:
        raise TypeError(f"{model.__name__} has no column attribute {', '.join(sorted(unknown))}")
    attrs, params = {}, {}
    for key, column_key, fill in columns:
        if key in values:
            value = values[key]
        else:
            value = fill(None) if callable(fill) else fill
        attrs[key] = params[column_key] = value
    with db.no_autoflush:  # Session.execute would flush pending changes even before a Core INSERT
        db.execute(statement, params)
    row = model(**attrs)
    make_transient_to_detached(row)
    return row


def make_engine(url: str, *, pool_size: int = 5, max_overflow: int = 10) -> Engine:
    """Creates the engine for ``url``; for SQLite enables WAL, foreign keys and a 10 s busy timeout.

    ``pool_size``/``max_overflow``: the connection pool (SQLAlchemy's ``QueuePool``, thread-safe) — each
    thread of a gunicorn ``gthread`` worker checks a connection out per unit of work, so the web app passes
    ``PAYGATE_DB_POOL_SIZE``/``PAYGATE_DB_MAX_OVERFLOW``, sized from ``PAYGATE_WEB_THREADS``
    (:class:`kernel.settings.Settings`). A thread that finds none free waits up to 30 s, then
    ``sqlalchemy.exc.TimeoutError`` (answered 503). SQLite connections may move between threads
    (``check_same_thread=False``): the pool hands each to one thread at a time.
    """
    if url.startswith("sqlite"):
        memory = url in ("sqlite://", "sqlite:///:memory:") or "mode=memory" in url
        pool = {} if memory else {"pool_size": pool_size, "max_overflow": max_overflow}
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=10000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - trivial
            # Session.begin() (read-then-write) takes the write lock at BEGIN so two such transactions
            # cannot deadlock on the lock upgrade; plain Session() reads share the database (see PaygateSessions)
            deferred = conn.get_execution_options().get("paygate_begin") == "deferred"
            statement = "BEGIN" if deferred else "BEGIN IMMEDIATE"
            # straight on the sqlite3 connection (SQLAlchemy's statement machinery costs more than the BEGIN);
            # an error is wrapped as exec_driver_sql would (OperationalError "database is locked" → 503)
            try:
                conn.connection.driver_connection.execute(statement)
            except sqlite3.Error as err:
                raise DBAPIError.instance(statement, (), err, sqlite3.Error) from err

        # let SQLAlchemy emit our BEGIN instead of pysqlite's implicit one
        @event.listens_for(engine, "connect")
        def _sqlite_autocommit(dbapi_conn, _record):  # pragma: no cover - trivial
            dbapi_conn.isolation_level = None

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)


class PaygateSessions(sessionmaker):
    """Two kinds of unit of work on one engine; objects stay readable after commit.

    * ``with Session.begin() as db:`` — a transaction that may read and then write. On SQLite it
      starts with ``BEGIN IMMEDIATE`` (the write lock up front).
    * ``with Session() as db:`` — reads, or a transaction whose *first* statement is the write. On
      SQLite it starts with a deferred ``BEGIN``, so readers never queue behind the write lock
      (WAL mode lets them run beside a writer).
    PostgreSQL ignores the distinction.
    """

    def __init__(self, engine: Engine):
        super().__init__(engine, expire_on_commit=False)
        self._deferred_bind = engine.execution_options(paygate_begin="deferred")

    def __call__(self, **kw):
        kw.setdefault("bind", self._deferred_bind)
        return super().__call__(**kw)

    def begin(self):
        session = super().__call__()  # bound to the engine itself: BEGIN IMMEDIATE on SQLite
        return session._maker_context_manager()


def make_sessionmaker(engine: Engine) -> PaygateSessions:
    """The :class:`PaygateSessions` factory for ``engine``."""
    return PaygateSessions(engine)
