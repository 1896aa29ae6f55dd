//! `extensions`: components that are not in a pipeline, in the Collector's shape. Two types:
//! `bearertokenauth` (the tokens a receiver or the query API accepts, named by their
//! `auth.authenticator`) and `health_check` (the Collector's health endpoint). An extension
//! runs only when `service.extensions` lists it.

use super::*;

/// `extensions.<type>[/name]`: one extension.
#[derive(Debug, Clone)]
pub enum Extension {
    /// Bearer tokens a server accepts.
    BearerTokenAuth(BearerTokenAuth),
    /// An HTTP health endpoint in the Collector's `health_check` shape.
    HealthCheck(HealthCheck),
}

impl Extension {
    /// The type part of a `type/name` key.
    pub const TYPES: [&'static str; 2] = ["bearertokenauth", "health_check"];
}

impl typed_map::Component for Extension {
    const WHAT: &'static str = "extensions";

    fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        d: D,
    ) -> Result<Self, D::Error> {
        use serde::de::Error;
        match kind {
            "bearertokenauth" => Deserialize::deserialize(d).map(Extension::BearerTokenAuth),
            "health_check" => {
                Option::deserialize(d).map(|o| Extension::HealthCheck(o.unwrap_or_default()))
            }
            other => Err(D::Error::custom(format!(
                "unknown extension type {other:?}, expected one of {}",
                Extension::TYPES.join(", ")
            ))),
        }
    }
}

/// A value that is never shown: `Debug` prints `<redacted>`, and nothing in sieve formats it
/// any other way, so tokens stay out of logs, errors and `config check`.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the one place that compares or sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// `extensions.bearertokenauth[/name]`: requests must carry `Authorization: <scheme> <token>`
/// with one of the tokens. Write tokens as `${env:NAME}` to keep them out of the file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BearerTokenAuth {
    /// The scheme before the token. Default `Bearer`.
    pub scheme: String,
    /// One accepted token.
    pub token: Option<Secret>,
    /// More accepted tokens (rotation: old and new at once).
    pub tokens: Vec<Secret>,
    /// A file whose first line is a token, read at start.
    pub filename: Option<PathBuf>,
}

impl Default for BearerTokenAuth {
    fn default() -> Self {
        BearerTokenAuth {
            scheme: "Bearer".into(),
            token: None,
            tokens: Vec::new(),
            filename: None,
        }
    }
}

impl BearerTokenAuth {
    /// Every accepted token: `token`, `tokens` and the file's first line.
    pub fn accepted(&self) -> Result<Vec<Secret>, String> {
        let mut out: Vec<Secret> = self.token.iter().chain(&self.tokens).cloned().collect();
        if let Some(path) = &self.filename {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let first = text.lines().next().unwrap_or("").trim();
            if first.is_empty() {
                return Err(format!("{} holds no token", path.display()));
            }
            out.push(Secret::new(first));
        }
        Ok(out)
    }
}

/// `extensions.health_check[/name]`: `GET <path>` answers 200 `{"status":"Server available"}`
/// while the gateway is ready and 503 otherwise, as the Collector's does.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthCheck {
    /// Address to listen on. Default `127.0.0.1:13133`, the Collector's.
    pub endpoint: String,
    /// Path of the endpoint. Default `/`.
    pub path: String,
}

impl Default for HealthCheck {
    fn default() -> Self {
        HealthCheck {
            endpoint: "127.0.0.1:13133".into(),
            path: "/".into(),
        }
    }
}

/// `auth` of a receiver protocol or of the query API: which `bearertokenauth` extension
/// checks its requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// The extension's key, e.g. `bearertokenauth` or `bearertokenauth/query`.
    pub authenticator: String,
}

impl Config {
    /// The tokens the server with `auth` accepts (`None`: no auth), with their scheme.
    pub fn tokens(&self, auth: Option<&Auth>) -> Result<Option<(String, Vec<Secret>)>, String> {
        let Some(auth) = auth else {
            return Ok(None);
        };
        match self.extensions.get(&auth.authenticator) {
            Some(Extension::BearerTokenAuth(b)) => Ok(Some((b.scheme.clone(), b.accepted()?))),
            _ => Err(format!(
                "{:?} is not a bearertokenauth extension",
                auth.authenticator
            )),
        }
    }

    /// The `health_check` extension that `service.extensions` turns on, if any.
    pub fn health_check(&self) -> Option<&HealthCheck> {
        self.service
            .extensions
            .iter()
            .find_map(|name| match self.extensions.get(name) {
                Some(Extension::HealthCheck(h)) => Some(h),
                _ => None,
            })
    }

    /// Checks extensions and the `auth` that name them.
    pub(super) fn validate_extensions(&self) -> Result<(), ConfigError> {
        for (i, name) in self.service.extensions.iter().enumerate() {
            if !self.extensions.contains_key(name) {
                return invalid_at(
                    &format!("service.extensions[{i}]"),
                    "",
                    format!("{name:?} is not defined under extensions"),
                );
            }
        }
        for (key, ext) in &self.extensions {
            match ext {
                Extension::BearerTokenAuth(b) => {
                    if b.token.is_none() && b.tokens.is_empty() && b.filename.is_none() {
                        return invalid_at(
                            &format!("extensions.{key}"),
                            "token",
                            "give token, tokens or filename",
                        );
                    }
                    if b.token
                        .iter()
                        .chain(&b.tokens)
                        .any(|t| t.expose().is_empty())
                    {
                        return invalid_at(
                            &format!("extensions.{key}"),
                            "token",
                            "a token must not be empty",
                        );
                    }
                    if b.scheme.is_empty() || b.scheme.contains(' ') {
                        return invalid_at(
                            &format!("extensions.{key}"),
                            "scheme",
                            "one word, e.g. Bearer",
                        );
                    }
                }
                Extension::HealthCheck(h) => {
                    parse_addr(&format!("extensions.{key}.endpoint"), &h.endpoint)?;
                    if !h.path.starts_with('/') {
                        return invalid_at(
                            &format!("extensions.{key}"),
                            "path",
                            format!("{:?} must start with /", h.path),
                        );
                    }
                }
            }
        }
        let grpc = self.otlp_grpc().and_then(|g| g.auth.as_ref());
        let http = self.otlp_http().and_then(|h| h.auth.as_ref());
        for (key, auth) in [
            ("receivers.otlp.protocols.grpc.auth", grpc),
            ("receivers.otlp.protocols.http.auth", http),
            ("query.auth", self.query.auth.as_ref()),
        ] {
            let Some(auth) = auth else { continue };
            if !matches!(
                self.extensions.get(&auth.authenticator),
                Some(Extension::BearerTokenAuth(_))
            ) {
                return invalid_at(
                    key,
                    "authenticator",
                    format!(
                        "{:?} is not a bearertokenauth extension under extensions",
                        auth.authenticator
                    ),
                );
            }
            if !self.service.extensions.contains(&auth.authenticator) {
                return invalid_at(
                    key,
                    "authenticator",
                    format!(
                        "{:?} is not listed in service.extensions",
                        auth.authenticator
                    ),
                );
            }
        }
        Ok(())
    }
}
