//! The catalog: the services, operations and indexed attribute values the store has seen,
//! held in memory for GetServices, GetOperations and the attribute index bounds, and kept in
//! the sled tree `catalog` (layout in [`super::keys`]); loaded whole at open.

use std::collections::{HashMap, HashSet};

use super::{StoreError, keys, now_ns};
use crate::config;

/// What the store knows about services, operations and indexed attribute values.
#[derive(Default)]
pub(crate) struct Catalog {
    /// service → newest data time seen.
    pub services: HashMap<String, u64>,
    /// service → operation → (span kind, newest data time seen). Nested by name so intake
    /// looks names up as borrowed strings, allocating only for what is new.
    pub operations: HashMap<String, HashMap<String, Vec<(i32, u64)>>>,
    /// service → number of its (operation, kind) entries in `operations`.
    pub operations_per_service: HashMap<String, usize>,
    /// service → attribute key → the values indexed so far (at most
    /// `storage.attribute_index.max_values_per_key`).
    pub indexed_values: HashMap<String, HashMap<String, HashSet<String>>>,
    /// (service, attribute key) pairs in `indexed_values` (at most
    /// `storage.attribute_index.max_keys`).
    pub indexed_keys: usize,
}

impl Catalog {
    /// The newest data time of (service, operation, kind), if known.
    pub fn operation(&self, service: &str, name: &str, kind: i32) -> Option<u64> {
        let kinds = self.operations.get(service)?.get(name)?;
        kinds.iter().find(|(k, _)| *k == kind).map(|(_, t)| *t)
    }

    /// Records (service, operation, kind) at `t`; true when it was new.
    pub fn set_operation(&mut self, service: &str, name: &str, kind: i32, t: u64) -> bool {
        let names = match self.operations.get_mut(service) {
            Some(n) => n,
            None => self.operations.entry(service.to_string()).or_default(),
        };
        let kinds = match names.get_mut(name) {
            Some(k) => k,
            None => names.entry(name.to_string()).or_default(),
        };
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some(entry) => {
                entry.1 = t;
                false
            }
            None => {
                kinds.push((kind, t));
                *self
                    .operations_per_service
                    .entry(service.to_string())
                    .or_default() += 1;
                true
            }
        }
    }

    /// Whether `value` of (service, key) is indexed.
    pub fn is_indexed(&self, service: &str, key: &str, value: &str) -> bool {
        self.indexed_values
            .get(service)
            .and_then(|keys| keys.get(key))
            .is_some_and(|values| values.contains(value))
    }

    /// Indexes `value` of (service, key) if the bounds allow: `Some(true)` when it was added,
    /// `Some(false)` when it already was indexed, `None` when a bound stops it.
    pub fn index_value(
        &mut self,
        service: &str,
        key: &str,
        value: &str,
        max_keys: usize,
        max_values_per_key: usize,
    ) -> Option<bool> {
        let at_key_bound = self.indexed_keys >= max_keys;
        let keys = match self.indexed_values.get_mut(service) {
            Some(k) => k,
            None if at_key_bound => return None,
            None => self.indexed_values.entry(service.to_string()).or_default(),
        };
        let values = match keys.get_mut(key) {
            Some(v) => v,
            None if at_key_bound => return None,
            None => {
                self.indexed_keys += 1;
                keys.entry(key.to_string()).or_default()
            }
        };
        if values.contains(value) {
            Some(false)
        } else if values.len() < max_values_per_key {
            values.insert(value.to_string());
            Some(true)
        } else {
            None
        }
    }
}

/// Operations recorded per service; span names past this (a cardinality explosion, usually an
/// id in the name) are stored and searchable by service, but not listed by GetOperations.
pub const MAX_OPERATIONS_PER_SERVICE: usize = 10_000;
/// Services recorded in the catalog.
pub const MAX_SERVICES: usize = 10_000;

/// Catalog key of the attribute index bounds the store was written with.
const META_ATTRIBUTE_BOUNDS: &[u8] = b"Mattribute_index_bounds";
/// Catalog key of the time the current bounds took effect.
const META_ATTRIBUTE_SINCE: &[u8] = b"Mattribute_index_since";

/// Compares the configured attribute index bounds with the ones the store was written with,
/// records a change, and returns since when the index is complete under the current ones.
pub(super) fn attribute_index_since(
    tree: &sled::Tree,
    bounds: &config::AttributeIndex,
) -> Result<u64, StoreError> {
    let mut encoded = Vec::with_capacity(24);
    for n in [
        bounds.max_value_length,
        bounds.max_values_per_key,
        bounds.max_keys,
    ] {
        encoded.extend_from_slice(&(n as u64).to_be_bytes());
    }
    let saved = tree.get(META_ATTRIBUTE_BOUNDS)?;
    let since = match saved {
        Some(ref s) if s.as_ref() == encoded.as_slice() => tree
            .get(META_ATTRIBUTE_SINCE)?
            .map(|v| keys::read_u64(&v))
            .unwrap_or(0),
        // First start on this store: the index is complete from the beginning.
        None if tree.is_empty() => 0,
        // Bounds changed (or a store from before they were recorded).
        _ => now_ns(),
    };
    tree.insert(META_ATTRIBUTE_BOUNDS, encoded)?;
    tree.insert(META_ATTRIBUTE_SINCE, &since.to_be_bytes())?;
    Ok(since)
}

pub(super) fn load_catalog(tree: &sled::Tree) -> Result<Catalog, StoreError> {
    let mut c = Catalog::default();
    for item in tree.iter() {
        let (k, v) = item?;
        let Some((&tag, rest)) = k.split_first() else {
            continue;
        };
        let strs = keys::read_strs(rest);
        let text = |i: usize| strs.get(i).map(|s| String::from_utf8_lossy(s).into_owned());
        match tag {
            keys::CAT_SERVICE => {
                if let Some(svc) = text(0) {
                    c.services.insert(svc, keys::read_u64(&v));
                }
            }
            keys::CAT_OPERATION => {
                // The kind byte follows the two strings.
                let kind = rest.last().copied().unwrap_or(0) as i32;
                if let (Some(svc), Some(op)) = (text(0), text(1)) {
                    c.set_operation(&svc, &op, kind, keys::read_u64(&v));
                }
            }
            keys::CAT_VALUE => {
                if let (Some(svc), Some(key), Some(val)) = (text(0), text(1), text(2)) {
                    // No bounds at load: what was indexed stays indexed.
                    c.index_value(&svc, &key, &val, usize::MAX, usize::MAX);
                }
            }
            _ => {}
        }
    }
    Ok(c)
}
