//! Tests of loading, defaults and validation.

use super::exporters::default_timeout;
use super::processors::{
    default_buffer_mib, default_decision_cache, default_decision_wait, default_num_traces,
    default_quiet_period,
};
use super::*;

#[test]
fn byte_sizes() {
    assert_eq!(byte_size::parse("50GiB"), Ok(50 << 30));
    assert_eq!(byte_size::parse("1.5 GB"), Ok(1_500_000_000));
    assert_eq!(byte_size::parse("4096"), Ok(4096));
    assert_eq!(byte_size::parse("10mib"), Ok(10 << 20));
    assert!(byte_size::parse("10 parsecs").is_err());
    assert!(byte_size::parse("GiB").is_err());
    assert!(byte_size::parse("0").is_err());
    let c = parse("storage:\n  max_disk_size: 2GiB\n  compression: none\n").unwrap();
    assert_eq!(c.storage.max_disk_size, Some(2 << 30));
    assert_eq!(c.storage.compression, StorageCompression::None);
    let c = parse("storage:\n  max_disk_size: 123456\n").unwrap();
    assert_eq!(c.storage.max_disk_size, Some(123_456));
    let e = parse("storage:\n  max_disk_size: lots\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid size"), "{e}");
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_yaml_with_env(text, &|name| match name {
        "PORT" => Some("4999".into()),
        "DIR" => Some("/tmp/x".into()),
        _ => None,
    })
}

#[test]
fn embedded_default_parses_and_matches_struct_defaults() {
    let c = Config::from_yaml(DEFAULT_CONFIG_YAML).expect("default config");
    let d = Config::default();
    assert_eq!(c.storage.path, d.storage.path);
    assert_eq!(c.storage.retention, d.storage.retention);
    assert_eq!(c.storage.sync, d.storage.sync);
    assert_eq!(c.query.endpoint, d.query.endpoint);
    assert_eq!(c.otlp_grpc_addr(), d.otlp_grpc_addr());
    assert_eq!(c.intake.max_inflight_mib, d.intake.max_inflight_mib);
    assert_eq!(format!("{:?}", c.analysis), format!("{:?}", d.analysis));
    assert_eq!(format!("{:?}", c.alerting), format!("{:?}", d.alerting));
    assert_eq!(
        c.receivers.otlp.as_ref().map(|o| o.limits.max_attributes),
        Some(128)
    );
}

/// The commented exporter example in the embedded default parses, and its values are
/// the defaults it claims.
#[test]
fn commented_exporter_example_is_valid_and_shows_the_defaults() {
    let example: String = DEFAULT_CONFIG_YAML
        .lines()
        .skip_while(|l| !l.starts_with("#   exporters:"))
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.strip_prefix("#   ").unwrap_or("")))
        .collect();
    assert!(example.contains("otlp/backend"), "{example}");
    let yaml = format!(
        "{example}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [otlp/backend, otlphttp/saas, debug, file/archive]\n"
    );
    let c = parse(&yaml).expect("the example parses");
    let Some(Exporter::Otlp(o)) = c.exporters.get("otlp/backend") else {
        panic!("otlp/backend missing");
    };
    assert_eq!(
        o.sending_queue.queue_size_mib,
        SendingQueue::default().queue_size_mib
    );
    assert_eq!(
        o.sending_queue.num_consumers,
        SendingQueue::default().num_consumers
    );
    assert_eq!(o.batch.send_batch_size, Batch::default().send_batch_size);
    assert_eq!(
        o.batch.max_request_bytes,
        Batch::default().max_request_bytes
    );
    assert_eq!(o.batch.timeout, Batch::default().timeout);
    assert_eq!(
        o.retry_on_failure.initial_interval,
        RetryOnFailure::default().initial_interval
    );
    assert_eq!(
        o.retry_on_failure.max_interval,
        RetryOnFailure::default().max_interval
    );
    assert_eq!(o.circuit_breaker.window, CircuitBreaker::default().window);
    assert_eq!(
        o.circuit_breaker.cool_down,
        CircuitBreaker::default().cool_down
    );
    assert_eq!(o.timeout, default_timeout());
    assert_eq!(o.compression, Compression::Gzip);
    assert!(
        matches!(c.exporters.get("file/archive"), Some(Exporter::File(f)) if f.rotation.max_megabytes == 100 && f.rotation.max_backups == 10)
    );
}

/// The commented processor example in the embedded default parses and shows defaults.
#[test]
fn commented_processor_example_is_valid() {
    let example: String = DEFAULT_CONFIG_YAML
        .lines()
        .skip_while(|l| !l.starts_with("#   processors:"))
        .take_while(|l| l.starts_with('#'))
        .map(|l| format!("{}\n", l.strip_prefix("#   ").unwrap_or("")))
        .collect();
    let yaml = format!(
        "{example}service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      processors: [probabilistic_sampler, adaptive_sampler, tail_sampling]\n    logs:\n      receivers: [otlp]\n      processors: [probabilistic_sampler]\n"
    );
    let c = parse(&yaml).expect("the example parses");
    let Some(Processor::TailSampling(t)) = c.processors.get("tail_sampling") else {
        panic!("tail_sampling missing");
    };
    assert_eq!(t.decision_wait, default_decision_wait());
    assert_eq!(t.quiet_period, default_quiet_period());
    assert_eq!(t.num_traces, default_num_traces());
    assert_eq!(t.max_buffer_mib, default_buffer_mib());
    assert_eq!(t.decision_cache, default_decision_cache());
    assert_eq!(t.policies.len(), 8);
    let Some(Processor::AdaptiveSampler(a)) = c.processors.get("adaptive_sampler") else {
        panic!("adaptive_sampler missing");
    };
    assert_eq!(a.interval, default_adaptive_interval());
    assert_eq!(a.min_probability, default_min_probability());
    let Some(Processor::ProbabilisticSampler(p)) = c.processors.get("probabilistic_sampler") else {
        panic!("probabilistic_sampler missing");
    };
    assert_eq!(p.sampling_precision, default_precision());
}

#[test]
fn empty_file_is_all_defaults() {
    let c = parse("").unwrap();
    assert_eq!(c.query.endpoint, "127.0.0.1:4320");
}

#[test]
fn env_expansion_whole_and_embedded() {
    let c = parse(
        "query:\n  endpoint: 127.0.0.1:${env:PORT}\nstorage:\n  path: ${env:DIR}/data\n  cache_capacity_mib: ${env:NOPE:-32}\n",
    )
    .unwrap();
    assert_eq!(c.query.endpoint, "127.0.0.1:4999");
    assert_eq!(c.storage.path, PathBuf::from("/tmp/x/data"));
    assert_eq!(c.storage.cache_capacity_mib, 32);
}

#[test]
fn missing_env_names_key_and_variable() {
    let e = parse("storage:\n  path: ${env:NOT_SET_ANYWHERE}\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("storage.path"), "{e}");
    assert!(e.contains("NOT_SET_ANYWHERE"), "{e}");
}

#[test]
fn malformed_env_reference() {
    let e = parse("storage:\n  path: ${env:oops\n")
        .unwrap_err()
        .to_string();
    assert!(e.contains("malformed"), "{e}");
}

#[test]
fn unknown_key_is_named() {
    let e = parse("storage:\n  retenton: 1h\n").unwrap_err().to_string();
    assert!(e.contains("storage"), "{e}");
    assert!(e.contains("retenton"), "{e}");
}

#[test]
fn bad_values_are_named() {
    for (yaml, key) in [
        ("storage:\n  retention: forever\n", "storage.retention"),
        ("storage:\n  retention: 0s\n", "storage.retention"),
        ("query:\n  endpoint: nowhere\n", "query.endpoint"),
        (
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        max_recv_msg_size_mib: 0\n",
            "max_recv_msg_size_mib",
        ),
        ("storage:\n  sync: maybe\n", "storage.sync"),
        ("exporters:\n  otlp: {}\n", "exporters.otlp"),
        (
            "processors:\n  batch:\n    metadata_keys: [tenant]\n",
            "processors.batch.metadata_keys",
        ),
        (
            "service:\n  pipelines:\n    traces:\n      receivers: [kafka]\n",
            "service.pipelines.traces.receivers",
        ),
        (
            "service:\n  pipelines:\n    profiles:\n      receivers: [otlp]\n",
            "service.pipelines.profiles",
        ),
        (
            "service:\n  telemetry:\n    logs:\n      format: xml\n",
            "service.telemetry.logs.format",
        ),
        (
            "service:\n  telemetry:\n    logs:\n      level: 'sieve=[[['\n",
            "service.telemetry.logs.level",
        ),
        (
            "intake:\n  max_inflight_mib: -1\n",
            "intake.max_inflight_mib",
        ),
        ("analysis:\n  tolerance: 1.5\n", "analysis.tolerance"),
        ("analysis:\n  max_spans: 0\n", "analysis.max_spans"),
        ("analysis:\n  max_series: -3\n", "analysis.max_series"),
        ("analysis:\n  trace_idle: 0s\n", "analysis.trace_idle"),
        (
            "analysis:\n  flush_interval: soon\n",
            "analysis.flush_interval",
        ),
        ("analysis:\n  retention_1h: 30m\n", "analysis.retention_1h"),
        ("analysis:\n  retention_10s: 5s\n", "analysis.retention_10s"),
        (
            "analysis:\n  graph_max_pending: 0\n",
            "analysis.graph_max_pending",
        ),
        ("analysis:\n  sampling: 1\n", "analysis"),
        ("analysis:\n  enabled: sometimes\n", "analysis.enabled"),
        (
            "alerting:\n  evaluation_interval: 0s\n",
            "alerting.evaluation_interval",
        ),
        (
            "alerting:\n  correlation:\n    tau: 2\n",
            "alerting.correlation.tau",
        ),
        (
            "alerting:\n  rules:\n    - {name: a, signal: span.errors, detector: {type: spc, warmup: 5}}\n",
            "alerting.rules[0].signal",
        ),
        (
            "alerting:\n  rules:\n    - {name: a, signal: log.cluster_rate, group_by: [operation], detector: {type: spc, warmup: 5}}\n",
            "alerting.rules[0].group_by",
        ),
        (
            "alerting:\n  rules:\n    - {name: a, signal: apdex, detector: {type: ewma, lambda: 2, l: 3, warmup: 5}}\n",
            "alerting.rules[0].detector",
        ),
        (
            "alerting:\n  rules:\n    - {name: a, signal: apdex, detector: {type: magic}}\n",
            "alerting.rules",
        ),
        (
            "alerting:\n  rules:\n    - {name: a, signal: apdex, detector: {type: static, above: 1}}\n    - {name: a, signal: apdex, detector: {type: static, above: 1}}\n",
            "alerting.rules[1].name",
        ),
        (
            "alerting:\n  receivers:\n    - {name: ops, webhook: {url: 'ftp://x'}}\n  route: {receiver: ops}\n",
            "alerting.receivers[0].url",
        ),
        (
            "alerting:\n  receivers:\n    - {name: ops, webhook: {url: 'http://x'}}\n  route: {receiver: dev}\n",
            "alerting.route.receiver",
        ),
        (
            "alerting:\n  inhibit_rules:\n    - {source_matchers: ['a=~('], target_matchers: []}\n",
            "alerting.inhibit_rules[0].source_matchers",
        ),
        (
            "alerting:\n  silences:\n    - {matchers: [a=b], starts_at: '2026-01-02T00:00:00Z', ends_at: '2026-01-01T00:00:00Z'}\n",
            "alerting.silences[0].ends_at",
        ),
        (
            "alerting:\n  rules:\n    - {name: a, signal: apdex, detector: {type: cusum, k: 0.5, h: 5, warmup: 5, sigma_floor: -1}}\n",
            "alerting.rules[0].detector",
        ),
        (
            "alerting:\n  rules:\n    - {name: a, signal: apdex, detector: {type: cusum, k: 0.5, h: 5, warmup: 5, direction: sideways}}\n",
            "alerting.rules",
        ),
        (
            "alerting:\n  correlation:\n    resolve_after: soon\n",
            "alerting.correlation",
        ),
        (
            "analysis:\n  logs:\n    patterns: ['(']\n",
            "analysis.logs.patterns[0]",
        ),
        (
            "analysis:\n  logs:\n    max_clusters: 0\n",
            "analysis.logs.max_clusters",
        ),
        (
            "analysis:\n  logs:\n    template_attribute: ''\n",
            "analysis.logs.template_attribute",
        ),
    ] {
        let e = parse(yaml).unwrap_err().to_string();
        assert!(e.contains(key), "{yaml:?} gave {e:?}, wanted key {key}");
    }
}

#[test]
fn not_yaml() {
    assert!(matches!(parse("a: [1, 2"), Err(ConfigError::Yaml(_))));
}

/// The config's field names as serde reads them: every field of every `Deserialize` struct
/// and struct variant in `src/config/` and `sampling::policy`, `rename`s applied.
fn config_field_names() -> std::collections::BTreeSet<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files: Vec<_> = std::fs::read_dir(root.join("config"))
        .expect("src/config")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "tests.rs"))
        .collect();
    files.push(root.join("sampling/policy.rs"));
    let mut names = std::collections::BTreeSet::new();
    for f in files {
        let text = std::fs::read_to_string(&f).expect("read source");
        let file = f
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let (mut derives, mut inside, mut rename) = (false, false, None::<String>);
        for line in text.lines() {
            let t = line.trim();
            if t.starts_with("#[derive(") {
                derives = t.contains("Deserialize");
            } else if t.starts_with("pub struct ") || t.starts_with("pub enum ") {
                inside = derives && t.ends_with('{');
                derives = false;
            } else if line == "}" {
                inside = false;
            } else if inside && t.starts_with("#[serde(") {
                if let Some(r) = t.split("rename = \"").nth(1) {
                    rename = r.split('"').next().map(str::to_string);
                }
            } else if inside && !t.starts_with("//") {
                let field = t.strip_prefix("pub ").unwrap_or(t);
                if let Some((name, _)) = field.split_once(": ")
                    && !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                {
                    names.insert((file.clone(), rename.take().unwrap_or_else(|| name.into())));
                }
                rename = None;
            }
        }
    }
    names
}

/// `config/sieve.yaml` is the reference a user reads: every field the structs accept is in
/// it, set or in a commented example (the structs' doc comments say the same at more length;
/// `#![deny(missing_docs)]` on the config module keeps those complete).
#[test]
fn every_config_field_is_in_the_reference_file() {
    let names = config_field_names();
    assert!(names.len() > 100, "the scan found too little: {names:?}");
    assert!(
        names.contains(&("alerting.rs".into(), "for".into())),
        "renames are applied"
    );
    let missing: Vec<String> = names
        .iter()
        .filter(|(_, n)| {
            !DEFAULT_CONFIG_YAML
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .any(|w| w == format!("{n}:"))
        })
        .map(|(f, n)| format!("{f}: {n}"))
        .collect();
    assert!(
        missing.is_empty(),
        "fields not documented in config/sieve.yaml:\n{}",
        missing.join("\n")
    );
}
