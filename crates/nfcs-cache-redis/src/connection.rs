//! Connections: a pool of multiplexed connections to one server, or a cluster connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::{Cmd, IntoConnectionInfo, Pipeline, RedisFuture, RedisResult, Value};

use crate::config::{RedisConfig, RedisError, redact};

/// A connection for one command: a clone of a pooled connection manager, or of the cluster
/// connection (both are cheap handles onto shared, multiplexed sockets).
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    #[cfg(feature = "cluster")]
    Cluster(redis::cluster_async::ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(connection) => connection.req_packed_command(cmd),
            #[cfg(feature = "cluster")]
            Conn::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            #[cfg(feature = "cluster")]
            Conn::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(connection) => connection.get_db(),
            #[cfg(feature = "cluster")]
            Conn::Cluster(connection) => connection.get_db(),
        }
    }
}

/// The connected backend.
pub(crate) struct Backend {
    pool: Vec<ConnectionManager>,
    next: AtomicUsize,
    #[cfg(feature = "cluster")]
    cluster: Option<redis::cluster_async::ClusterConnection>,
    /// A client for the invalidation subscription (any node of a cluster hears every message).
    pub(crate) client: redis::Client,
}

type BoxedFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl Backend {
    /// Connects (and checks with `PING` that the other end is Redis and accepts us).
    pub(crate) async fn connect(config: &RedisConfig) -> Result<Backend, RedisError> {
        let url = &config.urls[0];
        let shown = redact(url);
        let db = config.database()?;
        let connect_error = |source: redis::RedisError| {
            if refused_database(&source) {
                RedisError::NoSuchDatabase {
                    url: shown.clone(),
                    db,
                    source,
                }
            } else {
                RedisError::Connect {
                    url: shown.clone(),
                    source,
                }
            }
        };
        let mut info = url.as_str().into_connection_info().map_err(connect_error)?;
        if !config.cluster {
            // One rule decides the database (the URL's unless `db` is set, see
            // `RedisConfig::database`); it is written into the connection settings so that
            // every connection, and every reconnection, selects it.
            let settings = info.redis_settings().clone().set_db(i64::from(db));
            info = info.set_redis_settings(settings);
        }
        let client = match &config.tls_root_certificate {
            #[cfg(feature = "tls")]
            Some(pem) => redis::Client::build_with_tls(
                info,
                redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(pem.clone()),
                },
            ),
            _ => redis::Client::open(info),
        }
        .map_err(connect_error)?;
        let limit = config.connect_timeout + config.command_timeout;
        let timed_out = || RedisError::ConnectTimeout {
            url: shown.clone(),
            timeout: limit,
        };

        #[cfg(feature = "cluster")]
        if config.cluster {
            let cluster = redis::cluster::ClusterClient::builder(config.urls.clone())
                .connection_timeout(config.connect_timeout)
                .response_timeout(config.command_timeout)
                .retries(1)
                .build()
                .map_err(connect_error)?;
            let mut connection = tokio::time::timeout(limit, cluster.get_async_connection())
                .await
                .map_err(|_| timed_out())?
                .map_err(connect_error)?;
            ping(&mut connection, limit)
                .await
                .map_err(|error| match error {
                    Some(error) => connect_error(error),
                    None => timed_out(),
                })?;
            return Ok(Backend {
                pool: Vec::new(),
                next: AtomicUsize::new(0),
                cluster: Some(connection),
                client,
            });
        }

        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        // Each connection is multiplexed: concurrent requests share it and are pipelined on
        // the wire. More connections than CPUs only cost the server more reads and wake-ups
        // (measured: SET throughput with 50 tasks on 2 cores fell from about 300 k/s with 1 or
        // 2 connections to about 190 k/s with 10), so `max_connections` is an upper bound.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let size = config.max_connections.min(cpus).max(1);
        let mut pool = Vec::with_capacity(size);
        for _ in 0..size {
            let mut connection = tokio::time::timeout(
                limit,
                client.get_connection_manager_with_config(manager_config.clone()),
            )
            .await
            .map_err(|_| timed_out())?
            .map_err(connect_error)?;
            ping(&mut connection, limit)
                .await
                .map_err(|error| match error {
                    Some(error) => connect_error(error),
                    None => timed_out(),
                })?;
            pool.push(connection);
        }
        Ok(Backend {
            pool,
            next: AtomicUsize::new(0),
            #[cfg(feature = "cluster")]
            cluster: None,
            client,
        })
    }

    pub(crate) fn conn(&self) -> Conn {
        #[cfg(feature = "cluster")]
        if let Some(cluster) = &self.cluster {
            return Conn::Cluster(cluster.clone());
        }
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.pool.len();
        Conn::Single(self.pool[index].clone())
    }

    pub(crate) fn is_cluster(&self) -> bool {
        #[cfg(feature = "cluster")]
        {
            self.cluster.is_some()
        }
        #[cfg(not(feature = "cluster"))]
        {
            false
        }
    }

    /// Every key matching the Redis glob `pattern`, on every primary: `SCAN MATCH` with the
    /// cursor looped to the end (never `KEYS`, which blocks the server).
    pub(crate) fn scan(&self, pattern: String) -> BoxedFuture<'_, RedisResult<Vec<Vec<u8>>>> {
        Box::pin(async move {
            #[cfg(feature = "cluster")]
            if let Some(cluster) = &self.cluster {
                return scan_cluster(cluster.clone(), &pattern).await;
            }
            let mut connection = self.conn();
            scan_node(&mut connection, &pattern).await
        })
    }
}

/// Whether `error` is the server refusing the `SELECT` of a connection's set-up: redis-rs
/// reports it as a response error "Redis server refused to switch database", with the server's
/// own words ("ERR DB index is out of range") as its detail. Both texts are checked, so that a
/// rewording of either still classifies.
fn refused_database(error: &redis::RedisError) -> bool {
    let text = error.to_string();
    text.contains("refused to switch database") || text.contains("DB index is out of range")
}

/// `PING`; `Err(None)` on timeout.
async fn ping(
    connection: &mut impl ConnectionLike,
    limit: Duration,
) -> Result<(), Option<redis::RedisError>> {
    let reply: RedisResult<String> =
        tokio::time::timeout(limit, redis::cmd("PING").query_async(connection))
            .await
            .map_err(|_| None)?;
    match reply {
        Ok(pong) if pong == "PONG" => Ok(()),
        Ok(other) => Err(Some(redis::RedisError::from((
            redis::ErrorKind::UnexpectedReturnType,
            "the server did not answer PING with PONG",
            other,
        )))),
        Err(error) => Err(Some(error)),
    }
}

async fn scan_node(
    connection: &mut impl ConnectionLike,
    pattern: &str,
) -> RedisResult<Vec<Vec<u8>>> {
    let mut keys = Vec::new();
    let mut cursor = 0_u64;
    loop {
        let (next, page): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .cursor_arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(connection)
            .await?;
        keys.extend(page);
        if next == 0 {
            return Ok(keys);
        }
        cursor = next;
    }
}

#[cfg(feature = "cluster")]
async fn scan_cluster(
    mut cluster: redis::cluster_async::ClusterConnection,
    pattern: &str,
) -> RedisResult<Vec<Vec<u8>>> {
    use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
    let nodes: String = redis::FromRedisValue::from_redis_value(
        cluster
            .route_command(
                redis::cmd("CLUSTER").arg("NODES").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?,
    )?;
    let mut keys = Vec::new();
    // "id host:port@bus flags master-id ...": scan each primary that is not failing.
    for line in nodes.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (Some(address), Some(flags)) = (fields.get(1), fields.get(2)) else {
            continue;
        };
        if !flags.contains("master") || flags.contains("fail") {
            continue;
        }
        let address = address.split('@').next().unwrap_or(address);
        let Some((host, port)) = address.rsplit_once(':') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        let route = RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: host.to_owned(),
            port,
        });
        let mut cursor = 0_u64;
        loop {
            let reply = cluster
                .route_command(
                    redis::cmd("SCAN")
                        .cursor_arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(1000)
                        .clone(),
                    route.clone(),
                )
                .await?;
            let (next, page): (u64, Vec<Vec<u8>>) = redis::FromRedisValue::from_redis_value(reply)?;
            keys.extend(page);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(keys)
}
