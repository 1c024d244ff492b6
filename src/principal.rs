//! Principals: who a token belongs to, and how to tell that without asking AWS. (The
//! configured identities that fetch tokens are [`crate::config`]'s.)
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
use std::ffi::OsString;
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
        Self::from_vars(|name| std::env::var_os(name), extra)
    }

    /// [`CredentialSource::from_env`] with the environment given as a lookup (tests pass their own).
    fn from_vars(var: impl Fn(&str) -> Option<OsString>, extra: &[(&str, &str)]) -> CredentialSource {
        let mut h = Sha256::new();
        h.update(b"ecr-cred source v1\0");
        h.update(crate::sys::euid().to_le_bytes());
        for name in STEERING_VARS {
            if let Some(v) = var(name) {
                h.update(name.as_bytes());
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
        for path in aws_files(&var) {
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
        let pinned = var("AWS_ACCESS_KEY_ID").is_some_and(|v| !v.is_empty()) && var("AWS_SECRET_ACCESS_KEY").is_some_and(|v| !v.is_empty());
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
fn aws_files(var: impl Fn(&str) -> Option<OsString>) -> [PathBuf; 2] {
    let home = crate::paths::home_dir().unwrap_or_default();
    let config = var("AWS_CONFIG_FILE").map(PathBuf::from).unwrap_or_else(|| home.join(".aws/config"));
    let creds = var("AWS_SHARED_CREDENTIALS_FILE").map(PathBuf::from).unwrap_or_else(|| home.join(".aws/credentials"));
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

    /// A source read from exactly these variables and extra inputs; the AWS files are in `dir`.
    fn source_with(dir: &std::path::Path, vars: &[(&str, &str)], extra: &[(&str, &str)]) -> CredentialSource {
        let config = dir.join("config").into_os_string();
        let creds = dir.join("credentials").into_os_string();
        let vars: Vec<(String, OsString)> = vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        CredentialSource::from_vars(
            |name| match name {
                "AWS_CONFIG_FILE" => Some(config.clone()),
                "AWS_SHARED_CREDENTIALS_FILE" => Some(creds.clone()),
                _ => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            },
            extra,
        )
    }

    fn source(dir: &std::path::Path, vars: &[(&str, &str)]) -> CredentialSource {
        source_with(dir, vars, &[])
    }

    #[test]
    fn a_source_is_pinned_only_by_a_non_empty_access_key_id_and_secret_key() {
        let tmp = tempfile::tempdir().unwrap();
        let pinned = |vars: &[(&str, &str)]| source(tmp.path(), vars).pinned;
        assert!(pinned(&[("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "s")]));
        assert!(!pinned(&[("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")]), "an access key id alone");
        assert!(!pinned(&[("AWS_SECRET_ACCESS_KEY", "s")]), "a secret key alone");
        assert!(!pinned(&[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "s")]), "an empty access key id");
        assert!(!pinned(&[("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "")]), "an empty secret key");
        assert!(!pinned(&[("AWS_PROFILE", "dev")]), "a profile");
    }

    #[test]
    fn pinned_sources_are_trusted_7_days_and_others_1_hour() {
        let tmp = tempfile::tempdir().unwrap();
        let keys = source(tmp.path(), &[("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE"), ("AWS_SECRET_ACCESS_KEY", "s")]);
        assert_eq!(keys.ttl(), 604_800);
        assert_eq!(source(tmp.path(), &[]).ttl(), 3_600);
    }

    #[test]
    fn fingerprint_is_stable_hex_and_changes_with_every_steering_variable() {
        let tmp = tempfile::tempdir().unwrap();
        let base = source(tmp.path(), &[]).fingerprint;
        assert_eq!(base.len(), 64);
        assert!(base.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{base}");
        assert_eq!(source(tmp.path(), &[]).fingerprint, base, "same inputs, same fingerprint");
        for name in STEERING_VARS.iter().filter(|n| !["AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"].contains(n)) {
            let a = source(tmp.path(), &[(name, "one")]).fingerprint;
            let b = source(tmp.path(), &[(name, "two")]).fingerprint;
            assert_ne!(a, base, "{name} set");
            assert_ne!(a, b, "{name} changed");
            assert!(!a.contains("one"));
        }
        let secret = source(tmp.path(), &[("AWS_SECRET_ACCESS_KEY", "s")]).fingerprint;
        assert_eq!(secret, base, "the secret key never enters the fingerprint");
    }

    #[test]
    fn fingerprint_changes_with_extra_inputs_and_the_aws_files() {
        let tmp = tempfile::tempdir().unwrap();
        let base = source(tmp.path(), &[]).fingerprint;
        let extra = source_with(tmp.path(), &[], &[("identity", "ci")]);
        assert_ne!(extra.fingerprint, base);
        std::fs::write(tmp.path().join("config"), "[default]\n").unwrap();
        let with_config = source(tmp.path(), &[]).fingerprint;
        assert_ne!(with_config, base, "a config file appeared");
        std::fs::write(tmp.path().join("config"), "[default]\nregion = eu-west-1\n").unwrap();
        assert_ne!(source(tmp.path(), &[]).fingerprint, with_config, "the config file changed");
        std::fs::write(tmp.path().join("credentials"), "[default]\n").unwrap();
        let other = tempfile::tempdir().unwrap();
        assert_ne!(source(other.path(), &[]).fingerprint, source(tmp.path(), &[]).fingerprint, "other paths");
    }

    #[test]
    fn from_env_reads_the_process_environment() {
        let from_env = CredentialSource::from_env(&[("k", "v")]);
        assert_eq!(from_env, CredentialSource::from_vars(|n| std::env::var_os(n), &[("k", "v")]));
    }

    #[test]
    fn hex_writes_two_lower_case_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xf0, 0xff]), "000fa5f0ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn access_key_principal_is_a_stable_128_bit_hash() {
        let p = principal_for_access_key("AKIAIOSFODNN7EXAMPLE");
        assert_eq!(p, principal_for_access_key("AKIAIOSFODNN7EXAMPLE"));
        let digest = p.strip_prefix("key:").expect("key: prefix");
        assert_eq!(digest.len(), 32);
        assert!(digest.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()), "{p}");
        assert_ne!(digest, "0".repeat(32));
    }

    #[test]
    fn principals_are_trimmed_and_a_role_arn_without_session_is_kept() {
        assert_eq!(normalize_principal("  arn:aws:iam::123456789012:user/alice\n"), "arn:aws:iam::123456789012:user/alice");
        assert_eq!(
            normalize_principal("arn:aws:sts::123456789012:assumed-role/OnlyRole"),
            "arn:aws:sts::123456789012:assumed-role/OnlyRole"
        );
    }
}
