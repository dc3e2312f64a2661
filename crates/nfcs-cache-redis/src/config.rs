//! `RedisConfig`: how to reach Redis, how the tier behaves, and the rules that check it.

use std::time::Duration;

use nfcs_cache_core::Clock;
use nfcs_cache_core::telemetry::DEFAULT_INSTANCE;

/// The default of [`RedisConfig::announce_capacity`]: 65,536 keys, sixteen full announcement
/// messages.
pub const DEFAULT_ANNOUNCE_CAPACITY: usize = 65_536;

/// The largest [`RedisConfig::announce_capacity`] accepted: 16,777,216 keys.
pub const MAX_ANNOUNCE_CAPACITY: usize = 1 << 24;

/// How to reach Redis and how the tier behaves.
///
/// ```
/// use std::time::Duration;
/// use nfcs_cache_redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://localhost:6379/2")
///     .max_connections(10)
///     .default_ttl(Some(Duration::from_secs(7200)))
///     .key_prefix("nfcs:")
///     .instance("orders");
/// assert_eq!(config.urls, ["redis://localhost:6379/2"]);
/// // The database is the URL's, since `db` was not set.
/// assert_eq!(config.database()?, 2);
/// // Setting `db` to another database than the URL names is refused, naming the field.
/// let error = config.db(3).database().unwrap_err();
/// assert!(error.to_string().contains("db"), "{error}");
/// # Ok::<(), nfcs_cache_redis::RedisError>(())
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]`, `rediss://...` (feature `tls`), or
    /// `unix:///path`. For a cluster (feature `cluster`), one or more nodes' URLs.
    pub urls: Vec<String>,
    /// Whether `urls` name Redis Cluster nodes.
    pub cluster: bool,
    /// The database index, for a URL that does not name one (standalone only; a cluster has
    /// database 0). The rule: the URL's database (`redis://host/3`, `unix:///path?db=3`) unless
    /// `db` is set; `db` alone chooses; both set and different is an
    /// [`InvalidConfig`](RedisError::InvalidConfig) error naming `db`; neither means 0. See
    /// [`database`](RedisConfig::database).
    pub db: Option<u32>,
    /// The most connections kept open (standalone): the tier opens one multiplexed connection
    /// per CPU, up to this. Each carries many concurrent requests, pipelined.
    pub max_connections: usize,
    /// Prepended to every key, so that applications can share a server; `clear` and
    /// `invalidate_pattern` touch only keys with this prefix.
    pub key_prefix: String,
    /// The TTL of entries set without one; `None` means they never expire.
    pub default_ttl: Option<Duration>,
    /// The longest any command may take; a slower one fails (and counts toward the breaker).
    pub command_timeout: Duration,
    /// The longest a connection attempt may take.
    pub connect_timeout: Duration,
    /// Consecutive failures after which the circuit breaker opens (Redis is skipped).
    pub breaker_threshold: u32,
    /// How long the breaker stays open before one command probes Redis again.
    pub breaker_cooldown: Duration,
    /// Whether this cache takes part in cross-node coherence: announcing its writes, deletions
    /// and invalidations, and listening to the other nodes'. Off, it is a plain shared cache
    /// (one node, or nodes without local tiers).
    pub cross_node_invalidation: bool,
    /// The most written or deleted keys waiting to be announced to the other nodes (default
    /// [`DEFAULT_ANNOUNCE_CAPACITY`], 1 to [`MAX_ANNOUNCE_CAPACITY`]). A write never waits for
    /// room: when the queue is full (the announcer cannot publish as fast as the node writes, or
    /// Redis stalls), the key's announcement is dropped and counted
    /// ([`RedisCache::announcements_dropped`](crate::RedisCache::announcements_dropped)), and
    /// the node announces [`Invalidation::Resync`](crate::Invalidation::Resync) as soon as it
    /// can, so that every other node drops its local copies instead of keeping a stale one.
    pub announce_capacity: usize,
    /// A root certificate (PEM) to trust for `rediss://` instead of the webpki roots, for a
    /// server with a private certificate authority (feature `tls`; standalone servers).
    pub tls_root_certificate: Option<Vec<u8>>,
    /// The tier's name in stats and errors, and the `tier` metric label ("redis" by default).
    pub name: String,
    /// The cache instance this tier belongs to: the `cache` metric label
    /// ([`DEFAULT_INSTANCE`] unless set; a manager passes its own name).
    pub instance: String,
    /// The clock the tier reads for expiry and for the circuit breaker's cool-down (the
    /// system's unless a test drives one, see [`clock`](RedisConfig::clock)).
    pub clock: Clock,
}

impl std::fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // URLs are shown without their passwords.
        f.debug_struct("RedisConfig")
            .field(
                "urls",
                &self.urls.iter().map(|url| redact(url)).collect::<Vec<_>>(),
            )
            .field("cluster", &self.cluster)
            .field("db", &self.db)
            .field("max_connections", &self.max_connections)
            .field("key_prefix", &self.key_prefix)
            .field("default_ttl", &self.default_ttl)
            .field("command_timeout", &self.command_timeout)
            .field("cross_node_invalidation", &self.cross_node_invalidation)
            .field("announce_capacity", &self.announce_capacity)
            .field("tls_root_certificate", &self.tls_root_certificate.is_some())
            .field("name", &self.name)
            .field("instance", &self.instance)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl RedisConfig {
    /// A standalone server at `url`, with the spec's defaults: 10 connections, a 7200 s default
    /// TTL, prefix `nfcs:`, 250 ms command timeout, breaker after 5 failures for 1 s, the
    /// system clock, metric labels `cache="default"`, `tier="redis"`, up to 65,536 keys waiting
    /// to be announced.
    pub fn new(url: impl Into<String>) -> RedisConfig {
        RedisConfig {
            urls: vec![url.into()],
            cluster: false,
            db: None,
            max_connections: 10,
            key_prefix: "nfcs:".to_owned(),
            default_ttl: Some(Duration::from_secs(7200)),
            command_timeout: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(1),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            cross_node_invalidation: true,
            announce_capacity: DEFAULT_ANNOUNCE_CAPACITY,
            tls_root_certificate: None,
            name: "redis".to_owned(),
            instance: DEFAULT_INSTANCE.to_owned(),
            clock: Clock::system(),
        }
    }

    /// A Redis Cluster reached through `urls` (any subset of its nodes; feature `cluster`).
    pub fn cluster(urls: impl IntoIterator<Item = impl Into<String>>) -> RedisConfig {
        RedisConfig {
            urls: urls.into_iter().map(Into::into).collect(),
            cluster: true,
            ..RedisConfig::new("")
        }
    }

    /// Sets the database index explicitly. It must agree with the URL's database if the URL
    /// names one (see [`db`](RedisConfig#structfield.db)).
    #[must_use]
    pub fn db(mut self, db: u32) -> RedisConfig {
        self.db = Some(db);
        self
    }

    /// Sets the number of connections.
    #[must_use]
    pub fn max_connections(mut self, connections: usize) -> RedisConfig {
        self.max_connections = connections;
        self
    }

    /// Sets the key prefix.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> RedisConfig {
        self.key_prefix = prefix.into();
        self
    }

    /// Sets the default TTL.
    #[must_use]
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> RedisConfig {
        self.default_ttl = ttl;
        self
    }

    /// Sets the command timeout.
    #[must_use]
    pub fn command_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.command_timeout = timeout;
        self
    }

    /// Sets the connection timeout.
    #[must_use]
    pub fn connect_timeout(mut self, timeout: Duration) -> RedisConfig {
        self.connect_timeout = timeout;
        self
    }

    /// Sets the circuit breaker's threshold and cool-down.
    #[must_use]
    pub fn breaker(mut self, threshold: u32, cooldown: Duration) -> RedisConfig {
        self.breaker_threshold = threshold;
        self.breaker_cooldown = cooldown;
        self
    }

    /// Turns cross-node coherence on or off.
    #[must_use]
    pub fn cross_node_invalidation(mut self, on: bool) -> RedisConfig {
        self.cross_node_invalidation = on;
        self
    }

    /// Sets how many keys may wait to be announced to the other nodes (see
    /// [`announce_capacity`](RedisConfig#structfield.announce_capacity)).
    #[must_use]
    pub fn announce_capacity(mut self, keys: usize) -> RedisConfig {
        self.announce_capacity = keys;
        self
    }

    /// Trusts `pem` (a root certificate) for `rediss://` connections.
    #[must_use]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> RedisConfig {
        self.tls_root_certificate = Some(pem.into());
        self
    }

    /// Sets the tier's name (the `tier` metric label).
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> RedisConfig {
        self.name = name.into();
        self
    }

    /// Sets the cache instance this tier belongs to (the `cache` metric label).
    #[must_use]
    pub fn instance(mut self, instance: impl Into<String>) -> RedisConfig {
        self.instance = instance.into();
        self
    }

    /// Sets the clock the tier reads (a [`ManualClock`](nfcs_cache_core::ManualClock)'s in
    /// tests).
    ///
    /// The clock governs what the tier *returns*: the expiry written into each value's frame is
    /// the clock's time plus the TTL, a read reports an entry as expired (a miss) once the
    /// clock has passed it, and removals count only entries that are live by the clock. It also
    /// times the circuit breaker's cool-down, so a test advances it instead of sleeping. The
    /// server's own `PX` expiry stays in real time: on a driven clock Redis may drop an entry
    /// earlier (in real time) than the clock says, never later than it would have anyway.
    /// Command timeouts and reconnection back-off are real time too, because they wait for a
    /// real server.
    #[must_use]
    pub fn clock(mut self, clock: Clock) -> RedisConfig {
        self.clock = clock;
        self
    }

    /// The database the tier uses: the URL's database unless [`db`](RedisConfig::db) is set,
    /// `db` when the URL names none, 0 when neither does (and always 0 for a cluster).
    ///
    /// # Errors
    /// [`RedisError::InvalidConfig`] naming `db` when the URL and `db` name different
    /// databases (or `db` is not 0 for a cluster), naming `urls` when a URL's database is not a
    /// number or a cluster URL names a database other than 0.
    pub fn database(&self) -> Result<u32, RedisError> {
        let invalid =
            |field: &'static str, reason: String| RedisError::InvalidConfig { field, reason };
        let mut from_urls = None;
        for url in &self.urls {
            let named = url_database(url)
                .map_err(|reason| invalid("urls", format!("{}: {reason}", redact(url))))?;
            if self.cluster && named.is_some_and(|db| db != 0) {
                return Err(invalid(
                    "urls",
                    format!("{}: a Redis Cluster only has database 0", redact(url)),
                ));
            }
            // Only the first URL is used for a standalone server; a cluster's are all 0.
            if from_urls.is_none() {
                from_urls = named;
            }
        }
        if self.cluster {
            if self.db.is_some_and(|db| db != 0) {
                return Err(invalid("db", "a Redis Cluster only has database 0".into()));
            }
            return Ok(0);
        }
        match (from_urls, self.db) {
            (Some(url_db), Some(db)) if url_db != db => Err(invalid(
                "db",
                format!(
                    "is {db}, but the URL {} names database {url_db}; set one of them, or both to the same database",
                    redact(&self.urls[0])
                ),
            )),
            (Some(db), _) | (None, Some(db)) => Ok(db),
            (None, None) => Ok(0),
        }
    }

    pub(crate) fn validate(&self) -> Result<(), RedisError> {
        let invalid =
            |field: &'static str, reason: String| RedisError::InvalidConfig { field, reason };
        if self.urls.is_empty() || self.urls.iter().any(|url| url.trim().is_empty()) {
            return Err(invalid(
                "urls",
                "at least one non-empty URL is needed".into(),
            ));
        }
        if self.max_connections == 0 {
            return Err(invalid("max_connections", "must be at least 1".into()));
        }
        if self.key_prefix.len() > 256 {
            return Err(invalid("key_prefix", "must be at most 256 bytes".into()));
        }
        if self.command_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(invalid(
                "command_timeout",
                "timeouts must be longer than zero".into(),
            ));
        }
        if self.breaker_threshold == 0 {
            return Err(invalid("breaker_threshold", "must be at least 1".into()));
        }
        if !(1..=MAX_ANNOUNCE_CAPACITY).contains(&self.announce_capacity) {
            return Err(invalid(
                "announce_capacity",
                format!(
                    "is {}: must be from 1 to {MAX_ANNOUNCE_CAPACITY} keys",
                    self.announce_capacity
                ),
            ));
        }
        if let Some(ttl) = self.default_ttl {
            nfcs_cache_core::validate_ttl(ttl)
                .map_err(|problem| invalid("default_ttl", problem.to_string()))?;
        }
        if self.cluster && !cfg!(feature = "cluster") {
            return Err(invalid(
                "cluster",
                "Redis Cluster needs the `cluster` feature of nfcs-cache-redis".into(),
            ));
        }
        self.database()?;
        if self.tls_root_certificate.is_some() && !cfg!(feature = "tls") {
            return Err(invalid(
                "tls_root_certificate",
                "needs the `tls` feature of nfcs-cache-redis".into(),
            ));
        }
        if self.tls_root_certificate.is_some() && self.cluster {
            return Err(invalid(
                "tls_root_certificate",
                "is not supported for Redis Cluster yet".into(),
            ));
        }
        for url in &self.urls {
            if url.starts_with("rediss://") && !cfg!(feature = "tls") {
                return Err(invalid(
                    "urls",
                    format!(
                        "{} needs the `tls` feature of nfcs-cache-redis",
                        redact(url)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Why the Redis tier could not be set up or reached.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The configuration cannot work.
    #[error("invalid Redis configuration: {field}: {reason}")]
    InvalidConfig {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// Connecting failed (refused, unreachable, not Redis, wrong password, wrong database).
    #[error("could not connect to Redis at {url}: {source}")]
    Connect {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// What the client reported.
        #[source]
        source: redis::RedisError,
    },
    /// The server refused to switch to the database the configuration names (it has fewer
    /// databases, see its `databases` setting). The tier does not run on another database
    /// instead.
    #[error("Redis at {url} has no database {db} (the URL's /{db} or the `db` setting): {source}")]
    NoSuchDatabase {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The database index asked for.
        db: u32,
        /// What the server answered.
        #[source]
        source: redis::RedisError,
    },
    /// Connecting took longer than the connection timeout.
    #[error("could not connect to Redis at {url}: no answer within {timeout:?}")]
    ConnectTimeout {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The connection timeout.
        timeout: Duration,
    },
}

/// The database a URL names, if it names one: the path of a `redis://` or `rediss://` URL
/// (`/3`), the `db` query parameter of a `unix://` or `redis+unix://` one. This is the syntax
/// the `redis` crate reads; it is parsed here too because that crate reports an absent database
/// as 0, and the configuration rule must tell "/0" from nothing.
fn url_database(url: &str) -> Result<Option<u32>, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        // Not a URL the redis crate accepts; connecting reports that, with its own words.
        return Ok(None);
    };
    let parse = |text: &str| {
        text.parse::<u32>()
            .map(Some)
            .map_err(|_| format!("the database {text:?} is not a database number"))
    };
    let (before_fragment, _) = rest.split_once('#').unwrap_or((rest, ""));
    let (location, query) = before_fragment
        .split_once('?')
        .unwrap_or((before_fragment, ""));
    if scheme.ends_with("unix") {
        for pair in query.split('&') {
            if let Some(("db", value)) = pair.split_once('=') {
                return parse(value);
            }
        }
        return Ok(None);
    }
    let path = location.split_once('/').map_or("", |(_, path)| path);
    match path.trim_matches('/') {
        "" => Ok(None),
        database => parse(database),
    }
}

/// `url` with its password, if any, replaced by `***` (for messages and logs).
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, None), |(a, p)| (a, Some(p)));
    let Some((credentials, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = credentials
        .split_once(':')
        .map_or(credentials, |(user, _)| user);
    let hidden = if credentials.contains(':') {
        format!("{user}:***")
    } else {
        "***".to_owned()
    };
    match path {
        Some(path) => format!("{scheme}://{hidden}@{host}/{path}"),
        None => format!("{scheme}://{hidden}@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(
            redact("redis://user:secret@host:6379/2"),
            "redis://user:***@host:6379/2"
        );
        assert_eq!(redact("redis://:secret@host"), "redis://:***@host");
        assert_eq!(redact("redis://token@host"), "redis://***@host");
        assert_eq!(redact("redis://host:6379"), "redis://host:6379");
    }

    #[test]
    fn invalid_settings_name_their_field() {
        let field = |config: RedisConfig| match config.validate() {
            Err(RedisError::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(RedisConfig::new("")), "urls");
        assert_eq!(
            field(RedisConfig::new("redis://h").max_connections(0)),
            "max_connections"
        );
        assert_eq!(
            field(RedisConfig::new("redis://h").default_ttl(Some(Duration::ZERO))),
            "default_ttl"
        );
        assert_eq!(
            field(RedisConfig::new("redis://h").breaker(0, Duration::from_secs(1))),
            "breaker_threshold"
        );
        assert_eq!(
            field(RedisConfig::new("redis://h").announce_capacity(0)),
            "announce_capacity"
        );
        assert_eq!(
            field(RedisConfig::new("redis://h").announce_capacity(MAX_ANNOUNCE_CAPACITY + 1)),
            "announce_capacity"
        );
        RedisConfig::new("redis://h")
            .announce_capacity(1)
            .validate()
            .unwrap();
        RedisConfig::new("redis://h")
            .announce_capacity(MAX_ANNOUNCE_CAPACITY)
            .validate()
            .unwrap();
        RedisConfig::new("redis://h").validate().unwrap();
    }

    #[test]
    fn the_database_is_the_urls_unless_db_is_set_and_both_must_agree() {
        let database = |config: RedisConfig| config.database();
        assert_eq!(database(RedisConfig::new("redis://h:6379")).unwrap(), 0);
        assert_eq!(database(RedisConfig::new("redis://h:6379/3")).unwrap(), 3);
        assert_eq!(database(RedisConfig::new("redis://h:6379/3/")).unwrap(), 3);
        assert_eq!(
            database(RedisConfig::new("redis://user:pw@h:6379/2?protocol=3")).unwrap(),
            2
        );
        assert_eq!(database(RedisConfig::new("redis://h").db(3)).unwrap(), 3);
        assert_eq!(database(RedisConfig::new("redis://h/2").db(2)).unwrap(), 2);
        assert_eq!(
            database(RedisConfig::new("unix:///tmp/redis.sock?db=5")).unwrap(),
            5
        );
        assert_eq!(
            database(RedisConfig::new("redis+unix:///tmp/redis.sock")).unwrap(),
            0
        );
        // "/0" is a database named explicitly: it disagrees with `db` 3.
        for url in ["redis://h/2", "redis://h/0"] {
            match database(RedisConfig::new(url).db(3)) {
                Err(RedisError::InvalidConfig {
                    field: "db",
                    reason,
                }) => {
                    assert!(reason.contains("names database"), "{reason}");
                }
                other => panic!("{url}: {other:?}"),
            }
        }
        match database(RedisConfig::new("redis://:secret@h/two")) {
            Err(RedisError::InvalidConfig {
                field: "urls",
                reason,
            }) => {
                assert!(reason.contains("\"two\""), "{reason}");
                assert!(!reason.contains("secret"), "the password leaked: {reason}");
            }
            other => panic!("{other:?}"),
        }
        // A cluster has database 0 only.
        assert_eq!(
            database(RedisConfig::cluster(["redis://a/0", "redis://b"])).unwrap(),
            0
        );
        let field = |config: RedisConfig| match config.validate() {
            Err(RedisError::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(RedisConfig::cluster(["redis://a/1"])), "urls");
        assert_eq!(field(RedisConfig::cluster(["redis://a"]).db(1)), "db");
        assert_eq!(field(RedisConfig::new("redis://h/2").db(3)), "db");
    }
}
