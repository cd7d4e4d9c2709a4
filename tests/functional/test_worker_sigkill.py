"""A worker killed with SIGKILL while a callback is in flight loses nothing: its lease runs out and a
new worker process delivers the rest (docs/api.md, "Events": no event is lost when a process dies)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from callbacks.models import Delivery

from .test_delivery import Reply, Session, emit, receiver, wait_until  # noqa: F401  (pytest fixtures, shared with test_delivery)

ROOT = Path(__file__).resolve().parents[2]


def start_worker(db_url, redis_url, instance: Path, log_path: Path) -> subprocess.Popen:
    env = dict(os.environ)
    env.update({
        "PAYGATE_ENV": "test",
        "PAYGATE_DATABASE_URL": db_url,
        "PAYGATE_REDIS_URL": redis_url,
        "PAYGATE_DELIVERY_LEASE_SECONDS": "2",
        "PAYGATE_DELIVERY_BACKOFF_BASE": "0.05",
        "PAYGATE_INSTANCE_PATH": str(instance),
    })
    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "paygate.worker"], cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT)


def statuses(Session, ids) -> dict[str, Delivery]:
    with Session() as db:
        return {d.event_id: d for d in db.scalars(select(Delivery).where(Delivery.event_id.in_(ids)))}


def test_sigkill_mid_delivery_loses_nothing(db_url, redis_url, redis_client, state_dir, tmp_path, Session,
                                            receiver):
    receiver.script(Reply(hold=True))  # the first request never gets an answer from this receiver
    _, _, ids = emit(Session, url=receiver.url, count=4, now=datetime.now(timezone.utc))  # the worker's clock is real
    log_path = state_dir / f"worker-sigkill-{tmp_path.name}.log"
    instance = tmp_path / "instance"

    first = start_worker(db_url, redis_url, instance, log_path)
    try:
        # all four requests arrived; one of them is held open, the other three were answered
        wait_until(lambda: len(receiver.requests) >= 4, timeout=20)
        held_event = receiver.requests[0].event_id
        wait_until(lambda: sum(d.status == "delivered" for d in statuses(Session, ids).values()) == 3)
        first.send_signal(signal.SIGKILL)
        assert first.wait(10) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    in_flight = statuses(Session, ids)[held_event]
    assert in_flight.status == "pending" and in_flight.lock_token is not None and in_flight.attempts == 0

    second = start_worker(db_url, redis_url, instance, log_path)
    try:
        wait_until(lambda: all(d.status == "delivered" for d in statuses(Session, ids).values()), timeout=20)
        assert set(receiver.event_ids()) == set(ids)
        assert receiver.event_ids().count(held_event) == 2  # sent again after the lease ran out
        redone = statuses(Session, ids)[held_event]
        assert (redone.attempts, redone.lock_token, redone.last_status_code) == (1, None, 200)
        second.send_signal(signal.SIGTERM)  # graceful stop
        assert second.wait(10) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()
