//! `storage:` — the store's directory, durability, retention, partitions and compaction.

use super::*;

/// `storage:` — the sled database.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    /// Data directory. Default `./sieve-data`. One gateway per directory (sled locks it).
    pub path: PathBuf,
    /// `true` (default): a request is acknowledged only after its data is flushed to disk, with
    /// concurrent requests sharing one flush. `false`: acknowledged once written to sled's
    /// memory; sled flushes every `flush_every` in the background, so a crash may lose the last
    /// moments. Exists to measure what durability costs.
    pub sync: bool,
    /// sled's background flush interval when `sync` is false. Default 500ms.
    #[serde(with = "duration")]
    pub flush_every: Duration,
    /// How long data is kept, measured from its own timestamps. Default 72h.
    #[serde(with = "duration")]
    pub retention: Duration,
    /// Width of the time partitions data is written into (one value-log file and index per
    /// partition, dropped whole when it expires). Default 1h. Retention is exact to one partition.
    #[serde(with = "duration")]
    pub partition: Duration,
    /// How often the retention sweeper looks for expired partitions. Default 1m.
    #[serde(with = "duration")]
    pub sweep_interval: Duration,
    /// sled's page cache in MiB. Default 16. sled counts serialised sizes, so its real memory
    /// use is a few times this (measured under the loadgen: 64 gave a 380 MiB process, 16 a
    /// 184 MiB one at the same throughput); chunk bodies are read from the OS page cache anyway.
    pub cache_capacity_mib: u64,
    /// Index entries (chunk keys, posting lists, log index keys) of a partition held in memory
    /// before they are written out as a sorted, compressed run file, MiB. Default 4. The value
    /// log holds the same entries, so a restart rebuilds this much from it. Larger means fewer
    /// run files for a search to merge, and more memory per partition written to.
    pub memtable_mib: u64,
    /// `zstd` (default) or `none`. With `zstd`, once an index run covers a range of a
    /// partition's value log, a background pass rewrites the range as zstd blocks and frees
    /// the raw bytes (the ack path never compresses). About 5× smaller on SDK-shaped traces;
    /// reads decompress a 128 KiB block.
    pub compression: StorageCompression,
    /// Upper bound on the data directory's size on disk (as `du` counts it), e.g. `50GiB`,
    /// beside the time `retention`. Past it the sweeper drops whole partitions, oldest data
    /// first, and logs each; the partitions being written are never dropped. Unset (default):
    /// no bound.
    #[serde(with = "byte_size::option")]
    pub max_disk_size: Option<u64>,
    /// Attribute index bounds.
    pub attribute_index: AttributeIndex,
}

/// `storage.compression`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StorageCompression {
    /// zstd level 1 (default): sealed value-log ranges are rewritten as compressed segments.
    #[default]
    Zstd,
    /// No compaction: chunk bodies stay as they were received.
    None,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            path: PathBuf::from("./sieve-data"),
            sync: true,
            flush_every: Duration::from_millis(500),
            retention: Duration::from_secs(72 * 3600),
            partition: Duration::from_secs(3600),
            sweep_interval: Duration::from_secs(60),
            cache_capacity_mib: 16,
            memtable_mib: 4,
            compression: StorageCompression::Zstd,
            max_disk_size: None,
            attribute_index: AttributeIndex::default(),
        }
    }
}

/// `storage.attribute_index`: string span attributes are indexed per (service, key, value) so
/// `FindTraces` with attributes does not scan. Past these bounds a value is not indexed (queries
/// still find it by scanning the service's traces).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AttributeIndex {
    /// Longest indexed value in bytes. Default 128.
    pub max_value_length: usize,
    /// Distinct values indexed per (service, key) since start. Default 1000.
    pub max_values_per_key: usize,
    /// Distinct (service, key) pairs indexed since start. Default 10000.
    pub max_keys: usize,
}

impl Default for AttributeIndex {
    fn default() -> Self {
        AttributeIndex {
            max_value_length: 128,
            max_values_per_key: 1000,
            max_keys: 10_000,
        }
    }
}
