//! `POST /api/v1/eth2/sign`: batch signing, a DRAFT of the remote signing API
//! (ethereum/remote-signing-api PR #29; docs/batch-signing.md), served only with
//! `--enable-batch-signing`.
//!
//! The handler parses the batch ([`BatchRequest::parse`]), takes one concurrency permit per identifier
//! (see `limits`), calls [`crate::signing::Signer::sign_batch`] and renders its answer: `200` with one
//! element per identifier in request order, `{"identifier", "signature"}` or `{"identifier", "error":
//! {"code", "message"}}` where `code` is the status the single request would have answered. A batch
//! refused as a whole gets the usual `{"error": …}` body with its status. Answers are JSON whatever
//! the `Accept` header says (the draft defines only JSON).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, post};
use serde_json::{Value, json};

use super::eth2::sign_error_status;
use super::limits::{SignAdmission, admit_sign};
use super::{AppState, error};
use crate::signing::{BatchItem, BatchRequest, SignError};

/// Whether batch signing is served and how large a batch may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchSigning {
    /// Serve the route (`--enable-batch-signing`); otherwise it answers 404.
    pub enabled: bool,
    /// Most identifiers one batch may name (`--max-batch-signing-identifiers`).
    pub max_identifiers: usize,
}

impl BatchSigning {
    /// The settings given on the command line.
    pub fn from_args(args: &crate::config::RunArgs) -> Self {
        Self {
            enabled: args.enable_batch_signing,
            max_identifiers: args.max_batch_signing_identifiers,
        }
    }
}

pub(super) fn routes(settings: BatchSigning, admission: SignAdmission) -> Router<AppState> {
    if !settings.enabled {
        return Router::new().route(
            "/api/v1/eth2/sign",
            any(|| async {
                error(
                    StatusCode::NOT_FOUND,
                    "batch signing is disabled (a draft of the remote signing API); start the signer \
                     with --enable-batch-signing to serve POST /api/v1/eth2/sign",
                )
            }),
        );
    }
    let more = admission.clone();
    Router::new().route(
        "/api/v1/eth2/sign",
        post(move |state, body| sign_batch(state, body, settings, more.clone()))
            .layer(axum::middleware::from_fn_with_state(admission, admit_sign)),
    )
}

async fn sign_batch(
    State(state): State<AppState>,
    body: Bytes,
    settings: BatchSigning,
    admission: SignAdmission,
) -> Response {
    let batch = match BatchRequest::parse(&body, settings.max_identifiers) {
        Ok(batch) => batch,
        Err(e) => {
            let metrics = state.signer.metrics();
            metrics.count_request("unknown", e.outcome());
            metrics.count_batch("unknown", e.outcome());
            return error(sign_error_status(&e), e.to_string());
        }
    };
    drop(body);
    let _permits = match admission.admit_more(batch.len()) {
        Ok(permits) => permits,
        Err(shed) => return shed.into_response(),
    };
    match state.signer.sign_batch(&batch).await {
        Ok(items) => {
            axum::Json(Value::Array(items.iter().map(item_json).collect())).into_response()
        }
        Err(e) => {
            if let SignError::Internal(_) = e {
                tracing::error!("batch signing failed: {e}");
            }
            error(sign_error_status(&e), e.to_string())
        }
    }
}

fn item_json(item: &BatchItem) -> Value {
    match &item.result {
        Ok(signature) => json!({
            "identifier": item.identifier,
            "signature": signature.to_hex(),
        }),
        Err(e) => {
            if let SignError::Internal(_) = e {
                tracing::error!(pubkey = %item.identifier, "signing a batch element failed: {e}");
            }
            json!({
                "identifier": item.identifier,
                "error": { "code": sign_error_status(e).as_u16(), "message": e.to_string() },
            })
        }
    }
}
