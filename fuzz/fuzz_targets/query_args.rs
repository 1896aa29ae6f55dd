//! Fuzz target: `sieve::fuzzing::query_args` (see its doc for what it runs and checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sieve::fuzzing::query_args(data));
