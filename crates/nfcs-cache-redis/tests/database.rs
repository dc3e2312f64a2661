//! The database rule against a real server with four databases (`--databases 4`): the URL's
//! database unless `db` is set; both set and different is a configuration error naming `db`;
//! a database the server does not have never reports the tier as running.

use std::time::Duration;

use nfcs_cache_core::{CacheTier, TierHealth};
use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{RedisCache, RedisConfig, RedisError};

use crate::support::{wait_until, wait_until_async};

fn four_databases(test: &str) -> Option<RedisServer> {
    RedisServer::start_with_or_skip(test, &["--databases", "4"])
}

fn config(url: String) -> RedisConfig {
    RedisConfig::new(url)
        .max_connections(1)
        .connect_timeout(Duration::from_secs(2))
        .command_timeout(Duration::from_secs(2))
}

/// Whether `nfcs:<key>` exists in database `db`, asked over a plain connection of our own.
async fn exists(server: &RedisServer, db: u32, key: &str) -> bool {
    let client = redis::Client::open(server.url_with_db(db)).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("EXISTS")
        .arg(format!("nfcs:{key}"))
        .query_async::<u64>(&mut connection)
        .await
        .unwrap()
        == 1
}

/// The databases in which `nfcs:<key>` exists.
async fn databases_holding(server: &RedisServer, key: &str) -> Vec<u32> {
    let mut holding = Vec::new();
    for db in 0..4 {
        if exists(server, db, key).await {
            holding.push(db);
        }
    }
    holding
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lands_in_the_database_the_url_names() {
    let Some(server) = four_databases("database in the URL") else {
        return;
    };
    let cache = RedisCache::connect(config(server.url_with_db(3)))
        .await
        .unwrap();
    cache.set("in_three", b"v", None).await.unwrap();
    assert_eq!(databases_holding(&server, "in_three").await, [3]);
    assert!(exists(&server, 3, "in_three").await && !exists(&server, 0, "in_three").await);
    assert_eq!(
        cache.get("in_three").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn db_alone_chooses_and_agreeing_with_the_url_is_fine() {
    let Some(server) = four_databases("db setting") else {
        return;
    };
    // A URL without a path: `db` chooses.
    let cache = RedisCache::connect(config(server.url()).db(3))
        .await
        .unwrap();
    cache.set("by_db", b"v", None).await.unwrap();
    assert_eq!(databases_holding(&server, "by_db").await, [3]);
    // The URL and `db` naming the same database.
    let cache = RedisCache::connect(config(server.url_with_db(2)).db(2))
        .await
        .unwrap();
    cache.set("both_two", b"v", None).await.unwrap();
    assert_eq!(databases_holding(&server, "both_two").await, [2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_and_db_that_disagree_are_a_configuration_error_naming_db() {
    let Some(server) = four_databases("db disagreeing with the URL") else {
        return;
    };
    let disagreeing = || config(server.url_with_db(2)).db(3);
    match RedisCache::connect(disagreeing()).await {
        Err(RedisError::InvalidConfig {
            field: "db",
            reason,
        }) => {
            assert!(reason.contains("names database 2"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The lazy start refuses it too, at once, rather than running on either database.
    match RedisCache::connect_lazy(disagreeing()) {
        Err(RedisError::InvalidConfig { field: "db", .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_the_server_does_not_have_is_an_error_naming_it() {
    let Some(server) = four_databases("database out of range") else {
        return;
    };
    let error = RedisCache::connect(config(server.url_with_db(7)))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RedisError::NoSuchDatabase { db: 7, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("no database 7"), "{error}");
    // Set through `db`, the same.
    let error = RedisCache::connect(config(server.url()).db(4))
        .await
        .unwrap_err();
    assert!(
        matches!(error, RedisError::NoSuchDatabase { db: 4, .. }),
        "{error:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_tier_on_a_missing_database_is_unavailable_and_keeps_trying() {
    let Some(mut server) = four_databases("lazy start on a missing database") else {
        return;
    };
    let port = server.port();
    let cache = RedisCache::connect_lazy(config(server.url_with_db(7))).unwrap();
    wait_until("health names the missing database", || {
        matches!(cache.health(), TierHealth::Unavailable { reason } if reason.contains("no database 7"))
    })
    .await;
    assert!(!cache.is_connected());
    assert!(cache.set("k", b"v", None).await.is_err());
    // The tier keeps retrying: once a server with sixteen databases (the default) answers on
    // that port, it attaches, on database 7.
    server.kill();
    let server = RedisServer::start_on(port);
    wait_until_async("the tier attached to database 7", || async {
        cache.set("in_seven", b"v", None).await.is_ok()
    })
    .await;
    assert_eq!(cache.health(), TierHealth::Healthy);
    assert!(exists(&server, 7, "in_seven").await);
    assert!(!exists(&server, 0, "in_seven").await);
}
