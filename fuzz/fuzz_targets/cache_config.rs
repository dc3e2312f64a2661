//! The facade's `CacheConfig` parsing (`nfcs_performance::CacheConfig::from_toml_str`): TOML
//! text to a configuration, checked by `validate`. Checked:
//!
//! - nothing panics: malformed TOML is `ConfigError::Syntax`, a wrong or unknown field is
//!   `ConfigError::Invalid` naming it, and both print;
//! - a configuration that parses validates, and its own TOML (`to_toml_string`) reads back to
//!   an equal configuration.

#![no_main]

use libfuzzer_sys::fuzz_target;
use nfcs_performance::{CacheConfig, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match CacheConfig::from_toml_str(text) {
        Ok(config) => {
            config
                .validate()
                .expect("what from_toml_str returns is valid");
            let written = config.to_toml_string();
            let read = CacheConfig::from_toml_str(&written)
                .unwrap_or_else(|error| panic!("its own TOML reads back: {error}\n{written}"));
            assert_eq!(
                read, config,
                "the TOML round trip changed the configuration"
            );
        }
        Err(error) => {
            assert!(!error.to_string().is_empty());
            if let ConfigError::Invalid { field, .. } = &error {
                assert!(!field.is_empty(), "an invalid value names its field");
            }
        }
    }
});
