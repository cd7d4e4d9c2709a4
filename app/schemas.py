"""The API's shared declarations: the model bases, field types and the views several endpoints return.

Every request and response shape of the REST API is a pydantic v2 model, declared once. The endpoint
modules (``app/api/*.py``) declare their own models next to their views and reuse what is here;
:mod:`app.api.spec` validates requests with them and generates the OpenAPI 3.1 document from them
(``GET /v1/openapi.json``, built by :mod:`app.openapi`). :mod:`app.api` tells how to declare an endpoint.

Bases:

* :class:`Body` — a JSON request body: strict types (``"100"`` is not an integer, ``true`` is not a
  string), unknown fields refused (``unknown_field``). :class:`OpenBody` ignores unknown fields.
* :class:`Params` — query parameters or headers (unknown ones ignored).
* :class:`View` — a response body. The document leaves response objects open (clients must accept
  fields added later), while the server checks its own answers against the closed model.

Per-field error codes: a ``validation_error`` answer carries ``fields: {field: code}``. The central
table in :mod:`app.api.spec` turns pydantic's error types into codes (``required``, ``too_long``,
``invalid_choice``, ...); a field declares its own code with :class:`ErrorCode` in its ``Annotated``
metadata (the code is also listed in the document under ``x-error-codes``).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue, SkipJsonSchema
from pydantic_core import PydanticCustomError, core_schema
from typing_extensions import TypeAliasType

from kernel.money import known_currencies

# -- JSON Schema generation ---------------------------------------------------------------------------------
_PRIMITIVES = ("string", "integer", "number", "boolean", "null")
_TYPE_KEYWORDS = {  # JSON Schema 2020-12 keywords that only apply to instances of one type
    "string": {"minLength", "maxLength", "pattern", "format"},
    "integer": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "number": {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"},
    "boolean": set(),
    "null": set(),
}


def _merge_primitive_union(schemas: list[JsonSchemaValue]) -> JsonSchemaValue | None:
    """``{"type": [...]}`` for a union of primitive schemas of distinct types (``str | None`` →
    ``{"type": ["string", "null"]}``, keeping each member's type-specific keywords and enums), or None
    when the union cannot be written that way."""
    types: list[str] = []
    merged: dict[str, Any] = {}
    enum: list[Any] = []
    with_enum = without_enum = 0
    for schema in schemas:
        kinds = schema.get("type")
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not isinstance(kinds, list) or not kinds or any(k not in _PRIMITIVES or k in types for k in kinds):
            return None
        extra = {k for k in schema if not k.startswith("x-")} - {"type", "enum", "const"}
        notes = {k: v for k, v in schema.items() if k.startswith("x-")}
        allowed = set().union(*(_TYPE_KEYWORDS[k] for k in kinds)) if len(kinds) == 1 or not extra else set()
        if not extra <= allowed or any(k in merged for k in [*extra, *notes]):
            return None
        types.extend(kinds)
        merged.update({k: schema[k] for k in extra})
        merged.update(notes)  # x- annotations (x-error-codes) describe the one member that has them
        if "enum" in schema or "const" in schema:
            with_enum += 1
            enum.extend(v for v in (schema["enum"] if "enum" in schema else [schema["const"]]) if v is not None)
        elif kinds != ["null"]:
            without_enum += 1
    if with_enum and without_enum:
        return None
    out: dict[str, Any] = {"type": types if len(types) > 1 else types[0], **merged}
    if with_enum:
        out["enum"] = enum + ([None] if "null" in types else [])
    return out


class PaygateJsonSchema(GenerateJsonSchema):
    """pydantic's JSON Schema generator (Draft 2020-12, what OpenAPI 3.1 uses) made readable for the document.

    * unions of primitive types become a ``type`` list (``["string", "null"]``), a nullable reference
      becomes ``oneOf: [{$ref}, {"type": "null"}]``;
    * no generated ``title`` on properties (model titles stay);
    * ``default: null`` is left out where null is not an accepted value (an absent query parameter);
    * a response object (serialization mode) stays open: no ``additionalProperties: false``.
    """

    def field_title_should_be_set(self, schema) -> bool:
        return False

    def get_union_of_schemas(self, schemas: list[JsonSchemaValue]) -> JsonSchemaValue:
        merged = _merge_primitive_union(schemas)
        if merged is not None:
            return merged
        others = [s for s in schemas if s != {"type": "null"}]
        if len(others) == 1 and len(schemas) == 2:
            return {"oneOf": [others[0], {"type": "null"}]}
        return super().get_union_of_schemas(schemas)

    def default_schema(self, schema: core_schema.WithDefaultSchema) -> JsonSchemaValue:
        out = super().default_schema(schema)
        if "default" in out and out["default"] is None and not _allows_null(out):
            del out["default"]
        return out

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        out = super().model_schema(schema)
        if self.mode == "serialization" and out.get("additionalProperties") is False:
            del out["additionalProperties"]
        return out


def _allows_null(schema: JsonSchemaValue) -> bool:
    kind = schema.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return True
    return any(s.get("type") == "null" for s in schema.get("oneOf", []) + schema.get("anyOf", []))


class ApiModel(BaseModel):
    """Base of every API model: its JSON Schema comes from :class:`PaygateJsonSchema`."""

    @classmethod
    def model_json_schema(cls, *args, **kwargs) -> dict[str, Any]:
        """pydantic's ``model_json_schema`` with ``schema_generator`` defaulting to :class:`PaygateJsonSchema`."""
        kwargs.setdefault("schema_generator", PaygateJsonSchema)
        return super().model_json_schema(*args, **kwargs)


class Body(ApiModel):
    """A JSON request body: strict JSON types and no unknown fields (``unknown_field``)."""

    model_config = ConfigDict(strict=True, extra="forbid")


class OpenBody(ApiModel):
    """A JSON request body whose unknown fields are ignored (voice entry: flows may send more)."""

    model_config = ConfigDict(strict=True, extra="ignore")


class Params(ApiModel):
    """Query parameters or request headers (each a string; unknown ones are ignored)."""

    model_config = ConfigDict(strict=True, extra="ignore")


class View(ApiModel):
    """A response body. Closed when the server checks its own answer; open in the document (additions are
    allowed by the contract, so clients must accept new fields)."""

    model_config = ConfigDict(extra="forbid")


# -- per-field error codes -------------------------------------------------------------------------------------
class ErrorCode:
    """``Annotated`` marker: the code a field reports in ``validation_error``'s ``fields`` instead of the
    generic one.

    ``ErrorCode("invalid_amount")`` replaces every failure of the value (type, range...);
    ``ErrorCode(string_pattern_mismatch="invalid_url")`` replaces only the named pydantic error types
    (https://docs.pydantic.dev/latest/errors/validation_errors/) and leaves the others to the central
    table. A missing field or a null where a value is required stays ``required``; put the marker last
    in the ``Annotated`` metadata so it sees the constraints before it.
    """

    def __init__(self, code: str | None = None, /, **by_type: str):
        self.code = code
        self.by_type = by_type

    def codes(self) -> list[str]:
        """Every code this marker can report."""
        return sorted({c for c in [self.code, *self.by_type.values()] if c})

    def _code_for(self, error_type: str) -> str | None:
        return self.by_type.get(error_type, self.code)

    def _wrap(self, value, handler):
        try:
            return handler(value)
        except ValidationError as err:
            if value is None:
                raise
            code = self._code_for(err.errors()[0]["type"])
            if code is None:
                raise
            raise PydanticCustomError(code, "The value is not accepted ({code}).", {"code": code}) from None

    def __get_pydantic_core_schema__(self, source, handler):
        return core_schema.no_info_wrap_validator_function(self._wrap, handler(source))

    def __get_pydantic_json_schema__(self, schema, handler):
        out = handler(schema)
        if "$ref" not in out:
            out["x-error-codes"] = self.codes()
        return out


# -- field types -----------------------------------------------------------------------------------------------
Currency = TypeAliasType(
    "Currency",
    Annotated[Literal[tuple(sorted(known_currencies()))],  # type: ignore[misc]
              Field(description="ISO 4217 alphabetic code, upper case (the codes of the Unicode CLDR, "
                                "https://cldr.unicode.org)."),
              ErrorCode("invalid_currency")])
"""A request's ``currency``: one of :func:`kernel.money.known_currencies` (``invalid_currency`` otherwise)."""

MinorUnits = Annotated[int, Field(ge=1, le=10**12, description="Amount in the currency's minor unit "
                                                                "(USD 2500 = $25.00, JPY 2500 = ¥2,500).")]
"""A positive amount in minor units, at most 10¹²."""

Text200 = Annotated[str, Field(min_length=1, max_length=200)]
"""A non-empty id or code of up to 200 characters (conversation, participant, account, disposition...)."""

Metadata = Annotated[dict[Annotated[str, Field(max_length=40)], Annotated[str, Field(max_length=500)]],
                     Field(max_length=50), ErrorCode("invalid_metadata")]
"""Up to 50 string values (keys ≤ 40, values ≤ 500 characters), echoed in the object's events."""

CallbackUrl = Annotated[str, Field(max_length=2000, pattern="^https?://[^/?#\\s]+"),
                        ErrorCode(string_pattern_mismatch="invalid_url")]
"""Where an object's events are POSTed: an absolute http(s) URL (https only, or loopback http, in production)."""

def _utc_representable(moment: datetime) -> datetime:
    """Refuses an aware moment whose UTC value is outside what ``datetime`` holds (``9999-12-31T23:00:00-05:00``,
    ``0001-01-01T00:00:00+05:00``): stored and compared as naive UTC, it would otherwise overflow into a 500."""
    if moment.tzinfo is not None:
        try:
            moment.astimezone(timezone.utc)
        except OverflowError:
            raise ValueError("the moment is out of range in UTC") from None
    return moment


RequestDatetime = Annotated[datetime, Field(strict=False), AfterValidator(_utc_representable),
                            ErrorCode("invalid_datetime")]
"""A moment in a request (RFC 3339; a time without offset is UTC): ``invalid_datetime`` when it is not one, or
when its UTC value is outside years 1 to 9999."""

SESSION_STATUSES = ("pending", "processing", "approved", "declined", "requires_agent", "failed", "expired",
                    "canceled")
SessionStatus = Literal[SESSION_STATUSES]  # type: ignore[valid-type]
Timestamp = Annotated[datetime, Field(description="RFC 3339, UTC.")]

PATH_PARAMETERS = {
    "session_id": "Payment session id (ps_...), as returned when the session was created.",
    "event_id": "Event id (evt_...).",
}
"""Descriptions of the path parameters, by name (every endpoint module may add its own)."""

IDEMPOTENCY_KEY_PATTERN = "^[\\u0020-\\u007E\\u00A1-\\u00AC\\u00AE-\\u00FF]{1,255}$"
"""1 to 255 printable characters: what :meth:`payments.idempotency.IdempotencyStore.reserve` accepts
(``str.isprintable``) among the ISO-8859-1 characters a header value can carry (RFC 9110 §5.5): no
control character (tab, newline, DEL, C1), no no-break space, no soft hyphen."""


class IdempotencyKeyHeader(Params):
    """The ``Idempotency-Key`` header every POST accepts."""

    idempotency_key: Annotated[str, Field(min_length=1, max_length=255, pattern=IDEMPOTENCY_KEY_PATTERN)] \
        | SkipJsonSchema[None] = Field(None, alias="Idempotency-Key", description=(
            "Replays the first completed response (status and body) for 24 h to a retry with the same key "
            "and body (not a 5xx or 429: those may be retried with the same key); 422 idempotency_key_reused "
            "with another body; 409 idempotency_key_in_use while the first request still runs. Scoped per API "
            "client. 400 invalid_idempotency_key outside 1 to 255 printable characters."))


# -- views shared by several endpoints ---------------------------------------------------------------------------
class ErrorDetail(View):
    """The ``error`` member of the error envelope."""

    code: str = Field(description="Stable snake_case machine code.")
    message: str = Field(description="Human text; never contains card data.")
    request_id: str | None = Field(description="Also in the Request-Id response header.")
    fields: dict[str, str] | None = Field(
        None, description="Per-field error codes of a validation_error (field name → code: required, "
                          "must_be_string, too_long, invalid_choice, unknown_field, ...).")


class Error(View):
    """Every 4xx/5xx answer of ``/v1``: ``{"error": {"code", "message", "request_id", "fields"?}}``."""

    error: ErrorDetail


class Card(View):
    """What is shown of a card: brand, last four digits, expiry and fingerprint; never more."""

    brand: str = Field(description="visa, mastercard, amex, discover, diners, jcb or unionpay.")
    last4: str
    exp_month: int | None
    exp_year: int | None
    fingerprint: str | None = Field(description="fp_...: the same card gives the same fingerprint.")


class AmountRange(View):
    """The amounts a customer may enter (minor units, inclusive)."""

    min: int
    max: int


class SessionSubscription(View):
    """The subscription an approved ``intent: "subscription"`` session creates."""

    interval: Literal["day", "week", "month", "year"]
    interval_count: int
    amount: int | None = Field(description="Minor units of each renewal; null: the session's amount.")


class PaymentSession(View):
    """The session view: ``GET /v1/payment-sessions/{session_id}``, and the ``data`` of session events."""

    session_id: str
    status: SessionStatus
    outcome: Literal["approved", "declined", "requires_agent", "failed"] | None = Field(
        description="The last finished attempt's result, or the terminal status; null while nothing finished.")
    conversation_id: str
    participant_id: str | None
    customer_account_id: str
    intent: str
    amount: int | None = Field(description="Minor units; null until the customer entered it (amount_range).")
    currency: str
    amount_range: AmountRange | None = Field(
        description="The amounts the customer may enter (POST .../amount or the page); null: the amount is fixed.")
    reference: str | None
    channel: str | None
    attempts: int
    max_attempts: int
    token: str | None = Field(description="tok_...: the vaulted card, once one was accepted.")
    card: Card | None
    payment_id: str | None
    gateway: str
    gateway_reference: str | None
    decline_code: str | None
    message: str | None
    metadata: dict[str, str]
    created_at: Timestamp
    updated_at: Timestamp
    expires_at: Timestamp
    link_sends: int = Field(description="How many times send-link texted the checkout link.")
    link_last_sent_at: Timestamp | None = Field(description="When the link was last texted (null: never).")
    cancel_reason: Literal["requested", "conversation_ended"] | None = Field(
        description="Why a canceled session was canceled (null unless status is canceled).")
    subscription: SessionSubscription | None = Field(
        description="intent subscription: the subscription its approval creates; null otherwise.")
    subscription_id: str | None = Field(description="sub_...: the subscription this session's approval created.")
