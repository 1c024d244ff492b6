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
use ecr_cred::identity::{self, CredentialSource};
use ecr_cred::paths;
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::{now_unix, Token};
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

/// The user's cache, unless disabled (`AWS_ECR_DISABLE_CACHE`) or unusable (then with a warning).
pub fn open_cache() -> Option<TokenCache> {
    if paths::env_flag("AWS_ECR_DISABLE_CACHE") {
        return None;
    }
    let dir = paths::cache_dir()?;
    match TokenCache::open(&dir) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!("{e}; continuing without a cache");
            None
        }
    }
}

/// A token for `registry`, from the cache, the broker or AWS.
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
    let cache = open_cache();
    let snapshot = cache.as_ref().map(TokenCache::load).unwrap_or_default();

    if let Some(principal) = snapshot.principal_for(&source.fingerprint, now) {
        let key = TokenKey::new(principal, &registry.region, registry.variant, endpoint.as_deref());
        if let Some(token) = snapshot.fresh_token(&key, now) {
            tracing::debug!(registry = %registry, principal, "cache hit");
            if !snapshot.registries.contains_key(&registry.host) {
                remember(cache.as_ref(), now, |c| c.note_registry(&registry.host, now));
            }
            return Ok(token.clone());
        }
    }

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| GetError::Runtime(e.to_string()))?;
    let fetched = runtime.block_on(fetch(registry, &identity, endpoint.as_deref(), &snapshot, now)).map_err(GetError::Fetch)?;

    let Fetched { principal, credentials_expire, token, from_cache } = fetched;
    let valid_until = (now + source.ttl()).min(credentials_expire.unwrap_or(i64::MAX));
    let key = TokenKey::new(&principal, &registry.region, registry.variant, endpoint.as_deref());
    if token.expired_on_arrival() {
        tracing::warn!(registry = %registry, "ECR returned a token that had already expired (clock skew?); using it once without caching it");
    }
    remember(cache.as_ref(), now, |c| {
        c.put_source(&source.fingerprint, &principal, valid_until);
        if !from_cache && !token.expired_on_arrival() {
            c.put_token(key, token.clone());
        }
        c.note_registry(&registry.host, now);
    });
    Ok(token)
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
        Ok(arn) => identity::normalize_principal(&arn),
        Err(e) => {
            tracing::info!("STS GetCallerIdentity failed ({e}); caching under the access key instead of the principal");
            identity::principal_for_access_key(access_key_id)
        }
    }
}

/// The ECR registries this user asked for (from the cache) or configured in docker's config.
pub fn known_registries() -> Vec<RegistryHost> {
    let mut hosts: Vec<String> = Vec::new();
    if let Some(cache) = open_cache() {
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
    let dir = std::env::var_os("DOCKER_CONFIG").map(std::path::PathBuf::from).or_else(|| paths::home_dir().map(|h| h.join(".docker")));
    let Some(text) = dir.and_then(|d| std::fs::read_to_string(d.join("config.json")).ok()) else { return Vec::new() };
    let Ok(config) = serde_json::from_str::<serde_json::Value>(&text) else { return Vec::new() };
    let Some(helpers) = config.get("credHelpers").and_then(|h| h.as_object()) else { return Vec::new() };
    helpers.iter().filter(|(_, v)| v.as_str() == Some("ecr")).map(|(k, _)| k.clone()).collect()
}
