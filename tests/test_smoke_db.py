from sqlalchemy import inspect

from paygate.db import make_engine


def test_migrations_create_every_table(db_url):
    engine = make_engine(db_url)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    assert {"api_clients", "payment_sessions", "payment_attempts", "payments", "vault_cards", "events",
            "deliveries", "delivery_attempts"} <= names


def test_redis_is_real(redis_client):
    redis_client.set("k", "v")
    assert redis_client.get("k") == b"v"
