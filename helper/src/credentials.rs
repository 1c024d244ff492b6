//! Where the helper's tokens come from, in order: the local `ecr-broker` if one answers (it
//! holds the host's policy: which identity serves which registry; a healthy broker is waited
//! for, never raced, see [`crate::broker_client`]), then the user's token
//! cache (no AWS call, no async runtime), then AWS itself.
//!
//! The in-process fetch uses the identity the user's config file
//! (`~/.config/ecr-cred/config.toml`, the broker's format) routes the registry to: a profile,
//! a role, or the default chain when no rule matches or there is no file. It resolves those
//! credentials, learns the principal
//! from STS (so rotated credentials of the same role reuse its cached token), and asks ECR.
//! When no cached token could possibly match, STS and ECR are asked at the same time.

use ecr_cred::aws::{self, FetchError, Identity};
use ecr_cred::cache::{CacheFile, TokenCache, TokenKey};
use ecr_cred::config::{self, Config};
use ecr_cred::paths;
use ecr_cred::principal::{self, CredentialSource};
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::{now_unix, Token};
use std::collections::BTreeMap;
use std::fmt;

/// Why no token could be given.
#[derive(Debug)]
pub enum GetError {
    Fetch(FetchError),
    /// The broker answered, and refused by policy: not silently bypassed.
    BrokerRefused(String),
    /// The broker works but could not get a token in time (AWS failed or was slow).
    BrokerFailed(String),
    /// The user's config file cannot be used.
    Config(String),
    Runtime(String),
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::Fetch(e) => e.fmt(f),
            GetError::BrokerRefused(why) => write!(f, "the ecr-broker refused this request: {why}"),
            GetError::BrokerFailed(why) => write!(f, "the ecr-broker could not get a token: {why}"),
            GetError::Config(e) => write!(f, "{e}"),
            GetError::Runtime(e) => write!(f, "internal error: {e}"),
        }
    }
}

/// A change to the cache file, applied under its lock.
pub type CacheChange = Box<dyn FnOnce(&mut CacheFile)>;

/// What the cache or a fetch gives: the token, where to cache it, and what else to note.
pub struct Found {
    pub token: Token,
    /// Cache the token under this key; `None` when it came from the cache.
    pub key: Option<TokenKey>,
    /// Anything else to write into the cache with it (a principal mapping, a registry used).
    pub also: Option<CacheChange>,
}

/// The async runtime could not be started.
#[derive(Debug)]
pub struct NoRuntime(std::io::Error);

impl From<NoRuntime> for GetError {
    fn from(e: NoRuntime) -> GetError {
        GetError::Runtime(e.0.to_string())
    }
}

impl From<NoRuntime> for String {
    fn from(e: NoRuntime) -> String {
        format!("internal error: {}", e.0)
    }
}

#[cfg(test)]
thread_local! {
    /// Runtimes started by this thread: the tests check a cache hit starts none.
    static RUNTIMES_STARTED: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// The one way to a token with the user's cache in front, for `get` and for kubelet's
/// provider alike: `hit` looks in the cache (blocking: no async runtime is started for a
/// hit); else `fetch` runs on a current-thread runtime started only then; then what was
/// found is remembered. A token that arrived already expired (clock skew) is handed out once
/// and never cached. A cache that cannot be written is a warning, never a failure.
pub fn cache_else_fetch<E, Fut>(
    cache: Option<&TokenCache>,
    now: i64,
    hit: impl FnOnce(&CacheFile) -> Option<Found>,
    fetch: impl FnOnce(CacheFile) -> Fut,
) -> Result<Token, E>
where
    Fut: std::future::Future<Output = Result<Found, E>>,
    E: From<NoRuntime>,
{
    let snapshot = cache.map(TokenCache::load).unwrap_or_default();
    let found = match hit(&snapshot) {
        Some(found) => found,
        None => {
            #[cfg(test)]
            RUNTIMES_STARTED.with(|n| n.set(n.get() + 1));
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(NoRuntime)?;
            runtime.block_on(fetch(snapshot))?
        }
    };
    let Found { token, key, also } = found;
    if key.is_some() && token.expired_on_arrival() {
        tracing::warn!("ECR returned a token that had already expired (clock skew?); using it once without caching it");
    }
    let key = key.filter(|_| !token.expired_on_arrival());
    if key.is_some() || also.is_some() {
        remember(cache, now, |c| {
            if let Some(key) = key {
                c.put_token(key, token.clone());
            }
            if let Some(also) = also {
                also(c);
            }
        });
    }
    Ok(token)
}

/// ECR registries as the protocol's store: tokens fetched (or cached), never stored.
pub struct EcrTokens;

impl crate::protocol::Store for EcrTokens {
    fn get(&self, server_url: &str) -> Result<Option<crate::protocol::Login>, String> {
        let Some(registry) = RegistryHost::parse(server_url) else { return Ok(None) };
        let token = token_for(&registry).map_err(|e| format!("ecr: {}: {e}", registry.host))?;
        Ok(Some(crate::protocol::Login { username: token.username, secret: token.password }))
    }

    /// `docker login` to an ECR registry: accepted, nothing kept (tokens are fetched fresh).
    fn store(&self, _server_url: &str, _login: &crate::protocol::Login) -> Result<(), String> {
        Ok(())
    }

    /// `docker logout`: accepted; cached tokens stay, they are the AWS identity's.
    fn erase(&self, _server_url: &str) -> Result<bool, String> {
        Ok(true)
    }

    fn list(&self) -> Result<BTreeMap<String, String>, String> {
        Ok(known_registries().into_iter().map(|r| (r.server_url(), "AWS".to_string())).collect())
    }
}

/// A token for `registry`, from the broker, else the cache or AWS.
pub fn token_for(registry: &RegistryHost) -> Result<Token, GetError> {
    match crate::broker_client::token(registry) {
        crate::broker_client::Answer::Token(t) => return Ok(t),
        crate::broker_client::Answer::Refused(why) => return Err(GetError::BrokerRefused(why)),
        crate::broker_client::Answer::Failed(why) => return Err(GetError::BrokerFailed(why)),
        crate::broker_client::Answer::Unavailable => {}
    }
    let now = now_unix();
    let endpoint = aws::endpoint_override(registry.variant);
    let identity = routed_identity(registry)?;
    let source = credential_source(&identity);
    let cache = TokenCache::open_default();
    // The fetch below moves what it uses: these references, not the values the hit borrows.
    let (identity, source, endpoint) = (&identity, &source, &endpoint);

    let hit = |snapshot: &CacheFile| {
        let principal = snapshot.principal_for(&source.fingerprint, now)?;
        let key = TokenKey::new(principal, &registry.region, registry.variant, endpoint.as_deref());
        let token = snapshot.fresh_token(&key, now)?.clone();
        tracing::debug!(registry = %registry, principal, "cache hit");
        let also: Option<CacheChange> = if snapshot.registries.contains_key(&registry.host) {
            None
        } else {
            let host = registry.host.clone();
            Some(Box::new(move |c: &mut CacheFile| c.note_registry(&host, now)))
        };
        Some(Found { token, key: None, also })
    };
    let fetch = |snapshot: CacheFile| async move {
        let fetched = fetch(registry, identity, endpoint.as_deref(), &snapshot, now).await.map_err(GetError::Fetch)?;
        let Fetched { principal, credentials_expire, token, from_cache } = fetched;
        let valid_until = (now + source.ttl()).min(credentials_expire.unwrap_or(i64::MAX));
        let key = TokenKey::new(&principal, &registry.region, registry.variant, endpoint.as_deref());
        let (fingerprint, host) = (source.fingerprint.clone(), registry.host.clone());
        let also = move |c: &mut CacheFile| {
            c.put_source(&fingerprint, &principal, valid_until);
            c.note_registry(&host, now);
        };
        Ok::<_, GetError>(Found { token, key: (!from_cache).then_some(key), also: Some(Box::new(also)) })
    };
    cache_else_fetch(cache.as_ref(), now, hit, fetch)
}

/// The identity the user's config file routes `registry` to; the default chain without a file.
fn routed_identity(registry: &RegistryHost) -> Result<Identity, GetError> {
    let Some(path) = config::user_config_path() else { return Ok(Identity::default()) };
    match Config::load_user(&path) {
        Ok(Some(c)) => {
            let (name, identity) = c.route(registry);
            tracing::debug!(registry = %registry, identity = name, "routed by {}", path.display());
            Ok(identity)
        }
        Ok(None) => Ok(Identity::default()),
        Err(e) => Err(GetError::Config(e)),
    }
}

/// The credential source's fingerprint: the environment and AWS files, plus the identity the
/// registry is routed to, so two registries routed to different profiles or roles never share
/// a principal mapping (and so never a token of another principal). Only an access key in the
/// environment with the default chain pins the identity.
fn credential_source(identity: &Identity) -> CredentialSource {
    if *identity == Identity::default() {
        return CredentialSource::from_env(&[]);
    }
    let mut extra: Vec<(&str, String)> = Vec::new();
    if let Some(p) = &identity.profile {
        extra.push(("ecr-cred.profile", p.clone()));
    }
    if let Some(r) = &identity.role {
        extra.push(("ecr-cred.role_arn", r.role_arn.clone()));
        extra.push(("ecr-cred.external_id", r.external_id.clone().unwrap_or_default()));
        extra.push(("ecr-cred.session_name", r.session_name.clone().unwrap_or_default()));
        extra.push(("ecr-cred.duration_seconds", r.duration_secs.map(|d| d.to_string()).unwrap_or_default()));
    }
    let pairs: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut source = CredentialSource::from_env(&pairs);
    source.pinned = false;
    source
}

/// Apply a change to the cache; a cache that cannot be written is a warning, never a failure.
fn remember(cache: Option<&TokenCache>, now: i64, change: impl FnOnce(&mut CacheFile)) {
    if let Some(c) = cache {
        if let Err(e) = c.update(now, change) {
            tracing::warn!("could not update the token cache: {e}");
        }
    }
}

struct Fetched {
    principal: String,
    credentials_expire: Option<i64>,
    token: Token,
    from_cache: bool,
}

async fn fetch(
    registry: &RegistryHost,
    identity: &Identity,
    endpoint: Option<&str>,
    snapshot: &CacheFile,
    now: i64,
) -> Result<Fetched, FetchError> {
    let cfg = aws::sdk_config(&registry.region, identity).await;
    let creds = match aws::resolve_credentials(&cfg).await {
        Ok(c) => c,
        Err(e) => return Err(aws::explain_profile_error(identity, e).await),
    };
    // Could any cached token serve this registry once we know the principal?
    let a_cached_token_could_match = snapshot.tokens.values().any(|e| {
        e.key.region == registry.region
            && e.key.variant == registry.variant.as_str()
            && e.key.endpoint.as_deref() == endpoint
            && e.token.is_fresh(now)
    });
    if a_cached_token_could_match {
        let principal = principal_of(&cfg, &creds.access_key_id).await;
        let key = TokenKey::new(&principal, &registry.region, registry.variant, endpoint);
        if let Some(token) = snapshot.fresh_token(&key, now) {
            tracing::debug!(registry = %registry, principal, "cache hit after credential rotation");
            return Ok(Fetched { principal, credentials_expire: creds.expires_at, token: token.clone(), from_cache: true });
        }
        let token = aws::fetch_token(&cfg, registry).await?;
        return Ok(Fetched { principal, credentials_expire: creds.expires_at, token, from_cache: false });
    }
    let (principal, token) = tokio::join!(principal_of(&cfg, &creds.access_key_id), aws::fetch_token(&cfg, registry));
    Ok(Fetched { principal, credentials_expire: creds.expires_at, token: token?, from_cache: false })
}

/// The normalized principal ARN from STS; if STS cannot say (no STS endpoint in a private
/// subnet, denied), the access key id stands in, hashed.
async fn principal_of(cfg: &aws_config::SdkConfig, access_key_id: &str) -> String {
    match aws::caller_arn(cfg).await {
        Ok(arn) => principal::normalize_principal(&arn),
        Err(e) => {
            tracing::info!("STS GetCallerIdentity failed ({e}); caching under the access key instead of the principal");
            principal::principal_for_access_key(access_key_id)
        }
    }
}

/// The ECR registries this user asked for (from the cache) or configured in docker's config.
pub fn known_registries() -> Vec<RegistryHost> {
    let mut hosts: Vec<String> = Vec::new();
    if let Some(cache) = TokenCache::open_default() {
        hosts.extend(cache.load().registries.into_keys());
    }
    hosts.extend(configured_registries());
    let mut out: Vec<RegistryHost> = hosts.iter().filter_map(|h| RegistryHost::parse(h)).collect();
    out.sort_by(|a, b| a.host.cmp(&b.host));
    out.dedup_by(|a, b| a.host == b.host);
    out
}

/// Hosts that `$DOCKER_CONFIG/config.json` sends to this helper through `credHelpers`.
fn configured_registries() -> Vec<String> {
    let Some(text) = paths::docker_config_file().and_then(|f| std::fs::read_to_string(f).ok()) else { return Vec::new() };
    let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) else { return Vec::new() };
    let Some(helpers) = config.get("credHelpers").and_then(|h| h.as_object()) else { return Vec::new() };
    helpers.iter().filter(|(_, v)| v.as_str() == Some("ecr")).map(|(k, _)| k.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecr_cred::EndpointVariant;

    fn token(fetched_at: i64, expires_at: i64) -> Token {
        Token { username: "AWS".into(), password: format!("pw-{fetched_at}"), proxy_endpoint: None, fetched_at, expires_at }
    }

    fn key() -> TokenKey {
        TokenKey::new("arn:aws:iam::123456789012:role/r", "us-east-1", EndpointVariant::Standard, None)
    }

    fn runtimes() -> usize {
        RUNTIMES_STARTED.with(|n| n.get())
    }

    /// A fetch that must not happen.
    fn no_fetch(_: CacheFile) -> std::future::Ready<Result<Found, String>> {
        panic!("fetched although the cache had the token")
    }

    /// Hit, miss and the skewed token, through the one path `get` and kubelet mode share.
    #[test]
    fn a_miss_fetches_and_remembers_and_a_hit_starts_no_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(&dir.path().join("c")).unwrap();
        let now = now_unix();
        let lookup = |c: &CacheFile| c.fresh_token(&key(), now).map(|t| Found { token: t.clone(), key: None, also: None });

        // Miss: one runtime, the fetch's token, cached under its key with what else it noted.
        let before = runtimes();
        let fetched = cache_else_fetch(Some(&cache), now, lookup, |_| async {
            let also: CacheChange = Box::new(move |c| c.note_registry("r.example", now));
            Ok::<_, String>(Found { token: token(now, now + 43_200), key: Some(key()), also: Some(also) })
        })
        .unwrap();
        assert_eq!(runtimes(), before + 1);
        assert_eq!(fetched.password, format!("pw-{now}"));
        assert!(cache.load().registries.contains_key("r.example"));

        // Hit: the same token, no fetch, no runtime.
        let hit = cache_else_fetch(Some(&cache), now, lookup, no_fetch).unwrap();
        assert_eq!(hit.password, fetched.password);
        assert_eq!(runtimes(), before + 1, "a cache hit started an async runtime");
    }

    #[test]
    fn a_token_expired_on_arrival_is_handed_out_once_and_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(&dir.path().join("c")).unwrap();
        let now = now_unix();
        let skewed = cache_else_fetch(
            Some(&cache),
            now,
            |_| None,
            |_| async { Ok::<_, String>(Found { token: token(now, now - 1), key: Some(key()), also: None }) },
        )
        .unwrap();
        assert_eq!(skewed.expires_at, now - 1);
        assert!(cache.load().tokens.is_empty(), "an expired token was cached");
    }

    #[test]
    fn a_failed_fetch_is_the_error_and_without_a_cache_nothing_is_kept() {
        let now = now_unix();
        let err = cache_else_fetch::<String, _>(None, now, |_| None, |_| async { Err("AccessDenied".into()) }).unwrap_err();
        assert_eq!(err, "AccessDenied");
        let t = cache_else_fetch(
            None,
            now,
            |_| None,
            |_| async { Ok::<_, String>(Found { token: token(now, now + 3600), key: Some(key()), also: None }) },
        )
        .unwrap();
        assert_eq!(t.expires_at, now + 3600);
    }
}
