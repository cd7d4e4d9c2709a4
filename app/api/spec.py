"""The API's spectree instance: request validation from the declared models, and the error-code mapping.

spectree (https://spectree.readthedocs.io) reads each endpoint's declaration (request models from the
view's annotations, response models per status; see :func:`app.api.route`) to validate the request and
to write the OpenAPI 3.1 document. This module adapts it to paygate's contract:

* a request that does not match its models is HTTP 400 with the error envelope built by
  :func:`app.error_response`: ``validation_error`` and ``fields`` (field → code, :data:`ERROR_CODES`), or
  ``invalid_json`` for a body that is not a JSON object (:class:`RequestInvalid`);
* path parameters are documented as non-empty strings (what Werkzeug's default converter matches);
* a response is checked against its declared model: a mismatch is logged, and raises while the app is
  ``TESTING`` so a test fails (in production the answer is sent as it is).
"""

from __future__ import annotations

import logging
import re
from typing import Any, get_args, get_origin

from flask import current_app
from pydantic import BaseModel, ValidationError
from pydantic_core.core_schema import ErrorType
from spectree import Response, SecurityScheme, SecuritySchemeData, SpecTree
from spectree.plugins.base import Context
from spectree.plugins.flask_plugin import FlaskPlugin
from spectree.utils import get_multidict_items
from werkzeug.routing import UnicodeConverter

from kernel.errors import ValidationFailed

from ..schemas import Error

log = logging.getLogger("paygate.http")

ERROR_CODES: dict[str, str] = {
    # pydantic error type (https://docs.pydantic.dev/latest/errors/validation_errors/) → paygate field code
    "missing": "required",
    "extra_forbidden": "unknown_field",
    "string_type": "must_be_string",
    "string_too_short": "too_short",
    "string_too_long": "too_long",
    "string_pattern_mismatch": "invalid_format",
    "literal_error": "invalid_choice",
    "enum": "invalid_choice",
    "int_type": "must_be_integer",
    "int_parsing": "must_be_integer",
    "int_from_float": "must_be_integer",
    "float_type": "must_be_number",
    "float_parsing": "must_be_number",
    "bool_type": "must_be_boolean",
    "bool_parsing": "must_be_boolean",
    "dict_type": "must_be_object",
    "model_type": "must_be_object",
    "model_attributes_type": "must_be_object",
    "list_type": "must_be_array",
    "tuple_type": "must_be_array",
    "too_short": "too_short",
    "too_long": "too_long",
    "greater_than": "out_of_range",
    "greater_than_equal": "out_of_range",
    "less_than": "out_of_range",
    "less_than_equal": "out_of_range",
    "multiple_of": "out_of_range",
    "url_type": "invalid_url",
    "url_parsing": "invalid_url",
    "url_scheme": "invalid_url",
    "datetime_type": "invalid_datetime",
    "datetime_parsing": "invalid_datetime",
    "json_invalid": "invalid_json",
}
"""The central table: pydantic error type → the per-field code in ``validation_error``'s ``fields``.

A field may declare its own code with :class:`app.schemas.ErrorCode` (which raises an error whose type is
that code). Rules applied first: a missing field, or null where a value is required, is ``required``; an
undeclared field of a closed body is ``unknown_field``. Another pydantic type not listed here is
``invalid``; an error type that is not pydantic's (a declared code) is the code itself. A query parameter or
JSON body field holding U+0000 anywhere is ``invalid_characters`` (:func:`_has_nul`)."""

_PYDANTIC_TYPES = frozenset(get_args(ErrorType))


class RequestInvalid(ValidationFailed):
    """The request does not match its declaration: 400 ``validation_error`` with ``details["fields"]``, or
    another 400 code (``invalid_json``, ``invalid_idempotency_key``). An endpoint may answer it its own way
    (:func:`app.api.route`'s ``on_invalid``, used by ``/oauth/token``)."""

    @property
    def fields(self) -> dict[str, str]:
        """Field (or header / query parameter) name → code."""
        return self.details.get("fields") or {}


def error_code(error: dict[str, Any]) -> str:
    """The paygate code of one pydantic error (``{"type", "loc", "input", ...}``), by :data:`ERROR_CODES`."""
    kind = error["type"]
    if kind in ("missing", "extra_forbidden"):
        return ERROR_CODES[kind]
    if error.get("input", "") is None:  # null where a value is required counts as missing
        return "required"
    if kind in ERROR_CODES:
        return ERROR_CODES[kind]
    return "invalid" if kind in _PYDANTIC_TYPES else kind


def _nested_model(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation) if get_origin(annotation) is not None else ():
        found = _nested_model(arg)
        if found is not None:
            return found
    return None


def _field_key(model: type[BaseModel], loc: tuple) -> str:
    """The name an error is reported under: the field's (alias) name, dotted through nested models
    (``amount_range.min``); union members, list indexes and dict keys stay with their field."""
    parts: list[str] = []
    current: type[BaseModel] | None = model
    for part in loc:
        if not isinstance(part, str) or current is None:
            break
        field = next((f for name, f in current.model_fields.items() if (f.alias or name) == part), None)
        if field is None:
            if not parts:
                parts.append(part)  # an unknown field
            break
        parts.append(part)
        current = _nested_model(field.annotation)
    return ".".join(parts) or "body"


def field_errors(err: ValidationError, model: type[BaseModel]) -> dict[str, str]:
    """``{field: code}`` for a pydantic ``ValidationError`` of ``model`` (first error of each field)."""
    out: dict[str, str] = {}
    for error in err.errors(include_url=False, include_context=False):
        out.setdefault(_field_key(model, error["loc"]), error_code(error))
    return out


def request_invalid(fields: dict[str, str], *, code: str = "validation_error",
                    message: str | None = None) -> RequestInvalid:
    """The 400 :class:`RequestInvalid` for ``fields``; the message names fields and codes, never values
    (a request may carry card data)."""
    if message is None:
        listed = ", ".join(f"{name} ({problem})" for name, problem in fields.items())
        message = f"The request is invalid: {listed}." if listed else "The request is invalid."
    return RequestInvalid(message, code=code, details={"fields": fields} if fields else {})


def validate_model(model: type[BaseModel], data: Any) -> tuple[BaseModel | None, dict[str, str]]:
    """``(instance, {})`` when ``data`` fits ``model``, else ``(None, {field: code})``."""
    try:
        return model.model_validate(data), {}
    except ValidationError as err:
        return None, field_errors(err, model)


class PaygatePlugin(FlaskPlugin):
    """spectree's Flask plugin with paygate's request errors, path parameters and response checks."""

    def request_validation(self, request, query, json, form, headers, cookies):
        """Validates every declared part of the request and sets ``request.context``; raises
        :class:`RequestInvalid` with the fields of all parts together."""
        fields: dict[str, str] = {}
        values: dict[str, Any] = {}
        body = None
        if json is not None:
            if not request.get_data(cache=True).strip() and not any(
                    f.is_required() for f in json.model_fields.values()):
                body = {}  # no body at all where every field is optional (POST .../void, .../capture)
            else:
                try:
                    body = request.get_json(silent=True)  # None unless Content-Type is JSON and the body parses
                except RecursionError:  # nested deeper than the parser goes: not a body we take either
                    body = None
            if not isinstance(body, dict):
                raise request_invalid({}, code="invalid_json", message="The request body must be a JSON object.")
        parts = {
            "query": (query, lambda: get_multidict_items(request.args, query)),
            "json": (json, lambda: body),
            "form": (form, lambda: get_multidict_items(request.form, form)),
            "headers": (headers, lambda: {name: request.headers[name] for name in _aliases(headers)
                                          if name in request.headers}),
            "cookies": (cookies, lambda: get_multidict_items(request.cookies, cookies)),
        }
        for part, (model, read) in parts.items():
            if model is not None:
                values[part], errors = validate_model(model, read())
                for name, code in errors.items():
                    fields.setdefault(name, code)
        if query is not None:
            for name, given in request.args.lists():
                if _has_nul([name, *given]):
                    fields.setdefault(name, "invalid_characters")
        if json is not None:
            for name, given in body.items():
                if _has_nul([name, given]):
                    fields.setdefault(name or "body", "invalid_characters")
        if fields:
            raise request_invalid(fields)
        request.context = Context(*(values.get(p) for p in ("query", "json", "form", "headers", "cookies")))

    def validate_response(self, resp, resp_model, skip_validation: bool, force_resp_serialize: bool):
        """Makes the Flask response and checks a JSON body against the model declared for its status."""
        response = current_app.make_response(resp)
        model = resp_model.find_model(response.status_code) if resp_model is not None else None
        if model is not None and not skip_validation and response.is_json:
            try:
                model.model_validate_json(response.get_data())
            except ValidationError as err:
                problems = err.errors(include_url=False, include_input=False, include_context=False)
                log.error("response does not match its documented schema",
                          extra={"status": response.status_code, "schema": model.__name__, "errors": problems})
                if current_app.testing:
                    raise AssertionError(f"{response.status_code} response does not match {model.__name__}: "
                                         f"{problems}") from None
        return response, None

    def parse_path(self, route, path_parameter_descriptions):
        """spectree's path parameters, with the lengths Werkzeug's string converter matches
        (``minLength: 1`` for the default ``<name>``)."""
        path, parameters = super().parse_path(route, path_parameter_descriptions)
        converters = getattr(route, "_converters", {})
        for parameter in parameters:
            converter = converters.get(parameter["name"])
            if isinstance(converter, UnicodeConverter) and parameter["schema"].get("type") == "string":
                match = _LENGTHS.fullmatch(converter.regex)
                if match:
                    low, comma, high = match.groups()
                    parameter["schema"]["minLength"] = int(low)
                    if not comma or high:
                        parameter["schema"]["maxLength"] = int(high or low)
        return path, parameters


_LENGTHS = re.compile(r"\[\^/\]\{(\d+)(,?)(\d*)\}")


def _has_nul(value: Any) -> bool:
    """Whether a string anywhere in ``value`` (JSON: keys too) holds U+0000. No text paygate takes can contain it,
    and PostgreSQL cannot store it: such a field is ``invalid_characters`` (400) on every engine, never a 500."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def _aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


class Responses(Response):
    """spectree's ``Response`` plus bodies that are not JSON: ``media`` maps a status to ``(media type, schema)``
    (``{200: ("text/csv", {"type": "string"})}``), documented as that status's only content. spectree itself
    only writes ``application/json`` bodies; a status given here has no model (nothing JSON to check)."""

    def __init__(self, *codes: str, media: dict[int, tuple[str, dict]] | None = None, **code_models):
        super().__init__(*codes, **code_models)
        self.media = dict(media or {})

    def generate_spec(self, *args, **kwargs) -> dict[str, Any]:
        out = super().generate_spec(*args, **kwargs)
        for status, (media_type, schema) in self.media.items():
            out.setdefault(str(status), {"description": self.get_code_description(f"HTTP_{status}")})
            out[str(status)]["content"] = {media_type: {"schema": dict(schema)}}
        return out


_COMPONENT_NAMES: dict[str, Any] = {}


def component_name(model: Any) -> str:
    """A model's component name in the document: its class name (an ``Annotated`` title or ``XList`` for
    ``list[X]``). Two different models with one name are an error, not a silent overwrite."""
    name = getattr(model, "__name__", None) or repr(model)
    known = _COMPONENT_NAMES.setdefault(name, model)
    if known is not model:
        raise ValueError(f"two API models are named {name}: {known!r} and {model!r}")
    return name


spec = SpecTree(
    backend_name="flask",
    backend=PaygatePlugin,
    mode="strict",  # only the routes declared with app.api.route are documented
    title="paygate API",
    version="1.0.0",
    description="Hosted payment page and card tokenization for Genesys Cloud CX. Money is integer minor units; "
                "business outcomes (declines, fraud blocks, an invalid card keyed by DTMF) are HTTP 200 "
                "results, not errors. Errors are {\"error\": {\"code\", \"message\", \"request_id\"}} with stable "
                "codes. Every POST accepts an Idempotency-Key.",
    validation_error_status=400,
    validation_error_model=Error,
    naming_strategy=component_name,
    nested_naming_strategy=lambda _parent, child: child,
    security_schemes=[
        SecurityScheme(name="bearer", data=SecuritySchemeData(
            type="http", scheme="bearer", description="An access token from POST /oauth/token.")),
        SecurityScheme(name="basic", data=SecuritySchemeData(
            type="http", scheme="basic", description="client_id:client_secret of an API client.")),
    ],
    security={"bearer": []},
    annotations=True,
)
"""The one spectree instance: :func:`app.api.route` declares with it, :mod:`app.openapi` documents from it."""
