//! Upstream: fetch a token from AWS for a slot, with the identity the config names.
//!
//! SDK configurations are built once per identity and region and kept, so the credential
//! provider's own cache (assumed-role sessions, SSO, instance metadata) is reused between
//! refreshes; they share one HTTP client and one parse of the AWS config files. STS GetCallerIdentity runs beside the token call to learn the principal for
//! `/v1/status`; its failure does not matter.

use crate::tokens::SlotKey;
use ecr_cred::aws::{self, FetchError, Identity};
use ecr_cred::config::Config;
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::Token;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

pub struct Upstream {
    config: RwLock<Arc<Config>>,
    sdk: Mutex<HashMap<(Identity, String), aws_config::SdkConfig>>,
}

impl Upstream {
    pub fn new(config: Arc<Config>) -> Upstream {
        Upstream { config: RwLock::new(config), sdk: Mutex::new(HashMap::new()) }
    }

    /// Use a new configuration (SIGHUP). SDK configurations are built again on next use, so
    /// edited AWS config files and profiles take effect too; held tokens are not touched.
    pub fn set_config(&self, config: Arc<Config>) {
        *self.config.write().unwrap() = config;
        self.sdk.lock().unwrap().clear();
        aws::forget_loaded_config();
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().unwrap().clone()
    }

    pub async fn fetch(&self, key: &SlotKey, registry: &RegistryHost) -> Result<(Token, Option<String>), FetchError> {
        let identity = self
            .config()
            .identity(&key.identity)
            .ok_or_else(|| FetchError::Credentials(format!("identity {:?} is not configured", key.identity)))?;
        let cached = self.sdk.lock().unwrap().get(&(identity.clone(), key.region.clone())).cloned();
        let cfg = match cached {
            Some(c) => c,
            None => {
                let c = aws::sdk_config(&key.region, &identity).await;
                self.sdk.lock().unwrap().insert((identity.clone(), key.region.clone()), c.clone());
                c
            }
        };
        let (token, arn) = tokio::join!(aws::fetch_token(&cfg, registry), aws::caller_arn(&cfg));
        Ok((token?, arn.ok().map(|a| ecr_cred::principal::normalize_principal(&a))))
    }
}
