//! The gateway binary as users run it: durability across `kill -9`, clean exit on SIGTERM,
//! the embedded default config, and configuration errors.

mod common;

use std::time::Duration;

use opentelemetry::logs::{
    AnyValue as LogValue, LogRecord as _, Logger as _, LoggerProvider as _, Severity,
};
use opentelemetry::trace::{Link, Span as _, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, KeyValue};
use opentelemetry_proto::tonic::common::v1::any_value;
use sieve::proto::{GetTraceRequest, SearchLogsRequest};

/// Spans and logs acknowledged by the gateway survive a SIGKILL: after a restart on the same
/// data directory every one is there with its resource, scope, attributes, events and links.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_data_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = common::write_config(dir.path(), &data, "");
    let config_arg = config.to_str().unwrap().to_string();
    let mut proc = common::spawn_sieve(&["serve", "--config", &config_arg], dir.path());

    let tracer_provider = common::tracer_provider(&proc.otlp, "durable", None);
    let logger_provider = common::logger_provider(&proc.otlp, "durable");
    let tracer = tracer_provider.tracer("kill-test");
    let logger = logger_provider.logger("kill-test");
    let mut traces = Vec::new();
    for i in 0..50i64 {
        let root = tracer.start(format!("request {i}"));
        let root_ctx = root.span_context().clone();
        let cx = Context::current_with_span(root);
        let mut child = tracer
            .span_builder("child")
            .with_attributes([KeyValue::new("i", i)])
            .with_links(vec![Link::with_context(root_ctx.clone())])
            .start_with_context(&tracer, &cx);
        child.add_event("checkpoint", vec![KeyValue::new("i", i)]);
        {
            let _g = Context::current_with_span(child).attach();
            let mut rec = logger.create_log_record();
            rec.set_severity_number(Severity::Info);
            rec.set_body(LogValue::from(format!("log {i}")));
            logger.emit(rec);
            Context::current().span().end();
        }
        cx.span().end();
        traces.push(root_ctx.trace_id().to_string());
    }
    let (tp, lp) = (tracer_provider.clone(), logger_provider.clone());
    common::blocking(move || {
        tp.force_flush().expect("spans acknowledged");
        lp.force_flush().expect("logs acknowledged");
    })
    .await;

    let status = proc.signal_and_wait("KILL");
    assert!(!status.success());
    drop(proc);

    let proc = common::spawn_sieve(&["serve", "--config", &config_arg], dir.path());
    let mut q = common::query_client(&proc.query).await;
    for (i, id) in traces.iter().enumerate() {
        let t = q
            .get_trace(GetTraceRequest {
                trace_id: id.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("trace {i} lost: {e}"))
            .into_inner();
        let spans: Vec<_> = sieve::otlp::spans(&t.resource_spans)
            .map(|(_, s)| s)
            .collect();
        assert_eq!(spans.len(), 2, "trace {i}");
        let child = spans.iter().find(|s| s.name == "child").expect("child");
        assert_eq!(child.events.len(), 1);
        assert_eq!(child.links.len(), 1);
        assert!(child.attributes.iter().any(|kv| kv.key == "i"));
        let res = t.resource_spans[0].resource.as_ref().unwrap();
        assert!(
            res.attributes
                .iter()
                .any(|kv| kv.key == "deployment.environment")
        );
        assert_eq!(
            t.resource_spans[0].scope_spans[0]
                .scope
                .as_ref()
                .unwrap()
                .name,
            "kill-test"
        );
    }
    let logs = common::logs(
        &mut q,
        SearchLogsRequest {
            service_name: "durable".into(),
            limit: 1000,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(logs.len(), 50);
    for l in &logs {
        let r = l.log_record.as_ref().unwrap();
        assert_eq!(r.trace_id.len(), 16);
        assert!(
            matches!(r.body.as_ref().and_then(|b| b.value.as_ref()), Some(any_value::Value::StringValue(s)) if s.starts_with("log "))
        );
    }
    let (tp, lp) = (tracer_provider, logger_provider);
    common::blocking(move || {
        let _ = tp.shutdown();
        let _ = lp.shutdown();
    })
    .await;
}

/// SIGTERM stops the gateway cleanly (exit 0) after it logged one line per listener; SIGINT too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_and_sigint_exit_zero() {
    for signal in ["TERM", "INT"] {
        let dir = tempfile::tempdir().unwrap();
        let config = common::write_config(dir.path(), &dir.path().join("data"), "");
        let mut proc =
            common::spawn_sieve(&["serve", "--config", config.to_str().unwrap()], dir.path());
        let provider = common::tracer_provider(&proc.otlp, "bye", None);
        let tracer = provider.tracer("t");
        tracer.start("last words").end();
        let p = provider.clone();
        common::blocking(move || p.force_flush())
            .await
            .expect("flush");
        let status = proc.signal_and_wait(signal);
        assert!(status.success(), "{signal}: {status:?}");
        std::thread::sleep(Duration::from_millis(100));
        let lines = proc.stderr.lock().unwrap().clone();
        assert_eq!(
            lines.iter().filter(|l| l.contains("listening on")).count(),
            4, // otlp grpc, otlp http, query grpc, metrics http
            "{lines:?}"
        );
        assert!(lines.iter().any(|l| l.contains("stopped")), "{lines:?}");
        common::blocking(move || provider.shutdown()).await.ok();
    }
}

/// `sieve` with no arguments serves the embedded default config: 127.0.0.1:4317, :4318 and
/// :4320, data in ./sieve-data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_arguments_serves_embedded_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let mut proc = common::spawn_sieve(&[], dir.path());
    assert_eq!(proc.otlp, "http://127.0.0.1:4317");
    assert_eq!(proc.otlp_http, "http://127.0.0.1:4318");
    assert_eq!(proc.query, "http://127.0.0.1:4320");
    assert!(dir.path().join("sieve-data").is_dir());
    // The own-telemetry port of the Collector: health and metrics.
    let (status, _) = common::http("GET", "http://127.0.0.1:8888/health/ready").await;
    assert_eq!(status, 200);
    let (status, text) = common::http("GET", "http://127.0.0.1:8888/metrics").await;
    assert_eq!(status, 200);
    assert!(text.contains("# TYPE sieve_receiver_accepted_items_total counter"));
    assert!(proc.signal_and_wait("TERM").success());
}

fn run(args: &[&str]) -> (i32, String) {
    let out = std::process::Command::new(common::sieve_bin())
        .args(args)
        .env("SIEVE_TEST_PORT", "4999")
        .env_remove("NOT_SET_FOR_SIEVE")
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

/// Configuration errors: `config check` and `serve` both exit non-zero naming the key and the
/// reason; a good file (with env expansion) passes; the embedded default passes.
#[test]
fn config_errors_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let good = write(
        "good.yaml",
        "query:\n  endpoint: 127.0.0.1:${env:SIEVE_TEST_PORT}\nstorage:\n  retention: 2h\n",
    );
    let (code, out) = run(&["config", "check", &good]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("ok"));

    let default = write("default.yaml", sieve::config::DEFAULT_CONFIG_YAML);
    assert_eq!(run(&["config", "check", &default]).0, 0);
    let (code, out) = run(&["config", "default"]);
    assert_eq!(code, 0);
    assert_eq!(out, sieve::config::DEFAULT_CONFIG_YAML);

    for (name, text, key, reason) in [
        (
            "unknown.yaml",
            "storage:\n  retenton: 1h\n",
            "storage",
            "unknown field `retenton`",
        ),
        (
            "badvalue.yaml",
            "storage:\n  retention: forever\n",
            "storage.retention",
            "invalid duration",
        ),
        (
            "zero.yaml",
            "storage:\n  retention: 0s\n",
            "storage.retention",
            "greater than zero",
        ),
        (
            "addr.yaml",
            "query:\n  endpoint: somewhere\n",
            "query.endpoint",
            "socket address",
        ),
        (
            "env.yaml",
            "storage:\n  path: ${env:NOT_SET_FOR_SIEVE}\n",
            "storage.path",
            "NOT_SET_FOR_SIEVE",
        ),
        (
            "type.yaml",
            "intake:\n  max_inflight_mib: lots\n",
            "intake.max_inflight_mib",
            "invalid type",
        ),
        (
            "pipeline.yaml",
            "service:\n  pipelines:\n    traces:\n      receivers: [otlp]\n      exporters: [jaeger]\n",
            "service.pipelines.traces.exporters",
            "jaeger",
        ),
        ("yaml.yaml", "storage: [unclosed\n", "YAML", ""),
    ] {
        let path = write(name, text);
        for args in [
            vec!["config", "check", path.as_str()],
            vec!["serve", "--config", path.as_str()],
        ] {
            let (code, out) = run(&args);
            assert_ne!(code, 0, "{args:?} should fail");
            assert!(out.contains(key) && out.contains(reason), "{args:?}: {out}");
        }
    }
    let (code, out) = run(&["config", "check", "/definitely/not/here.yaml"]);
    assert_ne!(code, 0);
    assert!(out.contains("cannot read config file"), "{out}");
}

/// `--log-format json` writes one JSON object per line, listener lines included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_log_format() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::write_config(dir.path(), &dir.path().join("data"), "");
    let mut proc = common::spawn_sieve(
        &[
            "serve",
            "--config",
            config.to_str().unwrap(),
            "--log-format",
            "json",
        ],
        dir.path(),
    );
    assert!(proc.signal_and_wait("TERM").success());
    std::thread::sleep(Duration::from_millis(100));
    let lines = proc.stderr.lock().unwrap().clone();
    assert!(lines.len() >= 3, "{lines:?}");
    for l in &lines {
        let v: serde_json::Value =
            serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}"));
        assert!(v["fields"]["message"].is_string(), "{l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"listener\":\"otlp grpc\"")),
        "{lines:?}"
    );
}

/// A second gateway on a data directory in use, or on a port in use, exits non-zero with a
/// message saying which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_directory_or_port_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = common::write_config(dir.path(), &data, "");
    let mut first =
        common::spawn_sieve(&["serve", "--config", config.to_str().unwrap()], dir.path());

    let (code, out) = run(&["serve", "--config", config.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(out.contains("cannot open the store"), "{out}");

    let other = tempfile::tempdir().unwrap();
    let port = first.otlp.rsplit(':').next().unwrap().to_string();
    let path = other.path().join("port.yaml");
    std::fs::write(
        &path,
        format!(
            "receivers:\n  otlp:\n    protocols:\n      grpc:\n        endpoint: 127.0.0.1:{port}\nquery:\n  endpoint: 127.0.0.1:0\nstorage:\n  path: {}\nservice:\n{}",
            other.path().join("data").display(),
            common::TEST_TELEMETRY
        ),
    )
    .unwrap();
    let (code, out) = run(&["serve", "--config", path.to_str().unwrap()]);
    assert_ne!(code, 0);
    assert!(
        out.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{out}"
    );
    assert!(first.signal_and_wait("TERM").success());
}

/// The Collector configs shipped in config/examples run unchanged: `config check` passes on
/// each (the agent's token from the environment), and one is served for real.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_configs_in_config_examples_pass_config_check() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/examples");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("config/examples")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    for f in &files {
        let out = std::process::Command::new(common::sieve_bin())
            .args(["config", "check"])
            .arg(f)
            .env("SIEVE_AGENT_TOKEN", "agent-token-123")
            .output()
            .expect("config check");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{}: {text}", f.display());
        assert!(text.contains(": ok"), "{text}");
        assert!(!text.contains("agent-token-123"), "{text}");
    }
    // Without the variable the agent's config names it.
    let agent = dir.join("collector-agent.yaml");
    let out = std::process::Command::new(common::sieve_bin())
        .args(["config", "check"])
        .arg(&agent)
        .env_remove("SIEVE_AGENT_TOKEN")
        .output()
        .expect("config check");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SIEVE_AGENT_TOKEN"));
}
