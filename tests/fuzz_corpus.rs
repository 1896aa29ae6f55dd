//! The fuzz targets' smoke test in the normal suite: every committed corpus input
//! (`fuzz/corpus/<target>/*`, including each crash found and fixed, kept as a regression
//! input) and every generated seed runs through its target's entry point in
//! `sieve::fuzzing`. `fuzz/run.sh` does the fuzzing itself, with nightly and libFuzzer.

use std::path::Path;

/// A fuzz target's entry point.
type Target = fn(&[u8]);

/// Each target by its directory name.
const TARGETS: &[(&str, Target)] = &[
    ("otlp_protobuf", sieve::fuzzing::otlp_protobuf),
    ("otlp_built", sieve::fuzzing::otlp_built),
    ("otlp_json", sieve::fuzzing::otlp_json),
    ("compressed_body", sieve::fuzzing::compressed_body),
    ("tracestate", sieve::fuzzing::tracestate),
    ("analyze_file", sieve::fuzzing::analyze_file),
    ("log_lines", sieve::fuzzing::log_lines),
    ("config_yaml", sieve::fuzzing::config_yaml),
    ("query_args", sieve::fuzzing::query_args),
    ("store_values", sieve::fuzzing::store_values),
    ("store_files", sieve::fuzzing::store_files),
];

fn target(name: &str) -> Target {
    TARGETS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, f)| *f)
        .unwrap_or_else(|| panic!("no fuzz target {name}"))
}

#[test]
fn every_target_has_a_fuzz_binary_and_a_corpus() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    for (name, _) in TARGETS {
        assert!(
            root.join("fuzz_targets")
                .join(format!("{name}.rs"))
                .exists(),
            "fuzz/fuzz_targets/{name}.rs"
        );
        let corpus = root.join("corpus").join(name);
        let n = std::fs::read_dir(&corpus)
            .map(|d| d.count())
            .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()));
        assert!(n > 0, "{} is empty", corpus.display());
    }
}

#[test]
fn committed_corpora_replay_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut ran = 0;
    for (name, run) in TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in dir {
            let path = entry.expect("corpus entry").path();
            let input = std::fs::read(&path).expect("corpus file");
            let outcome = std::panic::catch_unwind(|| run(&input));
            assert!(outcome.is_ok(), "{} panics", path.display());
            ran += 1;
        }
    }
    assert!(ran > 0);
    eprintln!("{ran} corpus inputs");
}

#[test]
fn generated_seeds_replay_cleanly() {
    let seeds = sieve::fuzzing::seeds();
    // Every target has at least one seed.
    for (name, _) in TARGETS {
        assert!(seeds.iter().any(|(t, _)| t == name), "no seed for {name}");
    }
    for (name, input) in seeds {
        target(name)(&input);
    }
}

/// Found by `fuzz/run.sh` (2026-12-04): a line's masked signature was cached against a
/// cluster whose template a later alignment reshaped, so the line was counted in a cluster
/// whose template no longer took it. The clusterer now checks a cached signature again
/// after its cluster's template changed, and starts a cluster when placing reshapes it.
#[test]
fn regression_log_lines_cached_signature_after_template_change() {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/log_lines/regression-9ad07a2c");
    let input = std::fs::read(&path).expect("regression input");
    sieve::fuzzing::log_lines(&input);
}
