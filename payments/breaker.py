"""The gateway circuit breaker, shared by every instance through Redis (docs/api.md, "Gateway circuit breaker").

Every gateway call that moves money (customer authorizations, merchant-initiated charges and renewals,
captures, voids, refunds) reports its latency (real time, measured around the call) and whether it failed
*technically* (:attr:`~tokenizer.gateways.base.GatewayStatus.UNAVAILABLE`: a timeout, a connection error, a
5xx; a decline or a refusal is an answer, not a failure). States::

    closed ──(average latency of the last ``window`` calls > ``latency_seconds``,
              or ``errors`` technical failures in a row)──▶ open
    open ──(``cooldown_seconds`` of business time)──▶ half_open
    half_open ──(the one probe call succeeds within the latency limit)──▶ closed
    half_open ──(the probe fails or is slow)──▶ open (the cooldown starts again)

While the breaker is open, card submissions end ``requires_agent`` with ``decline_code:
"automation_unavailable"`` without a gateway call (:meth:`payments.submission.PaymentProcessor.submit`).
Half-open lets exactly one submission through as the probe (a lease in Redis, so one across every
instance; a probe whose process died frees its lease after :data:`PROBE_LEASE_MS`); the others still go
to the agent. Merchant-initiated charges, renewals, captures, voids and refunds do not ask the breaker
(a renewal refused for an outage would have to be retried anyway; they keep their own reconciliation of
unknown outcomes) but their latency and failures count.

Time: latency is real (``time.perf_counter``: how long the caller waited); the cooldown and ``since`` are
business time from the injected clock, so the sandbox clock (``POST /v1/sandbox/clock``) can move a test or a
demo past the cooldown. Outside the sandbox business time is real time.

Storage (keys ``paygate:breaker:<gateway>`` hash ``state``/``since``/``failures``/``reason``, ``…:latency`` the
last ``window`` latencies in ms, newest first, ``…:probe`` the probe lease). Every change is one Lua script,
so concurrent reports from several instances cannot interleave. Nothing about cards or customers is stored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Callable

import redis as redis_lib

from kernel.blocking import blocking
from kernel.clock import Clock, IdFactory
from tokenizer.gateways.base import GatewayStatus

__all__ = ["Admission", "BreakerPolicy", "CircuitBreaker", "MeasuredGateway", "PROBE_LEASE_MS", "STATES"]

log = logging.getLogger("paygate.breaker")

STATES = ("closed", "open", "half_open")
PROBE_LEASE_MS = 60_000
"""How long a probe holds its lease (real time): a probe that never reports frees it after this."""

# KEYS: state hash, latency list, probe lease. ARGV: latency ms, failed (0|1), now (epoch s, business time),
# window, latency limit ms, errors in a row, probe token ('' when not a probe). Returns the state afterwards.
_RECORD = """
redis.call('HSETNX', KEYS[1], 'state', 'closed')
redis.call('HSETNX', KEYS[1], 'since', ARGV[3])
local state = redis.call('HGET', KEYS[1], 'state')
local latency = tonumber(ARGV[1])
local failed = ARGV[2] == '1'
local window = tonumber(ARGV[4])
local limit = tonumber(ARGV[5])
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, window - 1)
local failures = 0
if failed then
  failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
else
  redis.call('HSET', KEYS[1], 'failures', 0)
end
if ARGV[7] ~= '' then
  if redis.call('GET', KEYS[3]) == ARGV[7] then
    redis.call('DEL', KEYS[3])
  end
  if state == 'half_open' then
    if failed or latency > limit then
      local why = failed and 'probe_failed' or 'probe_slow'
      redis.call('HSET', KEYS[1], 'state', 'open', 'since', ARGV[3], 'reason', why)
      return 'open'
    end
    redis.call('HSET', KEYS[1], 'state', 'closed', 'since', ARGV[3], 'failures', 0, 'reason', 'probe_succeeded')
    redis.call('DEL', KEYS[2])
    redis.call('LPUSH', KEYS[2], ARGV[1])
    return 'closed'
  end
end
if state ~= 'closed' then
  return state
end
local reason = false
if failed and failures >= tonumber(ARGV[6]) then
  reason = 'errors'
else
  local recent = redis.call('LRANGE', KEYS[2], 0, window - 1)
  if #recent >= window then
    local sum = 0
    for _, v in ipairs(recent) do sum = sum + tonumber(v) end
    if sum / #recent > limit then reason = 'latency' end
  end
end
if reason then
  redis.call('HSET', KEYS[1], 'state', 'open', 'since', ARGV[3], 'reason', reason)
  return 'open'
end
return 'closed'
"""

# KEYS: state hash, probe lease. ARGV: now (epoch s), cooldown s, probe token, lease ms.
# Returns 'closed' (call the gateway), 'probe' (call it: this caller is the probe) or the state that refuses.
_ADMIT = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then
  return 'closed'
end
if state == 'open' then
  local since = tonumber(redis.call('HGET', KEYS[1], 'since')) or 0
  local cooldown = tonumber(ARGV[2])
  if tonumber(ARGV[1]) - since < cooldown then
    return 'open'
  end
  redis.call('HSET', KEYS[1], 'state', 'half_open', 'since', string.format('%.6f', since + cooldown))
end
if redis.call('SET', KEYS[2], ARGV[3], 'NX', 'PX', ARGV[4]) then
  return 'probe'
end
return 'half_open'
"""


@dataclass(frozen=True)
class BreakerPolicy:
    """``window`` calls averaged; ``latency_seconds`` the average that opens; ``errors`` technical failures in a
    row that open; ``cooldown_seconds`` of business time before the probe (``PAYGATE_BREAKER_*``)."""

    window: int = 3
    latency_seconds: float = 15.0
    errors: int = 5
    cooldown_seconds: int = 60


@dataclass(frozen=True)
class Admission:
    """Whether a card submission may call the gateway: ``allowed``; ``state`` the breaker's state as seen
    (``closed`` | ``open`` | ``half_open``); ``probe_token`` set when this call is the half-open probe (report it
    with :meth:`CircuitBreaker.record` ``probe=``, or give it back with :meth:`CircuitBreaker.release_probe`)."""

    allowed: bool
    state: str
    probe_token: str | None = None


class CircuitBreaker:
    """The breaker of one gateway (``gateway``: its identifier) on ``redis``; see the module docstring.
    ``clock`` is business time (aware UTC); ``new_id`` makes probe tokens."""

    def __init__(self, redis, gateway: str, policy: BreakerPolicy, *, clock: Clock, new_id: IdFactory):
        self.redis = redis
        self.gateway = gateway
        self.policy = policy
        self.clock = clock
        self.new_id = new_id
        self.key = f"paygate:breaker:{gateway}"
        self.keys = [self.key, f"{self.key}:latency", f"{self.key}:probe"]
        self._record = redis.register_script(_RECORD)
        self._admit = redis.register_script(_ADMIT)

    def admit(self) -> Admission:
        """Asks before a card submission's gateway call. Raises ``redis.RedisError`` when Redis cannot be
        asked (the caller answers 503 before anything is committed)."""
        token = self.new_id("probe")
        return self._admission(self._admit(keys=[self.keys[0], self.keys[2]], args=self._admit_args(token)), token)

    def queue_admit(self, pipe) -> Callable[[list], Admission]:
        """:meth:`admit` asked on another redis-py pipeline (the fraud screen's:
        :meth:`payments.fraud.FraudScreen.screen_and`): queues the admission script by its SHA on ``pipe`` and
        returns the function that turns its answer (a one-item list) into the :class:`Admission`. A Redis that
        lost the script (``NOSCRIPT``) is asked again through :meth:`admit`, which loads it; another error is
        raised as ``redis.RedisError``."""
        token = self.new_id("probe")
        pipe.evalsha(self._admit.sha, 2, self.keys[0], self.keys[2], *self._admit_args(token))

        def finish(answers: list) -> Admission:
            (answer,) = answers
            if isinstance(answer, redis_lib.exceptions.NoScriptError):
                return self.admit()
            if isinstance(answer, Exception):
                raise answer
            return self._admission(answer, token)

        return finish

    def _admit_args(self, token: str) -> list:
        p = self.policy
        return [_epoch(self.clock()), p.cooldown_seconds, token, PROBE_LEASE_MS]

    def _admission(self, answer, token: str) -> Admission:
        answer = _text(answer)
        if answer == "closed":
            return Admission(True, "closed")
        if answer == "probe":
            log.info("gateway breaker half-open: letting one probe call through", extra={"gateway": self.gateway})
            return Admission(True, "half_open", probe_token=token)
        return Admission(False, answer)

    def record(self, latency_seconds: float, failed: bool, *, probe: str | None = None) -> str | None:
        """Reports one gateway call: ``latency_seconds`` (real), ``failed`` (technical failure), ``probe`` the
        :class:`Admission`'s token when the call was the half-open probe. Returns the state afterwards, or None
        when Redis could not be reached (logged, never raised: the call's outcome matters more than its
        statistics). One round trip (a pipeline of ``HGET`` and the record script by its SHA)."""
        with self.redis.pipeline(transaction=False) as pipe:
            finish = self.queue_record(pipe, latency_seconds, failed, probe=probe)
            try:
                answers = pipe.execute(raise_on_error=False)
            except redis_lib.RedisError as exc:
                log.warning("gateway breaker could not record a call", extra={"error": type(exc).__name__})
                return None
        return finish(answers)

    def queue_record(self, pipe, latency_seconds: float, failed: bool, *,
                     probe: str | None = None) -> Callable[[list], str | None]:
        """:meth:`record` on another redis-py pipeline the caller executes (a card submission sends it with the
        round trip that gives its leases back): queues its two commands on ``pipe`` and returns the function that
        takes their answers (a list, an error as its exception object) and returns :meth:`record`'s answer,
        logging a change of state. A Redis that lost the script (``NOSCRIPT``) gets it loaded and run again."""
        p = self.policy
        args = [f"{latency_seconds * 1000:.3f}", "1" if failed else "0", _epoch(self.clock()), p.window,
                f"{p.latency_seconds * 1000:.3f}", p.errors, probe or ""]
        pipe.hget(self.key, "state")
        pipe.evalsha(self._record.sha, len(self.keys), *self.keys, *args)

        def finish(answers: list) -> str | None:
            before, after = answers
            try:
                if isinstance(before, Exception):
                    raise before
                if isinstance(after, redis_lib.exceptions.NoScriptError):
                    after = self._record(keys=self.keys, args=args)
                elif isinstance(after, Exception):
                    raise after
            except redis_lib.RedisError as exc:
                log.warning("gateway breaker could not record a call", extra={"error": type(exc).__name__})
                return None
            after = _text(after)
            if after != (_text(before) or "closed"):
                level = logging.WARNING if after == "open" else logging.INFO
                log.log(level, f"gateway breaker {after}", extra={"gateway": self.gateway, "state": after,
                                                                     "latency_ms": round(latency_seconds * 1000)})
            return after

        return finish

    def release_probe(self, token: str | None) -> None:
        """Gives back a probe lease that was not used (the submission ended before the gateway call)."""
        if not token:
            return
        try:
            self.redis.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
                            "return 0", 1, self.keys[2], token)
        except redis_lib.RedisError:
            pass  # the lease expires by itself

    def status(self) -> dict:
        """``{"gateway", "state", "since", "recent_latency_ms"}`` (docs/api.md, "GET /v1/gateway-status"): the
        state as an admission would see it now (an open breaker past its cooldown reads ``half_open``), ``since``
        when that state began (RFC 3339, business time; None before the first gateway call), and the average
        latency of the last ``window`` calls in whole milliseconds (None before the first). Raises
        ``redis.RedisError`` when Redis cannot be asked."""
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self.key)
            pipe.lrange(self.keys[1], 0, self.policy.window - 1)
            fields, recent = pipe.execute()
        fields = {_text(k): _text(v) for k, v in fields.items()}
        state = fields.get("state") or "closed"
        since = float(fields["since"]) if fields.get("since") else None
        if state == "open" and since is not None and _epoch_value(self.clock()) - since >= self.policy.cooldown_seconds:
            state, since = "half_open", since + self.policy.cooldown_seconds
        latencies = [float(_text(v)) for v in recent]
        return {"gateway": self.gateway, "state": state,
                "since": _rfc3339(since) if since is not None else None,
                "recent_latency_ms": round(sum(latencies) / len(latencies)) if latencies else None}

    def state(self) -> str:
        """Just the state of :meth:`status`."""
        return self.status()["state"]

    def measure(self, call: Callable[[], object], *, probe: str | None = None):
        """Runs ``call`` (one gateway call returning a result with a ``status``), records its latency and whether
        it failed technically, and returns its result. The call runs inside :func:`kernel.blocking.blocking` (the
        web tier gives back its admission slot while the request only waits on the gateway)."""
        result, elapsed = self.timed(call)
        self.record(elapsed, failed_technically(result), probe=probe)
        return result

    @staticmethod
    def timed(call: Callable[[], object]) -> tuple[object, float]:
        """``(call(), seconds it took)``, the call inside :func:`kernel.blocking.blocking`: :meth:`measure`
        without the record, for a caller that reports the call itself (:meth:`queue_record`)."""
        with blocking():
            started = time.perf_counter()
            result = call()
            return result, time.perf_counter() - started


def failed_technically(result) -> bool:
    """Whether a gateway result counts as a technical failure for the breaker (``GatewayStatus.UNAVAILABLE``)."""
    return getattr(result, "status", None) is GatewayStatus.UNAVAILABLE


class MeasuredGateway:
    """``inner`` with its money-moving calls (:meth:`charge_saved_card`, :meth:`capture`, :meth:`void`,
    :meth:`refund`, and :meth:`authorize` when called through it) reported to ``breaker``; lookups and
    everything else (``identifier``, the sandbox's helpers) pass straight through. Used by the services that
    do not ask the breaker first (merchant charges, renewals, holds, refunds)."""

    def __init__(self, inner, breaker: CircuitBreaker):
        self.inner = inner
        self.breaker = breaker

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def __repr__(self) -> str:
        return f"MeasuredGateway({self.inner!r})"

    def authorize(self, request):
        return self.breaker.measure(lambda: self.inner.authorize(request))

    def charge_saved_card(self, request):
        return self.breaker.measure(lambda: self.inner.charge_saved_card(request))

    def capture(self, request):
        return self.breaker.measure(lambda: self.inner.capture(request))

    def void(self, request):
        return self.breaker.measure(lambda: self.inner.void(request))

    def refund(self, request):
        return self.breaker.measure(lambda: self.inner.refund(request))


def _text(value) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def _epoch_value(moment: datetime) -> float:
    return moment.timestamp()


def _epoch(moment: datetime) -> str:
    return f"{moment.timestamp():.6f}"


def _rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
