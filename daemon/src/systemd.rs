//! systemd integration through the `sd-notify` crate: the socket passed by socket activation
//! (`LISTEN_FDS`) and readiness notifications. Both are no-ops when not started by systemd.

use std::os::fd::FromRawFd;

/// The listening socket systemd passed us, if it did (the first of `LISTEN_FDS`, fd 3), made
/// close-on-exec (so it never leaks into a `credential_process` the SDK starts), with
/// `LISTEN_*` removed from the environment.
///
/// # Safety
/// Changes the environment: call it while the process has one thread, before the async
/// runtime starts.
pub unsafe fn activated_listener() -> Option<std::os::unix::net::UnixListener> {
    // SAFETY: the caller guarantees no other thread reads or writes the environment.
    let fds = unsafe { sd_notify::listen_fds_and_unset_env() };
    unsafe { std::env::remove_var("LISTEN_FDNAMES") };
    let fd = match fds {
        Ok(mut fds) => fds.next()?,
        Err(e) => {
            tracing::warn!("ignoring the sockets passed by systemd: {e}");
            return None;
        }
    };
    // SAFETY: systemd hands fd 3 to us as a listening socket; we take ownership once.
    Some(unsafe { std::os::unix::net::UnixListener::from_raw_fd(fd) })
}

/// Tell systemd (`$NOTIFY_SOCKET`, if set) that the broker is ready.
pub fn ready() {
    send(&[sd_notify::NotifyState::Ready]);
}

/// Tell systemd the broker is stopping.
pub fn stopping() {
    send(&[sd_notify::NotifyState::Stopping]);
}

fn send(state: &[sd_notify::NotifyState]) {
    let result = match std::env::var_os("NOTIFY_SOCKET") {
        Some(path) if path.as_encoded_bytes().starts_with(b"@") => send_abstract(&path, state),
        _ => sd_notify::notify(state),
    };
    if let Err(e) = result {
        tracing::debug!("sd_notify failed: {e}");
    }
}

/// `@name`: an abstract socket (Linux only), which `sd-notify` does not reach.
#[cfg(target_os = "linux")]
fn send_abstract(path: &std::ffi::OsStr, state: &[sd_notify::NotifyState]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let text: String = state.iter().map(|s| format!("{s}\n")).collect();
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(&path.as_encoded_bytes()[1..])?;
    std::os::unix::net::UnixDatagram::unbound()?.send_to_addr(text.as_bytes(), &addr).map(|_| ())
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &std::ffi::OsStr, _: &[sd_notify::NotifyState]) -> std::io::Result<()> {
    Err(std::io::Error::other("abstract sockets are Linux only"))
}
