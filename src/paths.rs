//! Paths: every default location, from the environment: this user's home, the XDG folders,
//! the helper's cache and config, docker's and containers' config files, the broker sockets
//! the helper looks for, and where `login` keeps its record. Nothing here touches a file
//! except [`broker_socket`], which asks whether the user broker's socket exists.

use std::path::PathBuf;

/// `$HOME`, else the password database's entry for this user.
pub fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    crate::users::home_of(crate::sys::euid())
}

/// The helper's cache folder: `$AWS_ECR_CACHE_DIR`, else `$XDG_CACHE_HOME/ecr-cred`,
/// else `~/.cache/ecr-cred`.
pub fn cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("AWS_ECR_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(expand_tilde(PathBuf::from(d)));
    }
    if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d).join("ecr-cred"));
    }
    home_dir().map(|h| h.join(".cache").join("ecr-cred"))
}

/// `$XDG_CONFIG_HOME` if it is an absolute path, else `~/.config`.
pub fn config_home() -> Option<PathBuf> {
    match env_path("XDG_CONFIG_HOME").filter(|p| p.is_absolute()) {
        Some(d) => Some(d),
        None => home_dir().map(|h| h.join(".config")),
    }
}

/// The user's ecr-cred configuration file, shared by the helper and a user broker:
/// `$XDG_CONFIG_HOME/ecr-cred/config.toml`, else `~/.config/ecr-cred/config.toml`.
pub fn user_config_file() -> Option<PathBuf> {
    config_home().map(|d| d.join("ecr-cred/config.toml"))
}

/// Where a user broker read its configuration before `ecr-cred/config.toml` existed:
/// `$XDG_CONFIG_HOME/ecr-broker/config.toml`.
pub fn legacy_user_config_file() -> Option<PathBuf> {
    config_home().map(|d| d.join("ecr-broker/config.toml"))
}

/// docker's configuration: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn docker_config_file() -> Option<PathBuf> {
    let dir = env_path("DOCKER_CONFIG").or_else(|| home_dir().map(|h| h.join(".docker")))?;
    Some(dir.join("config.json"))
}

/// containers' persistent auth file (containers-auth.json(5)): `$REGISTRY_AUTH_FILE`, else
/// `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`.
pub fn containers_auth_file() -> Option<PathBuf> {
    env_path("REGISTRY_AUTH_FILE").or_else(|| config_home().map(|d| d.join("containers").join("auth.json")))
}

/// The folder of `login`'s record: `$RUNNER_TEMP` in a GitHub Actions job, else
/// `${XDG_STATE_HOME:-~/.local/state}/ecr-cred` (each only if absolute). `true` with the
/// runner's folder.
pub fn login_record_dir() -> Option<(PathBuf, bool)> {
    if let Some(dir) = env_path("RUNNER_TEMP").filter(|p| p.is_absolute()) {
        return Some((dir, true));
    }
    let state = match env_path("XDG_STATE_HOME").filter(|p| p.is_absolute()) {
        Some(d) => d,
        None => home_dir()?.join(".local/state"),
    };
    Some((state.join("ecr-cred"), false))
}

/// The system broker's socket.
pub const SYSTEM_BROKER_SOCKET: &str = "/run/ecr-broker/broker.sock";

/// The socket the helper tries: `ECR_BROKER_SOCKET` (empty or `none`: no broker), else the
/// user broker's [`user_broker_socket`] if it exists, else [`SYSTEM_BROKER_SOCKET`].
pub fn broker_socket() -> Option<PathBuf> {
    match std::env::var("ECR_BROKER_SOCKET") {
        Ok(s) if s.is_empty() || s == "none" => return None,
        Ok(s) => return Some(PathBuf::from(s)),
        Err(_) => {}
    }
    if let Some(p) = user_broker_socket().filter(|p| p.exists()) {
        return Some(p);
    }
    Some(PathBuf::from(SYSTEM_BROKER_SOCKET))
}

/// Where a user's broker (`ecr-broker --user`) listens by default, and where the helper looks
/// for it: `$XDG_RUNTIME_DIR/ecr-broker.sock`, else `ecr-broker/broker.sock` in the state
/// folder (`$XDG_STATE_HOME`, else `~/.local/state`).
pub fn user_broker_socket() -> Option<PathBuf> {
    if let Some(dir) = env_path("XDG_RUNTIME_DIR") {
        return Some(dir.join("ecr-broker.sock"));
    }
    state_home().map(|s| s.join("ecr-broker").join("broker.sock"))
}

/// A variable's value as a path; unset and empty are both `None`.
fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

/// `$XDG_STATE_HOME`, else `~/.local/state`.
pub fn state_home() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    home_dir().map(|h| h.join(".local").join("state"))
}

fn expand_tilde(p: PathBuf) -> PathBuf {
    match p.strip_prefix("~") {
        Ok(rest) => home_dir().map(|h| h.join(rest)).unwrap_or(p),
        Err(_) => p,
    }
}

/// Is an environment switch on? Set and not empty, `0`, `false` or `no`.
pub fn env_flag(name: &str) -> bool {
    match std::env::var(name) {
        Ok(v) => !matches!(v.trim().to_ascii_lowercase().as_str(), "" | "0" | "false" | "no" | "off"),
        Err(_) => false,
    }
}
