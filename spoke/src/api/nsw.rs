//! The national single window's REST API (owned here): HTTP/JSON on the spoke, under
//! `/api/v1`, and its OpenAPI document.
//!
//! The same operations as the local control API (submit, status, inbox since a cursor, payload,
//! answer, evidence, trust list), authenticated with bearer tokens. The config stores only the
//! SHA-256 of each token, and a presented token is compared with every stored hash in constant
//! time. Every request is logged with the caller's name, never with its body. The OpenAPI
//! document at `/api/v1/openapi.json` describes the API and needs no token; every error the API
//! answers, the framework's own included, is JSON in one shape.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::get,
};
use rand_core::RngCore;
use subtle::ConstantTimeEq;
use tracing::{info, warn};

use caravan_common::signing::sha256;

use crate::config::Token;

use super::{Api, control};

/// A new random token (256 bits, hex) and the SHA-256 (hex) to put in the config.
pub fn new_token() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let hash = hex::encode(sha256(token.as_bytes()));
    (token, hash)
}

/// The API's routes over the running spoke.
pub fn router(api: Api, max_payload_bytes: usize, tokens: Vec<Token>) -> Router {
    let tokens = Arc::new(tokens);
    let routes = control::routes(max_payload_bytes)
        .route_layer(middleware::from_fn_with_state(tokens, authenticate));
    Router::new()
        .nest("/api/v1", routes)
        .route("/api/v1/openapi.json", get(openapi))
        .layer(middleware::from_fn(control::json_errors))
        .with_state(api)
}

async fn authenticate(
    State(tokens): State<Arc<Vec<Token>>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| sha256(t.trim().as_bytes()));
    // Compare with every token, so the time taken says nothing about which one matched.
    let mut caller = None;
    if let Some(presented) = presented {
        for token in tokens.iter() {
            if bool::from(token.sha256.ct_eq(&presented)) {
                caller = Some(token.name.clone());
            }
        }
    }
    let (method, path) = (request.method().clone(), request.uri().path().to_owned());
    let Some(caller) = caller else {
        warn!(%method, path, "NSW API request without a valid token");
        let body = serde_json::json!({"error": {"code": "UNAUTHENTICATED", "message": "a valid bearer token is required"}});
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            Json(body),
        )
            .into_response();
    };
    let response = next.run(request).await;
    info!(caller, %method, path, status = response.status().as_u16(), "NSW API request");
    response
}

async fn openapi() -> Json<serde_json::Value> {
    Json(openapi_document())
}

/// The OpenAPI 3.1 description of the API: every operation with every answer it gives, each
/// error in the one shape `Error` (the tests parse the document with an OpenAPI library and
/// validate real answers against it).
pub fn openapi_document() -> serde_json::Value {
    use serde_json::{Value, json};
    let id = json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}, "description": "message id (UUIDv7)"});
    let sender = json!({"name": "sender", "in": "query", "schema": {"type": "string", "pattern": "^[A-Z]{2}$"}, "description": "the sending participant, when the same message id came from several"});
    let answer = |description: &str, name: &str| json!({"description": description, "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}});
    let error = |description: &str| answer(description, "Error");
    // What every authenticated operation may answer besides its own.
    let common = |mut responses: Value, store: bool| {
        responses["401"] =
            error("UNAUTHENTICATED: no valid bearer token (with `WWW-Authenticate: Bearer`)");
        responses["400"] = error(
            "BAD_REQUEST: a parameter that does not parse (a message id, a participant, a number), with what was wrong",
        );
        if store {
            responses["503"] = error(
                "STORE_UNAVAILABLE or DISK_FULL: the spoke cannot use its store now; it recovers by itself; retry after Retry-After seconds",
            );
            responses["500"] = error(
                "STORE_CORRUPT or STORE_FAILURE: a stored record fails its checks; the spoke's operator restores from a backup",
            );
        }
        responses
    };
    let sent = json!({
        "202": answer("queued", "Sent"),
        "200": answer("accepted by the hub (with wait)", "Sent"),
    });
    let mut send_responses = common(sent.clone(), true);
    send_responses["422"] = error(
        "refused, nothing queued: the problems, each with field, rule and message. INVALID_DOCUMENT: not a supported document, or lacking a field its type needs; CONTENT_CHECK_FAILED: a content check FAILs (each problem's field is content_check.<check>, its rule the check's rule); or a refusal code of the hub's",
    );
    send_responses["413"] = error("PAYLOAD_TOO_LARGE: larger than max_payload_bytes");
    send_responses["408"] = error(
        "BODY_TIMEOUT: the body came slower than the minimum rate after the grace period, or stopped for the idle timeout; nothing was queued and the connection is closed",
    );
    send_responses["503"] = error(
        "NO_ROOM_TO_SEND: no room among payload_in_flight_mib within room_wait_secs; STORE_UNAVAILABLE or DISK_FULL: the store cannot be used now; retry after Retry-After seconds",
    );
    let mut answer_responses = common(sent, true);
    answer_responses["404"] = error("UNKNOWN_MESSAGE: no such document in the inbox");
    answer_responses["409"] = error("AMBIGUOUS_MESSAGE: the id came from several senders");
    answer_responses["422"] = error(
        "INVALID_DOCUMENT: the document failed verification, there is nothing to answer; or a refusal code of the hub's",
    );
    let found = |ok: Value| {
        let mut r = common(json!({"200": ok}), true);
        r["404"] = error("UNKNOWN_MESSAGE: no such message");
        r["409"] =
            error("AMBIGUOUS_MESSAGE: the id came from several senders; name one with `sender`");
        r
    };
    let mut status_responses = common(
        json!({"200": answer("state, transitions, acknowledgement, responses", "Status")}),
        true,
    );
    status_responses["404"] = error("UNKNOWN_MESSAGE: no document sent under this id");
    let status_op = json!({"get": {"summary": "State and history of a document sent", "parameters": [id.clone()], "responses": status_responses}});
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Caravan spoke: national single window API",
            "version": "1",
            "description": "Submit trade documents (e-CO, e-Phyto, e-invoice) to other countries through the Caravan hub, follow them, and receive, verify and answer documents from other countries. Every operation needs `Authorization: Bearer <token>` except this document itself (`/api/v1/openapi.json`), which is public. Every error answers in one shape, `Error`."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string", "pattern": "^[A-Z][A-Z0-9_]*$"}, "message": {"type": "string"}}},
                    "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}}
                }},
                "Problem": {"type": "object", "required": ["field", "rule", "message"], "properties": {"field": {"type": "string"}, "rule": {"type": "string"}, "message": {"type": "string"}}},
                "Receipt": {"type": "object", "required": ["hub_sequence", "accepted_at", "key_id"], "description": "the hub's receipt, in one of two forms: `log_proof` (protocol v2) or `signed` (v1)", "properties": {
                    "hub_sequence": {"type": "integer", "minimum": 1}, "accepted_at": {"type": "string", "format": "date-time"},
                    "key_id": {"type": "string"}, "signed": {"type": "string", "contentEncoding": "base64", "description": "the hub's SignedReceipt (protobuf), from a hub of protocol v1"},
                    "log_proof": {"type": "string", "contentEncoding": "base64", "description": "the LogProof (protobuf) of the document's ACCEPTED entry under a tree head the hub signed: its receipt under protocol v2"}
                }, "oneOf": [{"required": ["signed"]}, {"required": ["log_proof"]}]},
                "State": {"type": "string", "enum": ["QUEUED", "REFUSED", "ACCEPTED", "DELIVERED", "ACKNOWLEDGED", "REJECTED", "EXPIRED"]},
                "Sent": {"type": "object", "required": ["message_id", "document_id", "state"], "properties": {
                    "message_id": {"type": "string", "format": "uuid"}, "document_id": {"type": "string"},
                    "state": {"$ref": "#/components/schemas/State"},
                    "receipt": {"oneOf": [{"$ref": "#/components/schemas/Receipt"}, {"type": "null"}]},
                    "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}, "description": "the content checks the sending spoke ran before signing (absent for a document it cannot read); a WARN is reported here and the document sent"}
                }},
                "Status": {"type": "object", "required": ["message_id", "state", "transitions", "responses", "sent"], "properties": {
                    "message_id": {"type": "string", "format": "uuid"},
                    "state": {"$ref": "#/components/schemas/State"},
                    "transitions": {"type": "array", "items": {"type": "object", "required": ["state", "at"], "properties": {"state": {"$ref": "#/components/schemas/State"}, "at": {"type": "string", "format": "date-time"}}}},
                    "acknowledgement": {"oneOf": [{"type": "null"}, {"type": "object", "required": ["verified", "signed"], "description": "the recipient's signed acknowledgement as this spoke checked it: `ack` (outcome `accepted`, or `rejected` with `code` (Caravan's refusal code or the recipient's namespaced business code `namespace:CODE`) and `reason`) when it verified, `problem` when not", "properties": {
                        "verified": {"type": "boolean"}, "ack": {"type": ["object", "null"]}, "problem": {"type": ["string", "null"]}, "signed": {"type": "string", "contentEncoding": "base64"}
                    }}]},
                    "responses": {"type": "array", "items": {"type": "object", "required": ["message_id", "decision", "received_at"], "properties": {"message_id": {"type": "string", "format": "uuid"}, "decision": {"type": "string", "enum": ["accepted", "rejected"]}, "reason": {"type": ["string", "null"]}, "received_at": {"type": "string", "format": "date-time"}}}},
                    "sent": {"type": "object", "description": "the local record: attempts, last error, refusal"}
                }},
                "Verification": {"type": "object", "required": ["status"], "properties": {
                    "status": {"type": "string", "enum": ["verified", "rejected"]},
                    "notes": {"type": "array", "items": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}}},
                    "code": {"type": "string", "description": "rejected: the refusal code"}, "reason": {"type": "string"}
                }},
                "Summary": {"type": ["object", "null"], "properties": {"document_number": {"type": ["string", "null"]}, "issue_date": {"type": ["string", "null"]}}},
                "InboxItem": {"type": "object", "required": ["cursor", "message_id", "sender", "verified", "verification", "received_at", "payload_length"], "properties": {
                    "cursor": {"type": "integer"}, "message_id": {"type": "string", "format": "uuid"}, "sender": {"type": "string"},
                    "document_type": {"type": ["string", "null"]}, "document_id": {"type": ["string", "null"]},
                    "verified": {"type": "boolean"}, "verification": {"$ref": "#/components/schemas/Verification"},
                    "received_at": {"type": "string", "format": "date-time"},
                    "accepted_at": {"type": ["string", "null"], "format": "date-time"},
                    "payload_length": {"type": "integer", "minimum": 0},
                    "supersedes": {"type": ["string", "null"]}, "in_reply_to": {"type": ["string", "null"]},
                    "summary": {"$ref": "#/components/schemas/Summary"},
                    "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}, "description": "content checks of a verified, understood document (absent otherwise)"},
                    "verdict": {"$ref": "#/components/schemas/Verdict"},
                    "replaced_by": {"type": "string", "description": "message id of the document that replaced this one"}
                }},
                "InboxDetail": {"type": "object", "required": ["message_id", "sender", "verification", "received_at", "payload_length", "evidence", "fields"], "properties": {
                    "message_id": {"type": "string", "format": "uuid"}, "sender": {"type": "string"},
                    "document_type": {"type": ["string", "null"]}, "document_id": {"type": ["string", "null"]},
                    "verification": {"$ref": "#/components/schemas/Verification"},
                    "received_at": {"type": "string", "format": "date-time"},
                    "payload_length": {"type": "integer", "minimum": 0},
                    "summary": {"$ref": "#/components/schemas/Summary"},
                    "evidence": {"type": "object", "description": "the signed header, its signature and the hub's signed receipt, base64"},
                    "fields": {"type": "array", "description": "what the document says, read only when it verified", "items": {"type": "object", "required": ["label", "value"], "properties": {"label": {"type": "string"}, "value": {"type": "string"}, "language": {"type": "string"}}}},
                    "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}},
                    "verdict": {"$ref": "#/components/schemas/Verdict"}
                }},
                "Check": {"type": "object", "required": ["check", "outcome", "rule", "message_key"], "properties": {
                    "check": {"type": "string", "enum": ["issuer", "header", "dates", "duplicate", "replaced"]},
                    "outcome": {"type": "string", "enum": ["PASS", "WARN", "FAIL"]},
                    "rule": {"type": "string", "description": "stable rule name, e.g. ISSUER_COUNTRY_MISMATCH, DOCUMENT_ID_MISMATCH, ISSUE_DATE_OLD, DUPLICATE_NUMBER, REPLACED"},
                    "message_key": {"type": "string", "description": "translatable message key: content_check.<rule in lowercase>"},
                    "params": {"type": "object", "additionalProperties": {"type": "string"}}
                }},
                "Verdict": {"type": "object", "required": ["status"], "description": "genuine and consistent only when the signature verified and every content check passed; the signature verdict itself is `verification`", "properties": {
                    "status": {"type": "string", "enum": ["GENUINE_AND_CONSISTENT", "GENUINE_WITH_WARNINGS", "GENUINE_BUT_INCONSISTENT"]},
                    "headline": {"$ref": "#/components/schemas/Check"}
                }},
                "Evidence": {"type": "object", "required": ["format", "envelope", "trust_list"], "description": "everything `caravan-spoke verify` needs offline: the envelope, the hub's receipt (`receipt`, a SignedReceipt, in format caravan-evidence/1; `accepted_proof`, a LogProof, in caravan-evidence/2), the acknowledgement and the anchor-signed trust list, base64", "properties": {
                    "format": {"type": "string", "enum": ["caravan-evidence/1", "caravan-evidence/2"]}, "envelope": {"type": "string"}, "receipt": {"type": "string"}, "accepted_proof": {"type": "string"},
                    "acknowledgement": {"type": ["string", "null"]}, "trust_list": {"type": "string"}
                }},
                "TrustList": {"type": "object", "description": "the anchor-signed trust list this spoke holds (participants, keys, corridors), its version and freshness"},
                "Health": {"type": "object", "required": ["participant", "hub_connected"], "properties": {"participant": {"type": "string"}, "hub_connected": {"type": "boolean"}}},
                "Log": {"type": "object", "required": ["alarms_total", "alarms"], "properties": {
                    "last_verified_head": {"type": ["object", "null"]}, "alarms_total": {"type": "integer"}, "alarms": {"type": "array", "items": {"type": "object"}}
                }}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/openapi.json": {"get": {"summary": "This document", "security": [], "responses": {"200": {"description": "the OpenAPI document", "content": {"application/json": {"schema": {"type": "object"}}}}}}},
            "/api/v1/documents": {"post": {
                "summary": "Sign and queue a document for another country",
                "parameters": [
                    {"name": "to", "in": "query", "required": true, "schema": {"type": "string"}, "description": "recipient, ISO 3166-1 alpha-2"},
                    {"name": "type", "in": "query", "required": true, "schema": {"type": "string", "enum": ["e-co", "e-phyto", "e-invoice"]}},
                    {"name": "document_id", "in": "query", "schema": {"type": "string"}, "description": "document number; read from the document when absent"},
                    {"name": "supersedes", "in": "query", "schema": {"type": "string", "format": "uuid"}},
                    {"name": "in_reply_to", "in": "query", "schema": {"type": "string", "format": "uuid"}},
                    {"name": "wait", "in": "query", "schema": {"type": "integer", "minimum": 0, "maximum": 600}, "description": "seconds to wait for the hub's receipt"}
                ],
                "requestBody": {"required": true, "description": "the document's bytes, as signed; any media type (the document is recognised by its content)", "content": {"application/xml": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object", "description": "a JSON e-CO: an object with a certificateOfOrigin object"}}, "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}},
                "responses": send_responses
            }},
            "/api/v1/documents/{id}": status_op.clone(),
            "/api/v1/sent/{id}/status": status_op,
            "/api/v1/inbox": {"get": {"summary": "Documents received, in arrival order", "parameters": [{"name": "since", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "only after this cursor"}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}, "description": "at most this many (default and most 1000): page on with since = the last cursor received"}], "responses": common(json!({"200": {"description": "items", "content": {"application/json": {"schema": {"type": "array", "items": {"$ref": "#/components/schemas/InboxItem"}}}}}}), true)}},
            "/api/v1/inbox/{id}": {"get": {"summary": "A received document: fields, summary, verification, evidence", "parameters": [id.clone(), sender.clone()], "responses": found(answer("the inbox record", "InboxDetail"))}},
            "/api/v1/inbox/{id}/payload": {"get": {"summary": "The document's bytes as received", "parameters": [id.clone(), sender.clone()], "responses": found(json!({"description": "the document, with the content type its header declares", "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}))}},
            "/api/v1/inbox/{id}/answer": {"post": {"summary": "Answer a received document (accepted or rejected, with a reason)", "parameters": [id.clone()], "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["decision"], "properties": {"decision": {"type": "string", "enum": ["accepted", "rejected"]}, "reason": {"type": "string"}, "wait": {"type": "integer"}}}}}}, "responses": answer_responses}},
            "/api/v1/inbox/{id}/evidence": {"get": {"summary": "An evidence bundle for offline verification", "parameters": [id, sender], "responses": found(answer("the bundle", "Evidence"))}},
            "/api/v1/trust-list": {"get": {"summary": "The trust list held and its freshness", "responses": {
                "200": answer("the list", "TrustList"),
                "401": error("UNAUTHENTICATED: no valid bearer token"),
                "503": error("NO_TRUST_LIST: the hub has not been reached yet; retry after Retry-After seconds")
            }}},
            "/api/v1/log": {"get": {"summary": "The exchange log as this spoke audits it: the last verified tree head and the alarms", "responses": common(json!({"200": answer("the audit", "Log")}), true)}},
            "/api/v1/health": {"get": {"summary": "Participant and hub connection", "responses": {"200": answer("health", "Health"), "401": error("UNAUTHENTICATED: no valid bearer token")}}}
        }
    })
}
