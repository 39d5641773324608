//! The national single window's REST API (owned here): HTTP/JSON on the spoke, under
//! `/api/v1`, and its OpenAPI document.
//!
//! The same operations as the local control API (submit, status, inbox since a cursor, payload,
//! answer, evidence, trust list), authenticated with bearer tokens. The config stores only the
//! SHA-256 of each token, and a presented token is compared with every stored hash in constant
//! time. Every request is logged with the caller's name, never with its body. The OpenAPI
//! document at `/api/v1/openapi.json` describes the API and needs no token.

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

/// The OpenAPI 3.1 description of the API.
pub fn openapi_document() -> serde_json::Value {
    let id = serde_json::json!({"name": "id", "in": "path", "required": true, "schema": {"type": "string", "format": "uuid"}, "description": "message id (UUIDv7)"});
    let error = serde_json::json!({"$ref": "#/components/schemas/Error"});
    let json = |schema: serde_json::Value| serde_json::json!({"content": {"application/json": {"schema": schema}}});
    serde_json::json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Caravan spoke: national single window API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Submit trade documents (e-CO, e-Phyto, e-invoice) to other countries through the Caravan hub, follow them, and receive, verify and answer documents from other countries. Every operation needs `Authorization: Bearer <token>`."
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {
                    "error": {"type": "object", "required": ["code", "message"], "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
                    "problems": {"type": "array", "items": {"$ref": "#/components/schemas/Problem"}}
                }},
                "Problem": {"type": "object", "required": ["field", "rule", "message"], "properties": {"field": {"type": "string"}, "rule": {"type": "string"}, "message": {"type": "string"}}},
                "Sent": {"type": "object", "required": ["message_id", "document_id", "state"], "properties": {
                    "message_id": {"type": "string"}, "document_id": {"type": "string"},
                    "state": {"type": "string", "enum": ["QUEUED", "REFUSED", "ACCEPTED", "DELIVERED", "ACKNOWLEDGED", "REJECTED", "EXPIRED"]},
                    "receipt": {"type": ["object", "null"]},
                    "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}, "description": "the content checks the sending spoke ran before signing (absent for a document it cannot read); a WARN is reported here and the document sent"}
                }},
                "InboxItem": {"type": "object", "required": ["cursor", "message_id", "sender", "verified", "verification", "received_at"], "properties": {
                    "cursor": {"type": "integer"}, "message_id": {"type": "string"}, "sender": {"type": "string"},
                    "document_type": {"type": ["string", "null"]}, "document_id": {"type": ["string", "null"]},
                    "verified": {"type": "boolean"}, "verification": {"type": "object"},
                    "received_at": {"type": "string", "format": "date-time"},
                    "summary": {"type": ["object", "null"], "properties": {"document_number": {"type": ["string", "null"]}, "issue_date": {"type": ["string", "null"], "format": "date"}}},
                    "checks": {"type": "array", "items": {"$ref": "#/components/schemas/Check"}, "description": "content checks of a verified, understood document (absent otherwise)"},
                    "verdict": {"$ref": "#/components/schemas/Verdict"},
                    "replaced_by": {"type": "string", "description": "message id of the document that replaced this one"}
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
                }}
            }
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/v1/documents": {"post": {
                "summary": "Sign and queue a document for another country",
                "parameters": [
                    {"name": "to", "in": "query", "required": true, "schema": {"type": "string"}, "description": "recipient, ISO 3166-1 alpha-2"},
                    {"name": "type", "in": "query", "required": true, "schema": {"type": "string", "enum": ["e-co", "e-phyto", "e-invoice"]}},
                    {"name": "document_id", "in": "query", "schema": {"type": "string"}, "description": "document number; read from the document when absent"},
                    {"name": "supersedes", "in": "query", "schema": {"type": "string"}},
                    {"name": "in_reply_to", "in": "query", "schema": {"type": "string"}},
                    {"name": "wait", "in": "query", "schema": {"type": "integer"}, "description": "seconds to wait for the hub's receipt"}
                ],
                "requestBody": {"required": true, "content": {"application/xml": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object", "description": "a JSON e-CO: an object with a certificateOfOrigin object"}}}},
                "responses": {
                    "202": {"description": "queued", "content": json(serde_json::json!({"$ref": "#/components/schemas/Sent"}))["content"]},
                    "200": {"description": "accepted by the hub (with wait)", "content": json(serde_json::json!({"$ref": "#/components/schemas/Sent"}))["content"]},
                    "422": {"description": "refused: the problems, each with field, rule and message; nothing was queued. CONTENT_CHECK_FAILED: a content check FAILs (each problem's field is content_check.<check>, its rule the check's rule)", "content": json(error.clone())["content"]},
                    "413": {"description": "larger than max_payload_bytes", "content": json(error.clone())["content"]},
                    "408": {"description": "BODY_TIMEOUT: the body came slower than the minimum rate after the grace period, or stopped for the idle timeout; nothing was queued and the connection is closed", "content": json(error.clone())["content"]},
                    "503": {"description": "NO_ROOM_TO_SEND: no room among payload_in_flight_mib within room_wait_secs (or the spoke's store is unavailable); retry after Retry-After seconds", "headers": {"Retry-After": {"schema": {"type": "integer"}}}, "content": json(error.clone())["content"]}
                }
            }},
            "/api/v1/documents/{id}": {"get": {"summary": "State and history of a document sent", "parameters": [id.clone()], "responses": {"200": {"description": "status, transitions, acknowledgement, responses"}, "404": {"description": "unknown", "content": json(error.clone())["content"]}}}},
            "/api/v1/inbox": {"get": {"summary": "Documents received, in arrival order", "parameters": [{"name": "since", "in": "query", "schema": {"type": "integer"}, "description": "only after this cursor"}, {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000}, "description": "at most this many (default and most 1000): page on with since = the last cursor received"}], "responses": {"200": {"description": "items", "content": json(serde_json::json!({"type": "array", "items": {"$ref": "#/components/schemas/InboxItem"}}))["content"]}}}},
            "/api/v1/inbox/{id}": {"get": {"summary": "A received document: fields, summary, verification, evidence", "parameters": [id.clone()], "responses": {"200": {"description": "the inbox record"}, "404": {"description": "unknown", "content": json(error.clone())["content"]}}}},
            "/api/v1/inbox/{id}/payload": {"get": {"summary": "The document's bytes as received", "parameters": [id.clone()], "responses": {"200": {"description": "the document", "content": {"application/octet-stream": {}}}, "500": {"description": "STORE_CORRUPT: the stored payload fails its checksum and is not served", "content": json(error.clone())["content"]}}}},
            "/api/v1/inbox/{id}/answer": {"post": {"summary": "Answer a received document (accepted or rejected, with a reason)", "parameters": [id.clone()], "requestBody": json(serde_json::json!({"type": "object", "required": ["decision"], "properties": {"decision": {"type": "string", "enum": ["accepted", "rejected"]}, "reason": {"type": "string"}, "wait": {"type": "integer"}}})), "responses": {"202": {"description": "queued"}, "200": {"description": "accepted by the hub"}}}},
            "/api/v1/inbox/{id}/evidence": {"get": {"summary": "An evidence bundle for offline verification", "parameters": [id], "responses": {"200": {"description": "the bundle"}}}},
            "/api/v1/trust-list": {"get": {"summary": "The trust list held and its freshness", "responses": {"200": {"description": "the list"}}}},
            "/api/v1/health": {"get": {"summary": "Participant and hub connection", "responses": {"200": {"description": "health"}}}}
        }
    })
}
