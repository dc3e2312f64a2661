//! Memoized mathematics (feature `math`): cold solve against a cached hit, bit-identical
//! results, one computation for many identical concurrent requests, results surviving a
//! restart through the disk tier, and refused parameters caching nothing.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use nfcs_performance::math::{CglSolve, Frequencies, KuramotoRun, MathError};
use nfcs_performance::math_kernels::cgl::{CglParams, InitialCondition};
use nfcs_performance::prelude::*;

async fn manager_on(directory: &Path) -> NFCSCacheManager {
    let config = CacheConfig::from_toml_str(&format!(
        "[memory]\nmax_size = \"64MiB\"\n[disk]\ndirectory = \"{}\"\nmax_size = \"256MiB\"\n\
         [redis]\nenabled = false\n[semantic]\nenabled = false\n[cache_warming]\nenabled = false",
        directory.display()
    ))
    .unwrap();
    NFCSCacheManager::from_config(config).await.unwrap()
}

fn solve(grid_size: usize, seed: u64) -> CglSolve {
    CglSolve {
        params: CglParams::new(grid_size, 50.0, 0.05, 1.5, -1.2),
        initial: InitialCondition::Noise {
            amplitude: 0.01,
            seed,
        },
        steps: 40,
    }
}

fn run(oscillators: usize, seed: u64) -> KuramotoRun {
    KuramotoRun {
        oscillators,
        frequencies: Frequencies::Gaussian {
            mean: 0.0,
            standard_deviation: 0.5,
            seed,
        },
        coupling: 4.0,
        phase_seed: seed ^ 0x5eed,
        dt: 0.01,
        threshold: 0.9,
        max_time: 100.0,
    }
}

fn bits(values: &[nfcs_performance::math_kernels::cgl::CglResult]) -> Vec<Vec<(u64, u64)>> {
    values
        .iter()
        .map(|result| {
            result
                .field
                .iter()
                .map(|value| (value.re.to_bits(), value.im.to_bits()))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cgl_solve_is_computed_once_then_served_bit_identical() {
    let directory = tempfile::tempdir().unwrap();
    let cache = manager_on(directory.path()).await;
    let request = solve(64, 11);
    let key = request.key().unwrap();
    assert!(
        key.starts_with("cgl_64_") && key.len() == "cgl_64_".len() + 16,
        "{key}"
    );
    // The key is the parameters': the same request gives it, any change another.
    assert_eq!(solve(64, 11).key().unwrap(), key);
    assert_ne!(solve(64, 12).key().unwrap(), key);
    let mut longer = solve(64, 11);
    longer.steps += 1;
    assert_ne!(longer.key().unwrap(), key);

    let cold = cache.math().solve_cgl(&request, Ttl::Never).await.unwrap();
    assert!(!cold.cache_hit);
    let hit = cache.math().solve_cgl(&request, Ttl::Never).await.unwrap();
    assert!(hit.cache_hit);
    // What the kernel computes here, without the cache.
    let direct = request.compute().unwrap();
    assert_eq!(
        bits(&[cold.value.clone(), hit.value.clone()]),
        bits(&[direct.clone(), direct])
    );
    assert_eq!(hit.value.steps, 40);
    assert_eq!(cache.stats().loads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_identical_concurrent_requests_run_one_computation() {
    let directory = tempfile::tempdir().unwrap();
    let cache = Arc::new(manager_on(directory.path()).await);
    let request = Arc::new(solve(128, 5));
    let barrier = Arc::new(tokio::sync::Barrier::new(100));
    let mut callers = Vec::new();
    for _ in 0..100 {
        let (cache, request, barrier) = (
            Arc::clone(&cache),
            Arc::clone(&request),
            Arc::clone(&barrier),
        );
        callers.push(tokio::spawn(async move {
            barrier.wait().await;
            cache.math().solve_cgl(&request, Ttl::Never).await.unwrap()
        }));
    }
    let mut results = Vec::new();
    for caller in callers {
        results.push(caller.await.unwrap());
    }
    assert_eq!(results.iter().filter(|result| !result.cache_hit).count(), 1);
    assert_eq!(cache.stats().loads, 1);
    let values: Vec<_> = results.into_iter().map(|result| result.value).collect();
    let first = bits(&values[..1]).remove(0);
    assert!(bits(&values).iter().all(|field| *field == first));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_survive_a_restart_through_the_disk_tier() {
    let directory = tempfile::tempdir().unwrap();
    let (cgl, kuramoto) = {
        let cache = manager_on(directory.path()).await;
        let cgl = cache
            .math()
            .solve_cgl(&solve(64, 3), Ttl::Never)
            .await
            .unwrap();
        let kuramoto = cache
            .math()
            .kuramoto(&run(50, 3), Ttl::Never)
            .await
            .unwrap();
        assert!(!cgl.cache_hit && !kuramoto.cache_hit);
        assert!(kuramoto.value.synchronized, "{:?}", kuramoto.value);
        (cgl.value, kuramoto.value)
    };
    // A new manager on the same directory: a cold memory tier, the disk tier as it was.
    let cache = manager_on(directory.path()).await;
    let again = cache
        .math()
        .solve_cgl(&solve(64, 3), Ttl::Never)
        .await
        .unwrap();
    assert!(again.cache_hit);
    assert_eq!(bits(&[again.value]), bits(&[cgl]));
    let again = cache
        .math()
        .kuramoto(&run(50, 3), Ttl::Never)
        .await
        .unwrap();
    assert!(again.cache_hit);
    assert_eq!(again.value, kuramoto);
    let phase_bits = |phases: &[f64]| phases.iter().map(|p| p.to_bits()).collect::<Vec<_>>();
    assert_eq!(
        phase_bits(&again.value.phases),
        phase_bits(&kuramoto.phases)
    );
    assert_eq!(cache.stats().loads, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_parameters_are_a_kernel_error_and_nothing_is_stored() {
    let directory = tempfile::tempdir().unwrap();
    let cache = manager_on(directory.path()).await;
    let mut nan = solve(64, 1);
    nan.params.b = f64::NAN;
    assert!(matches!(
        cache.math().solve_cgl(&nan, Ttl::Never).await,
        Err(MathError::Kernel(_))
    ));
    let mut tiny = solve(64, 1);
    tiny.params.grid_size = 2;
    assert!(matches!(
        cache.math().solve_cgl(&tiny, Ttl::Never).await,
        Err(MathError::Kernel(_))
    ));
    let mut bad = run(10, 1);
    bad.threshold = 1.5;
    assert!(matches!(
        cache.math().kuramoto(&bad, Ttl::Never).await,
        Err(MathError::Kernel(_))
    ));
    bad = run(0, 1);
    assert!(matches!(
        cache.math().kuramoto(&bad, Ttl::Never).await,
        Err(MathError::Kernel(_))
    ));
    // Nothing was stored: no entry in any tier.
    for (tier, stats) in cache.stats().tiers {
        assert_eq!(stats.entries, 0, "{tier}");
    }
    // A valid request afterwards computes and stores as usual.
    let fine = cache
        .math()
        .kuramoto(&run(10, 1), Ttl::After(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(!fine.cache_hit);
}
