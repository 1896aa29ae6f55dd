//! `${env:NAME}` and `${env:NAME:-default}` expansion of a parsed YAML document.

use super::*;

/// Replaces `${env:NAME}` and `${env:NAME:-default}` in every string scalar. A scalar that is
/// exactly one reference takes the variable's value parsed as a YAML scalar, so
/// `port: ${env:PORT}` yields a number, as in the Collector; inside longer text it is
/// substituted as text. `$$` escapes a dollar sign.
pub(super) fn expand_env(
    value: &mut serde_norway::Value,
    path: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), ConfigError> {
    use serde_norway::Value;
    match value {
        Value::String(s) => {
            if !s.contains('$') {
                return Ok(());
            }
            let whole = s.starts_with("${env:") && s.ends_with('}') && s.matches("${").count() == 1;
            let expanded = expand_str(s, path, env)?;
            *value = if whole {
                serde_norway::from_str::<Value>(&expanded)
                    .ok()
                    .filter(|v| !matches!(v, Value::Mapping(_) | Value::Sequence(_)))
                    .unwrap_or(Value::String(expanded))
            } else {
                Value::String(expanded)
            };
        }
        Value::Mapping(map) => {
            for (k, v) in map.iter_mut() {
                let key = match k {
                    Value::String(s) => s.clone(),
                    other => serde_norway::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                let child = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                expand_env(v, &child, env)?;
            }
        }
        Value::Sequence(seq) => {
            for (i, v) in seq.iter_mut().enumerate() {
                expand_env(v, &format!("{path}[{i}]"), env)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(
    s: &str,
    key: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let bad = || ConfigError::BadEnvRef {
        key: key.into(),
        value: s.into(),
    };
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        rest = &rest[i..];
        if let Some(after) = rest.strip_prefix("$$") {
            out.push('$');
            rest = after;
        } else if let Some(after) = rest.strip_prefix("${env:") {
            let end = after.find('}').ok_or_else(bad)?;
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad());
            }
            match (env(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => {
                    return Err(ConfigError::MissingEnv {
                        key: key.into(),
                        name: name.into(),
                    });
                }
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &rest[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}
