//! `/upcheck` and `/healthcheck`.
//!
//! `/healthcheck` follows Web3Signer's shape (`status`, `checks[]`, `outcome`) and answers 503 with DOWN
//! (and the loading progress) until start-up key loading has finished and while the slashing database does
//! not answer. `/upcheck` answers 503 while keys load, so that a client waiting for it does not send duties
//! into keys that are not there yet.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use super::{AppState, TEXT_PLAIN, accepts_only_json, while_loading};

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
    let signer = &state.signer;
    let load = signer.keys().load_state();
    let keys_ready = load.finished;
    let keys_check = json!({
        "id": "keys-check",
        "status": up(keys_ready),
        "data": {
            "keys-loaded": signer.keys().len(),
            "error-count": load.failures.len(),
            "keys-from-cache": load.from_cache,
            "loading": !keys_ready,
            "keystores-found": load.total,
            "keystores-processed": load.done,
        },
    });
    let (db_ok, db_check) = match signer.slashing() {
        None => (
            true,
            json!({ "id": "slashing-protection-db-health-check", "status": "UP", "data": { "enabled": false } }),
        ),
        Some(db) => {
            let result = tokio::time::timeout(std::time::Duration::from_secs(3), db.health()).await;
            let error = match result {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("timed out after 3 s".to_owned()),
            };
            let mut check = json!({ "id": "slashing-protection-db-health-check", "status": up(error.is_none()) });
            if let Some(e) = &error {
                check["data"] = json!({ "error": e });
            }
            (error.is_none(), check)
        }
    };
    let ok = keys_ready && db_ok;
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
