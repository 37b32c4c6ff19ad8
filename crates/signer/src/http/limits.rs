//! Router-level limits: JSON for every error response, `413` from a declared `Content-Length` before the
//! body is read (so `Expect: 100-continue` never gets `100 Continue` for a body that will be refused), and
//! the concurrency limit of the sign route.
//!
//! The sign route admits at most `--max-concurrent-sign-requests` requests at once, from the end of the
//! request head to the response (the body upload included, itself bounded by the body read timeout).
//! A request beyond that gets `503` with `Retry-After: 1` at once: no queue, so a request is never signed
//! after its client gave up waiting in one, and latency under overload stays that of the admitted
//! requests. A batch (`POST /api/v1/eth2/sign`) is admitted with one permit like any sign request and,
//! once its identifiers are counted, takes one more per identifier (up to every permit), or gets the same
//! `503` at once: a batch of N keys weighs as N single requests and cannot be used to exceed the limit.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error;

/// Largest error body [`json_errors`] reads to build its message.
const MAX_ERROR_BODY: usize = 64 << 10;

/// Turns an error response (4xx or 5xx) that is not JSON into `{"error": <its text>}` with the same
/// status and headers; other responses pass unchanged.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(response.headers()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_ERROR_BODY)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    let mut json = error(status, message);
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            json.headers_mut().append(name, value.clone());
        }
    }
    json
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// The `Content-Length` a request declares, if any.
pub(super) fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

/// `413` for a request whose declared `Content-Length` exceeds `limit`, before its body is read.
pub(super) async fn refuse_declared_over(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    match declared_length(request.headers()) {
        Some(n) if n > limit as u64 => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body exceeds the limit of {limit} bytes"),
        ),
        _ => next.run(request).await,
    }
}

/// The admission of sign requests: at most `max_concurrent` at once; the refused are counted in `shed`.
#[derive(Clone)]
pub(super) struct SignAdmission {
    permits: Arc<Semaphore>,
    total: usize,
    shed: Counter,
}

impl SignAdmission {
    pub(super) fn new(max_concurrent: usize, shed: Counter) -> Self {
        let total = max_concurrent.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(total)),
            total,
            shed,
        }
    }

    /// The permits a batch of `identifiers` holds beyond the one [`admit_sign`] gave its request:
    /// a batch counts as one sign request per identifier, up to every permit there is (so a batch
    /// larger than the limit runs alone). `Err` is the `503` (with `Retry-After`) to answer at once
    /// when they are not free ([`Shed`]); the refusal is counted as shed.
    pub(super) fn admit_more(
        &self,
        identifiers: usize,
    ) -> Result<Option<OwnedSemaphorePermit>, Shed> {
        let more = identifiers.min(self.total).saturating_sub(1);
        if more == 0 {
            return Ok(None);
        }
        let more = u32::try_from(more).unwrap_or(u32::MAX);
        match self.permits.clone().try_acquire_many_owned(more) {
            Ok(permit) => Ok(Some(permit)),
            Err(_) => {
                self.shed.inc();
                Err(Shed)
            }
        }
    }
}

/// A batch refused by the concurrency limit; its response is `503` with `Retry-After: 1`.
pub(super) struct Shed;

impl IntoResponse for Shed {
    fn into_response(self) -> Response {
        busy("too many sign requests in flight for a batch of this size; retry later")
    }
}

/// `503` with `Retry-After: 1`.
fn busy(message: &str) -> Response {
    let mut busy = error(StatusCode::SERVICE_UNAVAILABLE, message);
    busy.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    busy
}

/// Runs the request with a permit of `admission`, or answers `503` with `Retry-After` when none is free.
pub(super) async fn admit_sign(
    State(admission): State<SignAdmission>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(permit) = admission.permits.try_acquire() else {
        admission.shed.inc();
        return busy("too many sign requests in flight; retry later");
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::response::IntoResponse;

    async fn body_json(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn error_responses_become_json() {
        let plain = (
            StatusCode::BAD_REQUEST,
            [(header::RETRY_AFTER, "3")],
            "Invalid URL",
        )
            .into_response();
        let json = json_errors(plain).await;
        assert_eq!(json.status(), StatusCode::BAD_REQUEST);
        assert_eq!(json.headers()[header::RETRY_AFTER], "3");
        assert!(is_json(json.headers()));
        assert_eq!(body_json(json).await["error"], "Invalid URL");

        let empty = Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::empty())
            .unwrap();
        assert_eq!(
            body_json(json_errors(empty).await).await["error"],
            "Not Found"
        );

        let ok = (StatusCode::OK, "0xabc").into_response();
        let ok = json_errors(ok).await;
        assert!(!is_json(ok.headers()));

        let already = error(StatusCode::CONFLICT, "x");
        assert_eq!(body_json(json_errors(already).await).await["error"], "x");
    }
}
