//! What the load engine sends requests to: the [`Target`] trait, the NFCS [`Operation`]s, the
//! in-process target over a [`System`] and a no-op target for the engine's own ceiling.

use std::sync::Arc;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

use crate::system::System;

/// One kind of request a virtual user sends.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// A cache read through every tier ([`System::cache_get`]) of one of
    /// [`CACHE_KEYS`] keys.
    CacheGet,
    /// A cache write ([`System::cache_set`]) of [`VALUE_SIZE`] bytes to one of the same keys.
    CacheSet,
    /// A semantic lookup of a paraphrase ([`System::esc_lookup`] at [`SEMANTIC_THRESHOLD`]).
    SemanticLookup,
    /// A constitutional check ([`System::policy_check`]).
    PolicyCheck,
    /// The memoized CGL solve ([`System::solve_cgl_optimized`]) of grid [`CGL_GRID`] from one
    /// of [`CGL_SEEDS`] seeds: computed once per seed, then served from the cache.
    CglSolve,
    /// Nothing: the request completes at once (the engine's own cost).
    NoOp,
    /// A request a custom [`Target`] understands, by name.
    Custom(Arc<str>),
}

impl Operation {
    /// The name in reports (`cache_get`, or a custom operation's name).
    pub fn name(&self) -> &str {
        match self {
            Operation::CacheGet => "cache_get",
            Operation::CacheSet => "cache_set",
            Operation::SemanticLookup => "semantic_lookup",
            Operation::PolicyCheck => "policy_check",
            Operation::CglSolve => "cgl_solve",
            Operation::NoOp => "no_op",
            Operation::Custom(name) => name,
        }
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

/// Keys the cache operations of the in-process target spread over (`load_0` ..).
pub const CACHE_KEYS: u64 = 1024;
/// Bytes of a value the in-process target writes.
pub const VALUE_SIZE: usize = 256;
/// The similarity threshold of the in-process semantic lookups.
pub const SEMANTIC_THRESHOLD: f32 = 0.8;
/// The grid of the in-process memoized CGL solves.
pub const CGL_GRID: usize = 64;
/// Distinct seeds of the in-process memoized CGL solves.
pub const CGL_SEEDS: u64 = 4;

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TargetError {
    /// What went wrong.
    pub message: String,
}

impl TargetError {
    /// An error saying `message`.
    pub fn new(message: impl ToString) -> TargetError {
        TargetError {
            message: message.to_string(),
        }
    }
}

/// Something the load engine sends requests to: the system in process, or (next issue) an
/// HTTP node.
///
/// `execute` is called once per request with the operation and the request's number (unique
/// within a run: the arrival's index in the open model, a per-user counter mixed with the
/// user's index in the closed model), which a target may use to choose keys. The engine
/// measures the time from the request's intended start to the future's completion; the
/// future should do the whole request.
pub trait Target: Send + Sync {
    /// Sends one request.
    fn execute(
        &self,
        operation: &Operation,
        request: u64,
    ) -> BoxFuture<'static, Result<(), TargetError>>;

    /// A name for reports (`in_process`).
    fn name(&self) -> &str;
}

/// The NFCS operations on a [`System`] in this process.
#[derive(Debug, Clone)]
pub struct InProcessTarget {
    system: Arc<System>,
}

impl InProcessTarget {
    /// The target of `system`.
    pub fn new(system: Arc<System>) -> InProcessTarget {
        InProcessTarget { system }
    }

    /// Whether this target can run `operation` (a semantic lookup needs the semantic cache,
    /// a custom operation is unknown to it).
    pub fn supports(&self, operation: &Operation) -> bool {
        match operation {
            Operation::SemanticLookup => self.system.semantic_unavailable().is_none(),
            Operation::Custom(_) => false,
            _ => true,
        }
    }

    /// Stores what the operations read before a run: the semantic cache's sentences (when
    /// it runs). Cache keys start empty; reads of unwritten keys are misses, not errors.
    ///
    /// # Errors
    /// [`TargetError`] when the semantic cache refuses the seed sentences.
    pub async fn prepare(&self) -> Result<(), TargetError> {
        if self.system.semantic_unavailable().is_none() {
            self.system.esc_seed().await.map_err(TargetError::new)?;
        }
        Ok(())
    }
}

static VALUE: [u8; VALUE_SIZE] = [0x5a; VALUE_SIZE];

impl Target for InProcessTarget {
    fn execute(
        &self,
        operation: &Operation,
        request: u64,
    ) -> BoxFuture<'static, Result<(), TargetError>> {
        let system = Arc::clone(&self.system);
        match operation {
            Operation::CacheGet => Box::pin(async move {
                let key = format!("load_{}", request % CACHE_KEYS);
                system
                    .cache_get(&key)
                    .await
                    .map(drop)
                    .map_err(TargetError::new)
            }),
            Operation::CacheSet => Box::pin(async move {
                let key = format!("load_{}", request % CACHE_KEYS);
                system
                    .cache_set(&key, &VALUE)
                    .await
                    .map_err(TargetError::new)
            }),
            Operation::SemanticLookup => Box::pin(async move {
                system
                    .esc_lookup(request, SEMANTIC_THRESHOLD)
                    .await
                    .map(drop)
                    .map_err(TargetError::new)
            }),
            Operation::PolicyCheck => Box::pin(async move {
                system
                    .policy_check(request)
                    .await
                    .map(drop)
                    .map_err(TargetError::new)
            }),
            Operation::CglSolve => Box::pin(async move {
                system
                    .solve_cgl_optimized(CGL_GRID, request % CGL_SEEDS)
                    .await
                    .map(drop)
                    .map_err(TargetError::new)
            }),
            Operation::NoOp => Box::pin(std::future::ready(Ok(()))),
            Operation::Custom(name) => {
                let error =
                    TargetError::new(format!("the in-process target has no operation {name:?}"));
                Box::pin(std::future::ready(Err(error)))
            }
        }
    }

    fn name(&self) -> &str {
        "in_process"
    }
}

/// A target whose every request completes at once: what the engine itself costs per request
/// (the ceiling of requests per second it can drive).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoopTarget;

impl Target for NoopTarget {
    fn execute(&self, _: &Operation, _: u64) -> BoxFuture<'static, Result<(), TargetError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn name(&self) -> &str {
        "no_op"
    }
}
