//! The server: the Unix socket (bound by us or passed by systemd), one task per connection
//! with its caller identified by SO_PEERCRED, the HTTP routes, and a graceful shutdown that
//! lets requests in flight finish.
//!
//! Every caller who can reach the socket is treated as hostile: a connection is admitted only
//! within its uid's share ([`crate::admission`]); it must send its headers (at most
//! [`MAX_HEADER_BYTES`]) within the configured header timeout, which also closes idle
//! keep-alive connections; it lives at most [`MAX_CONNECTION_LIFE`]. A uid that may use no
//! identity gets one answer (403, or `/healthz`) and the connection is closed. Refusals and
//! accept errors are logged rate-limited ([`crate::ratelog`]).

use crate::admission::{Admission, Limits};
use crate::ratelog::{more, RateLog};
use crate::tokens::TokenStore;
use bytes::Bytes;
use ecr_cred::broker::{ErrorResponse, IdentityStatus, StatusResponse, TokenResponse, TokenStatus};
use ecr_cred::config::{Caller, Decision};
use ecr_cred::registry::RegistryHost;
use ecr_cred::token::now_unix;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::Ordering::Relaxed;
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
    pub store: Arc<TokenStore>,
    pub own_uid: u32,
    pub started_at: i64,
    /// uid -> (its groups, when looked up): group lookups read /etc/group, so keep them a minute.
    groups: Mutex<HashMap<u32, (Vec<u32>, Instant)>>,
    admission: Arc<Admission>,
    /// Connections the fd limit leaves room for.
    fd_room: usize,
    pub ratelog: RateLog,
}

impl App {
    /// `fd_room`: how many connections the process's fd limit allows.
    pub fn new(store: Arc<TokenStore>, fd_room: usize) -> App {
        // SAFETY: geteuid cannot fail.
        let own_uid = unsafe { libc::geteuid() };
        App {
            store,
            own_uid,
            started_at: now_unix(),
            groups: Mutex::new(HashMap::new()),
            admission: Arc::new(Admission::default()),
            fd_room,
            ratelog: RateLog::new(LOG_INTERVAL),
        }
    }

    fn limits(&self, config: &ecr_cred::config::Config) -> Limits {
        let max_total = config.max_connections().min(self.fd_room).max(1);
        Limits { max_total, max_per_uid: config.max_connections_per_uid().min(max_total) }
    }

    /// Whether `caller` may use at least one identity.
    fn usable(&self, caller: Caller) -> bool {
        self.store.upstream.config().may_use_any(caller, self.own_uid, || self.groups_of(caller.uid))
    }

    fn groups_of(&self, uid: u32) -> Vec<u32> {
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

/// Accept connections until `shutdown` turns true, then wait (up to `grace`) for requests in flight.
pub async fn serve(listener: tokio::net::UnixListener, app: Arc<App>, mut shutdown: tokio::sync::watch::Receiver<bool>, grace: Duration) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
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
                let config = app.store.upstream.config();
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
                    async move { Ok::<_, std::convert::Infallible>(route(&app, caller, usable, req).await) }
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
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running after {grace:?}; stopping anyway");
    }
}

/// The answer to a connection past its uid's share or the total.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: 69\r\nconnection: close\r\n\r\n{\"error\":\"busy\",\"reason\":\"too many open connections from this user\"}\n";

pub(crate) type Reply = Response<Full<Bytes>>;

pub(crate) fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .header("cache-control", "no-store")
        .body(Full::new(body.into()))
        .expect("valid response")
}

fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Reply {
    reply(status, "application/json", serde_json::to_vec(value).expect("serializes"))
}

pub(crate) fn error(status: StatusCode, kind: &str, reason: impl Into<String>) -> Reply {
    json(status, &ErrorResponse { error: kind.to_string(), reason: reason.into() })
}

/// `usable`: the caller may use at least one identity (else only `/healthz` is served).
async fn route(app: &App, caller: Caller, usable: bool, req: Request<hyper::body::Incoming>) -> Reply {
    if req.method() != Method::GET {
        return error(StatusCode::METHOD_NOT_ALLOWED, "bad_request", "only GET is served");
    }
    let path = req.uri().path();
    if path == "/healthz" {
        return reply(StatusCode::OK, "text/plain", "ok\n");
    }
    if !usable && matches!(path, "/v1/token" | "/v1/status" | "/metrics") {
        app.store.metrics.requests_forbidden.fetch_add(1, Relaxed);
        if let Some(n) = app.ratelog.allow(caller.uid, "refused") {
            tracing::info!(uid = caller.uid, pid = caller.pid, path, "refused: this uid may use no identity{}", more(n));
        }
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "uid {} may use no identity of this broker (see allow_uids/allow_gids under [identities.NAME] or at the top of the broker config)",
                caller.uid
            ),
        );
    }
    match path {
        "/v1/token" => token(app, caller, req.uri().query().unwrap_or("")).await,
        "/v1/status" => status(app),
        "/metrics" => metrics(app),
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such path; try /v1/token?registry=HOST, /v1/status, /metrics or /healthz"),
    }
}

async fn token(app: &App, caller: Caller, query: &str) -> Reply {
    let metrics = &app.store.metrics;
    let Some(host) = query_param(query, "registry") else {
        metrics.requests_bad.fetch_add(1, Relaxed);
        return error(StatusCode::BAD_REQUEST, "bad_request", "missing ?registry=HOST");
    };
    let Some(registry) = RegistryHost::parse(&host) else {
        metrics.requests_bad.fetch_add(1, Relaxed);
        return error(StatusCode::NOT_FOUND, "not_ecr", "not an Amazon ECR registry");
    };
    let config = app.store.upstream.config();
    let identity = match config.decide(&registry, caller, app.own_uid, || app.groups_of(caller.uid)) {
        Decision::Allow { identity } => identity,
        Decision::Deny { reason } => {
            metrics.requests_forbidden.fetch_add(1, Relaxed);
            if let Some(n) = app.ratelog.allow(caller.uid, "refused") {
                tracing::info!(uid = caller.uid, pid = caller.pid, registry = %registry, "refused: {reason}{}", more(n));
            }
            return error(StatusCode::FORBIDDEN, "forbidden", reason);
        }
    };
    match app.store.get(&identity, &registry).await {
        Ok(t) => {
            metrics.requests_ok.fetch_add(1, Relaxed);
            json(
                StatusCode::OK,
                &TokenResponse {
                    registry: registry.host.clone(),
                    username: t.username,
                    password: t.password,
                    expires_at: t.expires_at,
                    fetched_at: t.fetched_at,
                    identity,
                },
            )
        }
        Err(e) => {
            metrics.requests_failed.fetch_add(1, Relaxed);
            error(StatusCode::BAD_GATEWAY, "upstream", e.0)
        }
    }
}

fn status(app: &App) -> Reply {
    let config = app.store.upstream.config();
    let m = &app.store.metrics;
    let identities = config
        .identity_names()
        .into_iter()
        .map(|name| {
            let source = config.identity(&name).map(|i| i.to_string()).unwrap_or_default();
            IdentityStatus { name, source }
        })
        .collect();
    let tokens = app
        .store
        .slots()
        .iter()
        .map(|slot| {
            let st = slot.state.lock().unwrap();
            TokenStatus {
                identity: slot.key.identity.clone(),
                region: slot.key.region.clone(),
                variant: slot.key.variant.as_str().to_string(),
                principal: st.principal.clone(),
                registries: st.registries.iter().cloned().collect(),
                expires_at: st.token.as_ref().map(|t| t.expires_at),
                refresh_at: st.token.as_ref().map(|_| st.refresh_at),
                last_used: Some(st.last_used).filter(|t| *t > 0),
                upstream_calls: st.upstream_calls,
                last_error: st.last_error.clone(),
                error_kind: st.last_error.as_ref().map(|_| if st.last_error_permanent { "permanent" } else { "transient" }.to_string()),
                retry_at: Some(st.backoff_until.ceil() as i64).filter(|t| *t > now_unix()),
            }
        })
        .collect();
    json(
        StatusCode::OK,
        &StatusResponse {
            version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: app.started_at,
            identities,
            tokens,
            requests: m.requests(),
            cache_hits: m.cache_hits.load(Relaxed),
            upstream_calls: m.upstream_calls.load(Relaxed),
            upstream_errors: m.upstream_errors.load(Relaxed),
        },
    )
}

pub(crate) fn metrics(app: &App) -> Reply {
    let now = now_unix();
    let tokens: Vec<(String, String, String, i64)> = app
        .store
        .slots()
        .iter()
        .filter_map(|slot| {
            let st = slot.state.lock().unwrap();
            let left = st.token.as_ref()?.remaining(now).max(0);
            Some((slot.key.identity.clone(), slot.key.region.clone(), slot.key.variant.as_str().to_string(), left))
        })
        .collect();
    reply(StatusCode::OK, "text/plain; version=0.0.4", app.store.metrics.render(&tokens))
}

/// The first `name=value` in a query string, percent-decoded.
fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then(|| percent_decode(v)).flatten()
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The caller's supplementary groups, from the group database.
fn supplementary_groups(uid: u32) -> Vec<u32> {
    // SAFETY: getpwuid_r and getgrouplist write only into buffers we own and size.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) != 0 || result.is_null() {
            return Vec::new();
        }
        // gid_t on Linux, c_int on macOS: the same size, so the casts are exact.
        let mut n: libc::c_int = 64;
        let mut groups = vec![0u32; n as usize];
        if libc::getgrouplist(pwd.pw_name, pwd.pw_gid as _, groups.as_mut_ptr() as *mut _, &mut n) < 0 {
            groups.resize(n.max(0) as usize, 0);
            if libc::getgrouplist(pwd.pw_name, pwd.pw_gid as _, groups.as_mut_ptr() as *mut _, &mut n) < 0 {
                return Vec::new();
            }
        }
        groups.truncate(n.max(0) as usize);
        groups
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_are_found_and_decoded() {
        assert_eq!(query_param("registry=a.b&x=1", "registry").as_deref(), Some("a.b"));
        assert_eq!(query_param("x=1&registry=https%3A%2F%2Fa.b", "registry").as_deref(), Some("https://a.b"));
        assert_eq!(query_param("x=1", "registry"), None);
        assert_eq!(query_param("registry=%zz", "registry"), None);
    }
}
