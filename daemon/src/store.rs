//! The token store: one slot per identity x region x endpoint variant, shared by every client.
//!
//! - A fresh token is served at once (a cache hit).
//! - A token past its refresh point but still valid is served at once too, and a refresh is
//!   started behind it; while refreshes fail the valid token keeps being served. An expired
//!   token never is.
//! - With no usable token, callers queue on the slot's fetch lock: the first one calls
//!   upstream, the rest take its result, success or failure. So 1,000 cold callers make one
//!   upstream call.
//! - After a failure the slot backs off ([`Policy::backoff_secs`]); callers with no valid
//!   token get the last error at once instead of each calling upstream again. A reload clears
//!   every back-off.
//! - Only a slot holding a valid token (or marked `prefetch`) is refreshed in the background
//!   ([`policy::next_due`], run by [`crate::refresh`]); a slot without one is fetched only when
//!   someone asks.
//! - Slots are capped (`max_slots`): a new slot replaces the least recently used idle one
//!   (not prefetched, no fetch running), or is refused. Registry names per slot are capped too
//!   (`max_registries_per_slot`), so the status reply and the state file stay bounded.
//!
//! Upstream is reached only through [`Fetch`]; every "now" comes from the store's [`Clock`];
//! background fetches are tracked so [`TokenStore::close`] can wait for them.

use crate::clock::Clock;
use crate::fetch::{Fetch, Fetched};
use crate::metrics::Metrics;
use crate::policy::{self, ErrorKind, Policy};
use ecr_cred::config::Config;
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::Token;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

pub use crate::fetch::SlotKey;

/// The store's bounds, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreLimits {
    pub max_slots: usize,
    pub max_registries_per_slot: usize,
}

impl StoreLimits {
    pub fn from_config(config: &Config) -> StoreLimits {
        StoreLimits { max_slots: config.max_slots(), max_registries_per_slot: config.max_registries_per_slot() }
    }
}

/// Why the store has no token for a caller.
#[derive(Debug, Clone, PartialEq)]
pub enum StoreError {
    /// The upstream fetch failed (now, or recently and the slot backs off), or returned an
    /// already expired token.
    Upstream { kind: ErrorKind, message: String },
    /// Every slot is held and in use (`max_slots`).
    Full(String),
}

impl StoreError {
    /// The kind of upstream failure; `None` for [`StoreError::Full`].
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            StoreError::Upstream { kind, .. } => Some(*kind),
            StoreError::Full(_) => None,
        }
    }
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Upstream { message, .. } | StoreError::Full(message) => f.write_str(message),
        }
    }
}

/// One slot as status, metrics and the state file see it, copied under its lock.
#[derive(Debug, Clone)]
pub struct SlotSnapshot {
    pub key: SlotKey,
    pub token: Option<Token>,
    /// The jittered refresh point of `token`.
    pub refresh_at: i64,
    pub principal: Option<String>,
    pub registries: BTreeSet<String>,
    /// Unix seconds of the last request, if any.
    pub last_used: Option<i64>,
    pub prefetch: bool,
    pub upstream_calls: u64,
    pub last_error: Option<String>,
    pub error_kind: Option<ErrorKind>,
    pub failures: u32,
    /// No upstream call before this (Unix seconds, fractional; 0: none).
    pub backoff_until: f64,
}

#[derive(Debug, Default)]
struct SlotState {
    token: Option<Token>,
    /// When the background refresher replaces the token: a jittered point in the last quarter.
    refresh_at: i64,
    principal: Option<String>,
    registries: BTreeSet<String>,
    /// Unix seconds (fractional) of the last request; 0: never.
    last_used: f64,
    /// Order of the last request among all slots (least recently used = smallest).
    last_use_seq: u64,
    prefetch: bool,
    upstream_calls: u64,
    /// Completed fetch attempts: lets queued callers see that an attempt finished while they waited.
    attempts: u64,
    last_error: Option<String>,
    last_error_kind: Option<ErrorKind>,
    failures: u32,
    /// No new upstream call before this (Unix seconds, fractional).
    backoff_until: f64,
    refreshing: bool,
}

/// One identity x region x variant.
///
/// Two locks, always in this order: `fetch_lock` (a tokio mutex, held across the upstream
/// call: one fetch per slot at a time) first, then `state` (a std mutex, held only to read or
/// write fields and NEVER across an `.await`). Nothing outside this file locks either.
struct Slot {
    key: SlotKey,
    state: Mutex<SlotState>,
    fetch_lock: tokio::sync::Mutex<()>,
}

/// Background fetches (refreshes, prefetches) in flight, so shutdown can wait for them.
#[derive(Default)]
struct Tasks {
    running: AtomicUsize,
    closed: AtomicBool,
    idle: tokio::sync::Notify,
}

struct TaskGuard(Arc<TokenStore>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.tasks.running.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.tasks.idle.notify_waiters();
        }
    }
}

pub struct TokenStore {
    slots: RwLock<HashMap<SlotKey, Arc<Slot>>>,
    /// Counts requests, for least-recently-used order (seconds are too coarse).
    use_seq: AtomicU64,
    fetch: Arc<dyn Fetch>,
    clock: Clock,
    limits: RwLock<StoreLimits>,
    policy: RwLock<Policy>,
    pub metrics: Arc<Metrics>,
    /// Wakes the refresher when a slot's schedule changes.
    wake: tokio::sync::Notify,
    /// Wakes the state-file writer when a new token arrived.
    persist: tokio::sync::Notify,
    tasks: Tasks,
}

impl TokenStore {
    pub fn new(fetch: Arc<dyn Fetch>, clock: Clock, limits: StoreLimits, metrics: Arc<Metrics>) -> Arc<TokenStore> {
        Arc::new(TokenStore {
            slots: RwLock::new(HashMap::new()),
            use_seq: AtomicU64::new(0),
            fetch,
            clock,
            limits: RwLock::new(limits),
            policy: RwLock::new(Policy::CURRENT),
            metrics,
            wake: tokio::sync::Notify::new(),
            persist: tokio::sync::Notify::new(),
            tasks: Tasks::default(),
        })
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// New bounds (a reload); existing slots and registry names are kept.
    pub fn set_limits(&self, limits: StoreLimits) {
        *self.limits.write().unwrap() = limits;
    }

    /// Use another refresh policy (the fleet simulation compares policies; the broker keeps
    /// [`Policy::CURRENT`]).
    pub fn set_policy(&self, policy: Policy) {
        *self.policy.write().unwrap() = policy;
    }

    fn policy(&self) -> Policy {
        *self.policy.read().unwrap()
    }

    fn limits(&self) -> StoreLimits {
        *self.limits.read().unwrap()
    }

    /// The slot for `key`, made if needed: when `max_slots` are held, the least recently used
    /// idle slot is dropped to make room; with none idle the slot is refused.
    fn slot(&self, key: &SlotKey) -> Result<Arc<Slot>, StoreError> {
        if let Some(s) = self.slots.read().unwrap().get(key) {
            return Ok(s.clone());
        }
        let max = self.limits().max_slots;
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
                None => return Err(StoreError::Full(format!("the broker holds its limit of {max} token slots, all in use (max_slots)"))),
            }
        }
        Ok(slots
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Slot { key: key.clone(), state: Mutex::new(SlotState::default()), fetch_lock: tokio::sync::Mutex::new(()) })
            })
            .clone())
    }

    fn slots(&self) -> Vec<Arc<Slot>> {
        let mut v: Vec<Arc<Slot>> = self.slots.read().unwrap().values().cloned().collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    /// Every slot, in key order, each copied under its lock.
    pub fn snapshots(&self) -> Vec<SlotSnapshot> {
        self.slots()
            .iter()
            .map(|slot| {
                let st = slot.state.lock().unwrap();
                SlotSnapshot {
                    key: slot.key.clone(),
                    token: st.token.clone(),
                    refresh_at: st.refresh_at,
                    principal: st.principal.clone(),
                    registries: st.registries.clone(),
                    last_used: Some(st.last_used as i64).filter(|t| *t > 0),
                    prefetch: st.prefetch,
                    upstream_calls: st.upstream_calls,
                    last_error: st.last_error.clone(),
                    error_kind: st.last_error.as_ref().and(st.last_error_kind),
                    failures: st.failures,
                    backoff_until: st.backoff_until,
                }
            })
            .collect()
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
    fn remember_registry(&self, st: &mut SlotState, host: &str) {
        if !st.registries.contains(host) && st.registries.len() < self.limits().max_registries_per_slot {
            st.registries.insert(host.to_string());
        }
    }

    /// Drop the slots whose identity no longer exists or changed (after a config reload).
    pub fn retain_identities(&self, keep: impl Fn(&str) -> bool) {
        self.slots.write().unwrap().retain(|k, _| keep(&k.identity));
    }

    /// Put a token loaded from the state file into its slot.
    pub fn restore(&self, key: SlotKey, token: Token, principal: Option<String>, registries: BTreeSet<String>) -> bool {
        let Ok(slot) = self.slot(&key) else { return false };
        let max = self.limits().max_registries_per_slot;
        let registries = registries.into_iter().take(max).collect();
        let mut st = slot.state.lock().unwrap();
        st.refresh_at = self.policy().refresh_at(&token, random_unit());
        st.token = Some(token);
        st.principal = principal;
        st.registries = registries;
        // Restored tokens count as in use: whoever used them before a restart will again.
        st.last_used = self.clock.now();
        true
    }

    /// Mark the slot serving `registry` through `identity` as prefetched (kept fetched whether
    /// used or not) and fetch it in the background now.
    pub fn prefetch(self: &Arc<Self>, identity: &str, registry: &RegistryHost) -> Result<(), StoreError> {
        let slot = self.slot(&SlotKey::for_registry(identity, registry))?;
        {
            let mut st = slot.state.lock().unwrap();
            st.prefetch = true;
            self.remember_registry(&mut st, &registry.host);
        }
        let (store, identity, registry) = (self.clone(), identity.to_string(), registry.clone());
        self.spawn(async move {
            if let Err(e) = store.get(&identity, &registry).await {
                tracing::warn!(registry = %registry, "prefetch failed: {e}");
            }
        });
        Ok(())
    }

    /// A token for `registry` through `identity`.
    pub async fn get(self: &Arc<Self>, identity: &str, registry: &RegistryHost) -> Result<Token, StoreError> {
        let key = SlotKey::for_registry(identity, registry);
        let slot = self.slot(&key)?;
        let now = self.clock.now();
        let observed = {
            let mut st = slot.state.lock().unwrap();
            st.last_used = now;
            st.last_use_seq = self.use_seq.fetch_add(1, Ordering::Relaxed) + 1;
            self.remember_registry(&mut st, &registry.host);
            if let Some(t) = st.token.as_ref().filter(|t| t.is_valid(now as i64)) {
                let token = t.clone();
                if now as i64 >= st.refresh_at && !st.refreshing && now >= st.backoff_until {
                    st.refreshing = true;
                    let (store, slot) = (self.clone(), slot.clone());
                    self.spawn(async move { store.refresh(&slot).await });
                }
                self.metrics.cache_hit();
                return Ok(token);
            }
            if now < st.backoff_until {
                if let Some(e) = &st.last_error {
                    return Err(StoreError::Upstream { kind: st.last_error_kind.unwrap_or(ErrorKind::Transient), message: e.clone() });
                }
            }
            st.attempts
        };
        let _turn = slot.fetch_lock.lock().await;
        {
            let st = slot.state.lock().unwrap();
            if let Some(t) = st.token.as_ref().filter(|t| t.is_valid(self.clock.now_secs())) {
                self.metrics.cache_hit();
                return Ok(t.clone());
            }
            if st.attempts > observed {
                return Err(StoreError::Upstream {
                    kind: st.last_error_kind.unwrap_or(ErrorKind::Transient),
                    message: st.last_error.clone().unwrap_or_else(|| "the token fetch failed".into()),
                });
            }
        }
        self.fetch_locked(&slot, registry).await
    }

    /// Refresh a slot's token in the background (the refresher, or a caller that found it due).
    async fn refresh(self: &Arc<Self>, slot: &Arc<Slot>) {
        let registry = {
            let st = slot.state.lock().unwrap();
            st.registries.iter().next().and_then(|h| RegistryHost::parse(h))
        };
        let _turn = slot.fetch_lock.lock().await;
        let due = {
            let st = slot.state.lock().unwrap();
            let now = self.clock.now();
            st.token.as_ref().is_none_or(|_| now as i64 >= st.refresh_at) && now >= st.backoff_until
        };
        if let (true, Some(registry)) = (due, registry) {
            let _ = self.fetch_locked(slot, &registry).await;
        }
        slot.state.lock().unwrap().refreshing = false;
        self.wake.notify_one();
    }

    /// Call upstream for the slot (caller holds the fetch lock) and record the outcome.
    async fn fetch_locked(self: &Arc<Self>, slot: &Arc<Slot>, registry: &RegistryHost) -> Result<Token, StoreError> {
        self.metrics.upstream_call();
        let result = self.fetch.fetch(&slot.key, registry).await;
        let now = self.clock.now();
        let outcome = {
            let mut st = slot.state.lock().unwrap();
            st.attempts += 1;
            st.upstream_calls += 1;
            match result {
                Ok(Fetched { token, principal }) => {
                    if principal.is_some() {
                        st.principal = principal;
                    }
                    if token.expired_on_arrival() {
                        // Passed on once, never kept, and backed off like a failure: otherwise the
                        // refresher would find the slot empty and ask again at once, forever.
                        st.failures += 1;
                        let valid_for = valid_for_secs(&st, now);
                        st.backoff_until = now + self.policy().backoff_secs(st.failures, ErrorKind::Transient, valid_for, random_unit());
                        st.last_error = Some("ECR returned an already expired token: is the clock wrong?".into());
                        st.last_error_kind = Some(ErrorKind::Transient);
                        tracing::warn!(identity = %slot.key.identity, region = %slot.key.region, "ECR returned an already expired token (clock skew?); passing it on once without keeping it");
                    } else {
                        st.failures = 0;
                        st.backoff_until = 0.0;
                        st.last_error = None;
                        st.last_error_kind = None;
                        st.refresh_at = self.policy().refresh_at(&token, random_unit());
                        st.token = Some(token.clone());
                    }
                    Ok(token)
                }
                Err(e) => {
                    self.metrics.upstream_error();
                    st.failures += 1;
                    let kind = ErrorKind::of(&e);
                    let wait = self.policy().backoff_secs(st.failures, kind, valid_for_secs(&st, now), random_unit());
                    st.backoff_until = now + wait;
                    // One line, whatever the SDK put in the error.
                    let msg = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
                    tracing::warn!(identity = %slot.key.identity, region = %slot.key.region, failures = st.failures, kind = ?kind, retry_in_secs = wait as u64, "token fetch failed: {msg}");
                    st.last_error = Some(msg.clone());
                    st.last_error_kind = Some(kind);
                    // A still-valid token keeps serving while refreshes fail.
                    match st.token.as_ref().filter(|t| t.is_valid(now as i64)) {
                        Some(t) => Ok(t.clone()),
                        None => Err(StoreError::Upstream { kind, message: msg }),
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

    /// Start a background refresh of every slot due now; the earliest time (Unix seconds) a
    /// slot will next be due, if any. The refresher's one step.
    pub fn start_due_refreshes(self: &Arc<Self>) -> Option<f64> {
        let now = self.clock.now();
        let mut next: Option<f64> = None;
        for slot in self.slots() {
            let due = {
                let mut st = slot.state.lock().unwrap();
                let schedule = policy::Schedule {
                    prefetch: st.prefetch,
                    last_used: st.last_used,
                    refreshing: st.refreshing,
                    valid_token_refresh_at: st.token.as_ref().filter(|t| t.is_valid(now as i64)).map(|_| st.refresh_at as f64),
                    has_registry: !st.registries.is_empty(),
                    backoff_until: st.backoff_until,
                };
                let due = policy::next_due(&schedule, now);
                if due.is_some_and(|d| d <= now) {
                    st.refreshing = true;
                }
                due
            };
            match due {
                Some(d) if d <= now => {
                    let (store, slot) = (self.clone(), slot.clone());
                    self.spawn(async move { store.refresh(&slot).await });
                }
                Some(d) => next = Some(next.map_or(d, |n: f64| n.min(d))),
                None => {}
            }
        }
        next
    }

    /// Wait until a slot's schedule may have changed (the refresher sleeps on this).
    pub async fn schedule_changed(&self) {
        self.wake.notified().await
    }

    /// Wait until a new token has arrived since the last call (the state-file writer).
    pub async fn token_arrived(&self) {
        self.persist.notified().await
    }

    /// Run `task` in the background, tracked; after [`TokenStore::close`] nothing new starts.
    fn spawn(self: &Arc<Self>, task: impl Future<Output = ()> + Send + 'static) {
        if self.tasks.closed.load(Ordering::Acquire) {
            return;
        }
        self.tasks.running.fetch_add(1, Ordering::AcqRel);
        let guard = TaskGuard(self.clone());
        tokio::spawn(async move {
            let _guard = guard;
            task.await;
        });
    }

    /// Background fetches running now.
    pub fn tasks_running(&self) -> usize {
        self.tasks.running.load(Ordering::Acquire)
    }

    /// Start no new background fetch and wait for those in flight (shutdown, before the
    /// final save).
    pub async fn close(&self) {
        self.tasks.closed.store(true, Ordering::Release);
        loop {
            let idle = self.tasks.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.tasks.running.load(Ordering::Acquire) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// How long the slot's token stays valid after `now`, if it holds a valid one.
fn valid_for_secs(st: &SlotState, now: f64) -> Option<f64> {
    st.token.as_ref().filter(|t| t.is_valid(now as i64)).map(|t| (t.expires_at - t.margin()) as f64 - now)
}

/// A number in [0, 1) from the standard library's per-process random hasher keys.
pub fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}
