"""Plays a secure call flow the way Architect runs one: the caller's DTMF goes into secure variables,
only the two ``"secure": true`` data actions see it, and the non-secure result is handed back to the
agent as participant data.

The flow played is ``paygate Secure Card Entry`` of ``docs/architect-recipes.md`` (recipe 3)
(``integrations/genesys/recipes/3-secure-card-entry.yaml``), one loop iteration per round of caller input:

1. collect the card number (12 to 19 digits, secure variable ``Task.cardNumber``);
2. Call Secure Data ``paygate - Inspect Card``; a Failure returns the caller to the agent (session FAILED);
3. decision: brand allowed and Luhn-valid, else "not valid here", next iteration;
4. Extract Secure Data: the last four digits, read back with the brand; the caller confirms with 1;
5. collect the expiry as four digits, month then year (only when inspect says ``requiresExpiry``);
6. collect the security code with exactly ``cvcLength`` digits (only when ``requiresCvc``);
7. Call Secure Data ``paygate - Submit Card`` with ``Flow.InvocationData`` (the secure session's
   ``userData``, paygate's ``ps_`` id) and ``idempotencyKey`` ``<sessionId>:card:<flow start>:<attempt>``
   (the flow start, ``Flow.StartDateTimeUtc`` in Architect, is the secure session's ``dateCreated``: a
   second secure session for the same payment must not replay the first one's answers);
   approved or terminal ends the loop, a decline or an invalid field is read out and the loop goes on;
   a Failure sets ``Task.status`` to ``unavailable`` and ends the loop (session FAILED);
8. after the loop (at most :data:`LOOP_COUNT` iterations): Set Participant Data on the source (agent)
   participant — ``paymentSessionId``, ``paymentOutcome``, ``paymentStatus``, ``paymentToken``,
   ``paymentCardLast4``, all strings — then Return to Agent (session COMPLETED).

A caller who keys the wrong number of digits gets the prompt's "try again" (a new iteration); a card
number outside 12–19 digits is the collect's Failure path, which returns to the agent at once.

Secure variables: the keyed digits live in a :class:`Keyed` for the length of one round and are passed
to the data action engine only. The steps recorded (``{"at", "kind", "name", ...}``) name what was
asked and how many digits came back, never the digits, except the last four read back to the caller.
Data action failures are recorded as HTTP status and ``details[].errorCode`` only.

The data actions run through :mod:`integrations.genesys.harness` (the shipped exports, custom auth first). Its
transport is ``app.extensions["genesys_data_action_transport"]`` when a test sets one (e.g. a
``FlaskTransport`` over paygate's test client), else real HTTP (``httpx``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from .platform_store import NotFound, PlatformStore

SECURE_FLOW_NAME = "paygate Secure Card Entry"
"""Default name of a published secure flow (the recipe's ``secureCall.name``)."""

LOOP_COUNT = 3
"""The recipe's ``loopCount``: card attempts one secure session allows before returning to the agent."""

INSPECT_ACTION = "inspect-card.custom.json"
SUBMIT_ACTION = "submit-card.custom.json"
CREDENTIAL_FIELDS = ("clientId", "clientSecret", "loginUrl", "baseUrl")
"""The User Defined (OAuth) credential fields of the paygate integration (integrations/genesys/data-actions/README.md)."""

RETURNED_ATTRIBUTES = ("paymentSessionId", "paymentOutcome", "paymentStatus", "paymentToken", "paymentCardLast4")
"""What the recipe's Set Participant Data hands back to the agent, in order."""

PROMPT_CARD = "Please key in your card number, then press hash."
PROMPT_NOT_VALID = "That card number is not valid here. Let's try again."
PROMPT_EXPIRY = "Enter the expiry date as four digits, month then year."
PROMPT_CVC = {4: "Enter the four digit security code printed on the front of the card.",
              3: "Enter the three digit security code on the back of the card."}
PROMPT_NO_MATCH = "That was not the number of digits I need. Let's try again."

_DIGITS = re.compile(r"^[0-9]{1,19}$")
_KEYED_FIELDS = ("card_number", "exp_month", "exp_year", "cvc")


class KeyedInvalid(ValueError):
    """A keys knob body that is not DTMF digits; ``field`` names the offending key (never its value)."""

    def __init__(self, field_name: str):
        super().__init__(field_name)
        self.field = field_name


@dataclass(frozen=True)
class Keyed:
    """What the caller keys in one round: digit strings as DTMF delivers them. Secure: the fields are
    left out of the repr and this object is never stored.

    ``card_number`` (the whole number), ``exp_month`` and ``exp_year`` (keyed one after the other as
    the four-digit expiry the flow asks for: ``"12"`` + ``"30"``), ``cvc``, and ``confirm`` (the
    read-back answer, ``"1"`` = right).
    """

    card_number: str = field(repr=False)
    exp_month: str = field(repr=False)
    exp_year: str = field(repr=False)
    cvc: str = field(repr=False)
    confirm: str = "1"

    @classmethod
    def from_json(cls, payload: Any) -> "Keyed":
        """Builds from ``{"card_number", "exp_month", "exp_year", "cvc", "confirm"?}``: every value a
        string of 1 to 19 digits (``confirm`` one digit). Raises :class:`KeyedInvalid`."""
        if not isinstance(payload, dict):
            raise KeyedInvalid("body")
        values = {}
        for name in _KEYED_FIELDS:
            value = payload.get(name)
            if not isinstance(value, str) or not _DIGITS.match(value):
                raise KeyedInvalid(name)
            values[name] = value
        confirm = payload.get("confirm", "1")
        if not isinstance(confirm, str) or not re.match(r"^[0-9]$", confirm):
            raise KeyedInvalid("confirm")
        return cls(confirm=confirm, **values)


def http_transport():
    """A :class:`integrations.genesys.harness.HttpxTransport` on its own ``httpx`` client, with a ``close`` method
    that closes that client (the flow runner calls it after the round). Actions' ``timeoutSeconds``
    (1–60 s) are enforced per request."""
    import httpx

    from integrations.genesys.harness import HttpxTransport

    transport = HttpxTransport(httpx.Client())
    transport.close = transport.client.close
    return transport


def credentials_problem(credentials: Any) -> str | None:
    """The first credential field that is missing or not a non-empty string (``loginUrl``/``baseUrl``
    must be absolute http(s) URLs), or None when the credential is usable."""
    if not isinstance(credentials, dict):
        return "credentials"
    for name in CREDENTIAL_FIELDS:
        value = credentials.get(name)
        if not isinstance(value, str) or not value:
            return f"credentials.{name}"
        if name in ("loginUrl", "baseUrl") and not re.match(r"^https?://[^/\s]+", value):
            return f"credentials.{name}"
    return None


def start_steps(flow: Mapping[str, Any], user_data: str, source_participant_id: str, at: str) -> list[dict]:
    """The steps of a transfer into the flow: the agent is held, ``Flow.InvocationData`` is set and the
    first prompt plays."""
    return [
        {"at": at, "kind": "transfer", "name": f"Transfer to secure flow {flow['name']}",
         "text": f"Agent participant {source_participant_id} held off the audio."},
        {"at": at, "kind": "update_data", "name": "Task.sessionId = Flow.InvocationData", "value": user_data},
        {"at": at, "kind": "prompt", "name": "Card number", "text": PROMPT_CARD},
    ]


class _Round:
    """One round of caller input through the flow: collects steps and the flow's non-secure variables."""

    def __init__(self, session: dict[str, Any], at: str):
        self.session = session
        self.at = at
        self.steps: list[dict[str, Any]] = []
        self.variables: dict[str, Any] = dict(session.get("variables") or {})
        self.attempt = int(session.get("attempt") or 0)
        self.returned = False

    def return_to_agent(self, why: str) -> None:
        """A Failure path's ``returnToAgent``: the flow ends here without setting participant data."""
        self.step("return_to_agent", why, text=f"Reconnected to participant {self.session['sourceParticipantId']}.")
        self.returned = True

    def step(self, kind: str, name: str, **details: Any) -> None:
        self.steps.append({"at": self.at, "kind": kind, "name": name, **details})

    def collect(self, name: str, variable: str, keyed: str, *, secure: bool, exactly: int | None = None,
                minimum: int = 1, maximum: int = 19) -> bool:
        """A Collect Input: records how many digits came and whether they fit; never the digits of a
        secure variable."""
        fits = len(keyed) == exactly if exactly is not None else minimum <= len(keyed) <= maximum
        detail: dict[str, Any] = {"variable": variable, "secure": secure, "digits": len(keyed),
                                  "result": "success" if fits else "no_match"}
        if not secure:
            detail["value"] = keyed
        self.step("collect_input", name, **detail)
        return fits


def play_round(store: PlatformStore, session_id: str, keyed: Keyed, *, transport_factory: Callable[[], Any],
               clock_iso: Callable[[], str]) -> dict[str, Any]:
    """Plays one round of caller input for a PENDING secure session and returns the stored session.

    ``transport_factory``: returns a :mod:`integrations.genesys.harness` transport (an object with ``request``; one
    with a ``close`` method is closed afterwards). ``clock_iso``: the current time as a Genesys
    timestamp. Raises :class:`~integrations.genesys.emulator.platform_store.NotFound` (``secureSession``) or
    :class:`~integrations.genesys.emulator.platform_store.SecureSessionBusy` (over, or another round is playing).
    The session ends COMPLETED (result handed back) or FAILED (a data action failed), or stays PENDING
    when the flow loops for another card.
    """
    session = store.begin_secure_entry(session_id)
    rnd = _Round(session, clock_iso())
    state = "PENDING"
    try:
        flow = store.secure_flow(session["flow"]["id"])
        transport = transport_factory()
        try:
            state = _play(rnd, flow["credentials"], keyed, transport)
        finally:
            close = getattr(transport, "close", None)
            if callable(close):
                close()
    except NotFound:
        rnd.step("error", "The secure flow is no longer published.")
        rnd.return_to_agent("Flow error")
        state = "FAILED"
    except Exception as err:  # noqa: BLE001 - the flow must end; only the error's type is kept (no values)
        rnd.step("error", f"The flow stopped: {type(err).__name__}.")
        rnd.return_to_agent("Flow error")
        state = "FAILED"
    if state != "PENDING":
        _hand_back(store, rnd)
    return store.end_secure_entry(session_id, state=state, attempt=rnd.attempt, variables=rnd.variables,
                                  steps=rnd.steps, now=rnd.at)


def _play(rnd: _Round, credentials: Mapping[str, str], keyed: Keyed, transport) -> str:
    """One loop iteration of the recipe; returns the session state afterwards."""
    from integrations.genesys.harness import ActionRunner  # the shipped kit's engine (a dev dependency: airspeed, ...)

    runner = ActionRunner(credentials, transport)
    rnd.attempt += 1
    if not rnd.collect("Card number", "Task.cardNumber", keyed.card_number, secure=True, minimum=12, maximum=19):
        rnd.return_to_agent("Card number Failure path")
        return "COMPLETED"

    inspected = runner.run(INSPECT_ACTION, {"cardNumber": keyed.card_number})
    if not inspected.success:
        rnd.step("call_secure_data", "paygate - Inspect Card", success=False, **_failure(inspected))
        rnd.return_to_agent("Inspect Card Failure path")
        return "FAILED"
    out = inspected.output
    rnd.step("call_secure_data", "paygate - Inspect Card", success=True,
             output={k: out[k] for k in ("brand", "allowed", "panLengths", "cvcLength", "requiresExpiry",
                                         "requiresCvc", "luhnValid")})
    rnd.variables.update(brand=out["brand"], cvcLength=out["cvcLength"])
    accepted = bool(out["allowed"] and out["luhnValid"])
    rnd.step("decision", "A card we take?", value=accepted)
    if not accepted:
        return _next_iteration(rnd, PROMPT_NOT_VALID)

    last4 = keyed.card_number[-4:]
    rnd.variables["last4"] = last4
    rnd.step("extract_secure_data", "Last four", variable="Task.last4", value=last4)
    rnd.step("prompt", "Read back", text=f"You entered a {out['brand']} card ending {last4}. "
                                         "Press 1 if that is right, 2 to enter it again.")
    rnd.collect("Confirm", "Task.confirm", keyed.confirm, secure=False, exactly=1)
    if keyed.confirm != "1":
        return _next_iteration(rnd, None)

    exp_month = exp_year = ""
    if out["requiresExpiry"]:
        rnd.step("prompt", "Expiry", text=PROMPT_EXPIRY)
        expiry = keyed.exp_month + keyed.exp_year
        if not rnd.collect("Expiry", "Task.expiry", expiry, secure=True, exactly=4):
            return _next_iteration(rnd, PROMPT_NO_MATCH)
        exp_month, exp_year = expiry[:2], expiry[2:]
    cvc = ""
    if out["requiresCvc"]:
        length = 4 if out["cvcLength"] == 4 else 3
        rnd.step("decision", "How long is the security code?", value=length)
        rnd.step("prompt", "Security code", text=PROMPT_CVC[length])
        if not rnd.collect("Security code", "Task.cvc", keyed.cvc, secure=True, exactly=length):
            return _next_iteration(rnd, PROMPT_NO_MATCH)
        cvc = keyed.cvc

    session_id = rnd.session["userData"]
    submitted = runner.run(SUBMIT_ACTION, {"sessionId": session_id, "cardNumber": keyed.card_number,
                                           "expMonth": exp_month, "expYear": exp_year, "cvc": cvc,
                                           "idempotencyKey": f"{session_id}:card:{rnd.session['dateCreated']}:{rnd.attempt}"})
    if not submitted.success:
        rnd.step("call_secure_data", "paygate - Submit Card", success=False, **_failure(submitted))
        rnd.variables["status"] = "unavailable"
        return "FAILED"
    out = submitted.output
    rnd.step("call_secure_data", "paygate - Submit Card", success=True,
             output={k: out[k] for k in ("outcome", "status", "terminal", "token", "cardBrand", "cardLast4",
                                         "declineCode", "message", "attemptsRemaining", "numberError",
                                         "expMonthError", "expYearError", "cvcError")})
    rnd.variables.update({k: out[k] for k in ("outcome", "status", "terminal", "message", "token", "cardBrand",
                                              "cardLast4")})
    if out.get("busy") or out.get("amountError"):  # the recipe's "Busy or no amount?": nothing charged, say why
        rnd.step("prompt", "Busy or no amount", text=out["message"])
        return "COMPLETED"
    if out["outcome"] == "approved":
        rnd.step("prompt", "Approved", text=f"Thank you. The payment on your card ending {out['cardLast4']} "
                                            "is approved.")
        return "COMPLETED"
    if out["terminal"]:
        return "COMPLETED"
    return _next_iteration(rnd, out["message"] or None)


def _next_iteration(rnd: _Round, say: str | None) -> str:
    """``loopNext``: says why, then asks for the card again while iterations remain, else leaves the loop."""
    if say:
        rnd.step("prompt", "Try again", text=say)
    if rnd.attempt >= LOOP_COUNT:
        rnd.step("exit_loop", "Card attempts", text=f"{LOOP_COUNT} iterations used.")
        return "COMPLETED"
    rnd.step("prompt", "Card number", text=PROMPT_CARD)
    return "PENDING"


def _failure(result) -> dict[str, Any]:
    """A data action failure as the flow can see it: HTTP status and ``details[].errorCode``."""
    return {"status": result.status, "errorCode": result.error_code}


def _hand_back(store: PlatformStore, rnd: _Round) -> None:
    """After the loop: Set Participant Data on the source participant (strings only), then Return to
    Agent (or end the call when the session asked to ``disconnect``). A Failure path that already
    returned the caller (card number, Inspect Card) sets nothing, as in the recipe."""
    if rnd.returned:
        return
    session = rnd.session
    v = rnd.variables
    values = {"paymentSessionId": session["userData"], "paymentOutcome": v.get("outcome"),
              "paymentStatus": v.get("status"), "paymentToken": v.get("token"), "paymentCardLast4": v.get("cardLast4")}
    attributes = {k: "" if values[k] is None else str(values[k]) for k in RETURNED_ATTRIBUTES}
    path = f"/api/v2/conversations/{session['conversationId']}/participants/{session['sourceParticipantId']}/attributes"
    store.record({"source": "secure_flow", "method": "setParticipantData", "path": path,
                  "body": {"attributes": attributes}})
    try:
        store.merge_attributes(session["conversationId"], session["sourceParticipantId"], attributes)
        rnd.step("set_participant_data", "Result for the agent", participantId=session["sourceParticipantId"],
                 attributes=attributes)
    except NotFound as err:
        rnd.step("error", f"Set Participant Data failed: {err.what} not found.")
    if session["disconnect"]:
        rnd.step("disconnect", "Flow end", text="disconnect was requested: the caller is not returned to the agent.")
    else:
        rnd.return_to_agent("Return to Agent")
