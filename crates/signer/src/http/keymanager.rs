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

use super::limits::refuse_declared_over;
use super::{error, key_error};
use crate::keys::Keyring;

/// Largest Keymanager request body: room for hundreds of keystores in one import.
const MAX_KEYMANAGER_BODY: usize = 64 << 20;

/// State of the Keymanager routes.
#[derive(Clone)]
pub struct KeymanagerState {
    /// The keys.
    pub keys: Arc<Keyring>,
    /// The bearer token (compared in constant time).
    pub token: Arc<Zeroizing<String>>,
}

/// `/eth/v1/keystores`, every method requiring `Authorization: Bearer <token>`.
pub fn routes(state: KeymanagerState) -> Router {
    Router::new()
        .route("/eth/v1/keystores", get(list).post(import).delete(delete))
        .layer(DefaultBodyLimit::max(MAX_KEYMANAGER_BODY))
        .route_layer(middleware::from_fn_with_state(
            MAX_KEYMANAGER_BODY,
            refuse_declared_over,
        ))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// `POST /reload` (202, or 409 while one runs) and `GET /reload` (status). Unauthenticated, as in Web3Signer.
pub fn reload_routes(keys: Arc<Keyring>) -> Router {
    Router::new()
        .route("/reload", get(reload_status).post(reload))
        .with_state(keys)
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
        .and_then(bearer_token);
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

/// The token of an `Authorization: Bearer <token>` value: the scheme is case-insensitive (RFC 9110
/// section 11.1) and separated from the token by any run of spaces and tabs; `None` for another scheme
/// or no token.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, rest) = value.split_once([' ', '\t'])?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = rest.trim_matches([' ', '\t']);
    (!token.is_empty()).then_some(token)
}

async fn list(State(state): State<KeymanagerState>) -> Response {
    match state.keys.list() {
        Ok(keys) => axum::Json(json!({ "data": keys })).into_response(),
        Err(e) => key_error(&e),
    }
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
        .keys
        .import(request.keystores, passwords, request.slashing_protection)
        .await
    {
        Ok(statuses) => axum::Json(json!({ "data": statuses })).into_response(),
        Err(e) => key_error(&e),
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
    match state.keys.delete(&request.pubkeys).await {
        Ok(outcome) => axum::Json(json!({
            "data": outcome.statuses,
            "slashing_protection": outcome.slashing_protection,
        }))
        .into_response(),
        Err(e) => key_error(&e),
    }
}

async fn reload(State(keys): State<Arc<Keyring>>) -> Response {
    match keys.start_reload() {
        Ok(true) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({ "status": "accepted", "message": "reload started" })),
        )
            .into_response(),
        Ok(false) => error(StatusCode::CONFLICT, "a reload is already running"),
        Err(e) => key_error(&e),
    }
}

async fn reload_status(State(keys): State<Arc<Keyring>>) -> Response {
    axum::Json(keys.reload_status()).into_response()
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_any_blank_run_separates() {
        for value in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "bEaReR abc",
            "Bearer\tabc",
            "Bearer  \t abc",
            "Bearer abc ",
        ] {
            assert_eq!(bearer_token(value), Some("abc"), "{value:?}");
        }
        for value in [
            "Bearer",
            "Bearer ",
            "Bearer \t",
            "Basic abc",
            "Bearerabc",
            "Token abc",
            "",
        ] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
