//! `RedisConfig`.

use std::time::Duration;

/// How to reach Redis and how the tier behaves.
///
/// ```
/// use std::time::Duration;
/// use nfcs_cache_redis::RedisConfig;
///
/// let config = RedisConfig::new("redis://localhost:6379")
///     .db(0)
///     .max_connections(10)
///     .default_ttl(Some(Duration::from_secs(7200)))
///     .key_prefix("nfcs:");
/// assert_eq!(config.urls, ["redis://localhost:6379"]);
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisConfig {
    /// `redis://[user[:password]@]host[:port][/db]`, `rediss://...` (feature `tls`), or
    /// `unix:///path`. For a cluster (feature `cluster`), one or more nodes' URLs.
    pub urls: Vec<String>,
    /// Whether `urls` name Redis Cluster nodes.
    pub cluster: bool,
    /// The database index, overriding the URL's (standalone only; a cluster has database 0).
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
    /// A root certificate (PEM) to trust for `rediss://` instead of the webpki roots, for a
    /// server with a private certificate authority (feature `tls`; standalone servers).
    pub tls_root_certificate: Option<Vec<u8>>,
    /// The tier's name in stats, errors and metric labels.
    pub name: String,
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
            .field("tls_root_certificate", &self.tls_root_certificate.is_some())
            .finish_non_exhaustive()
    }
}

impl RedisConfig {
    /// A standalone server at `url`, with the spec's defaults: 10 connections, a 7200 s default
    /// TTL, prefix `nfcs:`, 250 ms command timeout, breaker after 5 failures for 1 s.
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
            tls_root_certificate: None,
            name: "redis".to_owned(),
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

    /// Sets the database index.
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

    /// Trusts `pem` (a root certificate) for `rediss://` connections.
    #[must_use]
    pub fn tls_root_certificate(mut self, pem: impl Into<Vec<u8>>) -> RedisConfig {
        self.tls_root_certificate = Some(pem.into());
        self
    }

    /// Sets the tier's name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> RedisConfig {
        self.name = name.into();
        self
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
        if self.cluster && self.db.is_some_and(|db| db != 0) {
            return Err(invalid("db", "a Redis Cluster only has database 0".into()));
        }
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
    /// Connecting took longer than the connection timeout.
    #[error("could not connect to Redis at {url}: no answer within {timeout:?}")]
    ConnectTimeout {
        /// The URL, with any password replaced by `***`.
        url: String,
        /// The connection timeout.
        timeout: Duration,
    },
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
        RedisConfig::new("redis://h").validate().unwrap();
    }
}
