"""The self-migration's fast path (paygate/migrate.py): a SQLite file already at head is recognised without Alembic."""

from __future__ import annotations

from alembic.script import ScriptDirectory

from paygate.migrate import alembic_config, script_heads, sqlite_at_head, upgrade


def test_script_heads_match_alembic():
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert script_heads() == tuple(sorted(script.get_heads()))


def test_sqlite_at_head_only_once_migrated(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    assert not sqlite_at_head(url)  # no file yet
    (tmp_path / "db.sqlite3").write_bytes(b"")
    assert not sqlite_at_head(url)  # an empty file: no version table
    upgrade(url)
    assert sqlite_at_head(url)
    assert not sqlite_at_head("sqlite://")
    assert not sqlite_at_head("postgresql+psycopg://u@h/db")
