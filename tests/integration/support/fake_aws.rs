//! A fake AWS endpoint for what moto cannot do: refuse, throttle, fail, stall, hand out a
//! distinct token per call, or count calls exactly.
//!
//! It listens on `127.0.0.1:<free port>` and speaks just enough HTTP/1.1 (one request per
//! connection, answered with `Connection: close`) for the AWS SDK pointed at it with
//! `AWS_ENDPOINT_URL=<endpoint()>`:
//!
//! | operation name (for [`FakeAws::calls`]) | how it is recognised | answer |
//! |---|---|---|
//! | `"GetAuthorizationToken"` | `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken` (awsJson1_1) | `{"authorizationData":[{"authorizationToken":base64("AWS:fake-token-N"),"expiresAt":<now+lifetime>,"proxyEndpoint":"https://123456789012.dkr.ecr.us-east-1.amazonaws.com"}]}` |
//! | `"PublicGetAuthorizationToken"` | `X-Amz-Target: SpencerFrontendService.GetAuthorizationToken` (ECR Public, awsJson1_1) | `{"authorizationData":{"authorizationToken":base64("AWS:fake-token-N"),"expiresAt":<now+lifetime>}}` |
//! | `"GetCallerIdentity"` | form body `Action=GetCallerIdentity` (STS speaks awsQuery; answer is XML) | Arn `arn:aws:iam::123456789012:user/fake` (see [`FakeAws::set_caller_arn`]) |
//!
//! | `"AssumeRoleWithWebIdentity"` | form body `Action=AssumeRoleWithWebIdentity` (unsigned) | session credentials `ASIAFAKEWEBIDENTITY<N>` / `fake-web-identity-secret-<N>` / `fake-web-identity-session-<N>` for role `RoleArn`, expiring after `DurationSeconds` (default 3600); GetCallerIdentity signed with that key id answers `arn:aws:sts::<role's account>:assumed-role/<role name>/<RoleSessionName>` |
//!
//! Anything else gets HTTP 400 `UnknownOperationException` and is counted as `"Unknown"`.
//!
//! Public API (kept stable: the broker tests use it too):
//! - [`FakeAws::start`] `-> FakeAws`; dropping it stops the server.
//! - [`FakeAws::endpoint`] `-> String`, `http://127.0.0.1:PORT`.
//! - [`FakeAws::calls`]`(op) -> usize`: requests received for `op`, counted whatever the mode
//!   (so an SDK retrying a throttled call shows 3 calls: the SDK's standard retry makes up
//!   to 3 attempts on throttling and 5xx errors).
//! - [`FakeAws::requests`] `-> Vec<Request>`: every request in order, with the SigV4
//!   region and access key id taken from its `Authorization` header.
//! - [`FakeAws::set_mode`]`(Mode)`: how the two token operations answer from now on:
//!   [`Mode::Ok`] (default); [`Mode::Deny`]: HTTP 400, `x-amzn-ErrorType: AccessDeniedException`,
//!   `{"__type":"AccessDeniedException","message":"User: arn:aws:iam::123456789012:user/fake is not
//!   authorized to perform: ecr:GetAuthorizationToken"}`; [`Mode::Throttle`]: HTTP 400
//!   `ThrottlingException`; [`Mode::ServerError`]: HTTP 500 `ServerException`;
//!   [`Mode::Delay`]`(d)`: answer OK after sleeping `d`; [`Mode::Malformed`]`(t)`: HTTP 200
//!   whose `authorizationToken` is `t` verbatim (not base64, no `user:password`, empty...).
//! - [`FakeAws::set_sts_mode`]`(Mode)`: the same for STS GetCallerIdentity (XML errors
//!   `AccessDenied`, `Throttling`, `InternalFailure`); default [`Mode::Ok`].
//! - [`FakeAws::set_token_lifetime`]`(secs: i64)`: `expiresAt = now + secs` (default 43200;
//!   negative: already expired on arrival).
//! - [`FakeAws::set_caller_arn`]`(arn)`: the ARN GetCallerIdentity answers.
//! - [`FakeAws::set_caller_arn_for`]`(access_key_id, arn)`: the ARN it answers to requests
//!   signed with that access key id (others get the one above): two profiles, two principals.
//! - [`FakeAws::token_password`]`(n) -> String`: the password of the n-th token handed out
//!   (1-based): `fake-token-<n>`; every token is distinct.
//! - [`FakeAws::tokens_issued`] `-> usize`.
//! - [`FakeAws::web_identity_calls`] `-> Vec<WebIdentityCall>`: every AssumeRoleWithWebIdentity
//!   received, with the role, session name, duration and web identity token it carried; the
//!   n-th (1-based) was answered with [`FakeAws::web_identity_key`]`(n)`.

use base64::Engine;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How the fake answers an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Ok,
    Deny,
    Throttle,
    ServerError,
    Delay(Duration),
    /// Token operations answer 200 with this `authorizationToken` as is (STS answers OK).
    Malformed(&'static str),
}

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// `GetAuthorizationToken`, `PublicGetAuthorizationToken`, `GetCallerIdentity` or `Unknown`.
    pub op: String,
    /// The SigV4 credential scope's region, `-` if unsigned.
    pub region: String,
    /// The SigV4 access key id, `-` if unsigned.
    pub access_key_id: String,
}

/// One AssumeRoleWithWebIdentity the fake received (form fields, decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebIdentityCall {
    pub role_arn: String,
    pub session_name: String,
    pub duration_secs: Option<i64>,
    pub web_identity_token: String,
}

struct State {
    web_identity: Vec<WebIdentityCall>,
    /// Access key id of each session handed out, and the assumed-role ARN it belongs to.
    sessions: Vec<(String, String)>,
    mode: Mode,
    sts_mode: Mode,
    lifetime: i64,
    caller_arn: String,
    arns_by_key: std::collections::HashMap<String, String>,
    requests: Vec<Request>,
    issued: usize,
}

/// The fake server; see the module documentation.
pub struct FakeAws {
    port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

const MAX_HEADER_BYTES: usize = 64 * 1024;
const MAX_BODY_BYTES: usize = 1024 * 1024;

impl FakeAws {
    /// Start listening on a free port of 127.0.0.1.
    pub fn start() -> FakeAws {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State {
            web_identity: Vec::new(),
            sessions: Vec::new(),
            mode: Mode::Ok,
            sts_mode: Mode::Ok,
            lifetime: 43200,
            caller_arn: "arn:aws:iam::123456789012:user/fake".into(),
            arns_by_key: Default::default(),
            requests: Vec::new(),
            issued: 0,
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (st, sp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if sp.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let st = st.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &st);
                });
            }
        });
        FakeAws { port, state, stop, thread: Some(thread) }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn calls(&self, op: &str) -> usize {
        self.state.lock().unwrap().requests.iter().filter(|r| r.op == op).count()
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state.lock().unwrap().mode = mode;
    }

    pub fn set_sts_mode(&self, mode: Mode) {
        self.state.lock().unwrap().sts_mode = mode;
    }

    pub fn set_token_lifetime(&self, secs: i64) {
        self.state.lock().unwrap().lifetime = secs;
    }

    pub fn set_caller_arn(&self, arn: &str) {
        self.state.lock().unwrap().caller_arn = arn.to_string();
    }

    pub fn set_caller_arn_for(&self, access_key_id: &str, arn: &str) {
        self.state.lock().unwrap().arns_by_key.insert(access_key_id.to_string(), arn.to_string());
    }

    pub fn token_password(n: usize) -> String {
        format!("fake-token-{n}")
    }

    pub fn tokens_issued(&self) -> usize {
        self.state.lock().unwrap().issued
    }

    pub fn web_identity_calls(&self) -> Vec<WebIdentityCall> {
        self.state.lock().unwrap().web_identity.clone()
    }

    /// The access key id of the n-th (1-based) web identity session handed out.
    pub fn web_identity_key(n: usize) -> String {
        format!("ASIAFAKEWEBIDENTITY{n}")
    }
}

impl Drop for FakeAws {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct HttpRequest {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpRequest {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn read_request(conn: &mut TcpStream) -> std::io::Result<Option<HttpRequest>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let header_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEADER_BYTES {
            return Ok(None);
        }
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let _request_line = lines.next().unwrap_or("");
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    let mut req = HttpRequest { headers, body: buf[header_end + 4..].to_vec() };
    let len: usize = req.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0).min(MAX_BODY_BYTES);
    if req.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
        conn.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    while req.body.len() < len {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        req.body.extend_from_slice(&chunk[..n]);
    }
    Ok(Some(req))
}

fn sigv4_scope(auth: &str) -> (String, String) {
    // Credential=AKID/20240101/us-east-1/ecr/aws4_request
    if let Some(i) = auth.find("Credential=") {
        let rest = &auth[i + "Credential=".len()..];
        let cred = rest.split([',', ' ']).next().unwrap_or("");
        let parts: Vec<&str> = cred.split('/').collect();
        if parts.len() >= 3 {
            return (parts[2].to_string(), parts[0].to_string());
        }
    }
    ("-".into(), "-".into())
}

fn now_secs() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

struct Response {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

fn serve(mut conn: TcpStream, state: &Mutex<State>) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(10)))?;
    let Some(req) = read_request(&mut conn)? else { return Ok(()) };
    let target = req.header("x-amz-target").unwrap_or("").to_string();
    let body_text = String::from_utf8_lossy(&req.body).to_string();
    let op = match target.as_str() {
        "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken" => "GetAuthorizationToken",
        "SpencerFrontendService.GetAuthorizationToken" => "PublicGetAuthorizationToken",
        "" if body_text.split('&').any(|p| p == "Action=GetCallerIdentity") => "GetCallerIdentity",
        "" if body_text.split('&').any(|p| p == "Action=AssumeRoleWithWebIdentity") => "AssumeRoleWithWebIdentity",
        _ => "Unknown",
    };
    let (region, access_key_id) = sigv4_scope(req.header("authorization").unwrap_or(""));
    if op == "AssumeRoleWithWebIdentity" {
        let resp = web_identity_response(&body_text, state);
        return write_response(conn, resp, 0);
    }
    let (mode, lifetime, arn, n) = {
        let mut s = state.lock().unwrap();
        let arn = s
            .sessions
            .iter()
            .find(|(k, _)| *k == access_key_id)
            .map(|(_, a)| a.clone())
            .or_else(|| s.arns_by_key.get(&access_key_id).cloned())
            .unwrap_or_else(|| s.caller_arn.clone());
        s.requests.push(Request { op: op.to_string(), region, access_key_id });
        let mode = if op == "GetCallerIdentity" { s.sts_mode } else { s.mode };
        let ok_token = matches!(mode, Mode::Ok | Mode::Delay(_));
        if ok_token && op.ends_with("GetAuthorizationToken") {
            s.issued += 1;
        }
        (mode, s.lifetime, arn, s.issued)
    };
    if let Mode::Delay(d) = mode {
        std::thread::sleep(d);
    }
    let resp = match op {
        "GetAuthorizationToken" | "PublicGetAuthorizationToken" => token_response(op, mode, lifetime, n),
        "GetCallerIdentity" => sts_response(mode, &arn),
        _ => json_error(400, "UnknownOperationException", &format!("fake AWS does not implement {target:?}")),
    };
    write_response(conn, resp, n)
}

fn write_response(mut conn: TcpStream, resp: Response, n: usize) -> std::io::Result<()> {
    let reason = match resp.status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        500 => "Internal Server Error",
        _ => "Unknown",
    };
    let mut out = format!("HTTP/1.1 {} {}\r\n", resp.status, reason);
    for (k, v) in &resp.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("Content-Length: {}\r\nx-amzn-RequestId: fake-{}\r\nConnection: close\r\n\r\n", resp.body.len(), n));
    out.push_str(&resp.body);
    conn.write_all(out.as_bytes())?;
    conn.flush()?;
    let _ = conn.shutdown(Shutdown::Write);
    Ok(())
}

fn json_error(status: u16, code: &str, message: &str) -> Response {
    Response {
        status,
        headers: vec![("Content-Type", "application/x-amz-json-1.1".into()), ("x-amzn-ErrorType", code.to_string())],
        body: serde_json::json!({"__type": code, "message": message}).to_string(),
    }
}

fn token_response(op: &str, mode: Mode, lifetime: i64, n: usize) -> Response {
    match mode {
        Mode::Deny => json_error(
            400,
            "AccessDeniedException",
            "User: arn:aws:iam::123456789012:user/fake is not authorized to perform: ecr:GetAuthorizationToken",
        ),
        Mode::Throttle => json_error(400, "ThrottlingException", "Rate exceeded"),
        Mode::ServerError => json_error(500, "ServerException", "fake AWS internal error"),
        Mode::Ok | Mode::Delay(_) | Mode::Malformed(_) => {
            let token = if let Mode::Malformed(t) = mode {
                t.to_string()
            } else {
                base64::engine::general_purpose::STANDARD.encode(format!("AWS:{}", FakeAws::token_password(n)))
            };
            let expires = (now_secs() + lifetime as f64).floor();
            let body = if op == "PublicGetAuthorizationToken" {
                serde_json::json!({"authorizationData": {"authorizationToken": token, "expiresAt": expires}})
            } else {
                serde_json::json!({"authorizationData": [{
                    "authorizationToken": token,
                    "expiresAt": expires,
                    "proxyEndpoint": "https://123456789012.dkr.ecr.us-east-1.amazonaws.com",
                }]})
            };
            Response { status: 200, headers: vec![("Content-Type", "application/x-amz-json-1.1".into())], body: body.to_string() }
        }
    }
}

fn sts_response(mode: Mode, arn: &str) -> Response {
    let xml_error = |status: u16, code: &str, message: &str| {
        Response {
        status,
        headers: vec![("Content-Type", "text/xml".into())],
        body: format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>fake</RequestId></ErrorResponse>"
        ),
    }
    };
    match mode {
        Mode::Deny => xml_error(403, "AccessDenied", "User is not authorized to perform: sts:GetCallerIdentity"),
        Mode::Throttle => xml_error(400, "Throttling", "Rate exceeded"),
        Mode::ServerError => xml_error(500, "InternalFailure", "fake AWS internal error"),
        Mode::Ok | Mode::Delay(_) | Mode::Malformed(_) => {
            let account = arn.split(':').nth(4).unwrap_or("123456789012");
            Response {
                status: 200,
                headers: vec![("Content-Type", "text/xml".into())],
                body: format!(
                    "<GetCallerIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><GetCallerIdentityResult><Arn>{arn}</Arn><UserId>AIDAFAKEUSERID</UserId><Account>{account}</Account></GetCallerIdentityResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></GetCallerIdentityResponse>"
                ),
            }
        }
    }
}

/// `application/x-www-form-urlencoded` value decoding.
fn form_decode(v: &str) -> String {
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(x) => {
                        out.push(x);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').filter_map(|p| p.split_once('=')).find(|(k, _)| *k == name).map(|(_, v)| form_decode(v))
}

/// AssumeRoleWithWebIdentity: record the call, hand out the next session.
fn web_identity_response(body: &str, state: &Mutex<State>) -> Response {
    let role_arn = form_field(body, "RoleArn").unwrap_or_default();
    let session_name = form_field(body, "RoleSessionName").unwrap_or_default();
    let duration_secs = form_field(body, "DurationSeconds").and_then(|d| d.parse::<i64>().ok());
    let web_identity_token = form_field(body, "WebIdentityToken").unwrap_or_default();
    let account = role_arn.split(':').nth(4).unwrap_or("123456789012").to_string();
    let role_name = role_arn.rsplit('/').next().unwrap_or("").to_string();
    let assumed = format!("arn:aws:sts::{account}:assumed-role/{role_name}/{session_name}");
    let n = {
        let mut s = state.lock().unwrap();
        s.requests.push(Request { op: "AssumeRoleWithWebIdentity".into(), region: "-".into(), access_key_id: "-".into() });
        s.web_identity.push(WebIdentityCall { role_arn, session_name, duration_secs, web_identity_token });
        let n = s.web_identity.len();
        s.sessions.push((FakeAws::web_identity_key(n), assumed.clone()));
        n
    };
    let expires = now_secs() as i64 + duration_secs.unwrap_or(3600);
    let expiration =
        time::OffsetDateTime::from_unix_timestamp(expires).unwrap().format(&time::format_description::well_known::Rfc3339).unwrap();
    Response {
        status: 200,
        headers: vec![("Content-Type", "text/xml".into())],
        body: format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult>\
<SubjectFromWebIdentityToken>fake-subject</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience>\
<AssumedRoleUser><Arn>{assumed}</Arn><AssumedRoleId>AROAFAKEROLEID:fake</AssumedRoleId></AssumedRoleUser>\
<Credentials><AccessKeyId>{}</AccessKeyId><SecretAccessKey>fake-web-identity-secret-{n}</SecretAccessKey>\
<SessionToken>fake-web-identity-session-{n}</SessionToken><Expiration>{expiration}</Expiration></Credentials>\
</AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>fake</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>",
            FakeAws::web_identity_key(n)
        ),
    }
}
