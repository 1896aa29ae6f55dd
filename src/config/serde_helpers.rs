//! serde adapters shared by the sections: typed component maps (`processors:`, `exporters:`),
//! durations (`500ms`, `72h`) and byte sizes (`50GiB`).

use super::*;

/// Deserialises `processors:` and `exporters:`: each key's type part (`otlp` of `otlp/b`)
/// picks the struct its value is read into, so errors carry the full path
/// (`exporters.otlp/b.timeout`).
pub(super) mod typed_map {
    use std::collections::BTreeMap;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{DeserializeSeed, Deserializer, Error, MapAccess, Visitor};

    /// A component configured by type: `Exporter`, `Processor`.
    pub trait Component: Sized {
        /// What the map holds, for messages.
        const WHAT: &'static str;
        /// Reads the value of a key whose type part is `kind`.
        fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, d: D) -> Result<Self, D::Error>;
    }

    pub fn deserialize<'de, D: Deserializer<'de>, T: Component>(
        d: D,
    ) -> Result<BTreeMap<String, T>, D::Error> {
        d.deserialize_map(MapVisitor(PhantomData))
    }

    struct MapVisitor<T>(PhantomData<T>);

    impl<'de, T: Component> Visitor<'de> for MapVisitor<T> {
        type Value = BTreeMap<String, T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "a map of {} by name", T::WHAT)
        }

        fn visit_unit<E: Error>(self) -> Result<Self::Value, E> {
            Ok(BTreeMap::new())
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(name) = map.next_key::<String>()? {
                let kind = name.split('/').next().unwrap_or_default().to_string();
                if name.split('/').nth(1).is_some_and(str::is_empty) {
                    return Err(A::Error::custom(format!(
                        "{name:?}: the name after / must not be empty"
                    )));
                }
                let value = map.next_value_seed(Seed::<T>(kind, PhantomData))?;
                out.insert(name, value);
            }
            Ok(out)
        }
    }

    struct Seed<T>(String, PhantomData<T>);

    impl<'de, T: Component> DeserializeSeed<'de> for Seed<T> {
        type Value = T;

        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
            T::deserialize_kind(&self.0, d)
        }
    }
}

impl typed_map::Component for Exporter {
    const WHAT: &'static str = "exporters";

    fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        d: D,
    ) -> Result<Self, D::Error> {
        use serde::de::Error;
        match kind {
            "otlp" => Deserialize::deserialize(d).map(Exporter::Otlp),
            "otlphttp" => Deserialize::deserialize(d).map(Exporter::OtlpHttp),
            "debug" => Option::deserialize(d).map(|o| Exporter::Debug(o.unwrap_or_default())),
            "file" => Deserialize::deserialize(d).map(Exporter::File),
            other => Err(D::Error::custom(format!(
                "unknown exporter type {other:?}, expected one of {}",
                Exporter::TYPES.join(", ")
            ))),
        }
    }
}

impl typed_map::Component for Processor {
    const WHAT: &'static str = "processors";

    fn deserialize_kind<'de, D: serde::Deserializer<'de>>(
        kind: &str,
        d: D,
    ) -> Result<Self, D::Error> {
        use serde::de::Error;
        match kind {
            "probabilistic_sampler" => {
                Deserialize::deserialize(d).map(Processor::ProbabilisticSampler)
            }
            "tail_sampling" => Deserialize::deserialize(d).map(Processor::TailSampling),
            "adaptive_sampler" => Deserialize::deserialize(d).map(Processor::AdaptiveSampler),
            "batch" => Option::deserialize(d).map(|o| Processor::Batch(o.unwrap_or_default())),
            "memory_limiter" => Deserialize::deserialize(d).map(Processor::MemoryLimiter),
            other => Err(D::Error::custom(format!(
                "unknown processor type {other:?}, expected one of {}",
                Processor::TYPES.join(", ")
            ))),
        }
    }
}

/// serde adapter for durations written as `500ms`, `10s`, `72h`, `1h 30m`.
pub(super) mod duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "invalid duration {text:?} ({e}); write e.g. 500ms, 10s, 72h"
            ))
        })
    }

    /// An optional duration.
    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer};

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            match Option::<String>::deserialize(d)? {
                None => Ok(None),
                Some(text) => humantime::parse_duration(&text).map(Some).map_err(|e| {
                    serde::de::Error::custom(format!(
                        "invalid duration {text:?} ({e}); write e.g. 500ms, 10s, 72h"
                    ))
                }),
            }
        }
    }
}

/// Byte sizes: a number of bytes, or a number with a unit: `B`, `KB`/`MB`/`GB`/`TB` (powers
/// of 1000) or `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), e.g. `50GiB`, `1.5 GB`.
pub mod byte_size {
    /// Parses a size; the error says what is accepted.
    pub fn parse(text: &str) -> Result<u64, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (num, unit) = t.split_at(split);
        let unit = unit.trim();
        let mult: f64 = match unit.to_ascii_lowercase().as_str() {
            "" | "b" => 1.0,
            "kb" | "k" => 1e3,
            "mb" | "m" => 1e6,
            "gb" | "g" => 1e9,
            "tb" | "t" => 1e12,
            "kib" => 1024.0,
            "mib" => 1024.0 * 1024.0,
            "gib" => 1024.0 * 1024.0 * 1024.0,
            "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
            _ => {
                return Err(format!(
                    "invalid size {text:?}: unknown unit {unit:?}; write e.g. 50GiB, 500MB"
                ));
            }
        };
        let n: f64 = num
            .parse()
            .map_err(|_| format!("invalid size {text:?}; write e.g. 50GiB, 500MB"))?;
        let bytes = n * mult;
        if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
            return Err(format!("invalid size {text:?}: must be at least 1 byte"));
        }
        Ok(bytes as u64)
    }

    /// An optional size: a string as [`parse`] takes it, or a plain number of bytes.
    pub mod option {
        use serde::{Deserialize, Deserializer};

        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bytes(u64),
            Text(String),
        }

        /// An optional size: bytes as a number, or text such as `50GiB`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
            match Option::<Raw>::deserialize(d)? {
                None => Ok(None),
                Some(Raw::Bytes(0)) => Err(serde::de::Error::custom(
                    "invalid size 0: must be at least 1 byte (leave it unset for no bound)",
                )),
                Some(Raw::Bytes(n)) => Ok(Some(n)),
                Some(Raw::Text(t)) => super::parse(&t).map(Some).map_err(serde::de::Error::custom),
            }
        }
    }
}

/// A deserialisation error as `key: reason`, with the key the reader has to fix. serde names
/// the map a field is missing from, or that holds an unknown field, and the map an internally
/// tagged enum (every `type:`-tagged section here) has an unknown `type` in; the key given
/// is the field's, or the `type` key's.
pub(super) fn parse_error(
    value: &serde_norway::Value,
    e: serde_path_to_error::Error<serde_norway::Error>,
) -> ConfigError {
    let key = e.path().to_string();
    let reason = e.into_inner().to_string();
    let quoted = |prefix: &str| -> Option<String> {
        let rest = reason.strip_prefix(prefix)?;
        Some(rest[..rest.find('`')?].to_string())
    };
    let tagged_here = || {
        let mut v = value;
        for segment in key.split('.').filter(|s| !s.is_empty() && *s != ".") {
            let (name, index) = match segment.split_once('[') {
                Some((n, i)) => (n, i.trim_end_matches(']').parse::<usize>().ok()),
                None => (segment, None),
            };
            if !name.is_empty() {
                match v.get(name) {
                    Some(next) => v = next,
                    None => return false,
                }
            }
            if let Some(i) = index {
                match v.get(i) {
                    Some(next) => v = next,
                    None => return false,
                }
            }
        }
        v.get("type").is_some()
    };
    let field = quoted("missing field `")
        .or_else(|| quoted("unknown field `"))
        .or_else(|| {
            (reason.starts_with("unknown variant `") && tagged_here()).then(|| "type".to_string())
        });
    let section = if key == "." { "" } else { key.as_str() };
    match field {
        Some(field) => error_at(section, &field, reason),
        None if section.is_empty() => error_at("(top level)", "", reason),
        None => error_at(section, "", reason),
    }
}
