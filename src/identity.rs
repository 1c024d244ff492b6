//! Identities: who a token belongs to, and how to tell that without asking AWS.
//!
//! A token is cached under the AWS *principal* that fetched it (an IAM user, or a role, whatever
//! its session), so rotating temporary credentials of the same role keep hitting the cache and
//! another principal never gets this one's token.
//!
//! Finding the principal takes a network call (STS GetCallerIdentity), far too slow for every
//! `get`. So the cache also remembers which principal a [`CredentialSource`] resolved to: a
//! fingerprint of everything on this machine that decides which credentials the AWS default
//! chain picks (the `AWS_*` variables that steer it, the access key id in use, the paths,
//! sizes and modification times of `~/.aws/config` and `~/.aws/credentials`). Change any of
//! them (another profile, new keys, an edited config) and the fingerprint changes, so the
//! principal is looked up again. Sources that hide the identity behind a server (instance
//! metadata, a credential_process) are re-checked at least hourly.

use sha2::{Digest, Sha256};
use std::path::PathBuf;

/// Environment variables that steer the default credential chain or where its calls go.
/// Their values enter the fingerprint (hashed, never stored).
const STEERING_VARS: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_ROLE_ARN",
    "AWS_ROLE_SESSION_NAME",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_EC2_METADATA_DISABLED",
    "AWS_EC2_METADATA_SERVICE_ENDPOINT",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_STS",
    "AWS_ENDPOINT_URL_ECR",
    "AWS_ENDPOINT_URL_ECR_PUBLIC",
    "AWS_ECR_ROLE_ARN",
];

/// How long a principal found for a source that does not pin the identity locally (instance
/// metadata, container credentials, SSO, credential_process) is trusted before STS is asked again.
pub const UNPINNED_SOURCE_TTL: i64 = 3600;

/// How long a principal found for an access key id is trusted (an access key id never
/// changes owner; this only bounds how long stale entries live).
pub const PINNED_SOURCE_TTL: i64 = 7 * 24 * 3600;

/// A local fingerprint of where the default chain will take credentials from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialSource {
    /// Hex SHA-256 over the steering inputs: safe to store, reveals nothing.
    pub fingerprint: String,
    /// Whether an access key id in the environment pins the identity exactly.
    pub pinned: bool,
}

impl CredentialSource {
    /// Read the environment and the AWS config files' metadata. Never touches the network.
    pub fn from_env(extra: &[(&str, &str)]) -> CredentialSource {
        let mut h = Sha256::new();
        h.update(b"ecr-cred source v1\0");
        h.update(unsafe { libc::geteuid() }.to_le_bytes());
        for var in STEERING_VARS {
            if let Some(v) = std::env::var_os(var) {
                h.update(var.as_bytes());
                h.update(b"=");
                h.update(v.as_encoded_bytes());
                h.update(b"\0");
            }
        }
        for (k, v) in extra {
            h.update(k.as_bytes());
            h.update(b"=");
            h.update(v.as_bytes());
            h.update(b"\0");
        }
        for path in aws_files() {
            h.update(path.as_os_str().as_encoded_bytes());
            match std::fs::metadata(&path) {
                Ok(m) => {
                    use std::os::unix::fs::MetadataExt;
                    h.update(m.len().to_le_bytes());
                    h.update(m.mtime().to_le_bytes());
                    h.update(m.mtime_nsec().to_le_bytes());
                    h.update(m.ino().to_le_bytes());
                }
                Err(_) => h.update(b"absent"),
            }
            h.update(b"\0");
        }
        let pinned = std::env::var_os("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty())
            && std::env::var_os("AWS_SECRET_ACCESS_KEY").is_some_and(|v| !v.is_empty());
        CredentialSource { fingerprint: hex(&h.finalize()), pinned }
    }

    /// How long the principal found for this source may be trusted.
    pub fn ttl(&self) -> i64 {
        if self.pinned {
            PINNED_SOURCE_TTL
        } else {
            UNPINNED_SOURCE_TTL
        }
    }
}

/// The shared config and credentials files the default chain reads.
fn aws_files() -> [PathBuf; 2] {
    let home = crate::paths::home_dir().unwrap_or_default();
    let config = std::env::var_os("AWS_CONFIG_FILE").map(PathBuf::from).unwrap_or_else(|| home.join(".aws/config"));
    let creds = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).unwrap_or_else(|| home.join(".aws/credentials"));
    [config, creds]
}

/// The principal a token is cached under. Assumed-role sessions of one role are one principal:
/// `arn:aws:sts::1234:assumed-role/Role/session-42` becomes `arn:aws:sts::1234:assumed-role/Role`,
/// so a role whose session name changes at every refresh (SSO, `assume_role` profiles,
/// web identity) keeps its token.
pub fn normalize_principal(arn: &str) -> String {
    let arn = arn.trim();
    if let Some(idx) = arn.find(":assumed-role/") {
        let after = &arn[idx + ":assumed-role/".len()..];
        if let Some((role, _session)) = after.split_once('/') {
            return format!("{}:assumed-role/{}", &arn[..idx], role);
        }
    }
    arn.to_string()
}

/// A principal for credentials whose owner STS could not tell us (STS unreachable from a
/// private subnet, or denied): the access key id, hashed. Exact, but does not survive rotation.
pub fn principal_for_access_key(access_key_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(b"ecr-cred access key v1\0");
    h.update(access_key_id.as_bytes());
    format!("key:{}", &hex(&h.finalize())[..32])
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assumed_role_sessions_of_one_role_are_one_principal() {
        let a = normalize_principal("arn:aws:sts::123456789012:assumed-role/Puller/botocore-session-1");
        let b = normalize_principal("arn:aws:sts::123456789012:assumed-role/Puller/botocore-session-2");
        assert_eq!(a, b);
        assert_eq!(a, "arn:aws:sts::123456789012:assumed-role/Puller");
    }

    #[test]
    fn different_roles_users_and_accounts_stay_apart() {
        let role = normalize_principal("arn:aws:sts::123456789012:assumed-role/Puller/s");
        let other_role = normalize_principal("arn:aws:sts::123456789012:assumed-role/Pusher/s");
        let other_acct = normalize_principal("arn:aws:sts::210987654321:assumed-role/Puller/s");
        let user = normalize_principal("arn:aws:iam::123456789012:user/alice");
        assert_ne!(role, other_role);
        assert_ne!(role, other_acct);
        assert_eq!(user, "arn:aws:iam::123456789012:user/alice");
        assert_eq!(normalize_principal("arn:aws-cn:sts::123456789012:assumed-role/R/s"), "arn:aws-cn:sts::123456789012:assumed-role/R");
    }

    #[test]
    fn access_key_principal_does_not_contain_the_key() {
        let p = principal_for_access_key("AKIAIOSFODNN7EXAMPLE");
        assert!(!p.contains("AKIA"));
        assert_ne!(p, principal_for_access_key("AKIAIOSFODNN7EXAMPLF"));
    }
}
