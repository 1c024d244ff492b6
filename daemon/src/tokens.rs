//! The token store: one slot per identity x region x endpoint variant, shared by every client.
//!
//! - A fresh token is served at once (a cache hit).
//! - A token past its refresh point but still valid is served at once too, and a refresh is
//!   started behind it; while refreshes fail the valid token keeps being served. An expired
//!   token never is.
//! - With no usable token, callers queue on the slot's fetch lock: the first one calls AWS, the
//!   rest take its result, success or failure. So 1,000 cold callers make one upstream call.
//! - After a failure the slot backs off (exponential, capped, jittered); callers with no valid
//!   token get the last error at once instead of each calling AWS again. Transient failures
//!   (throttling, 5xx, timeouts, unreachable) back off from 1 s to a minute; permanent ones
//!   (no credentials, AccessDenied, an unknown profile or role) from a minute to 15 minutes,
//!   and `/v1/status` says which. A SIGHUP clears every back-off.
//! - Only a slot holding a valid token (or marked `prefetch`) is refreshed in the background;
//!   a slot without one is fetched only when someone asks.
//! - Slots are capped (`max_slots`): a new slot replaces the least recently used idle one
//!   (not prefetched, no fetch running), or is refused. Registry names per slot are capped too
//!   (`max_registries_per_slot`), so the status reply and the state file stay bounded.

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

/// First retry delay after a transient failure, and the cap.
const BACKOFF_FIRST_SECS: f64 = 1.0;
const BACKOFF_MAX_SECS: f64 = 60.0;
/// The same after a permanent failure (credentials, permissions, configuration).
const PERMANENT_BACKOFF_FIRST_SECS: f64 = 60.0;
const PERMANENT_BACKOFF_MAX_SECS: f64 = 900.0;
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
    /// Order of the last request among all slots (least recently used = smallest).
    pub last_use_seq: u64,
    pub prefetch: bool,
    pub upstream_calls: u64,
    /// Completed fetch attempts: lets queued callers see that an attempt finished while they waited.
    pub attempts: u64,
    pub last_error: Option<String>,
    /// Whether the last error is one that retrying soon will not fix.
    pub last_error_permanent: bool,
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
    /// Counts requests, for least-recently-used order (seconds are too coarse).
    use_seq: std::sync::atomic::AtomicU64,
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
            use_seq: std::sync::atomic::AtomicU64::new(0),
            upstream,
            metrics,
            wake: tokio::sync::Notify::new(),
            persist: tokio::sync::Notify::new(),
        }
    }

    /// The slot for `key`, made if needed: when `max_slots` are held, the least recently used
    /// idle slot is dropped to make room; with none idle the slot is refused.
    pub fn slot(&self, key: &SlotKey) -> Result<Arc<Slot>, StoreError> {
        if let Some(s) = self.slots.read().unwrap().get(key) {
            return Ok(s.clone());
        }
        let max = self.upstream.config().max_slots();
        let mut slots = self.slots.write().unwrap();
        if !slots.contains_key(key) && slots.len() >= max {
            let idle = |s: &Arc<Slot>| {
                Arc::strong_count(s) == 1
                    && s.fetch_lock.try_lock().is_ok()
                    && s.state.try_lock().is_ok_and(|st| !st.prefetch && !st.refreshing)
            };
            let victim = slots
                .iter()
                .filter(|(_, s)| idle(s))
                .min_by_key(|(_, s)| s.state.try_lock().map(|st| st.last_use_seq).unwrap_or(u64::MAX))
                .map(|(k, _)| k.clone());
            match victim {
                Some(k) => {
                    tracing::debug!(identity = %k.identity, region = %k.region, "dropping the least recently used slot (max_slots reached)");
                    slots.remove(&k);
                }
                None => return Err(StoreError(format!("the broker holds its limit of {max} token slots, all in use (max_slots)"))),
            }
        }
        Ok(slots
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Slot { key: key.clone(), state: Mutex::new(SlotState::default()), fetch_lock: tokio::sync::Mutex::new(()) })
            })
            .clone())
    }

    /// Forget every back-off (after a reload: the fix may be in the new configuration).
    pub fn clear_backoffs(&self) {
        for slot in self.slots() {
            let mut st = slot.state.lock().unwrap();
            st.backoff_until = 0.0;
            st.failures = 0;
        }
        self.wake.notify_one();
    }

    /// Remember `host` as served by this slot, within the cap.
    pub fn remember_registry(&self, st: &mut SlotState, host: &str) {
        if !st.registries.contains(host) && st.registries.len() < self.upstream.config().max_registries_per_slot() {
            st.registries.insert(host.to_string());
        }
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
    pub fn restore(&self, key: SlotKey, token: Token, principal: Option<String>, registries: BTreeSet<String>) -> bool {
        let Ok(slot) = self.slot(&key) else { return false };
        let max = self.upstream.config().max_registries_per_slot();
        let registries = registries.into_iter().take(max).collect();
        let mut st = slot.state.lock().unwrap();
        st.refresh_at = jittered_refresh_at(&token);
        st.token = Some(token);
        st.principal = principal;
        st.registries = registries;
        // Restored tokens count as in use: whoever used them before a restart will again.
        st.last_used = now_unix();
        true
    }

    /// A token for `registry` through `identity`.
    pub async fn get(self: &Arc<Self>, identity: &str, registry: &RegistryHost) -> Result<Token, StoreError> {
        let key = SlotKey::for_registry(identity, registry);
        let slot = self.slot(&key)?;
        let now = now_unix();
        let observed = {
            let mut st = slot.state.lock().unwrap();
            st.last_used = now;
            st.last_use_seq = self.use_seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            self.remember_registry(&mut st, &registry.host);
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
                        st.last_error_permanent = false;
                    }
                    if principal.is_some() {
                        st.principal = principal;
                    }
                    if token.expired_on_arrival() {
                        // Passed on once, never kept, and backed off like a failure: otherwise the
                        // refresher would find the slot empty and ask again at once, forever.
                        st.failures += 1;
                        st.backoff_until = now as f64 + backoff_secs(st.failures, false);
                        st.last_error = Some("ECR returned an already expired token: is the clock wrong?".into());
                        st.last_error_permanent = false;
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
                    let permanent = !e.is_transient();
                    let wait = backoff_secs(st.failures, permanent);
                    st.backoff_until = now as f64 + wait;
                    // One line, whatever the SDK put in the error.
                    let msg = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                    let kind = if permanent { "permanent" } else { "transient" };
                    tracing::warn!(identity = %slot.key.identity, region = %slot.key.region, failures = st.failures, kind, retry_in_secs = wait as u64, "token fetch failed: {msg}");
                    st.last_error = Some(msg.clone());
                    st.last_error_permanent = permanent;
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
    /// its back-off, while it is in use or prefetched. A slot with no valid token is fetched
    /// in the background only when prefetched; otherwise only when someone asks.
    pub fn next_due(slot: &Slot, now: i64) -> Option<f64> {
        let st = slot.state.lock().unwrap();
        if !(st.prefetch || now - st.last_used < IN_USE_SECS) || st.refreshing {
            return None;
        }
        let when = match &st.token {
            Some(t) if t.is_valid(now) => st.refresh_at as f64,
            _ if st.registries.is_empty() || !st.prefetch => return None,
            _ => now as f64,
        };
        Some(when.max(st.backoff_until))
    }
}

/// Seconds to wait after the `failures`-th failure in a row: 1 s doubling to 60 s (permanent
/// failures: 60 s doubling to 15 min), jittered down by up to half so that slots failing
/// together do not retry together.
fn backoff_secs(failures: u32, permanent: bool) -> f64 {
    let (first, max) =
        if permanent { (PERMANENT_BACKOFF_FIRST_SECS, PERMANENT_BACKOFF_MAX_SECS) } else { (BACKOFF_FIRST_SECS, BACKOFF_MAX_SECS) };
    let delay = (first * 2f64.powi(failures.clamp(1, 16) as i32 - 1)).min(max);
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
    fn permanent_failures_back_off_for_minutes_transient_ones_for_seconds() {
        for _ in 0..100 {
            assert!((0.5..=1.0).contains(&backoff_secs(1, false)));
            assert!((30.0..=60.0).contains(&backoff_secs(1, true)));
            assert!((450.0..=900.0).contains(&backoff_secs(40, true)));
            assert!((30.0..=60.0).contains(&backoff_secs(40, false)));
        }
    }

    #[test]
    fn random_unit_is_in_range_and_varies() {
        let xs: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.windows(2).any(|w| w[0] != w[1]));
    }
}
