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
