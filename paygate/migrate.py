"""Database migrations (Alembic): ``paygate db upgrade`` and the self-migration of a fresh SQLite file.

The migration scripts live in ``paygate/migrations``; their environment imports every table of every
layer (:mod:`paygate.schema`), which is why this runner sits at the top with the composition root and not
in the kernel.
"""

from __future__ import annotations

import fcntl
from dataclasses import dataclass
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str):
    """The Alembic configuration for ``url`` (migrations ship inside the package)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@dataclass(frozen=True)
class Applied:
    """What one :func:`upgrade` did: the database's revisions before and after (``()``: an empty database) and the
    revisions it applied, oldest first, as ``(revision id, message)`` pairs (empty: it was already at head)."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    revisions: tuple[tuple[str, str], ...]


def current_revisions(url: str) -> tuple[str, ...]:
    """The revision ids the database at ``url`` is at (Alembic's version table; ``()`` before the first)."""
    from alembic.runtime.migration import MigrationContext

    from kernel.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return tuple(sorted(MigrationContext.configure(conn).get_current_heads()))
    finally:
        engine.dispose()


def upgrade(url: str, lock_dir: Path | None = None, *, report: bool = False) -> Applied | None:
    """Applies every migration to ``url`` (``paygate db upgrade``).

    With ``lock_dir`` the call holds an exclusive file lock there, so several
    processes starting on one fresh SQLite file migrate it exactly once. With ``report`` the revisions are read
    before and after (under the lock) and returned as :class:`Applied`; else None.
    """
    if lock_dir is None:
        return _upgrade(url, report)
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "migrate.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            return _upgrade(url, report)
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _upgrade(url: str, report: bool) -> Applied | None:
    from alembic import command
    from alembic.script import ScriptDirectory

    cfg = alembic_config(url)
    before = current_revisions(url) if report else ()
    command.upgrade(cfg, "head")
    if not report:
        return None
    after = current_revisions(url)
    script = ScriptDirectory.from_config(cfg)
    applied = []
    for head in after:
        for rev in script.iterate_revisions(head, before[0] if len(before) == 1 else None):
            if rev.revision not in before:
                applied.append((rev.revision, (rev.doc or "").strip()))
    return Applied(before, after, tuple(reversed(applied)))
