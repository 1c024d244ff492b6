//! The token store: one slot per identity x region x endpoint variant, shared by every client.
//!
//! - A fresh token is served at once (a cache hit).
//! - A token past its refresh point but still valid is served at once too, and a refresh is
//!   started behind it; while refreshes fail the valid token keeps being served. An expired
//!   token never is.
//! - With no usable token, callers queue on the slot's fetch lock: the first one calls AWS, the
//!   rest take its result, success or failure. So 1,000 cold callers make one upstream call.
//! - After a failure the slot backs off (exponential, capped, jittered); callers with no valid
//!   token get the last error at once instead of each calling AWS again.

use crate::metrics::Metrics;
use crate::upstream::Upstream;
use ecr_cred::registry::{EndpointVariant, RegistryHost};
use ecr_cred::token::{now_unix, Token};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotKey {
    pub identity: String,
    pub region: String,
    pub variant: EndpointVariant,
}

impl SlotKey {
    pub fn for_registry(identity: &str, r: &RegistryHost) -> SlotKey {
        SlotKey { identity: identity.to_string(), region: r.region.clone(), variant: r.variant }
    }
}

/// First retry delay after a failed fetch, and the cap.
const BACKOFF_FIRST_SECS: f64 = 1.0;
const BACKOFF_MAX_SECS: f64 = 60.0;
/// A slot counts as in use (kept refreshed) this long after its last request.
pub const IN_USE_SECS: i64 = 12 * 3600;

#[derive(Debug, Default)]
pub struct SlotState {
    pub token: Option<Token>,
    /// When the background refresher replaces the token: a jittered point in the last quarter.
    pub refresh_at: i64,
    pub principal: Option<String>,
    pub registries: BTreeSet<String>,
    pub last_used: i64,
    pub prefetch: bool,
    pub upstream_calls: u64,
    /// Completed fetch attempts: lets queued callers see that an attempt finished while they waited.
    pub attempts: u64,
    pub last_error: Option<String>,
    pub failures: u32,
    /// No new upstream call before this (Unix seconds, fractional).
    pub backoff_until: f64,
    pub refreshing: bool,
}

pub struct Slot {
    pub key: SlotKey,
    pub state: Mutex<SlotState>,
    fetch_lock: tokio::sync::Mutex<()>,
}

/// Why the store has no token for a caller.
#[derive(Debug, Clone)]
pub struct StoreError(pub String);

pub struct TokenStore {
    slots: RwLock<HashMap<SlotKey, Arc<Slot>>>,
    pub upstream: Upstream,
    pub metrics: Arc<Metrics>,
    /// Wakes the refresher when a slot's schedule changes.
    pub wake: tokio::sync::Notify,
    /// Wakes the state-file writer when a new token arrived.
    pub persist: tokio::sync::Notify,
}

impl TokenStore {
    pub fn new(upstream: Upstream, metrics: Arc<Metrics>) -> TokenStore {
        TokenStore {
            slots: RwLock::new(HashMap::new()),
            upstream,
            metrics,
            wake: tokio::sync::Notify::new(),
            persist: tokio::sync::Notify::new(),
        }
    }

    pub fn slot(&self, key: &SlotKey) -> Arc<Slot> {
        if let Some(s) = self.slots.read().unwrap().get(key) {
            return s.clone();
        }
        let mut slots = self.slots.write().unwrap();
        slots
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Slot { key: key.clone(), state: Mutex::new(SlotState::default()), fetch_lock: tokio::sync::Mutex::new(()) })
            })
            .clone()
    }

    pub fn slots(&self) -> Vec<Arc<Slot>> {
        let mut v: Vec<Arc<Slot>> = self.slots.read().unwrap().values().cloned().collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Drop the slots whose identity no longer exists or changed (after a config reload).
    pub fn retain_identities(&self, keep: impl Fn(&str) -> bool) {
        self.slots.write().unwrap().retain(|k, _| keep(&k.identity));
    }

    /// Put a token loaded from the state file into its slot.
    pub fn restore(&self, key: SlotKey, token: Token, principal: Option<String>, registries: BTreeSet<String>) {
        let slot = self.slot(&key);
        let mut st = slot.state.lock().unwrap();
        st.refresh_at = jittered_refresh_at(&token);
        st.token = Some(token);
        st.principal = principal;
        st.registries = registries;
        // Restored tokens count as in use: whoever used them before a restart will again.
        st.last_used = now_unix();
    }

    /// A token for `registry` through `identity`.
    pub async fn get(self: &Arc<Self>, identity: &str, registry: &RegistryHost) -> Result<Token, StoreError> {
        let key = SlotKey::for_registry(identity, registry);
        let slot = self.slot(&key);
        let now = now_unix();
        let observed = {
            let mut st = slot.state.lock().unwrap();
            st.last_used = now;
            if !st.registries.contains(&registry.host) {
                st.registries.insert(registry.host.clone());
            }
            if let Some(t) = st.token.as_ref().filter(|t| t.is_valid(now)) {
                let token = t.clone();
                if now >= st.refresh_at && !st.refreshing && (now as f64) >= st.backoff_until {
                    st.refreshing = true;
                    let (store, slot) = (self.clone(), slot.clone());
                    tokio::spawn(async move { store.refresh(&slot).await });
                }
                self.metrics.cache_hit();
                return Ok(token);
            }
            if (now as f64) < st.backoff_until {
                if let Some(e) = &st.last_error {
                    return Err(StoreError(e.clone()));
                }
            }
            st.attempts
        };
        let _turn = slot.fetch_lock.lock().await;
        {
            let st = slot.state.lock().unwrap();
            if let Some(t) = st.token.as_ref().filter(|t| t.is_valid(now_unix())) {
                self.metrics.cache_hit();
                return Ok(t.clone());
            }
            if st.attempts > observed {
                return Err(StoreError(st.last_error.clone().unwrap_or_else(|| "the token fetch failed".into())));
            }
        }
        self.fetch_locked(&slot, registry).await
    }

    /// Refresh a slot's token in the background (the refresher, or a caller that found it due).
    pub async fn refresh(self: &Arc<Self>, slot: &Arc<Slot>) {
        let registry = {
            let st = slot.state.lock().unwrap();
            st.registries.iter().next().and_then(|h| RegistryHost::parse(h))
        };
        let _turn = slot.fetch_lock.lock().await;
        let due = {
            let st = slot.state.lock().unwrap();
            let now = now_unix();
            st.token.as_ref().is_none_or(|_| now >= st.refresh_at) && (now as f64) >= st.backoff_until
        };
        if let (true, Some(registry)) = (due, registry) {
            let _ = self.fetch_locked(slot, &registry).await;
        }
        slot.state.lock().unwrap().refreshing = false;
        self.wake.notify_one();
    }

    /// Call AWS for the slot (caller holds the fetch lock) and record the outcome.
    async fn fetch_locked(self: &Arc<Self>, slot: &Arc<Slot>, registry: &RegistryHost) -> Result<Token, StoreError> {
        self.metrics.upstream_call();
        let result = self.upstream.fetch(&slot.key, registry).await;
        let now = now_unix();
        let outcome = {
            let mut st = slot.state.lock().unwrap();
            st.attempts += 1;
            st.upstream_calls += 1;
            match result {
                Ok((token, principal)) => {
                    if !token.expired_on_arrival() {
                        st.failures = 0;
                        st.backoff_until = 0.0;
                        st.last_error = None;
                    }
                    if principal.is_some() {
                        st.principal = principal;
                    }
                    if token.expired_on_arrival() {
                        // Passed on once, never kept, and backed off like a failure: otherwise the
                        // refresher would find the slot empty and ask again at once, forever.
                        st.failures += 1;
                        st.backoff_until = now as f64 + backoff_secs(st.failures);
                        st.last_error = Some("ECR returned an already expired token: is the clock wrong?".into());
                        tracing::warn!(identity = %slot.key.identity, region = %slot.key.region, "ECR returned an already expired token (clock skew?); passing it on once without keeping it");
                    } else {
                        st.refresh_at = jittered_refresh_at(&token);
                        st.token = Some(token.clone());
                    }
                    Ok(token)
                }
                Err(e) => {
                    self.metrics.upstream_error();
                    st.failures += 1;
                    st.backoff_until = now as f64 + backoff_secs(st.failures);
                    let msg = e.to_string();
                    tracing::warn!(identity = %slot.key.identity, region = %slot.key.region, failures = st.failures, "token fetch failed: {msg}");
                    st.last_error = Some(msg.clone());
                    // A still-valid token keeps serving while refreshes fail.
                    match st.token.as_ref().filter(|t| t.is_valid(now)) {
                        Some(t) => Ok(t.clone()),
                        None => Err(StoreError(msg)),
                    }
                }
            }
        };
        self.wake.notify_one();
        if outcome.is_ok() {
            self.persist.notify_one();
        }
        outcome
    }

    /// When the refresher must next look at `slot`, if ever: its refresh point, or the end of
    /// its back-off, while it is in use or prefetched.
    pub fn next_due(slot: &Slot, now: i64) -> Option<f64> {
        let st = slot.state.lock().unwrap();
        if !(st.prefetch || now - st.last_used < IN_USE_SECS) || st.refreshing {
            return None;
        }
        let when = match &st.token {
            Some(t) if t.is_valid(now) => st.refresh_at as f64,
            _ if st.registries.is_empty() => return None,
            _ => now as f64,
        };
        Some(when.max(st.backoff_until))
    }
}

/// Seconds to wait after the `failures`-th failure in a row: 1 s doubling to 60 s, jittered
/// down by up to half so that slots failing together do not retry together.
fn backoff_secs(failures: u32) -> f64 {
    let delay = (BACKOFF_FIRST_SECS * 2f64.powi(failures.max(1) as i32 - 1)).min(BACKOFF_MAX_SECS);
    delay * (0.5 + 0.5 * random_unit())
}

/// A point in the last quarter of the token's life, spread over its first 40% so tokens
/// fetched together are not all refreshed together.
fn jittered_refresh_at(t: &Token) -> i64 {
    let quarter = (t.expires_at - t.refresh_at()).max(0) as f64;
    t.refresh_at() + (quarter * 0.4 * random_unit()) as i64
}

/// A number in [0, 1) from the standard library's per-process random hasher keys.
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_the_last_quarter() {
        let t = Token { username: "AWS".into(), password: "p".into(), proxy_endpoint: None, fetched_at: 0, expires_at: 43_200 };
        for _ in 0..1000 {
            let at = jittered_refresh_at(&t);
            assert!((32_400..=32_400 + 4_320).contains(&at), "{at}");
        }
    }

    #[test]
    fn random_unit_is_in_range_and_varies() {
        let xs: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.windows(2).any(|w| w[0] != w[1]));
    }
}
