"""Fake Genesys Cloud Platform API: what paygate's write-back and send-link code talks to.

Three blueprints, all on the emulator's one port (the "login" and "api" hosts of a region are the same
server here):

* :data:`login_bp` — ``POST /oauth/token``, the client-credentials grant (https://developer.genesys.cloud/authorization/platform-auth/use-client-credentials): HTTP Basic
  ``client_id:client_secret`` plus form ``grant_type=client_credentials`` →
  ``{"access_token", "token_type": "bearer", "expires_in"}``; unknown client or wrong secret → 400
  ``{"error": "unauthorized_client", ...}``.
* :data:`api_bp` — ``/api/v2/*``. Every call needs ``Authorization: bearer <token>`` (scheme in any
  case): missing → 401 ``authentication.required``, unknown or expired → 401 ``bad.credentials``. Past
  ``rate_limit_per_minute`` calls per token in a sliding minute → 429 with ``Retry-After`` and the
  normalized body of https://developer.genesys.cloud/platform/api/rate-limits. Routes: conversations and participant attributes, workflow
  executions, agentless messages, secure IVR sessions (the flow itself is played by
  :mod:`.flows`), Task Management workitems (create, query, get;
  https://developer.genesys.cloud/commdigital/taskmanagement/).
* :data:`knobs_bp` — ``/api/genesys/*`` test and demo API (no auth): OAuth clients, settings, token
  expiry, failure injection, conversation setup, secure flows and the caller's DTMF, worktypes, state,
  reset. Plus the ``GET /genesys`` page.

Errors from ``/api/v2`` use the Platform API body ``{"message", "code", "status", "messageParams",
"contextId", "details", "errors"}`` with an ``ININ-Correlation-Id`` header.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, render_template, request

from . import flows
from .platform_store import MEDIA_TYPES, PARTICIPANT_PURPOSES, ApiBehaviour, NotFound, PlatformStore, SecureSessionBusy

login_bp = Blueprint("genesys_login", __name__)
api_bp = Blueprint("genesys_api", __name__, url_prefix="/api/v2")
knobs_bp = Blueprint("genesys_knobs", __name__)

API_PREFIX = "/api/v2/"
E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")          # ITU-T E.164: "+", country code, at most 15 digits
WHATSAPP_ID = re.compile(r"^\+?[1-9][0-9]{1,14}$")   # agentless messaging: digits without "+" (a "+" is tolerated)
MESSENGER_TYPES = ("sms", "whatsapp", "open")
SMS_MAX_CHARS = 765      # agentless messaging: textBody limit for SMS
OTHER_MAX_CHARS = 2000   # agentless messaging: textBody limit for the others
DEFAULT_FLOW_VERSION = "1.0"

ERROR_CODES = {400: "bad.request", 401: "bad.credentials", 403: "missing.any.permissions", 404: "not.found",
               405: "method.not.allowed", 409: "conflict", 429: "too.many.requests.retry.after",
               500: "internal.server.error", 502: "bad.gateway", 503: "service.unavailable",
               504: "gateway.timeout"}


# --- helpers -----------------------------------------------------------------------------------------------
def platform() -> PlatformStore:
    """The app's :class:`PlatformStore`."""
    return current_app.extensions["genesys_platform"]


def _now() -> float:
    return current_app.config["EMULATOR_CLOCK"]()


def iso(unix_seconds: float) -> str:
    """Unix seconds → Genesys-style UTC timestamp with milliseconds, e.g. ``2026-11-22T23:15:00.000Z``."""
    moment = datetime.fromtimestamp(unix_seconds, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def genesys_error(status: int, message: str, *, code: str | None = None, retry_after: int | None = None,
                  **params: Any) -> Response:
    """A Platform API error response: JSON ``{"message", "code", "status", "messageParams", "contextId",
    "details": [], "errors": []}``, header ``ININ-Correlation-Id`` (and ``Retry-After`` when given)."""
    context_id = platform().new_id()
    body = {"message": message, "code": code or ERROR_CODES.get(status, "error"), "status": status,
            "messageParams": {k: str(v) for k, v in params.items()}, "contextId": context_id,
            "details": [], "errors": []}
    response = jsonify(body)
    response.status_code = status
    response.headers["ININ-Correlation-Id"] = context_id
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def too_many_requests(retry_after: int) -> Response:
    """The normalized 429 (https://developer.genesys.cloud/platform/api/rate-limits)."""
    return genesys_error(429, f"Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds",
                         retry_after=retry_after)


def _bad_request(message: str, **params: Any) -> Response:
    return genesys_error(400, message, **params)


def _json_object() -> dict[str, Any] | None:
    body = request.get_json(silent=True)
    return body if isinstance(body, dict) else None


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _is_platform_path(path: str) -> bool:
    return path.startswith(API_PREFIX) or path == "/oauth/token"


# --- request pipeline for /api/v2 (record, failure injection, auth, budget) and the request log ------------
@api_bp.before_app_request
def _guard_api():
    """Runs before every request; acts on ``/api/v2/*`` only (so unknown API paths are guarded too)."""
    if not request.path.startswith(API_PREFIX):
        return None
    store = platform()
    if request.method in ("POST", "PATCH", "PUT"):
        _record_body(store)
    injected = store.take_failure()
    if injected is not None:
        if injected.status == 429:
            return too_many_requests(injected.retry_after)
        if injected.status == 401:
            return genesys_error(401, "Invalid login credentials.")
        return genesys_error(injected.status, "The emulator was told to fail this request.")
    now = _now()
    token = _bearer_token()
    client_id, problem = store.authenticate(token, now)
    if problem == "missing":
        return genesys_error(401, "No authentication bearer token specified in authorization header.",
                             code="authentication.required")
    if problem is not None:
        return genesys_error(401, "Invalid login credentials.")
    g.genesys_client_id = client_id
    retry_after = store.spend(token, now)
    if retry_after is not None:
        return too_many_requests(retry_after)
    return None


def _record_body(store: PlatformStore) -> None:
    """Hands the raw write-back body to the ``--record`` file (before any validation, so whatever was
    sent over the wire is there for the card-data scan)."""
    raw = request.get_data(cache=True)
    if not raw:
        return
    try:
        body: Any = json.loads(raw)
    except ValueError:  # not JSON (or not UTF-8): keep the text
        body = raw.decode("utf-8", "replace")
    store.record({"source": "genesys_api", "method": request.method, "path": request.path, "body": body})


@api_bp.after_app_request
def _log_request(response: Response) -> Response:
    """Logs ``{at, method, path, status, client_id}`` for the token endpoint and every ``/api/v2`` call."""
    if _is_platform_path(request.path):
        platform().log_request({"at": iso(_now()), "method": request.method, "path": request.path,
                                "status": response.status_code,
                                "client_id": g.get("genesys_client_id")})
    return response


def api_not_found_or_not_allowed(err):
    """App-level 404/405 handler: Platform-style JSON under ``/api/v2``, Werkzeug's default elsewhere."""
    if request.path.startswith(API_PREFIX):
        return genesys_error(err.code, err.description or err.name)
    return err


# --- OAuth (login host) ------------------------------------------------------------------------------------
@login_bp.post("/oauth/token")
def token():
    """Client-credentials grant (https://developer.genesys.cloud/authorization/platform-auth/use-client-credentials). 200 ``{"access_token", "token_type": "bearer",
    "expires_in"}``; 400 ``{"error": "unsupported_grant_type"}`` for another grant; 400
    ``{"error": "unauthorized_client", "description", "error_description"}`` for missing, unknown or
    wrong credentials."""
    if request.form.get("grant_type") != "client_credentials":
        return jsonify({"error": "unsupported_grant_type",
                        "description": "grant_type must be client_credentials",
                        "error_description": "grant_type must be client_credentials"}), 400
    auth = request.authorization
    issued = None
    if auth is not None and auth.type == "basic" and auth.username is not None:
        g.genesys_client_id = auth.username
        issued = platform().issue_token(auth.username, auth.password or "", _now())
    if issued is None:
        text = "client is not authorized to use the client_credential grant type"
        return jsonify({"error": "unauthorized_client", "description": text, "error_description": text}), 400
    response = jsonify(issued)
    response.headers["Cache-Control"] = "no-store"
    return response


# --- conversations and participant attributes ------------------------------------------------------------
@api_bp.get("/conversations/<conversation_id>")
def get_conversation(conversation_id: str):
    """``{id, mediaType, startTime, participants:[{id, purpose, attributes, ...}], selfUri}``; 404 when unknown."""
    try:
        conv = platform().conversation(conversation_id)
    except NotFound:
        return genesys_error(404, f"Conversation {conversation_id} not found", conversationId=conversation_id)
    return jsonify({**conv, "selfUri": f"/api/v2/conversations/{conversation_id}"})


def _patch_attributes(conversation_id: str, participant_id: str, media_type: str | None):
    body = _json_object()
    if body is None or not isinstance(body.get("attributes"), dict):
        return None, _bad_request("The request body must be an object with an 'attributes' object.")
    attributes = body["attributes"]
    for key, value in attributes.items():
        if not isinstance(value, str):
            # Genesys models participant attributes as a map of string to string (ParticipantAttributes)
            return None, _bad_request(f"Attribute '{key}' must have a string value.", attribute=key)
    try:
        merged = platform().merge_attributes(conversation_id, participant_id, attributes, media_type)
    except NotFound as err:
        missing = participant_id if err.what == "participant" else conversation_id
        return None, genesys_error(404, f"{err.what.capitalize()} {missing} not found",
                                   conversationId=conversation_id, participantId=participant_id)
    return merged, None


@api_bp.patch("/conversations/<conversation_id>/participants/<participant_id>/attributes")
def patch_attributes(conversation_id: str, participant_id: str):
    """Generic (any media) attribute update: merges string→string ``attributes``; 202 with an empty body.
    400 on a non-string value or a body without ``attributes``; 404 for an unknown conversation or
    participant."""
    _merged, error = _patch_attributes(conversation_id, participant_id, None)
    return error or Response(status=202)


@api_bp.patch("/conversations/calls/<conversation_id>/participants/<participant_id>/attributes")
def patch_call_attributes(conversation_id: str, participant_id: str):
    """Voice variant: as the generic route, on a ``call`` conversation; answers 200 ``{"attributes": {...}}``."""
    merged, error = _patch_attributes(conversation_id, participant_id, "call")
    return error or jsonify({"attributes": merged})


@api_bp.patch("/conversations/messages/<conversation_id>/participants/<participant_id>/attributes")
def patch_message_attributes(conversation_id: str, participant_id: str):
    """Messaging variant: as the generic route, on a ``message`` conversation; 200 ``{"attributes": {...}}``."""
    merged, error = _patch_attributes(conversation_id, participant_id, "message")
    return error or jsonify({"attributes": merged})


# --- workflow executions (POST /api/v2/flows/executions) --------------------------------------------------
def _flow_version(record: dict[str, Any]) -> dict[str, str]:
    version = record["flowVersion"]
    return {"id": version, "name": version, "selfUri": f"/api/v2/flows/{record['flowId']}/versions/{version}"}


def execution_view(record: dict[str, Any], now: float) -> dict[str, Any]:
    """The ``GET /api/v2/flows/executions/{id}`` shape of a stored launch: RUNNING until
    ``execution_seconds`` have passed since the launch, then COMPLETED (with ``dateCompleted``).
    ``inputData`` is echoed (an emulator addition, so tests can read what was sent)."""
    settings = platform().settings()
    done_at = record["launchedAt"] + settings.execution_seconds
    completed = now >= done_at
    view = {"id": record["id"], "name": record["name"],
            "flow": {"id": record["flowId"], "selfUri": f"/api/v2/flows/{record['flowId']}"},
            "flowVersion": _flow_version(record), "dateLaunched": iso(record["launchedAt"]),
            "status": "COMPLETED" if completed else "RUNNING", "inputData": record["inputData"],
            "outputData": {}, "selfUri": f"/api/v2/flows/executions/{record['id']}"}
    if completed:
        view.update(dateCompleted=iso(done_at), completionReason="Completed")
    return view


@api_bp.post("/flows/executions")
def launch_execution():
    """``{"flowId", "name"?, "flowVersion"?, "inputData"?: {"Flow.x": ...}}`` → 200 ``{id, name,
    flowVersion:{id, name, selfUri}, selfUri}``. 400 when ``flowId`` is missing, a field has the wrong
    type, or an ``inputData`` key lacks the ``Flow.`` prefix (workflow input variables are named with it)."""
    body = _json_object()
    if body is None:
        return _bad_request("The request body must be a JSON object.")
    flow_id = body.get("flowId")
    if not isinstance(flow_id, str) or not flow_id:
        return _bad_request("flowId is required.", field="flowId")
    name = body.get("name", f"{flow_id} execution")
    version = body.get("flowVersion", DEFAULT_FLOW_VERSION)
    input_data = body.get("inputData", {})
    if not isinstance(name, str):
        return _bad_request("name must be a string.", field="name")
    if not isinstance(version, str) or not version:
        return _bad_request("flowVersion must be a string.", field="flowVersion")
    if not isinstance(input_data, dict):
        return _bad_request("inputData must be an object.", field="inputData")
    for key in input_data:
        if not key.startswith("Flow."):
            return _bad_request(f"Input '{key}' is not a flow input variable; names start with 'Flow.'.",
                                field=key)
    record = platform().launch_execution(flow_id=flow_id, name=name, flow_version=version,
                                         input_data=input_data, now=_now())
    return jsonify({"id": record["id"], "name": record["name"], "flowVersion": _flow_version(record),
                    "selfUri": f"/api/v2/flows/executions/{record['id']}"})


@api_bp.get("/flows/executions/<execution_id>")
def get_execution(execution_id: str):
    """The execution's status and recorded ``inputData``; 404 when unknown."""
    try:
        record = platform().execution(execution_id)
    except NotFound:
        return genesys_error(404, f"Flow execution {execution_id} not found", flowExecutionId=execution_id)
    return jsonify(execution_view(record, _now()))


# --- agentless messages (POST /api/v2/conversations/messages/agentless) ------------------------------------
def _message_problem(body: dict[str, Any]) -> tuple[str, str] | None:
    """``(field, message)`` describing why an agentless request is invalid, or None."""
    for field in ("fromAddress", "toAddress", "toAddressMessengerType"):
        if not isinstance(body.get(field), str) or not body[field]:
            return field, f"{field} is required."
    kind = body["toAddressMessengerType"]
    if kind not in MESSENGER_TYPES:
        return "toAddressMessengerType", f"toAddressMessengerType must be one of {', '.join(MESSENGER_TYPES)}."
    to = body["toAddress"]
    if kind == "sms" and not E164.match(to):
        return "toAddress", "toAddress must be an E.164 number for SMS."
    if kind == "whatsapp" and not WHATSAPP_ID.match(to):
        return "toAddress", "toAddress must be a WhatsApp id (the number's digits)."
    text = body.get("textBody")
    if text is None:
        if kind == "sms" or body.get("messagingTemplate") is None:
            return "textBody", "textBody is required."
        return None
    if not isinstance(text, str) or not text:
        return "textBody", "textBody must be a non-empty string."
    limit = SMS_MAX_CHARS if kind == "sms" else OTHER_MAX_CHARS
    if len(text) > limit:
        return "textBody", f"textBody exceeds the {limit} character limit for {kind}."
    return None


@api_bp.post("/conversations/messages/agentless")
def send_agentless():
    """``{"fromAddress", "toAddress", "toAddressMessengerType": "sms"|"whatsapp"|"open", "textBody"}`` →
    200 ``{id, conversationId, fromAddress, toAddress, messengerType, textBody, timestamp, selfUri, ...}``.
    400 for a missing field, an unknown messenger type, a non-E.164 SMS number, or a text over 765
    characters (SMS) / 2000 (others). Each send is its own new messaging conversation."""
    body = _json_object()
    if body is None:
        return _bad_request("The request body must be a JSON object.")
    problem = _message_problem(body)
    if problem is not None:
        field, text = problem
        return _bad_request(text, field=field)
    store = platform()
    message_id, conversation_id = store.new_id(), store.new_id()
    message = {"id": message_id, "conversationId": conversation_id, "fromAddress": body["fromAddress"],
               "toAddress": body["toAddress"], "messengerType": body["toAddressMessengerType"],
               "textBody": body.get("textBody"),
               "useExistingActiveConversation": bool(body.get("useExistingActiveConversation", False)),
               "timestamp": iso(_now()),
               "selfUri": f"/api/v2/conversations/messages/{conversation_id}/messages/{message_id}"}
    if body.get("messagingTemplate") is not None:
        message["messagingTemplate"] = body["messagingTemplate"]
    store.add_message({**message, "client_id": g.get("genesys_client_id")})
    return jsonify(message)


@api_bp.get("/conversations/messages/<conversation_id>/messages/<message_id>")
def get_message(conversation_id: str, message_id: str):
    """One sent message with ``status: "delivery-success"`` (the emulator delivers at once); 404 when unknown."""
    try:
        message = platform().message(conversation_id, message_id)
    except NotFound:
        return genesys_error(404, f"Message {message_id} not found", messageId=message_id)
    message.pop("client_id", None)
    return jsonify({**message, "status": "delivery-success"})


# --- secure IVR sessions (POST /api/v2/conversations/{id}/participants/{pid}/secureivrsessions) -------------
def _secure_uri(record: dict[str, Any]) -> str:
    return (f"/api/v2/conversations/{record['conversationId']}/participants/{record['participantId']}"
            f"/secureivrsessions/{record['id']}")


def secure_session_view(record: dict[str, Any]) -> dict[str, Any]:
    """The SDK's ``SecureSession`` shape of a stored session: ``{id, flow:{id, name, selfUri}, userData,
    state: PENDING|COMPLETED|FAILED, sourceParticipantId, disconnect, selfUri}``."""
    flow = record["flow"]
    return {"id": record["id"], "flow": {**flow, "selfUri": f"/api/v2/flows/{flow['id']}"},
            "userData": record["userData"], "state": record["state"],
            "sourceParticipantId": record["sourceParticipantId"], "disconnect": record["disconnect"],
            "selfUri": _secure_uri(record)}


@api_bp.post("/conversations/<conversation_id>/participants/<participant_id>/secureivrsessions")
def create_secure_session(conversation_id: str, participant_id: str):
    """``CreateSecureSession`` ``{"flowId", "userData"?, "sourceParticipantId", "disconnect"?}`` → 200
    ``SecureSession`` with ``state: "PENDING"``: the participant (the caller) enters the published
    secure flow, ``userData`` becomes its ``Flow.InvocationData`` and the source participant (the agent)
    is held until the flow returns. 404 for an unknown conversation or participant; 400 for a missing
    or mistyped field, a ``flowId`` no secure flow was published under (``POST /api/genesys/secure-flows``)
    or a ``sourceParticipantId`` that is not in the conversation (the emulator requires it: the flow's
    result is handed back to that participant)."""
    body = _json_object()
    if body is None:
        return _bad_request("The request body must be a JSON object.")
    flow_id, user_data = body.get("flowId"), body.get("userData", "")
    source, disconnect = body.get("sourceParticipantId"), body.get("disconnect", False)
    for name, ok in (("flowId", isinstance(flow_id, str) and flow_id), ("userData", isinstance(user_data, str)),
                     ("sourceParticipantId", isinstance(source, str) and source),
                     ("disconnect", isinstance(disconnect, bool))):
        if not ok:
            return _bad_request(f"{name} is missing or has the wrong type.", field=name)
    store = platform()
    now = iso(_now())
    try:
        steps = flows.start_steps(store.secure_flow(flow_id), user_data, source, now)
    except NotFound:
        steps = []  # the store refuses the unknown flow below, after the conversation checks
    try:
        record = store.create_secure_session(conversation_id=conversation_id, participant_id=participant_id,
                                             flow_id=flow_id, user_data=user_data, source_participant_id=source,
                                             disconnect=disconnect, now=now, steps=steps)
    except NotFound as err:
        if err.what == "flow":
            return _bad_request(f"Secure flow {flow_id} not found.", field="flowId")
        if err.what == "sourceParticipant":
            return _bad_request(f"Participant {source} is not in conversation {conversation_id}.",
                                field="sourceParticipantId")
        missing = participant_id if err.what == "participant" else conversation_id
        return genesys_error(404, f"{err.what.capitalize()} {missing} not found",
                             conversationId=conversation_id, participantId=participant_id)
    return jsonify(secure_session_view(record))


@api_bp.get("/conversations/<conversation_id>/participants/<participant_id>/secureivrsessions")
def list_secure_sessions(conversation_id: str, participant_id: str):
    """``{"entities": [SecureSession, ...]}`` of the participant, oldest first; 404 for an unknown
    conversation."""
    try:
        platform().conversation(conversation_id)
    except NotFound:
        return genesys_error(404, f"Conversation {conversation_id} not found", conversationId=conversation_id)
    records = platform().secure_sessions(conversation_id, participant_id)
    return jsonify({"entities": [secure_session_view(r) for r in records]})


@api_bp.get("/conversations/<conversation_id>/participants/<participant_id>/secureivrsessions/<session_id>")
def get_secure_session(conversation_id: str, participant_id: str, session_id: str):
    """One ``SecureSession``; 404 when unknown or not the participant's."""
    try:
        record = platform().secure_session(session_id, conversation_id, participant_id)
    except NotFound:
        return genesys_error(404, f"Secure session {session_id} not found", secureSessionId=session_id)
    return jsonify(secure_session_view(record))


# --- Task Management workitems (https://developer.genesys.cloud/commdigital/taskmanagement/) ---------------
WORKITEM_NAME_MIN, WORKITEM_NAME_MAX = 3, 256      # WorkitemCreate.name: "Valid length between 3 and 256 characters"
WORKITEM_DESCRIPTION_MAX = 512                      # WorkitemCreate.description
WORKITEM_PRIORITY_RANGE = (-25_000_000, 25_000_000)
WORKITEM_FILTER_OPERATORS = ("EQ", "NEQ", "GT", "LT", "GTE", "LTE", "IN", "CONTAINS", "BETWEEN", "BEGINS_WITH")
WORKITEM_FILTER_TYPES = ("String", "Int")
WORKITEM_FILTER_FIELDS = ("id", "name", "description", "typeId", "externalTag", "statusId", "statusCategory",
                          "workbinId", "queueId", "assigneeId", "priority")
WORKITEM_INDEXED_FIELDS = ("typeId", "workbinId", "queueId", "assigneeId")
"""A workitem query needs one single-value ``EQ`` filter on one of these (Genesys announcement, 2026:
https://community.genesys.com/discussion/restricting-workitem-filters-to-three-for-workitem-sync-query-preview-api)."""
WORKITEM_PAGE_MAX = 200
EMULATED_OPERATORS = ("EQ", "NEQ", "IN", "CONTAINS", "BEGINS_WITH")


def _is_uuid(value: Any) -> bool:
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def workitem_view(record: dict[str, Any]) -> dict[str, Any]:
    """The SDK ``Workitem`` shape of a stored workitem (without the emulator's ``client_id``)."""
    return {k: v for k, v in record.items() if k != "client_id"}


def _workitem_problem(body: dict[str, Any]) -> Response | None:
    """The 400/404/422 answer for an invalid ``WorkitemCreate`` body, or None when it is acceptable."""
    name, type_id = body.get("name"), body.get("typeId")
    if name is None or type_id is None:
        missing = "name" if name is None else "typeId"
        return genesys_error(400, f"{missing} is required.", code="invalid.input.missing.required.field",
                             field=missing)
    if not isinstance(name, str) or len(name) < WORKITEM_NAME_MIN:
        return genesys_error(400, "name: valid length between 3 and 256 characters.",
                             code="invalid.input.string.value.too.short", field="name")
    if len(name) > WORKITEM_NAME_MAX:
        return genesys_error(400, "name: valid length between 3 and 256 characters.",
                             code="invalid.input.string.value.too.long", field="name")
    if not _is_uuid(type_id):
        return genesys_error(400, "typeId must be a valid UUID.", code="invalid.input.invalid.uuid", field="typeId")
    description = body.get("description")
    if description is not None and (not isinstance(description, str) or len(description) > WORKITEM_DESCRIPTION_MAX):
        return genesys_error(400, "description: at most 512 characters.",
                             code="invalid.input.string.value.too.long", field="description")
    tag = body.get("externalTag")
    if tag is not None and not isinstance(tag, str):
        return _bad_request("externalTag must be a string.", field="externalTag")
    priority = body.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, int)
                                 or not WORKITEM_PRIORITY_RANGE[0] <= priority <= WORKITEM_PRIORITY_RANGE[1]):
        return _bad_request("priority is out of range.", field="priority")
    store = platform()
    worktype = store.worktype(type_id)
    if worktype is None and store.has_worktype_registry():
        return genesys_error(404, "Worktype or Workbin not found", code="not.found.error", typeId=type_id)
    custom = body.get("customFields")
    if custom is not None:
        if not isinstance(custom, dict):
            return _bad_request("customFields must be an object.", field="customFields")
        if custom and worktype is not None and worktype["customFields"] is None:
            return genesys_error(422, "The worktype has no schema.", code="schema.error.worktype.no.schema")
        if worktype is not None and worktype["customFields"] is not None:
            unknown = sorted(set(custom) - set(worktype["customFields"]))
            if unknown:
                return genesys_error(422, f"Unknown custom field {unknown[0]}.", code="schema.error.invalid.instance",
                                     field=unknown[0])
    return None


@api_bp.post("/taskmanagement/workitems")
def create_workitem():
    """``WorkitemCreate`` ``{"name" (3–256 chars), "typeId" (worktype UUID), "description"? (≤ 512),
    "externalTag"?, "priority"?, "customFields"?, ...}`` → 201 ``Workitem`` ``{id, name, type:{id, name?},
    description, priority, dateCreated, dateModified, status:{id}, statusCategory: "Open", externalTag,
    customFields, autoStatusTransition, selfUri}``.

    400 ``invalid.input.missing.required.field`` (name or typeId missing), ``invalid.input.string.value.
    too.short|long`` (name outside 3–256, description over 512), ``invalid.input.invalid.uuid`` (typeId);
    404 ``not.found.error`` for a typeId no worktype was registered under (once any was, through
    ``POST /api/genesys/worktypes``); 422 ``schema.error.worktype.no.schema`` / ``schema.error.invalid.
    instance`` for custom fields the worktype does not define."""
    body = _json_object()
    if body is None:
        return _bad_request("The request body must be a JSON object.")
    problem = _workitem_problem(body)
    if problem is not None:
        return problem
    store = platform()
    worktype = store.worktype(body["typeId"])
    now = iso(_now())
    workitem_id = store.new_id()
    record = {"id": workitem_id, "name": body["name"],
              "type": {"id": body["typeId"], **({"name": worktype["name"]} if worktype else {}),
                       "selfUri": f"/api/v2/taskmanagement/worktypes/{body['typeId']}"},
              "description": body.get("description"), "priority": body.get("priority", 0),
              "dateCreated": now, "dateModified": now,
              "status": {"id": f"{body['typeId']}-open", "name": "Open"}, "statusCategory": "Open",
              "externalTag": body.get("externalTag"), "customFields": body.get("customFields") or {},
              "autoStatusTransition": bool(body.get("autoStatusTransition", True)),
              "selfUri": f"/api/v2/taskmanagement/workitems/{workitem_id}",
              "client_id": g.get("genesys_client_id")}
    store.add_workitem(record)
    return jsonify(workitem_view(record)), 201


def _filter_problem(filters: Any) -> str | None:
    if not isinstance(filters, list) or not 1 <= len(filters) <= 3:
        return "filters must be a list of 1 to 3 filters."
    for f in filters:
        if not isinstance(f, dict):
            return "each filter must be an object."
        if f.get("name") not in WORKITEM_FILTER_FIELDS:
            return f"filter name must be one of {', '.join(WORKITEM_FILTER_FIELDS)}."
        if not isinstance(f.get("type"), str) or f["type"].lower() not in {t.lower() for t in WORKITEM_FILTER_TYPES}:
            return "filter type must be String or Int."
        if f.get("operator") not in WORKITEM_FILTER_OPERATORS:
            return f"filter operator must be one of {', '.join(WORKITEM_FILTER_OPERATORS)}."
        if f["operator"] not in EMULATED_OPERATORS:
            return f"the emulator does not evaluate operator {f['operator']}."
        values = f.get("values")
        if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
            return "filter values must be a non-empty list of strings."
    if not any(f["name"] in WORKITEM_INDEXED_FIELDS and f["operator"] == "EQ" and len(f["values"]) == 1
               for f in filters):
        return f"one filter must be a single EQ on {', '.join(WORKITEM_INDEXED_FIELDS)}."
    return None


def _field_value(record: dict[str, Any], name: str) -> str | None:
    value = {"typeId": (record.get("type") or {}).get("id"), "statusId": (record.get("status") or {}).get("id"),
             "workbinId": (record.get("workbin") or {}).get("id"), "queueId": (record.get("queue") or {}).get("id"),
             "assigneeId": (record.get("assignee") or {}).get("id")}.get(name, record.get(name))
    return None if value is None else str(value)


def _matches(record: dict[str, Any], f: dict[str, Any]) -> bool:
    value, values, op = _field_value(record, f["name"]), f["values"], f["operator"]
    if op == "EQ":
        return value == values[0]
    if op == "NEQ":
        return value != values[0]
    if op == "IN":
        return value in values
    if value is None:
        return False
    if op == "CONTAINS":
        return values[0] in value
    return value.startswith(values[0])  # BEGINS_WITH


@api_bp.post("/taskmanagement/workitems/query")
def query_workitems():
    """``WorkitemQueryPostRequest`` ``{"filters": [{"name", "type": "String"|"Int", "operator", "values":
    [str]}], "pageSize"? (1–200, default 25), "after"?}`` → 200 ``{"entities": [Workitem, ...], "count",
    "after"?}``: the workitems matching every filter, oldest first. 1 to 3 filters, one of them a
    single-value ``EQ`` on ``typeId``, ``workbinId``, ``queueId`` or ``assigneeId``; the emulator evaluates
    ``EQ``, ``NEQ``, ``IN``, ``CONTAINS`` and ``BEGINS_WITH`` (400 for any other problem)."""
    body = _json_object()
    if body is None:
        return _bad_request("The request body must be a JSON object.")
    problem = _filter_problem(body.get("filters"))
    if problem is not None:
        return _bad_request(problem, field="filters")
    size = body.get("pageSize", 25)
    if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= WORKITEM_PAGE_MAX:
        return _bad_request("pageSize must be an integer from 1 to 200.", field="pageSize")
    after = body.get("after")
    start = 0
    if after is not None:
        if not isinstance(after, str) or not after.isdigit():
            return _bad_request("after is not a cursor this query returned.", field="after")
        start = int(after)
    found = [w for w in platform().workitems() if all(_matches(w, f) for f in body["filters"])]
    page = found[start:start + size]
    answer: dict[str, Any] = {"entities": [workitem_view(w) for w in page], "count": len(page)}
    if start + size < len(found):
        answer["after"] = str(start + size)
    return jsonify(answer)


@api_bp.get("/taskmanagement/workitems/<workitem_id>")
def get_workitem(workitem_id: str):
    """One ``Workitem``; 404 when unknown."""
    try:
        return jsonify(workitem_view(platform().workitem(workitem_id)))
    except NotFound:
        return genesys_error(404, f"Workitem {workitem_id} not found", workitemId=workitem_id)


# --- test and demo knobs -----------------------------------------------------------------------------------
def _knob_error(field: str):
    return jsonify({"error": "invalid_value", "field": field}), 400


def _int_field(payload: dict, key: str, minimum: int, default=None):
    value = payload.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(key)
    return value


@knobs_bp.post("/api/genesys/clients")
def add_client():
    """``{"client_id", "client_secret"}`` registers an OAuth client (or replaces its secret) → 201."""
    payload = request.get_json(silent=True) or {}
    for key in ("client_id", "client_secret"):
        if not isinstance(payload.get(key), str) or not payload[key]:
            return _knob_error(key)
    if ":" in payload["client_id"]:
        return _knob_error("client_id")
    platform().add_client(payload["client_id"], payload["client_secret"])
    return jsonify({"client_id": payload["client_id"]}), 201


@knobs_bp.get("/api/genesys/settings")
def get_settings():
    return jsonify(platform().settings().as_dict())


@knobs_bp.post("/api/genesys/settings")
def update_settings():
    """Any of ``{"token_ttl_seconds": int ≥ 1, "rate_limit_per_minute": int ≥ 1, "execution_seconds":
    number ≥ 0}``; returns all settings. A new TTL applies to tokens issued afterwards."""
    payload = request.get_json(silent=True) or {}
    changes: dict[str, Any] = {}
    try:
        for key in ("token_ttl_seconds", "rate_limit_per_minute"):
            if key in payload:
                changes[key] = _int_field(payload, key, 1)
        if "execution_seconds" in payload:
            value = payload["execution_seconds"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError("execution_seconds")
            changes["execution_seconds"] = float(value)
    except ValueError as err:
        return _knob_error(str(err))
    return jsonify(platform().update_settings(**changes).as_dict())


@knobs_bp.post("/api/genesys/tokens/expire")
def expire_tokens():
    """Expires every token issued so far (the next API call with one gets 401) → ``{"expired": n}``."""
    return jsonify({"expired": platform().expire_tokens(_now())})


@knobs_bp.post("/api/genesys/behaviour")
def set_behaviour():
    """``{"fail_next": n, "status": 400..599 (default 500), "retry_after": s (default 1)}``: the next ``n``
    ``/api/v2`` calls are answered ``status`` (429 with ``Retry-After: s``, 401 as a rejected token)
    before any other processing. Replaces the previous setting; ``{}`` clears it."""
    payload = request.get_json(silent=True) or {}
    try:
        behaviour = ApiBehaviour(fail_next=_int_field(payload, "fail_next", 0, 0),
                                 status=_int_field(payload, "status", 400, 500),
                                 retry_after=_int_field(payload, "retry_after", 0, 1))
    except ValueError as err:
        return _knob_error(str(err))
    if behaviour.status > 599:
        return _knob_error("status")
    platform().set_behaviour(behaviour)
    return jsonify(behaviour.as_dict())


@knobs_bp.post("/api/genesys/conversations")
def create_conversation():
    """Creates a conversation for a test or demo: ``{"id"?, "media_type"?: "call" (default) | "message",
    "participants"?: [{"id"?, "purpose", "name"?, "address"?, "attributes"?}]}`` (default: a customer and
    an agent) → 201 with the conversation as ``GET /api/v2/conversations/{id}`` shows it."""
    payload = request.get_json(silent=True) or {}
    conv_id = payload.get("id")
    if conv_id is not None and (not isinstance(conv_id, str) or not conv_id or "/" in conv_id):
        return _knob_error("id")
    media_type = payload.get("media_type", "call")
    if media_type not in MEDIA_TYPES:
        return _knob_error("media_type")
    participants = payload.get("participants", [{"purpose": "customer"}, {"purpose": "agent"}])
    if not isinstance(participants, list) or not participants:
        return _knob_error("participants")
    for p in participants:
        if not isinstance(p, dict) or p.get("purpose") not in PARTICIPANT_PURPOSES:
            return _knob_error("participants.purpose")
        for key in ("id", "name", "address"):
            if p.get(key) is not None and (not isinstance(p[key], str) or "/" in p[key]):
                return _knob_error(f"participants.{key}")
        attrs = p.get("attributes") or {}
        if not isinstance(attrs, dict) or not all(isinstance(v, str) for v in attrs.values()):
            return _knob_error("participants.attributes")
    conv = platform().create_conversation(conversation_id=conv_id, media_type=media_type,
                                          participants=participants, now=iso(_now()))
    return jsonify({**conv, "selfUri": f"/api/v2/conversations/{conv['id']}"}), 201


@knobs_bp.get("/api/genesys/conversations/<conversation_id>")
def peek_conversation(conversation_id: str):
    """The conversation with its participants' attributes, without a token (404 ``{"error"}`` when unknown)."""
    try:
        return jsonify(platform().conversation(conversation_id))
    except NotFound:
        return jsonify({"error": "not_found"}), 404


@knobs_bp.get("/api/genesys/messages")
def list_messages():
    """Every agentless message sent, oldest first; optional filters ``to`` (toAddress) and
    ``messenger_type``."""
    messages = platform().messages()
    if request.args.get("to") is not None:
        messages = [m for m in messages if m["toAddress"] == request.args["to"]]
    if request.args.get("messenger_type") is not None:
        messages = [m for m in messages if m["messengerType"] == request.args["messenger_type"]]
    return jsonify(messages)


@knobs_bp.get("/api/genesys/executions")
def list_executions():
    """Every workflow execution (as ``GET /api/v2/flows/executions/{id}`` shows it), oldest first;
    optional filters ``flow_id`` and ``conversation_id`` (matched against ``inputData["Flow.conversationId"]``)."""
    now = _now()
    views = [execution_view(r, now) | {"flowId": r["flowId"]} for r in platform().executions()]
    if request.args.get("flow_id") is not None:
        views = [v for v in views if v["flowId"] == request.args["flow_id"]]
    if request.args.get("conversation_id") is not None:
        views = [v for v in views if v["inputData"].get("Flow.conversationId") == request.args["conversation_id"]]
    return jsonify(views)


@knobs_bp.post("/api/genesys/secure-flows")
def publish_secure_flow():
    """Publishes a secure call flow that plays :mod:`integrations.genesys.emulator.flows` with the paygate integration's
    credential: ``{"id"?, "name"?, "credentials": {"clientId", "clientSecret", "loginUrl", "baseUrl"}}``
    → 201 ``{id, name, credentials: {clientId, loginUrl, baseUrl}}`` (the secret is never shown again).
    Publishing an existing id replaces it."""
    payload = request.get_json(silent=True) or {}
    flow_id, name = payload.get("id"), payload.get("name", flows.SECURE_FLOW_NAME)
    if flow_id is not None and (not isinstance(flow_id, str) or not flow_id or "/" in flow_id):
        return _knob_error("id")
    if not isinstance(name, str) or not name:
        return _knob_error("name")
    problem = flows.credentials_problem(payload.get("credentials"))
    if problem:
        return _knob_error(problem)
    credentials = {k: payload["credentials"][k] for k in flows.CREDENTIAL_FIELDS}
    return jsonify(platform().add_secure_flow(flow_id=flow_id, name=name, credentials=credentials)), 201


@knobs_bp.get("/api/genesys/secure-flows")
def list_secure_flows():
    """Every published secure flow (without the credential's secret)."""
    return jsonify(platform().secure_flows())


def _secure_knob_view(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "selfUri": _secure_uri(record)}


@knobs_bp.get("/api/genesys/secure-sessions")
def list_secure_sessions_knob():
    """Every secure session with its steps and the flow's non-secure variables, oldest first; optional
    filter ``conversation_id``."""
    records = platform().secure_sessions(request.args.get("conversation_id"))
    return jsonify([_secure_knob_view(r) for r in records])


@knobs_bp.get("/api/genesys/secure-sessions/<session_id>")
def peek_secure_session(session_id: str):
    """One secure session with steps and variables (404 ``{"error"}`` when unknown)."""
    try:
        return jsonify(_secure_knob_view(platform().secure_session(session_id)))
    except NotFound:
        return jsonify({"error": "not_found"}), 404


def _data_action_transport():
    injected = current_app.extensions.get("genesys_data_action_transport")
    return (lambda: injected) if injected is not None else flows.http_transport


@knobs_bp.post("/api/genesys/secure-sessions/<session_id>/keys")
def key_digits(session_id: str):
    """The caller keys DTMF into a PENDING secure session: ``{"card_number", "exp_month", "exp_year",
    "cvc", "confirm"?: "1"}`` (digit strings). The flow plays one round with them — data actions called
    on paygate, then either the result handed back (COMPLETED / FAILED) or the loop asking again
    (PENDING) — and the session is answered as ``GET /api/genesys/secure-sessions/{id}`` shows it.
    400 ``{"error": "invalid_value", "field"}`` for a value that is not digits; 404 unknown session;
    409 ``{"error": "not_pending", "state"}`` when the session is over or another round is playing.
    The digits are never stored, logged or recorded."""
    try:
        keyed = flows.Keyed.from_json(request.get_json(silent=True))
    except flows.KeyedInvalid as err:
        return _knob_error(err.field)
    try:
        record = flows.play_round(platform(), session_id, keyed, transport_factory=_data_action_transport(),
                                  clock_iso=lambda: iso(_now()))
    except NotFound:
        return jsonify({"error": "not_found"}), 404
    except SecureSessionBusy as err:
        return jsonify({"error": "not_pending", "state": err.state}), 409
    return jsonify(_secure_knob_view(record))


@knobs_bp.post("/api/genesys/worktypes")
def add_worktype():
    """Registers a Task Management worktype: ``{"id"? (a UUID; default a new one), "name",
    "custom_fields"?: [field names] | null}`` → 201 ``{id, name, customFields}``. Once any worktype exists,
    workitems can only be created for registered ones (404 otherwise); a worktype without ``custom_fields``
    has no schema, so a workitem with custom fields is refused (422)."""
    payload = request.get_json(silent=True) or {}
    worktype_id, name = payload.get("id"), payload.get("name")
    if worktype_id is not None and not _is_uuid(worktype_id):
        return _knob_error("id")
    if not isinstance(name, str) or not name:
        return _knob_error("name")
    fields = payload.get("custom_fields")
    if fields is not None and (not isinstance(fields, list) or not all(isinstance(f, str) and f for f in fields)):
        return _knob_error("custom_fields")
    store = platform()
    return jsonify(store.add_worktype(worktype_id=worktype_id or str(uuid.uuid4()), name=name,
                                      custom_fields=fields)), 201


@knobs_bp.get("/api/genesys/worktypes")
def list_worktypes():
    """Every registered worktype."""
    return jsonify(platform().worktypes())


@knobs_bp.get("/api/genesys/workitems")
def list_workitems():
    """Every workitem created (the ``Workitem`` shape plus ``client_id``), oldest first; optional filters
    ``external_tag`` and ``type_id``."""
    items = platform().workitems()
    if request.args.get("external_tag") is not None:
        items = [w for w in items if w.get("externalTag") == request.args["external_tag"]]
    if request.args.get("type_id") is not None:
        items = [w for w in items if (w.get("type") or {}).get("id") == request.args["type_id"]]
    return jsonify(items)


def _state() -> dict[str, Any]:
    snap = platform().snapshot()
    now = _now()
    by_id = {r["id"]: r for r in snap["executions"]}
    snap["executions"] = [execution_view(by_id[i], now) | {"flowId": by_id[i]["flowId"]} for i in by_id]
    return snap


@knobs_bp.get("/api/genesys/state")
def state():
    """Everything but secrets, tokens and keyed digits: ``{clients, settings, behaviour, conversations,
    executions, messages, requests:[{at, method, path, status, client_id}], secure_flows,
    secure_sessions, worktypes, workitems}``."""
    return jsonify(_state())


@knobs_bp.post("/api/genesys/reset")
def reset():
    """Forgets conversations, executions, messages, secure sessions, workitems, tokens, budgets, the request
    log and the failure knob (clients, settings, published secure flows and worktypes stay)."""
    platform().reset()
    return jsonify({"reset": True})


@knobs_bp.get("/genesys")
def page():
    """Each conversation's participants and attributes with the workflow executions, secure flow sessions
    and review workitems started for it, then other executions, every workitem (by refund), the agentless
    messages and the latest requests. Reloads every 2 s.

    A workitem belongs to a conversation when its ``externalTag`` (the refund id paygate tags it with) is
    the ``paymentRefundId`` attribute of one of its participants, or the ``Flow.refundId`` of a workflow
    execution for it."""
    snap = _state()
    conv_ids = {c["id"] for c in snap["conversations"]}
    for conv in snap["conversations"]:
        conv["executions"] = [e for e in snap["executions"]
                              if e["inputData"].get("Flow.conversationId") == conv["id"]]
        conv["secure_sessions"] = [r for r in snap["secure_sessions"] if r["conversationId"] == conv["id"]]
        refunds = {p["attributes"].get("paymentRefundId") for p in conv["participants"]}
        refunds |= {e["inputData"].get("Flow.refundId") for e in conv["executions"]}
        refunds.discard(None)
        refunds.discard("")
        conv["workitems"] = [w for w in snap["workitems"] if w.get("externalTag") in refunds]
    other = [e for e in snap["executions"] if e["inputData"].get("Flow.conversationId") not in conv_ids]
    return render_template("genesys.html", conversations=snap["conversations"], other_executions=other,
                           messages=list(reversed(snap["messages"])), requests=list(reversed(snap["requests"]))[:50],
                           clients=snap["clients"], settings=snap["settings"], behaviour=snap["behaviour"],
                           secure_flows=snap["secure_flows"], workitems=snap["workitems"],
                           worktypes=snap["worktypes"])
