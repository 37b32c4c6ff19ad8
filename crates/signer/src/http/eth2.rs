//! `/api/v1/eth2/…`: signing, public keys, high watermark (batch signing is in `batch`).

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use super::body::{BodyLimits, LargeBodies};
use super::limits::{SignAdmission, admit_sign};
use super::{AppState, TEXT_PLAIN, accepts_json, error, while_loading};
use crate::signing::SignError;
use ferrosigner_slashing::rules::AttestationRecord;
use ferrosigner_slashing::{HighWatermark, Refusal};
use serde_json::{Value, json};

pub(super) fn routes(limits: BodyLimits, admission: SignAdmission) -> Router<AppState> {
    let large = LargeBodies::new(limits);
    Router::new()
        .route(
            "/api/v1/eth2/sign/{pubkey}",
            // The sign route reads its body itself, within `limits` and the large-body budget.
            post(move |state, path, headers, body| sign(state, path, headers, body, large.clone()))
                .layer(DefaultBodyLimit::disable())
                .layer(axum::middleware::from_fn_with_state(admission, admit_sign)),
        )
        .route("/api/v1/eth2/publicKeys", get(public_keys))
        .route("/api/v1/eth2/highWatermark", get(high_watermark))
}

async fn sign(
    State(state): State<AppState>,
    Path(pubkey): Path<String>,
    headers: HeaderMap,
    body: Body,
    large: LargeBodies,
) -> Response {
    let body = match large.read(&headers, body).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let result = if body.large {
        // The budget reservation lives as long as `body`, i.e. until the response is built.
        let bytes = body.bytes.clone();
        state.signer.sign_large(&pubkey, bytes).await
    } else {
        state.signer.sign(&pubkey, &body.bytes).await
    };
    drop(body);
    match result {
        Ok(signature) => {
            if accepts_json(&headers) {
                axum::Json(serde_json::json!({ "signature": signature.to_hex() })).into_response()
            } else {
                ([(header::CONTENT_TYPE, TEXT_PLAIN)], signature.to_hex()).into_response()
            }
        }
        Err(SignError::Refused(refusal)) => refused(&refusal),
        Err(e) => {
            let status = sign_error_status(&e);
            // Faults of the database are logged once by the signer's fault log, not per request.
            if let SignError::Internal(_) = e {
                tracing::error!(%pubkey, "signing failed: {e}");
            }
            let mut response = error(status, e.to_string());
            if let SignError::Unavailable(u) = &e
                && u.is_overload()
            {
                response.headers_mut().insert(
                    header::RETRY_AFTER,
                    axum::http::HeaderValue::from_static("1"),
                );
            }
            response
        }
    }
}

/// The status a sign request that failed with `e` answers (a batch element carries it as its code).
pub(super) fn sign_error_status(e: &SignError) -> StatusCode {
    match e {
        SignError::BadRequest(_) => StatusCode::BAD_REQUEST,
        SignError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
        SignError::UnknownKey(_) => StatusCode::NOT_FOUND,
        SignError::Refused(_) => StatusCode::PRECONDITION_FAILED,
        SignError::NotReady | SignError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        SignError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
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
    match state.signer.high_watermark().await {
        Ok(Some(hw)) => axum::Json(high_watermark_json(&hw)).into_response(),
        Ok(None) => axum::Json(json!({})).into_response(),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// The high watermark as Web3Signer shows it: decimal strings.
fn high_watermark_json(hw: &HighWatermark) -> Value {
    json!({ "epoch": hw.epoch.to_string(), "slot": hw.slot.to_string() })
}

fn root_json(root: &Option<[u8; 32]>) -> Value {
    root.map_or(Value::Null, |r| {
        Value::String(format!("0x{}", hex::encode(r)))
    })
}

/// The record or watermark a refusal names, as JSON (numbers as decimal strings, an unknown
/// signing root as `null`); `null` for refusals without one.
fn conflict_json(refusal: &Refusal) -> Value {
    let attestation = |a: &AttestationRecord| {
        json!({
            "kind": "attestation",
            "source_epoch": a.source.to_string(),
            "target_epoch": a.target.to_string(),
            "signing_root": root_json(&a.signing_root),
        })
    };
    match refusal {
        Refusal::DoubleBlockProposal { existing } => json!({
            "kind": "block",
            "slot": existing.slot.to_string(),
            "signing_root": root_json(&existing.signing_root),
        }),
        Refusal::DoubleVote { existing }
        | Refusal::SurroundingVote { existing }
        | Refusal::SurroundedVote { existing } => attestation(existing),
        Refusal::BlockSlotBelowWatermark { watermark } => {
            json!({ "kind": "low_watermark", "slot": watermark.to_string() })
        }
        Refusal::SourceBelowWatermark { watermark } => {
            json!({ "kind": "low_watermark", "source_epoch": watermark.to_string() })
        }
        Refusal::TargetBelowWatermark { watermark } => {
            json!({ "kind": "low_watermark", "target_epoch": watermark.to_string() })
        }
        Refusal::HighWatermark { watermark } => {
            let mut v = high_watermark_json(watermark);
            v["kind"] = json!("high_watermark");
            v
        }
        Refusal::SourceExceedsTarget
        | Refusal::WrongGenesisValidatorsRoot
        | Refusal::ValidatorDisabled => Value::Null,
    }
}

/// 412 with the message, the reason's label and the conflicting record or watermark.
fn refused(refusal: &Refusal) -> Response {
    (
        StatusCode::PRECONDITION_FAILED,
        axum::Json(json!({
            "error": SignError::Refused(*refusal).to_string(),
            "reason": refusal.reason().label(),
            "conflict": conflict_json(refusal),
        })),
    )
        .into_response()
}
