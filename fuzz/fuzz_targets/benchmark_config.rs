//! `nfcs_bench::BenchmarkConfig` parsing (`from_toml_str`: TOML, then `validate`, which also
//! checks the `[cache]` table as the facade does). Checked:
//!
//! - nothing panics: malformed TOML and bad values are typed `BenchError`s that print, a bad
//!   value's naming its field;
//! - a configuration that parses validates, its own TOML reads back to an equal one, its quick
//!   profile (`quick()`, what `cargo xtask bench --quick` runs) is valid too, and
//!   `estimated_duration` answers.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nfcs_bench::BenchmarkConfig;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match BenchmarkConfig::from_toml_str(text) {
        Ok(config) => {
            config
                .validate()
                .expect("what from_toml_str returns is valid");
            let written = config.to_toml_string();
            let read = BenchmarkConfig::from_toml_str(&written)
                .unwrap_or_else(|error| panic!("its own TOML reads back: {error}\n{written}"));
            assert_eq!(
                read, config,
                "the TOML round trip changed the configuration"
            );
            let quick = config.quick();
            if let Err(error) = quick.validate() {
                panic!("the quick profile of a valid configuration is invalid: {error}");
            }
            let _ = config.estimated_duration();
            let _ = quick.estimated_duration();
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            if let Some(field) = error.field() {
                assert!(
                    !field.is_empty(),
                    "an invalid value names its field: {error}"
                );
            }
        }
    }
});
