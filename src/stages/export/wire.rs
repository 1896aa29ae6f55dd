//! OTLP export requests at the protobuf wire level: concatenating, counting and splitting
//! them without decoding.
//!
//! The three export requests have one shape: the request is a repeated field 1 of
//! resource containers (`ResourceSpans`, `ResourceLogs`, `ResourceMetrics`); a resource
//! container is its resource (1), a repeated field 2 of scope containers and its schema URL
//! (3); a scope container is its scope (1), a repeated field 2 of items (spans, log records,
//! metrics) and its schema URL (3). Two facts follow:
//! - **Concatenation batches.** Protobuf merges repeated fields by appending, so the bytes of
//!   two requests one after the other are one valid request holding both requests' resource
//!   containers, in order. Batching is `memcpy`: resource and scope grouping and every field,
//!   unknown ones included, reach the downstream byte for byte (decoding and re-encoding with
//!   prost would drop unknown fields).
//! - **Splitting keeps context.** [`split`] cuts a request into requests of at most `max`
//!   bytes at item boundaries; each piece repeats the resource and scope fields (everything but
//!   the repeated child field, verbatim) of the items it carries. Pieces decoded and
//!   concatenated give back exactly the original (resource, scope, item) triples in order.
//!
//! Invariants, checked by the tests against prost as the oracle (plus proptest): every piece
//! is at most `max` bytes unless it holds a single item that alone is larger (reported with
//! `oversize`); item counts add up; no byte of an item is changed.

use bytes::{BufMut, Bytes};

/// A request that is not valid protobuf of the expected shape.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed OTLP request at byte {at}: {reason}")]
pub struct WireError {
    pub at: usize,
    pub reason: &'static str,
}

/// One piece of a split request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub body: Bytes,
    /// Spans, log records or metrics in it.
    pub items: u64,
    /// Larger than the limit: it holds one item that alone is larger.
    pub oversize: bool,
}

/// Nesting: the request holds resources, which hold scopes, which hold items.
const REQUEST: u8 = 2;
const SCOPE: u8 = 0;

fn read_varint(b: &[u8], at: &mut usize) -> Result<u64, WireError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or(WireError {
            at: *at,
            reason: "truncated varint",
        })?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(WireError {
        at: *at,
        reason: "varint longer than 10 bytes",
    })
}

fn varint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// One top-level field of a message: its number and the whole encoded field (tag included),
/// and for length-delimited fields the payload.
struct Field<'a> {
    number: u64,
    raw: &'a [u8],
    payload: Option<&'a [u8]>,
}

/// Walks the fields of one message.
fn fields(msg: &[u8]) -> impl Iterator<Item = Result<Field<'_>, WireError>> {
    let mut at = 0usize;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || at >= msg.len() {
            return None;
        }
        let start = at;
        let r = (|| {
            let key = read_varint(msg, &mut at)?;
            let number = key >> 3;
            if number == 0 {
                return Err(WireError {
                    at: start,
                    reason: "field number 0",
                });
            }
            let mut payload = None;
            match key & 7 {
                0 => {
                    read_varint(msg, &mut at)?;
                }
                1 => at += 8,
                5 => at += 4,
                2 => {
                    let len = read_varint(msg, &mut at)?;
                    let end = usize::try_from(len)
                        .ok()
                        .and_then(|l| at.checked_add(l))
                        .filter(|e| *e <= msg.len())
                        .ok_or(WireError {
                            at,
                            reason: "length past the end",
                        })?;
                    payload = Some(&msg[at..end]);
                    at = end;
                }
                _ => {
                    return Err(WireError {
                        at: start,
                        reason: "unsupported wire type",
                    });
                }
            }
            if at > msg.len() {
                return Err(WireError {
                    at: start,
                    reason: "field past the end",
                });
            }
            Ok(Field {
                number,
                raw: &msg[start..at],
                payload,
            })
        })();
        if r.is_err() {
            failed = true;
        }
        Some(r)
    })
}

/// A container taken apart: its fields other than the repeated child field (verbatim, in
/// order) and the payloads of its children.
struct Container<'a> {
    header: Vec<u8>,
    children: Vec<&'a [u8]>,
}

/// The repeated child field: 1 in a request, 2 in resource and scope containers.
fn child_field(depth: u8) -> u64 {
    if depth == REQUEST { 1 } else { 2 }
}

fn parse(msg: &[u8], depth: u8) -> Result<Container<'_>, WireError> {
    let child = child_field(depth);
    let mut c = Container {
        header: Vec::new(),
        children: Vec::new(),
    };
    for f in fields(msg) {
        let f = f?;
        match (f.number == child, f.payload) {
            (true, Some(p)) => c.children.push(p),
            (true, None) => {
                return Err(WireError {
                    at: 0,
                    reason: "repeated message field with a scalar wire type",
                });
            }
            (false, _) => c.header.extend_from_slice(f.raw),
        }
    }
    Ok(c)
}

/// Items (spans, log records, metrics) in a container at `depth`. Walks the fields in place
/// (no copies): the receiver calls it on every forwarded request.
fn count(msg: &[u8], depth: u8) -> Result<u64, WireError> {
    let child = child_field(depth);
    let mut n = 0;
    for f in fields(msg) {
        let f = f?;
        if f.number != child {
            continue;
        }
        let payload = f.payload.ok_or(WireError {
            at: 0,
            reason: "repeated message field with a scalar wire type",
        })?;
        n += if depth == SCOPE {
            1
        } else {
            count(payload, depth - 1)?
        };
    }
    Ok(n)
}

/// Items in an encoded export request.
pub fn count_items(request: &[u8]) -> Result<u64, WireError> {
    count(request, REQUEST)
}

/// Resource containers in an encoded export request.
pub fn count_resources(request: &[u8]) -> Result<u64, WireError> {
    let mut n = 0;
    for f in fields(request) {
        n += u64::from(f?.number == child_field(REQUEST));
    }
    Ok(n)
}

fn put_field(out: &mut Vec<u8>, number: u64, payload: &[u8]) {
    let mut key = number << 3 | 2;
    while key >= 0x80 {
        out.push((key as u8) | 0x80);
        key >>= 7;
    }
    out.push(key as u8);
    let mut len = payload.len() as u64;
    while len >= 0x80 {
        out.push((len as u8) | 0x80);
        len >>= 7;
    }
    out.push(len as u8);
    out.put_slice(payload);
}

fn field_len(number: u64, payload: usize) -> usize {
    varint_len(number << 3 | 2) + varint_len(payload as u64) + payload
}

/// A container being packed.
struct Part {
    body: Vec<u8>,
    items: u64,
    children: usize,
    oversize: bool,
}

/// Splits a container into containers of at most `max` bytes (each repeating the header).
fn split_container(msg: &[u8], depth: u8, max: usize) -> Result<Vec<Part>, WireError> {
    let c = parse(msg, depth)?;
    let child = child_field(depth);
    let fresh = || Part {
        body: c.header.clone(),
        items: 0,
        children: 0,
        oversize: false,
    };
    let mut parts = Vec::new();
    let mut cur = fresh();
    for ch in &c.children {
        let need = field_len(child, ch.len());
        if cur.body.len() + need <= max {
            cur.body_push(child, ch, depth)?;
            continue;
        }
        if cur.children > 0 {
            parts.push(std::mem::replace(&mut cur, fresh()));
        }
        if cur.body.len() + need <= max {
            cur.body_push(child, ch, depth)?;
        } else if depth == SCOPE {
            // One item alone is over the limit: it travels alone and the downstream decides.
            cur.body_push(child, ch, depth)?;
            cur.oversize = true;
            parts.push(std::mem::replace(&mut cur, fresh()));
        } else {
            // Split the child into pieces that fit beside this header, each wrapped in it.
            // The wrapping costs the tag and a length prefix of at most 5 bytes.
            let room = max
                .saturating_sub(c.header.len())
                .saturating_sub(varint_len(child << 3 | 2) + 5)
                .max(1);
            for sub in split_container(ch, depth - 1, room)? {
                let mut p = fresh();
                put_field(&mut p.body, child, &sub.body);
                p.items = sub.items;
                p.children = 1;
                p.oversize = sub.oversize;
                parts.push(p);
            }
        }
    }
    // The last part, or the container itself when it has no children (its fields are kept).
    if cur.children > 0 || parts.is_empty() {
        parts.push(cur);
    }
    Ok(parts)
}

impl Part {
    fn body_push(&mut self, child: u64, payload: &[u8], depth: u8) -> Result<(), WireError> {
        put_field(&mut self.body, child, payload);
        self.items += if depth == SCOPE {
            1
        } else {
            count(payload, depth - 1)?
        };
        self.children += 1;
        Ok(())
    }
}

/// Splits an encoded export request into requests of at most `max` bytes at item boundaries,
/// in order. A request that fits comes back as one piece, unchanged.
pub fn split(request: &Bytes, max: usize) -> Result<Vec<Piece>, WireError> {
    if request.len() <= max {
        return Ok(vec![Piece {
            body: request.clone(),
            items: count_items(request)?,
            oversize: false,
        }]);
    }
    Ok(split_container(request, REQUEST, max.max(1))?
        .into_iter()
        .filter(|p| !p.body.is_empty())
        .map(|p| Piece {
            oversize: p.oversize || p.body.len() > max,
            body: Bytes::from(p.body),
            items: p.items,
        })
        .collect())
}

/// Concatenates encoded export requests into one (see the module docs).
pub fn concat(requests: &[Bytes]) -> Bytes {
    match requests {
        [one] => one.clone(),
        _ => {
            let mut out = Vec::with_capacity(requests.iter().map(Bytes::len).sum());
            for r in requests {
                out.extend_from_slice(r);
            }
            Bytes::from(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use opentelemetry_proto::tonic::common::v1::InstrumentationScope;
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
    use proptest::prelude::*;
    use prost::Message;

    /// The oracle's view of a request: (resource, scope schema, scope, span) per span, in order.
    type Triple = (
        Option<Resource>,
        String,
        Option<InstrumentationScope>,
        String,
        Span,
    );

    fn flatten(req: &ExportTraceServiceRequest) -> Vec<Triple> {
        let mut out = Vec::new();
        for rs in &req.resource_spans {
            for ss in &rs.scope_spans {
                for s in &ss.spans {
                    out.push((
                        rs.resource.clone(),
                        rs.schema_url.clone(),
                        ss.scope.clone(),
                        ss.schema_url.clone(),
                        s.clone(),
                    ));
                }
            }
        }
        out
    }

    fn request(shape: &[Vec<usize>], name_len: usize) -> ExportTraceServiceRequest {
        let mut n = 0u64;
        ExportTraceServiceRequest {
            resource_spans: shape
                .iter()
                .enumerate()
                .map(|(r, scopes)| ResourceSpans {
                    resource: Some(Resource {
                        attributes: vec![crate::otlp::string_kv(
                            "service.name",
                            &format!("svc{r}"),
                        )],
                        ..Default::default()
                    }),
                    schema_url: format!("https://schema/{r}"),
                    scope_spans: scopes
                        .iter()
                        .enumerate()
                        .map(|(s, &spans)| ScopeSpans {
                            scope: Some(InstrumentationScope {
                                name: format!("scope{r}.{s}"),
                                ..Default::default()
                            }),
                            schema_url: String::new(),
                            spans: (0..spans)
                                .map(|_| {
                                    n += 1;
                                    Span {
                                        trace_id: vec![1; 16],
                                        span_id: n.to_be_bytes().to_vec(),
                                        name: "x".repeat(name_len + (n as usize % 7)),
                                        ..Default::default()
                                    }
                                })
                                .collect(),
                        })
                        .collect(),
                })
                .collect(),
        }
    }

    fn check_split(req: &ExportTraceServiceRequest, max: usize) {
        let bytes = Bytes::from(req.encode_to_vec());
        let pieces = split(&bytes, max).expect("split");
        let mut joined = Vec::new();
        let mut items = 0;
        for p in &pieces {
            let d = ExportTraceServiceRequest::decode(p.body.clone()).expect("piece decodes");
            let n = flatten(&d).len() as u64;
            assert_eq!(n, p.items, "piece item count");
            if p.body.len() > max {
                assert!(
                    p.oversize && n <= 1,
                    "only a lone oversize item may exceed max"
                );
            }
            items += n;
            joined.extend(flatten(&d));
        }
        assert_eq!(
            joined,
            flatten(req),
            "split changed the (resource, scope, span) triples"
        );
        assert_eq!(items, count_items(&bytes).unwrap());
    }

    #[test]
    fn concat_is_a_valid_request_with_both() {
        let a = request(&[vec![2, 1]], 10);
        let b = request(&[vec![3], vec![]], 20);
        let joined = concat(&[a.encode_to_vec().into(), b.encode_to_vec().into()]);
        let d = ExportTraceServiceRequest::decode(joined.clone()).unwrap();
        let mut want = a.resource_spans.clone();
        want.extend(b.resource_spans.clone());
        assert_eq!(d.resource_spans, want);
        assert_eq!(count_items(&joined).unwrap(), 6);
        assert_eq!(count_resources(&joined).unwrap(), 3);
    }

    #[test]
    fn fitting_request_is_one_unchanged_piece() {
        let r = request(&[vec![5, 5]], 3);
        let b = Bytes::from(r.encode_to_vec());
        let p = split(&b, b.len()).unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].body, b);
        assert_eq!(p[0].items, 10);
    }

    #[test]
    fn splits_inside_resources_and_scopes() {
        // One resource, one scope, 100 spans: must be cut inside the scope.
        check_split(&request(&[vec![100]], 50), 700);
        // Many small resources.
        check_split(&request(&vec![vec![1]; 40], 5), 300);
        // A span larger than max travels alone, flagged.
        let big = request(&[vec![1, 2]], 2000);
        let bytes = Bytes::from(big.encode_to_vec());
        let pieces = split(&bytes, 500).unwrap();
        assert!(pieces.iter().all(|p| p.oversize && p.items == 1));
        check_split(&big, 500);
    }

    #[test]
    fn empty_containers_keep_their_fields() {
        let mut r = request(&[vec![], vec![0, 3]], 30);
        r.resource_spans[0].scope_spans.clear();
        let bytes = Bytes::from(r.encode_to_vec());
        let pieces = split(&bytes, 120).unwrap();
        let mut resources = Vec::new();
        for p in &pieces {
            let d = ExportTraceServiceRequest::decode(p.body.clone()).unwrap();
            resources.extend(d.resource_spans.into_iter().map(|rs| rs.resource));
        }
        // The span-less resource is still sent.
        assert!(resources.contains(&r.resource_spans[0].resource));
        check_split(&r, 120);
    }

    #[test]
    fn logs_share_the_shape() {
        let req = ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: None,
                scope_logs: vec![ScopeLogs {
                    scope: None,
                    log_records: (0..50)
                        .map(|i| LogRecord {
                            time_unix_nano: i,
                            severity_text: "INFO".into(),
                            ..Default::default()
                        })
                        .collect(),
                    schema_url: String::new(),
                }],
                schema_url: String::new(),
            }],
        };
        let bytes = Bytes::from(req.encode_to_vec());
        let pieces = split(&bytes, 100).unwrap();
        assert!(pieces.len() > 1);
        let mut times = Vec::new();
        for p in pieces {
            assert!(p.body.len() <= 100);
            let d = ExportLogsServiceRequest::decode(p.body).unwrap();
            times.extend(
                d.resource_logs[0].scope_logs[0]
                    .log_records
                    .iter()
                    .map(|l| l.time_unix_nano),
            );
        }
        assert_eq!(times, (0..50).collect::<Vec<_>>());
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &[0x0a, 0x05, 1][..],
            &[0x0a],
            &[0xff; 12],
            &[0x08, 0x01],
            &[0x0b, 0x00],
            &[0x00, 0x00],
        ] {
            let b = Bytes::copy_from_slice(bad);
            assert!(count_items(&b).is_err(), "{bad:?}");
            assert!(split(&b, 1).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn split_preserves_every_item_in_order(
            shape in prop::collection::vec(prop::collection::vec(0usize..12, 0..4), 0..5),
            name_len in 0usize..200,
            max in 16usize..3000,
        ) {
            check_split(&request(&shape, name_len), max);
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200), max in 1usize..100) {
            let b = Bytes::from(bytes);
            let _ = split(&b, max);
            let _ = count_items(&b);
        }
    }
}
