"""Database migrations (Alembic): ``paygate db upgrade`` and the self-migration of a fresh SQLite file.

The migration scripts live in ``paygate/migrations``; their environment imports every table of every
layer (:mod:`paygate.schema`), which is why this runner sits at the top with the composition root and not
in the kernel.
"""

from __future__ import annotations

import fcntl
import re
import sqlite3
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


_REVISION_LINE = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.*?)\s*$", re.MULTILINE)
_QUOTED = re.compile(r"""^(?:None|(['"])([^'"]+)\1)$""")


def script_heads() -> tuple[str, ...] | None:
    """The head revisions of ``paygate/migrations/versions``, read from each script's ``revision`` and
    ``down_revision`` lines without importing Alembic; None when a script does not have the plain form (one quoted
    id, ``None`` for the first) — then only Alembic can tell."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS_DIR / "versions").glob("*.py"):
        found = dict((name, value) for name, value in _REVISION_LINE.findall(path.read_text(encoding="utf-8")))
        matches = {name: _QUOTED.match(found.get(name, "")) for name in ("revision", "down_revision")}
        if not all(matches.values()) or matches["revision"].group(2) is None:
            return None
        revisions.add(matches["revision"].group(2))
        if matches["down_revision"].group(2) is not None:
            parents.add(matches["down_revision"].group(2))
    return tuple(sorted(revisions - parents)) or None


def sqlite_at_head(url: str) -> bool:
    """Whether the SQLite file of ``url`` (``sqlite:///path``) already is at every head of :func:`script_heads`,
    read with :mod:`sqlite3` (no Alembic, no SQLAlchemy engine). False when unsure: not a plain file URL, no file
    yet, no version table, or scripts :func:`script_heads` cannot read. A web worker starting on a migrated file
    so skips importing Alembic and every migration script (about 10 MB of memory per process)."""
    if not url.startswith("sqlite:///") or "?" in url or url in ("sqlite:///", "sqlite:///:memory:"):
        return False
    path = Path(url[len("sqlite:///"):])
    heads = script_heads()
    if heads is None or not path.is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        try:
            current = tuple(sorted(row[0] for row in conn.execute("SELECT version_num FROM alembic_version")))
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return current == heads


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
    before and after (under the lock) and returned as :class:`Applied`; else None. Without ``report`` a SQLite
    file already at head (:func:`sqlite_at_head`) is left alone without importing Alembic.
    """
    if not report and sqlite_at_head(url):
        return None
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
