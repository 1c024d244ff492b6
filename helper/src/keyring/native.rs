//! The `keyring` crate's native store: the kernel keyring on Linux (when there is no Secret
//! Service), the login Keychain on macOS. One entry per server URL (service
//! "docker-credential-ecr"), holding `{"Username","Secret"}` as JSON. These stores cannot list
//! their entries, so [`super::index`] keeps the server URLs and user names for `list`.

use super::index;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

const SERVICE: &str = "docker-credential-ecr";

/// What one keyring entry holds.
#[derive(Serialize, Deserialize)]
struct Stored {
    #[serde(rename = "Username")]
    username: String,
    #[serde(rename = "Secret")]
    secret: String,
}

fn entry(server_url: &str) -> Result<::keyring::Entry, String> {
    attach_session_keyring();
    ::keyring::Entry::new(SERVICE, server_url).map_err(describe)
}

/// A process started outside a login session (CI, cron, a service) has no session keyring,
/// and `keyring`'s kernel store needs one. Asking the kernel for it with "create" attaches the
/// user's own session keyring (`_uid_ses.<uid>`, keyrings(7)), shared by all of the user's
/// processes, so one helper run can read what another stored.
#[cfg(target_os = "linux")]
fn attach_session_keyring() {
    ecr_cred::sys::attach_session_keyring();
}

#[cfg(not(target_os = "linux"))]
fn attach_session_keyring() {}

/// A keyring error in words; never includes the secret.
fn describe(e: ::keyring::Error) -> String {
    if let Some(n) = quota_exceeded(&e) {
        let n = n.map(|n| format!(" ({n} bytes)")).unwrap_or_default();
        return format!(
            "the kernel keyring quota{n} is full; nothing was stored (erase logins you no longer need, or raise \
             /proc/sys/kernel/keys/maxbytes)"
        );
    }
    match e {
        ::keyring::Error::NoStorageAccess(_) | ::keyring::Error::PlatformFailure(_) => {
            format!("no OS keyring is reachable ({e}); nothing was stored (this helper never falls back to a plain file)")
        }
        other => other.to_string(),
    }
}

/// `Some(quota in bytes if known)` when the kernel refused a key for the user's quota (EDQUOT).
#[cfg(target_os = "linux")]
fn quota_exceeded(e: &::keyring::Error) -> Option<Option<u64>> {
    let ::keyring::Error::PlatformFailure(inner) = e else { return None };
    match inner.downcast_ref::<linux_keyutils::KeyError>() {
        Some(linux_keyutils::KeyError::QuotaExceeded) => Some(quota_bytes()),
        _ => None,
    }
}

#[cfg(not(target_os = "linux"))]
fn quota_exceeded(_: &::keyring::Error) -> Option<Option<u64>> {
    None
}

/// This user's kernel keyring quota in bytes: its line in /proc/key-users, else the sysctl.
#[cfg(target_os = "linux")]
fn quota_bytes() -> Option<u64> {
    let uid = ecr_cred::sys::uid();
    let from_users = std::fs::read_to_string("/proc/key-users").ok().and_then(|t| quota_in_key_users(&t, uid));
    from_users.or_else(|| {
        let name = if uid == 0 { "root_maxbytes" } else { "maxbytes" };
        std::fs::read_to_string(format!("/proc/sys/kernel/keys/{name}")).ok()?.trim().parse().ok()
    })
}

/// The `maxbytes` of `uid` in /proc/key-users text: lines `uid: usage nkeys/nikeys
/// qnkeys/maxkeys qnbytes/maxbytes`.
#[cfg(target_os = "linux")]
fn quota_in_key_users(text: &str, uid: u32) -> Option<u64> {
    text.lines().find_map(|line| {
        let (who, rest) = line.trim_start().split_once(':')?;
        if who.parse::<u32>().ok()? != uid {
            return None;
        }
        rest.split_whitespace().nth(3)?.split_once('/')?.1.parse().ok()
    })
}

pub fn store(server_url: &str, username: &str, secret: &str) -> Result<(), String> {
    let value = serde_json::to_string(&Stored { username: username.to_string(), secret: secret.to_string() }).expect("serializes");
    entry(server_url)?.set_password(&value).map_err(describe)?;
    index::update(|i| {
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
        Err(::keyring::Error::NoEntry) => Ok(None),
        Err(e) => Err(describe(e)),
    }
}

/// `Ok(false)`: nothing was stored.
pub fn erase(server_url: &str) -> Result<bool, String> {
    let removed = match entry(server_url)?.delete_credential() {
        Ok(()) => true,
        Err(::keyring::Error::NoEntry) => false,
        Err(e) => return Err(describe(e)),
    };
    index::update(|i| {
        i.remove(server_url);
    });
    Ok(removed)
}

/// Server URL -> user name of what is stored.
pub fn list() -> BTreeMap<String, String> {
    index::read()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_quota_is_read_from_the_users_line_of_key_users() {
        let text = "    0:     9 8/8 3/1000000 40/25000000\n 1000:     2 2/2 2/200 1588/20000\n";
        assert_eq!(quota_in_key_users(text, 1000), Some(20000));
        assert_eq!(quota_in_key_users(text, 0), Some(25000000));
        assert_eq!(quota_in_key_users(text, 1001), None);
    }
}
