//! A kubelet `CredentialProviderRequest` (credentialprovider.kubelet.k8s.io/v1), parsed and
//! answered at library level.
//!
//! helper/src/kubelet.rs is not implemented yet (and is in the binary crate), so the request
//! shape is defined here, mirroring the Kubernetes API: `apiVersion`, `kind`, `image`, and
//! the optional `serviceAccountToken` / `serviceAccountAnnotations` of newer kubelets. The
//! image's registry goes through `RegistryHost::parse`; for an ECR image a
//! `CredentialProviderResponse` is built, serialized and read back. When kubelet.rs lands,
//! point this target at its types (they would need to move into the library).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[path = "common.rs"]
mod common;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct CredentialProviderRequest {
    api_version: String,
    kind: String,
    image: String,
    #[serde(default)]
    service_account_token: Option<String>,
    #[serde(default)]
    service_account_annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
#[serde(rename_all = "camelCase")]
struct CredentialProviderResponse {
    api_version: String,
    kind: String,
    cache_key_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    cache_duration: Option<String>,
    auth: BTreeMap<String, AuthConfig>,
}

#[derive(Serialize, Deserialize, PartialEq, Debug)]
struct AuthConfig {
    username: String,
    password: String,
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 64 * 1024 {
        return;
    }
    let Ok(req) = serde_json::from_slice::<CredentialProviderRequest>(data) else { return };
    if req.kind != "CredentialProviderRequest" || !req.api_version.starts_with("credentialprovider.kubelet.k8s.io/") {
        return;
    }
    // An image reference: [scheme://]host[:port]/path[:tag][@digest]; the parser takes the host.
    let Some(registry) = common::parse_and_check(&req.image) else { return };
    let response = CredentialProviderResponse {
        api_version: req.api_version.clone(),
        kind: "CredentialProviderResponse".into(),
        cache_key_type: "Registry".into(),
        cache_duration: Some("6h0m0s".into()),
        auth: BTreeMap::from([(registry.host.clone(), AuthConfig { username: "AWS".into(), password: "x".into() })]),
    };
    let text = serde_json::to_string(&response).expect("response serializes");
    let back: CredentialProviderResponse = serde_json::from_str(&text).expect("response parses back");
    assert_eq!(back, response);
});
