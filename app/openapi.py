"""The OpenAPI 3.1 document served at ``GET /v1/openapi.json``.

Kept next to the views and checked against them by ``tests/functional/test_openapi.py``
(every route documented, every documented route served, response fields as built).
"""

from __future__ import annotations

STRING = {"type": "string"}
NSTRING = {"type": ["string", "null"]}
NINT = {"type": ["integer", "null"]}
TIME = {"type": "string", "format": "date-time"}
NTIME = {"type": ["string", "null"], "format": "date-time"}

STATUSES = ["pending", "processing", "approved", "declined", "requires_agent", "failed", "expired", "canceled"]
EVENT_TYPES = ["payment.approved", "payment.declined", "payment.failed", "payment_session.requires_agent",
               "payment_session.expired", "payment_session.canceled", "hold.authorized", "hold.captured",
               "hold.voided", "hold.expiring", "refund.succeeded", "refund.failed", "subscription.created",
               "subscription.canceled", "dispute.opened", "dispute.closed"]


def _obj(props: dict, required: list[str] | None = None, **extra) -> dict:
    out = {"type": "object", "properties": props, **extra}
    if required:
        out["required"] = required
    return out


SCHEMAS = {
    "Error": _obj({"error": _obj({
        "code": {"type": "string", "description": "Stable snake_case machine code."},
        "message": {"type": "string", "description": "Human text; never contains card data."},
        "request_id": NSTRING,
        "fields": {"type": "object", "additionalProperties": {"type": "string"},
                   "description": "Per-field error codes, for validation errors."},
    }, ["code", "message", "request_id"])}, ["error"]),
    "TokenResponse": _obj({"access_token": STRING, "token_type": {"type": "string", "enum": ["Bearer"]},
                           "expires_in": {"type": "integer"}}, ["access_token", "token_type", "expires_in"]),
    "OAuthError": _obj({"error": {"type": "string", "enum": ["invalid_client", "invalid_request",
                                                             "unsupported_grant_type"]}}, ["error"]),
    "CreatePaymentSession": _obj({
        "conversation_id": {"type": "string", "maxLength": 200, "description": "Genesys conversation id."},
        "participant_id": {"type": "string", "maxLength": 200},
        "customer_account_id": {"type": "string", "maxLength": 200},
        "intent": {"type": "string", "enum": ["payment", "topup", "subscription", "hold"], "default": "payment"},
        "amount": {"type": "integer", "minimum": 1, "description": "Minor units of currency (USD 2500 = $25.00)."},
        "currency": {"type": "string", "pattern": "^[A-Z]{3}$", "description": "ISO 4217 alpha-3."},
        "channel": {"type": "string", "enum": ["voice", "messaging", "web"]},
        "reference": {"type": "string", "maxLength": 64},
        "callback_url": {"type": "string", "format": "uri"},
        "locale": {"type": "string", "description": "BCP 47."},
        "ttl_seconds": {"type": "integer", "minimum": 60, "maximum": 86400, "default": 900},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    }, ["conversation_id", "customer_account_id", "amount", "currency"], additionalProperties=False),
    "PaymentSessionCreated": _obj({
        "session_id": STRING, "status": {"type": "string", "enum": ["pending"]},
        "checkout_url": {"type": "string", "format": "uri"},
        "agent_url": {"type": "string", "format": "uri",
                      "description": "Signed, expiring status page for the agent's Script; never shows card data."},
        "expires_at": TIME, "conversation_id": STRING,
        "intent": STRING, "amount": {"type": "integer"}, "currency": STRING,
    }, ["session_id", "status", "checkout_url", "agent_url", "expires_at", "conversation_id", "intent", "amount", "currency"]),
    "Card": _obj({"brand": STRING, "last4": STRING, "exp_month": NINT, "exp_year": NINT, "fingerprint": NSTRING},
                 ["brand", "last4"]),
    "PaymentSession": _obj({
        "session_id": STRING, "status": {"type": "string", "enum": STATUSES},
        "outcome": {"type": ["string", "null"], "enum": ["approved", "declined", "requires_agent", "failed", None]},
        "conversation_id": STRING, "participant_id": NSTRING, "customer_account_id": STRING, "intent": STRING,
        "amount": {"type": "integer"}, "currency": STRING, "reference": NSTRING, "channel": NSTRING,
        "attempts": {"type": "integer"}, "max_attempts": {"type": "integer"}, "token": NSTRING,
        "card": {"oneOf": [{"$ref": "#/components/schemas/Card"}, {"type": "null"}]},
        "payment_id": NSTRING, "gateway": STRING, "gateway_reference": NSTRING, "decline_code": NSTRING,
        "message": NSTRING, "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "created_at": TIME, "updated_at": TIME, "expires_at": TIME,
        "link_sends": {"type": "integer", "description": "How many times send-link texted the checkout link."},
        "link_last_sent_at": {**NTIME, "description": "When the link was last texted (null: never)."},
    }, ["session_id", "status", "outcome", "conversation_id", "participant_id", "customer_account_id", "intent",
        "amount", "currency", "reference", "channel", "attempts", "max_attempts", "token", "card", "payment_id",
        "gateway", "gateway_reference", "decline_code", "message", "metadata", "created_at", "updated_at",
        "expires_at", "link_sends", "link_last_sent_at"]),
    "InspectCard": _obj({"number": {"type": "string", "pattern": "^[0-9]{6,19}$"}}, ["number"]),
    "CardInspection": _obj({"brand": NSTRING, "allowed": {"type": "boolean"},
                            "pan_lengths": {"type": "array", "items": {"type": "integer"}},
                            "cvc_length": NINT, "requires_expiry": {"type": "boolean"},
                            "requires_cvc": {"type": "boolean"}, "luhn_valid": {"type": ["boolean", "null"]}},
                           ["brand", "allowed", "pan_lengths", "cvc_length", "requires_expiry", "requires_cvc",
                            "luhn_valid"]),
    "SubmitCard": _obj({"number": STRING, "exp_month": {"type": ["string", "integer"]},
                        "exp_year": {"type": ["string", "integer"]}, "cvc": STRING, "cardholder_name": STRING},
                       ["number", "exp_month", "exp_year", "cvc"]),
    "CardOutcome": _obj({
        "outcome": {"type": "string", "enum": ["approved", "declined", "invalid", "requires_agent", "failed",
                                               "processing", "expired", "canceled", "pending"]},
        "status": {"type": "string", "enum": STATUSES}, "token": NSTRING, "card_brand": NSTRING,
        "card_last4": NSTRING, "decline_code": NSTRING, "message": NSTRING,
        "field_errors": {"type": "object", "additionalProperties": {"type": "string"}},
        "attempts_remaining": {"type": "integer"}},
        ["outcome", "status", "token", "card_brand", "card_last4", "decline_code", "message", "field_errors",
         "attempts_remaining"]),
    "SendLink": _obj({
        "to": {"type": "string", "pattern": "^\\+[1-9][0-9]{6,14}$",
               "description": "The customer's number in E.164 (for WhatsApp too; sent without the +)."},
        "messenger_type": {"type": "string", "enum": ["sms", "whatsapp"]},
        "from_address": {"type": "string", "maxLength": 200,
                         "description": "Genesys SMS number or WhatsApp integration id; for SMS defaults to the "
                                        "client's configured sms_from_address."},
    }, ["to", "messenger_type"], additionalProperties=False),
    "LinkSent": _obj({"sent": {"type": "boolean", "enum": [True]},
                      "message_id": {"type": "string", "description": "Genesys agentless message id."},
                      "to": STRING, "messenger_type": {"type": "string", "enum": ["sms", "whatsapp"]}},
                     ["sent", "message_id", "to", "messenger_type"]),
    "DeliveryAttempt": _obj({"number": {"type": "integer"}, "started_at": TIME, "status_code": NINT,
                             "latency_ms": {"type": "number"}, "error": NSTRING,
                             "outcome": {"type": "string", "enum": ["delivered", "retry", "dead"]}},
                            ["number", "started_at", "status_code", "latency_ms", "error", "outcome"]),
    "Delivery": _obj({"id": {"type": "integer"},
                      "kind": {"type": "string", "description": "webhook, genesys_attributes (participant "
                               "attributes) or genesys_workflow (Architect workflow start)."},
                      "target": {"type": "string", "description": "The webhook URL, genesys:attributes or "
                                 "genesys:flow:<workflow id>."},
                      "status": {"type": "string", "enum": ["pending", "delivered", "dead"]},
                      "attempts": {"type": "integer"}, "last_status_code": NINT, "last_error": NSTRING,
                      "next_attempt_at": NTIME, "delivered_at": NTIME,
                      "attempt_log": {"type": "array", "items": {"$ref": "#/components/schemas/DeliveryAttempt"}}},
                     ["id", "kind", "target", "status", "attempts", "attempt_log"]),
    "Event": _obj({"id": STRING, "type": {"type": "string", "enum": EVENT_TYPES}, "created_at": TIME,
                   "sequence": {"type": "integer"}, "session_id": NSTRING,
                   "data": {"$ref": "#/components/schemas/PaymentSession"},
                   "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}}},
                  ["id", "type", "created_at", "sequence", "session_id", "data", "deliveries"]),
    "EventList": _obj({"data": {"type": "array", "items": {"$ref": "#/components/schemas/Event"}}}, ["data"]),
}


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


ERRORS = {code: {"$ref": f"#/components/responses/{name}"} for code, name in
          (("400", "BadRequest"), ("401", "Unauthorized"), ("404", "NotFound"))}
IDEMPOTENT = {"409": {"$ref": "#/components/responses/Conflict"},
              "422": {"$ref": "#/components/responses/IdempotencyKeyReused"}}
SESSION_ID = {"name": "session_id", "in": "path", "required": True, "schema": STRING}
IDEM_HEADER = {"$ref": "#/components/parameters/IdempotencyKey"}


def openapi_document(base_url: str) -> dict:
    """The document, with ``servers`` pointing at ``base_url``."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "paygate API", "version": "1.0.0",
                 "description": "Hosted payment page and card tokenization for Genesys Cloud CX. Money is "
                                "integer minor units; business outcomes are HTTP 200 results, not errors."},
        "servers": [{"url": base_url}],
        "security": [{"bearer": []}],
        "paths": {
            "/oauth/token": {"post": {
                "operationId": "createAccessToken", "security": [{"basic": []}],
                "summary": "Client-credentials access token (RFC 6749 §4.4).",
                "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                    "schema": _obj({"grant_type": {"type": "string", "enum": ["client_credentials"]}},
                                   ["grant_type"])}}},
                "responses": {"200": _json("TokenResponse", "An access token valid for expires_in seconds."),
                              "400": _json("OAuthError", "Bad request."),
                              "401": _json("OAuthError", "Unknown client or wrong secret.")}}},
            "/v1/payment-sessions": {"post": {
                "operationId": "createPaymentSession", "parameters": [IDEM_HEADER],
                "requestBody": {"required": True, "content": {"application/json": {
                    "schema": _ref("CreatePaymentSession")}}},
                "responses": {"201": _json("PaymentSessionCreated", "Created; send checkout_url to the customer."),
                              **ERRORS, **IDEMPOTENT}}},
            "/v1/payment-sessions/{session_id}": {"get": {
                "operationId": "getPaymentSession", "parameters": [SESSION_ID],
                "responses": {"200": _json("PaymentSession", "The session view."), **ERRORS}}},
            "/v1/payment-sessions/{session_id}/cancel": {"post": {
                "operationId": "cancelPaymentSession", "parameters": [SESSION_ID, IDEM_HEADER],
                "responses": {"200": _json("PaymentSession", "Canceled."), **ERRORS, **IDEMPOTENT}}},
            "/v1/cards/inspect": {"post": {
                "operationId": "inspectCard", "parameters": [IDEM_HEADER],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("InspectCard")}}},
                "responses": {"200": _json("CardInspection", "What to ask for this card."), **ERRORS,
                              **IDEMPOTENT}}},
            "/v1/payment-sessions/{session_id}/card": {"post": {
                "operationId": "submitCard", "parameters": [SESSION_ID, IDEM_HEADER],
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SubmitCard")}}},
                "responses": {"200": _json("CardOutcome", "The outcome; declines and fraud blocks are 200 results."),
                              **ERRORS, **IDEMPOTENT}}},
            "/v1/payment-sessions/{session_id}/send-link": {"post": {
                "operationId": "sendPaymentLink", "parameters": [SESSION_ID, IDEM_HEADER],
                "summary": "Text the checkout link through Genesys agentless messaging (SMS ≤ 765 characters).",
                "description": "Needs the API client's Genesys settings. Only for pending sessions; at most 3 "
                               "sends per session in 10 minutes.",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("SendLink")}}},
                "responses": {"200": _json("LinkSent", "Genesys accepted the message."), **ERRORS,
                              "409": _json("Error", "session_not_pending, genesys_not_configured, "
                                                    "idempotency_key_in_use."),
                              "422": {"$ref": "#/components/responses/IdempotencyKeyReused"},
                              "429": {"$ref": "#/components/responses/RateLimited"},
                              "502": _json("Error", "genesys_unavailable: Genesys did not accept the message.")}}},
            "/v1/events": {"get": {
                "operationId": "listEvents",
                "parameters": [{"name": "session_id", "in": "query", "required": False, "schema": STRING}],
                "responses": {"200": _json("EventList", "Events with their delivery state."), **ERRORS}}},
            "/v1/events/{event_id}/redeliver": {"post": {
                "operationId": "redeliverEvent",
                "parameters": [{"name": "event_id", "in": "path", "required": True, "schema": STRING}, IDEM_HEADER],
                "responses": {"202": _json("Event", "Queued for delivery again."), **ERRORS, **IDEMPOTENT}}},
            "/v1/openapi.json": {"get": {"operationId": "getOpenApi", "security": [],
                                         "responses": {"200": {"description": "This document."}}}},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "basic": {"type": "http", "scheme": "basic"}},
            "parameters": {"IdempotencyKey": {
                "name": "Idempotency-Key", "in": "header", "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                "description": "Replays the first completed response for 24 h (not a 5xx or 429: those may be retried with "
                               "the same key); 422 on reuse with another body; "
                               "409 while the first request is still running. Scoped per API client."}},
            "responses": {
                "BadRequest": _json("Error", "Invalid request (code validation_error, invalid_json, ...)."),
                "Unauthorized": _json("Error", "Missing, invalid or expired bearer token."),
                "NotFound": _json("Error", "No such resource for this client."),
                "Conflict": _json("Error", "idempotency_key_in_use, or the session is in a state that does not "
                                           "allow this (session_not_cancelable)."),
                "IdempotencyKeyReused": _json("Error", "idempotency_key_reused."),
                "RateLimited": {**_json("Error", "rate_limited; wait Retry-After seconds."),
                                "headers": {"Retry-After": {"schema": {"type": "integer"}}}},
            },
            "schemas": SCHEMAS,
        },
    }
