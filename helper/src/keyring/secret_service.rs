//! The desktop Secret Service (GNOME Keyring, KWallet) over the session D-Bus, holding other
//! registries' logins exactly as docker's `docker-credential-secretservice` does
//! (docker-credential-helpers, secretservice/secretservice.c): one item per login in the
//! default collection, schema `io.docker.Credentials`, attributes `label` = "Docker
//! Credentials", `server` = the server URL as given, `username`, `docker_cli` = "1", secret the
//! password as text/plain. The item label is the server URL, as docker's helper up to 0.8
//! (Debian's) writes it and as every version's `list` reads it back (0.9 writes "Registry
//! credentials for <server>" but still lists the label as the server). Lookups match `server`
//! and `docker_cli` (and the schema) as docker's do; `list` reads every item labelled "Docker
//! Credentials" from the store itself, keyed by its `server` attribute. So `credsStore` can
//! move between "secretservice" and "ecr" and back and keep every login.

use dbus_secret_service::{EncryptionType, Error, Item, SecretService};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const BUS_NAME: &str = "org.freedesktop.secrets";
/// libsecret stores the schema name as this attribute and matches it on lookups.
const SCHEMA_ATTR: &str = "xdg:schema";
const SCHEMA: &str = "io.docker.Credentials";
/// docker-credential-helpers' `credentials.CredsLabel`.
const CREDS_LABEL: &str = "Docker Credentials";
/// How long an unlock prompt of the desktop may wait for the user.
const PROMPT_SECONDS: u64 = 60;

/// A connected Secret Service.
pub struct Store(SecretService);

/// `Ok(None)`: no session bus, or it offers no Secret Service (use the native store).
/// `Err`: the bus offers one but it cannot be used.
pub fn connect() -> Result<Option<Store>, String> {
    if !offers_secret_service() {
        return Ok(None);
    }
    let ss = SecretService::connect_with_max_prompt_timeout(EncryptionType::Plain, PROMPT_SECONDS).map_err(|e| describe(&e))?;
    Ok(Some(Store(ss)))
}

/// Whether a session bus is reachable and `org.freedesktop.secrets` is running on it or can be
/// started by it. Without `DBUS_SESSION_BUS_ADDRESS` or `$XDG_RUNTIME_DIR/bus` there is no
/// session bus, and libdbus is not asked (it could try to launch one).
fn offers_secret_service() -> bool {
    let address_set = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some_and(|a| !a.is_empty());
    let runtime_bus = std::env::var_os("XDG_RUNTIME_DIR").is_some_and(|d| std::path::Path::new(&d).join("bus").exists());
    if !address_set && !runtime_bus {
        return false;
    }
    let Ok(conn) = dbus::blocking::Connection::new_session() else { return false };
    let bus = conn.with_proxy("org.freedesktop.DBus", "/org/freedesktop/DBus", Duration::from_secs(2));
    let owned: Result<(bool,), _> = bus.method_call("org.freedesktop.DBus", "NameHasOwner", (BUS_NAME,));
    if let Ok((true,)) = owned {
        return true;
    }
    let activatable: Result<(Vec<String>,), _> = bus.method_call("org.freedesktop.DBus", "ListActivatableNames", ());
    activatable.is_ok_and(|(names,)| names.iter().any(|n| n == BUS_NAME))
}

/// A Secret Service error in words; never includes a secret.
fn describe(e: &Error) -> String {
    let what = match e {
        Error::Locked => "the keyring is locked".to_string(),
        Error::Prompt => "the keyring is locked and the unlock prompt was dismissed or timed out".to_string(),
        Error::Dbus(d) => format!("D-Bus error {}: {}", d.name().unwrap_or("?"), d.message().unwrap_or("")),
        other => other.to_string(),
    };
    format!("Secret Service ({BUS_NAME}): {what}")
}

fn lookup(server_url: &str) -> HashMap<&str, &str> {
    HashMap::from([("server", server_url), ("docker_cli", "1"), (SCHEMA_ATTR, SCHEMA)])
}

impl Store {
    /// The items of this server, unlocking (with the desktop's prompt) those that are locked,
    /// as docker's helper does.
    fn items(&self, server_url: &str) -> Result<Vec<Item<'_>>, String> {
        let found = self.0.search_items(lookup(server_url)).map_err(|e| describe(&e))?;
        let mut items = found.unlocked;
        if !found.locked.is_empty() {
            self.0.unlock_all(&found.locked.iter().collect::<Vec<_>>()).map_err(|e| describe(&e))?;
            items.extend(found.locked);
        }
        Ok(items)
    }

    pub fn store(&self, server_url: &str, username: &str, secret: &str) -> Result<(), String> {
        let collection = match self.0.get_default_collection() {
            Ok(c) => c,
            Err(Error::NoResult) => self.0.create_collection("Default keyring", "default").map_err(|e| describe(&e))?,
            Err(e) => return Err(describe(&e)),
        };
        collection.ensure_unlocked().map_err(|e| describe(&e))?;
        let attributes = HashMap::from([
            ("label", CREDS_LABEL),
            ("server", server_url),
            ("username", username),
            ("docker_cli", "1"),
            (SCHEMA_ATTR, SCHEMA),
        ]);
        // `replace` swaps an item with the same attributes (same server and user name).
        let new = collection.create_item(server_url, attributes, secret.as_bytes(), true, "text/plain").map_err(|e| describe(&e))?;
        // A login for the same server under another user name is replaced too, but only once
        // the new one is in, so a failure never loses the old login.
        for item in self.items(server_url)? {
            if !item.equal_to(&new).unwrap_or(true) {
                item.delete().map_err(|e| describe(&e))?;
            }
        }
        Ok(())
    }

    pub fn get(&self, server_url: &str) -> Result<Option<(String, String)>, String> {
        let Some(item) = self.items(server_url)?.into_iter().next() else { return Ok(None) };
        let secret = item.get_secret().map_err(|e| describe(&e))?;
        let secret = String::from_utf8(secret).map_err(|_| format!("the Secret Service item for {server_url} is not text"))?;
        let username = item.get_attributes().map_err(|e| describe(&e))?.remove("username").unwrap_or_default();
        Ok(Some((username, secret)))
    }

    pub fn erase(&self, server_url: &str) -> Result<bool, String> {
        let items = self.items(server_url)?;
        for item in &items {
            item.delete().map_err(|e| describe(&e))?;
        }
        Ok(!items.is_empty())
    }

    /// Every docker login in the store (unlocked collections; locked ones are named on stderr).
    pub fn list(&self) -> Result<BTreeMap<String, String>, String> {
        let found = self.0.search_items(HashMap::from([("label", CREDS_LABEL)])).map_err(|e| describe(&e))?;
        if !found.locked.is_empty() {
            eprintln!("docker-credential-ecr: {} login(s) in a locked keyring are not listed; unlock it to see them", found.locked.len());
        }
        let mut logins = BTreeMap::new();
        for item in found.unlocked {
            let mut attributes = item.get_attributes().map_err(|e| describe(&e))?;
            let Some(server) = attributes.remove("server") else { continue };
            logins.insert(server, attributes.remove("username").unwrap_or_default());
        }
        Ok(logins)
    }
}
