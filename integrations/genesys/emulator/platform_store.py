"""In-memory state of the fake Genesys Cloud Platform API (OAuth clients and tokens, conversations with
participant attributes, workflow executions, agentless messages, Task Management worktypes and workitems,
the request log and the test knobs).

One lock guards everything: the emulator runs on a threaded server and paygate's delivery worker may
write several attributes or launch several executions at once while a test reads the state.
Behaviour follows the Platform API documentation (https://developer.genesys.cloud/devapps/api-explorer); where this module deviates from the
real platform (e.g. a settable token lifetime below Genesys's 300 s minimum) it says so.
"""

from __future__ import annotations

import copy
import math
import secrets as _secrets
import threading
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

# Genesys defaults (https://developer.genesys.cloud/authorization/platform-auth/use-client-credentials, https://developer.genesys.cloud/platform/api/rate-limits): an OAuth client's token lives 86400 s by default and the
# login service answers 86399; client-credentials tokens get 300 requests per minute.
DEFAULT_TOKEN_TTL_SECONDS = 86399
DEFAULT_RATE_LIMIT_PER_MINUTE = 300
RATE_WINDOW_SECONDS = 60.0
REQUEST_LOG_LIMIT = 5000

PARTICIPANT_PURPOSES = ("customer", "agent", "acd", "ivr", "external", "workflow")
MEDIA_TYPES = ("call", "message")
SECURE_SESSION_STATES = ("PENDING", "COMPLETED", "FAILED")  # SDK ``SecureSession.state``


@dataclass
class Settings:
    """Tunable platform behaviour.

    ``token_ttl_seconds``: lifetime of newly issued tokens (Genesys allows 300–172800; any value ≥ 1 is
    accepted here so tests can expire tokens quickly). ``rate_limit_per_minute``: requests allowed per
    token in any sliding 60 s window before 429. ``execution_seconds``: how long a launched workflow
    stays RUNNING before it reports COMPLETED (0 = completed at once).
    """

    token_ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS
    rate_limit_per_minute: int = DEFAULT_RATE_LIMIT_PER_MINUTE
    execution_seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ApiBehaviour:
    """Failure injection for ``/api/v2``: the next ``fail_next`` calls are answered ``status`` (500, 429,
    401, …); a 429 carries ``Retry-After: retry_after``."""

    fail_next: int = 0
    status: int = 500
    retry_after: int = 1

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class NotFound(LookupError):
    """An unknown conversation, participant, execution or message; ``what`` names which."""

    def __init__(self, what: str):
        super().__init__(what)
        self.what = what


class SecureSessionBusy(Exception):
    """A secure session cannot take DTMF now: it is over (``state`` COMPLETED or FAILED) or another
    entry for it is being played (``state`` PENDING)."""

    def __init__(self, state: str):
        super().__init__(state)
        self.state = state


class PlatformStore:
    """Thread-safe state of the fake Platform API.

    ``clients``: OAuth client id → secret accepted by ``POST /oauth/token``. ``new_id``: returns a fresh
    id (Genesys ids are UUIDs) for conversations, participants, executions, messages and correlation ids.
    ``record``: called with a JSON-able dict for every write-back body that arrives (the ``--record``
    file), or None. Times are unix seconds passed in by the caller (the app's injected clock).
    """

    def __init__(self, clients: Mapping[str, str] | None = None, *, new_id: Callable[[], str],
                 record: Callable[[dict[str, Any]], None] | None = None):
        self._lock = threading.Lock()
        self._new_id = new_id
        self._record = record
        self._clients: dict[str, str] = dict(clients or {})
        self._settings = Settings()
        self._behaviour = ApiBehaviour()
        self._tokens: dict[str, dict[str, Any]] = {}
        self._windows: dict[str, deque[float]] = {}
        self._conversations: dict[str, dict[str, Any]] = {}
        self._executions: dict[str, dict[str, Any]] = {}
        self._messages: list[dict[str, Any]] = []
        self._requests: deque[dict[str, Any]] = deque(maxlen=REQUEST_LOG_LIMIT)
        self._secure_flows: dict[str, dict[str, Any]] = {}
        self._secure_sessions: dict[str, dict[str, Any]] = {}
        self._secure_running: set[str] = set()
        self._worktypes: dict[str, dict[str, Any]] = {}
        self._workitems: dict[str, dict[str, Any]] = {}

    def new_id(self) -> str:
        """A fresh id from the injected generator."""
        return self._new_id()

    # --- OAuth ----------------------------------------------------------------------------------------
    def add_client(self, client_id: str, client_secret: str) -> None:
        """Registers (or replaces the secret of) an OAuth client."""
        with self._lock:
            self._clients[client_id] = client_secret

    def client_ids(self) -> list[str]:
        with self._lock:
            return sorted(self._clients)

    def issue_token(self, client_id: str, client_secret: str, now: float) -> dict[str, Any] | None:
        """A new bearer token for a known client with the right secret, as the token response
        ``{"access_token", "token_type": "bearer", "expires_in"}``; None when the credentials are wrong."""
        with self._lock:
            expected = self._clients.get(client_id)
            if expected is None or not _secrets.compare_digest(expected.encode(), client_secret.encode()):
                return None
            token = _secrets.token_urlsafe(32)
            ttl = self._settings.token_ttl_seconds
            self._tokens[token] = {"client_id": client_id, "issued_at": now, "expires_at": now + ttl}
            return {"access_token": token, "token_type": "bearer", "expires_in": ttl}

    def expire_tokens(self, now: float) -> int:
        """Makes every token issued so far expired as of ``now``; returns how many were live."""
        with self._lock:
            live = 0
            for info in self._tokens.values():
                if info["expires_at"] > now:
                    live += 1
                    info["expires_at"] = now
            return live

    def authenticate(self, token: str | None, now: float) -> tuple[str | None, str | None]:
        """``(client_id, None)`` for a live token, else ``(None, reason)`` with reason ``missing``,
        ``unknown`` or ``expired``."""
        if not token:
            return None, "missing"
        with self._lock:
            info = self._tokens.get(token)
            if info is None:
                return None, "unknown"
            if info["expires_at"] <= now:
                return None, "expired"
            return info["client_id"], None

    def spend(self, token: str, now: float) -> int | None:
        """Counts one request against the token's per-minute budget. Returns None when allowed, or the
        whole seconds until a slot frees up (the ``Retry-After`` value, ≥ 1) when over budget; refused
        requests are not counted."""
        with self._lock:
            window = self._windows.setdefault(token, deque())
            while window and window[0] <= now - RATE_WINDOW_SECONDS:
                window.popleft()
            if len(window) >= self._settings.rate_limit_per_minute:
                return max(1, math.ceil(window[0] + RATE_WINDOW_SECONDS - now))
            window.append(now)
            return None

    # --- knobs ----------------------------------------------------------------------------------------
    def settings(self) -> Settings:
        with self._lock:
            return Settings(**self._settings.as_dict())

    def update_settings(self, **changes: Any) -> Settings:
        with self._lock:
            for key, value in changes.items():
                setattr(self._settings, key, value)
            return Settings(**self._settings.as_dict())

    def behaviour(self) -> ApiBehaviour:
        with self._lock:
            return ApiBehaviour(**self._behaviour.as_dict())

    def set_behaviour(self, behaviour: ApiBehaviour) -> None:
        with self._lock:
            self._behaviour = behaviour

    def take_failure(self) -> ApiBehaviour | None:
        """Consumes one injected failure: the behaviour to answer with, or None when none is pending."""
        with self._lock:
            b = self._behaviour
            if b.fail_next <= 0:
                return None
            b.fail_next -= 1
            return ApiBehaviour(1, b.status, b.retry_after)

    def reset(self) -> None:
        """Forgets conversations, executions, messages, workitems, tokens, budgets, the log and the failure
        knob; clients, settings, secure flows and worktypes stay."""
        with self._lock:
            self._behaviour = ApiBehaviour()
            for d in (self._tokens, self._windows, self._conversations, self._executions, self._workitems):
                d.clear()
            self._messages.clear()
            self._requests.clear()
            self._secure_sessions.clear()
            self._secure_running.clear()

    # --- write-back record ----------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> None:
        """Hands one write-back body to the record file writer, if any (outside the lock: the writer
        has its own)."""
        if self._record is not None:
            self._record(entry)

    # --- conversations --------------------------------------------------------------------------------
    def create_conversation(self, *, conversation_id: str | None, media_type: str,
                            participants: list[dict[str, Any]], now: str) -> dict[str, Any]:
        """Stores a conversation ``{id, mediaType, startTime, participants:[{id, purpose, name?,
        address?, attributes}]}`` (participants already validated) and returns a copy. Replaces an
        existing conversation with the same id."""
        conv = {"id": conversation_id or self._new_id(), "mediaType": media_type, "startTime": now,
                "participants": [{"id": p.get("id") or self._new_id(), "purpose": p["purpose"],
                                  **({"name": p["name"]} if p.get("name") else {}),
                                  **({"address": p["address"]} if p.get("address") else {}),
                                  "attributes": dict(p.get("attributes") or {})} for p in participants]}
        with self._lock:
            self._conversations[conv["id"]] = conv
            return copy.deepcopy(conv)

    def conversation(self, conversation_id: str) -> dict[str, Any]:
        """A copy of the conversation; raises :class:`NotFound` (``conversation``)."""
        with self._lock:
            conv = self._conversations.get(conversation_id)
            if conv is None:
                raise NotFound("conversation")
            return copy.deepcopy(conv)

    def merge_attributes(self, conversation_id: str, participant_id: str, attributes: Mapping[str, str],
                         media_type: str | None = None) -> dict[str, str]:
        """Merges string attributes into one participant's and returns the participant's attributes
        afterwards. ``media_type``: when given (the ``/calls/`` or ``/messages/`` route), the
        conversation must be of that media. Raises :class:`NotFound` (``conversation`` or ``participant``)."""
        with self._lock:
            conv = self._conversations.get(conversation_id)
            if conv is None or (media_type is not None and conv["mediaType"] != media_type):
                raise NotFound("conversation")
            for p in conv["participants"]:
                if p["id"] == participant_id:
                    p["attributes"].update(attributes)
                    return dict(p["attributes"])
            raise NotFound("participant")

    # --- flow executions ------------------------------------------------------------------------------
    def launch_execution(self, *, flow_id: str, name: str, flow_version: str, input_data: dict[str, Any],
                         now: float) -> dict[str, Any]:
        """Records one workflow launch and returns a copy of the record
        ``{id, flowId, name, flowVersion, inputData, launchedAt, client_id?}``."""
        record = {"id": self._new_id(), "flowId": flow_id, "name": name, "flowVersion": flow_version,
                  "inputData": copy.deepcopy(input_data), "launchedAt": now}
        with self._lock:
            self._executions[record["id"]] = record
            return copy.deepcopy(record)

    def execution(self, execution_id: str) -> dict[str, Any]:
        """A copy of the execution record; raises :class:`NotFound` (``execution``)."""
        with self._lock:
            record = self._executions.get(execution_id)
            if record is None:
                raise NotFound("execution")
            return copy.deepcopy(record)

    def executions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in self._executions.values()]

    # --- agentless messages ---------------------------------------------------------------------------
    def add_message(self, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._messages.append(copy.deepcopy(message))
            return copy.deepcopy(message)

    def messages(self) -> list[dict[str, Any]]:
        """Every agentless message sent, oldest first."""
        with self._lock:
            return [copy.deepcopy(m) for m in self._messages]

    def message(self, conversation_id: str, message_id: str) -> dict[str, Any]:
        with self._lock:
            for m in self._messages:
                if m["id"] == message_id and m["conversationId"] == conversation_id:
                    return copy.deepcopy(m)
        raise NotFound("message")

    # --- request log and snapshot ---------------------------------------------------------------------
    def log_request(self, entry: dict[str, Any]) -> None:
        """Appends ``{at, method, path, status, client_id}`` (never a body) to the bounded request log."""
        with self._lock:
            self._requests.append(dict(entry))

    def requests(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self._requests]

    def snapshot(self) -> dict[str, Any]:
        """Everything except secrets and tokens: clients (ids), settings, behaviour, conversations,
        executions, messages, the request log, secure flows (without their credential's secret), secure
        sessions, worktypes and workitems (copies)."""
        with self._lock:
            return {
                "clients": sorted(self._clients),
                "settings": self._settings.as_dict(),
                "behaviour": self._behaviour.as_dict(),
                "conversations": [copy.deepcopy(c) for c in self._conversations.values()],
                "executions": [copy.deepcopy(r) for r in self._executions.values()],
                "messages": [copy.deepcopy(m) for m in self._messages],
                "requests": [dict(r) for r in self._requests],
                "secure_flows": [_public_flow(f) for f in self._secure_flows.values()],
                "secure_sessions": [copy.deepcopy(r) for r in self._secure_sessions.values()],
                "worktypes": [copy.deepcopy(w) for w in self._worktypes.values()],
                "workitems": [copy.deepcopy(w) for w in self._workitems.values()],
            }

    # --- secure flows and secure IVR sessions (POST .../participants/{pid}/secureivrsessions) ---------
    def add_secure_flow(self, *, flow_id: str | None, name: str, credentials: Mapping[str, str]) -> dict[str, Any]:
        """Publishes (or replaces) a secure call flow that calls paygate's data actions with the given
        integration credential (``clientId``, ``clientSecret``, ``loginUrl``, ``baseUrl``). Returns the
        public view ``{id, name, credentials: {clientId, loginUrl, baseUrl}}`` (never the secret)."""
        flow = {"id": flow_id or self._new_id(), "name": name, "credentials": dict(credentials)}
        with self._lock:
            self._secure_flows[flow["id"]] = flow
            return _public_flow(flow)

    def secure_flow(self, flow_id: str) -> dict[str, Any]:
        """The flow WITH its credential (for the flow runner only); raises :class:`NotFound` (``flow``)."""
        with self._lock:
            flow = self._secure_flows.get(flow_id)
            if flow is None:
                raise NotFound("flow")
            return copy.deepcopy(flow)

    def secure_flows(self) -> list[dict[str, Any]]:
        """Public views of every published secure flow."""
        with self._lock:
            return [_public_flow(f) for f in self._secure_flows.values()]

    def create_secure_session(self, *, conversation_id: str, participant_id: str, flow_id: str, user_data: str,
                              source_participant_id: str, disconnect: bool, now: str,
                              steps: list[dict[str, Any]]) -> dict[str, Any]:
        """Stores a PENDING secure session for a participant of a conversation and returns a copy.

        Record: ``{id, conversationId, participantId, flow:{id, name}, userData, sourceParticipantId,
        disconnect, state, dateCreated, dateUpdated, attempt, variables, steps}``. Raises
        :class:`NotFound` with ``what`` ``conversation``, ``participant``, ``sourceParticipant`` (not a
        participant of this conversation) or ``flow``."""
        with self._lock:
            conv = self._conversations.get(conversation_id)
            if conv is None:
                raise NotFound("conversation")
            ids = {p["id"] for p in conv["participants"]}
            if participant_id not in ids:
                raise NotFound("participant")
            if source_participant_id not in ids:
                raise NotFound("sourceParticipant")
            flow = self._secure_flows.get(flow_id)
            if flow is None:
                raise NotFound("flow")
            record = {"id": self._new_id(), "conversationId": conversation_id, "participantId": participant_id,
                      "flow": {"id": flow["id"], "name": flow["name"]}, "userData": user_data,
                      "sourceParticipantId": source_participant_id, "disconnect": disconnect,
                      "state": "PENDING", "dateCreated": now, "dateUpdated": now, "attempt": 0,
                      "variables": {}, "steps": copy.deepcopy(steps)}
            self._secure_sessions[record["id"]] = record
            return copy.deepcopy(record)

    def secure_session(self, session_id: str, conversation_id: str | None = None,
                       participant_id: str | None = None) -> dict[str, Any]:
        """A copy of one secure session; with ``conversation_id``/``participant_id`` it must belong to
        them. Raises :class:`NotFound` (``secureSession``)."""
        with self._lock:
            record = self._secure_sessions.get(session_id)
            if record is None or (conversation_id is not None and record["conversationId"] != conversation_id) \
                    or (participant_id is not None and record["participantId"] != participant_id):
                raise NotFound("secureSession")
            return copy.deepcopy(record)

    def secure_sessions(self, conversation_id: str | None = None,
                        participant_id: str | None = None) -> list[dict[str, Any]]:
        """Copies of the secure sessions, oldest first, optionally of one conversation / participant."""
        with self._lock:
            return [copy.deepcopy(r) for r in self._secure_sessions.values()
                    if (conversation_id is None or r["conversationId"] == conversation_id)
                    and (participant_id is None or r["participantId"] == participant_id)]

    def begin_secure_entry(self, session_id: str) -> dict[str, Any]:
        """Claims a PENDING secure session for one round of caller input and returns a copy. Raises
        :class:`NotFound` (``secureSession``) or :class:`SecureSessionBusy` (over, or already claimed);
        :meth:`end_secure_entry` releases the claim."""
        with self._lock:
            record = self._secure_sessions.get(session_id)
            if record is None:
                raise NotFound("secureSession")
            if record["state"] != "PENDING" or session_id in self._secure_running:
                raise SecureSessionBusy(record["state"])
            self._secure_running.add(session_id)
            return copy.deepcopy(record)

    def end_secure_entry(self, session_id: str, *, state: str, attempt: int, variables: Mapping[str, Any],
                         steps: list[dict[str, Any]], now: str) -> dict[str, Any]:
        """Stores the result of one round (new ``state``, ``attempt`` count, the flow's non-secure
        ``variables``, ``steps`` appended), releases the claim and returns a copy. The caller passes
        only non-secure values: this store never sees keyed digits."""
        if state not in SECURE_SESSION_STATES:
            raise ValueError("state")
        with self._lock:
            self._secure_running.discard(session_id)
            record = self._secure_sessions.get(session_id)
            if record is None:  # reset while the round was played
                raise NotFound("secureSession")
            record.update(state=state, attempt=attempt, variables=dict(variables), dateUpdated=now)
            record["steps"].extend(copy.deepcopy(steps))
            return copy.deepcopy(record)


    # --- Task Management: worktypes and workitems (https://developer.genesys.cloud/commdigital/taskmanagement/)
    def add_worktype(self, *, worktype_id: str | None, name: str,
                     custom_fields: list[str] | None = None) -> dict[str, Any]:
        """Registers (or replaces) a worktype ``{id, name, customFields: [names] | None}``. Once one is
        registered, workitems may only be created with a registered ``typeId``; ``customFields`` None means
        the worktype has no schema (any custom field is refused)."""
        worktype = {"id": worktype_id or self._new_id(), "name": name,
                    "customFields": list(custom_fields) if custom_fields is not None else None}
        with self._lock:
            self._worktypes[worktype["id"]] = worktype
            return copy.deepcopy(worktype)

    def worktypes(self) -> list[dict[str, Any]]:
        """Every registered worktype, in registration order."""
        with self._lock:
            return [copy.deepcopy(w) for w in self._worktypes.values()]

    def worktype(self, worktype_id: str) -> dict[str, Any] | None:
        """The registered worktype, or None when there is none by that id (or no registry at all: see
        :meth:`has_worktype_registry`)."""
        with self._lock:
            found = self._worktypes.get(worktype_id)
            return copy.deepcopy(found) if found is not None else None

    def has_worktype_registry(self) -> bool:
        """True once a worktype was registered: unknown ``typeId`` values are then refused (404)."""
        with self._lock:
            return bool(self._worktypes)

    def add_workitem(self, record: dict[str, Any]) -> dict[str, Any]:
        """Stores one created workitem (``record`` has its ``id``; already validated) and returns a copy."""
        with self._lock:
            self._workitems[record["id"]] = copy.deepcopy(record)
            return copy.deepcopy(record)

    def workitem(self, workitem_id: str) -> dict[str, Any]:
        """A copy of the workitem; raises :class:`NotFound` (``workitem``)."""
        with self._lock:
            found = self._workitems.get(workitem_id)
            if found is None:
                raise NotFound("workitem")
            return copy.deepcopy(found)

    def workitems(self) -> list[dict[str, Any]]:
        """Every workitem, oldest first."""
        with self._lock:
            return [copy.deepcopy(w) for w in self._workitems.values()]


def _public_flow(flow: Mapping[str, Any]) -> dict[str, Any]:
    creds = flow["credentials"]
    return {"id": flow["id"], "name": flow["name"],
            "credentials": {k: creds.get(k) for k in ("clientId", "loginUrl", "baseUrl")}}
