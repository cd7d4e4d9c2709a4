"""Processing one card submission: the single path shared by the hosted page and voice entry.

Order of work for a submission (each step can end it with a result):

1. the session must be pending (a duplicate of an earlier submission gets that one's outcome);
2. the card is validated (field errors → ``invalid``, no attempt used);
3. a Redis lock on the session is taken (a submission finding it taken waits, bounded, for the holder's attempt
   and answers its outcome — ``processing`` while unknown — or, when the holder started none, for the lock);
   the fraud pre-screen scores the attempt and the gateway circuit
   breaker (:mod:`payments.breaker`) is asked — both before anything is committed, so Redis or the database
   failing up to here answers 503 and leaves the session ``pending`` with its attempts unchanged;
4. the session row moves ``pending → processing`` with a compare-and-set on (status, attempts) — so even a
   lost lock cannot start a second charge — and the card is sealed into the vault (``tok_``) in the same
   transaction;
5. a fraud block (score ≥ threshold) or an open breaker ends the attempt ``requires_agent`` (decline code
   ``fraud_prescreen`` / ``automation_unavailable``) without a gateway call; otherwise the card is
   authorized at the gateway with the idempotency key ``<session>:<attempt>:authorize``, timed for the breaker;
6. the outcome and its events are committed together (outbox).

The CVC lives only in memory for the gateway call. A gateway timeout is never an
approval: the session stays ``processing`` until :meth:`PaymentProcessor.reconcile_due`
asks the gateway what happened.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis as redis_lib
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import sessionmaker

from callbacks import events as ev
from callbacks import outbox
from kernel.blocking import blocking
from kernel.clock import Clock, IdFactory, naive_utc
from kernel.db import insert_row
from kernel.i18n import N_
from kernel.phone import caller_number
from tokenizer.cards import BRANDS, Card, authorization_validity, validate_card
from tokenizer.declines import FAILED_MESSAGE, UNAVAILABLE_MESSAGE, customer_message
from tokenizer.gateways.base import AuthorizationRequest, Gateway, GatewayResult, GatewayStatus
from tokenizer.models import VaultCard
from tokenizer.vault import Vault

from .breaker import Admission, CircuitBreaker, failed_technically
from .context import LOCK_TTL_MS, RedisLock
from .events import payment_event
from .fraud import FraudScreen
from .models import TERMINAL_STATUSES, ApiClient, Payment, PaymentAttempt, PaymentSession
from .sessions import SessionService, emit
from .subscriptions import create_for_session
from .views import payment_view

log = logging.getLogger("paygate.payments")

DUPLICATE_WAIT_SECONDS = 25.0

AGENT_MESSAGE = N_("We could not complete this payment online. An agent will help you.")
PROCESSING_MESSAGE = UNAVAILABLE_MESSAGE
APPROVED_MESSAGE = N_("Payment approved.")
BUSY_MESSAGE = N_("A previous payment on your account is still being processed. Please wait a moment and try again.")
CUSTOMER_LEASE_MS = 15_000
CUSTOMER_LEASE_WAIT_SECONDS = 1.0
AUTOMATION_UNAVAILABLE = "automation_unavailable"
"""The ``decline_code`` of a submission the open gateway circuit breaker sent to an agent (docs/api.md,
"Gateway circuit breaker")."""


@dataclass(frozen=True)
class CardInput:
    """Raw card fields as entered (web form or DTMF). Never logged; repr hides everything."""

    number: object = field(repr=False)
    exp_month: object = field(repr=False)
    exp_year: object = field(repr=False)
    cvc: object = field(repr=False)
    cardholder_name: object = field(repr=False, default=None)


@dataclass(frozen=True)
class SubmitResult:
    """The outcome of a submission.

    ``outcome``: approved | declined | invalid | requires_agent | failed | processing | expired | canceled | busy
    (another session of the same API client and ``customer_account_id`` is processing: nothing was tried, the
    session stays pending, no attempt is used).
    ``duplicate`` is True when this call did not process a card itself but reports an earlier one.
    ``field_errors`` maps field → code for ``invalid``.
    """

    outcome: str
    session: PaymentSession
    field_errors: dict[str, str] = field(default_factory=dict)
    duplicate: bool = False
    message: str | None = None
    """Words for this outcome when they are not the session's ``message`` (``busy``)."""

    @property
    def attempts_remaining(self) -> int:
        if self.session.status in TERMINAL_STATUSES:
            return 0
        return max(0, self.session.max_attempts - self.session.attempts)


@dataclass(frozen=True)
class StartedAttempt:
    """An attempt this request won the compare-and-set for: the session and attempt ids, the attempt's
    ``number`` in the session, the gateway ``idempotency_key`` (``<session>:<number>:authorize``), the
    validated ``card`` (memory only), the customer's ``client_ip`` (None by voice) and the card's
    ``fingerprint``."""

    session_id: str
    attempt_id: str
    number: int
    idempotency_key: str
    card: Card = field(repr=False)
    client_ip: str | None
    fingerprint: str
    source: str = "checkout"
    ani: str | None = None
    client_id: str | None = None
    """``source`` (checkout | voice), the caller's number ``ani`` (E.164 or None) and the session's API
    ``client_id``, for the fraud screen and the entry mode."""
    session: PaymentSession | None = field(default=None, repr=False, compare=False)
    """The session row as the compare-and-set left it (read in the same transaction)."""
    token: str | None = None
    """The vault token stored with the attempt (``tok_``), when the card goes to the gateway."""


@dataclass(frozen=True)
class ProcessorConfig:
    """``allowed_brands`` (ids); ``require_name`` for the web form; ``reconcile_after_seconds``;
    ``stripe_moto`` (``PAYGATE_STRIPE_MOTO``): DTMF-entered payments go to Stripe as MOTO."""

    allowed_brands: tuple[str, ...]
    reconcile_after_seconds: int = 120
    stripe_moto: bool = False


class PaymentProcessor:
    """Runs submissions; see the module docstring. Dependencies are injected, none are global."""

    def __init__(self, Session: sessionmaker, redis, sessions: SessionService, vault: Vault, gateway: Gateway,
                 fraud: FraudScreen, config: ProcessorConfig, *, clock: Clock, new_id: IdFactory,
                 sleep=time.sleep, breaker: CircuitBreaker | None = None):
        self.Session = Session
        self.redis = redis
        self.sessions = sessions
        self.vault = vault
        self.gateway = gateway
        self.fraud = fraud
        self.config = config
        self.clock = clock
        self.new_id = new_id
        self.sleep = sleep
        self.locks = RedisLock(redis, sleep=sleep)
        self.breaker = breaker
        """The gateway circuit breaker (:mod:`payments.breaker`); None: always call the gateway."""

    # ------------------------------------------------------------------------------------------------
    def submit(self, session_id: str, card_input: CardInput, *, source: str, client_ip: str | None = None,
               submission_id: str | None = None, require_name: bool = False,
               client_id: str | None = None, ani: str | None = None, call_id: str | None = None,
               loaded: PaymentSession | None = None) -> SubmitResult:
        """Processes one submission for ``session_id``. ``source``: ``checkout`` or ``voice``.

        ``ani`` (voice): the caller's number as the flow gives it (E.164, ``tel:`` or ``sip:`` URI), kept in
        E.164 by :func:`kernel.phone.caller_number` on the attempt and counted by the fraud screen's ANI
        rules; one that cannot be parsed is kept as None and counted nowhere (the card is still processed).
        ``call_id`` (voice, ≤ 200 characters): the Genesys conversation/call id, kept on the attempt.

        ``submission_id`` (the page's hidden nonce) makes a re-POST of the same form a duplicate.
        Raises :class:`NotFound` for an unknown session (or another client's, when ``client_id`` is given).
        Business outcomes are returned, never raised.

        ``loaded``: the session as :meth:`SessionService.get` returned it to the caller for this request (the
        checkout page reads it to check the form), used instead of reading it again; every decision that matters
        is still taken on the row itself (the compare-and-set on status and attempts).
        """
        if loaded is not None and loaded.id == session_id and (client_id is None or loaded.client_id == client_id):
            s = loaded
        else:
            s = self.sessions.get(client_id, session_id)
        # a session read with no attempt has no attempt row (the row and the count are written together), so there
        # is no earlier submission to find; one racing in after that read loses the compare-and-set below
        if submission_id and s.attempts:
            with self.Session() as db:
                earlier = db.scalar(select(PaymentAttempt.id).where(PaymentAttempt.session_id == session_id,
                                                                    PaymentAttempt.submission_id == submission_id))
            if earlier:
                return self._report(self._wait_settled(session_id), duplicate=True)
        if s.status == "processing":
            return self._report(self._wait_settled(session_id), duplicate=True)
        if s.status != "pending":
            return self._report(s, duplicate=True)

        today = self.clock().date()
        checked = validate_card(card_input.number, card_input.exp_month, card_input.exp_year, card_input.cvc,
                                card_input.cardholder_name, today=today,
                                allowed_brands=self.config.allowed_brands, require_cvc=True,
                                require_name=require_name)
        if s.amount is None:  # an amount_range session whose amount was not set yet: no attempt is used
            return SubmitResult("invalid", s, field_errors={"amount": "amount_required", **dict(checked.errors)})
        if not checked.ok:
            return SubmitResult("invalid", s, field_errors=dict(checked.errors))
        card = checked.card

        fingerprint = self.vault.fingerprint(card.number)
        lock_key, lock_token = f"paygate:lock:session:{session_id}", self.new_id("lock")
        customer_key = _customer_key(s)  # the same for ``s`` as re-read below (one session, one customer)
        # the session's lock and, when it is taken, the customer's lease (_customer_busy) in one round trip
        locked, leased = self.locks.acquire_then(lock_key, lock_token, ttl_ms=LOCK_TTL_MS, then=customer_key,
                                                 then_ttl_ms=CUSTOMER_LEASE_MS)
        if not locked:
            first = self._await_first(s, lock_key, lock_token)
            if isinstance(first, SubmitResult):
                return first
            s = first  # the other submission started no attempt (busy, 503): this card is processed as its own
        finished = False
        calls: list[tuple[float, bool, str | None]] = []  # the gateway call, for the breaker (_run_attempt)
        try:
            if self._customer_busy(s, lock_token, leased=leased):  # one payment in flight per customer: no attempt
                log.info("card not processed: another payment of the customer is processing (busy)",
                         extra={"session_id": s.id, "source": source})
                return SubmitResult("busy", s, message=BUSY_MESSAGE)
            # Everything that needs Redis (fraud screen, breaker) runs before the compare-and-set, and the card
            # is vaulted in the same transaction: a dependency failure before the gateway call leaves the
            # session pending with its attempts unchanged (503), never processing or failed.
            number, caller = s.attempts + 1, caller_number(ani)
            # the fraud screen and the breaker's admission in one round trip
            assessment, admission = self.fraud.screen_and(
                self.breaker.queue_admit if self.breaker is not None else None, session_id=s.id,
                attempt_number=number, client_ip=client_ip, fingerprint=fingerprint, ani=caller,
                client_id=s.client_id)
            if admission is None or assessment.blocked:  # blocked: no gateway call, so no probe either
                if admission is not None:
                    self._release_probe(admission)
                admission = Admission(True, "closed")
            try:
                sealed = self.vault.seal(card) if admission.allowed and not assessment.blocked else None
                started = self._start_attempt(s, card, source=source, client_ip=client_ip,
                                              submission_id=submission_id, fingerprint=fingerprint,
                                              ani=caller, call_id=call_id, sealed=sealed)
            except BaseException:
                self._release_probe(admission)
                raise
            if started is None:  # lost the compare-and-set: someone else is processing or finished
                self._release_probe(admission)
                return self._report(self._wait_settled(session_id), duplicate=True)
            result = self._run_attempt(started, assessment, admission, calls)
            finished = True  # its outcome and events are committed: the outbox is woken with the releases
            return result
        finally:  # both leases in one round trip, with the breaker's record of the gateway call and the outbox's
            # wake; the customer's lease is a no-op unless taken
            self._release_quietly(lock_key, lock_token, also=(customer_key, lock_token), wake=finished,
                                  call=calls[0] if calls else None)

    def _release_quietly(self, key: str, token: str, *, also: tuple[str, str] | None = None,
                         wake: bool = False, call: tuple[float, bool, str | None] | None = None) -> None:
        """Gives a lease back (and ``also``, another ``(key, token)``) in one round trip, with the outbox's wake
        (:func:`callbacks.outbox.add_wake`) when ``wake`` and the breaker's record of the gateway call ``call``
        (``(seconds, failed technically, probe token)``, :meth:`CircuitBreaker.queue_record`) when given. A Redis
        failure is logged, not raised (the lease expires by itself, the worker polls the outbox anyway, and the
        submission's outcome is already decided)."""
        call = call if self.breaker is not None else None
        then = None
        if wake or call is not None:
            def then(pipe):
                record = self.breaker.queue_record(pipe, call[0], call[1], probe=call[2]) if call else None
                if wake:
                    outbox.add_wake(pipe)  # best effort: its answers are not looked at
                return (lambda answers: record(answers[:2])) if record is not None else None
        try:
            if also is None and then is None:
                self.locks.release(key, token)
            else:
                self.locks.release_all([(key, token), *([also] if also else [])], then=then)
        except redis_lib.RedisError as exc:
            log.warning("lease not released", extra={"error": type(exc).__name__})
            if call is not None:
                log.warning("gateway breaker could not record a call", extra={"error": type(exc).__name__})

    def _release_probe(self, admission: Admission) -> None:
        if self.breaker is not None and admission.probe_token:
            self.breaker.release_probe(admission.probe_token)

    def _customer_busy(self, s: PaymentSession, token: str, *, leased: bool = False) -> bool:
        """True when another session of ``s``'s API client and ``customer_account_id`` is ``processing``
        (docs/api.md, "Contact-center rules"). The check runs under a short Redis lease per (client, customer),
        taken with ``token`` and held until :meth:`submit` ends (at most :data:`CUSTOMER_LEASE_MS`), so the check
        and the ``pending → processing`` compare-and-set of two sessions of one customer submitted at the same
        instant cannot interleave while Redis keeps the lease. A lease still held after
        :data:`CUSTOMER_LEASE_WAIT_SECONDS` means another submission of the customer is under way: busy too.
        ``leased``: the lease was already taken with ``token`` (with the session's lock, :meth:`submit`)."""
        if not leased and not self.locks.acquire(_customer_key(s), token, ttl_ms=CUSTOMER_LEASE_MS,
                                                 wait_seconds=CUSTOMER_LEASE_WAIT_SECONDS):
            return True
        return self.sessions.other_processing(s.client_id, s.customer_account_id, s.id) is not None

    # ------------------------------------------------------------------------------------------------
    def _start_attempt(self, s: PaymentSession, card: Card, *, source, client_ip, submission_id,
                       fingerprint, ani=None, call_id=None, sealed=None) -> StartedAttempt | None:
        """The ``pending → processing`` compare-and-set on (status, attempts) and the attempt row, with the
        ``sealed`` card (:meth:`tokenizer.vault.Vault.seal`, when the card goes to the gateway) stored in the same
        transaction. None when another submission won."""
        now = self.clock().replace(tzinfo=None)
        number = s.attempts + 1
        idem_key = f"{s.id}:{number}:authorize"
        with self.Session.begin() as db:
            # the compare-and-set returns the row as it left it (UPDATE ... RETURNING: no second read)
            row = db.execute(_START_ATTEMPT, {"session_id": s.id, "read_attempts": s.attempts, "now": now,
                                              "number": number}).scalar_one_or_none()
            if row is None:
                return None
            # the attempt and vault rows as Core INSERTs (nothing reads them back as objects in this transaction)
            attempt_id = self.new_id("att")
            db.execute(insert(PaymentAttempt.__table__), dict(
                id=attempt_id, session_id=s.id, number=number, submission_id=submission_id, source=source,
                client_ip=client_ip, card_brand=card.brand, card_last4=card.last4,
                card_fingerprint=fingerprint, idempotency_key=idem_key, fraud_score=0.0,
                fraud_reasons=[], created_at=now, ani=ani, call_id=call_id,
                token=sealed.token if sealed is not None else None))  # for a reconciliation that settles it
            if sealed is not None:  # the card is vaulted before any gateway call
                db.execute(insert(VaultCard.__table__), dict(
                    token=sealed.token, key_id=sealed.key_id, wrapped_key=sealed.wrapped_key, nonce=sealed.nonce,
                    ciphertext=sealed.ciphertext, fingerprint=sealed.fingerprint, brand=sealed.brand,
                    last4=sealed.last4, exp_month=sealed.exp_month, exp_year=sealed.exp_year,
                    client_id=s.client_id, created_at=now))
        return StartedAttempt(session_id=s.id, attempt_id=attempt_id, number=number, idempotency_key=idem_key,
                              card=card, client_ip=client_ip, fingerprint=fingerprint, source=source, ani=ani,
                              client_id=s.client_id, session=row, token=sealed.token if sealed else None)

    def _run_attempt(self, a: StartedAttempt, assessment, admission: Admission,
                     calls: list[tuple[float, bool, str | None]]) -> SubmitResult:
        """Ends a started attempt: fraud-blocked or refused by the open breaker → ``requires_agent`` without a
        gateway call; otherwise the authorization and :meth:`_finish`. ``assessment``: the fraud screen's;
        ``admission``: the breaker's. The authorization, timed, is appended to ``calls`` as ``(seconds, failed
        technically, the half-open probe's token)``, which :meth:`submit` reports to the breaker once the
        outcome is recorded (:meth:`CircuitBreaker.queue_record`, in the round trip that releases its leases)."""
        if assessment.blocked:
            return self._finish(a, assessment, GatewayResult(GatewayStatus.BLOCKED, decline_code="fraud_prescreen"),
                                token=None)
        if not admission.allowed:
            log.warning("card not sent to the gateway: the circuit breaker is open (requires_agent)",
                        extra={"session_id": a.session_id, "source": a.source, "state": admission.state})
            return self._finish(a, assessment, GatewayResult(GatewayStatus.BLOCKED,
                                                             decline_code=AUTOMATION_UNAVAILABLE), token=None)
        s = a.session
        request = AuthorizationRequest(
            amount=s.amount, currency=s.currency, idempotency_key=a.idempotency_key, capture=s.intent != "hold",
            card=a.card,
            description=f"paygate {s.intent} {s.reference or s.id}",
            metadata={"paygate_session_id": s.id, "conversation_id": s.conversation_id,
                      "customer_account_id": s.customer_account_id, "intent": s.intent},
            moto=self.moto(a.source))
        took: list[float] = []

        def authorize() -> GatewayResult:  # timed on its own for the attempt's gateway_latency_ms
            started = time.perf_counter()
            answer = self.gateway.authorize(request)
            took.append(time.perf_counter() - started)
            return answer

        if self.breaker is not None:
            result, seconds = self.breaker.timed(authorize)
            calls.append((seconds, failed_technically(result), admission.probe_token))
        else:
            result = authorize()
        assessment = self.fraud.with_gateway_risk(assessment, result.risk_level)
        return self._finish(a, assessment, result, token=a.token, latency_ms=round(took[0] * 1000) if took else None)

    def _finish(self, a: StartedAttempt, assessment, result: GatewayResult, *, token: str | None,
                latency_ms: int | None = None) -> SubmitResult:
        """Records the attempt's outcome and moves the session (one transaction with its events); ``latency_ms``:
        the authorization call's real duration (None: no gateway call), kept as ``gateway_latency_ms``."""
        now = self.clock()
        naive = now.replace(tzinfo=None)
        card, fingerprint = a.card, a.fingerprint
        if result.status is GatewayStatus.DECLINED and fingerprint:
            try:  # after the gateway call the outcome must be recorded even while Redis is down
                self.fraud.record_decline(fingerprint, client_id=a.client_id)
            except redis_lib.RedisError as exc:
                log.warning("decline not counted by the fraud screen", extra={"error": type(exc).__name__})
        with self.Session.begin() as db:
            s, attempt, client = _finish_rows(db, a.session_id, a.attempt_id)
            if s.status != "processing" or s.attempts != a.number:
                return self._report(s, duplicate=True)  # reconciled meanwhile
            attempt.fraud_score = assessment.score if assessment else attempt.fraud_score
            attempt.fraud_reasons = assessment.to_json() if assessment else attempt.fraud_reasons
            attempt.token = token
            attempt.gateway_reference = result.reference
            attempt.risk_level = result.risk_level
            attempt.decline_code = result.decline_code
            attempt.finished_at = naive
            attempt.gateway_latency_ms = latency_ms
            if card is not None:
                s.card_brand, s.card_last4 = card.brand, card.last4
                s.card_exp_month, s.card_exp_year = card.exp_month, card.exp_year
                s.card_fingerprint = fingerprint
            if token:
                s.token = token
            s.gateway_reference = result.reference or s.gateway_reference
            s.updated_at = naive
            outcome = self._apply(db, client, s, attempt, result, now)
        # committed; submit() wakes the outbox in the round trip that releases its leases
        return SubmitResult(outcome, s)

    def _apply(self, db, client, s: PaymentSession, attempt: PaymentAttempt, result: GatewayResult,
               now: datetime) -> str:
        """Moves the session by the gateway result and writes the events; returns the outcome."""
        status = result.status
        if status is GatewayStatus.APPROVED:
            held = s.intent == "hold"
            naive = now.replace(tzinfo=None)
            payment = insert_row(db, Payment, dict(
                id=self.new_id("pay"), client_id=s.client_id, session_id=s.id, initiator="customer", intent=s.intent,
                status="authorized" if held else "captured", amount=s.amount,
                amount_capturable=s.amount if held else 0, amount_captured=0 if held else s.amount,
                amount_refunded=0, currency=s.currency, token=s.token or "", card_brand=s.card_brand,
                card_last4=s.card_last4, card_exp_month=s.card_exp_month, card_exp_year=s.card_exp_year,
                card_fingerprint=s.card_fingerprint, gateway=self.gateway.identifier,
                gateway_reference=result.reference, gateway_key=attempt.idempotency_key,
                entry_mode=entry_mode_of(attempt.source), moto=self.moto(attempt.source),
                capture_before=_capture_before(result, s.card_brand, now) if held else None,
                hold_expiring_sent=False, conversation_id=s.conversation_id, participant_id=s.participant_id,
                customer_account_id=s.customer_account_id, reference=s.reference, metadata_=dict(s.metadata_ or {}),
                message=APPROVED_MESSAGE, event_sequence=0, created_at=naive, updated_at=naive))
            db.add(payment)  # inserted already (a Core INSERT); attached so its later changes are flushed
            if s.intent == "subscription":  # created in this same transaction (docs/api.md, "Subscriptions")
                create_for_session(db, client, s, payment, now, self.new_id)
            s.payment_id, s.status, s.decline_code, s.message = payment.id, "approved", None, APPROVED_MESSAGE
            attempt.outcome = "approved"
            if s.token and (result.gateway_token or result.gateway_customer):
                db.execute(_VAULT_GATEWAY_IDS, {"vault_token": s.token, "gateway_token": result.gateway_token,
                                                "gateway_customer": result.gateway_customer})
            if held:  # a hold: nothing was taken, so no payment.approved (docs/api.md, "Holds")
                db.flush()
                payment_event(db, client=client, payment=payment, event_type=ev.HOLD_AUTHORIZED,
                              data=payment_view(payment), now=now, new_id=self.new_id)
            else:
                emit(db, client, s, ev.PAYMENT_APPROVED, now, self.new_id)
            return "approved"
        if status is GatewayStatus.DECLINED:
            attempt.outcome = "declined"
            s.decline_code, s.message = result.decline_code or "generic_decline", customer_message(result.decline_code)
            if s.attempts < s.max_attempts:
                s.status = "pending"
                emit(db, client, s, ev.PAYMENT_DECLINED, now, self.new_id, status="declined")
                return "declined"
            s.status = "requires_agent"
            emit(db, client, s, ev.PAYMENT_DECLINED, now, self.new_id, status="declined")
            s.message = AGENT_MESSAGE
            emit(db, client, s, ev.PAYMENT_SESSION_REQUIRES_AGENT, now, self.new_id)
            return "requires_agent"
        if status is GatewayStatus.BLOCKED:
            attempt.outcome = "requires_agent"
            s.status, s.decline_code, s.message = "requires_agent", result.decline_code or "fraud_suspected", AGENT_MESSAGE
            emit(db, client, s, ev.PAYMENT_SESSION_REQUIRES_AGENT, now, self.new_id)
            return "requires_agent"
        if status is GatewayStatus.FAILED:
            attempt.outcome = "failed"
            s.status, s.decline_code, s.message = "failed", result.decline_code, FAILED_MESSAGE
            emit(db, client, s, ev.PAYMENT_FAILED, now, self.new_id)
            return "failed"
        # UNAVAILABLE: outcome unknown — never approved; stays processing until reconciled
        attempt.outcome = "unknown"
        s.message = PROCESSING_MESSAGE
        return "processing"

    def moto(self, source: str) -> bool:
        """Whether a card entered by ``source`` is sent and recorded as a mail-order/telephone-order
        (MOTO) payment: DTMF entry (``voice``) with Stripe when ``stripe_moto`` is on (Stripe enables MOTO per
        account, https://docs.stripe.com/payments/payment-intents/moto), and always in the sandbox."""
        if entry_mode_of(source) != "dtmf":
            return False
        gateway = self.gateway.identifier
        return gateway == "sandbox" or (gateway == "stripe" and self.config.stripe_moto)

    # ------------------------------------------------------------------------------------------------
    def reconcile_due(self, limit: int = 50) -> int:
        """Asks the gateway about sessions left ``processing`` longer than ``reconcile_after_seconds``
        (gateway timeouts, or a process that died mid-call) and moves them on: a payment found → approved;
        none → failed (never charged); still unreachable → left for the next round. Returns how many moved."""
        now = self.clock()
        cutoff = (now - timedelta(seconds=self.config.reconcile_after_seconds)).replace(tzinfo=None)
        with self.Session() as db:
            rows = db.execute(
                select(PaymentSession.id, PaymentSession.attempts)
                .where(PaymentSession.status == "processing", PaymentSession.updated_at <= cutoff)
                .limit(limit)).all()
        moved = 0
        for session_id, number in rows:
            with self.Session() as db:
                attempt = db.scalar(select(PaymentAttempt).where(PaymentAttempt.session_id == session_id,
                                                                 PaymentAttempt.number == number))
            if attempt is None:
                continue
            found = self.gateway.lookup(attempt.idempotency_key)
            if found is not None and found.status is GatewayStatus.UNAVAILABLE:
                continue
            if found is None:
                found = GatewayResult(GatewayStatus.FAILED, decline_code="gateway_no_payment")
            result = self._finish_reconciled(session_id, attempt.id, number, found)
            moved += result
        return moved

    def _finish_reconciled(self, session_id, attempt_id, number, result: GatewayResult) -> int:
        now = self.clock()
        with self.Session.begin() as db:
            s = db.get(PaymentSession, session_id)
            attempt = db.get(PaymentAttempt, attempt_id)
            if s.status != "processing" or s.attempts != number:
                return 0
            client = db.get(ApiClient, s.client_id)
            attempt.gateway_reference = result.reference
            attempt.finished_at = now.replace(tzinfo=None)
            s.updated_at = now.replace(tzinfo=None)
            s.gateway_reference = result.reference or s.gateway_reference
            if attempt.token:
                s.token = attempt.token
            _card_from_attempt(db, s, attempt)
            self._apply(db, client, s, attempt, result, now)
        outbox.wake(self.redis)
        return 1

    # ------------------------------------------------------------------------------------------------
    def _await_first(self, s: PaymentSession, lock_key: str, lock_token: str) -> SubmitResult | PaymentSession:
        """Called when another submission of ``s`` (as read when this one began) holds the session's lock: polls
        (every 50 ms, at most :data:`DUPLICATE_WAIT_SECONDS`) until that submission's attempt is recorded or the
        lock is let go. An attempt started since ``s`` was read → its outcome (:meth:`_wait_settled`, so
        ``processing`` while the gateway's answer is unknown). The lock let go with the session still as ``s``
        was (the other submission started no attempt: ``busy``, or a dependency failure) → the session re-read
        under the lock, now held with ``lock_token``, for this card to be processed as its own. The deadline
        passed with the lock still held before any attempt → ``processing`` (never ``pending``, which is not a
        submission's outcome: docs/api.md, "Voice")."""
        deadline = time.monotonic() + DUPLICATE_WAIT_SECONDS
        while True:
            current = self.sessions.get(None, s.id)
            if current.status != "pending" or current.attempts != s.attempts:
                return self._report(self._wait_settled(s.id), duplicate=True)
            if self.locks.acquire(lock_key, lock_token, ttl_ms=LOCK_TTL_MS):
                current = self.sessions.get(None, s.id)  # read again under the lock: the holder may just have ended
                if current.status == "pending" and current.attempts == s.attempts:
                    return current
                self._release_quietly(lock_key, lock_token)
                return self._report(self._wait_settled(s.id), duplicate=True)
            if time.monotonic() >= deadline:
                return SubmitResult("processing", current, duplicate=True, message=PROCESSING_MESSAGE)
            self._poll_pause()

    def _wait_settled(self, session_id: str) -> PaymentSession:
        """Polls until the session leaves ``processing`` (or the deadline passes) and returns it (a pending session
        past ``expires_at`` read as expired, :meth:`SessionService.get`)."""
        deadline = time.monotonic() + DUPLICATE_WAIT_SECONDS
        while True:
            s = self.sessions.get(None, session_id)
            if s.status != "processing" or time.monotonic() >= deadline:
                return s
            self._poll_pause()

    def _poll_pause(self) -> None:
        """The 50 ms pause of a duplicate polling for the first submission's outcome, inside
        :func:`kernel.blocking.blocking`: in the web tier the request gives back its admission slot
        (``app/admission.py``) while it only waits. Otherwise duplicates waiting on the first submission can hold
        every slot of a process, and the first submission, back from the gateway, cannot get one to record the
        outcome they wait for (1,000 duplicates across two instances: the first waited until a reconciliation or
        the duplicates' :data:`DUPLICATE_WAIT_SECONDS` ran out; tests/functional/test_scale_out.py)."""
        with blocking():
            self.sleep(0.05)

    def _report(self, s: PaymentSession, *, duplicate: bool) -> SubmitResult:
        """The outcome an earlier submission left on ``s``: its status, except that a session back to ``pending``
        reports the decline that sent it back, and a ``pending`` one without any (no earlier attempt has ended
        on it) reports ``processing``, so the caller reads the session again: ``pending`` is a status, never a
        submission's outcome (docs/api.md, "Voice")."""
        if s.status == "pending":
            return SubmitResult("declined" if s.decline_code else "processing", s, duplicate=duplicate,
                                message=None if s.decline_code else PROCESSING_MESSAGE)
        return SubmitResult(s.status, s, duplicate=duplicate)


def entry_mode_of(source: str | None) -> str:
    """The payment view's ``entry_mode`` of a card submitted by ``source``: ``voice`` → ``dtmf`` (keyed on
    the phone), anything else (``checkout``) → ``page``. Merchant-initiated charges of a stored token are
    ``stored``."""
    return "dtmf" if source == "voice" else "page"


def _card_from_attempt(db, s: PaymentSession, attempt: PaymentAttempt) -> None:
    """Puts the card of ``attempt`` on ``s`` (brand, last four, fingerprint from the attempt; expiry from the vault
    row of its token), as :meth:`PaymentProcessor._finish` does from the card in memory: a reconciliation settles an
    attempt whose submission never came back (a process or the database went away after the gateway call), and its
    payment must describe the card like any other (docs/api.md, "Payments")."""
    s.card_brand = attempt.card_brand or s.card_brand
    s.card_last4 = attempt.card_last4 or s.card_last4
    s.card_fingerprint = attempt.card_fingerprint or s.card_fingerprint
    vaulted = db.get(VaultCard, attempt.token) if attempt.token else None
    if vaulted is not None:
        s.card_exp_month, s.card_exp_year = vaulted.exp_month, vaulted.exp_year


# The card POST's statements, built once (building them per request cost more than running them); the values are
# bound at execution.
_START_ATTEMPT = (
    update(PaymentSession)
    .where(PaymentSession.id == bindparam("session_id"), PaymentSession.status == "pending",
           PaymentSession.attempts == bindparam("read_attempts"), PaymentSession.expires_at > bindparam("now"))
    .values(status="processing", attempts=bindparam("number"), updated_at=bindparam("now"))
    .returning(PaymentSession)
    .execution_options(synchronize_session=False))  # run in a fresh session: no object in it to synchronize
"""``pending → processing`` compare-and-set on (status, attempts), the session not past ``expires_at``."""
_VAULT_GATEWAY_IDS = (update(VaultCard.__table__).where(VaultCard.__table__.c.token == bindparam("vault_token"))
                      .values(gateway_token=bindparam("gateway_token"), gateway_customer=bindparam("gateway_customer")))
"""The gateway's saved payment method and customer, kept on the approved card's vault row."""
_FINISH_ROWS = select(PaymentSession, PaymentAttempt, ApiClient).where(
    PaymentSession.id == bindparam("session_id"), PaymentAttempt.id == bindparam("attempt_id"),
    PaymentAttempt.session_id == PaymentSession.id, ApiClient.id == PaymentSession.client_id)


def _finish_rows(db, session_id: str, attempt_id: str) -> tuple[PaymentSession, PaymentAttempt, ApiClient]:
    """The session, the attempt and the session's API client, read in one SELECT (the three rows a finishing
    attempt writes or numbers its events under; all exist once the attempt has started)."""
    return db.execute(_FINISH_ROWS, {"session_id": session_id, "attempt_id": attempt_id}).one()


def _customer_key(s: PaymentSession) -> str:
    """The Redis key of the per-customer lease: the account id is hashed (keys carry no customer data)."""
    digest = hashlib.sha256(f"{s.client_id}|{s.customer_account_id}".encode()).hexdigest()[:32]
    return f"paygate:lock:customer:{digest}"


def _capture_before(result: GatewayResult, brand: str | None, now: datetime) -> datetime:
    """When a customer-initiated hold lapses (naive UTC): the gateway's own value, else the card network's
    validity (:func:`tokenizer.cards.authorization_validity`)."""
    moment = result.capture_before or (now + authorization_validity(brand, "customer"))
    return naive_utc(moment)


def brand_rules_json(allowed: tuple[str, ...]) -> list[dict]:
    """The allowed brands for the page's script: id, name, PAN lengths, CVC length."""
    return [{"id": b, "name": BRANDS[b].name, "pan_lengths": list(BRANDS[b].pan_lengths),
             "cvc_length": BRANDS[b].cvc_length} for b in allowed]
