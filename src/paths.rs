//! Paths: where this user's home, cache and configuration live, from the environment.

use std::path::PathBuf;

/// `$HOME`, else the password database's entry for this user.
pub fn home_dir() -> Option<PathBuf> {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return Some(PathBuf::from(h));
    }
    // SAFETY: getpwuid_r writes only into the buffers we hand it.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(libc::geteuid(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr(pwd.pw_dir);
        use std::os::unix::ffi::OsStrExt;
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
    }
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
