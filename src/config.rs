//! The TOML configuration shared by the broker and the helper: identities, the rules that map
//! registries to an identity and say who may ask, what to prefetch, and where the socket and
//! state file live.
//!
//! ```toml
//! allow_gids = [998]                 # may ask for every registry (root and our own uid always may)
//! prefetch = ["123456789012.dkr.ecr.us-east-1.amazonaws.com"]
//!
//! [identities.prod]                  # "default" (the default chain) always exists
//! profile = "prod"                   # optional: a profile instead of the default chain
//! role_arn = "arn:aws:iam::210987654321:role/EcrPull"   # optional: assumed with those credentials
//!
//! [[rules]]                          # the first rule whose `registry` matches decides
//! registry = "210987654321.*"        # "*", "public", "ACCOUNT", "ACCOUNT.REGION", "*.REGION"
//! identity = "prod"
//! allow_uids = [1000]
//! ```

use crate::aws::{AssumeRole, Identity};
use crate::registry::{EndpointVariant, RegistryHost};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Socket path (the command line's `--socket` wins).
    pub socket: Option<PathBuf>,
    /// Socket file mode, octal text: "0660" (system) / "0600" (user) by default.
    pub socket_mode: Option<String>,
    /// Group owning the socket (name or number).
    pub socket_group: Option<String>,
    /// Where tokens are kept across restarts.
    pub state_file: Option<PathBuf>,
    /// Users and groups that may ask for any registry.
    #[serde(default)]
    pub allow_uids: Vec<u32>,
    #[serde(default)]
    pub allow_gids: Vec<u32>,
    /// Registries fetched at start and kept fresh whether or not anyone asks.
    #[serde(default)]
    pub prefetch: Vec<String>,
    #[serde(default)]
    pub identities: BTreeMap<String, IdentityConfig>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
    pub duration_seconds: Option<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub registry: String,
    #[serde(default = "default_identity")]
    pub identity: String,
    #[serde(default)]
    pub allow_uids: Vec<u32>,
    #[serde(default)]
    pub allow_gids: Vec<u32>,
}

fn default_identity() -> String {
    DEFAULT_IDENTITY.to_string()
}

pub const DEFAULT_IDENTITY: &str = "default";

/// The caller, from SO_PEERCRED.
#[derive(Debug, Clone, Copy)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub pid: Option<i32>,
}

/// What the policy says about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Allow { identity: String },
    Deny { reason: String },
}

impl Config {
    /// Read and check a config file. A missing file is an empty config (the default chain for
    /// every registry, for root and the daemon's own user).
    pub fn load(path: &Path, must_exist: bool) -> Result<Config, String> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => return Ok(Config::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let config: Config = toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.to_string().trim()))?;
        config.check().map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(config)
    }

    fn check(&self) -> Result<(), String> {
        for rule in &self.rules {
            if RegistryPattern::parse(&rule.registry).is_none() {
                return Err(format!(
                    "rule registry {:?} is not \"*\", \"public\", \"ACCOUNT\", \"ACCOUNT.REGION\" or \"*.REGION\"",
                    rule.registry
                ));
            }
            if rule.identity != DEFAULT_IDENTITY && !self.identities.contains_key(&rule.identity) {
                return Err(format!(
                    "rule for {:?} names identity {:?}, which is not defined under [identities]",
                    rule.registry, rule.identity
                ));
            }
        }
        for host in &self.prefetch {
            if RegistryHost::parse(host).is_none() {
                return Err(format!("prefetch entry {host:?} is not an ECR registry"));
            }
        }
        if let Some(mode) = &self.socket_mode {
            parse_mode(mode)?;
        }
        Ok(())
    }

    /// The identity `name` as the AWS layer wants it.
    pub fn identity(&self, name: &str) -> Option<Identity> {
        match self.identities.get(name) {
            Some(c) => Some(Identity {
                profile: c.profile.clone(),
                role: c.role_arn.as_ref().map(|arn| AssumeRole {
                    role_arn: arn.clone(),
                    external_id: c.external_id.clone(),
                    session_name: c.session_name.clone().or_else(|| Some("ecr-broker".into())),
                    duration_secs: c.duration_seconds,
                }),
            }),
            None if name == DEFAULT_IDENTITY => Some(Identity::default()),
            None => None,
        }
    }

    /// All identity names, "default" included.
    pub fn identity_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.identities.keys().cloned().collect();
        if !names.iter().any(|n| n == DEFAULT_IDENTITY) {
            names.insert(0, DEFAULT_IDENTITY.to_string());
        }
        names
    }

    /// The first rule whose pattern matches `registry`.
    fn rule_for(&self, registry: &RegistryHost) -> Option<&Rule> {
        self.rules.iter().find(|r| RegistryPattern::parse(&r.registry).is_some_and(|p| p.matches(registry)))
    }

    /// The identity that serves `registry`, whoever asks.
    pub fn identity_for(&self, registry: &RegistryHost) -> String {
        self.rule_for(registry).map(|r| r.identity.clone()).unwrap_or_else(default_identity)
    }

    /// Which identity serves `registry` for `caller`, or why not. `own_uid` is the daemon's
    /// user; `groups` lists the caller's groups (asked only when a group could matter).
    pub fn decide(&self, registry: &RegistryHost, caller: Caller, own_uid: u32, groups: impl FnOnce() -> Vec<u32>) -> Decision {
        let rule = self.rule_for(registry);
        let identity = self.identity_for(registry);
        let uids = self.allow_uids.iter().chain(rule.map(|r| r.allow_uids.as_slice()).unwrap_or_default());
        let mut gids = self.allow_gids.iter().chain(rule.map(|r| r.allow_gids.as_slice()).unwrap_or_default()).peekable();
        let allowed = caller.uid == 0
            || caller.uid == own_uid
            || uids.clone().any(|u| *u == caller.uid)
            || (gids.peek().is_some() && {
                let mut caller_groups = groups();
                caller_groups.push(caller.gid);
                gids.any(|g| caller_groups.contains(g))
            });
        if allowed {
            Decision::Allow { identity }
        } else {
            let which = match rule {
                Some(r) => format!("the rule for {:?}", r.registry),
                None => "no rule".to_string(),
            };
            Decision::Deny {
                reason: format!(
                    "uid {} may not get tokens for {}: {} allows it (see allow_uids/allow_gids in the broker config)",
                    caller.uid, registry.host, which
                ),
            }
        }
    }
}

/// The user's configuration file, shared by the helper and a user broker:
/// `$XDG_CONFIG_HOME/ecr-cred/config.toml`, else `~/.config/ecr-cred/config.toml`.
pub fn user_config_path() -> Option<PathBuf> {
    user_config_home().map(|d| d.join("ecr-cred/config.toml"))
}

/// Where a user broker read its configuration before `ecr-cred/config.toml` existed:
/// `$XDG_CONFIG_HOME/ecr-broker/config.toml`; still read when the new file is absent.
pub fn legacy_user_config_path() -> Option<PathBuf> {
    user_config_home().map(|d| d.join("ecr-broker/config.toml"))
}

fn user_config_home() -> Option<PathBuf> {
    match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from).filter(|p| p.is_absolute()) {
        Some(d) => Some(d),
        None => crate::paths::home_dir().map(|h| h.join(".config")),
    }
}

/// Larger user config files are refused (a real one is a few hundred bytes).
const MAX_USER_CONFIG_BYTES: u64 = 1 << 20;

impl Config {
    /// The user's configuration file for the helper, if there is one: `Ok(None)` when absent.
    /// Only a regular file is read (never blocks on a FIFO or device), at most 1 MiB.
    pub fn load_user(path: &Path) -> Result<Option<Config>, String> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let meta = file.metadata().map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if !meta.is_file() {
            return Err(format!("{} is not a regular file", path.display()));
        }
        if meta.len() > MAX_USER_CONFIG_BYTES {
            return Err(format!("{} is larger than {MAX_USER_CONFIG_BYTES} bytes", path.display()));
        }
        let mut text = String::new();
        file.take(MAX_USER_CONFIG_BYTES + 1).read_to_string(&mut text).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Config::parse(&text).map(Some).map_err(|e| format!("{}: {e}", path.display()))
    }

    /// Parse and check a config's text.
    pub fn parse(text: &str) -> Result<Config, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.to_string().trim().to_string())?;
        config.check()?;
        Ok(config)
    }

    /// The identity that serves `registry`, by name and as the AWS layer wants it.
    pub fn route(&self, registry: &RegistryHost) -> (String, Identity) {
        let name = self.identity_for(registry);
        let identity = self.identity(&name).unwrap_or_default();
        (name, identity)
    }
}

/// `"0660"` -> 0o660.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text.trim_start_matches("0o"), 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("socket_mode {text:?} is not an octal mode like \"0660\""))
}

/// A rule's `registry` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RegistryPattern {
    Any,
    Public,
    Private { account: Option<String>, region: Option<String> },
}

impl RegistryPattern {
    fn parse(text: &str) -> Option<RegistryPattern> {
        let text = text.trim();
        if text == "*" {
            return Some(RegistryPattern::Any);
        }
        if text == "public" {
            return Some(RegistryPattern::Public);
        }
        let (account, region) = match text.split_once('.') {
            Some((a, r)) => (a, Some(r)),
            None => (text, None),
        };
        let account = match account {
            "*" => None,
            a if a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()) => Some(a.to_string()),
            _ => return None,
        };
        let region = match region {
            None | Some("*") => None,
            Some(r) if crate::registry::valid_region(r) => Some(r.to_string()),
            Some(_) => return None,
        };
        Some(RegistryPattern::Private { account, region })
    }

    fn matches(&self, r: &RegistryHost) -> bool {
        match self {
            RegistryPattern::Any => true,
            RegistryPattern::Public => r.variant == EndpointVariant::Public,
            RegistryPattern::Private { account, region } => {
                r.variant != EndpointVariant::Public
                    && account.as_ref().is_none_or(|a| r.account.as_ref() == Some(a))
                    && region.as_ref().is_none_or(|g| &r.region == g)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
allow_gids = [500]
[identities.prod]
role_arn = "arn:aws:iam::210987654321:role/EcrPull"
[[rules]]
registry = "210987654321.*"
identity = "prod"
allow_uids = [1000]
[[rules]]
registry = "public"
allow_uids = [1001]
"#;

    fn reg(h: &str) -> RegistryHost {
        RegistryHost::parse(h).unwrap()
    }

    fn caller(uid: u32) -> Caller {
        Caller { uid, gid: uid, pid: None }
    }

    #[test]
    fn rules_pick_the_identity_and_the_allowed_users() {
        let c: Config = toml::from_str(CONFIG).unwrap();
        c.check().unwrap();
        let prod = reg("210987654321.dkr.ecr.eu-west-1.amazonaws.com");
        let other = reg("123456789012.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(c.decide(&prod, caller(1000), 999, Vec::new), Decision::Allow { identity: "prod".into() });
        assert!(matches!(c.decide(&other, caller(1000), 999, Vec::new), Decision::Deny { .. }), "uid 1000 only for prod");
        assert_eq!(c.decide(&other, caller(0), 999, Vec::new), Decision::Allow { identity: "default".into() });
        assert_eq!(c.decide(&other, caller(999), 999, Vec::new), Decision::Allow { identity: "default".into() }, "own uid");
        assert_eq!(c.decide(&other, caller(2000), 999, || vec![500]), Decision::Allow { identity: "default".into() }, "global group");
        assert!(matches!(c.decide(&reg("public.ecr.aws"), caller(1000), 999, Vec::new), Decision::Deny { .. }));
        assert!(matches!(c.decide(&reg("public.ecr.aws"), caller(1001), 999, Vec::new), Decision::Allow { .. }));
    }

    #[test]
    fn a_refusal_says_who_and_why_without_secrets() {
        let c = Config::default();
        match c.decide(&reg("123456789012.dkr.ecr.us-east-1.amazonaws.com"), caller(4242), 0, Vec::new) {
            Decision::Deny { reason } => {
                assert!(reason.contains("uid 4242"));
                assert!(reason.contains("123456789012.dkr.ecr.us-east-1.amazonaws.com"));
            }
            d => panic!("{d:?}"),
        }
    }

    #[test]
    fn bad_configs_are_refused_with_the_reason() {
        for (text, want) in [
            ("[[rules]]\nregistry = \"12345\"\n", "is not"),
            ("[[rules]]\nregistry = \"*\"\nidentity = \"nope\"\n", "not defined"),
            ("prefetch = [\"docker.io\"]\n", "not an ECR registry"),
            ("socket_mode = \"rw\"\n", "octal"),
            ("unknown_key = 1\n", "unknown field"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("c.toml");
            std::fs::write(&p, text).unwrap();
            let err = Config::load(&p, true).unwrap_err();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn identities_become_aws_identities() {
        let c: Config = toml::from_str(CONFIG).unwrap();
        assert_eq!(c.identity("default"), Some(Identity::default()));
        assert_eq!(c.identity("prod").unwrap().role.unwrap().role_arn, "arn:aws:iam::210987654321:role/EcrPull");
        assert_eq!(c.identity("missing"), None);
        assert_eq!(c.identity_names(), vec!["default".to_string(), "prod".to_string()]);
    }
}
