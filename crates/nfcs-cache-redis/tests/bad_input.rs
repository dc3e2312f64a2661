//! Bad connection settings: each a clear error, or (lazily) a documented degraded start.

//!
//! How long a refusal takes is not asserted (that is a figure for a benchmark, and a loaded
//! machine can stretch it); that it is an error of the right kind, and that "fails fast" means
//! not waiting on the network at all, are.

use std::io::Write;
use std::time::Duration;

use futures_util::FutureExt;
use nfcs_cache_core::{CacheError, CacheTier, TierHealth};
use nfcs_cache_redis::test_server::{RedisServer, free_port, redis_or_skip};
use nfcs_cache_redis::{RedisCache, RedisConfig, RedisError};

use crate::support::{wait_until, wait_until_async};

fn config(url: String) -> RedisConfig {
    RedisConfig::new(url)
        .max_connections(2)
        .connect_timeout(Duration::from_millis(300))
        .command_timeout(Duration::from_millis(300))
}

#[tokio::test]
async fn an_unreachable_server_is_a_connect_error_naming_it() {
    let port = free_port(); // nothing listens there
    let error = RedisCache::connect(config(format!("redis://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RedisError::Connect { .. } | RedisError::ConnectTimeout { .. }
        ),
        "{error}"
    );
    assert!(error.to_string().contains(&port.to_string()), "{error}");
}

#[tokio::test]
async fn a_wrong_password_is_a_connect_error_without_the_password() {
    if !redis_or_skip("wrong password") {
        return;
    }
    let server = RedisServer::start_with(&["--requirepass", "right-password"]);
    let url = format!("redis://:wrong-password@127.0.0.1:{}", server.port());
    let error = RedisCache::connect(config(url)).await.unwrap_err();
    let message = error.to_string();
    assert!(matches!(error, RedisError::Connect { .. }), "{message}");
    assert!(
        message.contains("WRONGPASS")
            || message.contains("invalid password")
            || message.contains("uthentication"),
        "{message}"
    );
    assert!(
        !message.contains("wrong-password"),
        "the password leaked: {message}"
    );
    // The right one works.
    let url = format!("redis://:right-password@127.0.0.1:{}", server.port());
    RedisCache::connect(config(url)).await.unwrap();
}

#[tokio::test]
async fn a_database_index_out_of_range_is_a_typed_error_naming_it() {
    let Some(server) = RedisServer::start_or_skip("wrong db") else {
        return;
    };
    let error = RedisCache::connect(config(server.url()).db(99))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RedisError::NoSuchDatabase { db: 99, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("no database 99"), "{error}");
    RedisCache::connect(config(server.url()).db(3))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_port_that_is_not_redis_is_a_clear_error() {
    // A server that answers every connection with an HTTP error and hangs up.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten().take(32) {
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    let error = RedisCache::connect(config(format!("redis://127.0.0.1:{port}")))
        .await
        .unwrap_err();
    assert!(
        matches!(
            error,
            RedisError::Connect { .. } | RedisError::ConnectTimeout { .. }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn invalid_settings_are_refused_before_connecting() {
    let error = RedisCache::connect(RedisConfig::new("redis://localhost").max_connections(0))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("max_connections"), "{error}");
    if !cfg!(feature = "tls") {
        let error = RedisCache::connect(RedisConfig::new("rediss://localhost"))
            .await
            .unwrap_err();
        assert!(error.to_string().contains("`tls` feature"), "{error}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_start_against_a_down_server_fails_fast_and_attaches_later() {
    if !redis_or_skip("lazy start") {
        return;
    }
    let port = free_port();
    let cache = RedisCache::connect_lazy(config(format!("redis://127.0.0.1:{port}"))).unwrap();
    // Fails fast: the call completes on its first poll, without waiting on the network.
    let error = cache
        .set("k", b"v", None)
        .now_or_never()
        .expect("a command on a tier that is not connected does not wait")
        .unwrap_err();
    assert!(matches!(error, CacheError::Unavailable { .. }), "{error}");
    // Once the first attempt has failed, health says why, naming the server.
    wait_until("health reports the failed connection attempt", || {
        matches!(cache.health(), TierHealth::Unavailable { reason } if reason.contains(&port.to_string()))
    })
    .await;
    match cache.health() {
        TierHealth::Unavailable { reason } => assert!(reason.contains("not connected"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // The server comes up on that port: the tier attaches by itself (the background task
    // retries with back-off, so this waits for a real reconnection).
    let server = RedisServer::start_on(port);
    wait_until_async("the tier attached to the server", || async {
        cache.set("k", b"v", None).await.is_ok()
    })
    .await;
    assert_eq!(cache.health(), TierHealth::Healthy);
    assert_eq!(cache.get("k").await.unwrap().as_deref(), Some(&b"v"[..]));
    drop(server);
}
