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
    ani_velocity           attempts from one caller number (ANI, E.164) in the last hour, when over
                           ``ani_attempts_per_hour`` (skipped when the ANI is unknown)
    ani_cards              distinct card fingerprints keyed from one caller number in the last hour, when
                           over ``ani_cards_per_hour`` (skipped when the ANI is unknown)
    client_card_testing    distinct card fingerprints the gateway declined for one API client within
                           ``client_window_seconds``, when over ``client_declined_cards``: card testing
                           through the API, scored on every attempt of that client, with or without an IP
                           or an ANI (a tester can spoof caller numbers; the voice API has no client IP)
    gateway_risk_elevated  added after the gateway call for Stripe Radar's ``elevated`` risk level
    gateway_risk_highest   added after the gateway call for Radar's ``highest`` risk level

A velocity rule scores ``weight × count / limit`` (capped at 1.0), so with the default weight of 0.5 a
count just over its limit scores about 0.5 (below the default 0.8 threshold: no block on its own),
1.6 times the limit blocks (0.8), and any two velocity rules firing together block. Radar's levels
follow docs.stripe.com/radar/risk-evaluation (``normal`` | ``elevated`` | ``highest``).

Tuning of the voice rules (defaults of ``PAYGATE_FRAUD_ANI_*`` / ``PAYGATE_FRAUD_CLIENT_*``; docs/api.md,
"Fraud screening"): a caller keys one or two cards, so 3 distinct cards per caller number per hour never
score, a 4th scores 0.67 and a 5th blocks (card testing from one phone stops at its 5th card, whatever the
number of sessions); 10 attempts per number per hour never score. A contact center's declines are spread
over many cards and callers: up to 15 distinct declined cards per API client in any 10 minutes never
score (about 90 declined cards an hour: at a 10–15 % decline rate, 600 to 900 card payments an hour),
16 score 0.53 and 24 block, so a burst of stolen cards through one client is stopped by about its 25th
card even when every attempt comes without an IP or a caller number. A deployment busier than that
raises ``PAYGATE_FRAUD_CLIENT_DECLINED_CARDS`` with its volume. A block is ``requires_agent`` (an agent
takes the payment), not a refusal.

Storage: Redis sorted sets under ``paygate:fraud:`` whose scores are timestamps from the injected
clock (sliding windows), pruned on every write and given a TTL so idle keys expire by themselves.
Keys and members hold only IPs, digests of caller numbers (never the number), API client ids, session ids and
card fingerprints (``fp_...``), never card data.
:meth:`FraudScreen.screen` is one pipelined round trip; :meth:`FraudScreen.record_decline` is one
script call.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Protocol

from kernel.clock import Clock

__all__ = ["AttemptFacts", "CardDeclinesRule", "ClientCardTestingRule", "FraudAssessment", "FraudPolicy",
           "FraudRule", "FraudScreen", "FraudSignal", "SessionAttemptsRule", "SlidingCountRule", "default_rules"]

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

# KEYS[1] a client's declined-cards zset; ARGV: now, window start (exclusive), ttl seconds, fingerprint.
_RECORD_CLIENT_DECLINE = """
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return redis.call('ZCARD', KEYS[1])
"""


@dataclass(frozen=True)
class FraudPolicy:
    """Limits and weights of the pre-screen. Limits are counts per window; weights are scores in [0, 1].

    Defaults: ``threshold`` 0.8; 30 attempts per IP per hour; 10 sessions per card per hour; 5 declines
    per card per day; 10 attempts and 3 distinct cards per caller number (ANI) per hour; 15 distinct cards
    declined per API client in 600 seconds; weights 0.1 per extra session attempt, 0.5 per velocity rule at
    1× its limit, 0.4 for Radar ``elevated``, 1.0 for Radar ``highest``. Raises ``ValueError`` for
    out-of-range values.
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
    ani_attempts_per_hour: int = 10
    ani_cards_per_hour: int = 3
    client_declined_cards: int = 15
    client_window_seconds: int = 600
    ani_velocity_weight: float = 0.5
    ani_cards_weight: float = 0.5
    client_card_testing_weight: float = 0.5

    def __post_init__(self):
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        for name in ("ip_attempts_per_hour", "card_sessions_per_hour", "card_declines_per_day",
                     "velocity_window_seconds", "decline_window_seconds", "ani_attempts_per_hour",
                     "ani_cards_per_hour", "client_declined_cards", "client_window_seconds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")
        for name in ("session_attempt_weight", "ip_velocity_weight", "card_velocity_weight",
                     "card_declines_weight", "gateway_elevated_weight", "gateway_highest_weight",
                     "ani_velocity_weight", "ani_cards_weight", "client_card_testing_weight"):
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


def _digest(value: str) -> str:
    """A caller's number as it appears in key names: the first 128 bits of its SHA-256, so a listing of Redis keys
    does not show phone numbers (the number itself is personal data, kept on the attempt row only)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:32]


def _velocity_score(weight: float, count: int, limit: int) -> float:
    return round(min(1.0, weight * count / limit), 6)


@dataclass(frozen=True)
class AttemptFacts:
    """What the rules know of one attempt: ids, the client IP (None by voice), the card fingerprint, the
    injected clock's ``now`` in unix seconds, the caller's number ``ani`` (E.164, from
    :func:`kernel.phone.caller_number`; None on the page or when unknown) and the API ``client_id`` (None:
    the client rule does not apply)."""

    session_id: str
    attempt_number: int
    client_ip: str | None
    fingerprint: str
    now: float
    ani: str | None = None
    client_id: str | None = None


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


@dataclass(frozen=True)
class ClientCardTestingRule:
    """``client_card_testing``: distinct cards the gateway declined for the attempt's API client within
    ``window`` seconds (recorded by :meth:`FraudScreen.record_decline` with a ``client_id``), firing above
    ``limit`` and scoring ``weight × count / limit`` (capped at 1). Read only: this attempt is counted once
    it is declined."""

    limit: int
    weight: float
    window: int
    code: str = "client_card_testing"

    def queue(self, pipe, facts: AttemptFacts) -> int:
        if not facts.client_id:
            return 0
        pipe.zcount(FraudScreen.client_declines_key(facts.client_id), f"({facts.now - self.window}", "+inf")
        return 1

    def judge(self, results: list, facts: AttemptFacts) -> FraudSignal | None:
        if not results:
            return None
        cards = int(results[0])
        if cards <= self.limit:
            return None
        minutes = f"{self.window // 60} minutes" if self.window % 60 == 0 else f"{self.window} seconds"
        return FraudSignal(self.code, _velocity_score(self.weight, cards, self.limit),
                           f"{cards} distinct cards declined for this API client in the last {minutes} "
                           f"(limit {self.limit})")


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
        SlidingCountRule("ani_velocity", key=lambda f: FraudScreen.ani_attempts_key(f.ani) if f.ani else None,
                         member=lambda f: f"{f.session_id}:{f.attempt_number}", limit=p.ani_attempts_per_hour,
                         weight=p.ani_velocity_weight, window=p.velocity_window_seconds,
                         detail=lambda n, limit: f"{n} attempts from this caller number in the last hour "
                                                 f"(limit {limit})"),
        SlidingCountRule("ani_cards", key=lambda f: FraudScreen.ani_cards_key(f.ani) if f.ani else None,
                         member=lambda f: f.fingerprint, limit=p.ani_cards_per_hour,
                         weight=p.ani_cards_weight, window=p.velocity_window_seconds,
                         detail=lambda n, limit: f"{n} distinct cards from this caller number in the last hour "
                                                 f"(limit {limit})"),
        ClientCardTestingRule(p.client_declined_cards, p.client_card_testing_weight, p.client_window_seconds),
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
        self._record_client_decline = redis.register_script(_RECORD_CLIENT_DECLINE)
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

    @staticmethod
    def ani_attempts_key(ani: str) -> str:
        return f"{KEY_PREFIX}ani:{_digest(ani)}:attempts"

    @staticmethod
    def ani_cards_key(ani: str) -> str:
        return f"{KEY_PREFIX}ani:{_digest(ani)}:cards"

    @staticmethod
    def client_declines_key(client_id: str) -> str:
        return f"{KEY_PREFIX}client:{client_id}:declined_cards"

    # ------------------------------------------------------------------------------------------------
    def screen(self, *, session_id: str, attempt_number: int, client_ip: str | None,
               fingerprint: str, ani: str | None = None, client_id: str | None = None) -> FraudAssessment:
        """Records this attempt in the counters and scores it with every rule of :attr:`rules` (see the module
        docstring).

        ``attempt_number`` starts at 1 within the session; ``client_ip`` may be ``None`` (voice calls
        arrive server to server), which skips the IP rule; ``fingerprint`` is the vault's ``fp_`` value;
        ``ani`` the caller's number in E.164 (None skips the ANI rules; normalize with
        :func:`kernel.phone.caller_number` first, so every form of one number counts as one caller);
        ``client_id`` the session's API client (None skips ``client_card_testing``).
        Screening the same (session, attempt) twice does not count it twice. One Redis round trip: each rule
        queues its commands on one pipeline, then judges its own slice of the answers. Raises
        ``redis.RedisError`` when Redis cannot be asked.
        """
        return self.screen_and(None, session_id=session_id, attempt_number=attempt_number, client_ip=client_ip,
                               fingerprint=fingerprint, ani=ani, client_id=client_id)[0]

    def screen_and(self, also: Callable[[object], Callable[[list], object]] | None, *, session_id: str,
                   attempt_number: int, client_ip: str | None, fingerprint: str, ani: str | None = None,
                   client_id: str | None = None) -> tuple[FraudAssessment, object]:
        """:meth:`screen`, with another question to Redis asked in the same round trip: ``also(pipe)`` queues its
        commands on the screen's pipeline (a MULTI/EXEC transaction) after the rules' and returns the function
        that turns their answers (a list, an error as its exception object) into its result. Returns
        ``(assessment, that result)`` (None without ``also``). Raises ``redis.RedisError`` when Redis cannot be
        asked or a rule's command failed."""
        facts = AttemptFacts(session_id=session_id, attempt_number=attempt_number, client_ip=client_ip,
                             fingerprint=fingerprint, now=self.clock().timestamp(), ani=ani, client_id=client_id)
        pipe = self.redis.pipeline(transaction=True)
        counts = [rule.queue(pipe, facts) for rule in self.rules]
        queued = sum(counts)
        finish = also(pipe) if also is not None else None
        results = pipe.execute(raise_on_error=False) if len(pipe) else []
        for answer in results[:queued]:
            if isinstance(answer, Exception):
                raise answer
        reasons: list[FraudSignal] = []
        start = 0
        for rule, count in zip(self.rules, counts):
            signal = rule.judge(results[start:start + count], facts)
            start += count
            if signal is not None:
                reasons.append(signal)
        return (FraudAssessment.of(reasons, self.policy.threshold),
                finish(results[queued:]) if finish is not None else None)

    def record_decline(self, fingerprint: str, *, client_id: str | None = None) -> int:
        """Counts a gateway decline for the card ``fingerprint`` (``fp_...``); returns the declines of that
        card within the last day, this one included. With ``client_id`` the card is also counted among the
        distinct cards declined for that API client (``client_card_testing``)."""
        p = self.policy
        now = self.clock().timestamp()
        key = self.card_declines_key(fingerprint)
        count = self._record_decline(keys=[key, key + ":seq"],
                                     args=[repr(now), repr(now - p.decline_window_seconds),
                                           p.decline_window_seconds + _TTL_MARGIN_SECONDS])
        if client_id:
            self._record_client_decline(keys=[self.client_declines_key(client_id)],
                                        args=[repr(now), repr(now - p.client_window_seconds),
                                              p.client_window_seconds + _TTL_MARGIN_SECONDS, fingerprint])
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
