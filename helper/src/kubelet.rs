//! Kubelet image credential provider mode: a drop-in for kubernetes/cloud-provider-aws's
//! `ecr-credential-provider`.
//!
//! kubelet runs `ecr-credential-provider get-credentials` (this binary under that name, or
//! `docker-credential-ecr kubelet get-credentials`), writes one `CredentialProviderRequest` on
//! stdin and reads one `CredentialProviderResponse` from stdout, in the same apiVersion
//! (`credentialprovider.kubelet.k8s.io/v1`, `v1beta1` or `v1alpha1`). kubelet decodes the
//! response strictly, so it carries exactly `apiVersion`, `kind`, `cacheKeyType`,
//! `cacheDuration` and `auth`, keyed by the registry as it appears in the image (host and
//! port, the part before the first `/`, as kubelet's own `parseRegistry` takes it).
//!
//! Tokens come from [`crate::credentials::token_for`] (broker, cache, AWS), except in
//! service-account token mode (KEP-4412, kubelet 1.33+): when kubelet sends the pod's
//! `serviceAccountToken` and a role is named by the service account annotation
//! `eks.amazonaws.com/ecr-role-arn` (or `AWS_ECR_ROLE_ARN`), the token is exchanged with STS
//! AssumeRoleWithWebIdentity and ECR is asked with that role's temporary credentials. Those
//! tokens are cached under the role *and* the service account the token names, never the node's.
//!
//! Any failure is one line on stderr and exit 1, with nothing on stdout.

use crate::credentials::{self, Found, GetError};
use crate::reply::Reply;
use ecr_cred::aws::{self, FetchError};
use ecr_cred::cache::{CacheFile, TokenCache, TokenKey};
use ecr_cred::principal;
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::{now_unix, Token};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::Read;

#[derive(clap::Args, Debug)]
pub struct KubeletArgs {
    /// Arguments kubelet passes (e.g. `get-credentials`).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// The kubelet `CredentialProviderConfig` shipped in packaging/ (printed by `configure --kubelet`).
pub const PROVIDER_CONFIG: &str = include_str!("../../packaging/kubernetes/credential-provider-config.yaml");

/// The API group of the exec plugin protocol, and the versions kubelet speaks.
const API_VERSIONS: &[&str] =
    &["credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1beta1", "credentialprovider.kubelet.k8s.io/v1alpha1"];
const REQUEST_KIND: &str = "CredentialProviderRequest";
const RESPONSE_KIND: &str = "CredentialProviderResponse";

/// The argument kubelet's configuration passes (the upstream provider's documented `args`).
const GET_CREDENTIALS: &str = "get-credentials";

/// Largest request read from stdin.
const MAX_REQUEST_BYTES: u64 = 1 << 20;

/// The service account annotation naming the role to pull with (as upstream's provider).
pub const ROLE_ANNOTATION: &str = "eks.amazonaws.com/ecr-role-arn";
/// The environment fallback for the role.
pub const ROLE_ENV: &str = "AWS_ECR_ROLE_ARN";
/// The STS role session name in service-account mode.
const ROLE_SESSION_NAME: &str = "ecr-credential-provider";

/// The longest time kubelet is told to keep a token in memory.
const MAX_CACHE_SECS: i64 = 6 * 3600;
/// With less than this left, kubelet is told not to cache the token at all.
const MIN_CACHE_REMAINING_SECS: i64 = 60;

/// Run the provider protocol: request on stdin, the response for stdout, or one line for
/// stderr and exit 1.
pub fn run(args: &KubeletArgs) -> Reply {
    match respond(args) {
        Ok(body) => Reply::out(body),
        Err(msg) => Reply::fail("ecr-credential-provider", msg.split_whitespace().collect::<Vec<_>>().join(" ")),
    }
}

/// The whole exchange: the response text, or the one-line reason there is none.
fn respond(args: &KubeletArgs) -> Result<String, String> {
    check_args(&args.args)?;
    let input = read_request()?;
    let request = Request::parse(&input)?;
    let registry = RegistryHost::parse(&request.registry)
        .ok_or_else(|| format!("image {} is not in an Amazon ECR registry", shown(&request.image)))?;
    let token = match request.web_identity() {
        Some(wi) => token_for_service_account(&registry, &wi),
        None => credentials::token_for(&registry).map_err(|e: GetError| e.to_string()),
    }
    .map_err(|e| format!("{}: {e}", registry.host))?;
    let now = now_unix();
    let response = Response {
        api_version: request.api_version,
        kind: RESPONSE_KIND,
        cache_key_type: "Registry",
        cache_duration: go_duration(cache_secs(token.expires_at, now)),
        auth: BTreeMap::from([(
            request.registry.clone(),
            AuthConfig { username: token.username.clone(), password: token.password.clone() },
        )]),
    };
    let mut body = serde_json::to_string(&response).map_err(|e| format!("could not encode the response: {e}"))?;
    body.push('\n');
    Ok(body)
}

fn check_args(args: &[String]) -> Result<(), String> {
    match args {
        [] => Ok(()),
        [a] if a == GET_CREDENTIALS => Ok(()),
        _ => {
            let bad = args.iter().find(|a| *a != GET_CREDENTIALS).map(String::as_str).unwrap_or(GET_CREDENTIALS);
            Err(format!("unknown argument {}: expected none or `{GET_CREDENTIALS}`", shown(bad)))
        }
    }
}

fn read_request() -> Result<Vec<u8>, String> {
    let mut input = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_REQUEST_BYTES + 1)
        .read_to_end(&mut input)
        .map_err(|e| format!("could not read the request from stdin: {e}"))?;
    if input.len() as u64 > MAX_REQUEST_BYTES {
        return Err("the request on stdin is larger than 1 MiB".into());
    }
    if input.iter().all(u8::is_ascii_whitespace) {
        return Err("empty request on stdin: expected a CredentialProviderRequest as JSON".into());
    }
    Ok(input)
}

/// A value from the request, quoted and shortened for an error message (never a secret:
/// only the apiVersion, kind, image and arguments are ever shown).
fn shown(s: &str) -> String {
    let short: String = s.chars().take(200).collect();
    let more = if short.len() < s.len() { "..." } else { "" };
    format!("{short:?}{more}")
}

/// The parts of a `CredentialProviderRequest` this provider uses (no `Debug`: it holds a token).
struct Request {
    api_version: String,
    image: String,
    /// The registry as in the image: everything before the first `/` (host and port).
    registry: String,
    service_account_token: Option<String>,
    annotations: BTreeMap<String, String>,
}

impl Request {
    fn parse(input: &[u8]) -> Result<Request, String> {
        let value: serde_json::Value = serde_json::from_slice(input).map_err(|e| {
            use serde_json::error::Category;
            match e.classify() {
                // Syntax and end-of-input messages name a position, never the input itself.
                Category::Syntax | Category::Eof => format!("the request is not valid JSON: {e}"),
                _ => format!("the request is not valid JSON (line {} column {})", e.line(), e.column()),
            }
        })?;
        let obj = value.as_object().ok_or("the request is not a JSON object: expected a CredentialProviderRequest")?;
        let string_field = |name: &str| -> Result<Option<String>, String> {
            match obj.get(name) {
                None | Some(serde_json::Value::Null) => Ok(None),
                Some(serde_json::Value::String(s)) => Ok(Some(s.clone())),
                Some(_) => Err(format!("the request's `{name}` is not a string")),
            }
        };
        let api_version = string_field("apiVersion")?.filter(|v| !v.is_empty()).ok_or("the request has no apiVersion")?;
        if !API_VERSIONS.contains(&api_version.as_str()) {
            return Err(format!("unsupported apiVersion {}: expected one of {}", shown(&api_version), API_VERSIONS.join(", ")));
        }
        let kind = string_field("kind")?.filter(|k| !k.is_empty()).ok_or("the request has no kind")?;
        if kind != REQUEST_KIND {
            return Err(format!("unexpected kind {}: expected {REQUEST_KIND}", shown(&kind)));
        }
        let image = string_field("image")?.map(|i| i.trim().to_string()).filter(|i| !i.is_empty()).ok_or("the request has no image")?;
        let registry = registry_of(&image).ok_or_else(|| format!("image {} names no registry", shown(&image)))?;
        let service_account_token = string_field("serviceAccountToken")?.filter(|t| !t.trim().is_empty());
        let annotations = match obj.get("serviceAccountAnnotations") {
            None | Some(serde_json::Value::Null) => BTreeMap::new(),
            Some(serde_json::Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => Ok((k.clone(), s.clone())),
                    _ => Err(format!("the request's service account annotation {} is not a string", shown(k))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err("the request's `serviceAccountAnnotations` is not an object".into()),
        };
        Ok(Request { api_version, image, registry, service_account_token, annotations })
    }

    /// Service-account token mode: a token from kubelet and a role to use it with.
    fn web_identity(&self) -> Option<WebIdentity> {
        let token = self.service_account_token.clone()?;
        let role_arn = self
            .annotations
            .get(ROLE_ANNOTATION)
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .or_else(|| std::env::var(ROLE_ENV).ok().map(|r| r.trim().to_string()).filter(|r| !r.is_empty()));
        match role_arn {
            Some(role_arn) => Some(WebIdentity { role_arn, token }),
            None => {
                tracing::debug!("service account token given but no {ROLE_ANNOTATION} annotation or {ROLE_ENV}: using the node's identity");
                None
            }
        }
    }
}

/// The registry part of an image reference as kubelet sees it: everything before the first
/// `/` (kubelet's `parseRegistry`), so a port stays. A scheme, which kubelet never sends, is
/// dropped.
fn registry_of(image: &str) -> Option<String> {
    let rest = image.split_once("://").map(|(_, r)| r).unwrap_or(image);
    let registry = rest.split('/').next().unwrap_or("");
    (!registry.is_empty()).then(|| registry.to_string())
}

#[derive(Serialize)]
struct Response {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: &'static str,
    #[serde(rename = "cacheKeyType")]
    cache_key_type: &'static str,
    #[serde(rename = "cacheDuration")]
    cache_duration: String,
    auth: BTreeMap<String, AuthConfig>,
}

#[derive(Serialize)]
struct AuthConfig {
    username: String,
    password: String,
}

/// How long kubelet may keep a token: half of what is left (as upstream's provider does, for
/// the time between fetching and using it), at most [`MAX_CACHE_SECS`], and nothing once less
/// than a minute is left.
fn cache_secs(expires_at: i64, now: i64) -> i64 {
    let remaining = expires_at - now;
    if remaining < MIN_CACHE_REMAINING_SECS {
        0
    } else {
        (remaining / 2).min(MAX_CACHE_SECS)
    }
}

/// Whole seconds as Go's `time.Duration.String()` writes them: `4h30m0s`, `30m5s`, `45s`, `0s`.
fn go_duration(secs: i64) -> String {
    let secs = secs.max(0);
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    if h > 0 {
        format!("{h}h{m}m{s}s")
    } else if m > 0 {
        format!("{m}m{s}s")
    } else {
        format!("{s}s")
    }
}

/// A service account token and the role to exchange it for.
struct WebIdentity {
    role_arn: String,
    token: String,
}

impl WebIdentity {
    /// The principal this mode's tokens are cached under: the role and the service account the
    /// token names (its issuer and `sub`, read without verification, only to keep service
    /// accounts apart), or a hash of the whole token when it is not a JWT.
    fn principal(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        match jwt_subject(&self.token) {
            Some((iss, sub)) => {
                h.update(b"ecr-cred service account v1\0");
                h.update(iss.as_bytes());
                h.update(b"\0");
                h.update(sub.as_bytes());
            }
            None => {
                h.update(b"ecr-cred web identity token v1\0");
                h.update(self.token.as_bytes());
            }
        }
        format!("web-identity:{}#{}", self.role_arn, &principal::hex(&h.finalize())[..32])
    }
}

/// `(iss, sub)` from a JWT's payload, decoded without verification.
fn jwt_subject(token: &str) -> Option<(String, String)> {
    use base64::Engine;
    let mut parts = token.trim().split('.');
    let (_header, payload, _sig) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let sub = claims.get("sub")?.as_str().filter(|s| !s.is_empty())?.to_string();
    let iss = claims.get("iss").and_then(|i| i.as_str()).unwrap_or("").to_string();
    Some((iss, sub))
}

/// A role ARN as IAM writes one; anything else is refused before STS sees it.
fn valid_role_arn(arn: &str) -> bool {
    arn.len() <= 2048
        && arn.starts_with("arn:")
        && arn.contains(":role/")
        && arn.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-/:".contains(&b))
}

/// A token for `registry` with the role the service account names: from the cache, else
/// AssumeRoleWithWebIdentity then GetAuthorizationToken with the role's credentials.
fn token_for_service_account(registry: &RegistryHost, wi: &WebIdentity) -> Result<Token, String> {
    if !valid_role_arn(&wi.role_arn) {
        return Err(format!("{} is not an IAM role ARN ({ROLE_ANNOTATION})", shown(&wi.role_arn)));
    }
    let now = now_unix();
    let endpoint = aws::endpoint_override(registry.variant);
    let key = TokenKey::new(&wi.principal(), &registry.region, registry.variant, endpoint.as_deref());
    let hit = |snapshot: &CacheFile| {
        let token = snapshot.fresh_token(&key, now)?.clone();
        tracing::debug!(registry = %registry, role = %wi.role_arn, "cache hit (service account)");
        Some(Found { token, key: None, also: None })
    };
    let fetch = |_: CacheFile| async {
        let fetched = async {
            let creds = aws::assume_role_with_web_identity(&registry.region, &wi.role_arn, ROLE_SESSION_NAME, &wi.token).await?;
            tracing::debug!(role = %wi.role_arn, access_key_id = %creds.access_key_id, "assumed the service account's role");
            let cfg = aws::sdk_config_with_credentials(&registry.region, &creds).await;
            aws::fetch_token(&cfg, registry).await
        }
        .await;
        let token = fetched.map_err(|e: FetchError| format!("with role {} for the pod's service account: {e}", wi.role_arn))?;
        Ok::<_, String>(Found { token, key: Some(key.clone()), also: None })
    };
    credentials::cache_else_fetch(TokenCache::open_default().as_ref(), now, hit, fetch)
}
