//! `RedisReplayStore` against a real `redis-server`, at store level: atomicity across instances,
//! expiry, the key layout, and failing closed (then recovering) when Redis stops, pauses, or is
//! not up yet.

use std::time::{Duration, Instant};

use certbound::dpop::{RedisReplayStore, Replay, ReplayKey, ReplayStore};
use certbound::JwkThumbprint;

use crate::common::RedisServer;

/// A proof lifetime, longer than any test.
const TTL: Duration = Duration::from_secs(60);
/// The store timeout of the failure tests: short, so that they are quick.
const TIMEOUT: Duration = Duration::from_millis(200);
/// What "within about the timeout" is allowed to mean on a loaded machine.
const TIMEOUT_BOUND: Duration = TIMEOUT.saturating_mul(5);
/// How long a test waits for something that should take milliseconds.
const DEADLINE: Duration = Duration::from_secs(10);

fn key(jti: &str) -> ReplayKey {
    ReplayKey::new(&JwkThumbprint::from_digest([7; 32]), jti)
}

async fn store(server: &RedisServer) -> RedisReplayStore {
    RedisReplayStore::connect(&server.url())
        .await
        .expect("connect")
}

/// Records new keys (`{jti}-0`, `{jti}-1`...) until one is recorded, every 20 ms within
/// [`DEADLINE`]; returns how long that took.
async fn until_recorded(store: &RedisReplayStore, jti: &str) -> Duration {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for attempt in 0.. {
        tick.tick().await;
        match store.record(&key(&format!("{jti}-{attempt}")), TTL).await {
            Ok(answer) => {
                assert_eq!(answer, Replay::Fresh);
                break;
            }
            Err(e) => assert!(
                start.elapsed() < DEADLINE,
                "still failing after {DEADLINE:?}: {e}"
            ),
        }
    }
    start.elapsed()
}

/// Records `jti` while Redis cannot answer: an error, within [`TIMEOUT_BOUND`].
async fn fails_in_time(store: &RedisReplayStore, jti: &str) {
    let start = Instant::now();
    let answer = store.record(&key(jti), TTL).await;
    let took = start.elapsed();
    let error = answer.expect_err("Redis cannot answer");
    assert!(
        took < TIMEOUT_BOUND,
        "{jti}: failed after {took:?} (timeout {TIMEOUT:?}): {error}"
    );
    assert!(
        error
            .to_string()
            .starts_with("DPoP replay store unavailable"),
        "{error}"
    );
    let source = std::error::Error::source(&error).expect("the cause is kept");
    eprintln!("{jti}: {error} ({source}) after {took:?}");
}

#[tokio::test]
async fn a_proof_is_fresh_once_and_a_replay_after() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let store = store(&server).await;
    assert_eq!(store.record(&key("a"), TTL).await.unwrap(), Replay::Fresh);
    assert_eq!(
        store.record(&key("a"), TTL).await.unwrap(),
        Replay::Replayed
    );
    assert_eq!(
        store.record(&key("a"), TTL).await.unwrap(),
        Replay::Replayed
    );
    assert_eq!(store.record(&key("b"), TTL).await.unwrap(), Replay::Fresh);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_racing_on_one_key_record_it_exactly_once() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    // Two connection managers: two instances of a fleet.
    let instances = [store(&server).await, store(&server).await];
    for (i, instance) in instances.iter().enumerate() {
        // Connected before the race, so that the race is on the SET itself.
        let warm_up = instance.record(&key(&format!("warm-up-{i}")), TTL).await;
        assert_eq!(warm_up.unwrap(), Replay::Fresh);
    }
    const TASKS: usize = 64;
    for round in 0..20 {
        let jti = format!("race-{round}");
        let start = std::sync::Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|task| {
                let store = instances[task % 2].clone();
                let start = start.clone();
                let key = key(&jti);
                tokio::spawn(async move {
                    start.wait().await;
                    store.record(&key, TTL).await.expect("record")
                })
            })
            .collect();
        let mut fresh = 0;
        for task in tasks {
            if task.await.expect("task") == Replay::Fresh {
                fresh += 1;
            }
        }
        assert_eq!(
            fresh, 1,
            "round {round}: {fresh} of {TASKS} saw the key fresh"
        );
    }
}

#[tokio::test]
async fn a_key_expires_after_its_ttl_and_not_before() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let store = store(&server).await;
    let ttl = Duration::from_millis(200);
    let recorded = Instant::now();
    assert_eq!(store.record(&key("e"), ttl).await.unwrap(), Replay::Fresh);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    loop {
        tick.tick().await;
        // Fresh again means expired: never before the ttl passed (the SET happened after
        // `recorded`).
        if store.record(&key("e"), ttl).await.unwrap() == Replay::Fresh {
            let after = recorded.elapsed();
            assert!(after >= ttl, "expired after {after:?}, ttl {ttl:?}");
            return;
        }
        assert!(recorded.elapsed() < DEADLINE, "not expired in {DEADLINE:?}");
    }
}

#[tokio::test]
async fn keys_carry_the_prefix_and_the_ttl() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let ttl = Duration::from_secs(30);
    let hex = key("p").to_hex();
    let prefixed = store(&server).await.key_prefix("orders-api:jti:");
    assert_eq!(
        prefixed.record(&key("p"), ttl).await.unwrap(),
        Replay::Fresh
    );

    let name = format!("orders-api:jti:{hex}");
    assert_eq!(server.command(&["GET", &name]).await, "1");
    let pttl: u64 = server.command(&["PTTL", &name]).await[1..]
        .parse()
        .expect("PTTL is a positive integer: the key expires");
    assert!(pttl > 0 && pttl <= 30_000, "PTTL {pttl}");
    let default_name = format!("certbound:dpop:jti:{hex}");
    assert_eq!(server.command(&["EXISTS", &default_name]).await, ":0");

    // Another prefix is another namespace; the default one is `certbound:dpop:jti:`.
    let default = store(&server).await;
    assert_eq!(default.record(&key("p"), ttl).await.unwrap(), Replay::Fresh);
    assert_eq!(server.command(&["EXISTS", &default_name]).await, ":1");
    assert_eq!(server.command(&["DBSIZE"]).await, ":2");
}

#[tokio::test]
async fn records_fail_within_the_timeout_while_redis_is_stopped() {
    let Some(mut server) = RedisServer::start().await else {
        return;
    };
    let store = store(&server).await.timeout(TIMEOUT);
    assert_eq!(store.record(&key("s"), TTL).await.unwrap(), Replay::Fresh);
    server.stop();
    // The first finds the connection gone; the next ones wait on the reconnection.
    for attempt in 0..4 {
        fails_in_time(&store, &format!("stopped-{attempt}")).await;
    }
}

#[tokio::test]
async fn records_succeed_again_once_redis_restarts_on_the_same_port() {
    let Some(mut server) = RedisServer::start().await else {
        return;
    };
    let store = store(&server).await.timeout(TIMEOUT);
    assert_eq!(store.record(&key("r"), TTL).await.unwrap(), Replay::Fresh);
    server.stop();
    fails_in_time(&store, "while-stopped").await;

    server.restart().await;
    let took = until_recorded(&store, "after-restart").await;
    eprintln!("recorded again {took:?} after the restart");
    // Without persistence the restarted Redis forgot every proof (the documented caveat).
    assert_eq!(store.record(&key("r"), TTL).await.unwrap(), Replay::Fresh);
}

#[tokio::test]
async fn the_first_record_after_a_quiet_outage_uses_the_restarted_redis() {
    let Some(mut server) = RedisServer::start().await else {
        return;
    };
    // No reconnection retries: the manager gives up on a stopped Redis at once, as it does by
    // itself after a few seconds of a longer outage.
    let config = redis::aio::ConnectionManagerConfig::new().set_number_of_retries(0);
    let manager = redis::Client::open(server.url())
        .expect("URL")
        .get_connection_manager_with_config(config)
        .await
        .expect("connection manager");
    let store = RedisReplayStore::from_connection_manager(manager).timeout(TIMEOUT);
    assert_eq!(store.record(&key("q"), TTL).await.unwrap(), Replay::Fresh);

    server.stop();
    fails_in_time(&store, "connection-lost").await;
    // The manager's answer is now "connection refused" until a record asks it to try again.
    fails_in_time(&store, "refused").await;

    server.restart().await;
    assert_eq!(
        store.record(&key("first-after"), TTL).await.unwrap(),
        Replay::Fresh
    );
}

#[tokio::test]
async fn a_password_accepted_by_the_server_later_is_used_without_a_restart() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let user = ["ACL", "SETUSER", "fleet", "on", "~*", "+@all", ">expected"];
    assert_eq!(server.command(&user).await, "+OK");
    let url = server.url().replace("redis://", "redis://fleet:rotated@");
    let store = RedisReplayStore::connect(&url)
        .await
        .expect("connect")
        .timeout(TIMEOUT);

    // Timeouts while the manager's first round of attempts lasts, then its verdict.
    let start = Instant::now();
    loop {
        let error = store
            .record(&key("refused"), TTL)
            .await
            .expect_err("wrong password");
        let source = std::error::Error::source(&error)
            .expect("source")
            .to_string();
        if source.contains("AuthenticationFailed") {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "no authentication error: {source}"
        );
    }

    // The server now accepts the instance's password too.
    let rotated = ["ACL", "SETUSER", "fleet", ">rotated"];
    assert_eq!(server.command(&rotated).await, "+OK");
    let took = until_recorded(&store, "accepted").await;
    eprintln!("recorded {took:?} after the server accepted the password");
}

#[tokio::test]
async fn connect_succeeds_before_redis_is_up_and_records_work_once_it_is() {
    let Some(mut server) = RedisServer::not_started() else {
        return;
    };
    let store = RedisReplayStore::connect(&server.url())
        .await
        .expect("connect does not contact Redis")
        .timeout(TIMEOUT);
    fails_in_time(&store, "before-start-0").await;
    fails_in_time(&store, "before-start-1").await;

    server.restart().await;
    let took = until_recorded(&store, "after-start").await;
    eprintln!("recorded {took:?} after Redis started");
}

#[tokio::test]
async fn a_paused_redis_fails_records_in_time_and_serves_them_again_when_resumed() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let store = store(&server).await.timeout(TIMEOUT);
    assert_eq!(store.record(&key("z"), TTL).await.unwrap(), Replay::Fresh);

    server.pause();
    fails_in_time(&store, "paused").await;
    server.resume();
    until_recorded(&store, "resumed").await;
    // The SET that timed out was still in the connection, and Redis ran it on resuming: its
    // proof is spent (the documented "a command that timed out may have been applied").
    assert_eq!(
        store.record(&key("paused"), TTL).await.unwrap(),
        Replay::Replayed
    );
}

/// One `record` round trip on a warm connection: `cargo test --release --all-features --test it
/// dpop_redis::record_round_trip -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "a measurement, not a check; run in release mode"]
async fn record_round_trip() {
    let Some(server) = RedisServer::start().await else {
        return;
    };
    let store = store(&server).await;
    for i in 0..200 {
        store.record(&key(&format!("warm-{i}")), TTL).await.unwrap();
    }
    let mut times: Vec<Duration> = Vec::with_capacity(1000);
    for i in 0..1000 {
        let key = key(&format!("measured-{i}"));
        let start = Instant::now();
        let answer = store.record(&key, TTL).await.unwrap();
        times.push(start.elapsed());
        assert_eq!(answer, Replay::Fresh);
    }
    times.sort();
    eprintln!(
        "record round trip over 1000 sequential calls: median {:?}, p90 {:?}, p99 {:?}, max {:?}",
        times[499], times[899], times[989], times[999]
    );
}
