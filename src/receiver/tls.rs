//! TLS for the servers (`tls: {cert_file, key_file, client_ca_file}` on the gRPC and HTTP
//! receivers and the query API), with rustls and the ring provider. With `client_ca_file`
//! a client must present a certificate that chains to it (mTLS); without, none is asked for.
//! The files are read once at start; a bad file stops the start with its path.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::CertificateDer;

use crate::config::ServerTls;

/// A TLS file that could not be used.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct TlsError {
    pub path: String,
    pub reason: String,
}

fn err(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    crate::config::read_certs(path).map_err(|reason| err(path, reason))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls server configuration of `t`, offering `alpn` (e.g. `http/1.1`).
pub fn server_config(t: &ServerTls, alpn: &[&[u8]]) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let chain = certs(&t.cert_file)?;
    let key = crate::config::read_key(&t.key_file).map_err(|reason| err(&t.key_file, reason))?;
    let builder = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| err(&t.cert_file, e))?;
    let builder = match &t.client_ca_file {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots.add(c).map_err(|e| err(ca, e))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider(),
            )
            .build()
            .map_err(|e| err(ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| err(&t.key_file, e))?;
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

/// A TLS acceptor for the gRPC servers (ALPN `h2`).
pub fn h2_acceptor(t: &ServerTls) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
    Ok(tokio_rustls::TlsAcceptor::from(server_config(t, &[b"h2"])?))
}
