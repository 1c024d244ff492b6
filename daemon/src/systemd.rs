//! systemd integration: sockets passed by socket activation (`LISTEN_FDS`) and readiness
//! notifications (`sd_notify`). Both are no-ops when not started by systemd.

use std::os::fd::FromRawFd;

/// The listening socket systemd passed us, if it did (the first of `LISTEN_FDS`, fd 3).
pub fn activated_listener() -> Option<std::os::unix::net::UnixListener> {
    let pid: u32 = std::env::var("LISTEN_PID").ok()?.parse().ok()?;
    let fds: u32 = std::env::var("LISTEN_FDS").ok()?.parse().ok()?;
    if pid != std::process::id() || fds < 1 {
        return None;
    }
    // Not for our children.
    std::env::remove_var("LISTEN_PID");
    std::env::remove_var("LISTEN_FDS");
    std::env::remove_var("LISTEN_FDNAMES");
    // SAFETY: systemd hands fd 3 to us as a listening socket; we take ownership once.
    Some(unsafe { std::os::unix::net::UnixListener::from_raw_fd(3) })
}

/// Send `state` (e.g. "READY=1") to `$NOTIFY_SOCKET`, if set.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let sock = match std::os::unix::net::UnixDatagram::unbound() {
        Ok(s) => s,
        Err(_) => return,
    };
    let result = send(&sock, &path, state);
    if let Err(e) = result {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// `@name` is an abstract socket (Linux only); anything else a path.
#[cfg(target_os = "linux")]
fn send(sock: &std::os::unix::net::UnixDatagram, path: &std::ffi::OsStr, state: &str) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    match path.as_encoded_bytes().strip_prefix(b"@") {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name).and_then(|a| sock.send_to_addr(state.as_bytes(), &a)),
        None => sock.send_to(state.as_bytes(), std::path::Path::new(path)),
    }
}

#[cfg(not(target_os = "linux"))]
fn send(sock: &std::os::unix::net::UnixDatagram, path: &std::ffi::OsStr, state: &str) -> std::io::Result<usize> {
    sock.send_to(state.as_bytes(), std::path::Path::new(path))
}
