//! The `ecr-broker` daemon against hostile local users (issue 9): the real binary, started
//! through tests/integration/support/broker.rs against the fake AWS, attacked over its socket by other
//! uids. Each test pins one bound: the policy per identity and its refusals, connection
//! shares, header timeouts and sizes, rate-limited logs, bounded background work and slots,
//! error classes, SIGHUP with the file gone, and a broker that cannot be dumped.
//!
//! "Another user" connects from a thread that switched only its own effective uid with the
//! raw `setresuid` system call (the C library would switch every thread): SO_PEERCRED then
//! names that uid. Tests run as root, as the rest of the suite does.

use crate::support;

use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::broker::{broker_bin, Broker, HOST};
use support::fake_aws::{FakeAws, Mode};

const OTHER_ACCOUNT: &str = "210987654321.dkr.ecr.us-east-1.amazonaws.com";
const NOBODY: u32 = 65534;

fn require_root() {
    assert_eq!(unsafe { libc::geteuid() }, 0, "these tests connect as other uids and must run as root");
}

/// `n` connections to `socket` made as `uid` (and its gid), from a thread that switches only
/// its own credentials. Connections the broker closes at once are still returned.
fn connect_as(uid: u32, socket: &Path, n: usize) -> Vec<UnixStream> {
    require_root();
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        // SAFETY: raw setresgid/setresuid change only this thread's credentials; the saved
        // uid stays 0, and the thread ends right after.
        unsafe {
            assert_eq!(libc::syscall(libc::SYS_setresgid, -1i64, uid as i64, -1i64), 0, "setresgid");
            assert_eq!(libc::syscall(libc::SYS_setresuid, -1i64, uid as i64, -1i64), 0, "setresuid");
        }
        (0..n).map(|_| UnixStream::connect(&socket).expect("connect as another uid")).collect()
    })
    .join()
    .unwrap()
}

/// One `GET path` as `uid` (`Connection: close`): (status, body).
fn get_as(uid: u32, socket: &Path, path: &str) -> (u16, String) {
    request_as(uid, socket, path, "close")
}

fn request_as(uid: u32, socket: &Path, path: &str, connection: &str) -> (u16, String) {
    let mut s = connect_as(uid, socket, 1).pop().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: broker\r\nConnection: {connection}\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap_or_else(|e| panic!("GET {path} as uid {uid}: the broker did not close the connection: {e}"));
    parse(&out)
}

fn parse(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// Wait until `cond` holds (up to `secs`), else fail with `what` and the broker's log.
fn wait_for(broker: &Broker, secs: u64, what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(secs), "{what}:\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn hup(broker: &Broker) {
    unsafe { libc::kill(broker.child.as_ref().expect("running").id() as i32, libc::SIGHUP) };
}

fn status_json(broker: &Broker) -> serde_json::Value {
    serde_json::from_slice(&broker.request("/v1/status").body).unwrap()
}

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn a_uid_with_no_usable_identity_gets_403_on_token_status_and_metrics_but_healthz_answers() {
    let fake = FakeAws::start();
    let broker = Broker::start(&fake, "socket_mode = \"0666\"\n");
    assert_eq!(broker.token(HOST).0, 200, "root is served");
    for path in ["/v1/status", "/metrics", &format!("/v1/token?registry={HOST}")] {
        let (status, body) = get_as(NOBODY, &broker.socket(), path);
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains("uid 65534 may use no identity"), "{path}: {body}");
        assert!(!body.contains("arn:aws") && !body.contains("us-east-1"), "a refused caller learns nothing: {body}");
    }
    assert_eq!(get_as(NOBODY, &broker.socket(), "/healthz").0, 200, "/healthz stays open");
    // Asked to keep the connection, the broker still closes it after its one answer.
    let start = Instant::now();
    assert_eq!(request_as(NOBODY, &broker.socket(), "/v1/status", "keep-alive").0, 403);
    assert!(start.elapsed() < Duration::from_secs(2), "a refused caller's connection was kept {:?}", start.elapsed());
}

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn identity_allow_lists_decide_and_the_refusal_names_the_identity() {
    let fake = FakeAws::start();
    let config = "socket_mode = \"0666\"\n[identities.default]\nallow_uids = [65534]\n[identities.prod]\nprofile = \"prod\"\n\
                  [[rules]]\nregistry = \"210987654321\"\nidentity = \"prod\"\n";
    let broker = Broker::start(&fake, config);
    let (status, body) = get_as(NOBODY, &broker.socket(), &format!("/v1/token?registry={HOST}"));
    assert_eq!(status, 200, "[identities.default] allow_uids lets uid 65534 use it: {body}\n{}", broker.log());
    let (status, body) = get_as(NOBODY, &broker.socket(), &format!("/v1/token?registry={OTHER_ACCOUNT}"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("identity \\\"prod\\\", which uid 65534 may not use"), "the refusal says what it means: {body}");
    assert_eq!(get_as(NOBODY, &broker.socket(), "/v1/status").0, 200, "a caller with a usable identity reads status");
}

#[test]
fn an_allow_list_on_a_rule_is_refused_by_check_config_start_and_sighup() {
    let fake = FakeAws::start();
    let broker = Broker::start(&fake, "");
    let bad = "[[rules]]\nregistry = \"210987654321\"\nallow_uids = [1000]\n";
    let path = broker.dir.join("rule-allow.toml");
    std::fs::write(&path, bad).unwrap();
    let out = Command::new(broker_bin()).args(["--user", "--check-config", "--config"]).arg(&path).env_clear().output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "--check-config refuses it: {err}");
    assert!(err.contains("[identities.default] allow_uids"), "the error says where the list belongs: {err}");
    let out = Command::new(broker_bin())
        .args(["--user", "--config"])
        .arg(&path)
        .arg("--socket")
        .arg(broker.dir.join("other.sock"))
        .arg("--state")
        .arg(broker.dir.join("other-state.json"))
        .env_clear()
        .env("HOME", &broker.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "start refuses it: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(broker.config_path(), bad).unwrap();
    hup(&broker);
    wait_for(&broker, 5, "SIGHUP refuses it", || broker.log().contains("reload refused") && broker.log().contains("allow_uids"));
    assert_eq!(broker.token(HOST).0, 200);
}

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn sighup_with_the_config_file_deleted_keeps_the_running_config() {
    let fake = FakeAws::start();
    let broker = Broker::start(&fake, "socket_mode = \"0666\"\nallow_uids = [65534]\n");
    assert_eq!(get_as(NOBODY, &broker.socket(), &format!("/v1/token?registry={HOST}")).0, 200);
    std::fs::remove_file(broker.config_path()).unwrap();
    hup(&broker);
    wait_for(&broker, 5, "the reload is refused", || broker.log().contains("reload refused"));
    let (status, body) = get_as(NOBODY, &broker.socket(), &format!("/v1/token?registry={HOST}"));
    assert_eq!(status, 200, "the running policy still serves uid 65534: {body}");
}

/// Spawn the broker with a soft fd limit of 1,024 (systemd's default) while the hard limit
/// stays as it is: the broker must raise it itself.
fn start_with_low_fd_limit(fake: &FakeAws, config: &str) -> Broker {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    assert!(lim.rlim_max > 2048, "the hard fd limit must allow more than 2048 to show anything ({})", lim.rlim_max);
    let low = libc::rlimit { rlim_cur: 1024, rlim_max: lim.rlim_max };
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &low) };
    let broker = Broker::start(fake, config);
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) };
    broker
}

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn a_thousand_idle_connections_from_one_uid_cannot_stop_another_uid_getting_a_token() {
    let fake = FakeAws::start();
    let broker = start_with_low_fd_limit(&fake, "socket_mode = \"0666\"\nallow_uids = [65534, 65533]\n");
    let hostile = connect_as(NOBODY, &broker.socket(), 1100);
    let start = Instant::now();
    let mut s = connect_as(65533, &broker.socket(), 1).pop().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET /v1/token?registry={HOST} HTTP/1.1\r\nHost: broker\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let read = s.read_to_end(&mut out);
    let (status, _) = parse(&out);
    assert!(read.is_ok() && status == 200, "uid 65533 was starved by uid 65534's idle connections ({read:?}, {status}):\n{}", broker.log());
    assert!(start.elapsed() < Duration::from_secs(3), "took {:?}", start.elapsed());
    drop(hostile);
    let pid = broker.child.as_ref().unwrap().id();
    let fds = || std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count();
    wait_for(&broker, 5, "the broker still holds the hostile connections' fds", || fds() < 100);
}

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn a_connection_sending_partial_headers_is_closed_within_the_header_timeout() {
    let fake = FakeAws::start();
    let broker = Broker::start(&fake, "socket_mode = \"0666\"\nallow_uids = [65534]\nheader_timeout_secs = 1\n");
    let mut conns = connect_as(NOBODY, &broker.socket(), 2);
    let (mut trickle, mut idle) = (conns.remove(0), conns.remove(0));
    let start = Instant::now();
    trickle.write_all(b"GET /v1/status HTTP/1.1\r\nHost: broker\r\n").unwrap();
    idle.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // One header byte every 100 ms: never complete.
    let closed_after = loop {
        std::thread::sleep(Duration::from_millis(100));
        if trickle.write_all(b"X").is_err() {
            break start.elapsed();
        }
        assert!(start.elapsed() < Duration::from_secs(10), "a trickling connection was kept 10 s");
    };
    assert!(closed_after < Duration::from_millis(2500), "closed after {closed_after:?}");
    let mut buf = Vec::new();
    let _ = idle.read_to_end(&mut buf);
    assert!(start.elapsed() < Duration::from_secs(3), "a connection that sent nothing was kept {:?}", start.elapsed());
    // A keep-alive connection that went idle after an answer is closed too.
    let mut ka = connect_as(NOBODY, &broker.socket(), 1).pop().unwrap();
    ka.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    ka.write_all(b"GET /healthz HTTP/1.1\r\nHost: broker\r\n\r\n").unwrap();
    let t = Instant::now();
    let mut all = Vec::new();
    ka.read_to_end(&mut all).expect("the idle keep-alive connection is closed");
    assert_eq!(parse(&all).0, 200);
    assert!(t.elapsed() < Duration::from_millis(2500), "idle keep-alive kept {:?}", t.elapsed());
}

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn oversized_headers_are_refused() {
    let fake = FakeAws::start();
    let broker = Broker::start(&fake, "socket_mode = \"0666\"\nallow_uids = [65534]\n");
    let mut s = connect_as(NOBODY, &broker.socket(), 1).pop().unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let big = "a".repeat(60 * 1024);
    // Written from a thread: the broker may close before reading it all.
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let _ = write!(w, "GET /v1/status HTTP/1.1\r\nHost: broker\r\nX-Pad: {big}\r\n\r\n");
    });
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    writer.join().unwrap();
    let (status, body) = parse(&out);
    assert_ne!(status, 200, "60 KiB of headers were accepted: {body}");
    assert!(status == 431 || status == 0, "{status} {body}");
}

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn refusals_are_logged_once_per_interval_with_a_count() {
    let fake = FakeAws::start();
    let broker = Broker::start(&fake, "socket_mode = \"0666\"\n");
    for _ in 0..100 {
        assert_eq!(get_as(NOBODY, &broker.socket(), "/v1/status").0, 403);
    }
    let log = broker.log();
    let lines = log.lines().filter(|l| l.contains("refused") && l.contains("65534")).count();
    assert!((1..=2).contains(&lines), "{lines} refusal lines for 100 refusals:\n{log}");
}

#[test]
fn slots_and_registry_names_per_slot_are_capped() {
    let fake = FakeAws::start();
    let broker = Broker::start(&fake, "max_slots = 3\nmax_registries_per_slot = 2\n");
    let regions = ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1", "eu-central-1"];
    for r in regions {
        assert_eq!(broker.token(&format!("123456789012.dkr.ecr.{r}.amazonaws.com")).0, 200);
    }
    for account in ["111111111111", "222222222222", "333333333333"] {
        assert_eq!(broker.token(&format!("{account}.dkr.ecr.eu-central-1.amazonaws.com")).0, 200);
    }
    let v = status_json(&broker);
    let tokens = v["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 3, "{v:#}");
    let newest = tokens.iter().find(|t| t["region"] == "eu-central-1").expect("the newest slot is kept");
    assert_eq!(newest["registries"].as_array().unwrap().len(), 2, "{newest:#}");
    assert!(tokens.iter().all(|t| t["region"] != "us-east-1"), "the least recently used slot made room: {v:#}");
}

#[test]
fn failing_cold_slots_are_not_retried_in_the_background() {
    let fake = FakeAws::start();
    fake.set_mode(Mode::ServerError);
    let broker = Broker::start(&fake, "");
    for r in ["us-east-1", "us-east-2", "us-west-1", "us-west-2", "eu-west-1"] {
        assert_eq!(broker.token(&format!("123456789012.dkr.ecr.{r}.amazonaws.com")).0, 502);
    }
    let after_requests = fake.calls("GetAuthorizationToken");
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(fake.calls("GetAuthorizationToken"), after_requests, "cold failing slots were fetched again with nobody asking");
    let v = status_json(&broker);
    assert!(v["tokens"].as_array().unwrap().iter().all(|t| t["error_kind"] == "transient"), "{v:#}");
}

#[test]
fn access_denied_is_a_permanent_error_backed_off_for_minutes_and_status_says_so() {
    let fake = FakeAws::start();
    fake.set_mode(Mode::Deny);
    let broker = Broker::start(&fake, "");
    assert_eq!(broker.token(HOST).0, 502);
    let calls = fake.calls("GetAuthorizationToken");
    let (status, body) = broker.token(HOST);
    assert_eq!(status, 502, "{body}");
    assert_eq!(fake.calls("GetAuthorizationToken"), calls, "no new call during the back-off");
    let v = status_json(&broker);
    let t = &v["tokens"][0];
    assert_eq!(t["error_kind"], "permanent", "{v:#}");
    let now = ecr_cred::token::now_unix();
    assert!(t["retry_at"].as_i64().unwrap() >= now + 25, "a permanent error backs off for minutes: {t:#}");
}

#[test]
fn missing_credentials_are_not_reported_as_unreachable_and_the_log_stays_one_line_per_event() {
    let fake = FakeAws::start();
    let broker = Broker::start_with_env(&fake, "", &[("AWS_ACCESS_KEY_ID", ""), ("AWS_SECRET_ACCESS_KEY", "")]);
    let (status, body) = broker.token(HOST);
    assert_eq!(status, 502, "{body}");
    assert!(!body.to_string().contains("could not reach"), "missing credentials are not a network problem: {body}");
    assert!(body.to_string().contains("credentials"), "{body}");
    let v = status_json(&broker);
    assert_eq!(v["tokens"][0]["error_kind"], "permanent", "{v:#}");
    for line in broker.log().lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with(|c: char| c.is_ascii_digit()),
            "a log line that is not an event of its own (a multi-line dump?): {line:?}\n{}",
            broker.log()
        );
    }
}

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn the_broker_cannot_be_dumped() {
    require_root();
    let dir = tempfile::Builder::new().prefix("broker-nobody-").tempdir().unwrap();
    std::os::unix::fs::chown(dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let socket = dir.path().join("b.sock");
    std::fs::write(dir.path().join("config.toml"), "").unwrap();
    use std::os::unix::process::CommandExt;
    let mut child = Command::new(broker_bin())
        .args(["--user", "--config"])
        .arg(dir.path().join("config.toml"))
        .arg("--socket")
        .arg(&socket)
        .arg("--state")
        .arg(dir.path().join("state.json"))
        .env_clear()
        .env("HOME", dir.path())
        .uid(NOBODY)
        .gid(NOBODY)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !socket.exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "the broker did not start as uid 65534");
        std::thread::sleep(Duration::from_millis(20));
    }
    let proc = format!("/proc/{}", child.id());
    // The kernel gives a non-dumpable process's /proc entries to root.
    let owner = std::fs::metadata(format!("{proc}/environ")).unwrap().uid();
    let limits = std::fs::read_to_string(format!("{proc}/limits")).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(owner, 0, "the broker running as uid 65534 is dumpable (its /proc files belong to it)");
    let core = limits.lines().find(|l| l.starts_with("Max core file size")).unwrap();
    assert!(core.split_whitespace().nth(4) == Some("0"), "core files are not limited to 0: {core}");
}

// --- metrics_listen: /metrics over TCP, never a token ----------------------------------------

/// One HTTP/1.1 GET over TCP to 127.0.0.1:`port`: (status, body).
fn tcp_get(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics_listen");
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let status = raw.split(' ').nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

#[test]
fn metrics_listen_serves_metrics_and_healthz_over_tcp_but_never_a_token() {
    let fake = FakeAws::start();
    let port = support::free_port();
    let broker = Broker::start(&fake, &format!("metrics_listen = \"127.0.0.1:{port}\"\n"));
    let (status, _) = broker.token(HOST);
    assert_eq!(status, 200, "{}", broker.log());
    let secret = FakeAws::token_password(1);

    let (code, body) = tcp_get(port, "/metrics");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("ecr_broker_upstream_calls"), "Prometheus text: {body}");
    let (code, body) = tcp_get(port, "/healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    for path in [format!("/v1/token?registry={HOST}"), "/v1/status".to_string()] {
        let (code, body) = tcp_get(port, &path);
        assert_eq!(code, 404, "{path} is not served over TCP: {body}");
        assert!(!body.contains(&secret), "no token over TCP");
    }
}

#[test]
fn a_bad_metrics_listen_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "metrics_listen = \"localhost\"\n").unwrap();
    let out = std::process::Command::new(support::broker::broker_bin())
        .arg("--check-config")
        .arg(format!("--config={}", config.display()))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("metrics_listen"), "{out:?}");
}
