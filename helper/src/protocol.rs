//! The Docker credential-helper protocol, as docker and containers/image speak it.
//!
//! Each action reads its input from stdin and answers on stdout. Failure is one line on
//! stdout and exit status 1; the exact text `credentials not found in native keychain` means
//! "not a registry I serve", and clients fall back to anonymous access on it, so it is only
//! used for hosts this helper holds nothing for. Where tokens come from is not this module's
//! business: it asks [`crate::credentials`]; other registries' credentials, stored when this
//! helper is a user's `credsStore`, live in the Secret Service or the OS keyring
//! ([`crate::keychain`]).

use crate::credentials;
use ecr_cred::registry::RegistryHost;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};

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

/// `get`: the server URL on stdin, the credentials as JSON on stdout.
pub fn get(input: &str) -> Result<String, Failure> {
    let server_url = input.trim();
    if server_url.is_empty() {
        return Err(Failure::new("no credentials server URL"));
    }
    let Some(registry) = RegistryHost::parse(server_url) else {
        return match crate::keychain::get(server_url) {
            Ok(Some((username, secret))) => {
                Ok(serde_json::to_string(&Credentials { server_url, username: &username, secret: &secret }).expect("serializes"))
            }
            Ok(None) => Err(Failure::new(NOT_FOUND)),
            Err(e) => {
                // Clients pull anonymously on not-found; say why, so that is not a mystery.
                eprintln!("docker-credential-ecr: keyring lookup for {server_url} failed: {e}; answering \"{NOT_FOUND}\"");
                Err(Failure::new(NOT_FOUND))
            }
        };
    };
    let token = credentials::token_for(&registry).map_err(|e| Failure::new(format!("ecr: {}: {e}", registry.host)))?;
    let body = Credentials { server_url, username: &token.username, secret: &token.password };
    Ok(serde_json::to_string(&body).expect("credentials serialize"))
}

/// Whether `store`/`erase` for this server is accepted without doing anything: ECR registries
/// (their credentials are always fetched fresh, so `docker login` and `docker logout` work),
/// and every registry when `AWS_ECR_IGNORE_CREDS_STORAGE` says so, as with the Go helper.
fn storage_ignored(server_url: &str) -> bool {
    RegistryHost::parse(server_url).is_some() || ecr_cred::paths::env_flag("AWS_ECR_IGNORE_CREDS_STORAGE")
}

/// `store`: other registries' credentials go to the OS keyring.
pub fn store(input: &str) -> Result<String, Failure> {
    let req: StoreRequest = serde_json::from_str(input.trim())
        .map_err(|_| Failure::new("store expects JSON credentials {\"ServerURL\",\"Username\",\"Secret\"} on standard input"))?;
    let server_url = req.server_url.trim();
    if server_url.is_empty() {
        return Err(Failure::new("no credentials server URL"));
    }
    if storage_ignored(server_url) {
        return Ok(String::new());
    }
    crate::keychain::store(server_url, &req.username, &req.secret).map_err(|e| Failure::new(format!("store {server_url}: {e}")))?;
    Ok(String::new())
}

/// `erase`: removes another registry's credentials from the OS keyring. Cached ECR tokens
/// stay: they are the AWS identity's, not the login's.
pub fn erase(input: &str) -> Result<String, Failure> {
    let server_url = input.trim();
    if server_url.is_empty() {
        return Err(Failure::new("no credentials server URL"));
    }
    if storage_ignored(server_url) {
        return Ok(String::new());
    }
    match crate::keychain::erase(server_url) {
        Ok(true) => Ok(String::new()),
        Ok(false) => Err(Failure::new(NOT_FOUND)),
        Err(e) => Err(Failure::new(format!("erase {server_url}: {e}"))),
    }
}

/// `list`: the ECR registries this user has asked for or configured, `{"https://host":"AWS"}`,
/// and the other registries stored in the keyring with their user names.
pub fn list() -> Result<String, Failure> {
    let stored = crate::keychain::list().map_err(|e| Failure::new(format!("list: {e}")))?;
    let mut map: serde_json::Map<String, serde_json::Value> =
        stored.into_iter().map(|(url, user)| (url, serde_json::Value::String(user))).collect();
    for r in credentials::known_registries() {
        map.insert(r.server_url(), serde_json::Value::String("AWS".into()));
    }
    Ok(serde_json::Value::Object(map).to_string())
}

/// Run one action: its answer on stdout and exit 0, or its failure on stdout and exit 1.
pub fn respond(result: Result<String, Failure>) -> i32 {
    let mut out = std::io::stdout().lock();
    match result {
        Ok(text) => {
            if !text.is_empty() {
                let _ = writeln!(out, "{text}");
            }
            0
        }
        Err(Failure(msg)) => {
            let _ = writeln!(out, "{msg}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_of_a_host_that_is_not_ecr_is_not_found() {
        for input in ["docker.io", "https://index.docker.io/v1/", "ghcr.io\n", "evil.com/123456789012.dkr.ecr.us-east-1.amazonaws.com"] {
            assert_eq!(get(input).unwrap_err().0, NOT_FOUND, "{input}");
        }
    }

    #[test]
    fn get_without_a_server_url_says_so() {
        assert_eq!(get("  \n").unwrap_err().0, "no credentials server URL");
    }

    #[test]
    fn store_and_erase_of_ecr_hosts_succeed_without_storing() {
        let ecr = r#"{"ServerURL":"123456789012.dkr.ecr.us-east-1.amazonaws.com","Username":"AWS","Secret":"x"}"#;
        assert_eq!(store(ecr).unwrap(), "");
        assert_eq!(erase("https://123456789012.dkr.ecr.us-east-1.amazonaws.com").unwrap(), "");
    }

    #[test]
    fn store_with_bad_json_is_a_clear_error_that_echoes_nothing() {
        let err = store(r#"{"ServerURL": "x", "Secret": "abc"#).unwrap_err().0;
        assert!(err.starts_with("store expects JSON"));
        assert!(!err.contains("abc"));
    }
}
