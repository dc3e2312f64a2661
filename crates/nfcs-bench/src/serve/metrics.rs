//! The node's Prometheus recorder: installed once per process, rendered by the node's own
//! `/metrics` route, its upkeep run by the node.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::BenchError;
use crate::recording::{CGL_BUCKETS, CGL_COMPUTATION_TIME};

/// The buckets of every histogram but [`CGL_COMPUTATION_TIME`] (which has the spec's
/// [`CGL_BUCKETS`]), in seconds: 100 us to 10 s, so that a cache hit, a coordination cycle and
/// a CGL solve all fall inside.
pub const DEFAULT_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// `nfcs_http_requests_total{route,method,status}` (counter): requests answered.
pub const HTTP_REQUESTS: &str = "nfcs_http_requests_total";
/// `nfcs_http_request_duration_seconds{route,method}` (histogram): seconds per request.
pub const HTTP_REQUEST_DURATION: &str = "nfcs_http_request_duration_seconds";
/// `nfcs_http_requests_in_flight` (gauge): requests received and not yet answered.
pub const HTTP_IN_FLIGHT: &str = "nfcs_http_requests_in_flight";
/// `nfcs_alerts_active{alert}` (gauge): 1 while an alert is raised, 0 after it cleared.
pub const ALERTS_ACTIVE: &str = "nfcs_alerts_active";
/// `nfcs_tier_up{tier}` (gauge): 1 while a configured tier serves, 0 while it is down.
pub const TIER_UP: &str = "nfcs_tier_up";

static HANDLE: OnceLock<Result<PrometheusHandle, String>> = OnceLock::new();

/// The process's Prometheus recorder, installed as the global `metrics` recorder on the first
/// call (with [`DEFAULT_BUCKETS`] and the spec's [`CGL_BUCKETS`]); later calls return the
/// same handle. Build the caches after this call, so their handles resolve against it.
///
/// # Errors
/// [`BenchError::Server`] when another global recorder was installed first.
pub fn prometheus() -> Result<PrometheusHandle, BenchError> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&DEFAULT_BUCKETS)
                .and_then(|builder| {
                    builder.set_buckets_for_metric(
                        Matcher::Full(CGL_COMPUTATION_TIME.to_owned()),
                        &CGL_BUCKETS,
                    )
                })
                .map_err(|error| error.to_string())?;
            let handle = builder
                .install_recorder()
                .map_err(|error| format!("could not install the Prometheus recorder: {error}"))?;
            describe();
            Ok(handle)
        })
        .clone()
        .map_err(BenchError::Server)
}

/// Describes the node's own series and the recording API's.
fn describe() {
    crate::recording::describe_metrics();
    metrics::describe_counter!(
        HTTP_REQUESTS,
        metrics::Unit::Count,
        "HTTP requests answered by the node, by route template, method and status code."
    );
    metrics::describe_histogram!(
        HTTP_REQUEST_DURATION,
        metrics::Unit::Seconds,
        "Seconds from a request's arrival to its response, by route template and method."
    );
    metrics::describe_gauge!(
        HTTP_IN_FLIGHT,
        metrics::Unit::Count,
        "HTTP requests received by the node and not yet answered (this scrape included)."
    );
    metrics::describe_gauge!(
        ALERTS_ACTIVE,
        "1 while the node's alert is raised, 0 once it cleared (see /api/summary for its value and threshold)."
    );
    metrics::describe_gauge!(
        TIER_UP,
        "1 while a configured cache tier serves requests, 0 while it is unavailable."
    );
}
