//! No secret leaves its place: every helper action and a broker, run with `ECR_LOG=trace`
//! through success paths (moto and the fake AWS) and failure paths (denied, throttled, server
//! error, unreachable endpoint, no or partial credentials), then every stdout, stderr, broker
//! log and answer body, and every file under the temporary HOMEs, cache and state folders, is
//! searched for:
//!
//! - the token password (`fake-token-N` from the fake AWS, `123456789012-auth-token` from moto)
//!   and the authorization token's base64 form (`base64("AWS:<password>")`);
//! - the AWS secret access key(s) and the session token of temporary credentials.
//!
//! The token may appear only in the helper's `get` stdout (and the answer channels that are
//! `get` by another name: `kubelet`'s stdout and `get-login-password`'s, when those exist),
//! the broker's `/v1/token` 200 body, and the 0600 files `tokens.json` (helper cache) and
//! `state.json` (broker state). The secret key and session token may appear nowhere.
//! Inputs that put the token where a *server URL* goes are checked on stdout only (logs may
//! name the URL they were given). Also checked: cache folder 0700, tokens.json 0600, broker
//! state 0600 (its folder 0700), broker socket 0600 in user mode.
//!
//! With `credsStore` keyring support in the helper, `store` for a non-ECR host writes to the
//! user's OS keyring; every such store here is followed by an `erase` of the same URL.
//!
//! Build first: `cargo build --release --workspace`; run with
//! `cargo test --release --test integration secret_leak::`. Moto must be installed (tests/peers/install.sh).
//! The refused-request part runs a helper as uid 65534 and so needs root; otherwise it is
//! skipped with a note on stderr (and fails in the full run, `ECR_CRED_FULL_RUN=1`).

use crate::support;

use base64::Engine;
use ecr_cred::broker;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use support::broker::Broker;
use support::fake_aws::{FakeAws, Mode};
use support::{assume_role, files_under, Helper, Moto, Run};

const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
/// A session token for runs with temporary-looking credentials against the fake (it does not check them).
const FAKE_SESSION_TOKEN: &str = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN-secret-leak-0001";
const MOTO_PASSWORD: &str = "123456789012-auth-token";

/// The authorization token as ECR hands it out: `base64("AWS:<password>")`.
fn encoded(password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("AWS:{password}"))
}

/// One piece of output to search, and whether the token may be in it.
struct Evidence {
    place: String,
    data: Vec<u8>,
    token_allowed: bool,
}

/// What a scenario produced, and the secrets to look for in it.
#[derive(Default)]
struct Scan {
    evidence: Vec<Evidence>,
    /// Token passwords and their base64 forms: allowed only where `token_allowed`.
    tokens: Vec<String>,
    /// Secret keys and session tokens: allowed nowhere.
    never: Vec<String>,
    /// Folders whose files are all searched at the end.
    dirs: Vec<PathBuf>,
    /// How many runs and files were searched (for the summary).
    runs: usize,
}

impl Scan {
    fn token(&mut self, password: &str) {
        self.tokens.push(password.to_string());
        self.tokens.push(encoded(password));
    }

    fn never(&mut self, secret: &str) {
        self.never.push(secret.to_string());
    }

    fn text(&mut self, place: impl Into<String>, data: impl Into<Vec<u8>>, token_allowed: bool) {
        self.evidence.push(Evidence { place: place.into(), data: data.into(), token_allowed });
    }

    /// A helper run: its stdout may hold the token only if `stdout_is_answer` (a successful
    /// `get` or its equivalents); stderr never.
    fn run(&mut self, label: &str, run: &Run, stdout_is_answer: bool) {
        self.runs += 1;
        self.text(format!("{label}: stdout"), run.stdout.clone(), stdout_is_answer && run.code == 0);
        self.text(format!("{label}: stderr"), run.stderr.clone(), false);
    }

    /// A run fed the token as a *server URL* (not as a secret): its stdout (the protocol's
    /// error line) must not echo it; stderr is not searched, as logs at debug/trace may name
    /// the server URL they were given (the `keyring` crate does), and a URL is not a secret.
    fn run_stdout_only(&mut self, label: &str, run: &Run) {
        self.runs += 1;
        self.text(format!("{label}: stdout"), run.stdout.clone(), false);
    }

    fn dir(&mut self, dir: &Path) {
        self.dirs.push(dir.to_path_buf());
    }

    /// Search everything; panic with every finding.
    fn check(mut self, what: &str) {
        assert!(!self.tokens.is_empty(), "{what}: no token was handed out, so the search proves nothing");
        let mut findings = Vec::new();
        let mut files = 0;
        for dir in std::mem::take(&mut self.dirs) {
            for path in files_under(&dir) {
                files += 1;
                let data = std::fs::read(&path).unwrap_or_default();
                let mode = std::fs::metadata(&path).map(|m| m.permissions().mode() & 0o777).unwrap_or(0);
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                // Only the helper's cache file and the broker's state file, private, may hold tokens.
                let token_allowed = matches!(name, "tokens.json" | "state.json") && mode == 0o600;
                self.evidence.push(Evidence { place: format!("file {} (mode {mode:o})", path.display()), data, token_allowed });
            }
        }
        let mut token_seen_in_allowed_place = false;
        for e in &self.evidence {
            for s in &self.never {
                if contains(&e.data, s) {
                    findings.push(format!("secret {s:?} in {}", e.place));
                }
            }
            for t in &self.tokens {
                if contains(&e.data, t) {
                    if e.token_allowed {
                        token_seen_in_allowed_place = true;
                    } else {
                        findings.push(format!("token {t:?} in {}", e.place));
                    }
                }
            }
        }
        assert!(token_seen_in_allowed_place, "{what}: the token was never seen even where expected: the search is broken");
        eprintln!(
            "secret_leak {what}: searched {} outputs of {} runs and {files} files for {} token forms and {} secrets: {} findings",
            self.evidence.len() - files,
            self.runs,
            self.tokens.len(),
            self.never.len(),
            findings.len()
        );
        if !findings.is_empty() {
            let mut report = format!("{what}: {} leaks:\n", findings.len());
            for f in &findings {
                report.push_str(&format!("  - {f}\n"));
            }
            // Show the first offending texts in full, to see the context.
            for e in self.evidence.iter().filter(|e| findings.iter().any(|f| f.ends_with(&e.place))).take(4) {
                report.push_str(&format!("--- {} ---\n{}\n", e.place, String::from_utf8_lossy(&e.data)));
            }
            panic!("{report}");
        }
    }
}

fn contains(data: &[u8], needle: &str) -> bool {
    !needle.is_empty() && data.windows(needle.len()).any(|w| w == needle.as_bytes())
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())).permissions().mode() & 0o777
}

/// The helper's modes: cache folder 0700 and tokens.json 0600.
fn assert_cache_modes(helper: &Helper) {
    let dir = helper.default_cache_dir();
    assert_eq!(mode_of(&dir), 0o700, "cache folder {}", dir.display());
    let file = dir.join("tokens.json");
    assert_eq!(mode_of(&file), 0o600, "{}", file.display());
}

/// Does this helper have the subcommand `name`? (`get-login-password` may or may not exist.)
fn helper_has_command(name: &str) -> bool {
    let out = Command::new(support::helper_bin()).arg("--help").env_clear().output().expect("helper --help");
    String::from_utf8_lossy(&out.stdout).lines().any(|l| l.split_whitespace().next() == Some(name))
}

/// A kubelet `CredentialProviderRequest` (credentialprovider.kubelet.k8s.io/v1).
fn kubelet_request(image: &str) -> String {
    serde_json::json!({
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "kind": "CredentialProviderRequest",
        "image": image,
    })
    .to_string()
}

/// Every helper action in `helper`'s setup, recorded into `scan`. `token_host` is an ECR
/// registry the setup can get a token for.
fn every_action(scan: &mut Scan, label: &str, helper: &Helper, token_host: &str, token_password: &str) {
    let r = helper.get(token_host);
    r.assert_ok();
    assert_eq!(r.json()["Secret"], token_password, "{label}: get gave the expected token");
    scan.run(&format!("{label} get (fetch)"), &r, true);
    let r = helper.get(&format!("https://{token_host}/v2/"));
    r.assert_ok();
    scan.run(&format!("{label} get (cache hit)"), &r, true);
    // Non-ECR hosts: "not found", or (with `credsStore` keyring support) what was stored for
    // them, which is a get answer too.
    let r = helper.get("docker.io");
    scan.run(&format!("{label} get non-ECR"), &r, true);
    let r = helper.get("ghcr.io/someone/app");
    scan.run(&format!("{label} get non-ECR path"), &r, true);
    // store: docker login hands the secret to the helper; it must never be echoed, even in
    // errors. (A store for a non-ECR host may now land in the user's OS keyring: the erases
    // below remove what these stores put there.)
    for (what, input) in [
        ("store ECR", format!(r#"{{"ServerURL":"{token_host}","Username":"AWS","Secret":"{token_password}"}}"#)),
        ("store non-ECR", format!(r#"{{"ServerURL":"ghcr.io","Username":"u","Secret":"{token_password}"}}"#)),
        ("store bad JSON", format!(r#"{{"ServerURL":"ghcr.io","Secret":"{token_password}""#)),
    ] {
        let r = helper.run(&["store"], input.as_bytes());
        scan.run(&format!("{label} {what}"), &r, false);
    }
    let r = helper.run(&["store"], format!(r#"{{"ServerURL":"{token_password}","Secret":"{SECRET}"}}"#).as_bytes());
    scan.run_stdout_only(&format!("{label} store token as URL"), &r);
    for (what, input) in [("erase ECR", token_host.to_string()), ("erase non-ECR", "ghcr.io".into())] {
        let r = helper.run(&["erase"], format!("{input}\n").as_bytes());
        scan.run(&format!("{label} {what}"), &r, false);
    }
    let r = helper.run(&["erase"], format!("{token_password}\n").as_bytes());
    scan.run_stdout_only(&format!("{label} erase token as URL"), &r);
    // A get whose "server URL" is the token itself must not echo it.
    let r = helper.get(token_password);
    scan.run_stdout_only(&format!("{label} get of the token as URL"), &r);
    let r = helper.run(&["list"], b"");
    r.assert_ok();
    scan.run(&format!("{label} list"), &r, false);
    let r = helper.run(&["version"], b"");
    scan.run(&format!("{label} version"), &r, false);
    let r = helper.run(&["--version"], b"");
    scan.run(&format!("{label} --version"), &r, false);
    let r = helper.run(&["nonsense"], token_password.as_bytes());
    scan.run(&format!("{label} unknown action"), &r, false);
    // kubelet: its stdout is the CredentialProviderResponse, i.e. `get` by another name.
    let r = helper.run(&["kubelet", "get-credentials"], kubelet_request(&format!("{token_host}/team/app:1")).as_bytes());
    scan.run(&format!("{label} kubelet get-credentials"), &r, true);
    let r = helper.run(&["kubelet"], kubelet_request("docker.io/library/alpine:3").as_bytes());
    scan.run(&format!("{label} kubelet non-ECR"), &r, false);
    let r = helper.run(&["kubelet"], format!("{{\"image\":\"{token_password}\"").as_bytes());
    scan.run_stdout_only(&format!("{label} kubelet bad JSON, token as image"), &r);
    if helper_has_command("get-login-password") {
        let r = helper.run(&["get-login-password", token_host], b"");
        scan.run(&format!("{label} get-login-password"), &r, true);
    }
}

#[test]
fn helper_against_the_fake_aws_leaks_no_secret_on_success_or_failure() {
    let fake = FakeAws::start();
    let mut scan = Scan::default();
    scan.never(SECRET);
    scan.never(FAKE_SESSION_TOKEN);

    // Success: every action, with a session token in the environment too.
    let mut ok = Helper::new();
    ok.aws(&fake.endpoint(), KEY_ID, SECRET).env("ECR_LOG", "trace").env("AWS_SESSION_TOKEN", FAKE_SESSION_TOKEN);
    every_action(&mut scan, "fake ok", &ok, HOST, &FakeAws::token_password(1));
    assert_cache_modes(&ok);
    // ECR Public through the same setup.
    let r = ok.get("public.ecr.aws");
    scan.run("fake ok get public.ecr.aws", &r, true);
    // RUST_LOG=trace instead of ECR_LOG.
    let r = ok.run_with(&["get"], b"123456789012.dkr.ecr.eu-central-1.amazonaws.com\n", &[("ECR_LOG", ""), ("RUST_LOG", "trace")]);
    scan.run("fake ok get RUST_LOG=trace", &r, true);
    scan.dir(ok.home());

    // Failures, each in the HOME that already caches a token (so nothing from the cache may
    // surface in an error), for a region no cached token serves.
    let fail_host = "123456789012.dkr.ecr.us-west-2.amazonaws.com";
    for (what, mode) in [("denied", Mode::Deny), ("throttled", Mode::Throttle), ("server error", Mode::ServerError)] {
        fake.set_mode(mode);
        let r = ok.get(fail_host);
        assert_eq!(r.code, 1, "{what}: {r:?}");
        scan.run(&format!("fake {what} get"), &r, false);
        let r = ok.run(&["kubelet", "get-credentials"], kubelet_request(&format!("{fail_host}/app:1")).as_bytes());
        scan.run(&format!("fake {what} kubelet"), &r, false);
        // STS failing too (the principal lookup).
        fake.set_sts_mode(mode);
        let r = ok.get("123456789012.dkr.ecr.ap-south-1.amazonaws.com");
        scan.run(&format!("fake {what} get with STS failing"), &r, false);
        fake.set_sts_mode(Mode::Ok);
    }
    fake.set_mode(Mode::Ok);

    // Unreachable endpoint.
    let mut unreachable = Helper::new();
    unreachable
        .aws(&format!("http://127.0.0.1:{}", support::closed_port()), KEY_ID, SECRET)
        .env("ECR_LOG", "trace")
        .env("AWS_SESSION_TOKEN", FAKE_SESSION_TOKEN);
    let r = unreachable.get(HOST);
    assert_eq!(r.code, 1, "{r:?}");
    scan.run("unreachable get", &r, false);
    scan.dir(unreachable.home());

    // No credentials at all; and only a secret key without its key id.
    let mut none = Helper::new();
    none.env("AWS_ENDPOINT_URL", fake.endpoint()).env("AWS_REGION", "us-east-1").env("ECR_LOG", "trace");
    let r = none.get(HOST);
    assert_eq!(r.code, 1, "{r:?}");
    scan.run("no credentials get", &r, false);
    none.env("AWS_SECRET_ACCESS_KEY", SECRET).env("AWS_SESSION_TOKEN", FAKE_SESSION_TOKEN);
    let r = none.get(HOST);
    assert_eq!(r.code, 1, "{r:?}");
    scan.run("partial credentials get", &r, false);
    // A credentials file whose profile lacks the key id, with the secret in it.
    let aws_dir = tempfile::Builder::new().prefix("leak-aws-").tempdir().unwrap();
    let creds = aws_dir.path().join("credentials");
    std::fs::write(&creds, format!("[broken]\naws_secret_access_key = {SECRET}\naws_session_token = {FAKE_SESSION_TOKEN}\n")).unwrap();
    let r = none.run_with(
        &["get"],
        format!("{HOST}\n").as_bytes(),
        &[("AWS_SHARED_CREDENTIALS_FILE", creds.to_str().unwrap()), ("AWS_PROFILE", "broken"), ("AWS_SECRET_ACCESS_KEY", "")],
    );
    assert_eq!(r.code, 1, "{r:?}");
    scan.run("broken profile get", &r, false);
    scan.dir(none.home());

    for n in 1..=fake.tokens_issued() {
        scan.token(&FakeAws::token_password(n));
    }
    scan.check("helper + fake AWS");
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn helper_against_moto_leaks_no_secret_with_static_or_temporary_credentials() {
    let moto = Moto::start();
    let mut scan = Scan::default();
    scan.token(MOTO_PASSWORD);
    assert_eq!(encoded(MOTO_PASSWORD), "QVdTOjEyMzQ1Njc4OTAxMi1hdXRoLXRva2Vu");
    scan.never(SECRET);

    let mut stat = Helper::new();
    stat.aws(&moto.endpoint(), KEY_ID, SECRET).env("ECR_LOG", "trace");
    every_action(&mut scan, "moto static", &stat, HOST, MOTO_PASSWORD);
    assert_cache_modes(&stat);
    scan.dir(stat.home());

    let temp = assume_role(&moto.endpoint(), "arn:aws:iam::123456789012:role/LeakCheck", "secret-leak");
    scan.never(&temp.secret_access_key);
    scan.never(&temp.session_token);
    scan.never("base-secret-for-assume-role");
    let mut tmp = Helper::new();
    tmp.env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", &temp.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &temp.secret_access_key)
        .env("AWS_SESSION_TOKEN", &temp.session_token)
        .env("ECR_LOG", "trace");
    every_action(&mut scan, "moto temporary", &tmp, HOST, MOTO_PASSWORD);
    assert_cache_modes(&tmp);
    // Through a credentials file profile (the file itself is ours and outside the scanned HOME).
    let aws_dir = tempfile::Builder::new().prefix("leak-aws-").tempdir().unwrap();
    let creds = aws_dir.path().join("credentials");
    std::fs::write(
        &creds,
        format!(
            "[tmp]\naws_access_key_id = {}\naws_secret_access_key = {}\naws_session_token = {}\n",
            temp.access_key_id, temp.secret_access_key, temp.session_token
        ),
    )
    .unwrap();
    let mut prof = Helper::new();
    prof.env("AWS_ENDPOINT_URL", moto.endpoint())
        .env("AWS_REGION", "us-east-1")
        .env("AWS_SHARED_CREDENTIALS_FILE", &creds)
        .env("AWS_CONFIG_FILE", aws_dir.path().join("config"))
        .env("AWS_PROFILE", "tmp")
        .env("ECR_LOG", "trace");
    let r = prof.get(HOST);
    r.assert_ok();
    scan.run("moto profile get", &r, true);
    let r = prof.get(HOST);
    scan.run("moto profile get (cache hit)", &r, true);
    scan.dir(tmp.home());
    scan.dir(prof.home());
    scan.check("helper + moto");
}

/// A broker logging at trace, with temporary credentials (a session token to look for).
fn start_broker(fake: &FakeAws, config: &str) -> Broker {
    Broker::start_with_env(
        fake,
        config,
        &[
            ("AWS_ACCESS_KEY_ID", KEY_ID),
            ("AWS_SECRET_ACCESS_KEY", SECRET),
            ("AWS_SESSION_TOKEN", FAKE_SESSION_TOKEN),
            ("ECR_LOG", "trace"),
        ],
    )
}

/// The helper as uid 65534 (nobody), asking `socket` for `host`; needs root.
fn helper_as_nobody(fake: &FakeAws, socket: &Path, host: &str) -> Run {
    let start = Instant::now();
    let out = Command::new(support::helper_bin())
        .arg("get")
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", "/nonexistent")
        .env("AWS_ECR_DISABLE_CACHE", "1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_ENDPOINT_URL", fake.endpoint())
        .env("AWS_ACCESS_KEY_ID", KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET)
        .env("AWS_SESSION_TOKEN", FAKE_SESSION_TOKEN)
        .env("ECR_BROKER_SOCKET", socket)
        .env("ECR_LOG", "trace")
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
        .expect("run the helper as uid 65534");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: start.elapsed(),
    }
}

#[test]
fn broker_leaks_no_secret_in_answers_logs_or_files() {
    let fake = FakeAws::start();
    let mut scan = Scan::default();
    scan.never(SECRET);
    scan.never(FAKE_SESSION_TOKEN);

    // A user broker with the default socket mode.
    let mut b = start_broker(&fake, "");
    assert_eq!(mode_of(&b.socket()), 0o600, "socket mode in user mode");
    let r = b.request(&format!("/v1/token?registry={HOST}"));
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    scan.text("broker /v1/token 200", r.body, true);
    // A second registry of the same slot, URL-encoded with scheme: the same token, served again.
    let r = b.request(&format!("/v1/token?registry={}", broker::encode_query(&format!("https://{HOST}/v2/"))));
    scan.text("broker /v1/token 200 (encoded URL)", r.body, true);
    for path in ["/v1/status", "/metrics", "/healthz", "/v1/token", "/v1/token?registry=docker.io", "/v1/token?registry=%zz", "/nope"] {
        let r = b.request(path);
        scan.text(format!("broker {path} ({})", r.status), r.body, false);
    }
    // Upstream failures: the error bodies, the status and the log.
    for (what, mode, host) in [
        ("denied", Mode::Deny, "123456789012.dkr.ecr.us-west-2.amazonaws.com"),
        ("throttled", Mode::Throttle, "123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
        ("server error", Mode::ServerError, "123456789012.dkr.ecr.ap-south-1.amazonaws.com"),
    ] {
        fake.set_mode(mode);
        let r = b.request(&format!("/v1/token?registry={host}"));
        assert_eq!(r.status, 502, "{what}: {}", String::from_utf8_lossy(&r.body));
        scan.text(format!("broker /v1/token {what} (502)"), r.body, false);
    }
    fake.set_mode(Mode::Ok);
    let r = b.request("/v1/status");
    scan.text("broker /v1/status after failures", r.body, false);
    let r = b.request("/metrics");
    scan.text("broker /metrics after failures", r.body, false);
    // A helper served by the broker.
    let mut h = Helper::new();
    h.aws(&fake.endpoint(), KEY_ID, SECRET).env("ECR_BROKER_SOCKET", b.socket()).env("ECR_LOG", "trace");
    let r = h.get(HOST);
    r.assert_ok();
    scan.run("helper via broker get", &r, true);
    let r = h.run(&["kubelet", "get-credentials"], kubelet_request(&format!("{HOST}/app:1")).as_bytes());
    scan.run("helper via broker kubelet", &r, true);
    let r = h.get("123456789012.dkr.ecr.us-west-2.amazonaws.com");
    // The broker answers 502 (back-off); the helper reports the broker's error (no fetch of its own).
    scan.run("helper via broker get (slot in back-off)", &r, true);
    scan.dir(h.home());
    b.signal(libc::SIGTERM);
    assert_eq!(mode_of(&b.state()), 0o600, "broker state file");
    assert_eq!(mode_of(b.state().parent().unwrap()), 0o700, "broker state folder");
    scan.text("broker log (user broker)", b.log(), false);
    scan.dir(&b.dir);

    // A broker that refuses: a 0666 socket, and an identity that serves uid 65534 another account only.
    if unsafe { libc::geteuid() } == 0 {
        let config = "socket_mode = \"0666\"\n[identities.team]\nallow_uids = [65534]\n[[rules]]\nregistry = \"210987654321.us-east-1\"\nidentity = \"team\"\n";
        let mut b2 = start_broker(&fake, config);
        let r = b2.request(&format!("/v1/token?registry={HOST}"));
        assert_eq!(r.status, 200);
        scan.text("refusing broker /v1/token 200 (root)", r.body, true);
        let r = helper_as_nobody(&fake, &b2.socket(), HOST);
        assert_eq!(r.code, 1, "uid 65534 is refused: {r:?}\n{}", b2.log());
        assert!(r.stdout.contains("refused"), "{r:?}");
        scan.run("helper as uid 65534, refused", &r, false);
        let r = helper_as_nobody(&fake, &b2.socket(), "210987654321.dkr.ecr.us-east-1.amazonaws.com");
        assert_eq!(r.code, 0, "uid 65534 is served its account: {r:?}\n{}", b2.log());
        scan.run("helper as uid 65534, served", &r, true);
        let r = b2.request("/metrics");
        assert!(String::from_utf8_lossy(&r.body).contains("result=\"forbidden\"} 1"), "{}", String::from_utf8_lossy(&r.body));
        scan.text("refusing broker /metrics", r.body, false);
        b2.signal(libc::SIGTERM);
        scan.text("broker log (refusing broker)", b2.log(), false);
        scan.dir(&b2.dir);
        drop(b2);
    } else {
        assert!(!support::full_run(), "the full run (tests/run-all.sh) runs as root: the uid 65534 part cannot be left out");
        eprintln!("secret_leak: not root: the refused-request part (a helper as uid 65534) is skipped");
    }

    for n in 1..=fake.tokens_issued() {
        scan.token(&FakeAws::token_password(n));
    }
    scan.check("broker");
}
