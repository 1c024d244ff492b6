//! The listener: the Unix socket (bound by us or passed by systemd), one task per connection
//! with its caller identified by SO_PEERCRED and admitted within its uid's share, and a
//! graceful shutdown that lets requests in flight finish. The answers are in [`crate::routes`].
//!
//! Every caller who can reach the socket is treated as hostile: a connection is admitted only
//! within its uid's share ([`crate::admission`]); it must send its headers (at most
//! [`MAX_HEADER_BYTES`]) within the configured header timeout, which also closes idle
//! keep-alive connections; it lives at most [`MAX_CONNECTION_LIFE`]. A uid that may use no
//! identity gets one answer (403, or `/healthz`) and the connection is closed. Refusals and
//! accept errors are logged rate-limited ([`crate::ratelog`]).

use crate::admission::{Admission, Limits};
use crate::broker::Broker;
use crate::ratelog::{more, RateLog};
use ecr_cred::config::Caller;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::future::Future;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Request headers, start line included: this API's requests are a few hundred bytes.
pub const MAX_HEADER_BYTES: usize = 8 * 1024;
/// Headers per request.
pub(crate) const MAX_HEADERS: usize = 32;
/// The longest any connection lives, however busy (a token request waits for AWS at most
/// about a minute).
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(300);
/// One log line per uid and kind of refusal per this interval.
const LOG_INTERVAL: Duration = Duration::from_secs(60);

/// What every connection shares.
pub struct App {
    pub broker: Arc<Broker>,
    pub own_uid: u32,
    /// uid -> (its groups, when looked up): group lookups read /etc/group, so keep them a minute.
    groups: Mutex<HashMap<u32, (Vec<u32>, Instant)>>,
    admission: Arc<Admission>,
    /// Connections the fd limit leaves room for.
    fd_room: usize,
    pub ratelog: RateLog,
}

impl App {
    /// `fd_room`: how many connections the process's fd limit allows.
    pub fn new(broker: Arc<Broker>, fd_room: usize) -> App {
        // SAFETY: geteuid cannot fail.
        let own_uid = unsafe { libc::geteuid() };
        App {
            broker,
            own_uid,
            groups: Mutex::new(HashMap::new()),
            admission: Arc::new(Admission::default()),
            fd_room,
            ratelog: RateLog::new(LOG_INTERVAL),
        }
    }

    pub(crate) fn limits(&self, config: &ecr_cred::config::Config) -> Limits {
        let max_total = config.max_connections().min(self.fd_room).max(1);
        Limits { max_total, max_per_uid: config.max_connections_per_uid().min(max_total) }
    }

    /// Whether `caller` may use at least one identity.
    fn usable(&self, caller: Caller) -> bool {
        self.broker.config().may_use_any(caller, self.own_uid, || self.groups_of(caller.uid))
    }

    pub(crate) fn groups_of(&self, uid: u32) -> Vec<u32> {
        if let Some((g, at)) = self.groups.lock().unwrap().get(&uid) {
            if at.elapsed() < Duration::from_secs(60) {
                return g.clone();
            }
        }
        let g = supplementary_groups(uid);
        self.groups.lock().unwrap().insert(uid, (g.clone(), Instant::now()));
        g
    }
}

/// Bind the socket at `path` with `mode` (and `group`), replacing a stale socket file but
/// never a live broker's.
pub fn bind(path: &Path, mode: u32, group: Option<u32>) -> Result<std::os::unix::net::UnixListener, String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty() && !d.exists()) {
        std::fs::DirBuilder::new().recursive(true).mode(0o711).create(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(format!("another broker is already listening on {}", path.display()));
        }
        std::fs::remove_file(path).map_err(|e| format!("cannot remove stale socket {}: {e}", path.display()))?;
    }
    // Bind with a umask that keeps the socket private until its mode is set.
    // SAFETY: umask only changes this process's file creation mask.
    let old = unsafe { libc::umask(0o077) };
    let bound = std::os::unix::net::UnixListener::bind(path);
    unsafe { libc::umask(old) };
    let listener = bound.map_err(|e| format!("cannot listen on {}: {e}", path.display()))?;
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(|e| format!("cannot give {} to group {gid}: {e}", path.display()))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set mode of {}: {e}", path.display()))?;
    Ok(listener)
}

/// Accept connections until `shutdown` completes, then wait (up to `grace`) for requests in flight.
pub async fn serve(listener: tokio::net::UnixListener, app: Arc<App>, shutdown: impl Future<Output = ()>, grace: Duration) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((s, _)) => s,
                    Err(e) => {
                        if let Some(n) = app.ratelog.allow(u32::MAX, "accept") {
                            tracing::warn!("accept failed: {e}{}", more(n));
                        }
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let caller = match stream.peer_cred() {
                    Ok(c) => Caller { uid: c.uid(), gid: c.gid(), pid: c.pid() },
                    Err(e) => {
                        if let Some(n) = app.ratelog.allow(u32::MAX, "peercred") {
                            tracing::warn!("cannot identify the caller (SO_PEERCRED): {e}{}", more(n));
                        }
                        continue;
                    }
                };
                let config = app.broker.config();
                let privileged = caller.uid == 0 || caller.uid == app.own_uid;
                let usable = privileged || app.usable(caller);
                let permit = match app.admission.admit(caller.uid, privileged, usable, app.limits(&config)) {
                    Ok(p) => p,
                    Err(why) => {
                        if let Some(n) = app.ratelog.allow(caller.uid, "connection") {
                            tracing::warn!(uid = caller.uid, open = app.admission.open(), "connection closed at once: {why}{}", more(n));
                        }
                        // A fresh socket's send buffer is empty: this never blocks.
                        let _ = stream.try_write(BUSY);
                        continue;
                    }
                };
                let app2 = app.clone();
                let service = hyper::service::service_fn(move |req| {
                    let app = app2.clone();
                    async move { Ok::<_, std::convert::Infallible>(crate::routes::route(&app, caller, usable, req).await) }
                });
                let conn = hyper::server::conn::http1::Builder::new()
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(config.header_timeout())
                    .max_buf_size(MAX_HEADER_BYTES)
                    .max_header_size(MAX_HEADER_BYTES)
                    .max_headers(MAX_HEADERS)
                    // A caller with no usable identity gets one answer, then the connection closes.
                    .keep_alive(usable)
                    .serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    match tokio::time::timeout(MAX_CONNECTION_LIFE, conn).await {
                        Ok(Err(e)) => tracing::debug!("connection ended: {e}"),
                        Err(_) => tracing::debug!("connection closed after {MAX_CONNECTION_LIFE:?}"),
                        Ok(Ok(())) => {}
                    }
                    drop(permit);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {grace:?}; stopping anyway");
    }
}

/// The answer to a connection past its uid's share or the total.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 69\r\nconnection: close\r\n\r\n{\"error\":\"busy\",\"reason\":\"too many open connections from this user\"}\n";

/// The caller's groups, from the group database (the files in static builds, see
/// [`ecr_cred::users`]).
fn supplementary_groups(uid: u32) -> Vec<u32> {
    ecr_cred::users::groups_of(uid)
}
