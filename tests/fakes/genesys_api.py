"""A small local server speaking the Genesys Cloud Platform API wire format paygate's write-back and
send-link code uses (reference genesys.md §2a, §2b, §3, §5.1), for tests that must not depend on the
full emulator in ``genesys_emulator/``.

Endpoints (login and API on one port):

* ``POST /oauth/token`` — HTTP Basic ``client_id:client_secret`` + form ``grant_type=client_credentials``
  → ``{"access_token", "token_type": "bearer", "expires_in"}``; unknown client → 400
  ``{"error": "unauthorized_client"}``; another grant → 400 ``unsupported_grant_type``.
* ``/api/v2/*`` needs ``Authorization: bearer <token>`` (any case): missing → 401
  ``authentication.required``; unknown or expired (:meth:`FakeGenesys.expire_tokens`) → 401
  ``bad.credentials``. More than ``rate_limit_per_minute`` calls per token within the current minute →
  the normalized 429 of reference §3.2 with ``Retry-After``.
* ``PATCH /api/v2/conversations/{cid}/participants/{pid}/attributes`` — ``{"attributes": {str: str}}``,
  merged; 202 empty. A non-string value → 400.
* ``POST /api/v2/flows/executions`` — ``{"flowId", "name", "inputData"}``; every key must start with
  ``Flow.`` (else 400) → 200 ``{"id", "name", "flowVersion", "selfUri"}``.
* ``POST /api/v2/conversations/messages/agentless`` — ``fromAddress``, ``toAddress`` (E.164 for sms,
  digits for whatsapp), ``toAddressMessengerType``, ``textBody`` (≤ 765 for sms, 2000 otherwise) → 200
  ``{"id", "conversationId", ...}``.

Errors use the Platform API body ``{"message", "code", "status", "contextId", "details", "errors"}``.
Knobs: :meth:`FakeGenesys.fail_next` (status, optional ``Retry-After``), :meth:`expire_tokens`,
``rate_limit_per_minute``, ``token_ttl``. :attr:`requests` records every call (method, path, auth
scheme, JSON body); bodies of API calls are also written under ``dump_dir`` (the PCI scan reads them).
``clock`` (unix seconds) drives token expiry and the rate window; it defaults to ``time.time``.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

_E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")
_DIGITS = re.compile(r"^[1-9][0-9]{1,14}$")
_ATTRS = re.compile(r"^/api/v2/conversations/([^/]+)/participants/([^/]+)/attributes$")
_dump_counter = itertools.count()


@dataclass
class Recorded:
    method: str
    path: str
    authorization: str = field(repr=False)
    body: object
    status: int = 0


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class FakeGenesys:
    """The fake server (see the module docstring). ``clients`` maps OAuth client id → secret."""

    def __init__(self, clients: dict[str, str] | None = None, *, token_ttl: int = 86399,
                 rate_limit_per_minute: int | None = None, clock: Callable[[], float] = time.time,
                 dump_dir: Path | None = None):
        self.clients = dict(clients or {})
        self.token_ttl = token_ttl
        self.rate_limit_per_minute = rate_limit_per_minute
        self.clock = clock
        self.dump_dir = dump_dir
        if dump_dir is not None:
            dump_dir.mkdir(parents=True, exist_ok=True)
        self.requests: list[Recorded] = []
        self.attributes: dict[tuple[str, str], dict[str, str]] = {}
        self.executions: list[dict] = []
        self.messages: list[dict] = []
        self.token_requests = 0
        self._tokens: dict[str, tuple[str, float]] = {}   # token -> (client id, expires at)
        self._failures: list[tuple[int, int | None]] = []
        self._calls: dict[tuple[str, int], int] = {}
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self._wsgi, threaded=True, request_handler=_QuietHandler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()

    # -- knobs ---------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def fail_next(self, status: int, *, retry_after: int | None = None, count: int = 1) -> None:
        """The next ``count`` API calls (not token requests) answer ``status`` (with ``Retry-After``)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def expire_tokens(self) -> None:
        """Every token issued so far is expired from now on (answered 401 ``bad.credentials``)."""
        with self._lock:
            self._tokens = {t: (c, 0.0) for t, (c, _) in self._tokens.items()}

    def api_requests(self, method: str | None = None, path_prefix: str = "/api/v2/") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests
                    if r.path.startswith(path_prefix) and (method is None or r.method == method)]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # -- WSGI ----------------------------------------------------------------------------------------
    def _wsgi(self, environ, start_response):
        request = Request(environ)
        body = None
        if request.path.startswith("/api/v2/"):
            try:
                body = json.loads(request.get_data() or b"null")
            except ValueError:
                body = "<invalid json>"
        record = Recorded(request.method, request.path, request.headers.get("Authorization", ""), body)
        with self._lock:
            self.requests.append(record)
            if self.dump_dir is not None and body is not None:
                (self.dump_dir / f"{time.time_ns()}-{next(_dump_counter)}.json").write_text(json.dumps(body))
        response = self._dispatch(request, body)
        record.status = response.status_code
        return response(environ, start_response)

    def _dispatch(self, request: Request, body) -> Response:
        if request.path == "/oauth/token" and request.method == "POST":
            return self._token(request)
        if not request.path.startswith("/api/v2/"):
            return _error(404, "not.found", "No such resource.")
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _error(401, "authentication.required", "No authentication bearer token specified.")
        now = self.clock()
        with self._lock:
            found = self._tokens.get(token)
            if found is None or found[1] <= now:
                return _error(401, "bad.credentials", "Invalid login credentials.")
            if self._failures:
                status, retry_after = self._failures.pop(0)
                if status == 429:
                    return _too_many(retry_after if retry_after is not None else 1)
                return _error(status, "injected.failure", "Injected failure.", retry_after=retry_after)
            if self.rate_limit_per_minute is not None:
                window = (token, int(now // 60))
                self._calls[window] = self._calls.get(window, 0) + 1
                if self._calls[window] > self.rate_limit_per_minute:
                    return _too_many(max(1, 60 - int(now % 60)))
        match = _ATTRS.match(request.path)
        if match and request.method == "PATCH":
            return self._attributes(match.group(1), match.group(2), body)
        if request.path == "/api/v2/flows/executions" and request.method == "POST":
            return self._execution(body)
        if request.path == "/api/v2/conversations/messages/agentless" and request.method == "POST":
            return self._agentless(body)
        return _error(404, "not.found", "No such resource.")

    def _token(self, request: Request) -> Response:
        self.token_requests += 1
        header = request.headers.get("Authorization", "")
        client_id = secret = None
        if header.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                pass
        if request.form.get("grant_type") != "client_credentials":
            return _json(400, {"error": "unsupported_grant_type"})
        if client_id is None or self.clients.get(client_id) != secret:
            return _json(400, {"error": "unauthorized_client", "description": "client is not authorized"})
        token = f"gtok-{next(self._ids)}-{time.time_ns()}"
        with self._lock:
            self._tokens[token] = (client_id, self.clock() + self.token_ttl)
        return _json(200, {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl})

    def _attributes(self, cid: str, pid: str, body) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("attributes"), dict):
            return _error(400, "bad.request", "The body must hold an 'attributes' object.")
        for key, value in body["attributes"].items():
            if not isinstance(value, str):
                return _error(400, "bad.request", f"Attribute '{key}' must have a string value.")
        with self._lock:
            self.attributes.setdefault((cid, pid), {}).update(body["attributes"])
        return Response(status=202)

    def _execution(self, body) -> Response:
        if not isinstance(body, dict) or not isinstance(body.get("flowId"), str) or not body["flowId"]:
            return _error(400, "bad.request", "flowId is required.")
        inputs = body.get("inputData", {})
        if not isinstance(inputs, dict) or any(not k.startswith("Flow.") for k in inputs):
            return _error(400, "bad.request", "inputData names must start with 'Flow.'.")
        execution_id = f"exec-{next(self._ids)}"
        with self._lock:
            self.executions.append({"id": execution_id, **body})
        return _json(200, {"id": execution_id, "name": body.get("name", ""),
                           "flowVersion": {"id": "1.0", "name": "1.0"},
                           "selfUri": f"/api/v2/flows/executions/{execution_id}"})

    def _agentless(self, body) -> Response:
        if not isinstance(body, dict):
            return _error(400, "bad.request", "The body must be a JSON object.")
        for name in ("fromAddress", "toAddress", "toAddressMessengerType", "textBody"):
            if not isinstance(body.get(name), str) or not body[name]:
                return _error(400, "bad.request", f"{name} is required.")
        kind, to, text = body["toAddressMessengerType"], body["toAddress"], body["textBody"]
        if kind not in ("sms", "whatsapp", "open"):
            return _error(400, "bad.request", "Unknown messenger type.")
        if (kind == "sms" and not _E164.match(to)) or (kind == "whatsapp" and not _DIGITS.match(to)):
            return _error(400, "bad.request", "Bad toAddress.")
        if len(text) > (765 if kind == "sms" else 2000):
            return _error(400, "bad.request", "textBody is too long.")
        message = {"id": f"msg-{next(self._ids)}", "conversationId": f"conv-sms-{next(self._ids)}",
                   "fromAddress": body["fromAddress"], "toAddress": to, "messengerType": kind, "textBody": text}
        with self._lock:
            self.messages.append(message)
        return _json(200, message)


def _json(status: int, payload: dict, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json", headers=headers or {})


def _error(status: int, code: str, message: str, *, retry_after: int | None = None) -> Response:
    headers = {"ININ-Correlation-Id": "corr-fake"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return _json(status, {"message": message, "code": code, "status": status, "contextId": "corr-fake",
                          "details": [], "errors": []}, headers)


def _too_many(retry_after: int) -> Response:
    return _json(429, {"message": f"Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds",
                       "code": "too.many.requests.retry.after", "status": 429, "contextId": "corr-fake",
                       "details": [], "errors": []},
                 {"Retry-After": str(retry_after), "ININ-Correlation-Id": "corr-fake"})
