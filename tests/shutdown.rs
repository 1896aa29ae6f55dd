//! Graceful shutdown under load: requests in flight when the stop comes are finished and
//! flushed; every request that got OK is on disk after a restart on the same directory.

mod common;

use common::otlp;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use sieve::proto::GetTraceRequest;

fn request(client: u8, n: u8) -> ExportTraceServiceRequest {
    let now = sieve::store::now_ns();
    let trace_id = [client + 1, n + 1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7];
    let spans = (0..50u8)
        .map(|i| otlp::span(&trace_id, &[i + 1; 8], "op", now, now + 1000))
        .collect();
    otlp::traces_request("busy", spans)
}

/// Twelve clients send while the gateway is told to stop: the stop completes cleanly, and
/// after a restart every acknowledged trace is there with all its spans.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_under_load_loses_no_acknowledged_request() {
    let mut gw = common::start(|_| {}).await;
    let oks = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..12u8 {
        let url = gw.otlp.clone();
        let oks = oks.clone();
        tasks.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            let Ok(ch) = tonic::transport::Channel::from_shared(url)
                .unwrap()
                .connect()
                .await
            else {
                return acked;
            };
            let mut client = TraceServiceClient::new(ch);
            for n in 0..200u8 {
                match client.export(request(c, n)).await {
                    Ok(_) => {
                        oks.fetch_add(1, Ordering::SeqCst);
                        acked.push((c, n));
                    }
                    // Refused or cut off by the shutdown: not acknowledged, nothing promised.
                    Err(_) => break,
                }
            }
            acked
        }));
    }
    while oks.load(Ordering::SeqCst) < 24 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gw.trigger_stop();
    let mut acked = Vec::new();
    for t in tasks {
        acked.extend(t.await.unwrap());
    }
    let dir = gw.stop_keep_dir().await;
    assert!(acked.len() >= 24);

    let gw = common::start_in(dir, |_| {}).await;
    let mut q = gw.query_client().await;
    for (c, n) in &acked {
        let tid = hex::encode([c + 1, n + 1, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7]);
        let t = q
            .get_trace(GetTraceRequest {
                trace_id: tid.clone(),
            })
            .await
            .unwrap_or_else(|e| panic!("acknowledged trace {tid} lost: {e}"))
            .into_inner();
        let spans = sieve::otlp::spans(&t.resource_spans).count();
        assert_eq!(spans, 50, "{tid}");
    }
    gw.stop().await;
}
