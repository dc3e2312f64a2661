//! Memoized mathematics (feature `math`): CGL solves and Kuramoto runs cached through the
//! tiers by a stable hash of their parameters.
//!
//! [`NFCSCacheManager::math`] answers a [`CglSolve`] or a [`KuramotoRun`] from the cache, or
//! computes it once on tokio's blocking pool and stores it:
//!
//! - **Keys** are the spec's `cgl_{grid_size}_{hash}` and `kuramoto_{oscillators}_{hash}`,
//!   where `hash` is 16 hex digits of XXH3 over the request's postcard encoding (integers as
//!   varints, floats as their IEEE bits, little-endian; see [`CglSolve::key`]). The encoding
//!   is postcard's frozen 1.0 format, so a key is the same on every node, build and platform;
//!   two requests share a key exactly when every parameter is bit-identical.
//! - **Single flight**: identical concurrent requests run one computation
//!   ([`NFCSCacheManager::get_or_insert_with`]); the others wait for it.
//! - **Through the tiers**: a result lands in every tier (the disk tier keeps it across
//!   restarts, Redis shares it between nodes) and comes back bit-identical: postcard writes
//!   each `f64` as its bits and the codec checksums the frame.
//! - A request the kernels refuse (a NaN, a grid size out of range) is a
//!   [`MathError::Kernel`] before anything is computed or stored.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nfcs_cache_core::{CacheError, Ttl};
use nfcs_math_kernels::KernelError;
use nfcs_math_kernels::cgl::{CglParams, CglResult, CglSolver, InitialCondition};
use nfcs_math_kernels::kuramoto::{
    Coupling, Kuramoto, SyncOutcome, gaussian, lorentzian, lorentzian_quantiles, uniform_phases,
};
use serde::{Deserialize, Serialize};

use crate::error::LoadError;
use crate::manager::NFCSCacheManager;

/// A CGL solve: from `initial`, `steps` ETDRK4 steps with `params`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CglSolve {
    /// The equation and the grid.
    pub params: CglParams,
    /// Where it starts.
    pub initial: InitialCondition,
    /// Steps to take.
    pub steps: u64,
}

/// The natural frequencies of a [`KuramotoRun`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Frequencies {
    /// Seeded Gaussian draws.
    Gaussian {
        /// The mean.
        mean: f64,
        /// The standard deviation.
        standard_deviation: f64,
        /// The generator's seed.
        seed: u64,
    },
    /// Seeded Lorentzian (Cauchy) draws.
    Lorentzian {
        /// The centre.
        center: f64,
        /// The half width.
        width: f64,
        /// The generator's seed.
        seed: u64,
    },
    /// The Lorentzian's quantiles (deterministic, no seed).
    LorentzianQuantiles {
        /// The centre.
        center: f64,
        /// The half width.
        width: f64,
    },
}

/// A Kuramoto run to synchrony: `oscillators` mean-field coupled oscillators with
/// `frequencies`, starting from seeded uniform phases, stepped by `dt` until the order
/// parameter reaches `threshold` or the simulated time `max_time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KuramotoRun {
    /// How many oscillators.
    pub oscillators: usize,
    /// Their natural frequencies.
    pub frequencies: Frequencies,
    /// The mean-field coupling `K`.
    pub coupling: f64,
    /// The seed of the initial phases.
    pub phase_seed: u64,
    /// The time step.
    pub dt: f64,
    /// The order parameter that counts as synchronised, in `(0, 1]`.
    pub threshold: f64,
    /// The simulated time after which the run counts as never synchronised.
    pub max_time: f64,
}

/// What a [`KuramotoRun`] reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KuramotoResult {
    /// Whether the order parameter reached the threshold.
    pub synchronized: bool,
    /// The simulated time when it did (or when the run gave up).
    pub time: f64,
    /// Steps taken.
    pub steps: u64,
    /// The order parameter then.
    pub r: f64,
    /// Seconds the computation took when it ran (not when it was served from the cache).
    pub compute_s: f64,
    /// The phases at the end.
    pub phases: Vec<f64>,
}

/// A result and whether it came from the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Memoized<T> {
    /// The result.
    pub value: T,
    /// `true` when no computation ran for this call (a tier had it, or another caller's
    /// identical computation was waited for).
    pub cache_hit: bool,
    /// How long the call took.
    pub elapsed: Duration,
}

/// Why a memoized computation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MathError {
    /// The kernel refused the parameters (nothing was computed or stored).
    #[error("the kernel refused the parameters: {0}")]
    Kernel(#[from] KernelError),
    /// The cache failed (a stored value that is not of the result's type, a tier error that
    /// left nothing stored).
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The blocking task running the computation did not finish (the runtime is shutting
    /// down, or the kernel panicked).
    #[error("the computation did not finish: {0}")]
    Cancelled(String),
}

/// Hex digits of XXH3 over `value`'s postcard encoding.
fn stable_hash<T: Serialize>(value: &T) -> Result<String, MathError> {
    let bytes = postcard::to_stdvec(value).map_err(|error| {
        MathError::Cache(CacheError::Encode {
            key: "(memoized computation)".to_owned(),
            source: nfcs_cache_core::EncodeError::Serialize {
                source: Box::new(error),
            },
        })
    })?;
    Ok(format!("{:016x}", xxhash_rust::xxh3::xxh3_64(&bytes)))
}

impl CglSolve {
    /// `cgl_{grid_size}_{hash}`: the spec's key (see the [module](self) documentation).
    ///
    /// # Errors
    /// [`MathError::Cache`] when the request cannot be encoded (it always can).
    pub fn key(&self) -> Result<String, MathError> {
        Ok(format!(
            "cgl_{}_{}",
            self.params.grid_size,
            stable_hash(&("cgl", 1u8, self))?
        ))
    }

    /// Runs the solve here, without the cache.
    ///
    /// # Errors
    /// [`MathError::Kernel`] for parameters or an initial field the solver refuses, or a
    /// solution that blew up.
    pub fn compute(&self) -> Result<CglResult, MathError> {
        let mut solver = CglSolver::new(self.params, self.initial.clone())?;
        solver.advance(self.steps)?;
        Ok(solver.result())
    }
}

impl KuramotoRun {
    /// `kuramoto_{oscillators}_{hash}` (see the [module](self) documentation).
    ///
    /// # Errors
    /// [`MathError::Cache`] when the request cannot be encoded (it always can).
    pub fn key(&self) -> Result<String, MathError> {
        Ok(format!(
            "kuramoto_{}_{}",
            self.oscillators,
            stable_hash(&("kuramoto", 1u8, self))?
        ))
    }

    /// Runs the network here, without the cache.
    ///
    /// # Errors
    /// [`MathError::Kernel`] for parameters the network refuses.
    pub fn compute(&self) -> Result<KuramotoResult, MathError> {
        let n = self.oscillators;
        let frequencies = match self.frequencies {
            Frequencies::Gaussian {
                mean,
                standard_deviation,
                seed,
            } => gaussian(n, mean, standard_deviation, seed),
            Frequencies::Lorentzian {
                center,
                width,
                seed,
            } => lorentzian(n, center, width, seed),
            Frequencies::LorentzianQuantiles { center, width } => {
                lorentzian_quantiles(n, center, width)
            }
        };
        let mut network = Kuramoto::new(
            frequencies,
            Coupling::MeanField {
                strength: self.coupling,
            },
            uniform_phases(n, self.phase_seed),
            self.dt,
        )?;
        let outcome = network.run_until_sync(self.threshold, self.max_time)?;
        let (synchronized, time, steps, compute, r) = match outcome {
            SyncOutcome::Synchronized {
                time,
                steps,
                compute,
                r,
            } => (true, time, steps, compute, r),
            SyncOutcome::NotSynchronized {
                time,
                steps,
                compute,
                r,
            } => (false, time, steps, compute, r),
            _ => {
                return Err(MathError::Cancelled(
                    "the network ended in a state this build does not know".to_owned(),
                ));
            }
        };
        Ok(KuramotoResult {
            synchronized,
            time,
            steps,
            r,
            compute_s: compute.as_secs_f64(),
            phases: network.phases(),
        })
    }
}

/// The memoized computations of a manager ([`NFCSCacheManager::math`]).
#[derive(Debug, Clone, Copy)]
pub struct MathStore<'a> {
    manager: &'a NFCSCacheManager,
}

impl NFCSCacheManager {
    /// CGL solves and Kuramoto runs through this cache (feature `math`; see the
    /// [`math`](crate::math) module).
    pub fn math(&self) -> MathStore<'_> {
        MathStore { manager: self }
    }
}

impl MathStore<'_> {
    /// The solve from the cache, or computed once (for every identical concurrent request)
    /// on the blocking pool and stored for `ttl`.
    ///
    /// ```
    /// use nfcs_performance::math::CglSolve;
    /// use nfcs_performance::math_kernels::cgl::{CglParams, InitialCondition};
    /// use nfcs_performance::prelude::*;
    ///
    /// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = NFCSCacheManager::builder()
    ///     .memory(MemoryCache::new(64 << 20)?)
    ///     .build();
    /// let solve = CglSolve {
    ///     params: CglParams::new(64, 50.0, 0.05, 1.5, -1.2),
    ///     initial: InitialCondition::Noise { amplitude: 0.01, seed: 7 },
    ///     steps: 20,
    /// };
    /// assert!(solve.key()?.starts_with("cgl_64_"));
    /// let cold = cache.math().solve_cgl(&solve, Ttl::After(std::time::Duration::from_secs(3600))).await?;
    /// let hit = cache.math().solve_cgl(&solve, Ttl::Default).await?;
    /// assert!(!cold.cache_hit && hit.cache_hit);
    /// assert_eq!(cold.value, hit.value); // bit-identical
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`MathError::Kernel`] for parameters the solver refuses (checked before anything
    /// runs); [`MathError::Cache`] when the cache fails; [`MathError::Cancelled`] when the
    /// computation did not finish.
    pub async fn solve_cgl(
        &self,
        solve: &CglSolve,
        ttl: impl Into<Ttl>,
    ) -> Result<Memoized<CglResult>, MathError> {
        solve.params.validate()?;
        let key = solve.key()?;
        let request = solve.clone();
        self.memoized(&key, ttl.into(), move || request.compute())
            .await
    }

    /// The run from the cache, or computed once (for every identical concurrent request) on
    /// the blocking pool and stored for `ttl`.
    ///
    /// # Errors
    /// As [`solve_cgl`](MathStore::solve_cgl).
    pub async fn kuramoto(
        &self,
        run: &KuramotoRun,
        ttl: impl Into<Ttl>,
    ) -> Result<Memoized<KuramotoResult>, MathError> {
        let key = run.key()?;
        let request = run.clone();
        self.memoized(&key, ttl.into(), move || request.compute())
            .await
    }

    async fn memoized<T, F>(
        &self,
        key: &str,
        ttl: Ttl,
        compute: F,
    ) -> Result<Memoized<T>, MathError>
    where
        T: Serialize + serde::de::DeserializeOwned + Send + 'static,
        F: FnOnce() -> Result<T, MathError> + Send + 'static,
    {
        let started = Instant::now();
        let computed = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&computed);
        let value = self
            .manager
            .get_or_insert_with(key, ttl, move || async move {
                flag.store(true, Ordering::Relaxed);
                match tokio::task::spawn_blocking(compute).await {
                    Ok(result) => result,
                    Err(error) => Err(MathError::Cancelled(error.to_string())),
                }
            })
            .await
            .map_err(|error| match error {
                LoadError::Cache(error) => MathError::Cache(error),
                LoadError::Loader(error) => match Arc::try_unwrap(error) {
                    Ok(error) => error,
                    // A waiter shares the leader's error.
                    Err(shared) => match &*shared {
                        MathError::Kernel(error) => MathError::Kernel(error.clone()),
                        other => MathError::Cancelled(other.to_string()),
                    },
                },
            })?;
        Ok(Memoized {
            value,
            cache_hit: !computed.load(Ordering::Relaxed),
            elapsed: started.elapsed(),
        })
    }
}
