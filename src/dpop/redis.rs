//! [`RedisReplayStore`]: the replay store a fleet of instances shares, on Redis (feature
//! `redis`).

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::io::tcp::TcpSettings;
use redis::{Client, ErrorKind, IntoConnectionInfo as _, RedisError, ServerErrorKind, Value};

use super::replay::{replay_label, Replay, ReplayFuture, ReplayKey, ReplayStore, StoreError};
use crate::error::ConfigError;
use crate::metrics;
use crate::readiness::{Readiness, ReadyFuture};
use crate::support::encoding::push_hex;

/// The default [`key_prefix`](RedisReplayStore::key_prefix).
const DEFAULT_KEY_PREFIX: &str = "certbound:dpop:jti:";
/// The default [`timeout`](RedisReplayStore::timeout).
const DEFAULT_TIMEOUT: Duration = Duration::from_millis(500);
/// The bound on one attempt to open a connection (TCP and the Redis handshake).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest pause between two reconnection attempts (before jitter), so that a Redis that
/// comes back is found again soon after.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// Attempts after the first in one round of reconnection (about a second and a half); the next
/// `record` starts another round.
const RECONNECT_RETRIES: usize = 3;
/// The shortest interval between two replacements of the connection manager.
const MIN_REPLACEMENT_INTERVAL: Duration = Duration::from_secs(1);
/// How long sent data may stay unacknowledged before the kernel closes the connection
/// (`TCP_USER_TIMEOUT`): a connection to a host that vanished (no reset ever arrives) fails and
/// is replaced instead of timing out every command until the kernel's own limit of minutes.
#[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
const UNACKNOWLEDGED_LIMIT: Duration = Duration::from_secs(5);

/// The DPoP replay store for a fleet of instances: one Redis they all share, and one atomic
/// `SET <prefix><key> 1 NX PX <ttl>` per proof.
///
/// Redis runs commands one at a time, so of any number of concurrent
/// [`record`](ReplayStore::record)s of one key, from any number of instances, exactly one finds
/// the key absent and answers [`Replay::Fresh`]; every other answers [`Replay::Replayed`]. The
/// key expires on its own after the `ttl` (rounded up to a whole millisecond), so nothing needs
/// sweeping. Keys are the [`ReplayKey`] in hex after a prefix
/// ([`key_prefix`](Self::key_prefix), `certbound:dpop:jti:` by default).
///
/// - **Connection**: redis-rs's [`ConnectionManager`], one multiplexed connection shared by
///   every request (and every clone of the store), replaced in the background when it drops.
///   The store opens a new manager after an error the manager would otherwise keep answering:
///   a failed authentication (a password set on the server later than expected), `READONLY`
///   (a primary demoted while its address moved to the new one).
/// - **Failures fail closed**: an error, an unexpected reply, or no reply within the
///   [`timeout`](Self::timeout) (500 ms by default, including any wait for a reconnection) is a
///   [`StoreError`], which the layer answers with `503`. A command that may have reached Redis
///   is never sent again: a `SET NX` applied just before its connection dropped would, sent
///   again, find its own key and call a legitimate proof a replay. (Only one that never left,
///   because no connection could be opened, is sent once more on the next connection.)
///   Conversely, a command that timed out may still have been applied: its proof is then
///   spent, and the client, told to retry, makes a new one.
/// - **Start-up**: [`connect`](Self::connect) does not contact Redis. The connection is opened
///   by the first `record`, so an instance that starts while Redis is down (a fleet and its
///   Redis restarted together, a failover in progress) starts anyway and answers `503` to the
///   requests that need the store until Redis is reachable, then serves them without a restart.
///   A misconfiguration that only a connection reveals (a wrong password, an unreachable host)
///   therefore shows as `503`s, with the Redis error as the [`StoreError`]'s source once the
///   first round of connection attempts (about a second and a half) has failed.
/// - **Plain connections only**: `redis://` and `unix://`. For TLS (`rediss://`), enable a TLS
///   feature of redis-rs in the application and pass the manager it builds to
///   [`from_connection_manager`](Self::from_connection_manager); certbound does not enable one,
///   so that it never brings a second TLS stack or crypto provider.
///
/// # Deployment caveat
/// A replay is refused only if Redis still holds the key, so:
/// - Configure `maxmemory-policy noeviction` (Redis's default): a full Redis then refuses the
///   `SET` (`503`), whereas an evicting policy would silently drop keys before their time.
/// - A Redis restarted without persistence, or a replica promoted before it received the
///   latest writes, has forgotten the proofs recorded just before; they can be replayed for the
///   rest of their short lifetime.
/// - Use a standalone Redis (or one behind a proxy): the connection manager does not follow
///   Redis Cluster redirections, and a redirected `SET` fails with a [`StoreError`].
///
/// # Example
/// ```
/// use std::time::Duration;
/// use certbound::dpop::RedisReplayStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), certbound::ConfigError> {
/// // Contacts no server yet: the first proof to check opens the connection.
/// let store = RedisReplayStore::connect("redis://:s3cret@redis.internal:6379/0")
///     .await?
///     .key_prefix("orders-api:dpop:jti:")
///     .timeout(Duration::from_millis(250));
/// assert!(!format!("{store:?}").contains("s3cret"));
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisReplayStore {
    connection: Arc<Connection>,
    /// `host:port` or the socket's path, for `Debug` (never the URL: it may hold a password).
    server: Option<String>,
    key_prefix: String,
    timeout: Duration,
}

/// The connection manager in use, shared by the store's clones, and what [`connect`] opened it
/// from, to open another.
///
/// [`connect`]: RedisReplayStore::connect
struct Connection {
    manager: RwLock<ConnectionManager>,
    /// `None` for an application's manager, which is never replaced.
    origin: Option<(Client, ConnectionManagerConfig)>,
    /// When the manager was last replaced.
    replaced: Mutex<Option<Instant>>,
}

impl Connection {
    fn manager(&self) -> ConnectionManager {
        self.manager
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Opens a new manager after an error the current one never recovers from by itself: it
    /// reconnects only after I/O errors, so a failed authentication (a password set on the
    /// server after the instance connected) would be its answer for good, and so would
    /// `READONLY` from a primary demoted while its address moved to the new one. At most one
    /// replacement a second, however many records fail.
    fn replace_after(&self, error: &RedisError) {
        let Some((client, config)) = &self.origin else {
            return;
        };
        if !matches!(
            error.kind(),
            ErrorKind::AuthenticationFailed | ErrorKind::Server(ServerErrorKind::ReadOnly)
        ) {
            return;
        }
        let mut replaced = self.replaced.lock().unwrap_or_else(PoisonError::into_inner);
        if replaced.is_some_and(|at| at.elapsed() < MIN_REPLACEMENT_INTERVAL) {
            return;
        }
        // Fails only on settings `connect` already used successfully.
        if let Ok(manager) = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
        {
            *self.manager.write().unwrap_or_else(PoisonError::into_inner) = manager;
            *replaced = Some(Instant::now());
        }
    }
}

impl RedisReplayStore {
    /// A store on the Redis at `url`: `redis://[[user]:password@]host[:port][/db]` or
    /// `unix:///path/to/redis.sock[?db=N&pass=…]`. Redis is not contacted yet (see the
    /// type's docs): start-up neither waits for it nor fails when it is down.
    ///
    /// The connection sets `TCP_NODELAY` and, on Linux, a `TCP_USER_TIMEOUT` of a few seconds
    /// (a connection to a vanished host is replaced instead of waited on). Each attempt to open
    /// one is bounded to a second; while Redis is unreachable, rounds of a few attempts, at most
    /// a second apart, follow one another as long as records come.
    ///
    /// # Errors
    /// [`ConfigError::Url`] for a `rediss://` URL (TLS is left out, see the type's docs);
    /// [`ConfigError::Invalid`] (`redis url`) for a URL redis-rs cannot use; neither shows the
    /// URL's password. [`ConfigError::Invalid`] (`RedisReplayStore::connect`) when called
    /// outside a tokio runtime (the connection manager runs on tokio).
    pub async fn connect(url: &str) -> Result<Self, ConfigError> {
        let shown = without_secrets(url);
        if url.starts_with("rediss://") || url.starts_with("valkeys://") {
            return Err(ConfigError::Url {
                option: "redis url",
                url: shown,
                reason: "TLS is not built in: see RedisReplayStore::from_connection_manager",
            });
        }
        let info = url
            .into_connection_info()
            .map_err(|e| unusable_url(&shown, e))?;
        let server = info.addr().to_string();
        let tcp = TcpSettings::default().set_nodelay(true);
        #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
        let tcp = tcp.set_user_timeout(UNACKNOWLEDGED_LIMIT);
        let client =
            Client::open(info.set_tcp_settings(tcp)).map_err(|e| unusable_url(&shown, e))?;
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(ConfigError::invalid(
                "RedisReplayStore::connect",
                "must be called within a tokio runtime",
            ));
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_max_delay(MAX_RECONNECT_DELAY)
            .set_number_of_retries(RECONNECT_RETRIES)
            // The store's own timeout bounds every command; the manager's would cut a longer
            // one short.
            .set_response_timeout(None);
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config.clone())
            .map_err(|e| {
                ConfigError::invalid_because(
                    "redis url",
                    "redis-rs refused the connection settings",
                    e,
                )
            })?;
        Ok(Self::new(manager, Some((client, config)), Some(server)))
    }

    /// A store on a connection manager the application built: for TLS, RESP3, or settings of
    /// its own. The manager's reconnection and response timeout settings apply (redis-rs's
    /// default response timeout, 500 ms, cuts a longer [`timeout`](Self::timeout) short); the
    /// store's timeout still bounds every `record`. The store never replaces this manager, so
    /// after a failed authentication it answers that error until the application builds a new
    /// store.
    pub fn from_connection_manager(manager: ConnectionManager) -> Self {
        Self::new(manager, None, None)
    }

    fn new(
        manager: ConnectionManager,
        origin: Option<(Client, ConnectionManagerConfig)>,
        server: Option<String>,
    ) -> Self {
        Self {
            connection: Arc::new(Connection {
                manager: RwLock::new(manager),
                origin,
                replaced: Mutex::new(None),
            }),
            server,
            key_prefix: DEFAULT_KEY_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The prefix of every key (default `certbound:dpop:jti:`). Services that share one Redis
    /// keep their proofs apart with their own prefix; the instances of one service must use the
    /// same one, or they do not see each other's proofs.
    #[must_use]
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// The bound on each `record`, from the call to Redis's reply, including any wait for a
    /// connection to be (re)opened (default 500 ms). Past it the record fails with a
    /// [`StoreError`] and the request is answered `503`. A zero timeout fails every record.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut debug = f.debug_struct("RedisReplayStore");
        if let Some(server) = &self.server {
            debug.field("server", server);
        }
        debug
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl ReplayStore for RedisReplayStore {
    fn record(&self, key: &ReplayKey, ttl: Duration) -> ReplayFuture {
        let mut name = String::with_capacity(self.key_prefix.len() + 64);
        name.push_str(&self.key_prefix);
        push_hex(&mut name, key.as_bytes(), false);
        let mut set = redis::cmd("SET");
        set.arg(name)
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_millis(ttl));
        // A clone shares the one connection (an `Arc`), and makes the future 'static.
        let mut manager = self.connection.manager();
        let connection = Arc::clone(&self.connection);
        let timeout = self.timeout;
        let start = metrics::start();
        ReplayFuture::new(async move {
            let answer = Self::answer(set, &mut manager, &connection, timeout).await;
            metrics::dpop_replay(
                replay_label(&answer),
                metrics::ReplayStore::Redis,
                metrics::elapsed(start),
            );
            answer
        })
    }

    /// Ready when Redis answers a `PING` within the store's [`timeout`](Self::timeout)
    /// (the connection is opened first if need be, as for a record).
    fn ready(&self) -> ReadyFuture<'_> {
        let mut manager = self.connection.manager();
        Box::pin(async move {
            let ping = redis::cmd("PING");
            match tokio::time::timeout(self.timeout, ping.query_async::<Value>(&mut manager)).await
            {
                Ok(Ok(_)) => Readiness::ready(),
                Ok(Err(e)) => {
                    self.connection.replace_after(&e);
                    Readiness::not_ready(format!(
                        "DPoP replay store: redis failed ({:?})",
                        e.kind()
                    ))
                }
                Err(_) => Readiness::not_ready("DPoP replay store: no reply from redis in time"),
            }
        })
    }
}

impl RedisReplayStore {
    /// The answer to `set` (`SET NX PX`), within `timeout`.
    async fn answer(
        set: redis::Cmd,
        manager: &mut ConnectionManager,
        connection: &Connection,
        timeout: Duration,
    ) -> Result<Replay, StoreError> {
        {
            let answer = async {
                match set.query_async::<Value>(manager).await {
                    // No connection could be opened, so this SET never reached Redis, and the
                    // manager has started opening a new one: sending it once more is safe, and
                    // spares a 503 to the first request after Redis came back while this
                    // instance sent nothing.
                    Err(e) if e.is_connection_refusal() => set.query_async(manager).await,
                    answer => answer,
                }
            };
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(Value::Okay)) => Ok(Replay::Fresh),
                // NX: the key exists, so the SET did nothing.
                Ok(Ok(Value::Nil)) => Ok(Replay::Replayed),
                Ok(Ok(other)) => Err(StoreError::with_source(
                    "unexpected reply from redis",
                    format!("SET answered {other:?}"),
                )),
                Ok(Err(e)) => {
                    connection.replace_after(&e);
                    Err(StoreError::with_source("redis command failed", e))
                }
                Err(elapsed) => Err(StoreError::with_source(
                    "no reply from redis in time",
                    elapsed,
                )),
            }
        }
    }
}

/// `ttl` in whole milliseconds for `PX`: rounded up, since a key must be kept at least `ttl`,
/// and at least 1 (Redis refuses `PX 0`).
fn ttl_millis(ttl: Duration) -> u64 {
    let millis = ttl.as_nanos().div_ceil(1_000_000).max(1);
    // Beyond u64 Redis refuses the value anyway, and the record fails closed.
    u64::try_from(millis).unwrap_or(u64::MAX)
}

/// [`ConfigError::Invalid`] for a URL redis-rs refused.
fn unusable_url(shown: &str, error: RedisError) -> ConfigError {
    ConfigError::invalid_because("redis url", format!("{error} ({shown})"), error)
}

/// `url` fit for an error message: what precedes the last `@` (user and password) and any
/// query or fragment (where `unix://` URLs carry `pass=`) are replaced by `***`.
fn without_secrets(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    // The last `@`: a password may hold an unescaped one.
    let (user, rest) = match rest.rfind('@') {
        Some(at) => ("***@", &rest[at + 1..]),
        None => ("", rest),
    };
    let (location, query) = match rest.find(['?', '#']) {
        Some(start) => (&rest[..start], "?***"),
        None => (rest, ""),
    };
    format!("{scheme}{user}{location}{query}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ttl_is_rounded_up_to_whole_milliseconds() {
        assert_eq!(ttl_millis(Duration::from_secs(60)), 60_000);
        assert_eq!(ttl_millis(Duration::from_micros(1_001)), 2);
        assert_eq!(ttl_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ttl_millis(Duration::ZERO), 1);
        assert_eq!(ttl_millis(Duration::MAX), u64::MAX);
    }

    #[test]
    fn urls_in_errors_lose_their_passwords() {
        let cases = [
            ("redis://:s3cret@db:6379/1", "redis://***@db:6379/1"),
            ("redis://user:s3cret@db", "redis://***@db"),
            ("redis://user:s3c@ret@db", "redis://***@db"),
            ("redis://:s3c/r?et@db", "redis://***@db"),
            (
                "unix:///run/redis.sock?db=1&pass=s3cret",
                "unix:///run/redis.sock?***",
            ),
            ("redis://db:6379", "redis://db:6379"),
            ("db:s3cret", "db:s3cret"),
        ];
        for (url, shown) in cases {
            assert_eq!(without_secrets(url), shown, "{url}");
        }
    }

    #[tokio::test]
    async fn an_unusable_url_is_a_config_error_without_the_password() {
        for url in [
            "http://:s3cret@db:6379",
            "redis://:s3cret@db:6379/not-a-db",
            "redis://:s3cret@0.0.0.0:6379",
            "not a url",
        ] {
            let error = RedisReplayStore::connect(url).await.expect_err(url);
            assert!(
                matches!(
                    error,
                    ConfigError::Invalid {
                        option: "redis url",
                        ..
                    }
                ),
                "{url}: {error:?}"
            );
            assert!(!error.to_string().contains("s3cret"), "{error}");
        }
    }

    #[tokio::test]
    async fn tls_urls_are_refused_with_the_way_out() {
        let error = RedisReplayStore::connect("rediss://:s3cret@db:6380")
            .await
            .expect_err("rediss");
        assert!(
            matches!(
                error,
                ConfigError::Url {
                    option: "redis url",
                    ..
                }
            ),
            "{error:?}"
        );
        assert!(
            error.to_string().contains("from_connection_manager"),
            "{error}"
        );
        assert!(!error.to_string().contains("s3cret"), "{error}");
    }

    #[tokio::test]
    async fn connect_does_not_need_the_server_and_debug_shows_no_password() {
        // Port 1 on loopback: nothing listens, and nothing is contacted anyway.
        let store = RedisReplayStore::connect("redis://:s3cret@127.0.0.1:1/2")
            .await
            .expect("connect is lazy")
            .key_prefix("p:");
        let debug = format!("{store:?}");
        assert!(debug.contains("127.0.0.1:1"), "{debug}");
        assert!(debug.contains("\"p:\""), "{debug}");
        assert!(!debug.contains("s3cret"), "{debug}");
    }

    #[test]
    fn connect_outside_a_tokio_runtime_is_a_config_error() {
        use std::future::Future as _;
        use std::task::{Context, Poll, Waker};

        // connect waits on nothing, so one poll completes it, with no runtime around.
        let mut connect = std::pin::pin!(RedisReplayStore::connect("redis://127.0.0.1:1"));
        let Poll::Ready(result) = connect
            .as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
        else {
            panic!("connect waited")
        };
        let error = result.expect_err("no runtime");
        assert!(
            matches!(
                error,
                ConfigError::Invalid {
                    option: "RedisReplayStore::connect",
                    ..
                }
            ),
            "{error:?}"
        );
    }
}
