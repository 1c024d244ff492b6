//! AWS access: load the SDK configuration for a registry's region, find out who the
//! credentials belong to, and fetch an authorization token from ECR or ECR Public.
//!
//! Credentials always come from `aws-config` (the whole default chain, a named profile, or a
//! role assumed from one of those); nothing here signs requests or parses config files by hand.
//! Errors become one line a person can act on; they never carry a secret.

use crate::registry::{EndpointVariant, RegistryHost};
use crate::token::{now_unix, Token};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_sts::error::{ProvideErrorMetadata, SdkError};
use std::fmt;
use std::time::Duration;

/// Where the credentials for a token come from.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Identity {
    /// A named profile from `~/.aws/config`; `None`: the default chain.
    pub profile: Option<String>,
    /// A role to assume with those credentials.
    pub role: Option<AssumeRole>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AssumeRole {
    pub role_arn: String,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
    pub duration_secs: Option<u32>,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.profile {
            Some(p) => write!(f, "profile {p}")?,
            None => f.write_str("default chain")?,
        }
        if let Some(r) = &self.role {
            write!(f, " -> role {}", r.role_arn)?;
        }
        Ok(())
    }
}

/// Why a token could not be had. `Display` is the one line the helper prints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The credential chain found nothing, or a source in it failed.
    Credentials(String),
    /// AWS answered with an error code (AccessDenied, ExpiredToken, throttling, ...).
    Service { service: &'static str, code: String, message: String, hint: &'static str },
    /// The endpoint could not be reached or did not answer in time.
    Unreachable { service: &'static str, detail: String },
    /// An answer we cannot use.
    BadAnswer(String),
    /// The named profile cannot give credentials: missing from the config files, or an SSO
    /// profile without a live session. The text names the profile and what to do.
    Profile(String),
}

impl FetchError {
    /// Throttling and server-side faults: worth retrying later (the broker backs off).
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Unreachable { .. } => true,
            FetchError::Service { code, .. } => {
                is_throttle(code)
                    || code.starts_with("ServerException")
                    || code.contains("InternalFailure")
                    || code.contains("ServiceUnavailable")
            }
            _ => false,
        }
    }

    /// AWS throttled the call (ThrottlingException, TooManyRequestsException,
    /// RequestLimitExceeded and kin); a kind of transient failure.
    pub fn is_throttling(&self) -> bool {
        matches!(self, FetchError::Service { code, .. } if is_throttle(code))
    }
}

fn is_throttle(code: &str) -> bool {
    matches!(code, "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" | "SlowDown")
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Credentials(d) => write!(
                f,
                "no usable AWS credentials: {d} (set AWS_PROFILE, run `aws configure` or `aws sso login`, or give the machine a role)"
            ),
            FetchError::Service { service, code, message, hint } => {
                write!(f, "{service} refused: {code}")?;
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                if !hint.is_empty() {
                    write!(f, " ({hint})")?;
                }
                Ok(())
            }
            FetchError::Unreachable { service, detail } => write!(f, "could not reach {service}: {detail}"),
            FetchError::BadAnswer(d) => write!(f, "{d}"),
            FetchError::Profile(d) => write!(f, "{d}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// One line of an error and its causes, from their `Display` texts only (the SDK's `Debug`
/// output is long and can include raw responses), each cause once.
fn one_line(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut next = Some(e);
    while let Some(err) = next {
        let text = err.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
        if !text.is_empty() && !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        next = err.source();
    }
    parts.join(": ")
}

fn credentials_error(e: CredentialsError) -> FetchError {
    credentials_error_ref(&e)
}

fn credentials_error_ref(e: &CredentialsError) -> FetchError {
    let detail = match e {
        CredentialsError::CredentialsNotLoaded(_) => {
            "none found in the environment, ~/.aws/config and credentials, SSO, web identity, container or instance metadata".to_string()
        }
        CredentialsError::ProviderTimedOut(_) => "the credential source timed out".to_string(),
        _ => one_line(e),
    };
    FetchError::Credentials(detail)
}

fn sdk_error<E, R>(service: &'static str, e: SdkError<E, R>) -> FetchError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: fmt::Debug + Send + Sync + 'static,
{
    match &e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().unwrap_or("UnknownError").to_string();
            let message = err.message().unwrap_or("").split_whitespace().collect::<Vec<_>>().join(" ");
            let hint = match code.as_str() {
                "AccessDeniedException" | "AccessDenied" => "the principal needs ecr:GetAuthorizationToken; for ECR Public, ecr-public:GetAuthorizationToken and sts:GetServiceBearerToken",
                "ExpiredTokenException" | "ExpiredToken" => "the AWS credentials have expired: refresh them, e.g. `aws sso login`",
                "UnrecognizedClientException" | "InvalidClientTokenId" => "AWS does not know this access key: check AWS_PROFILE and the keys in use",
                "SignatureDoesNotMatch" | "InvalidSignatureException" => "the secret access key does not match the key id, or the clock is wrong",
                c if is_throttle(c) => "AWS is throttling token requests; try again shortly",
                _ => "",
            };
            FetchError::Service { service, code, message, hint }
        }
        // The SDK resolves credentials while sending: their absence is not a network problem.
        _ if credentials_cause(&e).is_some() => credentials_error_ref(credentials_cause(&e).expect("checked")),
        SdkError::TimeoutError(_) => FetchError::Unreachable { service, detail: "timed out".into() },
        SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => FetchError::Unreachable { service, detail: one_line(&e) },
        _ => FetchError::BadAnswer(format!("{service}: {}", one_line(&e))),
    }
}

/// The credentials failure somewhere in an error's chain of causes, if any.
fn credentials_cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a CredentialsError> {
    let mut next = Some(e);
    while let Some(err) = next {
        if let Some(c) = err.downcast_ref::<CredentialsError>() {
            return Some(c);
        }
        next = err.source();
    }
    None
}

/// The `AWS_ENDPOINT_URL*` override in force for this variant's token service, if any.
/// It is part of the cache key so a test endpoint's tokens never serve real AWS.
pub fn endpoint_override(variant: EndpointVariant) -> Option<String> {
    let specific = if variant == EndpointVariant::Public { "AWS_ENDPOINT_URL_ECR_PUBLIC" } else { "AWS_ENDPOINT_URL_ECR" };
    [specific, "AWS_ENDPOINT_URL"].iter().filter_map(|v| std::env::var(v).ok()).map(|v| v.trim().to_string()).find(|v| !v.is_empty())
}

/// FIPS and dual-stack flags for the ECR client. The registry's own form decides, overriding
/// `AWS_USE_FIPS_ENDPOINT` and friends; an `AWS_ENDPOINT_URL*` override decides instead (the
/// SDK refuses FIPS or dual-stack together with a custom endpoint).
pub fn endpoint_flags(variant: EndpointVariant, has_override: bool) -> (bool, bool) {
    if has_override {
        (false, false)
    } else {
        (variant.fips(), variant.dual_stack())
    }
}

/// Time limits for every AWS call we make: a docker pull waits on us, so a stalled endpoint
/// must turn into an error in seconds (ECR answers token requests in well under one).
fn timeouts() -> aws_config::timeout::TimeoutConfig {
    aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(4))
        .operation_timeout(Duration::from_secs(12))
        .build()
}

/// The start of every SDK configuration we load: latest behaviour, the region, our time
/// limits, and the process's one HTTP client.
fn loader(region: &str) -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new(region.to_string()))
        .timeout_config(timeouts())
        .http_client(shared_http_client())
}

/// One HTTP client (TLS configuration, root certificates, connection pools) for every SDK
/// configuration and service client of the process. Left to itself the SDK builds one per
/// service client, which in the broker means one per identity and refresh: megabytes each.
/// This is the SDK's own default connector (rustls with aws-lc, proxy settings from the
/// environment), built once.
fn shared_http_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    use aws_smithy_http_client::{proxy::ProxyConfig, tls, Builder, ConnectorBuilder};
    static CLIENT: std::sync::OnceLock<aws_smithy_runtime_api::client::http::SharedHttpClient> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            Builder::new().build_with_connector_fn(|settings, components| {
                let mut conn = ConnectorBuilder::default().tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc));
                conn.set_connector_settings(settings.cloned());
                if let Some(c) = components {
                    conn.set_sleep_impl(c.sleep_impl());
                }
                conn.set_proxy_config(Some(ProxyConfig::from_env()));
                conn.build()
            })
        })
        .clone()
}

/// What is worth sharing between SDK configurations of one process: the default-chain
/// configuration of each region, and one `ProviderConfig` (environment, file system, the
/// shared HTTP client) that every profile's provider is built from. The parse of the AWS
/// config files is not kept: see [`ProfileOnDemand`].
#[derive(Default)]
struct Shared {
    bases: std::collections::HashMap<String, SdkConfig>,
    profiles: Option<aws_config::provider_config::ProviderConfig>,
}

fn shared() -> &'static std::sync::Mutex<Shared> {
    static SHARED: std::sync::OnceLock<std::sync::Mutex<Shared>> = std::sync::OnceLock::new();
    SHARED.get_or_init(Default::default)
}

/// Forget the shared configurations (the broker's SIGHUP), so edited AWS config files and
/// profiles are read again.
pub fn forget_loaded_config() {
    *shared().lock().unwrap() = Shared::default();
}

/// The default-chain configuration for `region`, loaded once per process.
async fn base_config(region: &str) -> SdkConfig {
    if let Some(c) = shared().lock().unwrap().bases.get(region) {
        return c.clone();
    }
    let c = loader(region).load().await;
    shared().lock().unwrap().bases.insert(region.to_string(), c.clone());
    c
}

fn profile_provider_config(region: &str) -> aws_config::provider_config::ProviderConfig {
    let mut s = shared().lock().unwrap();
    let pc =
        s.profiles.get_or_insert_with(|| aws_config::provider_config::ProviderConfig::default().with_http_client(shared_http_client()));
    // with_region keeps the cached parse.
    pc.clone().with_region(Some(Region::new(region.to_string())))
}

/// A profile's credentials, read through aws-config's own profile provider each time the SDK's
/// credential cache above it asks (when the cached credentials near their expiry), and then
/// dropped. A provider kept alive keeps its own parse of the AWS config files, and naming a
/// profile makes aws-config parse them again for that provider: a broker holding 1,000
/// profile identities over files listing 1,000 profiles held 1,000 parses (885 MiB). Built on
/// demand, at most the fetches in flight hold one each.
#[derive(Debug)]
struct ProfileOnDemand {
    profile: String,
    region: String,
}

impl ProvideCredentials for ProfileOnDemand {
    fn provide_credentials<'a>(&'a self) -> aws_credential_types::provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        aws_credential_types::provider::future::ProvideCredentials::new(async move {
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .configure(&profile_provider_config(&self.region))
                .profile_name(&self.profile)
                .build()
                .provide_credentials()
                .await
        })
    }
}

/// Load the SDK configuration for `region` with `identity`'s credentials.
pub async fn sdk_config(region: &str, identity: &Identity) -> SdkConfig {
    let mut base = base_config(region).await;
    if let Some(p) = &identity.profile {
        // The profile itself is the credential source: a profile name on the default chain
        // would still take AWS_ACCESS_KEY_ID from the environment first.
        let credentials = ProfileOnDemand { profile: p.clone(), region: region.to_string() };
        base =
            base.into_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(credentials)).build();
    }
    let Some(role) = &identity.role else { return base };
    let mut provider = aws_config::sts::AssumeRoleProvider::builder(&role.role_arn)
        .configure(&base)
        .session_name(role.session_name.clone().unwrap_or_else(|| "ecr-cred".into()));
    if let Some(x) = &role.external_id {
        provider = provider.external_id(x);
    }
    if let Some(d) = role.duration_secs {
        provider = provider.session_length(Duration::from_secs(d as u64));
    }
    let provider = provider.build().await;
    base.into_builder().credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(provider)).build()
}

/// The credentials the configuration resolves to: access key id and expiry (Unix seconds).
pub struct ResolvedCredentials {
    pub access_key_id: String,
    pub expires_at: Option<i64>,
}

pub async fn resolve_credentials(cfg: &SdkConfig) -> Result<ResolvedCredentials, FetchError> {
    let provider = cfg.credentials_provider().ok_or_else(|| FetchError::Credentials("no credential provider is configured".into()))?;
    let creds = provider.provide_credentials().await.map_err(credentials_error)?;
    let expires_at = creds.expiry().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs() as i64);
    Ok(ResolvedCredentials { access_key_id: creds.access_key_id().to_string(), expires_at })
}

/// The profile whose credentials `identity` uses: its own, else `AWS_PROFILE` (or
/// `AWS_DEFAULT_PROFILE`) when the default chain would read a profile at all (no keys in the
/// environment).
pub fn profile_in_use(identity: &Identity) -> Option<String> {
    if identity.profile.is_some() {
        return identity.profile.clone();
    }
    if std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty()) {
        return None;
    }
    ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(|v| v.trim().to_string())
        .find(|v| !v.is_empty())
}

/// After credentials could not be had: if a named profile is in use, say what is wrong with
/// it (absent from the config files; an SSO profile whose session expired), else keep `err`.
/// Only called on failure, so a working setup never parses the files twice.
pub async fn explain_profile_error(identity: &Identity, err: FetchError) -> FetchError {
    let FetchError::Credentials(detail) = &err else { return err };
    let Some(name) = profile_in_use(identity) else { return err };
    let files = aws_runtime::env_config::file::EnvConfigFiles::default();
    let fs = aws_types::os_shim_internal::Fs::real();
    let env = aws_types::os_shim_internal::Env::real();
    let config_file = std::env::var("AWS_CONFIG_FILE").unwrap_or_else(|_| "~/.aws/config".into());
    let profiles = match aws_config::profile::load(&fs, &env, &files, None).await {
        Ok(p) => p,
        Err(e) => return FetchError::Profile(format!("profile {name}: cannot read the AWS config files: {}", one_line(&e))),
    };
    let Some(profile) = profiles.get_profile(&name) else {
        return FetchError::Profile(format!(
            "profile {name} not found in {config_file} (nor in the credentials file): check AWS_PROFILE and the rules of the ecr-cred config"
        ));
    };
    if profile.get("sso_session").is_some() || profile.get("sso_start_url").is_some() {
        return FetchError::Profile(format!(
            "the SSO session of profile {name} has expired or was never started: run `aws sso login --profile {name}` ({detail})"
        ));
    }
    err
}

/// The principal's ARN, from STS GetCallerIdentity.
pub async fn caller_arn(cfg: &SdkConfig) -> Result<String, FetchError> {
    let sts = aws_sdk_sts::Client::new(cfg);
    let out = sts.get_caller_identity().send().await.map_err(|e| sdk_error("STS", e))?;
    out.arn().map(str::to_string).ok_or_else(|| FetchError::BadAnswer("STS GetCallerIdentity returned no ARN".into()))
}

/// The 12-digit account of the default chain's credentials in `region` (STS
/// GetCallerIdentity): "my own registry", as `aws ecr get-login-password` means it.
pub async fn own_account(region: &str) -> Result<String, FetchError> {
    let cfg = sdk_config(region, &Identity::default()).await;
    let sts = aws_sdk_sts::Client::new(&cfg);
    let out = sts.get_caller_identity().send().await.map_err(|e| sdk_error("STS", e))?;
    out.account()
        .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        .map(str::to_string)
        .ok_or_else(|| FetchError::BadAnswer("STS GetCallerIdentity returned no account id".into()))
}

/// A plain HTTP(S) GET with the SDK's own connector (rustls, the system's or `SSL_CERT_FILE`'s
/// root certificates, proxy settings from the environment): status and at most `max_bytes`
/// of body, within `timeout`. For small side requests such as a CI job's OIDC token.
pub async fn http_get(url: &str, headers: &[(&str, &str)], max_bytes: usize, timeout: Duration) -> Result<(u16, Vec<u8>), String> {
    use aws_smithy_http_client::{proxy::ProxyConfig, tls, ConnectorBuilder};
    use aws_smithy_runtime_api::client::http::HttpConnector;
    let mut req = aws_smithy_runtime_api::http::Request::get(url).map_err(|e| format!("bad URL: {e}"))?;
    for (k, v) in headers {
        req.headers_mut().try_insert(k.to_string(), v.to_string()).map_err(|e| format!("bad header {k}: {e}"))?;
    }
    let connector = ConnectorBuilder::default()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .proxy_config(ProxyConfig::from_env())
        .build();
    let exchange = async {
        let resp = connector.call(req).await.map_err(|e| one_line(&e))?;
        let status = resp.status().as_u16();
        let mut body = aws_smithy_types::byte_stream::ByteStream::new(resp.into_body());
        let mut out = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| one_line(&e))?;
            if out.len() + chunk.len() > max_bytes {
                return Err(format!("the answer is larger than {max_bytes} bytes"));
            }
            out.extend_from_slice(&chunk);
        }
        Ok((status, out))
    };
    tokio::time::timeout(timeout, exchange).await.map_err(|_| format!("no answer within {} s", timeout.as_secs()))?
}

/// Fetch a new authorization token for `registry` from ECR (or ECR Public).
pub async fn fetch_token(cfg: &SdkConfig, registry: &RegistryHost) -> Result<Token, FetchError> {
    let (b64, proxy, expires) = if registry.variant == EndpointVariant::Public {
        let conf = aws_sdk_ecrpublic::config::Builder::from(cfg).region(Region::new("us-east-1")).build();
        let out =
            aws_sdk_ecrpublic::Client::from_conf(conf).get_authorization_token().send().await.map_err(|e| sdk_error("ECR Public", e))?;
        let data = out.authorization_data().ok_or_else(|| FetchError::BadAnswer("ECR Public returned no authorization data".into()))?;
        (data.authorization_token().map(str::to_string), None, data.expires_at().map(|t| t.secs()))
    } else {
        let (fips, dual_stack) = endpoint_flags(registry.variant, endpoint_override(registry.variant).is_some());
        let conf = aws_sdk_ecr::config::Builder::from(cfg).use_fips(fips).use_dual_stack(dual_stack).build();
        let out = aws_sdk_ecr::Client::from_conf(conf).get_authorization_token().send().await.map_err(|e| sdk_error("ECR", e))?;
        let data = out.authorization_data().first().ok_or_else(|| FetchError::BadAnswer("ECR returned no authorization data".into()))?;
        (data.authorization_token().map(str::to_string), data.proxy_endpoint().map(str::to_string), data.expires_at().map(|t| t.secs()))
    };
    let now = now_unix();
    let b64 = b64.ok_or_else(|| FetchError::BadAnswer("ECR returned no authorization token".into()))?;
    // ECR always sends an expiry; if it did not, assume the documented 12 hours.
    let expires = expires.unwrap_or(now + 12 * 3600);
    Token::from_authorization(&b64, proxy, now, expires).map_err(|e| FetchError::BadAnswer(e.to_string()))
}

/// Temporary credentials from STS (AssumeRoleWithWebIdentity). `Debug` never shows the secrets.
#[derive(Clone, PartialEq, Eq)]
pub struct TemporaryCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    /// Unix seconds.
    pub expires_at: Option<i64>,
}

impl fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field("session_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// STS AssumeRoleWithWebIdentity in `region` with `web_identity_token` (e.g. a Kubernetes
/// service account token). The call is unsigned: no other credentials are loaded or used.
pub async fn assume_role_with_web_identity(
    region: &str,
    role_arn: &str,
    session_name: &str,
    web_identity_token: &str,
) -> Result<TemporaryCredentials, FetchError> {
    assume_role_with_web_identity_for(region, role_arn, session_name, web_identity_token, None).await
}

/// [`assume_role_with_web_identity`] asking for a session of `duration_secs` (STS's default,
/// one hour, when `None`).
pub async fn assume_role_with_web_identity_for(
    region: &str,
    role_arn: &str,
    session_name: &str,
    web_identity_token: &str,
    duration_secs: Option<u32>,
) -> Result<TemporaryCredentials, FetchError> {
    let cfg = loader(region).no_credentials().load().await;
    let out = aws_sdk_sts::Client::new(&cfg)
        .assume_role_with_web_identity()
        .role_arn(role_arn)
        .role_session_name(session_name)
        .web_identity_token(web_identity_token)
        .set_duration_seconds(duration_secs.map(|d| d as i32))
        .send()
        .await
        .map_err(|e| match sdk_error("STS", e) {
            FetchError::Service { service, code, message, .. } => {
                let hint = match code.as_str() {
                    "AccessDenied" | "AccessDeniedException" => "the role's trust policy must allow sts:AssumeRoleWithWebIdentity for this service account through the cluster's OIDC provider",
                    "InvalidIdentityToken" | "IDPRejectedClaim" => "STS did not accept the service account token: check the IAM OIDC provider and the token audience (tokenAttributes.serviceAccountTokenAudience)",
                    "ExpiredTokenException" | "ExpiredToken" => "the service account token has expired",
                    c if is_throttle(c) => "AWS is throttling STS requests; try again shortly",
                    _ => "",
                };
                FetchError::Service { service, code, message, hint }
            }
            other => other,
        })?;
    let c = out.credentials().ok_or_else(|| FetchError::BadAnswer("STS AssumeRoleWithWebIdentity returned no credentials".into()))?;
    Ok(TemporaryCredentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string(),
        session_token: c.session_token().to_string(),
        expires_at: Some(c.expiration().secs()),
    })
}

/// The SDK configuration for `region` signing with exactly these temporary credentials
/// (endpoint overrides and the rest still come from the environment, as in [`sdk_config`]).
pub async fn sdk_config_with_credentials(region: &str, creds: &TemporaryCredentials) -> SdkConfig {
    let expiry = creds.expires_at.and_then(|t| u64::try_from(t).ok()).map(|t| std::time::UNIX_EPOCH + Duration::from_secs(t));
    let credentials = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.clone(),
        Some(creds.session_token.clone()),
        expiry,
        "web-identity",
    );
    loader(region).credentials_provider(credentials).load().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_ecr::config::endpoint::{DefaultResolver, Params, ResolveEndpoint};

    fn ecr_endpoint(host: &str) -> String {
        let r = RegistryHost::parse(host).unwrap();
        let (fips, dual_stack) = endpoint_flags(r.variant, false);
        let params = Params::builder().region(r.region.clone()).use_fips(fips).use_dual_stack(dual_stack).build().unwrap();
        let ep = block_on(DefaultResolver::new().resolve_endpoint(&params)).unwrap();
        ep.url().to_string()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
    }

    #[test]
    fn throttling_codes_are_throttling_and_transient_other_codes_are_not_throttling() {
        let service = |code: &str| FetchError::Service { service: "ECR", code: code.into(), message: String::new(), hint: "" };
        for code in ["ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"] {
            assert!(service(code).is_throttling() && service(code).is_transient(), "{code}");
        }
        for e in
            [service("AccessDeniedException"), service("ServerException"), FetchError::Unreachable { service: "ECR", detail: "x".into() }]
        {
            assert!(!e.is_throttling(), "{e}");
        }
    }

    #[test]
    fn each_registry_form_reaches_its_own_api_endpoint() {
        let cases = [
            ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "https://api.ecr.us-east-1.amazonaws.com"),
            ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "https://api.ecr-fips.us-gov-west-1.amazonaws.com"),
            ("123456789012.dkr.ecr-fips.us-east-1.amazonaws.com", "https://api.ecr-fips.us-east-1.amazonaws.com"),
            ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "https://api.ecr.cn-north-1.amazonaws.com.cn"),
            ("123456789012.dkr-ecr.eu-west-1.on.aws", "https://ecr.eu-west-1.api.aws"),
            ("123456789012.dkr-ecr-fips.us-east-1.on.aws", "https://ecr-fips.us-east-1.api.aws"),
        ];
        let got: Vec<(String, String)> = cases.iter().map(|(h, _)| (h.to_string(), ecr_endpoint(h))).collect();
        let want: Vec<(String, String)> = cases.iter().map(|(h, e)| (h.to_string(), e.to_string())).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn an_endpoint_override_turns_the_variant_flags_off() {
        assert_eq!(endpoint_flags(EndpointVariant::Fips, true), (false, false));
        assert_eq!(endpoint_flags(EndpointVariant::DualStackFips, false), (true, true));
    }
}
