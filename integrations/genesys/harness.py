"""Executes Genesys Web Services Data Action exports the way the Genesys data action engine does.

A test (or an engineer, through ``python -m integrations.genesys.harness``) hands :func:`execute` an export from
``integrations/genesys/data-actions/``, the action's input, the integration's credential fields and an HTTP
transport. The harness then follows the engine's documented steps (https://help.mypurecloud.com/articles/add-configuration-custom-actions-integrations/;
Genesys help "Velocity macros for data actions", "Response configuration for data actions"):

1. the input is validated against ``contract.input.inputSchema``;
2. with a "User Defined (OAuth)" credential, the custom auth action runs first and its success output
   becomes ``authResponse`` for the other templates;
3. ``requestUrlTemplate``, every header and ``requestTemplate`` are rendered as Velocity templates with
   ``input``, ``credentials``, ``authResponse`` and the tools ``$esc``, ``$encoding``,
   ``$successTemplateUtils`` (rendering by the ``airspeed`` package);
4. the HTTP call is made; a non-2xx answer, a non-JSON body or a transport error becomes a failure shaped
   like Genesys's error body, with ``details[].errorCode`` ``ACTION.REMOTE_ENDPOINT``;
5. ``translationMap`` is applied with JSONPath (``jsonpath-ng``): each value reaches the success template
   as JSON text; a path that matches nothing takes its ``translationMapDefaults`` value (a JSON literal),
   or fails the action when it has none; a path that matches ``null`` yields ``null`` and does NOT fall
   back (Genesys: "Null values do not fall back to defaults");
6. ``successTemplate`` is rendered (with the translation keys and ``rawResult``), parsed as JSON and
   validated against ``contract.output.successSchema`` (``jsonschema``); a mismatch fails the action.

Where Genesys's behaviour is not documented the harness picks the stricter reading (e.g. a definite
JSONPath with no match and no default fails). Failure messages never echo input values, so card digits
given to a ``"secure": true`` action cannot leak through a failure result.
"""

from __future__ import annotations

import base64
import http as http_status
import itertools
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol
from urllib.parse import quote_plus, urlsplit

import airspeed
import jsonschema
from jsonpath_ng.exceptions import JsonPathParserError
from jsonpath_ng.ext import parse as jsonpath_parse

from . import DATA_ACTIONS_DIR

AUTH_ACTION_FILE = "custom-auth.json"
"""File name of the custom auth action inside :data:`genesys.DATA_ACTIONS_DIR`."""

REMOTE_ENDPOINT = "ACTION.REMOTE_ENDPOINT"
AUTHENTICATION = "ACTION.AUTHENTICATION"
PROCESSING = "ACTION.PROCESSING"

_BODYLESS = {"GET", "DELETE"}
_INDEFINITE = re.compile(r"\.\.|\*|\[\?|\[[^\]]*[:,][^\]]*\]")
_correlation = itertools.count(1)


# -- transport ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class HttpResponse:
    """What a transport returns: ``status`` (int), ``headers`` (name → value), ``body`` (raw bytes)."""

    status: int
    headers: Mapping[str, str]
    body: bytes = field(repr=False)


class Transport(Protocol):
    """Anything with ``request(method, url, headers=..., content=...) -> HttpResponse``-like object
    (``status``, ``headers``, ``body`` attributes). Transports that also take ``timeout=`` (seconds) set
    ``accepts_timeout = True`` so the action's ``timeoutSeconds`` is enforced."""

    def request(self, method: str, url: str, *, headers: Mapping[str, str], content: bytes | None): ...


class FlaskTransport:
    """Adapter for a Flask/Werkzeug test client: absolute URLs are split into base URL and path."""

    accepts_timeout = False

    def __init__(self, client):
        self.client = client

    def request(self, method: str, url: str, *, headers: Mapping[str, str], content: bytes | None) -> HttpResponse:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        base_url = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "http://localhost"
        headers = dict(headers)
        content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), None)
        headers = {k: v for k, v in headers.items() if k.lower() != "content-type"}
        r = self.client.open(path, base_url=base_url, method=method, headers=headers, data=content,
                             content_type=content_type)
        return HttpResponse(r.status_code, dict(r.headers), r.get_data())


class HttpxTransport:
    """Adapter for ``httpx``: a running paygate (or any server) over real HTTP."""

    accepts_timeout = True

    def __init__(self, client=None, *, verify: bool = True):
        import httpx

        self._httpx = httpx
        self.client = client or httpx.Client(verify=verify)

    def request(self, method: str, url: str, *, headers: Mapping[str, str], content: bytes | None,
                timeout: float | None = None) -> HttpResponse:
        r = self.client.request(method, url, headers=dict(headers), content=content,
                                timeout=timeout if timeout is not None else 60.0)
        return HttpResponse(r.status_code, dict(r.headers), r.content)

    def transport_errors(self) -> tuple[type[BaseException], ...]:
        return (self._httpx.TransportError,)


# -- results --------------------------------------------------------------------------------------------
@dataclass
class RecordedRequest:
    """One HTTP request the harness made (method, URL, headers, body text). Headers and body may hold
    secrets or card digits of a secure action, so they are left out of the repr."""

    method: str
    url: str
    headers: dict = field(repr=False)
    body: str | None = field(repr=False)


@dataclass
class Result:
    """Outcome of one execution.

    ``success`` True: ``output`` is the success-template object (validated against the success schema).
    ``success`` False: ``error`` is a Genesys-style failure body ``{"status", "errorCode", "userMessage",
    "userParams", "correlationId", "details": [{"errorCode": "ACTION.…", ...}], "errors": [...]}``.
    ``auth_response`` is the custom auth action's output used (reuse it for the next call);
    ``requests`` lists every HTTP request made, the auth call first.
    """

    success: bool
    output: dict | None = None
    error: dict | None = None
    auth_response: dict | None = field(default=None, repr=False)
    requests: list[RecordedRequest] = field(default_factory=list, repr=False)

    @property
    def status(self) -> int:
        """200 on success, else the failure's HTTP status."""
        return 200 if self.success else int(self.error["status"])

    @property
    def error_code(self) -> str | None:
        """``details[0].errorCode`` of a failure (``ACTION.REMOTE_ENDPOINT`` etc.), None on success."""
        if self.success:
            return None
        details = self.error.get("details") or [{}]
        return details[0].get("errorCode")


def _failure(status: int, detail_code: str, message: str, *, field_name: str | None = None,
             requests=None, auth_response=None) -> Result:
    try:
        code = http_status.HTTPStatus(status).name
    except ValueError:
        code = "BAD_REQUEST"
    correlation = f"harness-{next(_correlation):08d}"
    detail = {"errorCode": detail_code}
    if field_name:
        detail["fieldName"] = field_name
    inner = {"status": status, "errorCode": code, "userMessage": f"{message} [{correlation}]", "userParams": [],
             "details": [], "errors": []}
    body = {"status": status, "errorCode": code, "userMessage": message, "userParams": [],
            "correlationId": correlation, "details": [detail], "errors": [inner]}
    return Result(False, error=body, requests=list(requests or []), auth_response=auth_response)


# -- Velocity tools ---------------------------------------------------------------------------------------
class _Quote(str):
    """``$esc.quote`` prints a double quote; ``$esc.quote(x)`` wraps x in double quotes."""

    def __call__(self, value):
        return None if value is None else f'"{value}"'


class EscTool:
    """The subset of Apache Velocity's EscapeTool that Genesys documents for data actions."""

    quote = _Quote('"')

    @staticmethod
    def jsonString(value):  # noqa: N802 - Velocity method name
        """Escapes ``value`` for use inside a JSON string literal (without the surrounding quotes)."""
        if value is None:
            return None
        return json.dumps(_text(value), ensure_ascii=False)[1:-1]

    jsonEncode = jsonString

    @staticmethod
    def url(value):
        """``java.net.URLEncoder.encode(value, "UTF-8")``: form encoding, space → ``+``."""
        if value is None:
            return None
        return quote_plus(_text(value), safe="*").replace("~", "%7E")

    urlFormEncode = url

    @staticmethod
    def uriEncode(value):  # noqa: N802
        """Percent-encodes for a URI path segment (space → ``%20``)."""
        return None if value is None else quote_plus(_text(value), safe="*").replace("+", "%20").replace("~", "%7E")


class EncodingTool:
    """Genesys's ``$encoding`` tool."""

    @staticmethod
    def base64(value):
        """Standard base64 of the UTF-8 text."""
        return None if value is None else base64.b64encode(_text(value).encode()).decode()


class SuccessTemplateUtils:
    """Genesys's ``$successTemplateUtils`` helpers (the ones its exports use)."""

    @staticmethod
    def firstFromArray(array_json, default=None):  # noqa: N802
        """First element of a JSON array text, as JSON text; ``default`` (else ``""``) when empty."""
        try:
            items = json.loads(array_json)
        except (TypeError, ValueError):
            items = None
        if isinstance(items, list) and items:
            return json.dumps(items[0], ensure_ascii=False)
        return default if default is not None else ""


def _text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_TOOLS = {"esc": EscTool(), "encoding": EncodingTool(), "successTemplateUtils": SuccessTemplateUtils()}


class _RenderError(Exception):
    pass


def render(template: str, context: dict) -> str:
    """Renders one Velocity template. ``${x}`` of a null ``x`` prints itself, ``$!{x}`` prints "".

    Raises ``_RenderError`` (caught by :func:`execute`) for template syntax or execution errors.
    """
    try:
        return airspeed.Template(template).merge({**_TOOLS, **context})
    except (airspeed.TemplateSyntaxError, airspeed.TemplateExecutionError) as err:
        raise _RenderError(type(err).__name__) from err


# -- loading ----------------------------------------------------------------------------------------------
def load_action(name: str, folder: Path | str = DATA_ACTIONS_DIR) -> dict:
    """Loads an export by file name (``"submit-card.custom.json"``) or by its ``name`` field."""
    folder = Path(folder)
    path = folder / name
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    for candidate in sorted(folder.glob("*.json")):
        action = json.loads(candidate.read_text(encoding="utf-8"))
        if action.get("name") == name:
            return action
    raise FileNotFoundError(f"no data action export named {name!r} in {folder}")


def load_actions(folder: Path | str = DATA_ACTIONS_DIR) -> dict[str, dict]:
    """Every export in ``folder``: file name → parsed action."""
    return {p.name: json.loads(p.read_text(encoding="utf-8")) for p in sorted(Path(folder).glob("*.json"))}


def uses_auth_response(action: dict) -> bool:
    """True when any request template of ``action`` refers to ``authResponse``."""
    request = action["config"]["request"]
    texts = [request.get("requestUrlTemplate", ""), request.get("requestTemplate", ""),
             *request.get("headers", {}).values()]
    return any("authResponse" in t for t in texts)


# -- execution --------------------------------------------------------------------------------------------
def execute(action: dict, input: dict, credentials: dict, http: Transport, *,  # noqa: A002 - Genesys's name
            auth_response: dict | None = None, auth_action: dict | None = None) -> Result:
    """Executes ``action`` with ``input`` like Genesys would and returns a :class:`Result`.

    ``credentials``: the credential fields (``clientId``, ``clientSecret``, ``loginUrl``, ``baseUrl``).
    ``http``: a transport (:class:`FlaskTransport`, :class:`HttpxTransport` or any object with the same
    ``request`` method). ``auth_response``: a previous auth output to reuse; when missing and the action
    uses ``authResponse``, ``auth_action`` (default: the shipped custom auth action) runs first and a
    failure there is an ``ACTION.AUTHENTICATION`` failure. Raises ``ValueError`` only for an export that
    is not a data action at all (no ``config.request``).
    """
    if "config" not in action or "request" not in action["config"]:
        raise ValueError("not a data action export: config.request is missing")
    requests: list[RecordedRequest] = []
    if auth_response is None and uses_auth_response(action):
        auth = execute(auth_action or load_action(AUTH_ACTION_FILE), {}, credentials, http)
        requests.extend(auth.requests)
        if not auth.success:
            remote = auth.error["userMessage"]
            return _failure(401, AUTHENTICATION, f"Authentication failed for the custom auth action. {remote}",
                            requests=requests)
        auth_response = auth.output
    result = _execute_one(action, input, credentials, http, auth_response, requests)
    result.auth_response = auth_response
    return result


def _execute_one(action, input, credentials, http, auth_response, requests) -> Result:  # noqa: A002
    contract = action.get("contract", {})
    input = dict(input or {})  # noqa: A001
    problem = _schema_problem(contract.get("input", {}).get("inputSchema"), input)
    if problem:
        return _failure(400, PROCESSING, f"The input does not match the input contract: {problem[1]}",
                        field_name=problem[0], requests=requests)

    config = action["config"]
    request = config["request"]
    timeout = config.get("timeoutSeconds")
    if timeout is not None and not (isinstance(timeout, int) and 1 <= timeout <= 60):
        return _failure(400, PROCESSING, "timeoutSeconds must be an integer from 1 to 60.", requests=requests)
    context = {"input": {**input, "rawRequest": json.dumps(input, ensure_ascii=False)},
               "credentials": dict(credentials), "authResponse": dict(auth_response or {})}
    method = request.get("requestType", "GET").upper()
    try:
        url = render(request["requestUrlTemplate"], context)
        headers = {name: render(value, context) for name, value in request.get("headers", {}).items()}
        body = None if method in _BODYLESS else render(request.get("requestTemplate", "${input.rawRequest}"),
                                                       context)
    except _RenderError as err:
        return _failure(400, PROCESSING, f"A request template could not be rendered ({err}).", requests=requests)
    requests.append(RecordedRequest(method, url, headers, body))

    kwargs = {"headers": headers, "content": body.encode() if body is not None else None}
    if getattr(http, "accepts_timeout", False):
        kwargs["timeout"] = float(timeout or 60)
    transport_errors = (OSError, *getattr(http, "transport_errors", lambda: ())())
    try:
        response = http.request(method, url, **kwargs)
    except transport_errors as err:
        status = 504 if "timeout" in type(err).__name__.lower() else 502
        return _failure(status, REMOTE_ENDPOINT, f"Request to backend service failed ({type(err).__name__}).",
                        requests=requests)

    raw = response.body.decode("utf-8", errors="replace")
    if not 200 <= response.status < 300:
        return _failure(response.status if response.status >= 400 else 502, REMOTE_ENDPOINT,
                        "REST call for action execute failed. Message: Request to backend service failed. "
                        f"Response from web service: {raw[:1000]}", requests=requests)
    try:
        data = json.loads(raw) if raw.strip() else None
    except ValueError:
        data = None
    content_type = next((v for k, v in response.headers.items() if k.lower() == "content-type"), "")
    if data is None and raw.strip() or (raw.strip() and "json" not in content_type.lower()):
        return _failure(400, REMOTE_ENDPOINT, "The response from the web service is not JSON.", requests=requests)

    response_config = config.get("response", {})
    values: dict[str, str] = {}
    defaults = response_config.get("translationMapDefaults", {})
    for key, path in response_config.get("translationMap", {}).items():
        try:
            found = _extract(path, data)
        except JsonPathParserError:
            return _failure(400, PROCESSING, f"Translation map key {key!r} has an invalid JSONPath.",
                            requests=requests)
        if found is _MISSING:
            if key not in defaults:
                return _failure(400, PROCESSING, f"The JSONPath of translation map key {key!r} ({path}) matched "
                                                 "nothing in the response and it has no default.",
                                requests=requests)
            values[key] = defaults[key]
        else:
            values[key] = json.dumps(found, ensure_ascii=False)

    try:
        rendered = render(response_config.get("successTemplate", "${rawResult}"), {**values, "rawResult": raw})
    except _RenderError as err:
        return _failure(400, PROCESSING, f"The success template could not be rendered ({err}).", requests=requests)
    try:
        output = json.loads(rendered)
    except ValueError:
        output = None
    if not isinstance(output, dict):
        return _failure(400, PROCESSING, "The success template did not produce a JSON object.", requests=requests)
    problem = _schema_problem(contract.get("output", {}).get("successSchema"), output)
    if problem:
        return _failure(400, PROCESSING, f"The resolved response does not match the success schema: {problem[1]}",
                        field_name=problem[0], requests=requests)
    return Result(True, output=output, requests=requests)


_MISSING = object()


def _extract(path: str, data: Any):
    """JSONPath the way Genesys (Jayway) returns it: a definite path gives the value, an indefinite one
    (filter, wildcard, deep scan, slice, union) gives the list of matches; no match gives ``_MISSING``."""
    matches = jsonpath_parse(path).find(data) if data is not None else []
    if _INDEFINITE.search(path):
        return [m.value for m in matches] if matches else _MISSING
    return matches[0].value if matches else _MISSING


def _schema_problem(schema: dict | None, instance: Any) -> tuple[str, str] | None:
    """First JSON Schema violation as ``(field path, message)``: the message names the keyword and the
    schema's expectation, never the offending value (it may be card digits)."""
    if not schema:
        return None
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft4Validator)
    errors = sorted(validator_cls(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    if not errors:
        return None
    err = errors[0]
    where = ".".join(str(p) for p in err.absolute_path) or "(root)"
    if err.validator == "required":
        return where, err.message  # "'name' is a required property": names the property, not a value
    if err.validator in ("type", "enum", "pattern", "minLength", "maxLength", "minimum", "maximum", "format"):
        return where, f"{where} fails {err.validator} {json.dumps(err.validator_value)}"
    return where, f"{where} fails {err.validator}"


# -- convenience ------------------------------------------------------------------------------------------
class ActionRunner:
    """Runs shipped actions by file name with one credential, reusing the auth output like the
    integration does between calls. ``runner.run("get-payment-session.custom.json", {"sessionId": ...})``."""

    def __init__(self, credentials: dict, http: Transport, folder: Path | str = DATA_ACTIONS_DIR):
        self.credentials = dict(credentials)
        self.http = http
        self.folder = Path(folder)
        self.auth_response: dict | None = None

    def run(self, name: str, input: dict) -> Result:  # noqa: A002
        """Executes the export ``name`` with ``input``; caches the auth output after a success."""
        action = load_action(name, self.folder)
        result = execute(action, input, self.credentials, self.http, auth_response=self.auth_response,
                         auth_action=load_action(AUTH_ACTION_FILE, self.folder))
        if result.auth_response is not None:
            self.auth_response = result.auth_response
        return result


def main(argv: list[str] | None = None) -> int:
    """``python -m integrations.genesys.harness ACTION --input JSON --base-url URL --client-id ID --client-secret S``:
    executes one export against a running paygate and prints the result as JSON (exit 1 on failure)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m integrations.genesys.harness", description=main.__doc__)
    parser.add_argument("action", help="export file name in integrations/genesys/data-actions or a path to one")
    parser.add_argument("--input", default="{}", help="the action input as a JSON object")
    parser.add_argument("--base-url", required=True, help="paygate base URL, e.g. https://pay.example.com")
    parser.add_argument("--login-url", help="token endpoint (default: BASE_URL/oauth/token)")
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--client-secret", required=True)
    args = parser.parse_args(argv)
    path = Path(args.action)
    action = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else load_action(args.action)
    base = args.base_url.rstrip("/")
    credentials = {"clientId": args.client_id, "clientSecret": args.client_secret,
                   "loginUrl": args.login_url or f"{base}/oauth/token", "baseUrl": base}
    result = execute(action, json.loads(args.input), credentials, HttpxTransport())
    print(json.dumps({"success": result.success, "output": result.output, "error": result.error}, indent=2))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
