//! The CI login, point by point against aws-actions/amazon-ecr-login, through the real helper
//! binary against the fake AWS (tests/integration/support/fake_aws.rs) and a fake GitHub Actions OIDC
//! token endpoint (a tiny HTTP server in this file): `login` with hosts, account IDs, `public`
//! and no registry at all; `--no-mask`; `--role-to-assume` with the job's OIDC token; `logout`
//! taking out exactly what `login` added; `$GITHUB_OUTPUT` created 0600, appended to, or
//! refused before anything changes; `get-login-password --region`.

use crate::support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::fake_aws::FakeAws;
use support::Helper;

const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const SUFFIX: &str = "123456789012_dkr_ecr_us_east_1_amazonaws_com";
const KEY_ID: &str = "AKIACILOGINTESTKEY01";
const SECRET: &str = "ci-login-test-secret-access-key-0001";
const ROLE: &str = "arn:aws:iam::210987654321:role/GitHubDeploy";
const JOB_JWT: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJyZXBvOmV4YW1wbGUvYXBwOnJlZjpyZWZzL2hlYWRzL21haW4ifQ.ZmFrZS1zaWduYXR1cmU";
const REQUEST_TOKEN: &str = "runner-request-token-0001";
const NOT_MASKED: &str =
    "::warning::Your docker password is not masked. See https://github.com/aws-actions/amazon-ecr-login#docker-credentials for more information.";

/// A helper with static keys against the fake AWS and a runner's GITHUB_OUTPUT in its HOME.
fn helper(aws: &FakeAws) -> Helper {
    let mut h = Helper::new();
    h.aws(&aws.endpoint(), KEY_ID, SECRET);
    let out = h.home().join("github_output");
    h.env("GITHUB_OUTPUT", out);
    h
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

/// The GitHub Actions runner's OIDC token endpoint: answers `{"value": JOB_JWT}` to a GET
/// carrying `Authorization: bearer REQUEST_TOKEN`, 401 otherwise; remembers each request's
/// target and Authorization header.
struct FakeOidc {
    port: u16,
    seen: Arc<Mutex<Vec<(String, String)>>>,
}

impl FakeOidc {
    fn start() -> FakeOidc {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let _ = FakeOidc::serve(conn, &s);
            }
        });
        FakeOidc { port, seen }
    }

    fn serve(mut conn: TcpStream, seen: &Mutex<Vec<(String, String)>>) -> std::io::Result<()> {
        conn.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
            let n = conn.read(&mut chunk)?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let head = String::from_utf8_lossy(&buf).into_owned();
        let target = head.lines().next().unwrap_or("").split(' ').nth(1).unwrap_or("").to_string();
        let auth = head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        let ok = auth.eq_ignore_ascii_case(&format!("bearer {REQUEST_TOKEN}")) && target.contains("audience=sts.amazonaws.com");
        seen.lock().unwrap().push((target, auth));
        let (status, body) =
            if ok { ("200 OK", format!("{{\"count\":1,\"value\":\"{JOB_JWT}\"}}")) } else { ("401 Unauthorized", "{}".to_string()) };
        write!(
            conn,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )?;
        conn.flush()
    }

    /// What the runner puts in ACTIONS_ID_TOKEN_REQUEST_URL (it already has a query).
    fn request_url(&self) -> String {
        format!("http://127.0.0.1:{}/_apis/distributedtask/hubs/build/plans/p/jobs/j/idtoken?api-version=2.0", self.port)
    }
}

/// The lines `NAME=value` of a runner file, as pairs.
fn pairs(text: &str) -> Vec<(String, String)> {
    text.lines().filter_map(|l| l.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[test]
fn login_with_role_to_assume_exchanges_the_jobs_oidc_token_and_signs_with_that_session() {
    let aws = FakeAws::start();
    let oidc = FakeOidc::start();
    // A job with no AWS credentials at all: only the OIDC token request variables.
    let mut h = Helper::new();
    h.env("AWS_ENDPOINT_URL", aws.endpoint()).env("AWS_REGION", "us-east-1");
    let runner_temp = tempfile::tempdir().unwrap();
    h.env("GITHUB_OUTPUT", runner_temp.path().join("output"))
        .env("GITHUB_ENV", runner_temp.path().join("env"))
        .env("RUNNER_TEMP", runner_temp.path())
        .env("ACTIONS_ID_TOKEN_REQUEST_URL", oidc.request_url())
        .env("ACTIONS_ID_TOKEN_REQUEST_TOKEN", REQUEST_TOKEN);
    let run = h.run(
        &["login", "--github-actions", "--role-to-assume", ROLE, "--role-session-name", "ci-run-7", "--role-duration", "1800", HOST],
        b"",
    );
    assert_eq!(run.code, 0, "{run:#?}");

    // The runner was asked for the job's token for STS, with the request token.
    let seen = oidc.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(seen[0].0.contains("api-version=2.0&audience=sts.amazonaws.com"), "{seen:?}");
    assert!(seen[0].1.eq_ignore_ascii_case(&format!("bearer {REQUEST_TOKEN}")), "{seen:?}");
    // STS got that token for the role, with the session name and duration asked for.
    let calls = aws.web_identity_calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(
        (calls[0].role_arn.as_str(), calls[0].session_name.as_str(), calls[0].duration_secs, calls[0].web_identity_token.as_str()),
        (ROLE, "ci-run-7", Some(1800), JOB_JWT)
    );
    // ECR was asked with the assumed session's keys, and only with them.
    let session_key = FakeAws::web_identity_key(1);
    let ecr: Vec<_> = aws.requests().into_iter().filter(|r| r.op == "GetAuthorizationToken").collect();
    assert_eq!(ecr.len(), 1, "{:?}", aws.requests());
    assert_eq!(ecr[0].access_key_id, session_key);
    assert!(aws.requests().iter().all(|r| r.access_key_id == "-" || r.access_key_id == session_key), "{:?}", aws.requests());

    // The session's secrets and the password are masked before anything else could show them.
    let password = FakeAws::token_password(1);
    for secret in ["fake-web-identity-secret-1", "fake-web-identity-session-1", password.as_str()] {
        assert!(run.stdout.contains(&format!("::add-mask::{secret}\n")), "{secret} masked: {}", run.stdout);
    }
    assert!(!run.stderr.contains("fake-web-identity-secret-1") && !run.stderr.contains(JOB_JWT), "{}", run.stderr);
    let outputs = pairs(&read(&runner_temp.path().join("output")));
    assert!(outputs.contains(&(format!("docker_password_{SUFFIX}"), password.clone())), "{outputs:?}");

    // The job's later steps get the session through $GITHUB_ENV, and their pulls are cache hits.
    let env = pairs(&read(&runner_temp.path().join("env")));
    assert!(env.contains(&("AWS_ACCESS_KEY_ID".into(), session_key.clone())), "{env:?}");
    assert!(env.contains(&("AWS_SECRET_ACCESS_KEY".into(), "fake-web-identity-secret-1".into())), "{env:?}");
    assert!(env.contains(&("AWS_SESSION_TOKEN".into(), "fake-web-identity-session-1".into())), "{env:?}");
    assert_eq!(mode(&runner_temp.path().join("env")), 0o600, "a new $GITHUB_ENV holding keys is private");
    let before = aws.requests().len();
    let extra: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let get = h.run_with(&["get"], format!("{HOST}\n").as_bytes(), &extra);
    assert_eq!(get.code, 0, "{get:#?}");
    assert_eq!(get.json()["Secret"], password);
    assert_eq!(aws.requests().len(), before, "a later step's get is a cache hit: no AWS call");
}

#[test]
fn role_to_assume_without_the_oidc_permission_fails_clearly_and_changes_nothing() {
    let aws = FakeAws::start();
    let mut h = helper(&aws);
    h.env("GITHUB_ENV", h.home().join("github_env"));
    let run = h.run(&["login", "--github-actions", "--role-to-assume", ROLE, HOST], b"");
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("id-token: write"), "{}", run.stderr);
    assert!(aws.requests().is_empty(), "{:?}", aws.requests());
    assert!(!h.home().join(".docker/config.json").exists());
}

#[test]
fn login_takes_account_ids_and_public_as_amazon_ecr_login_does() {
    let aws = FakeAws::start();
    let h = helper(&aws);
    let run = h.run(&["login", "--github-actions", "--region", "eu-west-1", "111122223333,public"], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    let outputs = pairs(&read(&h.home().join("github_output")));
    let names: Vec<&str> = outputs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "docker_username_111122223333_dkr_ecr_eu_west_1_amazonaws_com",
            "docker_password_111122223333_dkr_ecr_eu_west_1_amazonaws_com",
            "docker_username_public_ecr_aws",
            "docker_password_public_ecr_aws",
        ],
        "two registries: no `registry` output"
    );
    // The account's registry is in --region; ECR Public's token comes from ECR Public.
    let ecr: Vec<_> = aws.requests().into_iter().filter(|r| r.op == "GetAuthorizationToken").collect();
    assert_eq!(ecr.len(), 1);
    assert_eq!(ecr[0].region, "eu-west-1");
    assert_eq!(aws.calls("PublicGetAuthorizationToken"), 1);
    let docker: serde_json::Value = serde_json::from_str(&read(&h.home().join(".docker/config.json"))).unwrap();
    assert_eq!(docker["credHelpers"]["111122223333.dkr.ecr.eu-west-1.amazonaws.com"], "ecr");
    assert_eq!(docker["credHelpers"]["public.ecr.aws"], "ecr");

    // A bare account ID without any region is refused before anything happens.
    let mut h = helper(&aws);
    h.remove_env("AWS_REGION");
    let before = aws.requests().len();
    let run = h.run(&["login", "--github-actions", "111122223333"], b"");
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("--region"), "{}", run.stderr);
    assert_eq!(aws.requests().len(), before);
    assert!(!h.home().join(".docker/config.json").exists());
}

#[test]
fn login_without_a_registry_uses_the_callers_own_account_from_sts() {
    let aws = FakeAws::start();
    aws.set_caller_arn("arn:aws:iam::444455556666:user/ci");
    let mut h = helper(&aws);
    h.env("AWS_REGION", "us-west-2");
    let run = h.run(&["login", "--github-actions"], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    let own = "444455556666.dkr.ecr.us-west-2.amazonaws.com";
    let outputs = pairs(&read(&h.home().join("github_output")));
    assert_eq!(outputs[0], ("registry".to_string(), own.to_string()), "{outputs:?}");
    assert!(aws.calls("GetCallerIdentity") >= 1);
    let ecr: Vec<_> = aws.requests().into_iter().filter(|r| r.op == "GetAuthorizationToken").collect();
    assert_eq!((ecr.len(), ecr[0].region.as_str()), (1, "us-west-2"));
}

#[test]
fn no_mask_prints_no_add_mask_and_warns_as_amazon_ecr_login_does() {
    let aws = FakeAws::start();
    let h = helper(&aws);
    let run = h.run(&["login", "--github-actions", "--no-mask", HOST], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(!run.stdout.contains("::add-mask::"), "{}", run.stdout);
    assert_eq!(run.stdout, format!("{NOT_MASKED}\n"));
    let outputs = read(&h.home().join("github_output"));
    assert!(outputs.contains(&format!("docker_password_{SUFFIX}={}\n", FakeAws::token_password(1))), "{outputs}");
    // Masking stays the default.
    let run = h.run(&["login", "--github-actions", HOST], b"");
    assert_eq!(run.stdout, format!("::add-mask::{}\n", FakeAws::token_password(1)));
}

#[test]
fn logout_leaves_docker_and_containers_config_byte_identical_to_before_login() {
    let aws = FakeAws::start();
    let h = helper(&aws);
    let docker = h.home().join(".docker/config.json");
    std::fs::create_dir_all(docker.parent().unwrap()).unwrap();
    // Other keys, an odd layout, no final newline, and an entry login will replace.
    let original =
        "{\n    \"auths\": {\"ghcr.io\": {\"auth\": \"dXNlcjpwYXNz\"}},\n    \"credHelpers\": {\n        \"gcr.io\": \"gcloud\",\n        \
         \"210987654321.dkr.ecr.us-east-1.amazonaws.com\": \"ecr-login\"\n    },\n    \"psFormat\": \"table {{.ID}}\"\n}";
    std::fs::write(&docker, original).unwrap();
    std::fs::set_permissions(&docker, std::fs::Permissions::from_mode(0o640)).unwrap();
    let containers = h.home().join(".config/containers/auth.json");
    assert!(!containers.exists());

    // Two logins in one job.
    assert_eq!(h.run(&["login", HOST], b"").code, 0);
    let run = h.run(&["login", "210987654321.dkr.ecr.us-east-1.amazonaws.com", "public"], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    let during: serde_json::Value = serde_json::from_str(&read(&docker)).unwrap();
    assert_eq!(during["credHelpers"][HOST], "ecr");
    assert_eq!(during["credHelpers"]["210987654321.dkr.ecr.us-east-1.amazonaws.com"], "ecr");
    assert!(containers.exists());

    let run = h.run(&["logout"], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(read(&docker), original, "docker's config is byte for byte what it was");
    assert_eq!(mode(&docker), 0o640);
    assert!(!containers.exists(), "the containers auth file login created is gone");
    // Nothing is left to take out.
    let again = h.run(&["logout"], b"");
    assert_eq!(again.code, 0, "{again:#?}");
    assert!(again.stderr.contains("nothing to take out"), "{}", again.stderr);
    assert_eq!(read(&docker), original);
}

#[test]
fn logout_after_other_changes_takes_out_only_what_login_added() {
    let aws = FakeAws::start();
    let h = helper(&aws);
    let docker = h.home().join(".docker/config.json");
    std::fs::create_dir_all(docker.parent().unwrap()).unwrap();
    std::fs::write(&docker, "{\n\t\"auths\": {}\n}\n").unwrap();
    assert_eq!(h.run(&["login", HOST], b"").code, 0);
    // A later step of the job adds its own entry.
    let mut during: serde_json::Value = serde_json::from_str(&read(&docker)).unwrap();
    during["credHelpers"]["gcr.io"] = "gcloud".into();
    std::fs::write(&docker, serde_json::to_string_pretty(&during).unwrap()).unwrap();

    let run = h.run(&["logout"], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    let after: serde_json::Value = serde_json::from_str(&read(&docker)).unwrap();
    assert_eq!(after, serde_json::json!({"auths": {}, "credHelpers": {"gcr.io": "gcloud"}}));
}

#[test]
fn github_output_is_created_0600_or_appended_to_with_its_mode_kept() {
    let aws = FakeAws::start();
    let h = helper(&aws);
    let out = h.home().join("github_output");
    assert!(!out.exists());
    assert_eq!(h.run(&["login", "--github-actions", HOST], b"").code, 0);
    assert_eq!(mode(&out), 0o600, "a new file holding passwords is private");

    let h = helper(&aws);
    let out = h.home().join("github_output");
    std::fs::write(&out, "earlier=step\n").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(h.run(&["login", "--github-actions", HOST], b"").code, 0);
    let text = read(&out);
    assert!(text.starts_with("earlier=step\nregistry="), "appended: {text}");
    assert_eq!(mode(&out), 0o640, "the runner's own file keeps its mode");
}

#[test]
fn a_github_output_that_cannot_be_written_fails_the_login_before_any_change() {
    let aws = FakeAws::start();
    fn fifo(p: &Path) {
        support::mkfifo(p);
    }
    type Make = fn(&Path);
    let cases: [(&str, Make); 4] = [
        ("in a missing folder", |_| {}),
        ("a FIFO (never waited on)", fifo),
        ("a directory", |p| std::fs::create_dir(p).unwrap()),
        ("a symbolic link", |p| std::os::unix::fs::symlink("/dev/null", p).unwrap()),
    ];
    for (what, make) in cases {
        let mut h = helper(&aws);
        let out = if what == "in a missing folder" { h.home().join("missing/github_output") } else { h.home().join("github_output") };
        make(&out);
        h.env("GITHUB_OUTPUT", &out);
        h.timeout = Duration::from_secs(20);
        let before = aws.requests().len();
        let run = h.run(&["login", "--github-actions", HOST], b"");
        assert_eq!(run.code, 1, "{what}: {run:#?}");
        assert!(run.stderr.contains("GITHUB_OUTPUT") && run.stderr.contains("nothing was changed"), "{what}: {}", run.stderr);
        assert!(!h.home().join(".docker/config.json").exists(), "{what}: docker's config untouched");
        assert!(!h.home().join(".config/containers/auth.json").exists(), "{what}: containers' config untouched");
        assert_eq!(aws.requests().len(), before, "{what}: refused before any AWS call");
        assert!(!run.stdout.contains("add-mask"), "{what}");
    }
}

#[test]
fn get_login_password_region_gives_the_own_accounts_token_in_that_region() {
    let aws = FakeAws::start();
    aws.set_caller_arn("arn:aws:iam::444455556666:user/dev");
    let h = helper(&aws);
    let run = h.run(&["get-login-password", "--region", "eu-central-1"], b"");
    assert_eq!((run.code, run.stdout.as_str()), (0, format!("{}\n", FakeAws::token_password(1)).as_str()), "{run:#?}");
    let ecr: Vec<_> = aws.requests().into_iter().filter(|r| r.op == "GetAuthorizationToken").collect();
    assert_eq!((ecr.len(), ecr[0].region.as_str()), (1, "eu-central-1"));
    // The registry it was for is the own account's in that region: a later get of it is a cache hit.
    let get = h.get("444455556666.dkr.ecr.eu-central-1.amazonaws.com");
    assert_eq!(get.json()["Secret"], FakeAws::token_password(1));
    assert_eq!(aws.calls("GetAuthorizationToken"), 1);
    // The host forms stay.
    let run = h.run(&["get-login-password", "--registry", HOST], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    let run = h.run(&["get-login-password", HOST], b"");
    assert_eq!(run.code, 0, "{run:#?}");
}

/// `node`, the runtime of action.yml's scripts (tests/peers/install.sh installs Debian's nodejs).
fn node() -> std::path::PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin"] {
        let p = Path::new(dir).join("node");
        if p.is_file() {
            return p;
        }
    }
    panic!("node is not installed (needed to run action/main.js and action/post.js): run tests/peers/install.sh");
}

#[test]
#[ignore = "needs peer node: tests/run-all.sh runs it"]
fn the_action_logs_in_with_its_inputs_and_its_post_step_logs_out() {
    let aws = FakeAws::start();
    aws.set_caller_arn("arn:aws:iam::444455556666:user/ci");
    let runner = tempfile::tempdir().unwrap();
    let home = tempfile::tempdir().unwrap();
    let files = ["output", "env", "state", "path"].map(|f| runner.path().join(f));
    for f in &files {
        std::fs::write(f, "").unwrap();
    }
    let docker = home.path().join(".docker/config.json");
    std::fs::create_dir_all(docker.parent().unwrap()).unwrap();
    let original = "{\n\t\"auths\": {\n\t\t\"ghcr.io\": {}\n\t}\n}";
    std::fs::write(&docker, original).unwrap();
    let bin_dir = support::helper_bin().parent().unwrap().to_path_buf();
    let step = |script: &str, extra: &[(&str, &str)]| {
        let mut cmd = std::process::Command::new(node());
        cmd.arg(support::repo_root().join("action").join(script))
            .env_clear()
            .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
            .env("HOME", home.path())
            .env("RUNNER_TEMP", runner.path())
            .env("GITHUB_OUTPUT", &files[0])
            .env("GITHUB_ENV", &files[1])
            .env("GITHUB_STATE", &files[2])
            .env("GITHUB_PATH", &files[3])
            .env("ECR_BROKER_SOCKET", "none")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_ENDPOINT_URL", aws.endpoint())
            .env("AWS_ACCESS_KEY_ID", KEY_ID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .envs(extra.iter().copied())
            .current_dir(home.path());
        support::run_command(cmd, b"", Duration::from_secs(60))
    };
    // The inputs as the runner passes them (INPUT_<NAME>, hyphens kept).
    let run = step(
        "main.js",
        &[
            ("INPUT_REGISTRIES", ""),
            ("INPUT_REGISTRY-TYPE", "private"),
            ("INPUT_MASK-PASSWORD", "false"),
            ("INPUT_AWS-REGION", "ap-southeast-2"),
            ("INPUT_SKIP-LOGOUT", "false"),
        ],
    );
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains(NOT_MASKED) && !run.stdout.contains("::add-mask::"), "{}", run.stdout);
    let own = "444455556666.dkr.ecr.ap-southeast-2.amazonaws.com";
    let outputs = pairs(&read(&files[0]));
    assert_eq!(outputs[0], ("registry".to_string(), own.to_string()), "{outputs:?}");
    assert!(outputs.contains(&("docker_password_444455556666_dkr_ecr_ap_southeast_2_amazonaws_com".into(), FakeAws::token_password(1))));
    assert!(pairs(&read(&files[1])).contains(&("AWS_REGION".into(), "ap-southeast-2".into())));
    let during: serde_json::Value = serde_json::from_str(&read(&docker)).unwrap();
    assert_eq!(during["credHelpers"][own], "ecr");

    // The post step gets the saved state as STATE_<name>.
    let state: Vec<(String, String)> = pairs(&read(&files[2])).into_iter().map(|(k, v)| (format!("STATE_{k}"), v)).collect();
    assert!(!state.is_empty(), "the login step saved state for the post step");
    let extra: Vec<(&str, &str)> = state.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let post = step("post.js", &extra);
    assert_eq!(post.code, 0, "{post:#?}");
    assert_eq!(read(&docker), original, "the post step took out what the login step added");

    // skip-logout: no state, so the post step changes nothing.
    std::fs::write(&files[2], "").unwrap();
    let run = step("main.js", &[("INPUT_REGISTRIES", HOST), ("INPUT_SKIP-LOGOUT", "true")]);
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains(&format!("::add-mask::{}", FakeAws::token_password(2))), "{}", run.stdout);
    assert_eq!(read(&files[2]), "", "skip-logout saves no state");
    let post = step("post.js", &[]);
    assert_eq!(post.code, 0);
    let after: serde_json::Value = serde_json::from_str(&read(&docker)).unwrap();
    assert_eq!(after["credHelpers"][HOST], "ecr", "skipped: the entry stays");

    // A bad input fails the step with amazon-ecr-login's message.
    let run = step("main.js", &[("INPUT_REGISTRY-TYPE", "other")]);
    assert_eq!(run.code, 1);
    assert!(run.stdout.contains("Invalid input for 'registry-type'"), "{}", run.stdout);
}
