//! Shared support for the integration tests (`tests/integration/*.rs`, one binary).
//!
//! - [`repo_root`], [`helper_bin`]: where things are (the helper binary must already be built
//!   with `cargo build --release --workspace`).
//! - [`Helper`]: runs `docker-credential-ecr` in a cleared environment (only PATH, a private
//!   temporary HOME, `AWS_EC2_METADATA_DISABLED=true` and what the test adds: nothing of the
//!   machine's own AWS_*, SSL_* or proxy settings leaks in) and returns a [`Run`].
//! - [`Moto`]: the patched moto server from tests/peers on a free port, with its call log.
//! - [`fake_aws`]: a fake AWS endpoint in Rust for what moto cannot do.
//! - [`broker`]: an `ecr-broker` process against the fake AWS.
//! - [`mkfifo`], [`stuck_listener`]: a FIFO where a file belongs, a socket whose queue is full.
//! - [`is_root`], [`full_run`]: whether the test runs as root, and in tests/run-all.sh.
#![allow(dead_code)]

pub mod broker;
pub mod fake_aws;

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The root of the workspace.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `target/<profile>/docker-credential-ecr`, next to this test's `deps/` folder.
pub fn helper_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe.parent().and_then(Path::parent).expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join("docker-credential-ecr");
    if !bin.is_file() {
        panic!("build first: cargo build --release --workspace ({} is missing)", bin.display());
    }
    bin
}

/// Make a FIFO at `path` (0600), to plant where a regular file belongs.
pub fn mkfifo(path: &Path) {
    if let Err(e) = ecr_cred::sys::mkfifo(path) {
        panic!("mkfifo {}: {e}", path.display());
    }
}

/// A Unix socket listening with the smallest queue and never accepting, its queue filled.
pub fn stuck_listener(path: &Path) -> Vec<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    let addr = |p: &Path| {
        // SAFETY: plain data.
        let mut a: libc::sockaddr_un = unsafe { std::mem::zeroed() };
        a.sun_family = libc::AF_UNIX as libc::sa_family_t;
        for (d, s) in a.sun_path.iter_mut().zip(p.as_os_str().as_bytes()) {
            *d = *s as libc::c_char;
        }
        a
    };
    let a = addr(path);
    let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
    let mut fds = Vec::new();
    // SAFETY: plain socket calls on descriptors we own (wrapped in OwnedFd at once).
    unsafe {
        let l = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        fds.push(std::os::fd::OwnedFd::from_raw_fd(l));
        assert_eq!(libc::bind(l, (&a as *const libc::sockaddr_un).cast(), len), 0);
        assert_eq!(libc::listen(l, 0), 0);
        for _ in 0..64 {
            let c = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0);
            fds.push(std::os::fd::OwnedFd::from_raw_fd(c));
            if libc::connect(c, (&a as *const libc::sockaddr_un).cast(), len) != 0 {
                return fds;
            }
        }
    }
    panic!("the listen queue never filled");
}

/// Is this test process root?
pub fn is_root() -> bool {
    ecr_cred::sys::euid() == 0
}

/// Is this the full run (`ECR_CRED_FULL_RUN=1`, set by tests/run-all.sh)? There nothing may
/// be left out: a missing peer or a missing privilege fails the test.
pub fn full_run() -> bool {
    std::env::var("ECR_CRED_FULL_RUN").is_ok_and(|v| v == "1")
}

/// A free TCP port on 127.0.0.1 (bound and released; a small race is accepted).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    free_port()
}

/// What one helper run gave.
#[derive(Debug, Clone)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Run {
    pub fn assert_ok(&self) -> &Run {
        assert_eq!(self.code, 0, "expected exit 0: {self:#?}");
        self
    }
    /// The parsed JSON answer of a successful `get`.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Runs the helper with a cleared environment and a private HOME.
pub struct Helper {
    home: tempfile::TempDir,
    env: BTreeMap<OsString, OsString>,
    pub timeout: Duration,
}

impl Default for Helper {
    fn default() -> Self {
        Helper::new()
    }
}

impl Helper {
    pub fn new() -> Helper {
        let home = tempfile::Builder::new().prefix("helper-home-").tempdir().expect("tempdir");
        let mut env = BTreeMap::new();
        env.insert("PATH".into(), "/usr/bin:/bin".into());
        env.insert("HOME".into(), home.path().as_os_str().to_owned());
        env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
        // Never a broker that happens to run on this machine; broker tests set their own.
        env.insert("ECR_BROKER_SOCKET".into(), "none".into());
        Helper { home, env, timeout: Duration::from_secs(60) }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    /// The default cache folder for this HOME: `$HOME/.cache/ecr-cred`.
    pub fn default_cache_dir(&self) -> PathBuf {
        self.home().join(".cache").join("ecr-cred")
    }

    pub fn env(&mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> &mut Helper {
        self.env.insert(k.as_ref().to_owned(), v.as_ref().to_owned());
        self
    }

    pub fn remove_env(&mut self, k: impl AsRef<OsStr>) -> &mut Helper {
        self.env.remove(k.as_ref());
        self
    }

    /// Static test credentials, a region and an endpoint override: the usual setup.
    pub fn aws(&mut self, endpoint: &str, access_key_id: &str, secret: &str) -> &mut Helper {
        self.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_REGION", "us-east-1")
    }

    /// Run `docker-credential-ecr <args>` with `stdin`.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        self.run_with(args, stdin, &[])
    }

    /// As [`Helper::run`], with extra variables for this run only.
    pub fn run_with(&self, args: &[&str], stdin: &[u8], extra: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(helper_bin());
        cmd.args(args).env_clear().envs(&self.env).current_dir(self.home());
        for (k, v) in extra {
            cmd.env(k, v);
        }
        run_command(cmd, stdin, self.timeout)
    }

    /// `get` for `server_url` (a newline is added, as docker does).
    pub fn get(&self, server_url: &str) -> Run {
        self.run(&["get"], format!("{server_url}\n").as_bytes())
    }
}

/// Run `cmd` with `stdin`, collecting its output; panics if it runs longer than `timeout`.
pub fn run_command(mut cmd: Command, stdin: &[u8], timeout: Duration) -> Run {
    let start = Instant::now();
    let what = format!("{:?}", cmd.get_program());
    let mut child =
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
    let mut sin = child.stdin.take().unwrap();
    let input = stdin.to_vec();
    // The program may stop reading early (size limit): a broken pipe is not our failure.
    let writer = std::thread::spawn(move || {
        let _ = sin.write_all(&input);
    });
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let r_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out.read_to_end(&mut v);
        v
    });
    let r_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err.read_to_end(&mut v);
        v
    });
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = writer.join();
    let stdout = String::from_utf8_lossy(&r_out.join().unwrap()).into_owned();
    let stderr = String::from_utf8_lossy(&r_err.join().unwrap()).into_owned();
    use std::os::unix::process::ExitStatusExt;
    let code = status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    Run { code, stdout, stderr, elapsed: start.elapsed() }
}

/// Every regular file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Does `needle` occur in the bytes of `path`?
pub fn file_contains(path: &Path, needle: &str) -> bool {
    let data = std::fs::read(path).unwrap_or_default();
    !needle.is_empty() && data.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// The patched moto server (tests/peers/moto_patched.py) on a free port; killed on drop.
pub struct Moto {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Moto {
    /// Start moto with the default 12 h token lifetime.
    pub fn start() -> Moto {
        Moto::start_with_lifetime(None)
    }

    /// Start moto; `lifetime` sets MOTO_ECR_TOKEN_LIFETIME (negative: expired on arrival).
    pub fn start_with_lifetime(lifetime: Option<i64>) -> Moto {
        let python = repo_root().join(".test-work/venv/bin/python");
        if !python.is_file() {
            panic!("moto is not installed: run tests/peers/install.sh");
        }
        let dir = tempfile::Builder::new().prefix("moto-").tempdir().unwrap();
        let log = dir.path().join("calls.log");
        std::fs::write(&log, "").unwrap();
        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let mut cmd = Command::new(&python);
            cmd.arg(repo_root().join("tests/peers/moto_patched.py"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env_clear()
                .env("PATH", "/usr/bin:/bin")
                .env("HOME", dir.path())
                .env("LANG", "C.UTF-8")
                .env("MOTO_CALL_LOG", &log)
                .current_dir(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::fs::File::create(dir.path().join("moto.stderr")).unwrap()));
            if let Some(l) = lifetime {
                cmd.env("MOTO_ECR_TOKEN_LIFETIME", l.to_string());
            }
            let mut child = cmd.spawn().expect("spawn moto");
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_err =
                        format!("moto exited ({status}): {}", std::fs::read_to_string(dir.path().join("moto.stderr")).unwrap_or_default());
                    break;
                }
                if http_answers(port) {
                    return Moto { child, port, dir };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = "moto did not answer within 30 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("could not start moto: {last_err}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The call log: (operation, region, access key id) per line.
    pub fn calls(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(self.dir.path().join("calls.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((it.next()?.to_string(), it.next()?.to_string(), it.next().unwrap_or("-").to_string()))
            })
            .collect()
    }

    /// How many calls of `op` the log shows.
    pub fn count(&self, op: &str) -> usize {
        self.calls().iter().filter(|c| c.0 == op).count()
    }

    /// The log as text, for assertion messages.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn http_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /moto-api/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(s.read(&mut buf), Ok(n) if n >= 8 && buf.starts_with(b"HTTP/1."))
}

/// Temporary credentials from STS AssumeRole against `endpoint` (moto), using static keys.
pub struct TempCreds {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

pub fn assume_role(endpoint: &str, role_arn: &str, session: &str) -> TempCreds {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let conf = aws_sdk_sts::Config::builder()
            .behavior_version(aws_sdk_sts::config::BehaviorVersion::latest())
            .region(aws_sdk_sts::config::Region::new("us-east-1"))
            .endpoint_url(endpoint)
            .credentials_provider(aws_sdk_sts::config::Credentials::new(
                "AKIABASEKEYFORASSUME",
                "base-secret-for-assume-role",
                None,
                None,
                "test",
            ))
            .build();
        let out = aws_sdk_sts::Client::from_conf(conf)
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session)
            .send()
            .await
            .unwrap_or_else(|e| panic!("AssumeRole {role_arn} against moto: {e:?}"));
        let c = out.credentials().expect("AssumeRole returned credentials");
        TempCreds {
            access_key_id: c.access_key_id().to_string(),
            secret_access_key: c.secret_access_key().to_string(),
            session_token: c.session_token().to_string(),
        }
    })
}
