//! `/api/v1/eth2/…`: signing, public keys, high watermark.

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::{AppState, TEXT_PLAIN, accepts_json, error, while_loading};
use crate::signing::SignError;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/eth2/sign/{pubkey}", post(sign))
        .route("/api/v1/eth2/publicKeys", get(public_keys))
        .route("/api/v1/eth2/highWatermark", get(high_watermark))
}

async fn sign(
    State(state): State<AppState>,
    Path(pubkey): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error(rejection.status(), rejection.body_text()),
    };
    match state.signer.sign(&pubkey, &body).await {
        Ok(signature) => {
            if accepts_json(&headers) {
                axum::Json(serde_json::json!({ "signature": signature.to_hex() })).into_response()
            } else {
                ([(header::CONTENT_TYPE, TEXT_PLAIN)], signature.to_hex()).into_response()
            }
        }
        Err(e) => {
            let status = match &e {
                SignError::BadRequest(_) => StatusCode::BAD_REQUEST,
                SignError::UnknownKey(_) => StatusCode::NOT_FOUND,
                SignError::Refused(_) => StatusCode::PRECONDITION_FAILED,
                SignError::NotReady | SignError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
                SignError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            if status.is_server_error() {
                tracing::error!(%pubkey, "signing failed: {e}");
            }
            error(status, e.to_string())
        }
    }
}

async fn public_keys(State(state): State<AppState>) -> Response {
    if let Some(loading) = while_loading(state.signer.keys()) {
        return loading;
    }
    let keys: Vec<String> = state
        .signer
        .keys()
        .list()
        .iter()
        .map(|k| k.public.to_hex())
        .collect();
    axum::Json(keys).into_response()
}

async fn high_watermark(State(state): State<AppState>) -> Response {
    let Some(db) = state.signer.slashing() else {
        return axum::Json(serde_json::json!({})).into_response();
    };
    match db.high_watermark().await {
        Ok(Some((epoch, slot))) => {
            axum::Json(serde_json::json!({ "epoch": epoch.to_string(), "slot": slot.to_string() }))
                .into_response()
        }
        Ok(None) => axum::Json(serde_json::json!({})).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}
