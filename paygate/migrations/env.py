"""Alembic environment: runs migrations online against ``sqlalchemy.url``."""

from alembic import context
from sqlalchemy import create_engine, pool

from paygate.schema import metadata

config = context.config
target_metadata = metadata


def run_migrations_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=connection.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()


run_migrations_online()
