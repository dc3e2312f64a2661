//! Comparison with an earlier report: regressions beyond the measured noise.
