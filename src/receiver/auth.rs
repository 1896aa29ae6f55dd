//! Bearer tokens: what the `bearertokenauth` extension accepts, checked on every request of
//! the servers whose `auth` names it (the gRPC and HTTP receivers, the query API). A request
//! passes when its `Authorization` header is `<scheme> <token>` for one of the tokens; the
//! comparison takes the same time wherever the header differs. Tokens are never logged: a
//! refusal logs which listener refused, not what was offered.

use std::sync::Arc;

use tonic::service::InterceptorLayer;
use tonic::service::interceptor::Interceptor;

use crate::config::Secret;
use crate::telemetry::events;

/// The `Authorization` values a server accepts.
pub struct Tokens {
    accepted: Vec<Vec<u8>>,
}

impl Tokens {
    /// `scheme` (e.g. `Bearer`) and the tokens of one extension.
    pub fn new(scheme: &str, tokens: &[Secret]) -> Arc<Tokens> {
        Arc::new(Tokens {
            accepted: tokens
                .iter()
                .map(|t| format!("{scheme} {}", t.expose()).into_bytes())
                .collect(),
        })
    }

    /// Whether `header` (the `Authorization` value, if any) is one of the accepted ones.
    pub fn check(&self, header: Option<&[u8]>) -> bool {
        let Some(h) = header else {
            return false;
        };
        // Every accepted value is compared, each in time that depends only on its length.
        self.accepted
            .iter()
            .fold(false, |ok, a| ok | constant_time_eq(a, h))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |d, (x, y)| d | (x ^ y)) == 0
}

/// The interceptor of one gRPC server: UNAUTHENTICATED unless `tokens` accept the request
/// (everything passes when `tokens` is `None`).
#[derive(Clone)]
pub struct Check {
    tokens: Option<Arc<Tokens>>,
    listener: &'static str,
}

impl Interceptor for Check {
    fn call(&mut self, req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        let Some(tokens) = &self.tokens else {
            return Ok(req);
        };
        let header = req.metadata().get("authorization").map(|v| v.as_bytes());
        if tokens.check(header) {
            Ok(req)
        } else {
            events::ServerRequestUnauthenticated {
                listener: self.listener,
            }
            .emit();
            Err(tonic::Status::unauthenticated(
                "missing or wrong bearer token",
            ))
        }
    }
}

/// A tower layer for a tonic server that checks `tokens`.
pub fn grpc_layer(listener: &'static str, tokens: Option<Arc<Tokens>>) -> InterceptorLayer<Check> {
    InterceptorLayer::new(Check { tokens, listener })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_accepted_header_passes() {
        let t = Tokens::new("Bearer", &[Secret::new("abc"), Secret::new("rotated")]);
        assert!(t.check(Some(b"Bearer abc")));
        assert!(t.check(Some(b"Bearer rotated")));
        assert!(!t.check(Some(b"Bearer abd")));
        assert!(!t.check(Some(b"Bearer ab")));
        assert!(!t.check(Some(b"bearer abc")));
        assert!(!t.check(Some(b"abc")));
        assert!(!t.check(None));
        assert!(!Tokens::new("Bearer", &[]).check(Some(b"Bearer ")));
    }
}
