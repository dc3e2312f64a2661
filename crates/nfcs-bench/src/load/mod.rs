//! The load engine: virtual users (closed model) and arrivals (open model) against a `Target`.
//!
//! # Models
//!
//! - **Closed** ([`ClosedModel`], k6's `ramping-vus`): users started linearly over the stages'
//!   ramps, each looping request, response, think time. Request `n + 1` of a user is intended
//!   at `intended(n) + service(n) + think(n)` (the first at the user's start), so a busy
//!   generator that starts a request late catches up by thinking less.
//! - **Open** ([`OpenModel`], k6's `constant-arrival-rate`, wrk2): arrivals on a fixed
//!   schedule (arrival `i` of a stage of rate `r` starting at `T` is intended at `T + i / r`),
//!   whatever the responses do; a bounded pool of requests in flight serves them in order,
//!   and an arrival that cannot start within the drop bound is dropped.
//!
//! # Latencies
//!
//! Every response is recorded twice, in nanosecond HDR histograms: **corrected**, from the
//! request's intended start to its response, and **raw**, from its actual start. In the open
//! model a stall of the target holds the pool, the arrivals behind it start late, and their
//! corrected latencies carry the stall (coordinated omission cannot hide it); their raw
//! latencies do not. In the closed model the two differ only by how late the engine started
//! requests (a closed model cannot see the requests its stalled users did not send: that is
//! what the open model is for). Starts later than [`LoadPlan::late_after`] count as late.
//!
//! Each worker task keeps its own histograms and timeline (no lock per request); they are
//! merged when the run ends ([`LoadResult`]).

mod engine;
#[cfg(feature = "serve")]
#[cfg_attr(docsrs, doc(cfg(feature = "serve")))]
pub mod http;
mod plan;
mod result;
mod target;

pub use engine::{LoadError, run};
pub use plan::{ClosedModel, LoadPlan, Mix, Model, OpenModel, RateStage, Stage, ThinkTime};
pub use result::{LoadResult, OperationCounts, TimelinePoint};
pub use target::{
    CACHE_KEYS, CGL_GRID, CGL_SEEDS, InProcessTarget, NoopTarget, Operation, SEMANTIC_THRESHOLD,
    Target, TargetError, VALUE_SIZE,
};
