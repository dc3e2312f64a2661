//! The ETDRK4 coefficients, evaluated by contour integrals (Kassam & Trefethen 2005).
//!
//! For each Fourier mode the linear operator is a complex number `L`, and with `z = h L` the
//! scheme of Cox & Matthews (2002) needs
//!
//! ```text
//! E  = e^z            E2 = e^(z/2)         Q  = h (e^(z/2) - 1) / z
//! f1 = h (-4 - z + e^z (4 - 3z + z^2)) / z^3
//! f2 = h ( 2 + z + e^z (z - 2))        / z^3
//! f3 = h (-4 - 3z - z^2 + e^z (4 - z)) / z^3
//! ```
//!
//! Written this way they cancel catastrophically near `z = 0`. These functions are entire, so
//! their value at `z` equals their mean over any circle around `z` (Cauchy's integral formula),
//! and the trapezoidal rule on such a circle converges faster than geometrically. Kassam and
//! Trefethen average over the upper half circle and take the real part, which is right only
//! for real `L`; here `L = 1 - (1 + i b) |k|^2` is complex, so the mean runs over the whole
//! circle and keeps the complex value. The tests check the result against the Taylor series
//! near zero and the closed forms far from it, for complex `z`.

use num_complex::Complex64;

/// Points on the contour. With radius 1 the trapezoidal error is far below double precision.
const POINTS: usize = 64;

/// The coefficients of one mode.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Coefficients {
    pub(crate) e: Complex64,
    pub(crate) e2: Complex64,
    pub(crate) q: Complex64,
    pub(crate) f1: Complex64,
    pub(crate) f2: Complex64,
    pub(crate) f3: Complex64,
}

/// The coefficients for the linear eigenvalue `l` and time step `h`.
pub(crate) fn coefficients(l: Complex64, h: f64) -> Coefficients {
    let z = l * h;
    let mut q = Complex64::default();
    let mut f1 = Complex64::default();
    let mut f2 = Complex64::default();
    let mut f3 = Complex64::default();
    for point in 0..POINTS {
        let angle = std::f64::consts::PI * (2.0 * point as f64 + 1.0) / POINTS as f64;
        let w = z + Complex64::from_polar(1.0, angle);
        let (ew, ew2) = (w.exp(), (w / 2.0).exp());
        let w2 = w * w;
        let w3 = w2 * w;
        q += (ew2 - 1.0) / w;
        f1 += (-4.0 - w + ew * (4.0 - 3.0 * w + w2)) / w3;
        f2 += (2.0 + w + ew * (w - 2.0)) / w3;
        f3 += (-4.0 - 3.0 * w - w2 + ew * (4.0 - w)) / w3;
    }
    let scale = h / POINTS as f64;
    Coefficients {
        e: z.exp(),
        e2: (z / 2.0).exp(),
        q: q * scale,
        f1: f1 * scale,
        f2: f2 * scale,
        f3: f3 * scale,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// phi_k(z) = sum_m z^m / (m + k)!, by its series (exact enough for |z| <= 1).
    fn phi(k: u32, z: Complex64) -> Complex64 {
        let mut term = Complex64::new(1.0, 0.0);
        for j in 1..=k {
            term /= j as f64;
        }
        let mut sum = term;
        for m in 1..60 {
            term = term * z / (m + k) as f64;
            sum += term;
        }
        sum
    }

    /// The coefficients through phi functions: f1 = h(phi1 - 3 phi2 + 4 phi3), f2 = h(phi2 -
    /// 2 phi3), f3 = h(-phi2 + 4 phi3), Q = h/2 phi1(z/2).
    fn by_series(z: Complex64, h: f64) -> [Complex64; 4] {
        let (p1, p2, p3) = (phi(1, z), phi(2, z), phi(3, z));
        [
            phi(1, z / 2.0) * (h / 2.0),
            (p1 - 3.0 * p2 + 4.0 * p3) * h,
            (p2 - 2.0 * p3) * h,
            (-p2 + 4.0 * p3) * h,
        ]
    }

    fn by_closed_form(z: Complex64, h: f64) -> [Complex64; 4] {
        let (ez, z2) = (z.exp(), z * z);
        let z3 = z2 * z;
        [
            ((z / 2.0).exp() - 1.0) / z * h,
            (-4.0 - z + ez * (4.0 - 3.0 * z + z2)) / z3 * h,
            (2.0 + z + ez * (z - 2.0)) / z3 * h,
            (-4.0 - 3.0 * z - z2 + ez * (4.0 - z)) / z3 * h,
        ]
    }

    fn close(a: Complex64, b: Complex64, tolerance: f64) -> bool {
        (a - b).norm() <= tolerance * b.norm().max(1e-300)
    }

    #[test]
    fn contour_values_match_the_series_near_zero_for_complex_arguments() {
        let h = 0.01;
        for z in [
            Complex64::new(0.0, 0.0),
            Complex64::new(1e-8, 0.0),
            Complex64::new(-1e-3, 2e-3),
            Complex64::new(0.3, -0.4),
            Complex64::new(-0.5, 0.5),
            Complex64::new(0.0, 0.9),
        ] {
            let got = coefficients(z / h, h);
            let want = by_series(z, h);
            for (got, want) in [got.q, got.f1, got.f2, got.f3].into_iter().zip(want) {
                assert!(close(got, want, 1e-13), "z = {z}: {got} against {want}");
            }
        }
    }

    #[test]
    fn contour_values_match_the_closed_forms_far_from_zero() {
        let h = 0.05;
        // Strongly damped modes with large imaginary parts (b |k|^2 h), as high wavenumbers give.
        for z in [
            Complex64::new(-5.0, 3.0),
            Complex64::new(-40.0, -120.0),
            Complex64::new(-300.0, 450.0),
            Complex64::new(2.0, -7.0),
            Complex64::new(0.0, 25.0),
        ] {
            let got = coefficients(z / h, h);
            let want = by_closed_form(z, h);
            for (got, want) in [got.q, got.f1, got.f2, got.f3].into_iter().zip(want) {
                assert!(close(got, want, 1e-12), "z = {z}: {got} against {want}");
            }
        }
    }

    #[test]
    fn the_closed_forms_fail_where_the_contour_does_not() {
        // Why the contour is needed: at z = 1e-6 the closed form of f1 loses every digit.
        let z = Complex64::new(1e-6, 1e-6);
        let closed = by_closed_form(z, 1.0)[1];
        let series = by_series(z, 1.0)[1];
        assert!(
            !close(closed, series, 1e-3),
            "closed form unexpectedly accurate"
        );
        assert!(close(coefficients(z, 1.0).f1, series, 1e-13));
    }
}
