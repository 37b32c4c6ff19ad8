//! `/upcheck` and `/healthcheck`.
//!
//! `/healthcheck` follows Web3Signer's shape (`status`, `checks[]`, `outcome`; `keys-check` has a sub-check per
//! kind of key source, `config-files-loading` and `keystores-bulk-loading` as in Web3Signer, each DOWN when
//! some of its keys failed to load) and answers 503 with DOWN
//! (and the loading progress) until start-up key loading has finished and while the slashing database
//! cannot commit; the policy is [`crate::health`], this module only renders it. `/upcheck` answers 503
//! while keys load, so that a client waiting for it does not send duties into keys that are not there yet.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{AppState, TEXT_PLAIN, accepts_only_json, while_loading};
use crate::health::DatabaseHealth;
use crate::keys::SourceKind;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/upcheck", get(upcheck))
        .route("/healthcheck", get(healthcheck))
}

async fn upcheck(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(loading) = while_loading(state.signer.keys()) {
        return loading;
    }
    if accepts_only_json(&headers) {
        axum::Json(json!({ "status": "OK" })).into_response()
    } else {
        ([(header::CONTENT_TYPE, TEXT_PLAIN)], "OK").into_response()
    }
}

fn up(ok: bool) -> &'static str {
    if ok { "UP" } else { "DOWN" }
}

async fn healthcheck(State(state): State<AppState>) -> Response {
    let report = crate::health::check(&state.signer).await;
    let keys = &report.keys;
    let sources: Vec<serde_json::Value> = keys
        .sources
        .iter()
        .map(|source| {
            json!({
                "id": source_check_id(source.kind),
                "status": up(source.errors == 0),
                "data": { "keys-loaded": source.loaded, "error-count": source.errors },
            })
        })
        .collect();
    let keys_check = json!({
        "id": "keys-check",
        "status": up(keys.finished),
        "data": {
            "keys-loaded": keys.loaded,
            "error-count": keys.errors,
            "keys-from-cache": keys.from_cache,
            "loading": !keys.finished,
            "keystores-found": keys.found,
            "keystores-processed": keys.processed,
        },
        "checks": sources,
    });
    let db_check = match &report.database {
        DatabaseHealth::Disabled => {
            json!({ "id": DB_CHECK, "status": "UP", "data": { "enabled": false } })
        }
        DatabaseHealth::Up => json!({ "id": DB_CHECK, "status": "UP" }),
        DatabaseHealth::Down(error) => {
            json!({ "id": DB_CHECK, "status": "DOWN", "data": { "error": error } })
        }
    };
    let ok = report.up();
    let body = json!({
        "status": up(ok),
        "checks": [ { "id": "default-check", "status": "UP" }, keys_check, db_check ],
        "outcome": up(ok),
    });
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(body)).into_response()
}

const DB_CHECK: &str = "slashing-protection-db-health-check";

/// The sub-check of `keys-check` for one kind of source, named as Web3Signer names its own where it has one.
fn source_check_id(kind: SourceKind) -> &'static str {
    match kind {
        SourceKind::Managed => "imported-keystores-loading",
        SourceKind::External => "keystores-bulk-loading",
        SourceKind::KeyConfig => "config-files-loading",
        SourceKind::Vault => "hashicorp-bulk-loading",
    }
}
