"""The fraud pre-screen: velocity rules scored before any gateway call.

Each card submission is scored by a list of rules (:attr:`FraudScreen.rules`, :func:`default_rules`; a rule
queues its Redis commands on one shared pipeline and judges its own answers); each rule that fires adds a
:class:`FraudSignal` with a score, the total is clamped to [0, 1], and a total at or above the policy's
``threshold`` blocks the attempt (the session goes to ``requires_agent`` and the gateway is never called).

Rules (reason codes are stable; they are stored with each attempt)::

    session_attempts       every attempt after the first in the same session adds
                           ``session_attempt_weight`` (card testing retries numbers in one session)
    ip_velocity            attempts from one client IP in the last hour, when over
                           ``ip_attempts_per_hour`` (skipped when the IP is unknown)
    card_velocity          distinct sessions using one card fingerprint in the last hour, when over
                           ``card_sessions_per_hour``
    card_declines          gateway declines of one card fingerprint in the last day, when at or over
                           ``card_declines_per_day``
    gateway_risk_elevated  added after the gateway call for Stripe Radar's ``elevated`` risk level
    gateway_risk_highest   added after the gateway call for Radar's ``highest`` risk level

A velocity rule scores ``weight × count / limit`` (capped at 1.0), so with the default weight of 0.5 a
count just over its limit scores about 0.5 (below the default 0.8 threshold: no block on its own),
twice the limit scores 1.0 (blocks), and any two velocity rules firing together block. Radar's levels
follow docs.stripe.com/radar/risk-evaluation (``normal`` | ``elevated`` | ``highest``).

Storage: Redis sorted sets under ``paygate:fraud:`` whose scores are timestamps from the injected
clock (sliding windows), pruned on every write and given a TTL so idle keys expire by themselves.
Keys and members hold only IPs, session ids and card fingerprints (``fp_...``), never card data.
:meth:`FraudScreen.screen` is one pipelined round trip; :meth:`FraudScreen.record_decline` is one
script call.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from kernel.clock import Clock

__all__ = ["AttemptFacts", "CardDeclinesRule", "FraudAssessment", "FraudPolicy", "FraudRule", "FraudScreen",
           "FraudSignal", "SessionAttemptsRule", "SlidingCountRule", "default_rules"]

KEY_PREFIX = "paygate:fraud:"
_TTL_MARGIN_SECONDS = 60

# KEYS[1] declines zset, KEYS[2] its sequence counter; ARGV: now, window start (exclusive), ttl seconds.
_RECORD_DECLINE = """
local seq = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[1] .. ':' .. seq)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('ZCARD', KEYS[1])
"""


@dataclass(frozen=True)
class FraudPolicy:
    """Limits and weights of the pre-screen. Limits are counts per window; weights are scores in [0, 1].

    Defaults: ``threshold`` 0.8; 30 attempts per IP per hour; 10 sessions per card per hour; 5 declines
    per card per day; weights 0.1 per extra session attempt, 0.5 per velocity rule at 1× its limit,
    0.4 for Radar ``elevated``, 1.0 for Radar ``highest``. Raises ``ValueError`` for out-of-range values.
    """

    threshold: float = 0.8
    ip_attempts_per_hour: int = 30
    card_sessions_per_hour: int = 10
    card_declines_per_day: int = 5
    session_attempt_weight: float = 0.1
    ip_velocity_weight: float = 0.5
    card_velocity_weight: float = 0.5
    card_declines_weight: float = 0.5
    gateway_elevated_weight: float = 0.4
    gateway_highest_weight: float = 1.0
    velocity_window_seconds: int = 3600
    decline_window_seconds: int = 86400

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        for name in ("ip_attempts_per_hour", "card_sessions_per_hour", "card_declines_per_day",
                     "velocity_window_seconds", "decline_window_seconds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("session_attempt_weight", "ip_velocity_weight", "card_velocity_weight",
                     "card_declines_weight", "gateway_elevated_weight", "gateway_highest_weight"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")


@dataclass(frozen=True)
class FraudSignal:
    """One rule that fired: stable ``code``, its ``score`` contribution, and a ``detail`` in plain words
    (counts and limits only: no IP, fingerprint or card data)."""

    code: str
    score: float
    detail: str


@dataclass(frozen=True)
class FraudAssessment:
    """The pre-screen's verdict: ``score`` (sum of the reasons' scores, clamped to [0, 1]), the
    ``reasons`` that fired, and the ``threshold`` it is compared with."""

    score: float
    reasons: tuple[FraudSignal, ...]
    threshold: float

    @property
    def blocked(self) -> bool:
        """True when ``score >= threshold``: the attempt must not reach the gateway."""
        return self.score >= self.threshold

    def to_json(self) -> list[dict]:
        """The reasons as ``[{"code", "score", "detail"}, ...]`` (stored on the payment attempt)."""
        return [{"code": r.code, "score": r.score, "detail": r.detail} for r in self.reasons]

    @classmethod
    def of(cls, reasons, threshold: float) -> FraudAssessment:
        """Builds an assessment from signals, summing and clamping their scores."""
        reasons = tuple(reasons)
        total = min(1.0, max(0.0, sum(r.score for r in reasons)))
        return cls(score=round(total, 6), reasons=reasons, threshold=threshold)


def _velocity_score(weight: float, count: int, limit: int) -> float:
    return round(min(1.0, weight * count / limit), 6)


@dataclass(frozen=True)
class AttemptFacts:
    """What the rules know of one attempt: ids, the client IP (None by voice), the card fingerprint and the
    injected clock's ``now`` in unix seconds."""

    session_id: str
    attempt_number: int
    client_ip: str | None
    fingerprint: str
    now: float


class FraudRule(Protocol):
    """One rule of the pre-screen. ``queue`` adds its Redis commands (counting this attempt) to the shared
    pipeline and returns how many; ``judge`` gets the answers to exactly those commands and returns the signal
    when the rule fires, else None."""

    code: str

    def queue(self, pipe, facts: AttemptFacts) -> int: ...

    def judge(self, results: list, facts: AttemptFacts) -> FraudSignal | None: ...


@dataclass(frozen=True)
class SessionAttemptsRule:
    """``session_attempts``: every attempt after the first in the same session adds ``weight`` (card testing
    retries numbers in one session). No Redis."""

    weight: float
    code: str = "session_attempts"

    def queue(self, pipe, facts: AttemptFacts) -> int:
        return 0

    def judge(self, results: list, facts: AttemptFacts) -> FraudSignal | None:
        extra = max(0, facts.attempt_number - 1)
        if not extra or not self.weight:
            return None
        return FraudSignal(self.code, round(min(1.0, extra * self.weight), 6), f"attempt {facts.attempt_number} in "
                                                                               "this session")


@dataclass(frozen=True)
class SlidingCountRule:
    """A velocity rule over a Redis sorted set of timestamps: counts the distinct members of ``key`` within
    ``window`` seconds (this attempt included) and fires above ``limit``, scoring ``weight × count / limit``
    (capped at 1). ``key``/``member`` map the facts to the set and the entry (None: the rule does not apply,
    e.g. no IP by voice); ``detail`` words the reason from (count, limit)."""

    code: str
    key: Callable[[AttemptFacts], str | None]
    member: Callable[[AttemptFacts], str]
    limit: int
    weight: float
    window: int
    detail: Callable[[int, int], str]

    def queue(self, pipe, facts: AttemptFacts) -> int:
        key = self.key(facts)
        if key is None:
            return 0
        pipe.zadd(key, {self.member(facts): facts.now})
        pipe.zremrangebyscore(key, "-inf", facts.now - self.window)
        pipe.zcard(key)
        pipe.expire(key, self.window + _TTL_MARGIN_SECONDS)
        return 4

    def judge(self, results: list, facts: AttemptFacts) -> FraudSignal | None:
        if not results:
            return None
        count = int(results[2])
        if count <= self.limit:
            return None
        return FraudSignal(self.code, _velocity_score(self.weight, count, self.limit), self.detail(count, self.limit))


@dataclass(frozen=True)
class CardDeclinesRule:
    """``card_declines``: gateway declines of the card in the last ``window`` seconds (recorded by
    :meth:`FraudScreen.record_decline`), firing at ``limit`` or more."""

    limit: int
    weight: float
    window: int
    code: str = "card_declines"

    def queue(self, pipe, facts: AttemptFacts) -> int:
        pipe.zcount(FraudScreen.card_declines_key(facts.fingerprint), f"({facts.now - self.window}", "+inf")
        return 1

    def judge(self, results: list, facts: AttemptFacts) -> FraudSignal | None:
        declines = int(results[0])
        if declines < self.limit:
            return None
        return FraudSignal(self.code, _velocity_score(self.weight, declines, self.limit),
                           f"card declined {declines} times in the last day (limit {self.limit})")


def default_rules(p: FraudPolicy) -> tuple[FraudRule, ...]:
    """The rules of the module docstring, configured by ``p``, in the order their reasons are listed."""
    return (
        SessionAttemptsRule(p.session_attempt_weight),
        SlidingCountRule("ip_velocity", key=lambda f: FraudScreen.ip_key(f.client_ip) if f.client_ip else None,
                         member=lambda f: f"{f.session_id}:{f.attempt_number}", limit=p.ip_attempts_per_hour,
                         weight=p.ip_velocity_weight, window=p.velocity_window_seconds,
                         detail=lambda n, limit: f"{n} attempts from this client IP in the last hour (limit {limit})"),
        SlidingCountRule("card_velocity", key=lambda f: FraudScreen.card_sessions_key(f.fingerprint),
                         member=lambda f: f.session_id, limit=p.card_sessions_per_hour,
                         weight=p.card_velocity_weight, window=p.velocity_window_seconds,
                         detail=lambda n, limit: f"card used in {n} sessions in the last hour (limit {limit})"),
        CardDeclinesRule(p.card_declines_per_day, p.card_declines_weight, p.decline_window_seconds),
    )


class FraudScreen:
    """Scores card attempts against :class:`FraudPolicy` with counters in Redis.

    ``redis``: a ``redis.Redis`` client (bytes or str responses both work); ``clock``: returns an aware
    UTC ``datetime`` (the window timestamps come from it, so a ``FrozenClock`` drives the windows).
    """

    def __init__(self, redis, policy: FraudPolicy, clock: Clock):
        self.redis = redis
        self.policy = policy
        self.clock = clock
        self._record_decline = redis.register_script(_RECORD_DECLINE)
        self.rules: tuple[FraudRule, ...] = default_rules(policy)
        """The pre-screen's rules, in the order their reasons are listed."""

    # keys -------------------------------------------------------------------------------------------
    @staticmethod
    def ip_key(client_ip: str) -> str:
        return f"{KEY_PREFIX}ip:{client_ip}"

    @staticmethod
    def card_sessions_key(fingerprint: str) -> str:
        return f"{KEY_PREFIX}card:{fingerprint}:sessions"

    @staticmethod
    def card_declines_key(fingerprint: str) -> str:
        return f"{KEY_PREFIX}card:{fingerprint}:declines"

    # ------------------------------------------------------------------------------------------------
    def screen(self, *, session_id: str, attempt_number: int, client_ip: str | None,
               fingerprint: str) -> FraudAssessment:
        """Records this attempt in the counters and scores it with every rule of :attr:`rules` (see the module
        docstring).

        ``attempt_number`` starts at 1 within the session; ``client_ip`` may be ``None`` (voice calls
        arrive server to server), which skips the IP rule; ``fingerprint`` is the vault's ``fp_`` value.
        Screening the same (session, attempt) twice does not count it twice. One Redis round trip: each rule
        queues its commands on one pipeline, then judges its own slice of the answers.
        """
        facts = AttemptFacts(session_id=session_id, attempt_number=attempt_number, client_ip=client_ip,
                             fingerprint=fingerprint, now=self.clock().timestamp())
        pipe = self.redis.pipeline(transaction=True)
        counts = [rule.queue(pipe, facts) for rule in self.rules]
        results = pipe.execute() if any(counts) else []
        reasons: list[FraudSignal] = []
        start = 0
        for rule, count in zip(self.rules, counts):
            signal = rule.judge(results[start:start + count], facts)
            start += count
            if signal is not None:
                reasons.append(signal)
        return FraudAssessment.of(reasons, self.policy.threshold)

    def record_decline(self, fingerprint: str) -> int:
        """Counts a gateway decline for the card ``fingerprint`` (``fp_...``); returns the declines of that
        card within the last day, this one included."""
        p = self.policy
        now = self.clock().timestamp()
        key = self.card_declines_key(fingerprint)
        count = self._record_decline(keys=[key, key + ":seq"],
                                     args=[repr(now), repr(now - p.decline_window_seconds),
                                           p.decline_window_seconds + _TTL_MARGIN_SECONDS])
        return int(count)

    def with_gateway_risk(self, assessment: FraudAssessment, risk_level: str | None) -> FraudAssessment:
        """``assessment`` plus the gateway's own risk signal: ``elevated`` adds ``gateway_risk_elevated``,
        ``highest`` adds ``gateway_risk_highest``; ``None``, ``normal`` or anything else changes nothing."""
        p = self.policy
        if risk_level == "elevated":
            signal = FraudSignal("gateway_risk_elevated", p.gateway_elevated_weight, "gateway risk level elevated")
        elif risk_level == "highest":
            signal = FraudSignal("gateway_risk_highest", p.gateway_highest_weight, "gateway risk level highest")
        else:
            return assessment
        return FraudAssessment.of((*assessment.reasons, signal), assessment.threshold)
