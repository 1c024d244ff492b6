//! Credentials for registries that are not ECR, when this helper is a user's only store
//! (`"credsStore": "ecr"`), kept in an OS store and never in a file. This module only picks
//! the store:
//!
//! - Linux with a session D-Bus that offers the Secret Service (`org.freedesktop.secrets`:
//!   GNOME Keyring, KWallet): [`secret_service`], items written exactly as docker's own
//!   `docker-credential-secretservice` writes them, so each helper reads the other's logins.
//! - Otherwise (servers, CI, no session bus; macOS): [`native`], the `keyring` crate's store
//!   (the kernel keyring on Linux, the login Keychain on macOS), with a side index for `list`
//!   ([`index`]).

mod index;
mod native;
#[cfg(target_os = "linux")]
mod secret_service;

use std::collections::BTreeMap;

pub fn store(server_url: &str, username: &str, secret: &str) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    if let Some(ss) = secret_service::connect()? {
        return ss.store(server_url, username, secret);
    }
    native::store(server_url, username, secret)
}

/// `Ok(None)`: nothing stored for this server.
pub fn get(server_url: &str) -> Result<Option<(String, String)>, String> {
    #[cfg(target_os = "linux")]
    if let Some(ss) = secret_service::connect()? {
        return ss.get(server_url);
    }
    native::get(server_url)
}

/// `Ok(false)`: nothing was stored.
pub fn erase(server_url: &str) -> Result<bool, String> {
    #[cfg(target_os = "linux")]
    if let Some(ss) = secret_service::connect()? {
        return ss.erase(server_url);
    }
    native::erase(server_url)
}

/// Server URL -> user name of what is stored.
pub fn list() -> Result<BTreeMap<String, String>, String> {
    #[cfg(target_os = "linux")]
    if let Some(ss) = secret_service::connect()? {
        return ss.list();
    }
    Ok(native::list())
}

/// The OS keyring as the protocol's store for registries that are not ECR.
pub struct OsKeyring;

impl crate::protocol::Store for OsKeyring {
    /// A keyring that cannot answer is "nothing here" (clients then pull anonymously), with the
    /// reason logged so that is not a mystery.
    fn get(&self, server_url: &str) -> Result<Option<crate::protocol::Login>, String> {
        match get(server_url) {
            Ok(found) => Ok(found.map(|(username, secret)| crate::protocol::Login { username, secret })),
            Err(e) => {
                tracing::warn!("keyring lookup for {server_url} failed: {e}; answering \"{}\"", crate::protocol::NOT_FOUND);
                Ok(None)
            }
        }
    }

    fn store(&self, server_url: &str, login: &crate::protocol::Login) -> Result<(), String> {
        store(server_url, &login.username, &login.secret)
    }

    fn erase(&self, server_url: &str) -> Result<bool, String> {
        erase(server_url)
    }

    fn list(&self) -> Result<BTreeMap<String, String>, String> {
        list()
    }
}
