from sqlalchemy import inspect

from kernel.db import make_engine


def test_migrations_create_every_table(db_url):
    engine = make_engine(db_url)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"api_clients", "payment_sessions", "payment_attempts", "payments", "vault_cards", "events",
            "deliveries", "delivery_attempts", "refunds", "disputes", "gateway_webhook_events"} <= names


def test_redis_is_real(redis_client):
    redis_client.set("k", "v")
    assert redis_client.get("k") == b"v"


def test_migrations_match_the_models(db_url):
    """Alembic's autogenerate finds nothing to add: every model change came with a migration."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from paygate.schema import metadata

    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            diffs = compare_metadata(MigrationContext.configure(conn), metadata)
    finally:
        engine.dispose()
    assert diffs == []
