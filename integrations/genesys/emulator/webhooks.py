"""The callback receiver (``POST /webhooks/paygate``) and its test API (``/api/*``).

The receiver checks what a careful integrator must check (docs/api.md, "Events"): the ``Paygate-Signature``
header against the accepted signing secrets with a 300 s tolerance, then de-duplicates on the event id
(``Paygate-Event-Id``; delivery is at least once). A redelivered event is answered 200 again so the
sender stops retrying, and is recorded as a duplicate.

Test API: ``POST /api/behaviour`` (fail or slow down the next callbacks), ``POST /api/secrets``
(replace the accepted secrets, e.g. to follow a rotation), ``POST /api/reset`` and
``GET /api/received`` (every record, oldest first; filters ``session_id``, ``type``, ``outcome``).
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

from flask import Blueprint, current_app, jsonify, request

from callbacks.signing import EVENT_ID_HEADER, SIGNATURE_HEADER, SignatureError, verify

from .store import FAILED, REJECTED, Behaviour, ReceiverStore

bp = Blueprint("webhooks", __name__)


def _store() -> ReceiverStore:
    return current_app.extensions["integrations.genesys.emulator"]


def _now() -> float:
    return current_app.config["EMULATOR_CLOCK"]()


def _summary(body: object) -> dict:
    """The fields the page and the tests look at, taken from a parsed event body (missing ones are None)."""
    if not isinstance(body, dict):
        return {"type": None, "sequence": None, "session_id": None}
    data = body.get("data") if isinstance(body.get("data"), dict) else {}
    return {"type": body.get("type"), "sequence": body.get("sequence"), "session_id": data.get("session_id")}


@bp.post("/webhooks/paygate")
def receive():
    """Receives one paygate event. 200 when accepted or a duplicate; 400 ``{"error": code}`` when the
    signature or body is not acceptable; the knob's status when told to fail."""
    store = _store()
    raw = request.get_data(cache=False)
    plan = store.plan_next()
    if plan.delay_seconds:
        time.sleep(plan.delay_seconds)  # simulates a slow receiver; not used for synchronisation
    store.record_raw(raw)
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    item = {
        "event_id": request.headers.get(EVENT_ID_HEADER) or (body.get("id") if isinstance(body, dict) else None),
        **_summary(body),
        "verified": False,
        "error": None,
        "http_status": 200,
        "received_at": datetime.fromtimestamp(_now(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "body": body,
        "duplicate": False,
    }
    if plan.fail_status is not None:
        item.update(outcome=FAILED, error="told_to_fail", http_status=plan.fail_status)
        store.add(item)
        return jsonify({"error": "told_to_fail"}), plan.fail_status
    try:
        verify(raw, request.headers.get(SIGNATURE_HEADER), store.secrets, now=int(_now()))
    except SignatureError as err:
        item.update(outcome=REJECTED, error=err.code, http_status=400)
        store.add(item)
        return jsonify({"error": err.code}), 400
    item["verified"] = True
    if not isinstance(body, dict) or not item["event_id"]:
        item.update(outcome=REJECTED, error="invalid_event", http_status=400)
        store.add(item)
        return jsonify({"error": "invalid_event"}), 400
    outcome = store.add(item, accept=True)
    return jsonify({"received": True, "outcome": outcome})


def _non_negative(payload: dict, key: str, kind, default):
    value = payload.get(key, default)
    try:
        value = kind(value)
    except (TypeError, ValueError):
        raise ValueError(key) from None
    if value < 0:
        raise ValueError(key)
    return value


@bp.post("/api/behaviour")
def set_behaviour():
    """``{"fail_next": n, "status": 500, "delay_seconds": s, "slow_next": m}``: the next ``n`` callbacks
    are answered ``status``; the next ``m`` (default ``n``, or 1 when only a delay is given) wait ``s``
    seconds first. Replaces any earlier setting; ``{}`` restores normal behaviour."""
    payload = request.get_json(silent=True) or {}
    try:
        fail_next = _non_negative(payload, "fail_next", int, 0)
        status = _non_negative(payload, "status", int, 500)
        delay = _non_negative(payload, "delay_seconds", float, 0.0)
        slow_default = (fail_next or 1) if delay else 0
        slow_next = _non_negative(payload, "slow_next", int, slow_default)
    except ValueError as err:
        return jsonify({"error": "invalid_value", "field": str(err)}), 400
    if not 100 <= status <= 599:
        return jsonify({"error": "invalid_value", "field": "status"}), 400
    behaviour = Behaviour(fail_next=fail_next, status=status, slow_next=slow_next, delay_seconds=delay)
    _store().set_behaviour(behaviour)
    return jsonify(behaviour.as_dict())


@bp.post("/api/secrets")
def set_secrets():
    """``{"secrets": ["whsec_...", ...]}`` replaces the accepted signing secrets."""
    payload = request.get_json(silent=True) or {}
    secrets = payload.get("secrets")
    if not isinstance(secrets, list) or not all(isinstance(s, str) and s for s in secrets):
        return jsonify({"error": "invalid_value", "field": "secrets"}), 400
    _store().set_secrets(secrets)
    return jsonify({"secrets": len(secrets)})


@bp.post("/api/reset")
def reset():
    """Forgets everything received and the knobs; the secrets stay."""
    _store().reset()
    return jsonify({"reset": True})


@bp.get("/api/received")
def received():
    """Every record, oldest first: ``{event_id, type, sequence, session_id, verified, outcome, duplicate,
    error, http_status, received_at, body}``; optional filters ``session_id``, ``type``, ``outcome``."""
    items = _store().items()
    for key in ("session_id", "type", "outcome"):
        wanted = request.args.get(key)
        if wanted is not None:
            items = [i for i in items if i.get(key) == wanted]
    return jsonify(items)
