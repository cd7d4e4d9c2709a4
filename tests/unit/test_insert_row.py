"""kernel.db.insert_row: one Core INSERT, a detached object with every column loaded, defaults filled in."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from callbacks.models import Event
from kernel.db import Base, insert_row
from payments.models import Payment


@pytest.fixture
def db():
    engine = create_engine("sqlite://")
    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def _payment_values(**extra) -> dict:
    now = datetime(2026, 12, 1, 12, 0)
    return dict(id="pay_1", client_id="cli_1", status="captured", amount=2500, currency="USD", token="tok_1",
                gateway="sandbox", created_at=now, updated_at=now, **extra)


def test_defaults_are_filled_in_and_every_column_is_loaded(db):
    payment = insert_row(db, Payment, _payment_values())
    # Python defaults (scalar and callable) and None for the rest, without a query: the object is detached
    assert payment.amount_refunded == 0 and payment.metadata_ == {} and payment.moto is False
    assert payment.session_id is None and payment.entry_mode == "page"
    stored = db.execute(select(Payment.__table__)).mappings().one()
    assert stored["amount_refunded"] == 0 and stored["metadata"] == {} and stored["intent"] == "payment"


def test_the_row_can_be_attached_and_changed_in_the_same_transaction(db):
    payment = insert_row(db, Payment, _payment_values())
    db.add(payment)
    payment.amount_refunded = 500
    db.flush()
    assert db.scalar(select(Payment.__table__.c.amount_refunded)) == 500
    assert db.scalar(select(func.count()).select_from(Payment.__table__)) == 1  # updated, not inserted twice


def test_pending_changes_are_not_flushed_by_it(db):
    first = insert_row(db, Event, dict(id="evt_1", client_id="cli_1", type="t", sequence=1, body="{}",
                                        created_at=datetime(2026, 12, 1)))
    db.add(first)
    first.type = "changed"  # pending, not flushed by the next insert
    insert_row(db, Event, dict(id="evt_2", client_id="cli_1", type="t", sequence=2, body="{}",
                               created_at=datetime(2026, 12, 1)))
    with db.no_autoflush:  # this read must not flush either
        stored = db.execute(select(Event.__table__.c.type).where(Event.__table__.c.id == "evt_1")).scalar_one()
    assert stored == "t"
    assert first.object == "payment_session"  # the column's default


def test_an_unknown_attribute_is_refused(db):
    with pytest.raises(TypeError, match="no column attribute colour"):
        insert_row(db, Payment, _payment_values(colour="red"))
    assert db.scalar(select(func.count()).select_from(Payment.__table__)) == 0
