"""Calling the Genesys Cloud Platform API as an OAuth client (client credentials).

- :class:`TokenProvider` — OAuth 2.0 client-credentials tokens from the region's login host
  (``POST /oauth/token``, HTTP Basic ``client_id:client_secret``, form ``grant_type=client_credentials``;
  https://developer.genesys.cloud/authorization/platform-auth/use-client-credentials), cached per Genesys
  client until 60 s before ``expires_in`` runs out. There is no refresh token for this grant, so
  :meth:`TokenProvider.invalidate` drops a token Genesys answered 401 to and the next call fetches a new one.
- :class:`GenesysApi` — one Platform API call with the bearer token: on 401 it invalidates the token,
  fetches a new one and repeats the call once. It never sleeps: a 429's ``Retry-After`` (header, else
  the ``[42] seconds`` of Genesys's normalized 429 body,
  https://developer.genesys.cloud/platform/api/rate-limits) is returned to the caller.

Nothing here logs a token, a secret or a response body.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Mapping
from urllib.parse import quote

import httpx

from kernel.clock import Clock, as_utc

from .settings import GenesysSettings, SecretBox

TOKEN_MARGIN_SECONDS = 60.0
DEFAULT_TIMEOUT_SECONDS = 10.0
USER_AGENT = "paygate-genesys/1"

_RETRY_IN_BODY = re.compile(r"\[(\d{1,6})\]\s*seconds")
_CODE_RE = re.compile(r"^[A-Za-z0-9._-]{1,80}$")


def parse_retry_after(header: str | None, body: bytes | None, now: datetime) -> float | None:
    """Seconds to wait from a 429: the ``Retry-After`` header (delta-seconds or HTTP-date, RFC 9110
    §10.2.3), else Genesys's normalized body ``"Retry the request in [42] seconds"``
    (https://developer.genesys.cloud/platform/api/rate-limits).
    None when neither says; never negative."""
    if header:
        value = header.strip()
        if value.isdigit():
            return float(value)
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            when = None
        if when is not None:
            return max(0.0, (as_utc(when) - now).total_seconds())
    if body:
        match = _RETRY_IN_BODY.search(body[:2000].decode("utf-8", "replace"))
        if match:
            return float(match.group(1))
    return None


# -- credentials and tokens ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Credentials:
    """Where and as whom to call Genesys: base URLs (no trailing slash), OAuth client id and secret."""

    api_url: str
    login_url: str
    client_id: str
    client_secret: str = field(repr=False)

    @classmethod
    def of(cls, settings: GenesysSettings, box: SecretBox) -> "Credentials":
        """From stored settings; the sealed secret is opened with ``box`` (errors as
        :meth:`GenesysSettings.secret`)."""
        return cls(settings.api_url, settings.login_url, settings.client_id, settings.secret(box))

    @property
    def cache_key(self) -> tuple[str, str, str]:
        # the secret takes part through a digest, so a changed secret gets a new token
        return self.login_url, self.client_id, hashlib.sha256(self.client_secret.encode()).hexdigest()


class TokenError(Exception):
    """The login host did not give a token. ``reason`` is a short code (``genesys_oauth_rejected``,
    ``genesys_oauth_unavailable``, ``genesys_oauth_timeout``, ...), ``status_code`` the login host's
    HTTP status (None without an answer), ``retry_after`` seconds from a 429."""

    def __init__(self, reason: str, status_code: int | None = None, retry_after: float | None = None,
                 transport_error: bool = False):
        super().__init__(reason if status_code is None else f"{reason}: http_{status_code}")
        self.reason = reason
        self.status_code = status_code
        self.retry_after = retry_after
        self.transport_error = transport_error


@dataclass
class _Cached:
    token: str = field(repr=False)
    good_until: datetime


class TokenProvider:
    """Client-credentials tokens, cached in memory per (login host, client id, secret).

    A token is reused until ``margin`` seconds (60) before its ``expires_in`` ends (for a very short
    lifetime, until half of it). Concurrent callers for the same client wait for one fetch. Thread-safe.
    ``clock`` is the injected aware-UTC clock; ``timeout`` bounds each login request (seconds).
    """

    def __init__(self, http: httpx.Client, clock: Clock, *, margin: float = TOKEN_MARGIN_SECONDS,
                 timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self.http = http
        self.clock = clock
        self.margin = margin
        self.timeout = timeout
        self._cache: dict[tuple, _Cached] = {}
        self._locks: dict[tuple, threading.Lock] = {}
        self._guard = threading.Lock()
        self.fetches = 0
        """How many tokens were requested from a login host (for tests and metrics)."""

    def __repr__(self) -> str:
        return f"TokenProvider(cached={len(self._cache)})"

    def token(self, creds: Credentials) -> str:
        """A valid access token for ``creds``. Raises :class:`TokenError` when none can be had."""
        key = creds.cache_key
        cached = self._cache.get(key)
        if cached is not None and self.clock() < cached.good_until:
            return cached.token
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            cached = self._cache.get(key)
            if cached is not None and self.clock() < cached.good_until:
                return cached.token
            token, lifetime = self._fetch(creds)
            keep = lifetime - self.margin if lifetime > 2 * self.margin else lifetime / 2
            self._cache[key] = _Cached(token, self.clock() + timedelta(seconds=max(0.0, keep)))
            return token

    def invalidate(self, creds: Credentials, token: str | None = None) -> None:
        """Forgets the cached token of ``creds`` (only if it is still ``token``, when given), so a token
        another thread already replaced is kept."""
        key = creds.cache_key
        with self._guard:
            cached = self._cache.get(key)
            if cached is not None and (token is None or cached.token == token):
                del self._cache[key]

    def _fetch(self, creds: Credentials) -> tuple[str, float]:
        self.fetches += 1
        try:
            response = self.http.post(f"{creds.login_url}/oauth/token", data={"grant_type": "client_credentials"},
                                      auth=(creds.client_id, creds.client_secret), timeout=self.timeout,
                                      headers={"Accept": "application/json", "User-Agent": USER_AGENT},
                                      follow_redirects=False)
        except httpx.TimeoutException:
            raise TokenError("genesys_oauth_timeout", transport_error=True) from None
        except (httpx.TransportError, httpx.InvalidURL):
            raise TokenError("genesys_oauth_unreachable", transport_error=True) from None
        status = response.status_code
        if status == 429:
            raise TokenError("genesys_oauth_rate_limited", status,
                             parse_retry_after(response.headers.get("Retry-After"), response.content, self.clock()))
        if status in (400, 401, 403):
            raise TokenError("genesys_oauth_rejected", status)
        if not 200 <= status < 300:
            raise TokenError("genesys_oauth_unavailable", status)
        try:
            payload = response.json()
            token = payload["access_token"]
            lifetime = float(payload.get("expires_in") or 300)
        except (ValueError, KeyError, TypeError):
            raise TokenError("genesys_oauth_bad_response", status) from None
        if not isinstance(token, str) or not token:
            raise TokenError("genesys_oauth_bad_response", status)
        return token, lifetime


# -- API calls ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenesysResponse:
    """The result of one :meth:`GenesysApi.call` (including a token refresh and repeat on 401).

    ``status_code`` of the API answer (None when there was none: transport failure or no token);
    ``ok`` for 2xx; ``error`` a short code without any body text (``http_429``,
    ``http_400: bad.request``, ``timeout``, ``genesys_oauth_rejected: http_401``, ...);
    ``retry_after`` seconds from a 429; ``payload`` the parsed JSON answer of a 2xx (or None).
    """

    status_code: int | None
    error: str | None
    latency_ms: float
    transport_error: bool = False
    retry_after: float | None = None
    payload: object = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class GenesysApi:
    """Calls the Genesys Cloud Platform API as an OAuth client (client credentials).

    ``tokens`` supplies and caches tokens; ``timeout`` bounds each request (seconds). Redirects are not
    followed. Thread-safe when the ``httpx.Client`` is (it is).
    """

    def __init__(self, http: httpx.Client, tokens: TokenProvider, *, timeout: float = DEFAULT_TIMEOUT_SECONDS):
        self.http = http
        self.tokens = tokens
        self.timeout = timeout

    def call(self, creds: Credentials, method: str, path: str, body: dict | None = None) -> GenesysResponse:
        """``method`` ``creds.api_url + path`` with JSON ``body`` and ``Authorization: Bearer``.

        On 401 the token is dropped, a new one fetched and the call made once more (Genesys has no
        refresh token for client credentials, https://developer.genesys.cloud/authorization/platform-auth/use-client-credentials). Never raises for HTTP or transport
        failures and never sleeps; see :class:`GenesysResponse`.
        """
        started = time.perf_counter()
        for attempt in (1, 2):
            try:
                token = self.tokens.token(creds)
            except TokenError as err:
                return GenesysResponse(None, str(err)[:200], _ms(started), transport_error=err.transport_error,
                                       retry_after=err.retry_after)
            try:
                response = self.http.request(method, creds.api_url + path, json=body, timeout=self.timeout,
                                             follow_redirects=False,
                                             headers={"Authorization": f"Bearer {token}",
                                                      "Accept": "application/json", "User-Agent": USER_AGENT})
            except httpx.TimeoutException as exc:
                return GenesysResponse(None, f"timeout: {type(exc).__name__}", _ms(started), transport_error=True)
            except (httpx.TransportError, httpx.InvalidURL) as exc:
                return GenesysResponse(None, f"connection_error: {type(exc).__name__}", _ms(started),
                                       transport_error=True)
            if response.status_code == 401 and attempt == 1:
                self.tokens.invalidate(creds, token)
                continue
            return _response_of(response, started, self.tokens.clock)
        raise AssertionError("unreachable")

    def patch_participant_attributes(self, creds: Credentials, conversation_id: str, participant_id: str,
                                     attributes: Mapping[str, str]) -> GenesysResponse:
        """``PATCH /api/v2/conversations/{conversationId}/participants/{participantId}/attributes``
        ``{"attributes": {...}}`` (the generic endpoint works for every media type;
        https://developer.genesys.cloud/devapps/api-explorer#patch-api-v2-conversations--conversationId--participants--participantId--attributes).
        Raises ``TypeError`` for a non-string value (Genesys would answer 400)."""
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in attributes.items()):
            raise TypeError("participant attributes must be strings")
        path = (f"/api/v2/conversations/{quote(conversation_id, safe='')}/participants/"
                f"{quote(participant_id, safe='')}/attributes")
        return self.call(creds, "PATCH", path, {"attributes": dict(attributes)})

    def start_workflow(self, creds: Credentials, flow_id: str, name: str,
                       input_data: Mapping[str, str]) -> GenesysResponse:
        """``POST /api/v2/flows/executions`` ``{"flowId", "name", "inputData"}``
        (https://developer.genesys.cloud/devapps/api-explorer#post-api-v2-flows-executions); the
        answer's ``id`` is the flow execution id. Raises ``ValueError`` for an input key without the
        ``Flow.`` prefix."""
        if not all(k.startswith("Flow.") for k in input_data):
            raise ValueError("workflow input names must start with 'Flow.'")
        return self.call(creds, "POST", "/api/v2/flows/executions",
                         {"flowId": flow_id, "name": name, "inputData": dict(input_data)})

    def send_agentless_message(self, creds: Credentials, *, from_address: str, to_address: str,
                               messenger_type: str, text: str) -> GenesysResponse:
        """``POST /api/v2/conversations/messages/agentless`` (https://developer.genesys.cloud/commdigital/digital/agentless-messaging) with ``fromAddress``,
        ``toAddress``, ``toAddressMessengerType`` and ``textBody``; the answer's ``id`` is the message id.
        ``to_address`` must already be in the messenger's format (E.164 for SMS, digits for WhatsApp)."""
        return self.call(creds, "POST", "/api/v2/conversations/messages/agentless",
                         {"fromAddress": from_address, "toAddress": to_address,
                          "toAddressMessengerType": messenger_type, "textBody": text,
                          "useExistingActiveConversation": False})

    # -- Task Management workitems (https://developer.genesys.cloud/commdigital/taskmanagement/) -----------
    def query_workitems(self, creds: Credentials, filters: list[Mapping[str, object]], *,
                        page_size: int = 25) -> GenesysResponse:
        """``POST /api/v2/taskmanagement/workitems/query`` ``{"filters": [...], "pageSize"}``; the answer is
        ``{"entities": [Workitem, ...], "after"?, "count"?}`` (SDK ``WorkitemPostQueryEntityListing``).

        ``filters``: 1–3 ``{"name", "type": "String", "operator": "EQ" | "IN" | ..., "values": [str]}``
        (SDK ``WorkitemFilter``); one of them must be a single-value ``EQ`` on ``typeId``, ``workbinId``,
        ``queueId`` or ``assigneeId`` (Genesys developer announcement, 2026:
        https://community.genesys.com/discussion/restricting-workitem-filters-to-three-for-workitem-sync-query-preview-api).
        ``page_size`` 1–200. Raises ``ValueError`` for a filter list of another length."""
        if not 1 <= len(filters) <= 3:
            raise ValueError("a workitem query takes one to three filters")
        return self.call(creds, "POST", "/api/v2/taskmanagement/workitems/query",
                         {"filters": [dict(f) for f in filters], "pageSize": max(1, min(200, page_size))})

    def create_workitem(self, creds: Credentials, *, name: str, type_id: str, description: str | None = None,
                        external_tag: str | None = None) -> GenesysResponse:
        """``POST /api/v2/taskmanagement/workitems`` (SDK ``WorkitemCreate``: ``name`` 3–256 characters and
        ``typeId`` the worktype's UUID are required; ``description`` ≤ 512 characters; ``externalTag`` a free
        string that ``query_workitems`` can filter on). No ``customFields`` are ever sent: their keys must
        exist in the worktype's schema, which paygate does not know. The answer (200/201) is the
        ``Workitem`` with its ``id``. Raises ``ValueError`` for a name or description outside those limits."""
        if not 3 <= len(name) <= 256:
            raise ValueError("a workitem name has 3 to 256 characters")
        body: dict[str, str] = {"name": name, "typeId": type_id}
        if description:
            if len(description) > 512:
                raise ValueError("a workitem description has at most 512 characters")
            body["description"] = description
        if external_tag:
            body["externalTag"] = external_tag
        return self.call(creds, "POST", "/api/v2/taskmanagement/workitems", body)

    def get_workitem(self, creds: Credentials, workitem_id: str) -> GenesysResponse:
        """``GET /api/v2/taskmanagement/workitems/{workitemId}`` → the ``Workitem`` (404 when unknown)."""
        return self.call(creds, "GET", f"/api/v2/taskmanagement/workitems/{quote(workitem_id, safe='')}")


def _response_of(response: httpx.Response, started: float, clock: Clock) -> GenesysResponse:
    status = response.status_code
    latency = _ms(started)
    if 200 <= status < 300:
        try:
            payload = response.json() if response.content else None
        except ValueError:
            payload = None
        return GenesysResponse(status, None, latency, payload=payload)
    error = f"http_{status}"
    try:
        code = response.json().get("code")
    except (ValueError, AttributeError):
        code = None
    if isinstance(code, str) and _CODE_RE.match(code):
        error = f"{error}: {code}"
    retry_after = None
    if status == 429:
        retry_after = parse_retry_after(response.headers.get("Retry-After"), response.content, clock())
    return GenesysResponse(status, error, latency, retry_after=retry_after)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
