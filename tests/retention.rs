//! Retention: partitions whose data time is past `storage.retention` are dropped by the
//! sweeper, with a retention of seconds.

mod common;

use common::otlp;

use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_client::LogsServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use opentelemetry_proto::tonic::logs::v1::LogRecord;
use sieve::proto::{GetServicesRequest, GetTraceRequest, SearchLogsRequest};
use tonic::Code;

const S: u64 = 1_000_000_000;

fn spans(tid: u8, start: u64) -> ExportTraceServiceRequest {
    let span = otlp::span(&[tid; 16], &[1; 8], "op", start, start + 1000);
    otlp::traces_request("ephemeral", vec![span])
}

/// Data is queryable while young and gone once its partition passes the horizon; data that
/// arrives already older than the retention (a replay) is acknowledged, counted as expired
/// and not stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_partitions_are_dropped() {
    let gw = common::start(|c| {
        c.storage.retention = Duration::from_secs(2);
        c.storage.partition = Duration::from_secs(1);
        c.storage.sweep_interval = Duration::from_millis(100);
    })
    .await;
    let mut traces = TraceServiceClient::new(gw.otlp_channel().await);
    let mut logs = LogsServiceClient::new(gw.otlp_channel().await);
    let mut q = gw.query_client().await;
    let now = sieve::store::now_ns();

    // A replay of hour-old data: expired on arrival, reported in partial_success, counted,
    // not stored.
    let resp = traces
        .export(spans(0x01, now - 3600 * S))
        .await
        .unwrap()
        .into_inner();
    let ps = resp.partial_success.expect("partial success");
    assert_eq!(ps.rejected_spans, 1);
    assert_eq!(
        ps.error_message,
        "rejected 1 spans: 1 spans older than the storage retention were not stored"
    );
    let stats = q
        .get_stats(sieve::proto::GetStatsRequest {})
        .await
        .unwrap()
        .into_inner();
    let s = stats.spans.unwrap();
    assert_eq!((s.received, s.accepted, s.expired), (1, 0, 1));
    // Young data.
    traces.export(spans(0x02, now)).await.unwrap();
    let record = LogRecord {
        time_unix_nano: now,
        ..Default::default()
    };
    logs.export(otlp::logs_request("ephemeral", vec![record]))
        .await
        .unwrap();

    let getter = q.clone();
    let get = |b: u8| {
        let mut q = getter.clone();
        async move {
            q.get_trace(GetTraceRequest {
                trace_id: hex::encode([b; 16]),
            })
            .await
            .map(|_| ())
            .map_err(|e| e.code())
        }
    };
    common::eventually(
        Duration::from_secs(10),
        "the replayed trace swept",
        async || get(0x01).await.err().ok_or("still there"),
    )
    .await;
    assert_eq!(
        get(0x02).await,
        Ok(()),
        "young data survives the sweep of old data"
    );
    let n = common::logs(
        &mut q,
        SearchLogsRequest {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .len();
    assert_eq!(n, 1);
    assert_eq!(
        q.get_services(GetServicesRequest {})
            .await
            .unwrap()
            .into_inner()
            .services,
        ["ephemeral"]
    );

    // After retention + one partition, the young data is gone as well.
    common::eventually(
        Duration::from_secs(15),
        "the young trace to expire",
        async || get(0x02).await.err().ok_or("still there"),
    )
    .await;
    assert_eq!(get(0x02).await, Err(Code::NotFound));
    let n = common::logs(
        &mut q,
        SearchLogsRequest {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .len();
    assert_eq!(n, 0);
    assert!(
        q.get_services(GetServicesRequest {})
            .await
            .unwrap()
            .into_inner()
            .services
            .is_empty()
    );
    gw.stop().await;
}
