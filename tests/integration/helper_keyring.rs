//! `credsStore: "ecr"`: credentials for registries that are not ECR are kept in the desktop
//! Secret Service when the session bus offers one (shared with docker's own
//! docker-credential-secretservice, tested against the real gnome-keyring-daemon), else in the
//! kernel keyring; shared by separate helper runs of one user, listed without their secrets,
//! and never written to a file.

use crate::support;

use support::Helper;

fn unique_host(tag: &str) -> String {
    format!("https://registry-{tag}-{}.example.test", std::process::id())
}

#[test]
fn store_get_list_erase_round_trip_through_the_keyring() {
    let h = Helper::new();
    let url = unique_host("roundtrip");
    let secret = "ghp_keyring_secret_42";
    let store = h.run(&["store"], format!(r#"{{"ServerURL":"{url}","Username":"me","Secret":"{secret}"}}"#).as_bytes());
    assert_eq!((store.code, store.stdout.as_str()), (0, ""), "{store:#?}");

    let get = h.run(&["get"], url.as_bytes());
    assert_eq!(get.code, 0, "{get:#?}");
    assert_eq!(get.json(), serde_json::json!({"ServerURL": url, "Username": "me", "Secret": secret}));

    let list = h.run(&["list"], b"");
    assert_eq!(list.json()[&url], "me", "{list:#?}");
    assert!(!list.stdout.contains(secret));
    for f in support::files_under(h.home()) {
        assert!(!support::file_contains(&f, secret), "the secret reached a file: {}", f.display());
    }

    // Another HOME of the same user (another process, another cache) sees it: it is the OS's.
    let other = Helper::new();
    assert_eq!(other.run(&["get"], url.as_bytes()).json()["Secret"], secret);

    assert_eq!(h.run(&["erase"], url.as_bytes()).code, 0);
    let gone = h.run(&["get"], url.as_bytes());
    assert_eq!((gone.code, gone.stdout.as_str()), (1, "credentials not found in native keychain\n"));
    let again = h.run(&["erase"], url.as_bytes());
    assert_eq!((again.code, again.stdout.as_str()), (1, "credentials not found in native keychain\n"));
    assert!(h.run(&["list"], b"").json().get(&url).is_none());
}

#[test]
fn ignore_creds_storage_stores_nothing() {
    let mut h = Helper::new();
    h.env("AWS_ECR_IGNORE_CREDS_STORAGE", "true");
    let url = unique_host("ignored");
    let store = h.run(&["store"], format!(r#"{{"ServerURL":"{url}","Username":"u","Secret":"s"}}"#).as_bytes());
    assert_eq!(store.code, 0);
    assert_eq!(h.run(&["erase"], url.as_bytes()).code, 0);
    let get = Helper::new().run(&["get"], url.as_bytes());
    assert_eq!(get.stdout, "credentials not found in native keychain\n", "nothing was stored");
}

#[test]
fn ecr_hosts_are_never_stored_in_the_keyring() {
    let h = Helper::new();
    let ecr = "https://123456789012.dkr.ecr.us-east-1.amazonaws.com";
    let store = h.run(&["store"], format!(r#"{{"ServerURL":"{ecr}","Username":"AWS","Secret":"from-docker-login"}}"#).as_bytes());
    assert_eq!(store.code, 0);
    let list = h.run(&["list"], b"");
    assert_eq!(list.json().as_object().map(|m| m.len()), Some(0), "{}", list.stdout);
}

/// 50 `store`s at once by one user: each updates the keyring index (what `list` reads where
/// the store cannot list itself) under its lock, so none is lost.
#[test]
fn fifty_concurrent_stores_are_all_listed() {
    let h = std::sync::Arc::new(Helper::new());
    let urls: Vec<String> = (0..50).map(|i| unique_host(&format!("concurrent{i}"))).collect();
    let runs: Vec<_> = urls
        .iter()
        .cloned()
        .map(|url| {
            let h = h.clone();
            std::thread::spawn(move || h.run(&["store"], format!(r#"{{"ServerURL":"{url}","Username":"u","Secret":"s"}}"#).as_bytes()))
        })
        .collect();
    for run in runs {
        let run = run.join().unwrap();
        assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:#?}");
    }
    let list = h.run(&["list"], b"").json();
    let missing: Vec<&String> = urls.iter().filter(|u| list.get(u.as_str()).is_none()).collect();
    for url in &urls {
        h.run(&["erase"], url.as_bytes());
    }
    assert!(missing.is_empty(), "{} of 50 stored logins are missing from list: {missing:?}", missing.len());
}

/// A private session D-Bus (`dbus-run-session`) with gnome-keyring-daemon's Secret Service on
/// it, its login keyring created and unlocked with a known password, every folder of its own
/// in a temporary HOME. Ends when dropped (its script's stdin closes).
struct SecretServiceSession {
    child: std::process::Child,
    address: String,
    dir: tempfile::TempDir,
    _config: Option<tempfile::TempDir>,
}

const SESSION_SCRIPT: &str = r#"
set -eu
printf '%s' "$KEYRING_PASSWORD" | gnome-keyring-daemon --foreground --unlock --components=secrets >/dev/null &
keyring=$!
i=0
until dbus-send --session --print-reply --dest=org.freedesktop.DBus /org/freedesktop/DBus \
        org.freedesktop.DBus.NameHasOwner string:org.freedesktop.secrets 2>/dev/null | grep -q 'boolean true'; do
  i=$((i + 1)); [ "$i" -lt 200 ] || { echo "gnome-keyring-daemon did not register org.freedesktop.secrets" >&2; exit 1; }
  sleep 0.05
done
printf '%s' "$DBUS_SESSION_BUS_ADDRESS" > "$HOME/bus.tmp" && mv "$HOME/bus.tmp" "$HOME/bus"
read -r _ || true
kill "$keyring"
"#;

const BUS_ONLY_SCRIPT: &str = r#"
printf '%s' "$DBUS_SESSION_BUS_ADDRESS" > "$HOME/bus.tmp" && mv "$HOME/bus.tmp" "$HOME/bus"
read -r _ || true
"#;

/// Fail (never skip) when a peer program is missing.
fn require_peers(names: &[&str]) {
    for name in names {
        let found = std::env::split_paths("/usr/local/bin:/usr/bin:/bin").any(|d| d.join(name).is_file());
        assert!(found, "peer `{name}` is missing: run tests/peers/install.sh (gnome-keyring, dbus, golang-docker-credential-helpers)");
    }
}

impl SecretServiceSession {
    fn start() -> SecretServiceSession {
        require_peers(&["dbus-run-session", "dbus-send", "gnome-keyring-daemon", "docker-credential-secretservice"]);
        SecretServiceSession::start_bus(&[], SESSION_SCRIPT)
    }

    /// A session bus whose Secret Service is activatable but cannot start (its program exits
    /// at once): every call to it is a D-Bus error.
    fn start_broken() -> SecretServiceSession {
        require_peers(&["dbus-run-session"]);
        let dir = tempfile::Builder::new().prefix("broken-bus-").tempdir().unwrap();
        let services = dir.path().join("services");
        std::fs::create_dir(&services).unwrap();
        std::fs::write(
            services.join("org.freedesktop.secrets.service"),
            "[D-BUS Service]\nName=org.freedesktop.secrets\nExec=/bin/false\n",
        )
        .unwrap();
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig><type>session</type><listen>unix:tmpdir=/tmp</listen><servicedir>{}</servicedir>
<policy context="default"><allow send_destination="*"/><allow receive_sender="*"/><allow own="*"/></policy></busconfig>"#,
                services.display()
            ),
        )
        .unwrap();
        let mut session = SecretServiceSession::start_bus(&[&format!("--config-file={}", config.display())], BUS_ONLY_SCRIPT);
        session._config = Some(dir);
        session
    }

    fn start_bus(options: &[&str], script: &str) -> SecretServiceSession {
        let dir = tempfile::Builder::new().prefix("secret-service-").tempdir().unwrap();
        let home = dir.path();
        for sub in ["run", "data", "config", "cache"] {
            std::fs::create_dir(home.join(sub)).unwrap();
        }
        std::fs::set_permissions(home.join("run"), std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
        let log = std::fs::File::create(home.join("session.log")).unwrap();
        let child = std::process::Command::new("dbus-run-session")
            .args(options)
            .args(["--", "bash", "-c", script])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", home.join("run"))
            .env("XDG_DATA_HOME", home.join("data"))
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_CACHE_HOME", home.join("cache"))
            .env("KEYRING_PASSWORD", "known-test-password")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start dbus-run-session");
        let mut session = SecretServiceSession { child, address: String::new(), dir, _config: None };
        let start = std::time::Instant::now();
        let bus_file = session.dir.path().join("bus");
        while !bus_file.exists() {
            let log = std::fs::read_to_string(session.dir.path().join("session.log")).unwrap_or_default();
            assert!(session.child.try_wait().unwrap().is_none(), "the session bus ended early: {log}");
            assert!(start.elapsed() < std::time::Duration::from_secs(30), "no session bus after 30s: {log}");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        session.address = std::fs::read_to_string(bus_file).unwrap();
        session
    }

    /// Our helper, on this session bus.
    fn helper(&self) -> Helper {
        let mut h = Helper::new();
        h.env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        h
    }

    /// Docker's own `docker-credential-secretservice <action>`, on this session bus.
    fn docker(&self, action: &str, stdin: &str) -> support::Run {
        let mut cmd = std::process::Command::new("docker-credential-secretservice");
        cmd.arg(action)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", self.dir.path())
            .env("DBUS_SESSION_BUS_ADDRESS", &self.address);
        support::run_command(cmd, stdin.as_bytes(), std::time::Duration::from_secs(30))
    }
}

impl Drop for SecretServiceSession {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let start = std::time::Instant::now();
        while self.child.try_wait().ok().flatten().is_none() {
            if start.elapsed() > std::time::Duration::from_secs(10) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

fn login(url: &str, user: &str, secret: &str) -> String {
    format!(r#"{{"ServerURL":"{url}","Username":"{user}","Secret":"{secret}"}}"#)
}

#[test]
#[ignore = "needs peers dbus, gnome-keyring, docker-credential-secretservice: tests/run-all.sh runs it"]
fn logins_are_shared_with_docker_credential_secretservice_both_ways() {
    let session = SecretServiceSession::start();
    let ours = session.helper();
    let by_docker = "https://stored-by-docker.example.test";
    let by_us = "https://stored-by-ecr.example.test";

    // Docker's helper stores, ours reads.
    session.docker("store", &login(by_docker, "docker-user", "docker-secret")).assert_ok();
    let get = ours.get(by_docker);
    assert_eq!(get.code, 0, "{get:#?}");
    assert_eq!(get.json(), serde_json::json!({"ServerURL": by_docker, "Username": "docker-user", "Secret": "docker-secret"}));

    // Ours stores, docker's reads.
    let store = ours.run(&["store"], login(by_us, "ecr-user", "ecr-secret").as_bytes());
    assert_eq!((store.code, store.stdout.as_str()), (0, ""), "{store:#?}");
    let get = session.docker("get", by_us);
    assert_eq!(get.code, 0, "{get:#?}");
    assert_eq!(get.json(), serde_json::json!({"ServerURL": by_us, "Username": "ecr-user", "Secret": "ecr-secret"}));

    // Both lists read the store itself and show both logins, never a secret.
    let list = ours.run(&["list"], b"");
    assert_eq!(list.code, 0, "{list:#?}");
    assert_eq!((list.json()[by_docker].as_str(), list.json()[by_us].as_str()), (Some("docker-user"), Some("ecr-user")), "{list:#?}");
    assert!(!list.stdout.contains("secret\""), "{list:#?}");
    let docker_list = session.docker("list", "");
    assert_eq!((docker_list.json()[by_docker].as_str(), docker_list.json()[by_us].as_str()), (Some("docker-user"), Some("ecr-user")));
    for f in support::files_under(ours.home()) {
        assert!(!support::file_contains(&f, "ecr-secret"), "the secret reached a file: {}", f.display());
    }

    // A second login to the same server replaces the first, for both helpers.
    ours.run(&["store"], login(by_us, "ecr-user-2", "ecr-secret-2").as_bytes()).assert_ok();
    assert_eq!(session.docker("get", by_us).json()["Username"], "ecr-user-2");
    assert_eq!(session.docker("list", "").json()[by_us], "ecr-user-2");

    // Erase by either is seen by the other.
    let erase = ours.run(&["erase"], by_docker.as_bytes());
    assert_eq!((erase.code, erase.stdout.as_str()), (0, ""), "{erase:#?}");
    let gone = session.docker("get", by_docker);
    assert_eq!(gone.code, 1, "docker's helper still finds what ours erased: {gone:#?}");
    assert!(gone.stdout.contains("credentials not found in native keychain"), "{gone:#?}");
    session.docker("erase", by_us).assert_ok();
    let gone = ours.get(by_us);
    assert_eq!((gone.code, gone.stdout.as_str()), (1, "credentials not found in native keychain\n"), "{gone:#?}");
    let list = ours.run(&["list"], b"").json();
    assert!(list.get(by_us).is_none() && list.get(by_docker).is_none(), "{list}");
}

#[test]
#[ignore = "needs peers dbus, gnome-keyring, docker-credential-secretservice: tests/run-all.sh runs it"]
fn without_a_session_bus_the_kernel_keyring_is_used() {
    let session = SecretServiceSession::start();
    let url = unique_host("no-bus");
    let mut no_bus = Helper::new();
    no_bus.env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus");
    let store = no_bus.run(&["store"], login(&url, "kernel-user", "kernel-secret").as_bytes());
    assert_eq!((store.code, store.stdout.as_str()), (0, ""), "{store:#?}");
    assert_eq!(no_bus.get(&url).json()["Secret"], "kernel-secret");
    assert_eq!(no_bus.run(&["list"], b"").json()[&url], "kernel-user");
    // Not in the Secret Service: neither helper finds it there.
    assert_eq!(session.helper().get(&url).code, 1);
    assert_eq!(session.docker("get", &url).code, 1);
    assert_eq!(no_bus.run(&["erase"], url.as_bytes()).code, 0);
    assert_eq!(no_bus.get(&url).code, 1);
}

/// The kernel's per-user key quota (20,000 bytes unless raised) fills after about ten logins
/// with long tokens; `store` then names the quota and its size, and what was stored stays.
/// Runs as a fresh uid (the test runs as root, whose quota is far larger), in a named session
/// keyring that a holder process keeps alive between helper runs and that goes when it ends.
#[test]
#[ignore = "needs root: tests/run-all.sh runs it"]
fn a_full_kernel_keyring_quota_is_named_with_its_size() {
    use std::os::unix::process::CommandExt;
    assert_eq!(unsafe { libc::geteuid() }, 0, "this test switches to another uid and must run as root");
    let uid: u32 = 40_000 + std::process::id() % 20_000;
    let maxbytes: u64 = std::fs::read_to_string("/proc/sys/kernel/keys/maxbytes").unwrap().trim().parse().unwrap();
    let keyring_name = std::ffi::CString::new(format!("ecr-cred-quota-test-{uid}")).unwrap();
    let home = tempfile::Builder::new().prefix("quota-home-").tempdir().unwrap();
    std::os::unix::fs::chown(home.path(), Some(uid), Some(uid)).unwrap();
    let as_user = |cmd: &mut std::process::Command| {
        let name = keyring_name.clone();
        cmd.uid(uid).gid(uid).env_clear().env("PATH", "/usr/bin:/bin").env("HOME", home.path()).current_dir(home.path());
        // SAFETY: one async-signal-safe syscall between fork and exec.
        unsafe {
            cmd.pre_exec(move || {
                const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
                if libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            })
        };
    };
    let mut holder = std::process::Command::new("sh");
    holder.args(["-c", "echo joined; exec sleep 600"]).stdout(std::process::Stdio::piped());
    as_user(&mut holder);
    let mut holder = holder.spawn().expect("start the keyring holder");
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(holder.stdout.take().unwrap()), &mut line).unwrap();
    assert_eq!(line, "joined\n");

    let run = |args: &[&str], stdin: &str| {
        let mut cmd = std::process::Command::new(support::helper_bin());
        cmd.args(args);
        as_user(&mut cmd);
        cmd.env("AWS_EC2_METADATA_DISABLED", "true").env("ECR_BROKER_SOCKET", "none");
        support::run_command(cmd, stdin.as_bytes(), std::time::Duration::from_secs(60))
    };
    let token = "t".repeat(1500);
    let mut refused = None;
    for i in 0..40 {
        let url = format!("https://quota-{i}.example.test");
        let store = run(&["store"], &login(&url, "u", &token));
        if store.code != 0 {
            refused = Some((i, url, store));
            break;
        }
    }
    let first = run(&["get"], "https://quota-0.example.test");
    let _ = holder.kill();
    let _ = holder.wait();
    let (i, url, store) = refused.expect("40 logins of 1.5 KB fit in the kernel keyring quota?");
    assert!(i >= 3, "only {i} logins fit: {store:#?}");
    let expected = format!("store {url}: the kernel keyring quota ({maxbytes} bytes) is full");
    assert!(store.stdout.starts_with(&expected), "expected {expected:?}: {store:#?}");
    assert!(!store.stdout.contains(&token), "{store:#?}");
    assert_eq!(first.code, 0, "a login stored before the quota filled was lost: {first:#?}");
    assert_eq!(first.json()["Secret"], token.as_str());
}

/// `get` of a host that is not ECR when the keyring cannot answer (here: the bus's Secret
/// Service fails to start): not-found on stdout as ever, and the reason on stderr.
#[test]
#[ignore = "needs peers dbus, gnome-keyring, docker-credential-secretservice: tests/run-all.sh runs it"]
fn a_failed_keyring_lookup_is_explained_on_stderr_before_not_found() {
    let session = SecretServiceSession::start_broken();
    let get = session.helper().get("https://registry.example.test");
    assert_eq!((get.code, get.stdout.as_str()), (1, "credentials not found in native keychain\n"), "{get:#?}");
    assert!(get.stderr.contains("keyring lookup for https://registry.example.test failed: Secret Service"), "{get:#?}");
    assert!(get.stderr.contains("D-Bus error"), "{get:#?}");
    // A store there fails with the reason, and nothing is stored elsewhere.
    let store = session.helper().run(&["store"], login("https://registry.example.test", "u", "s").as_bytes());
    assert_eq!(store.code, 1, "{store:#?}");
    assert!(store.stdout.starts_with("store https://registry.example.test: Secret Service"), "{store:#?}");
}
