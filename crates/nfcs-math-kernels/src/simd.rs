//! Runtime selection of the widest vector instructions the CPU has, for the hot loops.
//!
//! The crate is compiled for the baseline of its target (SSE2 on x86-64), so the compiler may
//! vectorise the loops only two `f64` wide. [`dispatch!`] compiles a loop body a second and a
//! third time with AVX2 and AVX-512 enabled and calls the widest version the CPU supports,
//! detected once. No floating-point contraction is enabled (Rust never fuses `a * b + c`
//! unless asked), and every loop's partial sums are laid out explicitly, so each version
//! computes bit-for-bit the same result; only the speed differs (measured in
//! `docs/benchmarks.md`).
//!
//! This is the crate's only `unsafe` code: calling a `#[target_feature]` function is unsafe
//! because executing AVX instructions on a CPU without them is undefined behaviour. Each call
//! is guarded by the detection in [`level`].

use std::sync::OnceLock;

/// The widest vector extension available.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// The compilation target's baseline.
    Baseline,
    /// AVX2 (256-bit vectors).
    Avx2,
    /// AVX-512F (512-bit vectors).
    Avx512,
}

/// The level of this CPU, detected on first use.
pub(crate) fn level() -> Level {
    static LEVEL: OnceLock<Level> = OnceLock::new();
    *LEVEL.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Level {
    if std::env::var_os("NFCS_KERNELS_BASELINE").is_some() {
        Level::Baseline
    } else if std::arch::is_x86_feature_detected!("avx512f") {
        Level::Avx512
    } else if std::arch::is_x86_feature_detected!("avx2") {
        Level::Avx2
    } else {
        Level::Baseline
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Level {
    Level::Baseline
}

/// Defines `fn $name(args) -> ret` whose body is compiled for the baseline, AVX2 and AVX-512
/// and run in the widest version the CPU supports.
macro_rules! dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> $ret:ty $body:block) => {
        $(#[$meta])*
        #[allow(unsafe_code)]
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[inline(always)]
            fn body($($arg: $ty),*) -> $ret $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2")]
                fn avx2($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                #[target_feature(enable = "avx512f")]
                fn avx512($($arg: $ty),*) -> $ret {
                    body($($arg),*)
                }
                match $crate::simd::level() {
                    // SAFETY: `level()` found AVX-512F on this CPU.
                    $crate::simd::Level::Avx512 => return unsafe { avx512($($arg),*) },
                    // SAFETY: `level()` found AVX2 on this CPU.
                    $crate::simd::Level::Avx2 => return unsafe { avx2($($arg),*) },
                    $crate::simd::Level::Baseline => {}
                }
            }
            body($($arg),*)
        }
    };
}

pub(crate) use dispatch;
