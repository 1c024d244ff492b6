//! Broker wire types and the helper's blocking client for `ecr-broker`.
//!
//! The broker speaks HTTP/1.1 over a Unix socket. The client here is deliberately tiny and
//! blocking (one request, `Connection: close`, one deadline for the whole exchange), so the
//! helper can ask the broker without starting an async runtime. Which socket to ask, and
//! whether its owner can be trusted, is decided here too, for the helper and the broker alike.

use crate::token::Token;
use serde::{Deserialize, Serialize};
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `GET /v1/token?registry=HOST`: a token for the registry HOST ([`token_path`]).
pub const TOKEN_PATH: &str = "/v1/token";
/// `GET /v1/status`: [`StatusResponse`].
pub const STATUS_PATH: &str = "/v1/status";
/// `GET /healthz`: `ok`, to anyone who can connect.
pub const HEALTH_PATH: &str = "/healthz";
/// `GET /metrics`: Prometheus text.
pub const METRICS_PATH: &str = "/metrics";
/// The query parameter of [`TOKEN_PATH`] naming the registry.
pub const REGISTRY_PARAM: &str = "registry";

/// `/v1/token?registry=HOST`, the host encoded.
pub fn token_path(host: &str) -> String {
    format!("{TOKEN_PATH}?{REGISTRY_PARAM}={}", encode_query(host))
}

/// The registry a [`TOKEN_PATH`] query names: the first `registry=` value, decoded. `None`
/// when absent, or when its escapes are broken or decode to something that is not UTF-8.
pub fn registry_from_query(query: &str) -> Option<String> {
    let raw = query.split('&').find_map(|pair| pair.split_once('=').filter(|(k, _)| *k == REGISTRY_PARAM).map(|(_, v)| v))?;
    // `percent_decode` passes a broken escape through as it is; refuse it instead.
    let bytes = raw.as_bytes();
    let escapes_ok = bytes
        .iter()
        .enumerate()
        .filter(|(_, b)| **b == b'%')
        .all(|(i, _)| bytes.get(i + 1..i + 3).is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)));
    // Form encoding: `+` is a space (an encoded `+` is `%2B`).
    let decoded: Vec<u8> = percent_encoding::percent_decode(raw.replace('+', " ").as_bytes()).collect();
    escapes_ok.then(|| String::from_utf8(decoded).ok()).flatten()
}

/// The `error` of an [`ErrorResponse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The broker's policy refuses this caller (403).
    Forbidden,
    /// Not an Amazon ECR registry (404).
    NotEcr,
    /// Malformed request (400, 405).
    BadRequest,
    /// No token: the upstream fetch failed (502).
    Upstream,
    /// No such path (404).
    NotFound,
    /// Too many open connections from this uid (503).
    Busy,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 6] =
        [ErrorCode::Forbidden, ErrorCode::NotEcr, ErrorCode::BadRequest, ErrorCode::Upstream, ErrorCode::NotFound, ErrorCode::Busy];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotEcr => "not_ecr",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Upstream => "upstream",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Busy => "busy",
        }
    }

    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl ErrorResponse {
    pub fn new(code: ErrorCode, reason: impl Into<String>) -> ErrorResponse {
        ErrorResponse { error: code.as_str().to_string(), reason: reason.into() }
    }

    pub fn code(&self) -> Option<ErrorCode> {
        ErrorCode::parse(&self.error)
    }
}

/// `GET /v1/token?registry=HOST`, 200.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub registry: String,
    pub username: String,
    pub password: String,
    pub expires_at: i64,
    /// The refresh point the broker uses; clients need not care.
    pub fetched_at: i64,
    pub identity: String,
}

impl std::fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenResponse")
            .field("registry", &self.registry)
            .field("identity", &self.identity)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

impl TokenResponse {
    /// The answer for `registry` with `token`, served through `identity`.
    pub fn new(registry: &str, identity: &str, token: Token) -> TokenResponse {
        TokenResponse {
            registry: registry.to_string(),
            username: token.username,
            password: token.password,
            expires_at: token.expires_at,
            fetched_at: token.fetched_at,
            identity: identity.to_string(),
        }
    }

    /// The token the answer carries.
    pub fn token(&self) -> Token {
        Token {
            username: self.username.clone(),
            password: self.password.clone(),
            proxy_endpoint: None,
            fetched_at: self.fetched_at,
            expires_at: self.expires_at,
        }
    }
}

/// Any non-200 answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    /// `forbidden`, `not_ecr`, `bad_request`, `upstream`, `not_found`.
    pub error: String,
    pub reason: String,
}

/// `GET /v1/status`: what the broker holds, never a secret.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    pub version: String,
    pub started_at: i64,
    pub identities: Vec<IdentityStatus>,
    pub tokens: Vec<TokenStatus>,
    pub requests: u64,
    pub cache_hits: u64,
    pub upstream_calls: u64,
    pub upstream_errors: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityStatus {
    pub name: String,
    pub source: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStatus {
    pub identity: String,
    pub region: String,
    pub variant: String,
    pub principal: Option<String>,
    pub registries: Vec<String>,
    pub expires_at: Option<i64>,
    pub refresh_at: Option<i64>,
    pub last_used: Option<i64>,
    pub upstream_calls: u64,
    pub last_error: Option<String>,
    /// `transient` (throttling, 5xx, timeouts: retried within a minute) or `permanent`
    /// (credentials, permissions, configuration: retried after minutes), with `last_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// No upstream call for this slot before this time (Unix seconds) while it backs off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<i64>,
}

/// The socket the helper tries (see [`crate::paths::broker_socket`]).
pub fn default_socket() -> Option<PathBuf> {
    crate::paths::broker_socket()
}

/// Where a user's broker listens by default (see [`crate::paths::user_broker_socket`]).
pub fn user_socket() -> Option<PathBuf> {
    crate::paths::user_broker_socket()
}

pub const SYSTEM_SOCKET: &str = crate::paths::SYSTEM_BROKER_SOCKET;

/// The system broker's user (packaging/systemd/ecr-broker.service, packaging/sysusers.d).
pub const BROKER_USER: &str = "ecr-broker";

/// The environment variable naming the broker's uid, for a broker that runs as a uid with no
/// local `ecr-broker` user (the container image and the DaemonSet run as 65532). Whoever sets
/// the helper's environment controls the helper anyway, so it is trusted like the socket path.
pub const BROKER_UID_ENV: &str = "ECR_BROKER_UID";

/// May the helper trust whatever listens on `socket`? Only if the socket, and the folder it is
/// in, belong to root, to us or to the broker's uid (`ECR_BROKER_UID` when set, else the
/// [`BROKER_USER`]'s), and no one else can write to that folder (so no one else can swap the
/// socket). `Err` says why not. A socket that does not exist is not refused here: connecting
/// to it then finds no broker.
pub fn check_socket_owner(socket: &Path) -> Result<(), String> {
    let broker_uid = match std::env::var(BROKER_UID_ENV) {
        Ok(v) if !v.is_empty() => Some(v.trim().parse::<u32>().map_err(|_| format!("{BROKER_UID_ENV}={v:?} is not a uid (a number)"))?),
        Ok(_) | Err(std::env::VarError::NotPresent) => None,
        Err(std::env::VarError::NotUnicode(_)) => return Err(format!("{BROKER_UID_ENV} is not a uid (a number)")),
    };
    check_socket_owner_with(socket, broker_uid)
}

/// [`check_socket_owner`] with the broker's uid given (`None`: the [`BROKER_USER`]'s, looked
/// up only when the socket or its folder belongs to someone other than root or us).
pub fn check_socket_owner_with(socket: &Path, broker_uid: Option<u32>) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    // Looked up once, and only when root and us are not enough.
    let looked_up = std::cell::OnceCell::new();
    let broker = || {
        looked_up.get_or_init(|| match broker_uid {
            Some(uid) => (Some(uid), format!("uid {uid} ({BROKER_UID_ENV})")),
            None => (broker_user_uid(), BROKER_USER.to_string()),
        })
    };
    let trusted = |uid: u32| uid == 0 || uid == crate::safe_fs::euid() || Some(uid) == broker().0;
    let meta = match std::fs::symlink_metadata(socket) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot stat it: {e}")),
    };
    if !meta.file_type().is_socket() {
        return Err("it is not a socket".into());
    }
    if !trusted(meta.uid()) {
        return Err(format!("it belongs to uid {}, not to root, us or {}", meta.uid(), broker().1));
    }
    let dir = socket.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let d = std::fs::metadata(dir).map_err(|e| format!("cannot stat its folder: {e}"))?;
    if !trusted(d.uid()) {
        return Err(format!("its folder {} belongs to uid {}, not to root, us or {}", dir.display(), d.uid(), broker().1));
    }
    if d.mode() & 0o022 != 0 {
        return Err(format!("its folder {} (mode {:o}) lets other users replace it", dir.display(), d.mode() & 0o7777));
    }
    Ok(())
}

/// The uid of [`BROKER_USER`], if the user exists.
fn broker_user_uid() -> Option<u32> {
    crate::users::uid_by_name(BROKER_USER)
}

/// A response: status code and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Why the broker could not be asked.
#[derive(Debug)]
pub enum ClientError {
    /// No socket there, or nobody listening: the broker is simply absent.
    Absent,
    /// Something answered, but not as HTTP, or the connection broke.
    Unhealthy(String),
    /// The whole exchange did not finish within the deadline.
    TooSlow(Duration),
}

/// The largest answer read from the broker.
const MAX_RESPONSE: u64 = 1 << 20;

/// One blocking `GET` over the Unix socket, finished within `deadline` in total (connect,
/// request and the whole answer), however the broker trickles its bytes.
pub fn get(socket: &Path, path_and_query: &str, deadline: Duration) -> Result<Response, ClientError> {
    let start = Instant::now();
    let mut stream = match connect_within(socket, deadline) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Err(ClientError::TooSlow(deadline)),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::PermissionDenied
            ) =>
        {
            return Err(ClientError::Absent)
        }
        Err(e) => return Err(ClientError::Unhealthy(format!("connect: {e}"))),
    };
    // Time left, never zero (a zero timeout means "none" to the socket calls).
    let left = || deadline.checked_sub(start.elapsed()).filter(|d| !d.is_zero()).ok_or(ClientError::TooSlow(deadline));
    let failed = |e: std::io::Error| {
        if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
            ClientError::TooSlow(deadline)
        } else {
            ClientError::Unhealthy(e.to_string())
        }
    };
    stream.set_write_timeout(Some(left()?)).map_err(failed)?;
    let request = format!("GET {path_and_query} HTTP/1.1\r\nHost: ecr-broker\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(failed)?;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        stream.set_read_timeout(Some(left()?)).map_err(failed)?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                raw.extend_from_slice(&chunk[..n]);
                if raw.len() as u64 > MAX_RESPONSE {
                    return Err(ClientError::Unhealthy("answer too large".into()));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(failed(e)),
        }
    }
    parse_response(&raw).ok_or_else(|| ClientError::Unhealthy("not an HTTP answer".into()))
}

/// `connect` that gives up after `timeout` (see [`crate::sys::connect_unix_within`]).
fn connect_within(socket: &Path, timeout: Duration) -> std::io::Result<UnixStream> {
    crate::sys::connect_unix_within(socket, timeout)
}

/// The status and body of a whole HTTP/1.1 answer (the head parsed by `httparse`); a chunked
/// body is put back together. `None` if it is not one.
fn parse_response(raw: &[u8]) -> Option<Response> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = head.parse(raw).ok()? else { return None };
    let status = head.code?;
    let chunked = head.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("transfer-encoding") && String::from_utf8_lossy(h.value).to_ascii_lowercase().contains("chunked")
    });
    let body = &raw[head_len..];
    let body = if chunked { dechunk(body)? } else { body.to_vec() };
    Some(Response { status, body })
}

/// A chunked body's data; `None` if it is cut short or malformed.
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let httparse::Status::Complete((used, size)) = httparse::parse_chunk_size(data).ok()? else { return None };
        data = &data[used..];
        if size == 0 {
            return Some(out);
        }
        let size = usize::try_from(size).ok()?;
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

/// Encode a query value (`application/x-www-form-urlencoded`; registry hosts are plain, but
/// be safe). [`registry_from_query`] decodes it.
pub fn encode_query(value: &str) -> String {
    form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_answers() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"ok"[..]));
        let r = parse_response(b"HTTP/1.1 403 Forbidden\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.as_slice()), (403, &b"abcde"[..]));
        assert!(parse_response(b"garbage").is_none());
    }

    #[test]
    fn answers_that_are_not_http_are_refused() {
        // A status code has three digits.
        assert!(parse_response(b"HTTP/1.1 2000 OK\r\n\r\n").is_none());
        // A head that never ends, a chunked body cut short or without its CRLF.
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n").is_none());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nab").is_none());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nabXY0\r\n\r\n").is_none());
    }

    #[test]
    fn a_socket_of_the_named_broker_uid_is_trusted_in_a_closed_folder_only() {
        use std::os::unix::fs::PermissionsExt;
        // chown needs root: the test suite runs as root (tests/run-all.sh); fail loudly if not.
        assert_eq!(crate::sys::euid(), 0, "this test chowns files: run it as root");
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::create_dir(&dir).unwrap();
        let sock = dir.join("broker.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::os::unix::fs::chown(&dir, Some(65532), Some(65532)).unwrap();
        std::os::unix::fs::chown(&sock, Some(65532), Some(65532)).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        let err = check_socket_owner_with(&sock, None).unwrap_err();
        assert!(err.contains("uid 65532"), "{err}");
        check_socket_owner_with(&sock, Some(65532)).unwrap();
        let err = check_socket_owner_with(&sock, Some(65533)).unwrap_err();
        assert!(err.contains("not to root, us or uid 65533 (ECR_BROKER_UID)"), "{err}");
        // The socket of the named uid in a folder of someone else: refused.
        std::os::unix::fs::chown(&dir, Some(4242), None).unwrap();
        assert!(check_socket_owner_with(&sock, Some(65532)).unwrap_err().contains("its folder"));
        // ... or in its own folder that others can write to: refused.
        std::os::unix::fs::chown(&dir, Some(65532), None).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
        assert!(check_socket_owner_with(&sock, Some(65532)).unwrap_err().contains("replace it"));
    }

    #[test]
    fn an_absent_socket_is_absent() {
        let dir = tempfile::tempdir().unwrap();
        let r = get(&dir.path().join("none.sock"), "/healthz", Duration::from_secs(1));
        assert!(matches!(r, Err(ClientError::Absent)));
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(encode_query("a.b-c"), "a.b-c");
        assert_eq!(encode_query("a b&c=%"), "a+b%26c%3D%25");
    }

    #[test]
    fn a_registry_survives_the_token_path_round_trip() {
        for host in ["123456789012.dkr.ecr.us-east-1.amazonaws.com", "https://a.b/v2/", "a b&registry=c", "ü%+", ""] {
            let path = token_path(host);
            let query = path.strip_prefix("/v1/token?").expect(&path);
            assert_eq!(registry_from_query(query).as_deref(), Some(host), "{path}");
        }
    }

    #[test]
    fn the_registry_is_found_in_a_query_and_broken_escapes_are_refused() {
        assert_eq!(registry_from_query("registry=a.b&x=1").as_deref(), Some("a.b"));
        assert_eq!(registry_from_query("x=1&registry=https%3A%2F%2Fa.b").as_deref(), Some("https://a.b"));
        assert_eq!(registry_from_query("registry=a&registry=b").as_deref(), Some("a"), "the first one");
        assert_eq!(registry_from_query("x=1"), None);
        assert_eq!(registry_from_query("registry=%zz"), None);
        assert_eq!(registry_from_query("registry=%4"), None);
        assert_eq!(registry_from_query("registry=%ff"), None, "not UTF-8");
    }

    #[test]
    fn error_codes_and_tokens_convert_both_ways() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            assert_eq!(ErrorResponse::new(code, "why").code(), Some(code));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
        let t = Token { username: "AWS".into(), password: "pw".into(), proxy_endpoint: None, fetched_at: 10, expires_at: 20 };
        let r = TokenResponse::new("h", "default", t.clone());
        assert_eq!((r.registry.as_str(), r.identity.as_str()), ("h", "default"));
        assert_eq!(r.token(), t);
    }
}
