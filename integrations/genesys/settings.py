"""Per-API-client Genesys Cloud settings (docs/api.md, "Genesys write-back"), kept in ``api_clients.genesys`` (JSON).

Stored shape (every key optional except ``region``, ``client_id`` and the secret)::

    {"region": "us_east_1",                       # Genesys region name (region_hosts below)
     "api_base": null, "login_base": null,        # overrides of the region's hosts (emulator, tests)
     "client_id": "<Genesys OAuth client id>",
     "client_secret_sealed": "<Fernet token>",    # the OAuth client secret, encrypted at rest
     "workflow_id": null,                         # Architect workflow started per event
     "write_attributes": true, "start_workflow": false,
     "sms_from_address": null,                    # default ``fromAddress`` of agentless SMS
     "worktype_id": null}                         # Task Management worktype of refund-review workitems

The Genesys OAuth client secret is sealed with a key derived from ``PAYGATE_SECRET_KEY`` (HKDF-SHA256 →
Fernet, i.e. AES-128-CBC + HMAC-SHA256) so it never sits in the database in the clear; changing the
secret key makes sealed secrets unreadable unless the old key stays in ``PAYGATE_PREVIOUS_SECRET_KEYS`` until
``paygate secrets reseal`` has moved them (docs/operations.md, "Rotating the secret key"). A hand-written plaintext
``client_secret`` key is still read, so settings written directly by a test or a script work.
The secret never appears in a repr, a log line or :meth:`GenesysSettings.public_view`.

``worktype_id`` is the UUID of a Task Management worktype
(https://developer.genesys.cloud/commdigital/taskmanagement/): with it, every ``refund.failed`` event also
creates one workitem of that type for the refund (:mod:`integrations.genesys.workitems`).

Region → host mapping follows the Genesys Python SDK's ``PureCloudRegionHosts``
(https://github.com/MyPureCloud/platform-client-sdk-python, ``purecloud_region_hosts.py``): the API
host is ``api.<domain>`` and the login host ``login.<domain>``.
"""

from __future__ import annotations

import base64
import re
import uuid
from dataclasses import dataclass, field, replace
from urllib.parse import urlsplit

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kernel.errors import PaygateError, ValidationFailed

REGION_DOMAINS: dict[str, str] = {
    "us_east_1": "mypurecloud.com",
    "eu_west_1": "mypurecloud.ie",
    "ap_southeast_2": "mypurecloud.com.au",
    "ap_northeast_1": "mypurecloud.jp",
    "eu_central_1": "mypurecloud.de",
    "us_west_2": "usw2.pure.cloud",
    "ca_central_1": "cac1.pure.cloud",
    "ap_northeast_2": "apne2.pure.cloud",
    "eu_west_2": "euw2.pure.cloud",
    "ap_south_1": "aps1.pure.cloud",
    "us_east_2": "use2.us-gov-pure.cloud",
    "sa_east_1": "sae1.pure.cloud",
    "me_central_1": "mec1.pure.cloud",
    "ap_northeast_3": "apne3.pure.cloud",
    "eu_central_2": "euc2.pure.cloud",
    "mx_central_1": "mxc1.pure.cloud",
    "ap_southeast_1": "apse1.pure.cloud",
}
"""Genesys Cloud region name → domain (the Python SDK's ``purecloud_region_hosts.py``;
https://developer.genesys.cloud/platform/api/)."""

_LOOPBACK = {"localhost", "127.0.0.1", "::1"}
_MAX_ID = 200
_FROM_RE = re.compile(r"^[^\s]{1,200}$")


class GenesysNotConfigured(PaygateError):
    """The API client has no (usable) Genesys settings: 409 ``genesys_not_configured``."""

    code = "genesys_not_configured"
    http_status = 409


def region_hosts(region: str) -> tuple[str, str]:
    """``(api_base, login_base)`` for a region name, e.g. ``us_east_1`` →
    ``("https://api.mypurecloud.com", "https://login.mypurecloud.com")``.

    Raises :class:`ValidationFailed` (field ``region``: ``unknown_region``) for a name not in
    :data:`REGION_DOMAINS`.
    """
    domain = REGION_DOMAINS.get(region)
    if domain is None:
        raise ValidationFailed(f"Unknown Genesys region {region!r}.", details={"fields": {"region": "unknown_region"}})
    return f"https://api.{domain}", f"https://login.{domain}"


class SecretBox:
    """Seals short secrets for storage: Fernet under a key derived (HKDF-SHA256, info
    ``paygate.genesys.oauth-secret``) from the app's secret key. Raises :class:`PaygateError`
    ``genesys_secret_unreadable`` when a sealed value cannot be opened (wrong key or tampered).

    ``previous_keys`` (``PAYGATE_PREVIOUS_SECRET_KEYS``): retired secret keys; what they sealed still opens, and
    :meth:`reseal` moves it under ``secret_key`` (docs/operations.md, "Rotating the secret key"). Sealing always
    uses ``secret_key`` (MultiFernet: https://cryptography.io/en/latest/fernet/#cryptography.fernet.MultiFernet)."""

    def __init__(self, secret_key: str, previous_keys: tuple[str, ...] | list[str] = ()):
        fernets = [Fernet(base64.urlsafe_b64encode(
            HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                 info=b"paygate.genesys.oauth-secret").derive(k.encode("utf-8"))))
                   for k in (secret_key, *previous_keys)]
        self._fernet = fernets[0]
        self._ring = MultiFernet(fernets)

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._ring.decrypt(sealed.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError, UnicodeError):
            raise PaygateError("The stored Genesys client secret cannot be read; configure the client again.",
                               code="genesys_secret_unreadable") from None

    def is_current(self, sealed: str) -> bool:
        """True when ``sealed`` opens under the current key alone (nothing for :meth:`reseal` to do)."""
        try:
            self._fernet.decrypt(sealed.encode("ascii"))
        except (InvalidToken, ValueError, UnicodeError):
            return False
        return True

    def reseal(self, sealed: str) -> str:
        """``sealed`` re-encrypted under the current key (same plaintext, Fernet timestamp kept). Raises
        ``genesys_secret_unreadable`` when no key of the box opens it."""
        try:
            return self._ring.rotate(sealed.encode("ascii")).decode("ascii")
        except (InvalidToken, ValueError, UnicodeError):
            raise PaygateError("The stored Genesys client secret cannot be read; configure the client again.",
                               code="genesys_secret_unreadable") from None


@dataclass(frozen=True)
class GenesysSettings:
    """One API client's Genesys settings (see the module docstring for the stored shape).

    ``client_secret`` is the plaintext OAuth secret when known (just configured, or opened with a
    :class:`SecretBox`); ``client_secret_sealed`` the stored form. Neither shows in ``repr``.
    """

    region: str
    client_id: str
    api_base: str | None = None
    login_base: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_secret_sealed: str | None = field(default=None, repr=False)
    workflow_id: str | None = None
    write_attributes: bool = True
    start_workflow: bool = False
    sms_from_address: str | None = None
    worktype_id: str | None = None

    # -- hosts ---------------------------------------------------------------------------------
    @property
    def api_url(self) -> str:
        """Base URL of the Platform API (override, else ``https://api.<region domain>``), no trailing slash."""
        return (self.api_base or region_hosts(self.region)[0]).rstrip("/")

    @property
    def login_url(self) -> str:
        """Base URL of the login (OAuth) host (override, else ``https://login.<region domain>``)."""
        return (self.login_base or region_hosts(self.region)[1]).rstrip("/")

    @property
    def workflow_enabled(self) -> bool:
        """True when each event should start :attr:`workflow_id`."""
        return bool(self.start_workflow and self.workflow_id)

    @property
    def workitems_enabled(self) -> bool:
        """True when a failed refund should create a workitem of :attr:`worktype_id`."""
        return bool(self.worktype_id)

    # -- secrets -------------------------------------------------------------------------------
    def secret(self, box: SecretBox) -> str:
        """The plaintext OAuth client secret. Raises ``genesys_not_configured`` when none is stored and
        ``genesys_secret_unreadable`` when the sealed one cannot be opened."""
        if self.client_secret:
            return self.client_secret
        if not self.client_secret_sealed:
            raise GenesysNotConfigured("No Genesys OAuth client secret is configured.")
        return box.open(self.client_secret_sealed)

    # -- (de)serialisation -----------------------------------------------------------------------
    @classmethod
    def from_stored(cls, stored: dict | None) -> "GenesysSettings | None":
        """Parses ``api_clients.genesys``; None when the column is empty or lacks the required keys."""
        if not isinstance(stored, dict) or not stored.get("client_id") or not stored.get("region"):
            return None
        return cls(region=str(stored["region"]), client_id=str(stored["client_id"]),
                   api_base=stored.get("api_base") or None, login_base=stored.get("login_base") or None,
                   client_secret=stored.get("client_secret") or None,
                   client_secret_sealed=stored.get("client_secret_sealed") or None,
                   workflow_id=stored.get("workflow_id") or None,
                   write_attributes=bool(stored.get("write_attributes", True)),
                   start_workflow=bool(stored.get("start_workflow", False)),
                   sms_from_address=stored.get("sms_from_address") or None,
                   worktype_id=stored.get("worktype_id") or None)

    def to_stored(self, box: SecretBox) -> dict:
        """The JSON to store: the secret sealed with ``box``, never in the clear."""
        sealed = self.client_secret_sealed
        if self.client_secret:
            sealed = box.seal(self.client_secret)
        return {"region": self.region, "api_base": self.api_base, "login_base": self.login_base,
                "client_id": self.client_id, "client_secret_sealed": sealed, "workflow_id": self.workflow_id,
                "write_attributes": self.write_attributes, "start_workflow": self.start_workflow,
                "sms_from_address": self.sms_from_address, "worktype_id": self.worktype_id}

    def public_view(self) -> dict:
        """What may be printed or returned: everything but the secret (only whether one is set)."""
        return {"region": self.region, "api_base": self.api_url, "login_base": self.login_url,
                "client_id": self.client_id,
                "client_secret_set": bool(self.client_secret or self.client_secret_sealed),
                "workflow_id": self.workflow_id, "write_attributes": self.write_attributes,
                "start_workflow": self.start_workflow, "sms_from_address": self.sms_from_address,
                "worktype_id": self.worktype_id}

    # -- validation ----------------------------------------------------------------------------
    def validated(self, *, production: bool) -> "GenesysSettings":
        """Returns ``self`` when valid, else raises :class:`ValidationFailed` with per-field codes.

        Rules: a known region; overrides are absolute http(s) URLs without query, https in production
        (http also for loopback hosts outside it); ids ≤ 200 characters; ``start_workflow`` needs a
        ``workflow_id``; a secret must be present; ``worktype_id`` is a UUID in its canonical text form
        (``8-4-4-4-12`` hex digits, as Genesys ids are).
        """
        errors: dict[str, str] = {}
        if self.region not in REGION_DOMAINS:
            errors["region"] = "unknown_region"
        for name in ("api_base", "login_base"):
            value = getattr(self, name)
            if value is not None and not _base_url_ok(value, production):
                errors[name] = "invalid_url"
        if not self.client_id or len(self.client_id) > _MAX_ID:
            errors["client_id"] = "invalid"
        if not (self.client_secret or self.client_secret_sealed):
            errors["client_secret"] = "required"
        if self.workflow_id is not None and (not self.workflow_id or len(self.workflow_id) > _MAX_ID):
            errors["workflow_id"] = "invalid"
        if self.start_workflow and not self.workflow_id:
            errors["workflow_id"] = "required"
        if self.sms_from_address is not None and not _FROM_RE.match(self.sms_from_address):
            errors["sms_from_address"] = "invalid"
        if self.worktype_id is not None and not is_uuid(self.worktype_id):
            errors["worktype_id"] = "invalid"
        if errors:
            raise ValidationFailed("The Genesys settings are invalid.", details={"fields": errors})
        return self

    def with_secret(self, secret: str) -> "GenesysSettings":
        """A copy holding a new plaintext secret (to be sealed by :meth:`to_stored`)."""
        return replace(self, client_secret=secret, client_secret_sealed=None)


def is_uuid(value: str) -> bool:
    """True for a UUID in canonical text form (``0f8fad5b-d9cb-469f-a165-70867728950e``, any case)."""
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value.lower()
    except ValueError:
        return False


def _base_url_ok(url: str, production: bool) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    if not parts.hostname or parts.query or parts.fragment or parts.username or parts.password:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and (not production or parts.hostname in _LOOPBACK)


def settings_of(client) -> GenesysSettings | None:
    """The parsed settings of an :class:`~payments.models.ApiClient` row (None when not configured)."""
    return GenesysSettings.from_stored(getattr(client, "genesys", None))
