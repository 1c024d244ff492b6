//! The state file: tokens kept across restarts (0600, replaced atomically), so a restarted
//! broker serves at once without calling AWS. On load every entry is checked: expired tokens,
//! identities that are gone or changed, and tokens from another endpoint are dropped.
//! The file is opened without following links or blocking (a FIFO there is refused, not
//! waited on), and its folder must be ours and closed to other writers ([`safe_fs`]).

use crate::store::{SlotKey, TokenStore};
use ecr_cred::aws::{endpoint_override, Identity};
use ecr_cred::config::Config;
use ecr_cred::principal::hex;
use ecr_cred::registry::EndpointVariant;
use ecr_cred::safe_fs::{self, read_private, write_private};
use ecr_cred::token::Token;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeSet;
use std::path::Path;

const VERSION: u32 = 1;
// The identity digest's form changed once (from `Debug` output to `stable_form`): a state
// file from before is read, its digests do not match, and its tokens are fetched again once.

#[derive(Serialize, Deserialize)]
struct StateFile {
    version: u32,
    entries: Vec<Entry>,
}

#[derive(Serialize, Deserialize)]
struct Entry {
    identity: String,
    /// A digest of the identity's configuration: a changed identity drops its tokens.
    identity_digest: String,
    region: String,
    variant: String,
    endpoint: Option<String>,
    principal: Option<String>,
    registries: BTreeSet<String>,
    token: Token,
}

fn identity_digest(config: &Config, name: &str) -> Option<String> {
    let identity = config.identity(name)?;
    Some(hex(&Sha256::digest(stable_form(&identity).as_bytes()))[..32].to_string())
}

/// An identity's configuration written out field by field, so its digest changes only when
/// the configuration does: not with the `Debug` output of a Rust release or a new field of
/// the type. A field that decides which credentials are used must be added here.
fn stable_form(identity: &Identity) -> String {
    let text = |v: Option<&str>| v.map_or_else(|| "-".to_string(), |s| format!("\"{}\"", s.escape_default()));
    let role = identity.role.as_ref();
    [
        format!("profile {}", text(identity.profile.as_deref())),
        format!("role_arn {}", text(role.map(|r| r.role_arn.as_str()))),
        format!("external_id {}", text(role.and_then(|r| r.external_id.as_deref()))),
        format!("session_name {}", text(role.and_then(|r| r.session_name.as_deref()))),
        format!("duration_secs {}", role.and_then(|r| r.duration_secs).map_or_else(|| "-".to_string(), |d| d.to_string())),
    ]
    .join("\n")
}

/// Write every valid token to `path`.
pub fn save(path: &Path, store: &TokenStore, config: &Config) -> std::io::Result<usize> {
    let now = store.clock().now_secs();
    let mut entries = Vec::new();
    for slot in store.snapshots() {
        let (Some(token), Some(digest)) = (slot.token.filter(|t| t.is_valid(now)), identity_digest(config, &slot.key.identity)) else {
            continue;
        };
        entries.push(Entry {
            identity_digest: digest,
            region: slot.key.region,
            variant: slot.key.variant.as_str().to_string(),
            endpoint: endpoint_override(slot.key.variant),
            identity: slot.key.identity,
            principal: slot.principal,
            registries: slot.registries,
            token,
        });
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        safe_fs::private_dir(dir).map_err(|why| std::io::Error::other(format!("state folder {}: {why}", dir.display())))?;
    }
    let n = entries.len();
    let text = serde_json::to_vec(&StateFile { version: VERSION, entries }).expect("state serializes");
    write_private(path, &text)?;
    Ok(n)
}

/// Load the tokens still worth keeping into `store`; a bad file is a warning, never fatal.
pub fn load(path: &Path, store: &TokenStore, config: &Config) -> usize {
    let text = match read_private(path, 16 << 20) {
        Ok(Some(t)) => t,
        Ok(None) => return 0,
        Err(why) => {
            tracing::warn!(file = %path.display(), "ignoring state file: {why}");
            return 0;
        }
    };
    let state: StateFile = match serde_json::from_str(&text) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(file = %path.display(), "ignoring state file: not valid ({e})");
            return 0;
        }
    };
    if state.version != VERSION {
        tracing::warn!(file = %path.display(), "ignoring state file of version {}", state.version);
        return 0;
    }
    let now = store.clock().now_secs();
    let mut loaded = 0;
    for e in state.entries {
        let Some(variant) = EndpointVariant::from_str_opt(&e.variant) else { continue };
        let keep = e.token.is_valid(now)
            && identity_digest(config, &e.identity).as_deref() == Some(e.identity_digest.as_str())
            && endpoint_override(variant) == e.endpoint;
        if keep && store.restore(SlotKey { identity: e.identity, region: e.region, variant }, e.token, e.principal, e.registries) {
            loaded += 1;
        }
    }
    loaded
}

#[cfg(test)]
mod tests {
    use super::*;
    use ecr_cred::aws::AssumeRole;

    fn role(arn: &str) -> Identity {
        Identity {
            profile: Some("ci".into()),
            role: Some(AssumeRole { role_arn: arn.into(), external_id: None, session_name: Some("s".into()), duration_secs: Some(900) }),
        }
    }

    #[test]
    fn the_identity_form_is_written_field_by_field() {
        assert_eq!(
            stable_form(&role("arn:aws:iam::111122223333:role/pull")),
            "profile \"ci\"\nrole_arn \"arn:aws:iam::111122223333:role/pull\"\nexternal_id -\nsession_name \"s\"\nduration_secs 900"
        );
        assert_eq!(stable_form(&Identity::default()), "profile -\nrole_arn -\nexternal_id -\nsession_name -\nduration_secs -");
    }

    #[test]
    fn every_field_that_picks_credentials_changes_the_form() {
        let base = role("arn:aws:iam::111122223333:role/pull");
        let mut changed = vec![role("arn:aws:iam::111122223333:role/push"), Identity { profile: None, ..base.clone() }];
        for f in [
            |r: &mut AssumeRole| r.external_id = Some("x".into()),
            |r: &mut AssumeRole| r.session_name = None,
            |r: &mut AssumeRole| r.duration_secs = Some(3600),
        ] {
            let mut i = base.clone();
            f(i.role.as_mut().unwrap());
            changed.push(i);
        }
        for c in changed {
            assert_ne!(stable_form(&c), stable_form(&base), "{c:?}");
        }
        // A value cannot pose as another field: quotes and newlines are escaped.
        let tricky = Identity { profile: Some("ci\"\nrole_arn \"x".into()), role: None };
        assert_eq!(stable_form(&tricky).lines().count(), 5);
    }
}
