//! The core conformance suite against a real redis-server (one per check), on the suite's
//! driven clock: the tier reads expiry from it, so the TTL checks advance it instead of
//! sleeping.

nfcs_cache_core::cache_tier_conformance!(
    optional
        |clock: nfcs_cache_core::Clock| async move {
            let server =
                nfcs_cache_redis::test_server::RedisServer::start_or_skip("redis conformance")?;
            let config = nfcs_cache_redis::RedisConfig::new(server.url())
                .max_connections(4)
                .clock(clock);
            let cache = nfcs_cache_redis::RedisCache::connect(config)
                .await
                .expect("connects");
            Some(nfcs_cache_core::conformance::Guarded::new(cache, server))
        }
);
