//! Self-signed clients' `jwks_uri` documents: fetched over https, cached per URI, fetched
//! again when the presented certificate matches none of the cached entries (the client
//! rotated its certificate), at most once per `min_refresh_interval` per URI.
//!
//! Like the resource server's key cache, no lock is held across a fetch: a fetch runs in its
//! own task and concurrent callers wait on its one outcome (single flight).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::metrics::{Upstream, UpstreamResult};
use crate::support::single_flight::{detach, Begin, SingleFlight};
use crate::upstream::{self as fetch, destination};

use super::keys::SelfSignedKeys;

/// Settings of the cache.
#[derive(Debug, Clone)]
pub(crate) struct JwksUriSettings {
    pub(crate) min_refresh_interval: Duration,
    pub(crate) max_age: Duration,
    pub(crate) fetch_timeout: Duration,
    pub(crate) max_response_bytes: usize,
    /// Most URIs kept; beyond it, the least recently fetched entry is dropped.
    pub(crate) max_entries: usize,
    /// Refuse loopback, private and link-local destinations (SSRF); see
    /// [`crate::upstream::destination`].
    pub(crate) public_only: bool,
}

impl Default for JwksUriSettings {
    fn default() -> Self {
        Self {
            min_refresh_interval: Duration::from_secs(10),
            max_age: Duration::from_secs(300),
            fetch_timeout: Duration::from_secs(5),
            max_response_bytes: 256 * 1024,
            max_entries: 10_000,
            public_only: true,
        }
    }
}

/// Why a `jwks_uri` gave no answer about a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwksUriError {
    /// A loopback, private or link-local IP literal (or no URL at all): never fetched.
    Refused,
    /// Nothing could be fetched and nothing is cached.
    Unavailable,
}

pub(crate) struct JwksUriCache {
    client: reqwest::Client,
    settings: JwksUriSettings,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// The fetches in flight, by URI.
    flights: Arc<SingleFlight<String, ()>>,
}

#[derive(Default)]
struct Entry {
    keys: RwLock<Option<(Arc<SelfSignedKeys>, Instant)>>,
    refresh: Mutex<RefreshState>,
}

#[derive(Default)]
struct RefreshState {
    last_attempt: Option<Instant>,
    /// Whether the last fetch failed (the endpoint is having an outage).
    last_failed: bool,
}

impl JwksUriCache {
    pub(crate) fn new(client: reqwest::Client, settings: JwksUriSettings) -> Self {
        Self {
            client,
            settings,
            entries: Mutex::new(HashMap::new()),
            flights: Arc::default(),
        }
    }

    fn entry(&self, uri: &str) -> Arc<Entry> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get(uri) {
            return Arc::clone(entry);
        }
        if entries.len() >= self.settings.max_entries {
            let oldest = entries
                .iter()
                .min_by_key(|(_, e)| e.fetched_at())
                .map(|(uri, _)| uri.clone());
            if let Some(oldest) = oldest {
                entries.remove(&oldest);
            }
        }
        let entry = Arc::new(Entry::default());
        entries.insert(uri.to_owned(), Arc::clone(&entry));
        entry
    }

    /// Whether the keys at `uri` accept the certificate. They are fetched when none are
    /// cached, when the cached ones are older than `max_age` (in the background when the last
    /// fetch failed), or when the cached ones do not match (the client may have rotated its
    /// certificate); a failed or rate-limited fetch leaves the cached keys to decide.
    ///
    /// # Errors
    /// The URI is a destination the SSRF guard refuses, or no keys could be fetched and none
    /// are cached.
    pub(crate) async fn matches(
        self: &Arc<Self>,
        uri: &str,
        check: impl Fn(&SelfSignedKeys) -> bool,
    ) -> Result<bool, JwksUriError> {
        if self.settings.public_only {
            // Names are checked by the default client's resolver, at connection time.
            let url = reqwest::Url::parse(uri).map_err(|_| JwksUriError::Refused)?;
            destination::check_literal(&url).map_err(|_| JwksUriError::Refused)?;
        }
        let entry = self.entry(uri);
        if let Some((keys, at)) = entry.current() {
            if at.elapsed() < self.settings.max_age && check(&keys) {
                return Ok(true);
            }
            // Stale keys that match: the refresh decides (a certificate the client removed
            // stops working after max_age), unless the last refresh failed. During an outage
            // of the client's endpoint, stale keys then decide while the refresh runs in the
            // background, so token requests are not held up by every new attempt.
            if entry.last_refresh_failed() && check(&keys) {
                self.refresh(uri, &entry, false).await;
                return Ok(true);
            }
        }
        self.refresh(uri, &entry, true).await;
        match entry.current() {
            Some((keys, _)) => Ok(check(&keys)),
            None => Err(JwksUriError::Unavailable),
        }
    }

    /// Fetches (or joins the fetch in flight) unless one started within
    /// `min_refresh_interval`, and waits for it to end if `wait`.
    async fn refresh(self: &Arc<Self>, uri: &str, entry: &Arc<Entry>, wait: bool) {
        let (waiter, task) = {
            let mut state = entry.refresh.lock().unwrap_or_else(|e| e.into_inner());
            match self.flights.begin(uri.to_owned(), || None) {
                Begin::Wait(waiter) => (waiter, None),
                Begin::Lead(leader) => {
                    if state
                        .last_attempt
                        .is_some_and(|t| t.elapsed() < self.settings.min_refresh_interval)
                    {
                        return;
                    }
                    state.last_attempt = Some(Instant::now());
                    let waiter = leader.waiter();
                    let this = Arc::clone(self);
                    let entry = Arc::clone(entry);
                    let uri = uri.to_owned();
                    let task = async move {
                        let result =
                            tokio::time::timeout(this.settings.fetch_timeout, this.fetch(&uri))
                                .await
                                .unwrap_or_else(|_| Err("timed out".to_owned()));
                        entry
                            .refresh
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .last_failed = result.is_err();
                        match result {
                            Ok(keys) => {
                                *entry.keys.write().unwrap_or_else(|e| e.into_inner()) =
                                    Some((Arc::new(keys), Instant::now()));
                            }
                            Err(_e) => {
                                #[cfg(feature = "tracing")]
                                tracing::debug!(target: "certbound", uri = %uri, error = %_e, "client jwks_uri fetch failed");
                            }
                        }
                        leader.finish(());
                    };
                    (waiter, Some(task))
                }
            }
        };
        if let Some(task) = task {
            detach(task).await;
        }
        if wait {
            // `None` means the fetch ended without reporting: the cached keys decide.
            let _ = waiter.wait().await;
        }
    }

    async fn fetch(&self, uri: &str) -> Result<SelfSignedKeys, String> {
        let observed = fetch::Observed::start(Upstream::ClientJwksUri);
        let body = fetch::get(&self.client, uri, self.settings.max_response_bytes).await;
        let keys = body
            .map_err(|e| (e.is_timeout(), e.into_message()))
            .and_then(|body| {
                let doc: serde_json::Value = serde_json::from_slice(&body)
                    .map_err(|e| (false, format!("{uri}: not JSON: {e}")))?;
                SelfSignedKeys::from_jwks(&doc).map_err(|e| (false, format!("{uri}: {e}")))
            });
        observed.finish(match &keys {
            Ok(_) => UpstreamResult::Ok,
            Err((true, _)) => UpstreamResult::Timeout,
            Err((false, _)) => UpstreamResult::Error,
        });
        keys.map_err(|(_, reason)| reason)
    }
}

impl Entry {
    fn last_refresh_failed(&self) -> bool {
        self.refresh
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .last_failed
    }

    fn current(&self) -> Option<(Arc<SelfSignedKeys>, Instant)> {
        self.keys.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn fetched_at(&self) -> Option<Instant> {
        self.current().map(|(_, at)| at)
    }
}
