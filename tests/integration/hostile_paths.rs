//! A hostile local user against the files and sockets the helper and the broker use, through
//! the real binaries: FIFOs where state and cache files belong, shared (1777) folders, planted
//! links and planted sockets; and the helper's deadline and single upstream call when a
//! healthy broker faces a slow AWS. Tests run as root; uid 65534 (`nobody`) is the other user.
//! Every wait has its own timeout, so a hang fails the test instead of hanging the suite.

use crate::support;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::broker::{broker_bin, Broker, HOST, KEY_ID, SECRET};
use support::fake_aws::{FakeAws, Mode};
use support::{helper_bin, mkfifo, run_command, stuck_listener, Helper};

const NOBODY: u32 = 65534;
/// The helpers' own keys, distinct from the broker's: the fake AWS tells who called.
const HELPER_KEY: &str = "AKIAHELPERSOWNKEY000";
const HELPER_SECRET: &str = "helperSecretKeyhelperSecretKeyhelperSecr";

fn require_root() {
    // SAFETY: geteuid cannot fail.
    assert_eq!(unsafe { libc::geteuid() }, 0, "tests/integration/hostile_paths.rs plays another user (uid 65534): run it as root");
}

/// A "shared folder" like /tmp: 1777, root's.
fn shared_folder() -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix("shared-").tempdir().unwrap();
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o1777)).unwrap();
    d
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().mode() & 0o7777
}

// --- 1. Never block on a special file -------------------------------------------------------

#[test]
fn a_fifo_as_the_broker_state_file_does_not_stop_it_starting() {
    let fake = FakeAws::start();
    let mut b = Broker::start(&fake, "");
    b.signal(libc::SIGTERM);
    let _ = std::fs::remove_file(b.state());
    std::fs::create_dir_all(b.state().parent().unwrap()).unwrap();
    mkfifo(&b.state());
    // spawn() fails the test if the socket does not answer within 10 s.
    b.spawn();
    assert!(b.log().contains("ignoring state file"), "the FIFO is named in a warning:\n{}", b.log());
    let (status, _) = b.token(HOST);
    assert_eq!(status, 200, "{}", b.log());
}

#[test]
fn a_fifo_as_the_token_cache_or_its_lock_does_not_hang_get() {
    let fake = FakeAws::start();
    for name in ["tokens.json", "tokens.lock"] {
        let mut h = Helper::new();
        h.aws(&fake.endpoint(), KEY_ID, SECRET);
        h.timeout = Duration::from_secs(20);
        let cache = h.default_cache_dir();
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o700)).unwrap();
        mkfifo(&cache.join(name));
        let r = h.get(HOST);
        r.assert_ok();
        assert!(r.elapsed < Duration::from_secs(10), "{name} as a FIFO: get took {:?}", r.elapsed);
        assert!(r.stderr.contains("FIFO"), "{name} as a FIFO is named in a warning: {r:#?}");
    }
}

// --- 2. Never loosen, tighten or follow links in a folder we did not create ------------------

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn root_never_changes_nor_follows_a_planted_link_in_a_shared_cache_folder() {
    require_root();
    let fake = FakeAws::start();
    let shared = shared_folder();
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("created-by-root");
    // Another user plants tokens.lock as a link to a file root would then create.
    let lock = shared.path().join("tokens.lock");
    std::os::unix::fs::symlink(&target, &lock).unwrap();
    std::os::unix::fs::lchown(&lock, Some(NOBODY), Some(NOBODY)).unwrap();

    let mut h = Helper::new();
    h.aws(&fake.endpoint(), KEY_ID, SECRET).env("AWS_ECR_CACHE_DIR", shared.path());
    h.timeout = Duration::from_secs(30);
    for _ in 0..2 {
        let r = h.get(HOST);
        r.assert_ok();
        assert!(r.stderr.contains("not used"), "the refused cache folder is named in a warning: {r:#?}");
    }
    assert_eq!(mode_of(shared.path()), 0o1777, "the shared folder's mode is left alone");
    assert!(!target.exists(), "the planted link was followed");
    assert!(!shared.path().join("tokens.json").exists(), "nothing of root's is written to a shared folder");
    assert_eq!(fake.calls("GetAuthorizationToken"), 2, "no cache: each get asks AWS");
}

#[test]
fn a_fifo_as_the_broker_config_is_refused_not_waited_on() {
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    mkfifo(&config);
    let flag = format!("--config={}", config.display());
    let r = run_broker(&[], &["--check-config", &flag], home.path(), &[]);
    assert_ne!(r.code, 0, "a FIFO is no config: {r:#?}");
    assert!(r.stderr.contains("not a regular file"), "the reason is named: {r:#?}");
    assert!(r.elapsed < Duration::from_secs(5), "refused at once, not waited on: {r:#?}");
}

// --- 3. Sockets: the broker refuses shared folders, the helper trusts only known owners -------

fn run_broker(args: &[&Path], flags: &[&str], home: &Path, extra_env: &[(&str, &str)]) -> support::Run {
    let mut cmd = Command::new(broker_bin());
    cmd.args(flags).args(args).env_clear().env("PATH", "/usr/bin:/bin").env("HOME", home).env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    // A broker that starts runs until killed: run_command then fails the test after 10 s.
    run_command(cmd, b"", Duration::from_secs(10))
}

#[test]
fn the_broker_refuses_a_socket_or_state_file_in_a_folder_others_can_write() {
    let home = tempfile::tempdir().unwrap();
    let shared = shared_folder();
    let private = tempfile::tempdir().unwrap();
    let config = private.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let cases = [
        ("socket", shared.path().join("broker.sock"), private.path().join("state.json")),
        ("state file", private.path().join("broker.sock"), shared.path().join("state.json")),
    ];
    for (what, socket, state) in cases {
        let r = std::panic::catch_unwind(|| {
            run_broker(&[&config, Path::new("--socket"), &socket, Path::new("--state"), &state], &["--user", "--config"], home.path(), &[])
        })
        .unwrap_or_else(|_| panic!("the broker started with its {what} in a 1777 folder"));
        assert_ne!(r.code, 0, "{what}: {r:#?}");
        assert!(r.stderr.contains(&format!("refusing the {what}")) && r.stderr.contains("other users write"), "{what}: {r:#?}");
        assert!(!socket.exists(), "{what}: no socket was made");
    }
}

/// A fake "broker" on `socket` answering every connection with a token of its own.
fn planted_broker(socket: &Path) -> Arc<AtomicUsize> {
    let listener = UnixListener::bind(socket).unwrap();
    let asked = Arc::new(AtomicUsize::new(0));
    let count = asked.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = conn.read(&mut buf);
            let body = format!(
                r#"{{"registry":"{HOST}","username":"AWS","password":"planted-by-another-user","expires_at":{},"fetched_at":0,"identity":"x"}}"#,
                i64::MAX / 4
            );
            let _ = write!(conn, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
        }
    });
    asked
}

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn the_helper_ignores_a_broker_socket_another_user_could_have_planted() {
    require_root();
    let fake = FakeAws::start();
    // (a) nobody's socket in a shared 1777 folder; (b) nobody's socket in root's 0755 folder;
    // (c) root's socket in a folder anyone can write (0777, not sticky).
    let shared = shared_folder();
    let roots = tempfile::tempdir().unwrap();
    std::fs::set_permissions(roots.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let open = tempfile::tempdir().unwrap();
    std::fs::set_permissions(open.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let cases: [(&str, PathBuf, Option<u32>); 3] = [
        ("nobody's socket in a 1777 folder", shared.path().join("broker.sock"), Some(NOBODY)),
        ("nobody's socket in root's 0755 folder", roots.path().join("broker.sock"), Some(NOBODY)),
        ("root's socket in a 0777 folder", open.path().join("broker.sock"), None),
    ];
    for (what, socket, owner) in cases {
        let asked = planted_broker(&socket);
        if let Some(uid) = owner {
            std::os::unix::fs::lchown(&socket, Some(uid), Some(uid)).unwrap();
        }
        let mut h = Helper::new();
        h.aws(&fake.endpoint(), KEY_ID, SECRET).env("ECR_BROKER_SOCKET", &socket).env("AWS_ECR_DISABLE_CACHE", "1");
        h.timeout = Duration::from_secs(30);
        let r = h.get(HOST);
        r.assert_ok();
        assert!(!r.stdout.contains("planted-by-another-user"), "{what}: the planted broker's answer was used: {r:#?}");
        assert!(r.stdout.contains("fake-token-"), "{what}: fetched directly instead: {r:#?}");
        assert!(r.stderr.contains("not asking this ecr-broker"), "{what}: a warning names the socket: {r:#?}");
        assert_eq!(asked.load(Ordering::SeqCst), 0, "{what}: the helper connected to it");
    }
}

// --- 4. A user broker without XDG_RUNTIME_DIR ---------------------------------------------

#[test]
fn a_user_broker_without_xdg_runtime_dir_keeps_its_socket_folder_private_and_the_helper_finds_it() {
    let fake = FakeAws::start();
    let home = tempfile::tempdir().unwrap();
    let config = home.path().join("config.toml");
    std::fs::write(&config, "").unwrap();
    let log = std::fs::File::create(home.path().join("broker.log")).unwrap();
    let mut child = Command::new(broker_bin())
        .args(["--user", "--config"])
        .arg(&config)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", home.path())
        .env("AWS_ENDPOINT_URL", fake.endpoint())
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let socket = home.path().join(".local/state/ecr-broker/broker.sock");
    let start = Instant::now();
    while !socket.exists() {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("broker exited ({status}): {}", std::fs::read_to_string(home.path().join("broker.log")).unwrap_or_default());
        }
        assert!(start.elapsed() < Duration::from_secs(10), "no socket at {}", socket.display());
        std::thread::sleep(Duration::from_millis(20));
    }
    let _guard = Kill(child);
    assert_eq!(mode_of(socket.parent().unwrap()), 0o700, "the socket folder of a user broker");

    // The helper, same HOME, no ECR_BROKER_SOCKET and no XDG_RUNTIME_DIR, finds that broker:
    // the token comes from the broker's keys, not its own.
    let mut h = Helper::new();
    h.aws(&fake.endpoint(), HELPER_KEY, HELPER_SECRET).remove_env("ECR_BROKER_SOCKET").env("HOME", home.path());
    h.timeout = Duration::from_secs(30);
    h.get(HOST).assert_ok();
    let keys: Vec<String> = fake.requests().into_iter().filter(|r| r.op == "GetAuthorizationToken").map(|r| r.access_key_id).collect();
    assert_eq!(keys, vec![KEY_ID.to_string()], "only the broker asked AWS");
}

// --- 5. The helper is not dumpable ---------------------------------------------------------

#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn the_helper_is_not_dumpable_in_either_mode() {
    require_root();
    for args in [&["get"][..], &["kubelet"][..]] {
        // As uid 65534 its /proc files would be 65534's; a process that is not dumpable has
        // them owned by root instead. stdin stays open, so the helper is caught waiting.
        let mut child = Command::new(helper_bin())
            .args(args)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", "/nonexistent")
            .env("ECR_BROKER_SOCKET", "none")
            .uid(NOBODY)
            .gid(NOBODY)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let proc_environ = PathBuf::from(format!("/proc/{}/environ", child.id()));
        let start = Instant::now();
        let mut owner = None;
        // Wait until the helper runs (exec done: its /proc shows the helper, not the fork).
        while start.elapsed() < Duration::from_secs(5) {
            let exe = std::fs::read_link(format!("/proc/{}/exe", child.id())).unwrap_or_default();
            if exe.file_name() == helper_bin().file_name() {
                std::thread::sleep(Duration::from_millis(200));
                owner = std::fs::metadata(&proc_environ).ok().map(|m| m.uid());
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        drop(child.stdin.take());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(
            owner,
            Some(0),
            "{args:?}: /proc/PID/environ of the helper run as uid 65534 is owned by root only if it is not dumpable"
        );
    }
}

// --- 6. A healthy broker, a slow AWS: one deadline, one upstream call ------------------------

#[test]
fn helpers_wait_for_a_healthy_brokers_single_slow_fetch_within_the_deadline() {
    const HELPERS: usize = 30;
    /// The documented total deadline (README "The broker"), plus process start-up slack.
    const DEADLINE: Duration = Duration::from_secs(16);
    let fake = FakeAws::start();
    fake.set_mode(Mode::Delay(Duration::from_secs(5)));
    let broker = Broker::start(&fake, "");
    let socket = broker.socket();
    let endpoint = fake.endpoint();
    let threads: Vec<_> = (0..HELPERS)
        .map(|_| {
            let (socket, endpoint) = (socket.clone(), endpoint.clone());
            std::thread::spawn(move || {
                let mut h = Helper::new();
                h.aws(&endpoint, HELPER_KEY, HELPER_SECRET).env("ECR_BROKER_SOCKET", &socket);
                h.timeout = Duration::from_secs(60);
                h.get(HOST)
            })
        })
        .collect();
    let runs: Vec<_> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    for r in &runs {
        assert!(r.elapsed < DEADLINE, "a get took {:?}, beyond the deadline: {r:#?}", r.elapsed);
        assert_eq!(r.code, 1, "AWS never answered within 4 s per attempt: an error: {r:#?}");
        assert!(r.stdout.contains("ecr-broker could not get a token"), "{r:#?}");
    }
    let own: Vec<_> = fake.requests().into_iter().filter(|r| r.access_key_id == HELPER_KEY).collect();
    assert!(own.is_empty(), "helpers raced the broker with {} calls of their own", own.len());
    let status: serde_json::Value = serde_json::from_slice(&broker.request("/v1/status").body).unwrap();
    assert_eq!(status["upstream_calls"], 1, "one upstream fetch for {HELPERS} helpers: {status}");
}

#[test]
fn a_broker_that_stopped_accepting_costs_the_helper_at_most_the_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("broker.sock");
    let _held = stuck_listener(&socket);
    let fake = FakeAws::start();
    let mut h = Helper::new();
    h.aws(&fake.endpoint(), HELPER_KEY, HELPER_SECRET).env("ECR_BROKER_SOCKET", &socket);
    h.timeout = Duration::from_secs(40);
    let r = h.get(HOST);
    assert!(r.elapsed < Duration::from_secs(16), "connect to a full queue took {:?}: {r:#?}", r.elapsed);
    assert_eq!(r.code, 1, "{r:#?}");
    assert!(r.stdout.contains("no answer from the ecr-broker"), "{r:#?}");
}
