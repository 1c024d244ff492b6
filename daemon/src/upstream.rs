//! The AWS implementation of [`Fetch`]: a token from ECR or ECR Public with the identity the
//! configuration names for the slot.
//!
//! SDK configurations are built once per identity and region and kept, so the credential
//! provider's own cache (assumed-role sessions, SSO, instance metadata) is reused between
//! refreshes; they share one HTTP client, and a profile's provider is built only while its
//! credentials are resolved (`ecr_cred::aws`, so 1,000 profile identities do not keep 1,000
//! parses of the AWS config files). A new
//! configuration (a reload) starts the cache again, so edited AWS config files and profiles
//! take effect. STS GetCallerIdentity runs beside the token call to learn the principal for
//! `/v1/status`; its failure does not matter.

use crate::fetch::{BoxFuture, Fetch, FetchError, Fetched, SlotKey};
use ecr_cred::aws::{self, Identity};
use ecr_cred::config::Config;
use ecr_cred::registry::RegistryHost;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

/// The configuration in force, shared with its owner ([`crate::broker::Broker`]).
pub type SharedConfig = Arc<RwLock<Arc<Config>>>;

type SdkCache = HashMap<(Identity, String), aws_config::SdkConfig>;

pub struct AwsFetch {
    config: SharedConfig,
    /// SDK configurations, and the configuration they were built under.
    sdk: Mutex<(Option<Arc<Config>>, SdkCache)>,
}

impl AwsFetch {
    pub fn new(config: SharedConfig) -> AwsFetch {
        AwsFetch { config, sdk: Mutex::new((None, HashMap::new())) }
    }

    async fn fetch_token(&self, key: &SlotKey, registry: &RegistryHost) -> Result<Fetched, FetchError> {
        let config = self.config.read().unwrap().clone();
        let identity = config
            .identity(&key.identity)
            .ok_or_else(|| FetchError::Credentials(format!("identity {:?} is not configured", key.identity)))?;
        let cached = {
            let mut sdk = self.sdk.lock().unwrap();
            if !sdk.0.as_ref().is_some_and(|c| Arc::ptr_eq(c, &config)) {
                // A reload since: build every SDK configuration again, from re-read files.
                if sdk.0.is_some() {
                    aws::forget_loaded_config();
                }
                *sdk = (Some(config.clone()), HashMap::new());
            }
            sdk.1.get(&(identity.clone(), key.region.clone())).cloned()
        };
        let cfg = match cached {
            Some(c) => c,
            None => {
                let c = aws::sdk_config(&key.region, &identity).await;
                let mut sdk = self.sdk.lock().unwrap();
                if sdk.0.as_ref().is_some_and(|c| Arc::ptr_eq(c, &config)) {
                    sdk.1.insert((identity.clone(), key.region.clone()), c.clone());
                }
                c
            }
        };
        let (token, arn) = tokio::join!(aws::fetch_token(&cfg, registry), aws::caller_arn(&cfg));
        Ok(Fetched { token: token?, principal: arn.ok().map(|a| ecr_cred::principal::normalize_principal(&a)) })
    }
}

impl Fetch for AwsFetch {
    fn fetch<'a>(&'a self, key: &'a SlotKey, registry: &'a RegistryHost) -> BoxFuture<'a, Result<Fetched, FetchError>> {
        Box::pin(self.fetch_token(key, registry))
    }
}
