//! Prometheus metrics, all defined here, served as text on the metrics listener.
//!
//! Names follow Web3Signer's where one exists (`signing_…`, `eth2_slashingprotection_…`) so that existing
//! dashboards need little change; everything else is prefixed `ferrosigner_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

/// Labels of a signing request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The request `type` (e.g. `ATTESTATION`, `EXECUTION_PAYLOAD_ENVELOPE`; aliases are counted under the
    /// canonical name), or `unknown` when it could not be parsed.
    pub r#type: &'static str,
    /// `signed`, `bad_request`, `too_large`, `unknown_key`, `slashing_refused`, `unavailable` (a database
    /// fault), `overloaded` (a full queue behind the signer), `not_ready`, `internal`.
    pub outcome: &'static str,
}

/// Labels of a batch signing request (`POST /api/v1/eth2/sign`).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BatchLabels {
    /// The request `type` of the batch's signing request, or `unknown`.
    pub r#type: &'static str,
    /// `answered` (one result per identifier, each counted in `ferrosigner_sign_requests`), or the
    /// outcome that refused the whole batch (`bad_request`, `internal`, …).
    pub outcome: &'static str,
}

/// Labels of a refused signing.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// The refusal reason's stable label (`double_vote`, `high_watermark`, …; see
    /// `ferrosigner_slashing::RefusalReason::label`).
    pub reason: &'static str,
}

/// Labels of a timed operation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabels {
    /// The request type for signing durations; `block` or `attestation` for the slashing database.
    pub operation: &'static str,
}

/// Labels of a per-source key count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `managed` (imported through the Keymanager API), `keystores` (`--keystores-path`) or `key_config`
    /// (`--key-config-path`).
    pub source: &'static str,
}

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s
    Histogram::new(exponential_buckets(0.00005, 2.0, 16))
}

/// Every metric the signer exports.
pub struct Metrics {
    registry: Registry,
    /// Signing requests by type and outcome.
    pub requests: Family<RequestLabels, Counter>,
    /// Time from request body to response, by type (signed requests only).
    pub signing_duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    /// Time spent in the slashing database per check.
    pub slashing_db_duration: Family<OperationLabels, Histogram, fn() -> Histogram>,
    /// Slashing checks that allowed signing.
    pub slashing_permitted: Counter,
    /// Slashing checks that refused signing, by reason.
    pub slashing_prevented: Family<RefusalLabels, Counter>,
    /// Keys currently able to sign.
    pub keys_loaded: Gauge,
    /// Keys currently able to sign, by the kind of source they came from.
    pub keys_loaded_by_source: Family<SourceLabels, Gauge>,
    /// Keystores found by the current or last key loading.
    pub key_loading_total: Gauge,
    /// Keystores processed so far by the current or last key loading.
    pub key_loading_done: Gauge,
    /// Keystores that failed to load in the current or last key loading.
    pub key_loading_errors: Gauge,
    /// Rewrites of the key cache file (each one KDF run).
    pub key_cache_writes: Counter,
    /// Sign requests answered 503 at once by the concurrency limit (`--max-concurrent-sign-requests`),
    /// before their body was read.
    pub sign_requests_shed: Counter,
    /// Batch signing requests by type and outcome (their elements are counted in `requests`).
    pub batches: Family<BatchLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "ferrosigner_sign_requests",
            "Signing requests by type and outcome",
            requests.clone(),
        );
        let signing_duration =
            Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            );
        registry.register(
            "signing_bls_signing_duration_seconds",
            "Time to answer a successful signing request, by type",
            signing_duration.clone(),
        );
        let slashing_db_duration =
            Family::<OperationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                latency_histogram as fn() -> Histogram,
            );
        registry.register(
            "eth2_slashingprotection_database_duration_seconds",
            "Time spent in the slashing-protection database per check",
            slashing_db_duration.clone(),
        );
        let slashing_permitted = Counter::default();
        registry.register(
            "eth2_slashingprotection_permitted_signings",
            "Signings the slashing protection allowed",
            slashing_permitted.clone(),
        );
        let slashing_prevented = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "eth2_slashingprotection_prevented_signings",
            "Signings the slashing protection refused, by reason",
            slashing_prevented.clone(),
        );
        let keys_loaded = Gauge::default();
        registry.register(
            "signing_signers_loaded_count",
            "Keys able to sign",
            keys_loaded.clone(),
        );
        let keys_loaded_by_source = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "ferrosigner_keys_loaded",
            "Keys able to sign, by source: managed, keystores (--keystores-path), key_config (--key-config-path)",
            keys_loaded_by_source.clone(),
        );
        let key_loading_total = Gauge::default();
        registry.register(
            "ferrosigner_key_loading_keystores",
            "Keystores found by the last key loading",
            key_loading_total.clone(),
        );
        let key_loading_done = Gauge::default();
        registry.register(
            "ferrosigner_key_loading_processed",
            "Keystores processed so far by the last key loading",
            key_loading_done.clone(),
        );
        let key_cache_writes = Counter::default();
        registry.register(
            "ferrosigner_key_cache_writes",
            "Rewrites of the key cache file, each one KDF run",
            key_cache_writes.clone(),
        );
        let key_loading_errors = Gauge::default();
        registry.register(
            "ferrosigner_key_loading_errors",
            "Keystores that failed to load in the last key loading",
            key_loading_errors.clone(),
        );
        let sign_requests_shed = Counter::default();
        registry.register(
            "ferrosigner_sign_requests_shed",
            "Sign requests answered 503 at once by the concurrency limit",
            sign_requests_shed.clone(),
        );
        let batches = Family::<BatchLabels, Counter>::default();
        registry.register(
            "ferrosigner_sign_batches",
            "Batch signing requests by type and outcome; each identifier is also counted in ferrosigner_sign_requests",
            batches.clone(),
        );
        registry.register(
            "ferrosigner_build",
            "Build information",
            Info::new(vec![("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self {
            registry,
            requests,
            signing_duration,
            slashing_db_duration,
            slashing_permitted,
            slashing_prevented,
            keys_loaded,
            keys_loaded_by_source,
            key_loading_total,
            key_loading_done,
            key_loading_errors,
            key_cache_writes,
            sign_requests_shed,
            batches,
        }
    }

    /// Counts one signing request.
    pub fn count_request(&self, r#type: &'static str, outcome: &'static str) {
        self.requests
            .get_or_create(&RequestLabels { r#type, outcome })
            .inc();
    }

    /// Counts one batch signing request.
    pub fn count_batch(&self, r#type: &'static str, outcome: &'static str) {
        self.batches
            .get_or_create(&BatchLabels { r#type, outcome })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
