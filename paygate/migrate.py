"""Database migrations (Alembic): ``paygate db upgrade`` and the self-migration of a fresh SQLite file.

The migration scripts live in ``paygate/migrations``; their environment imports every table of every
layer (:mod:`paygate.schema`), which is why this runner sits at the top with the composition root and not
in the kernel.
"""

from __future__ import annotations

import fcntl
from pathlib import Path

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(url: str):
    """The Alembic configuration for ``url`` (migrations ship inside the package)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, lock_dir: Path | None = None) -> None:
    """Applies every migration to ``url`` (``paygate db upgrade``).

    With ``lock_dir`` the call holds an exclusive file lock there, so several
    processes starting on one fresh SQLite file migrate it exactly once.
    """
    from alembic import command

    if lock_dir is None:
        command.upgrade(alembic_config(url), "head")
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    with open(lock_dir / "migrate.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            command.upgrade(alembic_config(url), "head")
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
