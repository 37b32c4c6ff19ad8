//! HTTP: the signing API router and the metrics router, and how they are served.
//!
//! Every error is a JSON body `{"error": "..."}` with the right status; nothing a client sends yields a 500.
//! Handlers build their errors with [`error`]; [`json_errors`] turns any other error response (axum's
//! extractor rejections are `text/plain`) into JSON, and [`server`] does the same for the errors hyper
//! writes itself. [`host_allowlist`] puts each listener behind its `Host` allow-list.

mod batch;
mod body;
mod eth2;
mod health;
pub mod host_allowlist;
pub mod keymanager;
mod limits;
pub mod server;
pub mod tls;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

pub use self::batch::BatchSigning;
pub use self::body::BodyLimits;
pub use self::limits::json_errors;
pub use self::server::{ServerLimits, serve};
use crate::keys::{KeyError, KeyView, Keyring};
use crate::signing::Signer;

/// State shared by every handler.
#[derive(Clone)]
pub struct AppState {
    /// The signing service.
    pub signer: Arc<Signer>,
}

/// The signing API (eth2 signing, public keys, health, reload) plus the Keymanager API when `keymanager`
/// is given. Bodies are limited to `limits.max_body_bytes`, except on the sign route, which reads
/// execution payload envelopes up to `limits.max_large_body_bytes` within a memory budget
/// ([`BodyLimits`]). At most `max_concurrent_signs` sign requests are handled at once; more get 503 with
/// `Retry-After` at once. Batch signing (`POST /api/v1/eth2/sign`) is served as `batch` says, a batch
/// counting one sign request per identifier.
pub fn router(
    state: AppState,
    keys: Arc<Keyring>,
    keymanager: Option<keymanager::KeymanagerState>,
    limits: BodyLimits,
    max_concurrent_signs: usize,
    batch: BatchSigning,
) -> Router {
    let admission = limits::SignAdmission::new(
        max_concurrent_signs,
        state.signer.metrics().sign_requests_shed.clone(),
    );
    let mut router = Router::new()
        .merge(eth2::routes(limits, admission.clone()))
        .merge(batch::routes(batch, admission))
        .merge(health::routes())
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .with_state(state)
        .merge(keymanager::reload_routes(keys));
    if let Some(km) = keymanager {
        router = router.merge(keymanager::routes(km));
    }
    router
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .method_not_allowed_fallback(|| async {
            error(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route",
            )
        })
        .layer(axum::middleware::map_response(json_errors))
}

/// The metrics listener's router: `GET /metrics`.
pub fn metrics_router(signer: Arc<Signer>) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(move || {
                let signer = signer.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        signer.metrics().encode(),
                    )
                }
            }),
        )
        .fallback(|| async { error(StatusCode::NOT_FOUND, "no such route") })
        .layer(axum::middleware::map_response(json_errors))
}

/// A JSON error response `{"error": message}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

/// 503 with how far key loading has come while start-up loading runs, so that no answer is silently
/// partial; `None` once every key is loaded.
pub(crate) fn while_loading(keys: &KeyView) -> Option<Response> {
    if keys.loaded() {
        return None;
    }
    let state = keys.load_state();
    Some(key_error(&KeyError::Loading {
        done: state.done,
        total: state.total,
    }))
}

/// The response for a failed key operation.
pub(crate) fn key_error(e: &KeyError) -> Response {
    let status = match e {
        KeyError::BadRequest(_) | KeyError::Interchange(_) | KeyError::ReadOnly => {
            StatusCode::BAD_REQUEST
        }
        KeyError::Loading { .. } | KeyError::Database(_) | KeyError::Io { .. } => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        KeyError::Task(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if status.is_server_error() {
        tracing::warn!("key operation failed: {e}");
    }
    error(status, e.to_string())
}

/// Whether the client's `Accept` header takes JSON: any entry `application/json` or `*/*`.
pub fn accepts_json(headers: &HeaderMap) -> bool {
    media_types(headers).any(|m| m == "application/json" || m == "*/*")
}

/// Whether the client's `Accept` header lists JSON and nothing that takes plain text.
pub fn accepts_only_json(headers: &HeaderMap) -> bool {
    let mut json = false;
    for m in media_types(headers) {
        match m.as_str() {
            "application/json" => json = true,
            "text/plain" | "text/*" | "*/*" => return false,
            _ => {}
        }
    }
    json
}

fn media_types(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|item| {
            item.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
}

/// `text/plain; charset=utf-8`.
pub(crate) const TEXT_PLAIN: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn accept_negotiation() {
        assert!(accepts_json(&accept("application/json")));
        assert!(accepts_json(&accept("text/plain, */*;q=0.1")));
        assert!(accepts_json(&accept("Application/JSON; charset=utf-8")));
        assert!(!accepts_json(&accept("text/plain")));
        assert!(!accepts_json(&HeaderMap::new()));
        assert!(accepts_only_json(&accept("application/json")));
        assert!(!accepts_only_json(&accept("application/json, text/plain")));
        assert!(!accepts_only_json(&HeaderMap::new()));
    }
}
