//! Credentials for registries that are not ECR, when this helper is a user's only store
//! (`"credsStore": "ecr"`): kept in the OS keyring through `keyring` (the kernel keyring on
//! Linux, Keychain on macOS, Credential Manager on Windows), never in a file.
//!
//! The keyring cannot list its entries, so the server URLs and user names (no secrets) are
//! also kept in `keyring-index.json` in the cache folder, for `list`.

use ecr_cred::cache::{read_private, write_private};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const SERVICE: &str = "docker-credential-ecr";
const INDEX: &str = "keyring-index.json";

/// What one keyring entry holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

fn entry(server_url: &str) -> Result<keyring::Entry, String> {
    attach_session_keyring();
    keyring::Entry::new(SERVICE, server_url).map_err(describe)
}

/// A process started outside a login session (CI, cron, a service) has no session keyring,
/// and `keyring`'s kernel store needs one. Asking the kernel for it with "create" attaches the
/// user's own session keyring (`_uid_ses.<uid>`, keyrings(7)), shared by all of the user's
/// processes, so one helper run can read what another stored.
#[cfg(target_os = "linux")]
fn attach_session_keyring() {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    // SAFETY: keyctl(GET_KEYRING_ID) takes two integers and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1 as libc::c_long) };
}

#[cfg(not(target_os = "linux"))]
fn attach_session_keyring() {}

/// A keyring error in words; never includes the secret.
fn describe(e: keyring::Error) -> String {
    match e {
        keyring::Error::NoStorageAccess(_) | keyring::Error::PlatformFailure(_) => {
            format!("no OS keyring is reachable ({e}); nothing was stored (this helper never falls back to a plain file)")
        }
        other => other.to_string(),
    }
}

pub fn store(server_url: &str, username: &str, secret: &str) -> Result<(), String> {
    let value = serde_json::to_string(&Stored { username: username.to_string(), secret: secret.to_string() }).expect("serializes");
    entry(server_url)?.set_password(&value).map_err(describe)?;
    update_index(|i| {
        i.insert(server_url.to_string(), username.to_string());
    });
    Ok(())
}

/// `Ok(None)`: nothing stored for this server.
pub fn get(server_url: &str) -> Result<Option<(String, String)>, String> {
    match entry(server_url)?.get_password() {
        Ok(v) => {
            let s: Stored = serde_json::from_str(&v).map_err(|_| "the keyring entry is not in this helper's format".to_string())?;
            Ok(Some((s.username, s.secret)))
        }
        Err(keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(describe(e)),
    }
}

/// `Ok(false)`: nothing was stored.
pub fn erase(server_url: &str) -> Result<bool, String> {
    let removed = match entry(server_url)?.delete_credential() {
        Ok(()) => true,
        Err(keyring::Error::NoEntry) => false,
        Err(e) => return Err(describe(e)),
    };
    update_index(|i| {
        i.remove(server_url);
    });
    Ok(removed)
}

/// Server URL -> user name of what is stored.
pub fn list() -> BTreeMap<String, String> {
    index_path().and_then(|p| read_private(&p, 1 << 20).ok().flatten()).and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

fn index_path() -> Option<std::path::PathBuf> {
    crate::credentials::open_cache().map(|c| c.dir().join(INDEX))
}

fn update_index(change: impl FnOnce(&mut BTreeMap<String, String>)) {
    let Some(path) = index_path() else { return };
    let mut index = list();
    change(&mut index);
    if let Err(e) = write_private(&path, serde_json::to_string_pretty(&index).expect("serializes").as_bytes()) {
        tracing::warn!("could not update {}: {e}", path.display());
    }
}
