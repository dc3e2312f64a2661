//! The mean-field step in three passes over the oscillators, with nothing stored between them.
//!
//! With all-to-all coupling `F_i = K mean(u)` is one number per stage, and each stage's
//! per-oscillator values depend only on the oscillator itself and on the stage numbers
//! `F_1..F_4`. So instead of storing `k_1..k_4` for every oscillator (and streaming them through
//! memory), each pass recomputes the earlier stages of its oscillator from `z` and `E_2` and
//! sums what the next stage's `F` needs:
//!
//! 1. from `F_1`: `u_a = E_2 (z + h/2 k_1)`, summing `u_a` (gives `F_2`) and, because `k_2` is
//!    linear in `F_2`, also `E_2 z`, `|u_a|^2` and `u_a^2`, which give `F_3 = K mean(u_b)` with
//!    `u_b = E_2 z + h/2 k_2` without another pass;
//! 2. from `F_1..F_3`: `u_c = E z + h E_2 k_3`, summing it (gives `F_4`);
//! 3. from `F_1..F_4`: the new `z`, projected onto the unit circle, summing it (gives the next
//!    step's `F_1` and the order parameter).
//!
//! Each pass reads 32 bytes per oscillator (`z` and `E_2`) and the last writes 16. The state
//! is split into real and imaginary arrays and the loops run eight oscillators abreast with
//! eight partial sums, so that the compiler vectorises them (a single running sum would be
//! sequential under IEEE rules).

use num_complex::Complex64;
use rayon::prelude::*;

use super::nonlinear;

/// Oscillators per parallel chunk; networks smaller than two chunks run on one thread.
pub(super) const CHUNK: usize = 16_384;
/// Oscillators processed abreast.
const LANES: usize = 8;

/// The split state of a mean-field network.
pub(super) struct MeanField<'a> {
    pub(super) z_re: &'a mut [f64],
    pub(super) z_im: &'a mut [f64],
    /// `E_2 = exp(i omega h / 2)` per oscillator.
    pub(super) rot_re: &'a [f64],
    pub(super) rot_im: &'a [f64],
}

/// The stage values `F_1..F_4` and the step.
#[derive(Clone, Copy)]
struct Stages {
    h: f64,
    f: [Complex64; 4],
}

impl Stages {
    /// `u_a` and `k_1` for one oscillator.
    #[inline(always)]
    fn first(&self, z: Complex64, e2: Complex64) -> (Complex64, Complex64) {
        let k1 = nonlinear(z, self.f[0]);
        (e2 * (z + k1 * (0.5 * self.h)), k1)
    }

    /// `k_2, u_b, k_3, u_c` given `u_a`.
    #[inline(always)]
    fn middle(&self, z: Complex64, e2: Complex64, ua: Complex64) -> [Complex64; 4] {
        let k2 = nonlinear(ua, self.f[1]);
        let e2z = e2 * z;
        let ub = e2z + k2 * (0.5 * self.h);
        let k3 = nonlinear(ub, self.f[2]);
        let uc = e2 * (e2z + k3 * self.h);
        [k2, ub, k3, uc]
    }
}

/// Sums `M` real quantities over chunks (in parallel when `parallel`).
fn reduce<const M: usize>(
    len: usize,
    parallel: bool,
    body: impl Fn(std::ops::Range<usize>) -> [f64; M] + Sync,
) -> [f64; M] {
    let add = |mut a: [f64; M], b: [f64; M]| {
        a.iter_mut().zip(b).for_each(|(a, b)| *a += b);
        a
    };
    if parallel {
        (0..len.div_ceil(CHUNK))
            .into_par_iter()
            .map(|chunk| body(chunk * CHUNK..((chunk + 1) * CHUNK).min(len)))
            .reduce(|| [0.0; M], add)
    } else {
        body(0..len)
    }
}

/// Sums the `M` outputs of `element(z_i, E2_i)` over the oscillators of the given slices,
/// `LANES` at a time in `LANES` partial sums each, so the lane loop vectorises (`element` is
/// one of the `#[inline(always)]` functions below).
#[inline(always)]
fn lanes<const M: usize>(
    z_re: &[f64],
    z_im: &[f64],
    rot_re: &[f64],
    rot_im: &[f64],
    element: impl Fn(Complex64, Complex64) -> [f64; M],
) -> [f64; M] {
    let mut partial = [[0.0_f64; LANES]; M];
    let blocks = z_re
        .chunks_exact(LANES)
        .zip(z_im.chunks_exact(LANES))
        .zip(rot_re.chunks_exact(LANES).zip(rot_im.chunks_exact(LANES)));
    for ((zr, zi), (er, ei)) in blocks {
        for lane in 0..LANES {
            let values = element(
                Complex64::new(zr[lane], zi[lane]),
                Complex64::new(er[lane], ei[lane]),
            );
            for (sums, value) in partial.iter_mut().zip(values) {
                sums[lane] += value;
            }
        }
    }
    for i in z_re.len() / LANES * LANES..z_re.len() {
        let values = element(
            Complex64::new(z_re[i], z_im[i]),
            Complex64::new(rot_re[i], rot_im[i]),
        );
        for (sums, value) in partial.iter_mut().zip(values) {
            sums[0] += value;
        }
    }
    partial.map(|sums| sums.iter().sum())
}

/// Pass 1 for one oscillator: `u_a`, `E_2 z`, `|u_a|^2`, `u_a^2`.
#[inline(always)]
fn pass1(stages: &Stages, z: Complex64, e2: Complex64) -> [f64; 7] {
    let (ua, _) = stages.first(z, e2);
    let e2z = e2 * z;
    let ua2 = ua * ua;
    [ua.re, ua.im, e2z.re, e2z.im, ua.norm_sqr(), ua2.re, ua2.im]
}

/// Pass 2 for one oscillator: `u_c`.
#[inline(always)]
fn pass2(stages: &Stages, z: Complex64, e2: Complex64) -> [f64; 2] {
    let (ua, _) = stages.first(z, e2);
    let [_, _, _, uc] = stages.middle(z, e2, ua);
    [uc.re, uc.im]
}

/// Pass 3 for one oscillator: the new `z`, on the unit circle.
#[inline(always)]
fn pass3(stages: &Stages, z: Complex64, e2: Complex64) -> Complex64 {
    let h = stages.h;
    let (ua, k1) = stages.first(z, e2);
    let [k2, _, k3, uc] = stages.middle(z, e2, ua);
    let k4 = nonlinear(uc, stages.f[3]);
    let e = e2 * e2;
    let next = e * (z + k1 * (h / 6.0)) + (e2 * (k2 + k3) * 2.0 + k4) * (h / 6.0);
    // Not `norm()`: that is `hypot`, a library call that costs more than the whole step.
    next * (1.0 / next.norm_sqr().sqrt())
}

crate::simd::dispatch! {
    /// Pass 1 over one chunk.
    fn chunk1(stages: &Stages, z_re: &[f64], z_im: &[f64], rot_re: &[f64], rot_im: &[f64]) -> [f64; 7] {
        lanes(z_re, z_im, rot_re, rot_im, |z, e2| pass1(stages, z, e2))
    }
}

crate::simd::dispatch! {
    /// Pass 2 over one chunk.
    fn chunk2(stages: &Stages, z_re: &[f64], z_im: &[f64], rot_re: &[f64], rot_im: &[f64]) -> [f64; 2] {
        lanes(z_re, z_im, rot_re, rot_im, |z, e2| pass2(stages, z, e2))
    }
}

crate::simd::dispatch! {
    /// Pass 3 over one chunk: updates `z` and returns its sum.
    fn chunk3(stages: &Stages, z_re: &mut [f64], z_im: &mut [f64], rot_re: &[f64], rot_im: &[f64]) -> [f64; 2] {
        let len = z_re.len();
        let (mut sum_re, mut sum_im) = ([0.0_f64; LANES], [0.0_f64; LANES]);
        let blocks = z_re
            .chunks_exact_mut(LANES)
            .zip(z_im.chunks_exact_mut(LANES))
            .zip(rot_re.chunks_exact(LANES).zip(rot_im.chunks_exact(LANES)));
        for ((zr, zi), (er, ei)) in blocks {
            for lane in 0..LANES {
                let next = pass3(stages, Complex64::new(zr[lane], zi[lane]), Complex64::new(er[lane], ei[lane]));
                zr[lane] = next.re;
                zi[lane] = next.im;
                sum_re[lane] += next.re;
                sum_im[lane] += next.im;
            }
        }
        for i in len / LANES * LANES..len {
            let next = pass3(stages, Complex64::new(z_re[i], z_im[i]), Complex64::new(rot_re[i], rot_im[i]));
            z_re[i] = next.re;
            z_im[i] = next.im;
            sum_re[0] += next.re;
            sum_im[0] += next.im;
        }
        [sum_re.iter().sum(), sum_im.iter().sum()]
    }
}

impl MeanField<'_> {
    /// One step of the integrating-factor RK4 scheme; returns `mean(z)` afterwards.
    /// `mean` is `mean(z)` before the step.
    pub(super) fn step(self, strength: f64, h: f64, mean: Complex64) -> Complex64 {
        let n = self.z_re.len();
        let parallel = n >= 2 * CHUNK;
        let scale = strength / n as f64;
        let mut stages = Stages {
            h,
            f: [
                mean * strength,
                Complex64::default(),
                Complex64::default(),
                Complex64::default(),
            ],
        };
        let (rot_re, rot_im) = (self.rot_re, self.rot_im);

        // Pass 1: F_2 and F_3.
        {
            let (z_re, z_im) = (&*self.z_re, &*self.z_im);
            let [ua_re, ua_im, e2z_re, e2z_im, ua_abs, ua2_re, ua2_im] = reduce(n, parallel, |r| {
                chunk1(
                    &stages,
                    &z_re[r.clone()],
                    &z_im[r.clone()],
                    &rot_re[r.clone()],
                    &rot_im[r],
                )
            });
            let f2 = Complex64::new(ua_re, ua_im) * scale;
            // sum k_2 = (F_2 sum |u_a|^2 - conj(F_2) sum u_a^2) / 2
            let sum_k2 = (f2 * ua_abs - f2.conj() * Complex64::new(ua2_re, ua2_im)) * 0.5;
            let f3 = (Complex64::new(e2z_re, e2z_im) + sum_k2 * (0.5 * h)) * scale;
            stages.f[1] = f2;
            stages.f[2] = f3;
        }

        // Pass 2: F_4.
        {
            let (z_re, z_im) = (&*self.z_re, &*self.z_im);
            let [uc_re, uc_im] = reduce(n, parallel, |r| {
                chunk2(
                    &stages,
                    &z_re[r.clone()],
                    &z_im[r.clone()],
                    &rot_re[r.clone()],
                    &rot_im[r],
                )
            });
            stages.f[3] = Complex64::new(uc_re, uc_im) * scale;
        }

        // Pass 3: the new state and its mean.
        let update = |start: usize, z_re: &mut [f64], z_im: &mut [f64]| -> [f64; 2] {
            let len = z_re.len();
            chunk3(
                &stages,
                z_re,
                z_im,
                &rot_re[start..start + len],
                &rot_im[start..start + len],
            )
        };
        let [sum_re, sum_im] = if parallel {
            self.z_re
                .par_chunks_mut(CHUNK)
                .zip(self.z_im.par_chunks_mut(CHUNK))
                .enumerate()
                .map(|(chunk, (z_re, z_im))| update(chunk * CHUNK, z_re, z_im))
                .reduce(|| [0.0; 2], |a, b| [a[0] + b[0], a[1] + b[1]])
        } else {
            update(0, self.z_re, self.z_im)
        };
        Complex64::new(sum_re, sum_im) / n as f64
    }
}
