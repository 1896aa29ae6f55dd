//! `tls` of a server (the receivers, the query API), in the Collector's `configtls` shape.

use super::*;

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
