//! Natural frequencies and initial phases.

use rand::{RngExt, SeedableRng};
use rand_distr::{Cauchy, Distribution, Normal};

/// `n` frequencies drawn from a Lorentzian (Cauchy) distribution centred on `center` with
/// half-width `width`, from a seeded generator.
///
/// # Panics
/// Never for a finite `center` and a `width` > 0; other values give NaN frequencies, which
/// [`Kuramoto::new`](super::Kuramoto::new) refuses.
pub fn lorentzian(n: usize, center: f64, width: f64, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    match Cauchy::new(center, width) {
        Ok(cauchy) => (0..n).map(|_| cauchy.sample(&mut rng)).collect(),
        Err(_) => vec![f64::NAN; n],
    }
}

/// `n` frequencies at the quantiles `(i + 1/2) / n` of the Lorentzian: a deterministic sample
/// that approaches the continuum (the thermodynamic limit) much faster than a random one.
pub fn lorentzian_quantiles(n: usize, center: f64, width: f64) -> Vec<f64> {
    (0..n)
        .map(|i| {
            let quantile = (i as f64 + 0.5) / n as f64;
            center + width * (std::f64::consts::PI * (quantile - 0.5)).tan()
        })
        .collect()
}

/// `n` frequencies drawn from a normal distribution, from a seeded generator.
pub fn gaussian(n: usize, mean: f64, standard_deviation: f64, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    match Normal::new(mean, standard_deviation) {
        Ok(normal) => (0..n).map(|_| normal.sample(&mut rng)).collect(),
        Err(_) => vec![f64::NAN; n],
    }
}

/// `n` phases uniform on `[0, 2 pi)`, from a seeded generator.
pub fn uniform_phases(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|_| rng.random_range(0.0..std::f64::consts::TAU))
        .collect()
}
