//! The crate's error type.

/// What went wrong in a solver.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    /// A parameter is out of its domain (zero or negative sizes, NaN, infinity, ...).
    #[error("invalid parameter `{name}` = {value}: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// What it must be.
        reason: &'static str,
    },
    /// Input data has the wrong length.
    #[error("`{name}` has {found} values, {expected} were expected")]
    WrongSize {
        /// What was passed.
        name: &'static str,
        /// The length needed.
        expected: usize,
        /// The length passed.
        found: usize,
    },
    /// Input data holds a NaN or an infinity.
    #[error("`{name}` holds a non-finite value at index {index}")]
    NonFinite {
        /// What was passed.
        name: &'static str,
        /// Where the first bad value is.
        index: usize,
    },
    /// The solution left every sensible bound (or became NaN): the time step is too large for
    /// these parameters, or the equation itself blows up. The solver refuses further steps.
    #[error(
        "the solution blew up at t = {time} (step {step}): max |A|^2 = {max_intensity}; try a smaller time step"
    )]
    BlowUp {
        /// The time of the step that failed.
        time: f64,
        /// The step that failed.
        step: u64,
        /// The largest |A|^2 (or NaN) found.
        max_intensity: f64,
    },
}

impl KernelError {
    pub(crate) fn invalid(
        name: &'static str,
        value: impl std::fmt::Display,
        reason: &'static str,
    ) -> KernelError {
        KernelError::InvalidParameter {
            name,
            value: value.to_string(),
            reason,
        }
    }
}

/// Checks that `value` is finite.
pub(crate) fn finite(name: &'static str, value: f64) -> Result<f64, KernelError> {
    if value.is_finite() {
        Ok(value)
    } else {
        Err(KernelError::invalid(name, value, "must be a finite number"))
    }
}

/// Checks that `value` is finite and strictly positive.
pub(crate) fn positive(name: &'static str, value: f64) -> Result<f64, KernelError> {
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(KernelError::invalid(
            name,
            value,
            "must be a finite number greater than zero",
        ))
    }
}
