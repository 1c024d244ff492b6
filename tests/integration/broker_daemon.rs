//! The `ecr-broker` daemon, run as a real process against the fake AWS endpoint: one
//! upstream call for many cold clients, background refresh, serving through throttling,
//! surviving restarts and SIGKILL, and refusing callers its policy does not allow.

use crate::support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};
use support::broker::{broker_bin, Broker, HOST, KEY_ID, SECRET};
use support::fake_aws::{FakeAws, Mode};

const OTHER_ACCOUNT: &str = "210987654321.dkr.ecr.us-east-1.amazonaws.com";

fn password(v: &serde_json::Value) -> String {
    v["password"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_thousand_concurrent_cold_requests_make_one_upstream_call() {
    let fake = FakeAws::start();
    fake.set_mode(Mode::Delay(Duration::from_millis(300)));
    let broker = Arc::new(Broker::start(&fake, ""));
    let barrier = Arc::new(Barrier::new(1000));
    let threads: Vec<_> = (0..1000)
        .map(|i| {
            let (broker, barrier) = (broker.clone(), barrier.clone());
            // Ten registries of ten accounts, one region and identity: one token serves them all.
            let host = format!("1234567890{:02}.dkr.ecr.us-east-1.amazonaws.com", i % 10);
            std::thread::Builder::new()
                .stack_size(128 * 1024)
                .spawn(move || {
                    barrier.wait();
                    broker.token(&host)
                })
                .unwrap()
        })
        .collect();
    let answers: Vec<(u16, serde_json::Value)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert!(answers.iter().all(|(s, _)| *s == 200), "every request served: {:?}", answers.iter().find(|(s, _)| *s != 200));
    assert!(answers.iter().all(|(_, v)| password(v) == FakeAws::token_password(1)), "all got the one token");
    assert_eq!(fake.calls("GetAuthorizationToken"), 1, "exactly one upstream call");
}

/// Smoke test: the refresher runs in the daemon. Its timing (the jittered window, no caller
/// waiting) is pinned in virtual time by daemon/tests/store.rs.
#[test]
fn tokens_in_use_are_refreshed_in_the_background_before_they_expire() {
    let fake = FakeAws::start();
    fake.set_token_lifetime(4);
    let broker = Broker::start(&fake, "");
    let (status, first) = broker.token(HOST);
    assert_eq!(status, 200);
    let expires_at = first["expires_at"].as_i64().unwrap();
    // Refresh is due in the last quarter (3 s to 3.4 s in); nobody asks in between.
    let start = Instant::now();
    while fake.calls("GetAuthorizationToken") < 2 {
        assert!(start.elapsed() < Duration::from_secs(5), "no background refresh happened:\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(ecr_cred::token::now_unix() < expires_at, "refreshed before the first token expired");
    let (_, second) = broker.token(HOST);
    assert_eq!(password(&second), FakeAws::token_password(2));
}

/// Smoke test: through the daemon, a valid token is served while AWS throttles, an expired
/// one never, and the back-off holds. The back-off's numbers, single flight on failure and
/// serving through failures are pinned in virtual time by daemon/tests/store.rs.
#[test]
fn throttling_does_not_fail_a_caller_while_a_valid_token_is_held_and_causes_no_retry_storm() {
    let fake = FakeAws::start();
    fake.set_token_lifetime(6);
    let broker = Broker::start(&fake, "");
    let (_, first) = broker.token(HOST);
    let expires_at = first["expires_at"].as_i64().unwrap();
    fake.set_mode(Mode::Throttle);
    // Near the refresh point (4.5 s to 5.1 s in), a second or more before expiry.
    while ecr_cred::token::now_unix() < expires_at - 2 {
        std::thread::sleep(Duration::from_millis(50));
    }
    for _ in 0..10 {
        let (status, v) = broker.token(HOST);
        assert_eq!(status, 200, "a caller is served the valid token during throttling: {v}");
        assert_eq!(password(&v), FakeAws::token_password(1));
        std::thread::sleep(Duration::from_millis(20));
    }
    // Once it has expired, callers get the cause at once, and never the expired token.
    while ecr_cred::token::now_unix() <= expires_at {
        std::thread::sleep(Duration::from_millis(50));
    }
    let asked = Instant::now();
    let (status, v) = broker.token(HOST);
    assert_eq!(status, 502, "{v}");
    assert!(v["reason"].as_str().unwrap().contains("ThrottlingException"), "{v}");
    assert!(asked.elapsed() < Duration::from_secs(10));
    // SDK attempts (3 per fetch) under a 1 s, 2 s ... back-off: a handful, not a storm.
    let calls = fake.calls("GetAuthorizationToken");
    assert!(calls <= 16, "{calls} upstream calls in ~3 s of throttling is a retry storm");
}

#[test]
fn a_restarted_broker_serves_its_saved_tokens_without_an_upstream_call() {
    let fake = FakeAws::start();
    let mut broker = Broker::start(&fake, "");
    let (_, before) = broker.token(HOST);
    broker.signal(libc::SIGTERM);
    assert!(!broker.socket().exists(), "the socket file is removed on a clean stop");
    let mode = std::fs::metadata(broker.state()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "state file mode");
    assert!(!std::fs::read_to_string(broker.state()).unwrap().contains(SECRET));
    broker.spawn();
    let (status, after) = broker.token(HOST);
    assert_eq!(status, 200);
    assert_eq!(password(&after), password(&before));
    assert_eq!(fake.calls("GetAuthorizationToken"), 1, "no upstream call after the restart");
}

#[test]
fn a_broker_killed_under_load_loses_no_helper_request() {
    let fake = FakeAws::start();
    let mut broker = Broker::start(&fake, "");
    let stop_at = Instant::now() + Duration::from_secs(4);
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let mut helper = broker.helper();
            helper.env("AWS_ECR_DISABLE_CACHE", "1");
            std::thread::spawn(move || {
                let mut runs = Vec::new();
                while Instant::now() < stop_at {
                    runs.push(helper.get(HOST));
                }
                runs
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    broker.signal(libc::SIGKILL);
    let runs: Vec<_> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    let failed: Vec<_> = runs.iter().filter(|r| r.code != 0).collect();
    assert!(failed.is_empty(), "{} of {} gets failed, e.g. {:?}", failed.len(), runs.len(), failed.first());
    assert!(runs.len() > 20, "only {} gets ran", runs.len());
    assert!(fake.calls("GetAuthorizationToken") > 1, "after the kill, helpers fetched for themselves");
}

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn a_policy_refusal_reaches_the_user_and_is_not_bypassed() {
    let fake = FakeAws::start();
    // Who may use a token is set on the identity; the rule only routes the registry to it.
    let config = "socket_mode = \"0666\"\n[identities.team]\nallow_uids = [65534]\n[[rules]]\nregistry = \"210987654321.us-east-1\"\nidentity = \"team\"\n";
    let broker = Broker::start(&fake, config);
    let nobody = |host: &str| {
        let out = Command::new(support::helper_bin())
            .arg("get")
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/nonexistent")
            .env("AWS_ECR_DISABLE_CACHE", "1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", &broker.endpoint)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("ECR_BROKER_SOCKET", broker.socket())
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                use std::io::Write;
                c.stdin.take().unwrap().write_all(host.as_bytes())?;
                c.wait_with_output()
            })
            .unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned())
    };
    let (code, out) = nobody(OTHER_ACCOUNT);
    assert_eq!(code, Some(0), "identity team serves uid 65534 this registry: {out}\n{}", broker.log());
    let before = fake.calls("GetAuthorizationToken");
    let (code, out) = nobody(HOST);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("refused") && out.contains("uid 65534"), "the refusal names who and why: {out}");
    assert_eq!(fake.calls("GetAuthorizationToken"), before, "the helper did not fetch for itself instead");
    let metrics = String::from_utf8(broker.request("/metrics").body).unwrap();
    assert!(metrics.contains("ecr_broker_requests_total{result=\"forbidden\"} 1"), "{metrics}");
}

#[test]
fn the_socket_is_private_in_user_mode_and_status_shows_no_secret() {
    let fake = FakeAws::start();
    let broker = Broker::start(&fake, "");
    let mode = std::fs::metadata(broker.socket()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let (_, token) = broker.token(HOST);
    let status = String::from_utf8(broker.request("/v1/status").body).unwrap();
    let metrics = String::from_utf8(broker.request("/metrics").body).unwrap();
    for text in [&status, &metrics, &broker.log()] {
        assert!(!text.contains(&password(&token)), "a token leaked: {text}");
        assert!(!text.contains(SECRET));
    }
    let v: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(v["upstream_calls"], 1);
    assert_eq!(v["tokens"][0]["registries"][0], HOST);
    assert_eq!(v["tokens"][0]["principal"], "arn:aws:iam::123456789012:user/fake");
    assert!(metrics.contains("ecr_broker_upstream_calls_total 1"));
    assert!(metrics.contains("ecr_broker_token_seconds_remaining{identity=\"default\",region=\"us-east-1\",variant=\"standard\"}"));
}

#[test]
fn sighup_reloads_the_config_and_keeps_unchanged_identities_tokens() {
    let fake = FakeAws::start();
    let mut broker = Broker::start(&fake, "");
    broker.token(HOST);
    std::fs::write(
        broker.config_path(),
        "[identities.other]\nprofile = \"other\"\n[[rules]]\nregistry = \"210987654321\"\nidentity = \"other\"\n",
    )
    .unwrap();
    let pid = broker.child.as_ref().unwrap().id() as i32;
    unsafe { libc::kill(pid, libc::SIGHUP) };
    let start = Instant::now();
    while !broker.log().contains("configuration reloaded") {
        assert!(start.elapsed() < Duration::from_secs(5), "no reload:\n{}", broker.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, _) = broker.token(HOST);
    assert_eq!(status, 200);
    assert_eq!(fake.calls("GetAuthorizationToken"), 1, "the default identity's token survived the reload");
    let v: serde_json::Value = serde_json::from_slice(&broker.request("/v1/status").body).unwrap();
    assert!(v["identities"].as_array().unwrap().iter().any(|i| i["name"] == "other"));
    // A broken config is refused and the running one kept.
    std::fs::write(broker.config_path(), "this is = not toml [").unwrap();
    unsafe { libc::kill(pid, libc::SIGHUP) };
    std::thread::sleep(Duration::from_millis(300));
    assert!(broker.log().contains("reload refused"), "{}", broker.log());
    assert_eq!(broker.token(HOST).0, 200);
    broker.signal(libc::SIGTERM);
}

#[test]
fn a_bad_config_or_a_live_socket_stops_the_broker_with_a_clear_error() {
    let fake = FakeAws::start();
    let broker = Broker::start(&fake, "");
    let out = Command::new(broker_bin())
        .args(["--user", "--socket"])
        .arg(broker.socket())
        .arg("--config")
        .arg(broker.config_path())
        .env_clear()
        .env("HOME", &broker.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already listening"));
    assert_eq!(broker.request("/healthz").status, 200, "the running broker is untouched");
    let bad = broker.dir.join("bad.toml");
    std::fs::write(&bad, "[[rules]]\nregistry = \"nonsense\"\n").unwrap();
    let out = Command::new(broker_bin()).args(["--user", "--check-config", "--config"]).arg(&bad).env_clear().output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nonsense"));
}

#[test]
fn helper_status_shows_the_broker_table_without_secrets() {
    let fake = FakeAws::start();
    let broker = Broker::start(&fake, "");
    let (_, token) = broker.token(HOST);
    let run = broker.helper().run(&["status"], b"");
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    let row = run.stdout.lines().find(|l| l.starts_with("default")).unwrap_or_else(|| panic!("no token row:\n{}", run.stdout));
    for want in ["us-east-1", "standard", "arn:aws:iam::123456789012:user/fake", HOST] {
        assert!(row.contains(want), "{want} missing from {row}");
    }
    assert!(run.stdout.contains("1 upstream calls"), "{}", run.stdout);
    assert!(!run.stdout.contains(&password(&token)));
}

#[test]
fn ten_thousand_gets_from_fifty_clients_all_succeed_while_the_broker_is_killed_and_restarted() {
    let fake = FakeAws::start();
    let mut broker = Broker::start(&fake, "");
    const CLIENTS: usize = 50;
    const GETS_EACH: usize = 200;
    let done = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let workers: Vec<_> = (0..CLIENTS)
        .map(|_| {
            // Each client a user of its own (own HOME and cache), as on a shared CI host.
            let helper = broker.helper();
            let done = done.clone();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for _ in 0..GETS_EACH {
                    let run = helper.get(HOST);
                    if run.code != 0 {
                        failures.push(run);
                    }
                    done.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();
    let total = CLIENTS * GETS_EACH;
    let wait_for = |n: usize| {
        while done.load(std::sync::atomic::Ordering::Relaxed) < n {
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_for(total / 3);
    broker.signal(libc::SIGKILL);
    wait_for(total * 2 / 3);
    broker.spawn();
    let failures: Vec<_> = workers.into_iter().flat_map(|w| w.join().unwrap()).collect();
    assert!(failures.is_empty(), "{} of {total} gets failed, e.g. {:?}", failures.len(), failures.first());
    let status: serde_json::Value = serde_json::from_slice(&broker.request("/v1/status").body).unwrap();
    assert!(status["requests"].as_u64().unwrap() > 0, "the restarted broker served again: {status}");
    // The restarted broker took its token from the state file, and the helpers that fell back
    // each fetched once and then hit their own cache: far fewer upstream calls than gets.
    let calls = fake.calls("GetAuthorizationToken");
    assert!(calls <= 1 + CLIENTS, "{calls} upstream calls for {total} gets");
}

/// libfaketime from Debian's `faketime` package (installed by tests/peers/install.sh).
fn libfaketime(multithreaded: bool) -> String {
    let lib = if multithreaded { "libfaketimeMT.so.1" } else { "libfaketime.so.1" };
    let path = format!("/usr/lib/x86_64-linux-gnu/faketime/{lib}");
    assert!(std::path::Path::new(&path).exists(), "{path} is missing: run tests/peers/install.sh (package faketime)");
    path
}

#[test]
#[ignore = "needs peer libfaketime: tests/run-all.sh runs it"]
fn a_clock_that_jumps_past_expiry_never_gets_the_broker_s_held_token() {
    let fake = FakeAws::start();
    let dir = tempfile::tempdir().unwrap();
    let clock = dir.path().join("clock");
    std::fs::write(&clock, "+0\n").unwrap();
    let preload = libfaketime(true);
    let broker = Broker::start_with_env(
        &fake,
        "",
        &[
            ("LD_PRELOAD", preload.as_str()),
            ("FAKETIME_TIMESTAMP_FILE", clock.to_str().unwrap()),
            ("FAKETIME_NO_CACHE", "1"),
            // Wall-clock time jumps; tokio's timers (monotonic) keep running normally.
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ],
    );
    let (_, first) = broker.token(HOST);
    assert_eq!(password(&first), FakeAws::token_password(1));
    std::fs::write(&clock, "+46800\n").unwrap(); // 13 hours later: the held token has expired
    let (status, after) = broker.token(HOST);
    assert_eq!(status, 200, "{after}");
    assert_ne!(password(&after), password(&first), "the expired token was served after the clock jump");
    // The new token is expired too by the broker's (wrong) clock: it is passed on once, not
    // kept, and the slot backs off instead of asking again and again.
    std::thread::sleep(Duration::from_secs(3));
    let calls = fake.calls("GetAuthorizationToken");
    assert!((2..=5).contains(&calls), "{calls} upstream calls in 3 s with a skewed clock: a retry storm");
}

#[test]
fn a_profile_identity_uses_its_profile_not_the_broker_s_environment_keys() {
    let fake = FakeAws::start();
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(&creds, "[puller]\naws_access_key_id = AKIAPROFILEKEY000001\naws_secret_access_key = profile-secret\n").unwrap();
    let config = "[identities.puller]\nprofile = \"puller\"\n[[rules]]\nregistry = \"210987654321\"\nidentity = \"puller\"\n";
    let broker = Broker::start_with_env(
        &fake,
        config,
        &[("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()), ("AWS_CONFIG_FILE", "/nonexistent")],
    );
    assert_eq!(broker.token(OTHER_ACCOUNT).0, 200, "{}", broker.log());
    assert_eq!(broker.token(HOST).0, 200, "{}", broker.log());
    let keys: Vec<String> = fake.requests().iter().filter(|r| r.op == "GetAuthorizationToken").map(|r| r.access_key_id.clone()).collect();
    assert_eq!(keys, vec!["AKIAPROFILEKEY000001".to_string(), KEY_ID.to_string()], "profile identity, then the default chain");
}

#[test]
fn a_socket_passed_by_systemd_is_served_and_closed_on_exec() {
    use std::os::fd::AsRawFd;
    let fake = FakeAws::start();
    let dir = tempfile::Builder::new().prefix("broker-activated-").tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let fd = listener.as_raw_fd();
    let log = std::fs::File::create(dir.path().join("broker.log")).unwrap();
    let mut cmd = Command::new("/bin/sh");
    // What systemd does: the socket as fd 3 (dup2 leaves it inheritable), LISTEN_PID the
    // broker's own pid (sh's, kept by exec), LISTEN_FDS=1.
    cmd.arg("-c")
        .arg("export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=broker.socket; exec \"$0\" \"$@\"")
        .arg(broker_bin())
        .args(["--user", "--config"])
        .arg(&config)
        .arg("--socket")
        .arg(&socket)
        .arg("--state")
        .arg(dir.path().join("state/state.json"))
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", dir.path())
        .env("AWS_ENDPOINT_URL", fake.endpoint())
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    // SAFETY: dup2 is async-signal-safe; it runs in the child between fork and exec.
    unsafe {
        cmd.pre_exec(move || if libc::dup2(fd, 3) < 0 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
    }
    /// Killed if the test fails before it stops the broker.
    struct Running(std::process::Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut running = Running(cmd.spawn().unwrap());
    let child = &mut running.0;
    drop(listener);
    let started = Instant::now();
    let log = || std::fs::read_to_string(dir.path().join("broker.log")).unwrap_or_default();
    while ecr_cred::broker::get(&socket, "/healthz", Duration::from_secs(1)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(10), "the broker does not answer on the passed socket:\n{}", log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = ecr_cred::broker::get(&socket, &format!("/v1/token?registry={HOST}"), Duration::from_secs(30)).unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let fdinfo = std::fs::read_to_string(format!("/proc/{}/fdinfo/3", child.id())).unwrap();
    let flags = fdinfo.lines().find_map(|l| l.strip_prefix("flags:")).map(|f| u32::from_str_radix(f.trim(), 8).unwrap()).unwrap();
    assert!(flags & libc::O_CLOEXEC as u32 != 0, "fd 3 is inherited by the broker's children (flags {flags:o})");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "{}", log());
    assert!(socket.exists(), "a socket systemd passed is left to systemd");
}
