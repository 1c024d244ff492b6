//! The running broker's one owner: the configuration in force, the token store and the
//! counters, with what can happen to them as a whole: [`Broker::reload`], [`Broker::prefetch`],
//! [`Broker::status`] and the `/metrics` text. The socket code and `main` reach the
//! configuration only through here.

use crate::clock::Clock;
use crate::fetch::Fetch;
use crate::metrics::Metrics;
use crate::store::{StoreLimits, TokenStore};
use crate::upstream::{AwsFetch, SharedConfig};
use ecr_cred::broker::{IdentityStatus, StatusResponse, TokenStatus};
use ecr_cred::config::Config;
use ecr_cred::registry::RegistryHost;
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, RwLock};

pub struct Broker {
    config: SharedConfig,
    pub store: Arc<TokenStore>,
    pub metrics: Arc<Metrics>,
    /// Unix seconds.
    pub started_at: i64,
}

impl Broker {
    /// A broker for `config`, fetching through `fetch` (`None`: AWS, [`AwsFetch`]).
    pub fn new(config: Config, fetch: Option<Arc<dyn Fetch>>, clock: Clock) -> Arc<Broker> {
        let limits = StoreLimits::from_config(&config);
        let config: SharedConfig = Arc::new(RwLock::new(Arc::new(config)));
        let fetch = fetch.unwrap_or_else(|| Arc::new(AwsFetch::new(config.clone())));
        let metrics = Arc::new(Metrics::default());
        let started_at = clock.now_secs();
        let store = TokenStore::new(fetch, clock, limits, metrics.clone());
        Arc::new(Broker { config, store, metrics, started_at })
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap().clone()
    }

    /// Mark the configured registries' slots as prefetched and fetch them now.
    pub fn prefetch(&self) {
        let config = self.config();
        for host in &config.prefetch {
            let Some(registry) = RegistryHost::parse(host) else { continue };
            let identity = config.identity_for(&registry);
            if let Err(e) = self.store.prefetch(&identity, &registry) {
                tracing::warn!(registry = %registry, "not prefetched: {e}");
            }
        }
    }

    /// Use `new` from now on: keep every token whose identity is unchanged, clear the
    /// back-offs (the fix may be in the new configuration) and prefetch again.
    pub fn reload(&self, new: Config) {
        let new = Arc::new(new);
        let old = self.config();
        self.store.retain_identities(|name| old.identity(name).is_some() && old.identity(name) == new.identity(name));
        self.store.set_limits(StoreLimits::from_config(&new));
        *self.config.write().unwrap() = new;
        self.store.clear_backoffs();
        self.prefetch();
    }

    /// SIGHUP: read the configuration at `path` again and [`Broker::reload`] it. A file that
    /// is missing, unreadable or wrong keeps the running configuration.
    pub fn reload_from(&self, path: &Path) {
        match Config::load(path, true) {
            Ok(c) => {
                self.reload(c);
                tracing::info!(config = %path.display(), "configuration reloaded");
            }
            Err(e) => tracing::error!("reload refused, keeping the running configuration: {e}"),
        }
    }

    /// `/v1/status`: identities, slots, counters; never a secret.
    pub fn status(&self) -> StatusResponse {
        let config = self.config();
        let now = self.store.clock().now();
        let identities = config
            .identity_names()
            .into_iter()
            .map(|name| {
                let source = config.identity(&name).map(|i| i.to_string()).unwrap_or_default();
                IdentityStatus { name, source }
            })
            .collect();
        let tokens = self
            .store
            .snapshots()
            .into_iter()
            .map(|s| TokenStatus {
                identity: s.key.identity,
                region: s.key.region,
                variant: s.key.variant.as_str().to_string(),
                principal: s.principal,
                registries: s.registries.into_iter().collect(),
                expires_at: s.token.as_ref().map(|t| t.expires_at),
                refresh_at: s.token.as_ref().map(|_| s.refresh_at),
                last_used: s.last_used,
                upstream_calls: s.upstream_calls,
                last_error: s.last_error,
                error_kind: s.error_kind.map(|k| k.status_name().to_string()),
                retry_at: Some(s.backoff_until.ceil() as i64).filter(|t| *t as f64 > now.floor()),
            })
            .collect();
        let m = &self.metrics;
        StatusResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: self.started_at,
            identities,
            tokens,
            requests: m.requests(),
            cache_hits: m.cache_hits.load(Relaxed),
            upstream_calls: m.upstream_calls.load(Relaxed),
            upstream_errors: m.upstream_errors.load(Relaxed),
        }
    }

    /// The `/metrics` text (Prometheus).
    pub fn metrics_text(&self) -> String {
        let now = self.store.clock().now_secs();
        let tokens: Vec<(String, String, String, i64)> = self
            .store
            .snapshots()
            .into_iter()
            .filter_map(|s| {
                let left = s.token.as_ref()?.remaining(now).max(0);
                Some((s.key.identity, s.key.region, s.key.variant.as_str().to_string(), left))
            })
            .collect();
        self.metrics.render(&tokens)
    }
}
