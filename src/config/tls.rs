//! `tls` of a server (the receivers, the query API), in the Collector's `configtls` shape,
//! and the PEM files both servers and clients read.

use super::*;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The certificates of a PEM file (at least one), or why not, naming the file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: not a PEM certificate: {e:?}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The private key of a PEM file, or why not, naming the file.
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|e| format!("{}: not a PEM private key: {e:?}", path.display()))
}

/// `tls` of a server: its certificate and key, and with `client_ca_file` the CA its clients'
/// certificates must chain to (mTLS: a client without one is refused). Files are PEM, read
/// at start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTls {
    /// The server's certificate chain (PEM). Required.
    pub cert_file: PathBuf,
    /// The server's private key (PEM). Required.
    pub key_file: PathBuf,
    /// CA bundle (PEM) clients must present a certificate from; unset: no client
    /// certificates asked for.
    #[serde(default)]
    pub client_ca_file: Option<PathBuf>,
}

impl ServerTls {
    /// Checks that the files exist, naming the key of the one that does not.
    pub(super) fn validate(&self, key: &str) -> Result<(), ConfigError> {
        for (field, path) in [
            ("cert_file", Some(&self.cert_file)),
            ("key_file", Some(&self.key_file)),
            ("client_ca_file", self.client_ca_file.as_ref()),
        ] {
            if let Some(p) = path
                && !p.is_file()
            {
                return invalid_at(
                    &format!("{key}.tls"),
                    field,
                    format!("{} is not a readable file", p.display()),
                );
            }
        }
        Ok(())
    }
}
