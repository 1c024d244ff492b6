//! The TOML configuration shared by the broker and the helper: identities and who may use
//! each, the rules that route registries to an identity, what to prefetch, where the socket
//! and state file live, and the broker's resource bounds.
//!
//! Who may use a token is a property of the identity, never of a registry pattern: an ECR
//! token is the token of a principal in a region and opens every registry that principal may
//! read there, whichever registry it was asked for.
//!
//! ```toml
//! allow_gids = [998]                 # may use every identity (root and our own uid always may)
//! prefetch = ["123456789012.dkr.ecr.us-east-1.amazonaws.com"]
//!
//! [identities.prod]                  # "default" (the default chain) always exists
//! profile = "prod"                   # optional: a profile instead of the default chain
//! role_arn = "arn:aws:iam::210987654321:role/EcrPull"   # optional: assumed with those credentials
//! allow_uids = [1000]                # who else may use this identity's tokens
//!
//! [[rules]]                          # the first rule whose `registry` matches routes it
//! registry = "210987654321.*"        # "*", "public", "ACCOUNT", "ACCOUNT.REGION", "*.REGION"
//! identity = "prod"
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
    /// Users and groups that may use every identity.
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
    /// Seconds a connection may take to send its request headers, and may stay idle between
    /// requests (default 5).
    pub header_timeout_secs: Option<u64>,
    /// Open connections, all callers together (default 1024, at most the fd limit allows).
    pub max_connections: Option<usize>,
    /// Open connections one uid may hold (default 64; root and the broker's own uid: only
    /// `max_connections`).
    pub max_connections_per_uid: Option<usize>,
    /// Token slots (identity x region x endpoint) held at once; the least recently used idle
    /// slot makes room (default 256).
    pub max_slots: Option<usize>,
    /// Registry names remembered per slot for status and refresh (default 64).
    pub max_registries_per_slot: Option<usize>,
    /// `"ADDR:PORT"`: also serve `/metrics` and `/healthz` over TCP (for Prometheus). Never a
    /// token: every other path answers 404 there. Read at start (a change needs a restart).
    pub metrics_listen: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    pub profile: Option<String>,
    pub role_arn: Option<String>,
    pub external_id: Option<String>,
    pub session_name: Option<String>,
    pub duration_seconds: Option<u32>,
    /// Users and groups that may use this identity (besides the top-level lists, root and the
    /// broker's own uid).
    #[serde(default)]
    pub allow_uids: Vec<u32>,
    #[serde(default)]
    pub allow_gids: Vec<u32>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub registry: String,
    #[serde(default = "default_identity")]
    pub identity: String,
    /// No longer allowed here (a config error that says where the list belongs now); read
    /// only to give that error.
    #[serde(default)]
    pub allow_uids: Option<Vec<u32>>,
    #[serde(default)]
    pub allow_gids: Option<Vec<u32>>,
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
        // Read as the user file is: a regular file only (a FIFO is never waited on), bounded.
        match Config::load_user(path)? {
            Some(config) => Ok(config),
            None if !must_exist => Ok(Config::default()),
            None => Err(format!("cannot read {}: no such file", path.display())),
        }
    }

    fn check(&self) -> Result<(), String> {
        for rule in &self.rules {
            if RegistryPattern::parse(&rule.registry).is_none() {
                return Err(format!(
                    "rule registry {:?} is not \"*\", \"public\", \"ACCOUNT\", \"ACCOUNT.REGION\" or \"*.REGION\"",
                    rule.registry
                ));
            }
            for (key, present) in [("allow_uids", rule.allow_uids.is_some()), ("allow_gids", rule.allow_gids.is_some())] {
                if present {
                    return Err(format!(
                        "the rule for {:?} has {key}, but rules only route a registry to an identity now: move the list to \
                         [identities.{}] {key} (or to the top-level {key} for every identity). An ECR token opens every \
                         registry its principal may read in that region, so who may use it is set per identity; \
                         separate teams need separate identities (roles)",
                        rule.registry, rule.identity
                    ));
                }
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
        if let Some(addr) = &self.metrics_listen {
            addr.parse::<std::net::SocketAddr>()
                .map_err(|_| format!("metrics_listen {addr:?} is not ADDR:PORT (e.g. \"127.0.0.1:9464\" or \"[::]:9464\")"))?;
        }
        for (key, value) in [
            ("header_timeout_secs", self.header_timeout_secs.map(|v| v as usize)),
            ("max_connections", self.max_connections),
            ("max_connections_per_uid", self.max_connections_per_uid),
            ("max_slots", self.max_slots),
            ("max_registries_per_slot", self.max_registries_per_slot),
        ] {
            if value == Some(0) {
                return Err(format!("{key} must be at least 1"));
            }
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

    /// How long a connection may take to send its headers or stay idle between requests.
    pub fn header_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.header_timeout_secs.unwrap_or(5))
    }

    /// Open connections allowed, all callers together.
    pub fn max_connections(&self) -> usize {
        self.max_connections.unwrap_or(1024)
    }

    /// Open connections one uid may hold.
    pub fn max_connections_per_uid(&self) -> usize {
        self.max_connections_per_uid.unwrap_or(64)
    }

    /// Token slots held at once.
    pub fn max_slots(&self) -> usize {
        self.max_slots.unwrap_or(256)
    }

    /// Registry names remembered per slot.
    pub fn max_registries_per_slot(&self) -> usize {
        self.max_registries_per_slot.unwrap_or(64)
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

    /// Whether `caller` may use the identity `name`: root and `own_uid` (the daemon's user)
    /// always, others if a top-level or the identity's own `allow_uids`/`allow_gids` names
    /// them. `groups` lists the caller's groups (asked only when a group could matter).
    pub fn may_use(&self, name: &str, caller: Caller, own_uid: u32, groups: impl FnOnce() -> Vec<u32>) -> bool {
        if caller.uid == 0 || caller.uid == own_uid {
            return true;
        }
        let own = self.identities.get(name);
        let mut uids = self.allow_uids.iter().chain(own.map(|i| i.allow_uids.as_slice()).unwrap_or_default());
        if uids.any(|u| *u == caller.uid) {
            return true;
        }
        let mut gids = self.allow_gids.iter().chain(own.map(|i| i.allow_gids.as_slice()).unwrap_or_default()).peekable();
        gids.peek().is_some() && {
            let mut caller_groups = groups();
            caller_groups.push(caller.gid);
            gids.any(|g| caller_groups.contains(g))
        }
    }

    /// Whether `caller` may use at least one identity: callers who may not are refused
    /// everything but `/healthz`.
    pub fn may_use_any(&self, caller: Caller, own_uid: u32, groups: impl Fn() -> Vec<u32>) -> bool {
        self.identity_names().iter().any(|name| self.may_use(name, caller, own_uid, &groups))
    }

    /// Which identity serves `registry` for `caller`, or why not. `own_uid` is the daemon's
    /// user; `groups` lists the caller's groups (asked only when a group could matter).
    pub fn decide(&self, registry: &RegistryHost, caller: Caller, own_uid: u32, groups: impl FnOnce() -> Vec<u32>) -> Decision {
        let identity = self.identity_for(registry);
        if self.may_use(&identity, caller, own_uid, groups) {
            return Decision::Allow { identity };
        }
        Decision::Deny {
            reason: format!(
                "uid {} may not get tokens for {}: it is served by identity {:?}, which uid {} may not use \
                 (see allow_uids/allow_gids under [identities.{}] or at the top of the broker config)",
                caller.uid, registry.host, identity, caller.uid, identity
            ),
        }
    }
}

/// The user's configuration file (see [`crate::paths::user_config_file`]).
pub fn user_config_path() -> Option<PathBuf> {
    crate::paths::user_config_file()
}

/// Where a user broker read its configuration before `ecr-cred/config.toml` existed; still
/// read when the new file is absent (see [`crate::paths::legacy_user_config_file`]).
pub fn legacy_user_config_path() -> Option<PathBuf> {
    crate::paths::legacy_user_config_file()
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
allow_uids = [1000]
[identities.public]
allow_uids = [1001]
[[rules]]
registry = "210987654321.*"
identity = "prod"
[[rules]]
registry = "public"
identity = "public"
"#;

    fn reg(h: &str) -> RegistryHost {
        RegistryHost::parse(h).unwrap()
    }

    fn caller(uid: u32) -> Caller {
        Caller { uid, gid: uid, pid: None }
    }

    #[test]
    fn rules_route_and_identities_say_who_may_use_them() {
        let c: Config = toml::from_str(CONFIG).unwrap();
        c.check().unwrap();
        let prod = reg("210987654321.dkr.ecr.eu-west-1.amazonaws.com");
        let other = reg("123456789012.dkr.ecr.eu-west-1.amazonaws.com");
        assert_eq!(c.decide(&prod, caller(1000), 999, Vec::new), Decision::Allow { identity: "prod".into() });
        assert!(matches!(c.decide(&other, caller(1000), 999, Vec::new), Decision::Deny { .. }), "uid 1000 only for prod");
        assert_eq!(c.decide(&other, caller(0), 999, Vec::new), Decision::Allow { identity: "default".into() });
        assert_eq!(c.decide(&other, caller(999), 999, Vec::new), Decision::Allow { identity: "default".into() }, "own uid");
        assert_eq!(c.decide(&other, caller(2000), 999, || vec![500]), Decision::Allow { identity: "default".into() }, "global group");
        assert_eq!(
            c.decide(&prod, caller(2000), 999, || vec![500]),
            Decision::Allow { identity: "prod".into() },
            "global = every identity"
        );
        assert!(matches!(c.decide(&reg("public.ecr.aws"), caller(1000), 999, Vec::new), Decision::Deny { .. }));
        assert!(matches!(c.decide(&reg("public.ecr.aws"), caller(1001), 999, Vec::new), Decision::Allow { .. }));
        assert!(c.may_use_any(caller(1000), 999, Vec::new));
        assert!(!c.may_use_any(caller(4242), 999, Vec::new), "no identity names uid 4242");
        assert!(c.may_use_any(caller(4242), 999, || vec![500]));
    }

    #[test]
    fn an_allow_list_on_a_rule_is_refused_and_the_error_says_where_it_belongs() {
        for key in ["allow_uids", "allow_gids"] {
            let text = format!(
                "[identities.prod]\nprofile = \"p\"\n[[rules]]\nregistry = \"210987654321\"\nidentity = \"prod\"\n{key} = [1000]\n"
            );
            let c: Config = toml::from_str(&text).unwrap();
            let err = c.check().unwrap_err();
            assert!(err.contains(&format!("[identities.prod] {key}")), "{err}");
            assert!(err.contains("210987654321"), "{err}");
        }
    }

    #[test]
    fn a_refusal_says_who_and_why_without_secrets() {
        let c = Config::default();
        match c.decide(&reg("123456789012.dkr.ecr.us-east-1.amazonaws.com"), caller(4242), 0, Vec::new) {
            Decision::Deny { reason } => {
                assert!(reason.contains("uid 4242"));
                assert!(reason.contains("identity \"default\", which uid 4242 may not use"), "{reason}");
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
        assert_eq!(c.identity_names(), vec!["default".to_string(), "prod".to_string(), "public".to_string()]);
    }
}
