//! Fuzz target: `sieve::fuzzing::otlp_protobuf` (see its doc for what it runs and checks).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| sieve::fuzzing::otlp_protobuf(data));
