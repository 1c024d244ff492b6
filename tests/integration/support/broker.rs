//! An `ecr-broker` process for tests: started in a private folder against the fake AWS,
//! asked over its socket, signalled, restarted. Shared by tests/integration/broker_daemon.rs and
//! tests/integration/secret_leak.rs.

use super::fake_aws::FakeAws;
use super::Helper;
use ecr_cred::broker::{self, Response};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
pub const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
pub const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

pub fn broker_bin() -> PathBuf {
    let bin = super::helper_bin().with_file_name("ecr-broker");
    assert!(bin.is_file(), "build first: cargo build --release --workspace ({} is missing)", bin.display());
    bin
}

/// One `ecr-broker --user` process in a private folder (0755, so another uid can reach a
/// 0666 socket), against `fake`, with its own static keys. `env` entries are applied last,
/// so they can override any default (keys, `ECR_LOG`, libfaketime).
pub struct Broker {
    pub child: Option<Child>,
    pub dir: PathBuf,
    _keep: Option<tempfile::TempDir>,
    pub endpoint: String,
    /// Extra environment for the broker process (e.g. libfaketime).
    env: Vec<(String, String)>,
}

impl Broker {
    pub fn start(fake: &FakeAws, config: &str) -> Broker {
        Broker::start_with_env(fake, config, &[])
    }

    pub fn start_with_env(fake: &FakeAws, config: &str, env: &[(&str, &str)]) -> Broker {
        let tmp = tempfile::Builder::new().prefix("broker-").tempdir().unwrap();
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = tmp.path().to_path_buf();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let mut b = Broker { child: None, dir, _keep: Some(tmp), endpoint: fake.endpoint(), env };
        std::fs::write(b.config_path(), config).unwrap();
        b.spawn();
        b
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.join("broker.sock")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state/state.json")
    }
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("broker.log")).unwrap_or_default()
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("broker.log")).unwrap();
        let child = Command::new(broker_bin())
            .args(["--user", "--config"])
            .arg(self.config_path())
            .arg("--socket")
            .arg(self.socket())
            .arg("--state")
            .arg(self.state())
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", &self.dir)
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("ECR_LOG", "info")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn ecr-broker");
        self.child = Some(child);
        let start = Instant::now();
        while broker::get(&self.socket(), "/healthz", Duration::from_secs(1)).is_err() {
            assert!(start.elapsed() < Duration::from_secs(10), "broker did not start:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn request(&self, path: &str) -> Response {
        broker::get(&self.socket(), path, Duration::from_secs(30)).unwrap_or_else(|e| panic!("broker request {path}: {e:?}"))
    }

    pub fn token(&self, host: &str) -> (u16, serde_json::Value) {
        let r = self.request(&format!("/v1/token?registry={host}"));
        (r.status, serde_json::from_slice(&r.body).unwrap_or(serde_json::Value::Null))
    }

    pub fn signal(&mut self, sig: i32) {
        let child = self.child.as_mut().expect("running");
        unsafe { libc::kill(child.id() as i32, sig) };
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                if sig == libc::SIGTERM {
                    assert!(status.success(), "broker exited with {status} on SIGTERM:\n{}", self.log());
                }
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(15), "broker did not stop on signal {sig}");
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = None;
    }

    /// A helper run that asks this broker.
    pub fn helper(&self) -> Helper {
        let mut h = Helper::new();
        h.aws(&self.endpoint, KEY_ID, SECRET).env("ECR_BROKER_SOCKET", self.socket());
        h
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
