//! Fuzz target: `sieve::fuzzing::store_files` (see its doc for what it runs and checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sieve::fuzzing::store_files(data));
