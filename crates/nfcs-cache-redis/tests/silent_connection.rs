//! A subscription whose connection goes silent, as on a network partition (nothing is closed:
//! no FIN, no RST), is noticed by the tier's `PING` and, once the path is back, re-made with an
//! `Invalidation::Resync`, since messages may have been missed meanwhile. Without the check a
//! silent connection was trusted until TCP gave up on it (minutes).
//!
//! The path goes through a proxy on loopback that can hold everything it would forward
//! without closing anything; the namespaced version of this, with a node's veth taken down,
//! is `nfcs-performance`'s `netfaults` test.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nfcs_cache_redis::test_server::RedisServer;
use nfcs_cache_redis::{Invalidation, RedisCache, RedisConfig};

use crate::support::{DEADLINE, wait_until};

/// Forwards connections on a loopback port to `upstream`; while `held`, forwards nothing and
/// closes nothing.
fn holding_proxy(upstream: u16, held: &Arc<AtomicBool>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = Arc::clone(held);
    std::thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { continue };
            let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                continue;
            };
            let upstream = (client.try_clone().unwrap(), server.try_clone().unwrap());
            for (from, to) in [upstream, (server, client)] {
                let held = Arc::clone(&held);
                std::thread::spawn(move || forward(from, to, &held));
            }
        }
    });
    port
}

fn forward(mut from: TcpStream, mut to: TcpStream, held: &AtomicBool) {
    let mut buffer = vec![0_u8; 16 * 1024];
    while let Ok(read) = from.read(&mut buffer) {
        if read == 0 {
            break;
        }
        while held.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(5));
        }
        if to.write_all(&buffer[..read]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Both);
    let _ = from.shutdown(Shutdown::Both);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_subscription_is_noticed_and_remade_with_a_resync() {
    let Some(server) = RedisServer::start_or_skip("silent subscription") else {
        return;
    };
    let held = Arc::new(AtomicBool::new(false));
    let port = holding_proxy(server.port(), &held);
    let config = RedisConfig::new(format!("redis://127.0.0.1:{port}"));
    // A liveness ping each second, answered within connect_timeout + command_timeout; then a
    // re-subscription attempt (as long) in flight, and the back-off's 2 s cap.
    let notice_bound = Duration::from_secs(1) + config.connect_timeout + config.command_timeout;
    let remake_bound = config.connect_timeout + config.command_timeout + Duration::from_secs(2);
    // Scheduling on a loaded two-core machine.
    let slack = Duration::from_millis(750);
    let node = RedisCache::connect(config).await.unwrap();
    let mut invalidations = node.invalidations();
    wait_until("the node is subscribed", || node.is_subscribed()).await;

    held.store(true, Ordering::Relaxed);
    let silent = Instant::now();
    wait_until("the node notices that its subscription went silent", || {
        !node.is_subscribed()
    })
    .await;
    let noticed = silent.elapsed();

    held.store(false, Ordering::Relaxed);
    let back = Instant::now();
    let resync = tokio::time::timeout(DEADLINE, async {
        loop {
            match invalidations.recv().await {
                Ok(Invalidation::Resync) => return,
                Ok(_) => {}
                Err(error) => panic!("the channel failed: {error}"),
            }
        }
    })
    .await;
    assert!(
        resync.is_ok(),
        "no Resync within {DEADLINE:?} of the path coming back"
    );
    let remade = back.elapsed();
    assert!(node.is_subscribed());
    println!(
        "silent subscription: noticed after {noticed:?} (bound {notice_bound:?}), re-made with a Resync \
         {remade:?} after the path came back (bound {remake_bound:?})"
    );
    assert!(noticed <= notice_bound + slack, "noticed after {noticed:?}");
    assert!(remade <= remake_bound + slack, "re-made after {remade:?}");
}
