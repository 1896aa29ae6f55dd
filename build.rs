//! Compiles proto/sieve/v1/query.proto with protox (pure Rust: no `protoc` needed).
//! The OTLP files under proto/opentelemetry are import-only: their Rust types come from the
//! `opentelemetry-proto` crate through `extern_path`, so the generated code uses the same types
//! the receivers decode.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["sieve/v1/query.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .extern_path(".opentelemetry.proto", "::opentelemetry_proto::tonic")
        .compile_fds(fds)?;
    Ok(())
}
