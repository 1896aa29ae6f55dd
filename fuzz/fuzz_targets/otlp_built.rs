//! Fuzz target: `sieve::fuzzing::otlp_built` (see its doc for what it runs and checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sieve::fuzzing::otlp_built(data));
