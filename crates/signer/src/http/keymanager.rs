//! `/eth/v1/keystores` (Keymanager API) behind a bearer token, and `/reload`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use super::error;
use crate::keymanager::{KeyManager, KeymanagerError};

/// Largest Keymanager request body: room for hundreds of keystores in one import.
const MAX_KEYMANAGER_BODY: usize = 64 << 20;

/// State of the Keymanager routes.
#[derive(Clone)]
pub struct KeymanagerState {
    /// The key manager.
    pub manager: Arc<KeyManager>,
    /// The bearer token (compared in constant time).
    pub token: Arc<Zeroizing<String>>,
}

/// `/eth/v1/keystores`, every method requiring `Authorization: Bearer <token>`.
pub fn routes(state: KeymanagerState) -> Router {
    Router::new()
        .route("/eth/v1/keystores", get(list).post(import).delete(delete))
        .layer(DefaultBodyLimit::max(MAX_KEYMANAGER_BODY))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// `POST /reload` (202, or 409 while one runs) and `GET /reload` (status). Unauthenticated, as in Web3Signer.
pub fn reload_routes(manager: Arc<KeyManager>) -> Router {
    Router::new()
        .route("/reload", get(reload_status).post(reload))
        .with_state(manager)
}

/// 401 without a bearer token, 403 with a wrong one (Keymanager API spec), JSON bodies.
async fn require_token(
    State(state): State<KeymanagerState>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        None => error(
            StatusCode::UNAUTHORIZED,
            "missing bearer token: send `Authorization: Bearer <token>`",
        ),
        Some(token) if bool::from(token.as_bytes().ct_eq(state.token.as_bytes())) => {
            next.run(request).await
        }
        Some(_) => error(StatusCode::FORBIDDEN, "invalid bearer token"),
    }
}

async fn list(State(state): State<KeymanagerState>) -> Response {
    axum::Json(json!({ "data": state.manager.list() })).into_response()
}

/// Reads a JSON request body. The error names the position and the expected shape but never echoes the
/// body, which may hold passwords.
#[allow(
    clippy::result_large_err,
    reason = "the error is the response itself, returned at once"
)]
fn json_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
    shape: &str,
) -> Result<T, Response> {
    let body = body.map_err(|rejection| error(rejection.status(), rejection.body_text()))?;
    serde_json::from_slice(&body).map_err(|e| {
        error(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid request body at line {} column {}: expected {shape}",
                e.line(),
                e.column()
            ),
        )
    })
}

const IMPORT_SHAPE: &str =
    "{\"keystores\": [string], \"passwords\": [string], \"slashing_protection\"?: string}";
const DELETE_SHAPE: &str = "{\"pubkeys\": [string]}";

#[derive(Deserialize)]
struct ImportRequest {
    keystores: Vec<String>,
    passwords: Vec<String>,
    #[serde(default)]
    slashing_protection: Option<String>,
}

async fn import(
    State(state): State<KeymanagerState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: ImportRequest = match json_body(body, IMPORT_SHAPE) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let passwords = request.passwords.into_iter().map(Zeroizing::new).collect();
    match state
        .manager
        .import(request.keystores, passwords, request.slashing_protection)
        .await
    {
        Ok(statuses) => axum::Json(json!({ "data": statuses })).into_response(),
        Err(KeymanagerError::BadRequest(e)) => error(StatusCode::BAD_REQUEST, e),
        Err(e @ KeymanagerError::Database(_)) => {
            error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
        }
    }
}

#[derive(Deserialize)]
struct DeleteRequest {
    pubkeys: Vec<String>,
}

async fn delete(
    State(state): State<KeymanagerState>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let request: DeleteRequest = match json_body(body, DELETE_SHAPE) {
        Ok(r) => r,
        Err(response) => return response,
    };
    let (statuses, interchange) = state.manager.delete(&request.pubkeys).await;
    axum::Json(json!({ "data": statuses, "slashing_protection": interchange })).into_response()
}

async fn reload(State(manager): State<Arc<KeyManager>>) -> Response {
    if manager.start_reload() {
        (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "accepted", "message": "reload started" })),
        )
            .into_response()
    } else {
        error(StatusCode::CONFLICT, "a reload is already running")
    }
}

async fn reload_status(State(manager): State<Arc<KeyManager>>) -> Response {
    axum::Json(manager.reload_status()).into_response()
}
