//! Fuzz target: `sieve::fuzzing::config_yaml` (see its doc for what it runs and checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sieve::fuzzing::config_yaml(data));
