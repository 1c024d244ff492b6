//! The Docker credential-helper protocol, as docker and containers/image speak it.
//!
//! Each action reads its input from stdin and answers on stdout. Failure is one line on
//! stdout and exit status 1; the exact text `credentials not found in native keychain` means
//! "not a registry I serve", and clients fall back to anonymous access on it, so it is only
//! used for hosts this helper holds nothing for.
//!
//! This module keeps the wire and routes each host to a [`Store`]: ECR registries to the
//! tokens of [`crate::credentials`] (which fetch, never store), every other registry to the
//! OS keyring ([`crate::keyring`]) where they are kept when this helper is a user's
//! `credsStore`. Its tests use a store in memory.

use crate::reply::Reply;
use ecr_cred::registry::RegistryHost;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Read;

/// The text clients recognise as "this helper has nothing for that server".
pub const NOT_FOUND: &str = "credentials not found in native keychain";

/// No server URL or credentials record is larger than this.
pub const MAX_INPUT: u64 = 64 * 1024;

/// A failed action: the line to print and the exit status.
#[derive(Debug)]
pub struct Failure(pub String);

impl Failure {
    pub fn new(msg: impl Into<String>) -> Failure {
        Failure(msg.into())
    }
}

/// What `get` answers.
#[derive(Serialize)]
struct Credentials<'a> {
    #[serde(rename = "ServerURL")]
    server_url: &'a str,
    #[serde(rename = "Username")]
    username: &'a str,
    #[serde(rename = "Secret")]
    secret: &'a str,
}

/// What `store` receives.
#[derive(Deserialize)]
struct StoreRequest {
    #[serde(rename = "ServerURL")]
    server_url: String,
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Read all of stdin, refusing more than [`MAX_INPUT`] bytes and anything that is not UTF-8.
pub fn read_stdin() -> Result<String, Failure> {
    let mut buf = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(|e| Failure::new(format!("cannot read standard input: {e}")))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(Failure::new(format!("input is larger than {MAX_INPUT} bytes; expected a registry server URL")));
    }
    String::from_utf8(buf).map_err(|_| Failure::new("input is not valid UTF-8; expected a registry server URL"))
}

/// A login as the protocol carries it (no `Debug`: it holds a secret).
pub struct Login {
    pub username: String,
    pub secret: String,
}

/// Where one kind of registry's credentials live: ECR tokens ([`crate::credentials::EcrTokens`])
/// or the OS keyring ([`crate::keyring::OsKeyring`]). Errors are one line, never a secret.
pub trait Store {
    /// `Ok(None)`: nothing for this server.
    fn get(&self, server_url: &str) -> Result<Option<Login>, String>;
    fn store(&self, server_url: &str, login: &Login) -> Result<(), String>;
    /// `Ok(false)`: nothing was stored for this server.
    fn erase(&self, server_url: &str) -> Result<bool, String>;
    /// Server URL -> user name, for `list`.
    fn list(&self) -> Result<BTreeMap<String, String>, String>;
}

/// The stores a host is routed to: ECR registries to `ecr`, every other host to `keyring`.
pub struct Stores<'a> {
    pub ecr: &'a dyn Store,
    pub keyring: &'a dyn Store,
}

impl Stores<'_> {
    fn for_server(&self, server_url: &str) -> &dyn Store {
        if RegistryHost::parse(server_url).is_some() {
            self.ecr
        } else {
            self.keyring
        }
    }
}

/// `get`: the server URL on stdin, the credentials as JSON on stdout.
pub fn get(input: &str, stores: &Stores) -> Result<String, Failure> {
    let server_url = input.trim();
    if server_url.is_empty() {
        return Err(Failure::new("no credentials server URL"));
    }
    match stores.for_server(server_url).get(server_url) {
        Ok(Some(login)) => {
            let body = Credentials { server_url, username: &login.username, secret: &login.secret };
            Ok(serde_json::to_string(&body).expect("credentials serialize"))
        }
        Ok(None) => Err(Failure::new(NOT_FOUND)),
        Err(e) => Err(Failure::new(e)),
    }
}

/// Whether `store`/`erase` for every registry is accepted without doing anything, as
/// `AWS_ECR_IGNORE_CREDS_STORAGE` asks (as with the Go helper). ECR registries' own store
/// accepts and keeps nothing anyway: their credentials are always fetched fresh, so
/// `docker login` and `docker logout` work.
fn storage_ignored() -> bool {
    ecr_cred::paths::env_flag("AWS_ECR_IGNORE_CREDS_STORAGE")
}

/// `store`: JSON credentials on stdin, kept by the server's store.
pub fn store(input: &str, stores: &Stores) -> Result<String, Failure> {
    let req: StoreRequest = serde_json::from_str(input.trim())
        .map_err(|_| Failure::new("store expects JSON credentials {\"ServerURL\",\"Username\",\"Secret\"} on standard input"))?;
    let server_url = req.server_url.trim();
    if server_url.is_empty() {
        return Err(Failure::new("no credentials server URL"));
    }
    if storage_ignored() {
        return Ok(String::new());
    }
    let login = Login { username: req.username, secret: req.secret };
    stores.for_server(server_url).store(server_url, &login).map_err(|e| Failure::new(format!("store {server_url}: {e}")))?;
    Ok(String::new())
}

/// `erase`: the server URL on stdin; its credentials are taken out of its store. Cached ECR
/// tokens stay: they are the AWS identity's, not the login's.
pub fn erase(input: &str, stores: &Stores) -> Result<String, Failure> {
    let server_url = input.trim();
    if server_url.is_empty() {
        return Err(Failure::new("no credentials server URL"));
    }
    if storage_ignored() {
        return Ok(String::new());
    }
    match stores.for_server(server_url).erase(server_url) {
        Ok(true) => Ok(String::new()),
        Ok(false) => Err(Failure::new(NOT_FOUND)),
        Err(e) => Err(Failure::new(format!("erase {server_url}: {e}"))),
    }
}

/// `list`: the other registries stored in the keyring with their user names, and the ECR
/// registries this user has asked for or configured, `{"https://host":"AWS"}`.
pub fn list(stores: &Stores) -> Result<String, Failure> {
    let mut map = stores.keyring.list().map_err(|e| Failure::new(format!("list: {e}")))?;
    map.extend(stores.ecr.list().map_err(|e| Failure::new(format!("list: {e}")))?);
    let map: serde_json::Map<String, serde_json::Value> =
        map.into_iter().map(|(url, user)| (url, serde_json::Value::String(user))).collect();
    Ok(serde_json::Value::Object(map).to_string())
}

/// One action's reply: its answer on stdout and exit 0, or its failure on stdout and exit 1.
pub fn respond(result: Result<String, Failure>) -> Reply {
    match result {
        Ok(text) if text.is_empty() => Reply::out(""),
        Ok(text) => Reply::out(text + "\n"),
        Err(Failure(msg)) => Reply { code: 1, ..Reply::out(msg + "\n") },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// A store in memory (docker-credential-helpers' `memoryStore`): what the protocol puts in
    /// is what it gets back; `fail` makes every call fail with that reason.
    #[derive(Default)]
    struct MemoryStore {
        logins: RefCell<BTreeMap<String, (String, String)>>,
        fail: Option<&'static str>,
    }

    impl Store for MemoryStore {
        fn get(&self, server_url: &str) -> Result<Option<Login>, String> {
            self.failing()?;
            Ok(self.logins.borrow().get(server_url).map(|(u, s)| Login { username: u.clone(), secret: s.clone() }))
        }
        fn store(&self, server_url: &str, login: &Login) -> Result<(), String> {
            self.failing()?;
            self.logins.borrow_mut().insert(server_url.into(), (login.username.clone(), login.secret.clone()));
            Ok(())
        }
        fn erase(&self, server_url: &str) -> Result<bool, String> {
            self.failing()?;
            Ok(self.logins.borrow_mut().remove(server_url).is_some())
        }
        fn list(&self) -> Result<BTreeMap<String, String>, String> {
            self.failing()?;
            Ok(self.logins.borrow().iter().map(|(k, (u, _))| (k.clone(), u.clone())).collect())
        }
    }

    impl MemoryStore {
        fn failing(&self) -> Result<(), String> {
            self.fail.map_or(Ok(()), |why| Err(why.to_string()))
        }
    }

    const ECR: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

    fn login_json(url: &str, user: &str, secret: &str) -> String {
        serde_json::json!({"ServerURL": url, "Username": user, "Secret": secret}).to_string()
    }

    #[test]
    fn what_is_stored_is_got_listed_and_erased() {
        let (ecr, keyring) = (MemoryStore::default(), MemoryStore::default());
        let stores = Stores { ecr: &ecr, keyring: &keyring };
        assert_eq!(store(&login_json("https://ghcr.io", "me", "s3cret"), &stores).unwrap(), "");
        let got: serde_json::Value = serde_json::from_str(&get("https://ghcr.io\n", &stores).unwrap()).unwrap();
        assert_eq!(got, serde_json::json!({"ServerURL": "https://ghcr.io", "Username": "me", "Secret": "s3cret"}));
        assert_eq!(list(&stores).unwrap(), r#"{"https://ghcr.io":"me"}"#);
        assert_eq!(erase("https://ghcr.io", &stores).unwrap(), "");
        assert_eq!(get("https://ghcr.io", &stores).unwrap_err().0, NOT_FOUND);
        assert_eq!(erase("https://ghcr.io", &stores).unwrap_err().0, NOT_FOUND, "erasing twice: nothing there");
        assert_eq!(list(&stores).unwrap(), "{}");
    }

    #[test]
    fn ecr_hosts_go_to_the_ecr_store_and_others_to_the_keyring() {
        let (ecr, keyring) = (MemoryStore::default(), MemoryStore::default());
        let stores = Stores { ecr: &ecr, keyring: &keyring };
        store(&login_json(ECR, "AWS", "token"), &stores).unwrap();
        store(&login_json("docker.io", "me", "pw"), &stores).unwrap();
        // A host that only mentions an ECR name is not one.
        store(&login_json("evil.com/123456789012.dkr.ecr.us-east-1.amazonaws.com", "x", "y"), &stores).unwrap();
        assert_eq!(ecr.logins.borrow().keys().collect::<Vec<_>>(), [ECR]);
        assert_eq!(
            keyring.logins.borrow().keys().collect::<Vec<_>>(),
            ["docker.io", "evil.com/123456789012.dkr.ecr.us-east-1.amazonaws.com"]
        );
        // `list` shows both; an ECR entry wins over a keyring entry of the same URL.
        keyring.logins.borrow_mut().insert(ECR.into(), ("stale".into(), "old".into()));
        let listed: serde_json::Value = serde_json::from_str(&list(&stores).unwrap()).unwrap();
        assert_eq!(listed[ECR], "AWS");
        assert_eq!(listed["docker.io"], "me");
    }

    #[test]
    fn a_host_nobody_holds_is_not_found() {
        let (ecr, keyring) = (MemoryStore::default(), MemoryStore::default());
        let stores = Stores { ecr: &ecr, keyring: &keyring };
        for input in ["docker.io", "https://index.docker.io/v1/", "ghcr.io\n", ECR] {
            assert_eq!(get(input, &stores).unwrap_err().0, NOT_FOUND, "{input}");
        }
    }

    #[test]
    fn bad_input_is_a_clear_error_that_echoes_nothing_and_stores_nothing() {
        let (ecr, keyring) = (MemoryStore::default(), MemoryStore::default());
        let stores = Stores { ecr: &ecr, keyring: &keyring };
        assert_eq!(get("  \n", &stores).unwrap_err().0, "no credentials server URL");
        assert_eq!(erase("", &stores).unwrap_err().0, "no credentials server URL");
        for bad in
            [r#"{"ServerURL": "x", "Secret": "abc"#, "abc", "[]", r#"{"Username":"u","Secret":"abc"}"#, r#"{"ServerURL":7,"Secret":"abc"}"#]
        {
            let err = store(bad, &stores).unwrap_err().0;
            assert!(err.starts_with("store expects JSON"), "{bad}: {err}");
            assert!(!err.contains("abc"), "{bad}: {err}");
        }
        assert_eq!(store(&login_json("  ", "u", "abc"), &stores).unwrap_err().0, "no credentials server URL");
        assert!(keyring.logins.borrow().is_empty() && ecr.logins.borrow().is_empty());
    }

    #[test]
    fn a_failing_store_is_named_with_the_server_and_the_reason() {
        let ecr = MemoryStore::default();
        let keyring = MemoryStore { fail: Some("no OS keyring is reachable"), ..Default::default() };
        let stores = Stores { ecr: &ecr, keyring: &keyring };
        assert_eq!(store(&login_json("docker.io", "u", "pw"), &stores).unwrap_err().0, "store docker.io: no OS keyring is reachable");
        assert_eq!(erase("docker.io", &stores).unwrap_err().0, "erase docker.io: no OS keyring is reachable");
        assert_eq!(get("docker.io", &stores).unwrap_err().0, "no OS keyring is reachable");
        assert_eq!(list(&stores).unwrap_err().0, "list: no OS keyring is reachable");
        // The ECR store is not asked through the keyring's failure.
        assert_eq!(store(&login_json(ECR, "AWS", "t"), &stores).unwrap(), "");
    }

    #[test]
    fn replies_are_on_stdout_with_exit_1_for_failures() {
        use crate::reply::Channel;
        let ok = respond(Ok("{}".into()));
        assert_eq!((ok.channel, ok.text.as_slice(), ok.code), (Channel::Stdout, &b"{}\n"[..], 0));
        assert_eq!(respond(Ok(String::new())).text, b"");
        let failed = respond(Err(Failure::new(NOT_FOUND)));
        assert_eq!((failed.channel, failed.text, failed.code), (Channel::Stdout, format!("{NOT_FOUND}\n").into_bytes(), 1));
    }
}
