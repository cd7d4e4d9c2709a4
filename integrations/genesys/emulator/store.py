"""In-memory state of the emulator: what arrived at the callback receiver, and the test knobs.

Everything is guarded by one lock because the emulator runs a threaded server: several callbacks can
arrive at once (the delivery worker retries in parallel) and tests read while deliveries land.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

# outcomes of one POST to the receiver
ACCEPTED = "accepted"    # verified, first time this event id was seen; answered 200
DUPLICATE = "duplicate"  # verified, event id already accepted (at-least-once redelivery); answered 200
REJECTED = "rejected"    # signature or body not acceptable; answered 400
FAILED = "failed"        # a test knob made the receiver answer an error on purpose


@dataclass
class Behaviour:
    """How the receiver misbehaves for the next callbacks.

    ``fail_next``: how many callbacks to answer with ``status`` (default 500) instead of processing them;
    ``slow_next``: how many callbacks to hold for ``delay_seconds`` before answering (slow or failing alike).
    Both counters go down by one per callback that arrives.
    """

    fail_next: int = 0
    status: int = 500
    slow_next: int = 0
    delay_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"fail_next": self.fail_next, "status": self.status, "slow_next": self.slow_next,
                "delay_seconds": self.delay_seconds}


@dataclass(frozen=True)
class Plan:
    """What to do with one arriving callback, decided under the lock when it arrives."""

    delay_seconds: float
    fail_status: int | None


class ReceiverStore:
    """Thread-safe record of the callbacks received, the accepted event ids and the knobs.

    ``secrets``: the signing secrets the receiver accepts (any may match, as during rotation).
    ``record_path``: when set, every raw body that arrives is appended to that file as one JSON line,
    so a later scan can read exactly what was sent over the wire.
    """

    def __init__(self, secrets: Sequence[str] = (), record_path: str | Path | None = None):
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = tuple(secrets)
        self._items: list[dict[str, Any]] = []
        self._accepted_ids: set[str] = set()
        self._behaviour = Behaviour()
        self._record_path = Path(record_path) if record_path else None

    # --- knobs -----------------------------------------------------------------------------------------
    @property
    def secrets(self) -> tuple[str, ...]:
        with self._lock:
            return self._secrets

    def set_secrets(self, secrets: Sequence[str]) -> None:
        with self._lock:
            self._secrets = tuple(secrets)

    def set_behaviour(self, behaviour: Behaviour) -> None:
        with self._lock:
            self._behaviour = behaviour

    def behaviour(self) -> Behaviour:
        with self._lock:
            return Behaviour(**self._behaviour.as_dict())

    def plan_next(self) -> Plan:
        """Consumes one unit of each active knob and says how to treat the callback that just arrived."""
        with self._lock:
            b = self._behaviour
            delay = 0.0
            if b.slow_next > 0:
                b.slow_next -= 1
                delay = b.delay_seconds
            fail = None
            if b.fail_next > 0:
                b.fail_next -= 1
                fail = b.status
            return Plan(delay, fail)

    def reset(self) -> None:
        """Forgets every received callback, every accepted id and the knobs (secrets are kept)."""
        with self._lock:
            self._items.clear()
            self._accepted_ids.clear()
            self._behaviour = Behaviour()

    # --- records ---------------------------------------------------------------------------------------
    def record_raw(self, body: bytes) -> None:
        """Appends the raw body as one JSON line to the record file, if one is configured."""
        if self._record_path is None:
            return
        try:
            line = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
        except (ValueError, UnicodeDecodeError):
            line = json.dumps({"unparsed_body": body.decode("utf-8", "replace")})
        with self._lock, self._record_path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def record_json(self, entry: dict[str, Any]) -> None:
        """Appends one JSON-able dict as a line to the record file, if one is configured (used for the
        bodies paygate writes back into the fake Genesys Platform API)."""
        if self._record_path is None:
            return
        line = json.dumps(entry, separators=(",", ":"), ensure_ascii=False)
        with self._lock, self._record_path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    def add(self, item: dict[str, Any], *, accept: bool = False) -> str:
        """Stores one record. With ``accept``, decides atomically between ``accepted`` and ``duplicate``
        on the item's ``event_id`` and returns the outcome; otherwise returns the item's own outcome."""
        with self._lock:
            if accept:
                event_id = item["event_id"]
                item["outcome"] = DUPLICATE if event_id in self._accepted_ids else ACCEPTED
                item["duplicate"] = item["outcome"] == DUPLICATE
                self._accepted_ids.add(event_id)
            self._items.append(item)
            return item["outcome"]

    def items(self) -> list[dict[str, Any]]:
        """Copies of every record, oldest first."""
        with self._lock:
            return [dict(i) for i in self._items]
