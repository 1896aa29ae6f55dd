//! Fuzz target: `sieve::fuzzing::analyze_file` (see its doc for what it runs and checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sieve::fuzzing::analyze_file(data));
