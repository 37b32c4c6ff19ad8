//! Sign-request bodies with a bounded memory budget.
//!
//! Ordinary bodies are limited to `--max-request-body-bytes` (1 MiB by default). A self-built
//! `EXECUTION_PAYLOAD_ENVELOPE` carries the whole execution payload, several MiB of JSON, so the
//! sign route reads bodies up to `--max-large-request-body-bytes` (32 MiB by default): each byte
//! beyond the ordinary limit is first reserved from one process-wide budget
//! (`--large-request-body-budget-bytes`, a semaphore of bytes, each body counted twice for the
//! body and its parsed copy). A body over the maximum gets 413 (as soon as its `Content-Length`
//! or its bytes show it); a large body that does not fit in the remaining budget gets 503 at
//! once, never a wait and never an unbounded allocation. The reservation is released when the
//! request completes.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures::StreamExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::error;

/// Body limits of the signing API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyLimits {
    /// Largest body of any request (and of sign requests of ordinary types).
    pub max_body_bytes: usize,
    /// Largest sign-request body for the types that may carry a large one.
    pub max_large_body_bytes: usize,
    /// Bytes of large bodies in flight at once (each counted twice its size).
    pub large_body_budget_bytes: usize,
}

impl BodyLimits {
    /// The limits given on the command line.
    pub fn from_args(args: &crate::config::RunArgs) -> Self {
        Self {
            max_body_bytes: args.max_request_body_bytes,
            max_large_body_bytes: args
                .max_large_request_body_bytes
                .max(args.max_request_body_bytes),
            large_body_budget_bytes: args.large_request_body_budget_bytes,
        }
    }
}

/// The shared budget for large bodies.
#[derive(Debug, Clone)]
pub(super) struct LargeBodies {
    limits: BodyLimits,
    budget: Arc<Semaphore>,
}

/// A body read from the wire, and the budget it holds (released on drop).
pub(super) struct ReadBody {
    /// The bytes.
    pub bytes: Bytes,
    /// Whether it exceeds the ordinary limit.
    pub large: bool,
    _reservation: Option<OwnedSemaphorePermit>,
}

impl LargeBodies {
    pub(super) fn new(limits: BodyLimits) -> Self {
        let permits = limits.large_body_budget_bytes.min(Semaphore::MAX_PERMITS);
        Self {
            limits,
            budget: Arc::new(Semaphore::new(permits)),
        }
    }

    /// Bytes of the budget currently free.
    #[cfg(test)]
    pub(super) fn available(&self) -> usize {
        self.budget.available_permits()
    }

    fn too_large(&self) -> Response {
        error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body exceeds the limit of {} bytes",
                self.limits.max_large_body_bytes
            ),
        )
    }

    fn busy() -> Response {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many large request bodies in flight; retry later",
        )
    }

    /// Grows `held` so that it covers a body of `len` bytes (twice `len`); `Err(true)` when the
    /// body is too large to reserve at all (413), `Err(false)` when the budget is spent (503).
    fn try_reserve(&self, held: &mut Option<OwnedSemaphorePermit>, len: usize) -> Result<(), bool> {
        let want = len.saturating_mul(2);
        let have = held.as_ref().map_or(0, |p| p.num_permits());
        if want <= have {
            return Ok(());
        }
        let more = u32::try_from(want - have).map_err(|_| true)?;
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(more)
            .map_err(|_| false)?;
        match held {
            Some(p) => p.merge(permit),
            None => *held = Some(permit),
        }
        Ok(())
    }

    #[allow(clippy::result_large_err)] // built once per refused request
    fn reserve(&self, held: &mut Option<OwnedSemaphorePermit>, len: usize) -> Result<(), Response> {
        self.try_reserve(held, len).map_err(|too_large| {
            if too_large {
                self.too_large()
            } else {
                Self::busy()
            }
        })
    }

    /// Reads `body`, enforcing the limits and the budget.
    pub(super) async fn read(&self, headers: &HeaderMap, body: Body) -> Result<ReadBody, Response> {
        let small = self.limits.max_body_bytes;
        let max = self.limits.max_large_body_bytes;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        let mut reservation = None;
        if let Some(n) = declared {
            if n > max {
                return Err(self.too_large());
            }
            if n > small {
                self.reserve(&mut reservation, n)?;
            }
        }
        let mut buf: Vec<u8> = Vec::with_capacity(declared.unwrap_or(0).min(max));
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                error(
                    StatusCode::BAD_REQUEST,
                    format!("reading the request body: {e}"),
                )
            })?;
            let len = buf.len() + chunk.len();
            if len > max {
                return Err(self.too_large());
            }
            if len > small {
                self.reserve(&mut reservation, len)?;
            }
            buf.extend_from_slice(&chunk);
        }
        let large = buf.len() > small;
        Ok(ReadBody {
            bytes: Bytes::from(buf),
            large,
            _reservation: reservation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> BodyLimits {
        BodyLimits {
            max_body_bytes: 10,
            max_large_body_bytes: 100,
            large_body_budget_bytes: 300,
        }
    }

    fn headers(len: Option<usize>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(len) = len {
            h.insert(header::CONTENT_LENGTH, len.to_string().parse().unwrap());
        }
        h
    }

    #[tokio::test]
    async fn small_large_too_large_and_budget() {
        let lb = LargeBodies::new(limits());
        let small = lb
            .read(&headers(Some(5)), Body::from(vec![1u8; 5]))
            .await
            .ok()
            .unwrap();
        assert!(!small.large);
        assert_eq!(lb.available(), 300);

        let a = lb
            .read(&headers(Some(100)), Body::from(vec![1u8; 100]))
            .await
            .ok()
            .unwrap();
        assert!(a.large);
        assert_eq!(lb.available(), 100);
        // A second 100-byte body needs 200 of the 100 left: 503, nothing allocated.
        let busy = lb
            .read(&headers(Some(100)), Body::from(vec![1u8; 100]))
            .await
            .err()
            .unwrap();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        // A body without Content-Length is charged as it arrives.
        let busy = lb
            .read(&headers(None), Body::from(vec![1u8; 60]))
            .await
            .err()
            .unwrap();
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        drop(a);
        assert_eq!(lb.available(), 300);
        let chunked = lb
            .read(&headers(None), Body::from(vec![1u8; 60]))
            .await
            .ok()
            .unwrap();
        assert!(chunked.large);
        drop(chunked);

        let over = lb
            .read(&headers(Some(101)), Body::from(vec![1u8; 101]))
            .await
            .err()
            .unwrap();
        assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let over = lb
            .read(&headers(None), Body::from(vec![1u8; 101]))
            .await
            .err()
            .unwrap();
        assert_eq!(over.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(lb.available(), 300);
    }
}
