//! `CacheConfig`: the spec's `CACHE_CONFIG`, read from TOML and checked field by field.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nfcs_cache_core::EvictionPolicy;
use serde::{Deserialize, Serialize};

use crate::units::{ByteSize, TtlSetting};

/// A configuration that could not be used: which field, what value, why.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("could not read the configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The text is not valid TOML.
    #[error("the configuration is not valid TOML: {message}")]
    Syntax {
        /// The parser's message, with line and column.
        message: String,
    },
    /// A field has a value that cannot work, or is not a known field.
    #[error("invalid configuration value for `{field}`: {message}")]
    Invalid {
        /// The dotted path of the field (`memory.max_size`).
        field: String,
        /// What is wrong, with the value.
        message: String,
    },
}

impl ConfigError {
    fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    /// The dotted path of the offending field, when the error is about one.
    pub fn field(&self) -> Option<&str> {
        match self {
            ConfigError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

/// The cache configuration: one section per tier or feature, each with the spec's defaults.
///
/// Every field may be left out. `deny_unknown_fields` applies throughout, so a misspelt field is
/// an error that names it rather than a silently ignored setting.
///
/// ```
/// use nfcs_performance::{ByteSize, CacheConfig};
///
/// let config = CacheConfig::from_toml_str(r#"
///     [memory]
///     max_size = "512MiB"
///     eviction_policy = "s3_fifo"
///     ttl_default = "30m"
///
///     [redis]
///     enabled = false
/// "#)?;
/// assert_eq!(config.memory.max_size, ByteSize::new(512 << 20));
/// assert_eq!(config.disk.max_size.bytes(), 10_000_000_000); // the spec's default, "10GB"
///
/// let error = CacheConfig::from_toml_str("[memory]\nmax_size = \"1XB\"").unwrap_err();
/// assert_eq!(error.field(), Some("memory.max_size"));
/// # Ok::<(), nfcs_performance::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheConfig {
    /// The cache's name: the `cache` label of every metric its tiers report (`"nfcs"` by
    /// default). Give each manager of a process its own; a name another live manager holds is
    /// made unique with a `-2`, `-3`, ... suffix and a warning.
    pub name: String,
    /// The in-memory tier.
    pub memory: MemoryTierConfig,
    /// The disk tier.
    pub disk: DiskTierConfig,
    /// The Redis tier.
    pub redis: RedisTierConfig,
    /// The semantic cache.
    pub semantic: SemanticConfig,
    /// The policy-decision cache.
    pub policy: PolicyConfig,
    /// Cache warming.
    pub cache_warming: CacheWarmingConfig,
}

impl Default for CacheConfig {
    fn default() -> CacheConfig {
        CacheConfig {
            name: DEFAULT_NAME.to_owned(),
            memory: MemoryTierConfig::default(),
            disk: DiskTierConfig::default(),
            redis: RedisTierConfig::default(),
            semantic: SemanticConfig::default(),
            policy: PolicyConfig::default(),
            cache_warming: CacheWarmingConfig::default(),
        }
    }
}

/// The name of a cache configured without one.
pub const DEFAULT_NAME: &str = "nfcs";

/// The only embedding model this build runs (`[semantic] embedding_model`).
pub const EMBEDDING_MODEL: &str = "sentence-transformers/all-MiniLM-L6-v2";

/// `[memory]`: enabled, 1GB, LRU, TTL 3600 s by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct MemoryTierConfig {
    /// Whether the tier runs.
    pub enabled: bool,
    /// The byte budget (keys, values and per-entry bookkeeping).
    pub max_size: ByteSize,
    /// `"lru"` (the spec's) or `"s3_fifo"` (scan resistant). Also accepted as `eviction`.
    #[serde(alias = "eviction")]
    pub eviction_policy: EvictionPolicy,
    /// TTL of entries set without one.
    pub ttl_default: TtlSetting,
    /// Whether the budget adapts (between `min_size` and `max_size`, starting at `max_size`)
    /// toward `target_hit_ratio`, and the eviction policy with it (`adapt_eviction_policy`).
    pub adaptive: bool,
    /// The smallest budget adaptive sizing sets; by default `max_size / 16`.
    pub min_size: Option<ByteSize>,
    /// The hit ratio adaptive sizing aims for with the least memory.
    pub target_hit_ratio: f64,
    /// The fraction of keys whose reads feed the miss-ratio curves.
    pub sampling_rate: f64,
    /// Seconds between two evaluations of the curves.
    pub adaptive_interval_secs: u64,
    /// Whether adaptive sizing may switch between LRU and S3-FIFO.
    pub adapt_eviction_policy: bool,
    /// The seed of the memory tier's key hash, for reproducible sampling (benchmarks); left
    /// out, each process draws one at random (see `MemoryConfig::hash_seed`).
    pub hash_seed: Option<u64>,
    /// Whether to build the miss-ratio curves without adaptive sizing (for `nfcs-bench
    /// optimize`, which resizes the tier itself): from `max_size / 16` to `max_size * 16`.
    pub miss_ratio_curves: bool,
}

impl Default for MemoryTierConfig {
    fn default() -> MemoryTierConfig {
        MemoryTierConfig {
            enabled: true,
            max_size: ByteSize::new(1_000_000_000),
            eviction_policy: EvictionPolicy::Lru,
            ttl_default: TtlSetting::After(Duration::from_secs(3600)),
            adaptive: false,
            min_size: None,
            target_hit_ratio: 0.9,
            sampling_rate: 0.01,
            adaptive_interval_secs: 10,
            adapt_eviction_policy: true,
            miss_ratio_curves: false,
            hash_seed: None,
        }
    }
}

/// `[disk]`: enabled, `./cache`, 10GB, compression on by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DiskTierConfig {
    /// Whether the tier runs.
    pub enabled: bool,
    /// Where entries are stored.
    pub directory: PathBuf,
    /// The most bytes the tier keeps on disk.
    pub max_size: ByteSize,
    /// Whether values are compressed with zstd (when that makes them smaller).
    pub compression: bool,
}

impl Default for DiskTierConfig {
    fn default() -> DiskTierConfig {
        DiskTierConfig {
            enabled: true,
            directory: PathBuf::from("./cache"),
            max_size: ByteSize::new(10_000_000_000),
            compression: true,
        }
    }
}

/// `[redis]`: enabled, `redis://localhost:6379`, the URL's database (0 when it names none), 10
/// connections, TTL 7200 s by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct RedisTierConfig {
    /// Whether the tier runs.
    pub enabled: bool,
    /// `redis://[user[:password]@]host[:port][/db]`, `rediss://...` (TLS) or `unix:///path`.
    pub url: String,
    /// The database index. Left out (the default), the URL's database is used (`/3` in
    /// `redis://host:6379/3`; database 0 when the URL names none). Set, it must agree with the
    /// URL's when the URL names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<u32>,
    /// Connections kept open.
    pub max_connections: u32,
    /// TTL of entries set without one.
    pub ttl_default: TtlSetting,
    /// Prepended to every key, so that applications can share a server.
    pub key_prefix: String,
    /// The longest a Redis command may take, in milliseconds, before it counts as failed.
    pub command_timeout_ms: u64,
    /// Redis Cluster nodes (feature `redis-cluster`); when not empty, `url` and `db` are not
    /// used.
    pub cluster_nodes: Vec<String>,
    /// The most written or deleted keys waiting to be announced to the other nodes, 1 to
    /// 16,777,216 (default 65,536). A write never waits for room: an announcement that does
    /// not fit is dropped and counted (`nfcs_cache_announcements_dropped_total`), and the
    /// other nodes are told to drop their local copies.
    pub announce_capacity: u64,
}

impl Default for RedisTierConfig {
    fn default() -> RedisTierConfig {
        RedisTierConfig {
            enabled: true,
            url: "redis://localhost:6379".to_owned(),
            db: None,
            max_connections: 10,
            ttl_default: TtlSetting::After(Duration::from_secs(7200)),
            key_prefix: "nfcs:".to_owned(),
            command_timeout_ms: 250,
            cluster_nodes: Vec::new(),
            announce_capacity: 65_536,
        }
    }
}

/// `[semantic]`: enabled, threshold 0.95, 10,000 entries, all-MiniLM-L6-v2 by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SemanticConfig {
    /// Whether the semantic cache runs.
    pub enabled: bool,
    /// The cosine similarity (-1 to 1) from which a stored prompt counts as the same.
    pub similarity_threshold: f64,
    /// The most entries kept.
    pub max_entries: u64,
    /// The sentence embedding model. This build runs one, [`EMBEDDING_MODEL`]
    /// (`"sentence-transformers/all-MiniLM-L6-v2"`, also accepted as `"all-MiniLM-L6-v2"`); any
    /// other name is a configuration error rather than a setting silently ignored.
    pub embedding_model: String,
    /// The vector index: exact (`"flat"`, the default) or approximate (`"hnsw"`, for caches of
    /// 100,000 entries and more).
    pub index: SemanticIndex,
    /// Whether a match that looks like the opposite of the query ("enable" against "disable",
    /// a negation, the same words reordered) is refused. Default `true`.
    pub contradiction_guard: bool,
}

/// `[semantic] index`: how the semantic cache searches its vectors.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SemanticIndex {
    /// Exact search over every entry.
    #[default]
    Flat,
    /// Approximate search (HNSW), one graph per context.
    Hnsw,
}

impl Default for SemanticConfig {
    fn default() -> SemanticConfig {
        SemanticConfig {
            enabled: true,
            similarity_threshold: 0.95,
            max_entries: 10_000,
            embedding_model: EMBEDDING_MODEL.to_owned(),
            index: SemanticIndex::Flat,
            contradiction_guard: true,
        }
    }
}

/// Where the policy cache keeps its decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum PolicyTier {
    /// A memory tier of its own (`max_size`), private to this node.
    #[default]
    Memory,
    /// The manager's Redis tier, shared with every node that uses the same server: a
    /// published policy version reaches them all.
    Redis,
}

/// `[policy]`: disabled, TTL 1800 s, a 64 MiB memory tier, policies in `./policies` by
/// default.
///
/// Disabled by default because it needs a policy set: `policy_path` names a Cedar policy
/// file, or a directory whose `*.cedar` files are the policies and whose `*.cedarschema` file,
/// if any, is the schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct PolicyConfig {
    /// Whether the policy cache runs.
    pub enabled: bool,
    /// How long a decision stays cached (the spec's 1800 s). Must be finite: a new policy set
    /// is published as a new version, and old decisions expire by this TTL.
    pub ttl: TtlSetting,
    /// Where decisions are kept.
    pub tier: PolicyTier,
    /// The byte budget of the memory tier (`tier = "memory"`).
    pub max_size: ByteSize,
    /// A Cedar policy file, or a directory of `*.cedar` files (and one `*.cedarschema`).
    pub policy_path: PathBuf,
    /// How long a node trusts the policy version it last read, in milliseconds; 0 (the
    /// default) reads it on every check, so a version published by another node applies at
    /// once.
    pub version_refresh_ms: u64,
}

impl Default for PolicyConfig {
    fn default() -> PolicyConfig {
        PolicyConfig {
            enabled: false,
            ttl: TtlSetting::After(Duration::from_secs(1800)),
            tier: PolicyTier::Memory,
            max_size: ByteSize::new(64 << 20),
            policy_path: PathBuf::from("./policies"),
            version_refresh_ms: 0,
        }
    }
}

/// `[cache_warming]`: enabled, both strategies, warm on start-up by default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheWarmingConfig {
    /// Whether warming runs.
    pub enabled: bool,
    /// Which strategies pick the keys to warm.
    pub strategies: Vec<WarmingStrategy>,
    /// Whether to warm when the manager starts.
    pub warm_on_startup: bool,
    /// `popular_queries`: how many of the most read keys are tracked and saved as the hot set.
    pub max_keys: u64,
    /// `popular_queries`: one read in this many feeds the popularity tracker (a sample keeps
    /// the tracking off the cost of most hits).
    pub sample_every: u32,
    /// How often the hot set is saved (it is also saved by `flush`, at shutdown), in seconds.
    pub persist_interval_secs: u64,
    /// Warming on start-up stops after this many seconds.
    pub warm_max_seconds: u64,
    /// Warming on start-up stops after loading this many bytes of values; by default 90 % of
    /// the memory budget (warming beyond the budget would evict what it just loaded).
    pub warm_max_bytes: Option<ByteSize>,
    /// Keys read from the lower tiers at once while warming.
    pub warm_concurrency: u32,
    /// `predicted_access`: how many preceding reads that missed memory a read counts as the
    /// successor of.
    pub predict_window: u32,
    /// `predicted_access`: the share of a key's appearances a successor must follow it in to
    /// be prefetched.
    pub predict_min_confidence: f64,
    /// `predicted_access`: prefetches at most per read.
    pub predict_max_prefetch: u32,
}

impl Default for CacheWarmingConfig {
    fn default() -> CacheWarmingConfig {
        CacheWarmingConfig {
            enabled: true,
            strategies: vec![
                WarmingStrategy::PopularQueries,
                WarmingStrategy::PredictedAccess,
            ],
            warm_on_startup: true,
            max_keys: 16_384,
            sample_every: 64,
            persist_interval_secs: 60,
            warm_max_seconds: 30,
            warm_max_bytes: None,
            warm_concurrency: 16,
            predict_window: 4,
            predict_min_confidence: 0.3,
            predict_max_prefetch: 2,
        }
    }
}

/// A cache-warming strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum WarmingStrategy {
    /// Warm the most requested keys.
    PopularQueries,
    /// Warm the keys an access model predicts.
    PredictedAccess,
}

impl CacheConfig {
    /// Parses and checks a TOML document.
    ///
    /// # Errors
    /// [`ConfigError::Syntax`] for malformed TOML, [`ConfigError::Invalid`] naming the field for
    /// an unknown field or a value that cannot work.
    pub fn from_toml_str(text: &str) -> Result<CacheConfig, ConfigError> {
        let deserializer =
            toml::Deserializer::parse(text).map_err(|error| ConfigError::Syntax {
                message: error.to_string().trim_end().to_owned(),
            })?;
        let config: CacheConfig =
            serde_path_to_error::deserialize(deserializer).map_err(|error| {
                let field = field_path(error.path());
                let message = error.into_inner().message().trim_end().to_owned();
                ConfigError::Invalid { field, message }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Reads, parses and checks a TOML file.
    ///
    /// # Errors
    /// [`ConfigError::Read`] when the file cannot be read, otherwise as
    /// [`from_toml_str`](CacheConfig::from_toml_str).
    pub fn from_toml_file(path: impl AsRef<Path>) -> Result<CacheConfig, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        CacheConfig::from_toml_str(&text)
    }

    /// The configuration as TOML (what [`from_toml_str`](CacheConfig::from_toml_str) reads back).
    pub fn to_toml_string(&self) -> String {
        // Every field serialises to a TOML value, so this cannot fail; an empty document would
        // only mean "the defaults".
        toml::to_string_pretty(self).unwrap_or_default()
    }

    /// Checks the values that types alone do not: sizes above zero, a Redis URL that can work,
    /// a similarity threshold within -1..=1, and so on. Sections of disabled tiers are checked
    /// too, so that enabling one later does not reveal an old mistake.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the first bad field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let name = self.name.trim();
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(ConfigError::invalid(
                "name",
                format!(
                    "{:?}: must be 1 to 128 bytes without control characters (it becomes a metric label)",
                    self.name
                ),
            ));
        }
        if self.memory.max_size.bytes() == 0 {
            return Err(ConfigError::invalid(
                "memory.max_size",
                "must be larger than zero",
            ));
        }
        let memory = &self.memory;
        if let Some(min) = memory.min_size
            && (min.bytes() == 0 || min.bytes() >= memory.max_size.bytes())
        {
            return Err(ConfigError::invalid(
                "memory.min_size",
                format!(
                    "{} bytes: must be above zero and below memory.max_size ({} bytes)",
                    min.bytes(),
                    memory.max_size.bytes()
                ),
            ));
        }
        if !(memory.target_hit_ratio > 0.0 && memory.target_hit_ratio < 1.0) {
            return Err(ConfigError::invalid(
                "memory.target_hit_ratio",
                format!(
                    "{}: must lie strictly between 0 and 1",
                    memory.target_hit_ratio
                ),
            ));
        }
        if !(memory.sampling_rate > 0.0 && memory.sampling_rate <= 1.0) {
            return Err(ConfigError::invalid(
                "memory.sampling_rate",
                format!("{}: must lie in (0, 1]", memory.sampling_rate),
            ));
        }
        if !(1..=86_400).contains(&memory.adaptive_interval_secs) {
            return Err(ConfigError::invalid(
                "memory.adaptive_interval_secs",
                format!(
                    "{}: must be between 1 and 86400",
                    memory.adaptive_interval_secs
                ),
            ));
        }
        if self.disk.max_size.bytes() == 0 {
            return Err(ConfigError::invalid(
                "disk.max_size",
                "must be larger than zero",
            ));
        }
        if self.disk.directory.as_os_str().is_empty() {
            return Err(ConfigError::invalid("disk.directory", "must not be empty"));
        }
        let url_database = validate_redis_url(&self.redis.url)
            .map_err(|message| ConfigError::invalid("redis.url", message))?;
        if let (Some(db), Some(in_url)) = (self.redis.db, url_database)
            && db != in_url
        {
            return Err(ConfigError::invalid(
                "redis.db",
                format!(
                    "{db} differs from database {in_url} named by redis.url; set one of them, or both alike"
                ),
            ));
        }
        if self.redis.db.is_some_and(|db| db != 0) && !self.redis.cluster_nodes.is_empty() {
            return Err(ConfigError::invalid(
                "redis.db",
                "a Redis Cluster has only database 0",
            ));
        }
        for (index, node) in self.redis.cluster_nodes.iter().enumerate() {
            validate_redis_url(node).map_err(|message| {
                ConfigError::invalid(&format!("redis.cluster_nodes[{index}]"), message)
            })?;
        }
        if self.redis.command_timeout_ms == 0 || self.redis.command_timeout_ms > 60_000 {
            return Err(ConfigError::invalid(
                "redis.command_timeout_ms",
                format!(
                    "{} ms: must be between 1 and 60000",
                    self.redis.command_timeout_ms
                ),
            ));
        }
        if self.redis.announce_capacity == 0 || self.redis.announce_capacity > 16_777_216 {
            return Err(ConfigError::invalid(
                "redis.announce_capacity",
                format!(
                    "{} keys: must be between 1 and 16777216",
                    self.redis.announce_capacity
                ),
            ));
        }
        if self.redis.key_prefix.len() > 256 {
            return Err(ConfigError::invalid(
                "redis.key_prefix",
                "must be at most 256 bytes",
            ));
        }
        if self.redis.max_connections == 0 {
            return Err(ConfigError::invalid(
                "redis.max_connections",
                "must be at least 1",
            ));
        }
        if self.redis.max_connections > 10_000 {
            return Err(ConfigError::invalid(
                "redis.max_connections",
                format!(
                    "{} is more connections than a Redis server should see from one client (at most 10000)",
                    self.redis.max_connections
                ),
            ));
        }
        let threshold = self.semantic.similarity_threshold;
        if !threshold.is_finite() || !(-1.0..=1.0).contains(&threshold) {
            return Err(ConfigError::invalid(
                "semantic.similarity_threshold",
                format!("{threshold} is not a cosine similarity: it must lie between -1.0 and 1.0"),
            ));
        }
        if self.semantic.max_entries == 0 {
            return Err(ConfigError::invalid(
                "semantic.max_entries",
                "must be at least 1",
            ));
        }
        let model = self.semantic.embedding_model.trim();
        if model != EMBEDDING_MODEL && model != "all-MiniLM-L6-v2" {
            return Err(ConfigError::invalid(
                "semantic.embedding_model",
                format!(
                    "{:?}: this build runs only {EMBEDDING_MODEL:?} (its weights are what `cargo xtask fetch-model` installs)",
                    self.semantic.embedding_model
                ),
            ));
        }
        if self.policy.ttl == TtlSetting::Never {
            return Err(ConfigError::invalid(
                "policy.ttl",
                "must be finite: cached decisions of an old policy version expire by it",
            ));
        }
        if self.policy.max_size.bytes() == 0 {
            return Err(ConfigError::invalid(
                "policy.max_size",
                "must be larger than zero",
            ));
        }
        if self.policy.policy_path.as_os_str().is_empty() {
            return Err(ConfigError::invalid(
                "policy.policy_path",
                "must not be empty",
            ));
        }
        let warming = &self.cache_warming;
        let ranges: [(&str, u64, u64, u64); 7] = [
            (
                "cache_warming.predict_window",
                u64::from(warming.predict_window),
                1,
                16,
            ),
            (
                "cache_warming.predict_max_prefetch",
                u64::from(warming.predict_max_prefetch),
                1,
                16,
            ),
            ("cache_warming.max_keys", warming.max_keys, 1, 10_000_000),
            (
                "cache_warming.sample_every",
                u64::from(warming.sample_every),
                1,
                1024,
            ),
            (
                "cache_warming.persist_interval_secs",
                warming.persist_interval_secs,
                1,
                86_400,
            ),
            (
                "cache_warming.warm_max_seconds",
                warming.warm_max_seconds,
                1,
                3_600,
            ),
            (
                "cache_warming.warm_concurrency",
                u64::from(warming.warm_concurrency),
                1,
                1024,
            ),
        ];
        for (field, value, low, high) in ranges {
            if !(low..=high).contains(&value) {
                return Err(ConfigError::invalid(
                    field,
                    format!("{value}: must be between {low} and {high}"),
                ));
            }
        }
        if !(warming.predict_min_confidence > 0.0 && warming.predict_min_confidence <= 1.0) {
            return Err(ConfigError::invalid(
                "cache_warming.predict_min_confidence",
                format!("{}: must lie in (0, 1]", warming.predict_min_confidence),
            ));
        }
        if warming
            .warm_max_bytes
            .is_some_and(|bytes| bytes.bytes() == 0)
        {
            return Err(ConfigError::invalid(
                "cache_warming.warm_max_bytes",
                "must be larger than zero (leave it out for 90 % of the memory budget)",
            ));
        }
        if self.policy.version_refresh_ms > 3_600_000 {
            return Err(ConfigError::invalid(
                "policy.version_refresh_ms",
                format!(
                    "{} ms: must be at most 3600000 (one hour)",
                    self.policy.version_refresh_ms
                ),
            ));
        }
        Ok(())
    }
}

/// The dotted path of the field a deserialisation error is about (`memory.max_size`,
/// `redis.cluster_nodes[1]`, "(top level)" for the document itself). An empty key, which TOML
/// allows (`"" = 1`), is written `""` so that the path still names it.
fn field_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut dotted = String::new();
    for segment in path {
        let name = match segment {
            Segment::Seq { index } => {
                dotted.push_str(&format!("[{index}]"));
                continue;
            }
            Segment::Map { key } | Segment::Enum { variant: key } if key.is_empty() => "\"\"",
            Segment::Map { key } | Segment::Enum { variant: key } => key,
            Segment::Unknown => "?",
        };
        if !dotted.is_empty() {
            dotted.push('.');
        }
        dotted.push_str(name);
    }
    if dotted.is_empty() {
        "(top level)".to_owned()
    } else {
        dotted
    }
}

/// Checks the shape of a Redis URL and returns the database it names, if any; the Redis
/// tier's client parses it fully when it connects.
fn validate_redis_url(url: &str) -> Result<Option<u32>, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(format!("{url:?} is not a URL (expected redis://host:port)"));
    };
    match scheme {
        "redis" | "rediss" => {}
        "unix" | "redis+unix" => {
            return if rest.is_empty() {
                Err(format!("{url:?} names no socket path"))
            } else {
                // A socket URL names its database as `?db=N`, which the client parses.
                Ok(None)
            };
        }
        other => {
            return Err(format!(
                "unsupported scheme {other:?} in {url:?} (expected redis, rediss, unix or redis+unix)"
            ));
        }
    }
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        // An IPv6 literal: [::1]:6379
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in the host of {url:?}"))?;
        (host, after.strip_prefix(':'))
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!("{port:?} in {url:?} is not a port (1 to 65535)"));
            }
            Ok(_) => {}
        }
    }
    let database = path.split(['?', '#']).next().unwrap_or("");
    if database.is_empty() {
        return Ok(None);
    }
    database
        .parse::<u32>()
        .map(Some)
        .map_err(|_| format!("the path {database:?} of {url:?} is not a database index"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(text: &str) -> (String, String) {
        match CacheConfig::from_toml_str(text) {
            Err(ConfigError::Invalid { field, message }) => (field, message),
            other => panic!("expected an invalid field, got {other:?}"),
        }
    }

    #[test]
    fn the_semantic_index_and_guard_are_read() {
        let config =
            CacheConfig::from_toml_str("[semantic]\nindex = \"hnsw\"\ncontradiction_guard = false")
                .unwrap();
        assert_eq!(config.semantic.index, SemanticIndex::Hnsw);
        assert!(!config.semantic.contradiction_guard);
        assert_eq!(CacheConfig::default().semantic.index, SemanticIndex::Flat);
        assert!(CacheConfig::from_toml_str("[semantic]\nindex = \"ivf\"").is_err());
    }

    #[test]
    fn defaults_are_the_spec() {
        let config = CacheConfig::default();
        assert!(config.memory.enabled);
        assert_eq!(config.memory.max_size.bytes(), 1_000_000_000);
        assert_eq!(config.memory.eviction_policy, EvictionPolicy::Lru);
        assert_eq!(
            config.memory.ttl_default.as_duration(),
            Some(Duration::from_secs(3600))
        );
        assert_eq!(config.disk.directory, PathBuf::from("./cache"));
        assert_eq!(config.disk.max_size.bytes(), 10_000_000_000);
        assert!(config.disk.compression);
        assert_eq!(config.redis.url, "redis://localhost:6379");
        assert_eq!((config.redis.db, config.redis.max_connections), (None, 10));
        assert_eq!(config.redis.announce_capacity, 65_536);
        assert_eq!(config.name, "nfcs");
        assert_eq!(
            config.redis.ttl_default.as_duration(),
            Some(Duration::from_secs(7200))
        );
        assert_eq!(config.semantic.similarity_threshold, 0.95);
        assert_eq!(config.semantic.max_entries, 10_000);
        assert_eq!(
            config.semantic.embedding_model,
            "sentence-transformers/all-MiniLM-L6-v2"
        );
        assert_eq!(
            config.cache_warming.strategies,
            [
                WarmingStrategy::PopularQueries,
                WarmingStrategy::PredictedAccess
            ]
        );
        assert!(config.cache_warming.warm_on_startup);
        assert_eq!(CacheConfig::from_toml_str("").unwrap(), config);
        config.validate().unwrap();
    }

    #[test]
    fn the_spec_document_parses() {
        let config = CacheConfig::from_toml_str(
            r#"
            [memory]
            enabled = true
            max_size = "1GB"
            eviction = "lru"
            ttl_default = 3600

            [disk]
            enabled = true
            directory = "./cache"
            max_size = "10GB"
            compression = true

            [redis]
            enabled = true
            url = "redis://localhost:6379"
            db = 0
            max_connections = 10
            ttl_default = 7200

            [semantic]
            enabled = true
            similarity_threshold = 0.95
            max_entries = 10000
            embedding_model = "sentence-transformers/all-MiniLM-L6-v2"

            [cache_warming]
            enabled = true
            strategies = ["popular_queries", "predicted_access"]
            warm_on_startup = true
            "#,
        )
        .unwrap();
        let mut expected = CacheConfig::default();
        expected.redis.db = Some(0);
        assert_eq!(config, expected);
    }

    #[test]
    fn the_redis_database_comes_from_the_url_unless_db_agrees() {
        let config = |text: &str| CacheConfig::from_toml_str(text);
        assert_eq!(
            config("[redis]\nurl = \"redis://h:6379/3\"")
                .unwrap()
                .redis
                .db,
            None,
            "the URL's database applies"
        );
        assert!(config("[redis]\nurl = \"redis://h:6379/3\"\ndb = 3").is_ok());
        assert_eq!(
            config("[redis]\nurl = \"redis://h:6379\"\ndb = 2")
                .unwrap()
                .redis
                .db,
            Some(2)
        );
        let (field, message) = field_of("[redis]\nurl = \"redis://h:6379/3\"\ndb = 0");
        assert_eq!(field, "redis.db");
        assert!(message.contains("database 3"), "{message}");
        let (field, _) = field_of("[redis]\ncluster_nodes = [\"redis://h:7000\"]\ndb = 1");
        assert_eq!(field, "redis.db");
    }

    #[test]
    fn another_embedding_model_and_a_bad_name_are_refused() {
        let (field, message) = field_of("[semantic]\nembedding_model = \"BAAI/bge-small-en-v1.5\"");
        assert_eq!(field, "semantic.embedding_model");
        assert!(message.contains("all-MiniLM-L6-v2"), "{message}");
        assert!(
            CacheConfig::from_toml_str("[semantic]\nembedding_model = \"all-MiniLM-L6-v2\"")
                .is_ok()
        );
        assert_eq!(field_of("name = \"\"").0, "name");
        assert_eq!(field_of("name = \"a\\nb\"").0, "name");
        assert_eq!(
            CacheConfig::from_toml_str("name = \"node-a\"")
                .unwrap()
                .name,
            "node-a"
        );
    }

    #[test]
    fn round_trips_through_toml() {
        let mut config = CacheConfig::default();
        config.memory.max_size = ByteSize::new(512 << 20);
        config.memory.ttl_default = TtlSetting::Never;
        config.memory.eviction_policy = EvictionPolicy::S3Fifo;
        let text = config.to_toml_string();
        assert_eq!(CacheConfig::from_toml_str(&text).unwrap(), config, "{text}");
    }

    #[test]
    fn every_bad_value_names_its_field() {
        let cases = [
            (
                "[memory]\nmax_size = \"1XB\"",
                "memory.max_size",
                "unknown unit",
            ),
            (
                "[memory]\nmax_size = 0",
                "memory.max_size",
                "larger than zero",
            ),
            ("[memory]\nmax_size = -5", "memory.max_size", "negative"),
            (
                "[memory]\neviction_policy = \"lfu\"",
                "memory.eviction_policy",
                "lfu",
            ),
            ("[memory]\nttl_default = 0", "memory.ttl_default", "never"),
            (
                "[memory]\nttl_default = \"forever\"",
                "memory.ttl_default",
                "not a duration",
            ),
            (
                "[memory]\nmax_sise = \"1GB\"",
                "memory.max_sise",
                "unknown field",
            ),
            (
                "[disk]\nmax_size = \"0GB\"",
                "disk.max_size",
                "larger than zero",
            ),
            ("[disk]\ndirectory = \"\"", "disk.directory", "empty"),
            (
                "[redis]\nurl = \"http://localhost\"",
                "redis.url",
                "unsupported scheme",
            ),
            (
                "[redis]\nurl = \"localhost:6379\"",
                "redis.url",
                "not a URL",
            ),
            ("[redis]\nurl = \"redis://:6379\"", "redis.url", "no host"),
            (
                "[redis]\nurl = \"redis://localhost:99999\"",
                "redis.url",
                "not a port",
            ),
            (
                "[redis]\nurl = \"redis://localhost:6379/zero\"",
                "redis.url",
                "database index",
            ),
            ("[redis]\ndb = -1", "redis.db", "-1"),
            (
                "[redis]\nmax_connections = 0",
                "redis.max_connections",
                "at least 1",
            ),
            (
                "[redis]\nannounce_capacity = 0",
                "redis.announce_capacity",
                "between 1 and 16777216",
            ),
            (
                "[redis]\nannounce_capacity = 16777217",
                "redis.announce_capacity",
                "between 1 and 16777216",
            ),
            (
                "[semantic]\nsimilarity_threshold = 1.5",
                "semantic.similarity_threshold",
                "between -1.0 and 1.0",
            ),
            (
                "[semantic]\nsimilarity_threshold = nan",
                "semantic.similarity_threshold",
                "NaN",
            ),
            (
                "[semantic]\nmax_entries = 0",
                "semantic.max_entries",
                "at least 1",
            ),
            (
                "[cache_warming]\nstrategies = [\"guesswork\"]",
                "cache_warming.strategies[0]",
                "guesswork",
            ),
            (
                "[unknown_section]\nx = 1",
                "unknown_section",
                "unknown field",
            ),
        ];
        for (text, field, fragment) in cases {
            let (got_field, message) = field_of(text);
            assert_eq!(got_field, field, "for {text:?}: {message}");
            assert!(
                message.contains(fragment),
                "for {text:?}: {message:?} lacks {fragment:?}"
            );
        }
    }

    #[test]
    fn syntax_errors_give_the_line() {
        let error = CacheConfig::from_toml_str("[memory]\nmax_size = = 3").unwrap_err();
        assert!(matches!(error, ConfigError::Syntax { .. }));
        assert!(error.to_string().contains("line 2"), "{error}");
    }

    #[test]
    fn unreadable_files_name_the_path() {
        let error = CacheConfig::from_toml_file("/nonexistent/nfcs.toml").unwrap_err();
        assert!(
            error.to_string().contains("/nonexistent/nfcs.toml"),
            "{error}"
        );
    }

    #[test]
    fn redis_urls() {
        for good in [
            "redis://localhost",
            "redis://127.0.0.1:6379/2",
            "rediss://user:secret@cache.example:6380",
            "redis://[::1]:6379",
            "unix:///run/redis.sock",
        ] {
            validate_redis_url(good).unwrap_or_else(|error| panic!("{good}: {error}"));
        }
    }
}
