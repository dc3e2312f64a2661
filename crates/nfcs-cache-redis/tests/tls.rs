//! `rediss://` against a redis-server with a TLS port and a private certificate authority.

use std::path::Path;
use std::process::Command;

use nfcs_cache_redis::test_server::{RedisServer, free_port, redis_or_skip};
use nfcs_cache_redis::{RedisCache, RedisConfig};

/// A CA and a server certificate for 127.0.0.1, made with the openssl command line.
fn certificates(directory: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(directory)
            .output()
            .is_ok_and(|output| output.status.success())
    };
    std::fs::write(directory.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=nfcs test CA",
    ]) && run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]) && run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_connects_with_a_private_root_and_refuses_without_it() {
    if !redis_or_skip("tls") {
        return;
    }
    let directory = tempfile::tempdir().unwrap();
    if !certificates(directory.path()) {
        eprintln!("notice: tls test skipped: the openssl command could not make certificates");
        return;
    }
    let file = |name: &str| directory.path().join(name).display().to_string();
    let tls_port = free_port();
    let _server = RedisServer::start_with(&[
        "--tls-port",
        &tls_port.to_string(),
        "--tls-cert-file",
        &file("server.crt"),
        "--tls-key-file",
        &file("server.key"),
        "--tls-ca-cert-file",
        &file("ca.crt"),
        "--tls-auth-clients",
        "no",
    ]);
    let url = format!("rediss://127.0.0.1:{tls_port}");
    let root = std::fs::read(directory.path().join("ca.crt")).unwrap();
    let cache = RedisCache::connect(RedisConfig::new(url.clone()).tls_root_certificate(root))
        .await
        .unwrap();
    cache.set("over_tls", b"encrypted", None).await.unwrap();
    assert_eq!(
        cache.get("over_tls").await.unwrap().as_deref(),
        Some(&b"encrypted"[..])
    );
    // Without the private root the server's certificate is not trusted.
    let error = RedisCache::connect(RedisConfig::new(url))
        .await
        .unwrap_err();
    assert!(error.to_string().contains(&tls_port.to_string()), "{error}");
}
