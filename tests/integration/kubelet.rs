//! The kubelet image credential provider mode (`ecr-credential-provider`, or
//! `docker-credential-ecr kubelet get-credentials`) against the patched moto: every apiVersion,
//! the response decoded as strictly as kubelet decodes it, service-account token mode with
//! STS AssumeRoleWithWebIdentity and its cache, the failures, and the shipped
//! CredentialProviderConfig's matchImages under kubelet's matching rules.

use crate::support;

use base64::Engine;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{file_contains, files_under, helper_bin, repo_root, Moto, Run};

/// moto's deterministic token password for account 123456789012 (the node's static keys).
const MOTO_PASSWORD: &str = "123456789012-auth-token";
const AKID: &str = "AKIATESTKUBELET00001";
const SECRET: &str = "kubelet-provider-secret-access-key-01";
const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const API_VERSIONS: [&str; 3] =
    ["credentialprovider.kubelet.k8s.io/v1", "credentialprovider.kubelet.k8s.io/v1beta1", "credentialprovider.kubelet.k8s.io/v1alpha1"];
const ROLE_ANNOTATION: &str = "eks.amazonaws.com/ecr-role-arn";
/// A role in another account: moto hands its temporary keys tokens of that account.
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/ecr-puller";
const ROLE_PASSWORD: &str = "111122223333-auth-token";

// ---------------------------------------------------------------------------------------------
// The response, as strictly as kubelet decodes it (serializer.EnableStrict: unknown fields fail).

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderResponse {
    #[serde(rename = "apiVersion")]
    api_version: String,
    kind: String,
    #[serde(rename = "cacheKeyType")]
    cache_key_type: String,
    #[serde(rename = "cacheDuration", default)]
    cache_duration: Option<String>,
    #[serde(default)]
    auth: Option<BTreeMap<String, AuthConfig>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    username: String,
    password: String,
}

fn decode(run: &Run) -> ProviderResponse {
    assert_eq!(run.code, 0, "expected exit 0: {run:#?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("response does not decode strictly ({e}): {run:#?}"))
}

/// Go's `time.ParseDuration` for what a duration string may hold: `[0-9.]+(h|m|s|ms|us|µs|ns)`
/// repeated, or `0`. Returns seconds.
fn parse_go_duration(s: &str) -> Option<f64> {
    if s == "0" {
        return Some(0.0);
    }
    let mut rest = s;
    let mut total = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let n = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if n == 0 {
            return None;
        }
        let value: f64 = rest[..n].parse().ok()?;
        rest = &rest[n..];
        let (unit, len) = [("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("ms", 1e-3), ("h", 3600.0), ("m", 60.0), ("s", 1.0)]
            .iter()
            .find(|(u, _)| rest.starts_with(u))
            .map(|(u, f)| (*f, u.len()))?;
        total += value * unit;
        rest = &rest[len..];
    }
    Some(total)
}

// ---------------------------------------------------------------------------------------------
// Running the provider: as `ecr-credential-provider` (a symlink, argv[0]) or as
// `docker-credential-ecr kubelet`, in a cleared environment like support::Helper's.

#[derive(Clone, Copy, Debug)]
enum Invocation {
    Symlink,
    Subcommand,
}

struct Provider {
    home: tempfile::TempDir,
    bin_dir: tempfile::TempDir,
    env: BTreeMap<OsString, OsString>,
}

impl Provider {
    fn new() -> Provider {
        let home = tempfile::Builder::new().prefix("kubelet-home-").tempdir().unwrap();
        let bin_dir = tempfile::Builder::new().prefix("kubelet-bin-").tempdir().unwrap();
        std::os::unix::fs::symlink(helper_bin(), bin_dir.path().join("ecr-credential-provider")).unwrap();
        let mut env = BTreeMap::new();
        env.insert("PATH".into(), "/usr/bin:/bin".into());
        env.insert("HOME".into(), home.path().as_os_str().to_owned());
        env.insert("AWS_EC2_METADATA_DISABLED".into(), "true".into());
        env.insert("ECR_BROKER_SOCKET".into(), "none".into());
        Provider { home, bin_dir, env }
    }

    /// The node's identity: static keys, pointed at `endpoint`.
    fn with_aws(endpoint: &str) -> Provider {
        let mut p = Provider::new();
        p.env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", AKID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET)
            .env("AWS_REGION", "us-east-1");
        p
    }

    fn env(&mut self, k: &str, v: &str) -> &mut Provider {
        self.env.insert(k.into(), v.into());
        self
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn symlink(&self) -> PathBuf {
        self.bin_dir.path().join("ecr-credential-provider")
    }

    fn run(&self, how: Invocation, args: &[&str], stdin: &[u8]) -> Run {
        let mut cmd = match how {
            Invocation::Symlink => Command::new(self.symlink()),
            Invocation::Subcommand => {
                let mut c = Command::new(helper_bin());
                c.arg("kubelet");
                c
            }
        };
        cmd.args(args).env_clear().envs(&self.env).current_dir(self.home());
        support::run_command(cmd, stdin, Duration::from_secs(60))
    }

    /// What kubelet does: `ecr-credential-provider get-credentials` with the request.
    fn kubelet(&self, request: &serde_json::Value) -> Run {
        self.run(Invocation::Symlink, &["get-credentials"], request.to_string().as_bytes())
    }
}

fn request(api_version: &str, image: &str) -> serde_json::Value {
    serde_json::json!({"apiVersion": api_version, "kind": "CredentialProviderRequest", "image": image})
}

fn sa_request(image: &str, token: &str, role: Option<&str>) -> serde_json::Value {
    let mut r = request(API_VERSIONS[0], image);
    r["serviceAccountToken"] = token.into();
    if let Some(role) = role {
        r["serviceAccountAnnotations"] = serde_json::json!({ ROLE_ANNOTATION: role, "other/annotation": "x" });
    }
    r
}

/// A service account token as kubelet's TokenRequest gives one (the signature is not checked by
/// anyone here: moto does not verify web identity tokens).
fn sa_token(namespace: &str, name: &str, nonce: u32) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = e.encode(r#"{"alg":"RS256","kid":"test-key"}"#);
    let payload = e.encode(
        serde_json::json!({
            "aud": ["sts.amazonaws.com"],
            "exp": 4_102_444_800u64,
            "iat": 1_700_000_000u64 + nonce as u64,
            "iss": "https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
            "kubernetes.io": {"namespace": namespace, "serviceaccount": {"name": name, "uid": format!("uid-{name}")}},
            "sub": format!("system:serviceaccount:{namespace}:{name}"),
        })
        .to_string(),
    );
    let sig = e.encode(format!("signature-{name}-{nonce}"));
    format!("{header}.{payload}.{sig}")
}

fn new_token_calls(moto: &Moto, before: usize) -> Vec<(String, String, String)> {
    moto.calls()[before..].iter().filter(|c| c.0 == "GetAuthorizationToken").cloned().collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Every apiVersion, both invocations, the strict schema.

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn every_api_version_both_invocations_strict_response() {
    let moto = Moto::start();
    let images = [
        (format!("{HOST}/app:1"), HOST.to_string()),
        (format!("{HOST}:5443/team/app@sha256:{}", "0".repeat(64)), format!("{HOST}:5443")),
        ("123456789012.dkr.ecr.eu-west-1.amazonaws.com/x/y:latest".to_string(), "123456789012.dkr.ecr.eu-west-1.amazonaws.com".to_string()),
    ];
    let mut failures = Vec::new();
    for api_version in API_VERSIONS {
        for how in [Invocation::Symlink, Invocation::Subcommand] {
            for (image, registry) in &images {
                let provider = Provider::with_aws(&moto.endpoint());
                let run = provider.run(how, &["get-credentials"], request(api_version, image).to_string().as_bytes());
                let what = format!("{api_version} {how:?} {image}");
                if run.code != 0 {
                    failures.push(format!("{what}: {run:#?}"));
                    continue;
                }
                let r = decode(&run);
                let auth = r.auth.as_ref().expect("auth");
                let duration = r.cache_duration.as_deref().and_then(parse_go_duration);
                let ok = r.api_version == api_version
                    && r.kind == "CredentialProviderResponse"
                    && r.cache_key_type == "Registry"
                    && auth.len() == 1
                    && auth.get(registry).is_some_and(|a| a.username == "AWS" && a.password == MOTO_PASSWORD)
                    && duration.is_some_and(|d| d > 0.0 && d < 43200.0 && d <= 6.0 * 3600.0)
                    && run.stdout.lines().count() == 1;
                if !ok {
                    failures
                        .push(format!("{what}: want {registry} -> AWS/{MOTO_PASSWORD}, 0 < cacheDuration < 12h; got {r:#?} from {run:#?}"));
                }
                assert!(!run.stderr.contains(MOTO_PASSWORD), "no token on stderr: {run:#?}");
            }
        }
    }
    assert!(failures.is_empty(), "{} failures:\n{}", failures.len(), failures.join("\n"));
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn no_arguments_are_accepted_too() {
    let moto = Moto::start();
    let provider = Provider::with_aws(&moto.endpoint());
    for how in [Invocation::Symlink, Invocation::Subcommand] {
        let run = provider.run(how, &[], request(API_VERSIONS[0], &format!("{HOST}/app")).to_string().as_bytes());
        assert_eq!(decode(&run).auth.unwrap()[HOST].password, MOTO_PASSWORD, "{how:?}: {run:#?}");
    }
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn cache_duration_is_half_the_remaining_life_and_zero_near_expiry() {
    // A 1 h token: kubelet keeps it about 30 min.
    let moto = Moto::start_with_lifetime(Some(3600));
    let run = Provider::with_aws(&moto.endpoint()).kubelet(&request(API_VERSIONS[0], &format!("{HOST}/app")));
    let secs = parse_go_duration(decode(&run).cache_duration.as_deref().unwrap()).unwrap();
    assert!((1780.0..=1800.0).contains(&secs), "{secs}: {run:#?}");

    // A 30 s token: not to be cached at all.
    let moto = Moto::start_with_lifetime(Some(30));
    let run = Provider::with_aws(&moto.endpoint()).kubelet(&request(API_VERSIONS[0], &format!("{HOST}/app")));
    assert_eq!(decode(&run).cache_duration.as_deref(), Some("0s"), "{run:#?}");
}

// ---------------------------------------------------------------------------------------------
// 2. Service-account token mode.

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn service_account_mode_uses_the_role_and_caches_per_service_account() {
    let moto = Moto::start();
    let provider = Provider::with_aws(&moto.endpoint());
    let image = format!("{HOST}/app:1");
    let token_a = sa_token("default", "app-a", 1);

    // First request: AssumeRoleWithWebIdentity, then ECR with the role's temporary key.
    let before = moto.calls().len();
    let run = provider.kubelet(&sa_request(&image, &token_a, Some(ROLE_ARN)));
    let r = decode(&run);
    assert_eq!(r.auth.as_ref().unwrap()[HOST].password, ROLE_PASSWORD, "the role's account's token: {run:#?}");
    let calls = new_token_calls(&moto, before);
    assert_eq!(calls.len(), 1, "{}", moto.log_text());
    assert!(calls[0].2.starts_with("ASIA") && calls[0].2 != AKID, "ECR asked with the assumed role's temporary key: {calls:?}");
    let role_key_a = calls[0].2.clone();
    assert!(!moto.calls()[before..].iter().any(|c| c.2 == AKID), "the node's key is not used at all: {}", moto.log_text());

    // Same service account again (and a rotated token of it): the cache answers.
    let before = moto.calls().len();
    for token in [token_a.clone(), sa_token("default", "app-a", 2)] {
        let run = provider.kubelet(&sa_request(&image, &token, Some(ROLE_ARN)));
        assert_eq!(decode(&run).auth.unwrap()[HOST].password, ROLE_PASSWORD, "{run:#?}");
    }
    assert_eq!(new_token_calls(&moto, before), vec![], "cache hits: {}", moto.log_text());

    // Another service account with the same role: never the first one's cache entry.
    let before = moto.calls().len();
    let run = provider.kubelet(&sa_request(&image, &sa_token("default", "app-b", 1), Some(ROLE_ARN)));
    assert_eq!(decode(&run).auth.unwrap()[HOST].password, ROLE_PASSWORD, "{run:#?}");
    let calls = new_token_calls(&moto, before);
    assert_eq!(calls.len(), 1, "a fetch of its own: {}", moto.log_text());
    assert!(calls[0].2.starts_with("ASIA") && calls[0].2 != role_key_a, "{calls:?}");

    // A token that is not a JWT is its own cache entry too.
    let before = moto.calls().len();
    let run = provider.kubelet(&sa_request(&image, "opaque-token-not-a-jwt", Some(ROLE_ARN)));
    decode(&run);
    assert_eq!(new_token_calls(&moto, before).len(), 1, "{}", moto.log_text());

    // The node's own identity and cache stay apart from the role's.
    let before = moto.calls().len();
    let run = provider.kubelet(&request(API_VERSIONS[0], &image));
    assert_eq!(decode(&run).auth.unwrap()[HOST].password, MOTO_PASSWORD, "{run:#?}");
    let calls = new_token_calls(&moto, before);
    assert_eq!(calls.len(), 1, "{}", moto.log_text());
    assert_eq!(calls[0].2, AKID);

    // No secret of the service account is written anywhere or logged.
    for f in files_under(provider.home()) {
        for secret in [token_a.as_str(), "opaque-token-not-a-jwt", "system:serviceaccount:default:app-a"] {
            assert!(!file_contains(&f, secret), "{} contains {secret}", f.display());
        }
    }
    assert!(!run.stderr.contains(&token_a), "{run:#?}");
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn service_account_token_without_a_role_uses_the_node_identity() {
    let moto = Moto::start();
    let provider = Provider::with_aws(&moto.endpoint());
    let image = format!("{HOST}/app:1");
    let run = provider.kubelet(&sa_request(&image, &sa_token("default", "plain", 1), None));
    assert_eq!(decode(&run).auth.unwrap()[HOST].password, MOTO_PASSWORD, "{run:#?}");
    let calls = new_token_calls(&moto, 0);
    assert_eq!(calls.len(), 1, "{}", moto.log_text());
    assert_eq!(calls[0].2, AKID, "the node's key");
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn the_role_can_come_from_the_environment() {
    let moto = Moto::start();
    let mut provider = Provider::with_aws(&moto.endpoint());
    provider.env("AWS_ECR_ROLE_ARN", ROLE_ARN);
    let image = format!("{HOST}/app:1");
    let run = provider.kubelet(&sa_request(&image, &sa_token("ns", "env-role", 1), None));
    assert_eq!(decode(&run).auth.unwrap()[HOST].password, ROLE_PASSWORD, "{run:#?}");
    let calls = new_token_calls(&moto, 0);
    assert!(calls.len() == 1 && calls[0].2.starts_with("ASIA"), "{}", moto.log_text());

    // Without a service account token the variable does not apply: the node's identity.
    let before = moto.calls().len();
    let run = provider.kubelet(&request(API_VERSIONS[0], &image));
    assert_eq!(decode(&run).auth.unwrap()[HOST].password, MOTO_PASSWORD, "{run:#?}");
    assert_eq!(new_token_calls(&moto, before).iter().map(|c| c.2.as_str()).collect::<Vec<_>>(), vec![AKID]);
}

// ---------------------------------------------------------------------------------------------
// 3. Failures: exit != 0, nothing on stdout, one line on stderr naming the problem.

fn assert_failure(what: &str, run: &Run, needle: &str) {
    let ok = run.code != 0
        && run.stdout.is_empty()
        && run.stderr.trim_end().lines().count() == 1
        && run.stderr.contains(needle)
        && !run.stderr.contains("panicked");
    assert!(ok, "{what}: want exit != 0, empty stdout, one stderr line containing {needle:?}; got {run:#?}");
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn bad_requests_and_arguments_fail_cleanly() {
    let moto = Moto::start();
    let provider = Provider::with_aws(&moto.endpoint());
    let v1 = API_VERSIONS[0];
    let image = format!("{HOST}/app:1");
    let cases: Vec<(&str, Vec<&str>, String, &str)> = vec![
        ("malformed JSON", vec!["get-credentials"], r#"{"apiVersion": "#.into(), "not valid JSON"),
        ("not an object", vec!["get-credentials"], "[1,2]".into(), "not a JSON object"),
        ("empty stdin", vec!["get-credentials"], "".into(), "empty request"),
        (
            "unknown apiVersion",
            vec!["get-credentials"],
            request("credentialprovider.kubelet.k8s.io/v2", &image).to_string(),
            "unsupported apiVersion",
        ),
        (
            "no apiVersion",
            vec!["get-credentials"],
            serde_json::json!({"kind": "CredentialProviderRequest", "image": image}).to_string(),
            "no apiVersion",
        ),
        (
            "wrong kind",
            vec!["get-credentials"],
            serde_json::json!({"apiVersion": v1, "kind": "CredentialProviderResponse", "image": image}).to_string(),
            "unexpected kind",
        ),
        (
            "missing image",
            vec!["get-credentials"],
            serde_json::json!({"apiVersion": v1, "kind": "CredentialProviderRequest"}).to_string(),
            "no image",
        ),
        ("empty image", vec!["get-credentials"], request(v1, "").to_string(), "no image"),
        (
            "image not a string",
            vec!["get-credentials"],
            serde_json::json!({"apiVersion": v1, "kind": "CredentialProviderRequest", "image": 5}).to_string(),
            "`image` is not a string",
        ),
        ("non-ECR image", vec!["get-credentials"], request(v1, "docker.io/library/alpine").to_string(), "not in an Amazon ECR registry"),
        (
            "look-alike image",
            vec!["get-credentials"],
            request(v1, &format!("{HOST}.evil.com/app")).to_string(),
            "not in an Amazon ECR registry",
        ),
        ("unknown argument", vec!["--frobnicate"], request(v1, &image).to_string(), "unknown argument"),
        ("extra argument", vec!["get-credentials", "more"], request(v1, &image).to_string(), "unknown argument"),
        ("bad role ARN", vec!["get-credentials"], sa_request(&image, "tok", Some("not-an-arn")).to_string(), "not an IAM role ARN"),
        (
            "oversized",
            vec!["get-credentials"],
            format!(r#"{{"apiVersion":"{v1}","kind":"CredentialProviderRequest","image":"{image}","x":"{}"}}"#, "a".repeat(1 << 20)),
            "larger than 1 MiB",
        ),
    ];
    for (what, args, stdin, needle) in &cases {
        for how in [Invocation::Symlink, Invocation::Subcommand] {
            let run = provider.run(how, args, stdin.as_bytes());
            assert_failure(&format!("{what} ({how:?})"), &run, needle);
        }
    }
    assert_eq!(moto.count("GetAuthorizationToken"), 0, "no AWS call for a bad request: {}", moto.log_text());
}

#[test]
fn aws_failures_fail_cleanly() {
    // Nothing listens: the node's identity cannot get a token.
    let provider = Provider::with_aws(&format!("http://127.0.0.1:{}", support::closed_port()));
    let run = provider.kubelet(&request(API_VERSIONS[0], &format!("{HOST}/app")));
    assert_failure("unreachable", &run, "could not reach");
    assert!(run.stderr.contains(HOST), "{run:#?}");

    // Service-account mode, STS unreachable: an error, never a fallback to the node's identity.
    let token = sa_token("default", "app", 1);
    let run = provider.kubelet(&sa_request(&format!("{HOST}/app"), &token, Some(ROLE_ARN)));
    assert_failure("unreachable STS", &run, "could not reach STS");
    assert!(!run.stderr.contains(&token) && !run.stderr.contains(SECRET), "{run:#?}");

    // No credentials at all.
    let mut provider = Provider::new();
    provider.env("AWS_ENDPOINT_URL", &format!("http://127.0.0.1:{}", support::closed_port()));
    let run = provider.kubelet(&request(API_VERSIONS[0], &format!("{HOST}/app")));
    assert_failure("no credentials", &run, "no usable AWS credentials");
}

// ---------------------------------------------------------------------------------------------
// 4. packaging/kubernetes/credential-provider-config.yaml under kubelet's matching rules
//    (pkg/credentialprovider/keyring.go URLsMatch: same number of '.'-separated labels, each
//    matched with filepath.Match, the port must be equal, the glob's path a prefix).

/// The `- "..."` entries of the `matchImages:` list.
fn match_images(yaml: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_list = false;
    for line in yaml.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if t == "matchImages:" {
            in_list = true;
            continue;
        }
        if in_list {
            match t.strip_prefix("- ") {
                Some(item) => out.push(item.trim().trim_matches('"').trim_matches('\'').to_string()),
                None => in_list = false,
            }
        }
    }
    out
}

/// Go's `filepath.Match` for one label, restricted to `*` and `?` (the config uses no classes).
fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob_match(&pattern[1..], name) || (!name.is_empty() && glob_match(pattern, &name[1..])),
        (Some(b'?'), Some(_)) => glob_match(&pattern[1..], &name[1..]),
        (Some(p), Some(n)) if p == n => glob_match(&pattern[1..], &name[1..]),
        _ => false,
    }
}

/// host labels, port, path of a schemeless URL.
fn split_url(s: &str) -> (Vec<&str>, &str, &str) {
    let (authority, path) = match s.find('/') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s, ""),
    };
    let (host, port) = authority.rsplit_once(':').unwrap_or((authority, ""));
    (host.split('.').collect(), port, path)
}

fn kubelet_matches(glob: &str, image: &str) -> bool {
    let (g_labels, g_port, g_path) = split_url(glob);
    let (t_labels, t_port, t_path) = split_url(image);
    g_port == t_port
        && g_labels.len() == t_labels.len()
        && t_path.starts_with(g_path)
        && g_labels.iter().zip(&t_labels).all(|(g, t)| glob_match(g.as_bytes(), t.as_bytes()))
}

#[test]
fn the_matcher_follows_kubelet() {
    assert!(kubelet_matches("*.docker.io", "blah.docker.io/x"));
    assert!(!kubelet_matches("*.docker.io", "not.right.io"));
    assert!(!kubelet_matches("*.io", "a.k8s.io"), "one glob, one label");
    assert!(kubelet_matches("app*.k8s.io", "app1.k8s.io"));
    assert!(!kubelet_matches("*.io", "a.io:443"), "ports must be equal");
    assert!(kubelet_matches("registry.io:8080/path", "registry.io:8080/path/img"));
}

#[test]
fn shipped_config_matches_every_ecr_host_form_and_nothing_else() {
    let text = std::fs::read_to_string(repo_root().join("packaging/kubernetes/credential-provider-config.yaml")).unwrap();
    assert!(text.contains("apiVersion: kubelet.config.k8s.io/v1"), "{text}");
    assert!(text.contains("kind: CredentialProviderConfig"));
    assert!(text.contains("- name: ecr-credential-provider"), "the provider's name is the binary name kubelet runs");
    assert!(text.contains("apiVersion: credentialprovider.kubelet.k8s.io/v1\n"));
    assert!(text.contains("- get-credentials"));
    let globs = match_images(&text);
    assert!(globs.len() >= 10, "{globs:?}");
    for g in &globs {
        assert!(!g.contains(['[', '\\', ':', '/']), "no classes, escapes, ports or paths: {g}");
    }
    let matched = |image: &str| globs.iter().any(|g| kubelet_matches(g, image));

    let ecr_hosts = [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr.ap-southeast-2.amazonaws.com",
        "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr.us-gov-west-1.amazonaws.com",
        "123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com",
        "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
        "123456789012.dkr.ecr.cn-northwest-1.amazonaws.com.cn",
        "123456789012.dkr-ecr.us-east-1.on.aws",
        "123456789012.dkr-ecr-fips.us-east-1.on.aws",
        "123456789012.dkr-ecr.cn-north-1.on.amazonwebservices.com.cn",
        "123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu",
        "123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov",
        "123456789012.dkr.ecr-fips.us-iso-east-1.c2s.ic.gov",
        "123456789012.dkr.ecr.us-isob-east-1.sc2s.sgov.gov",
        "123456789012.dkr.ecr-fips.us-isob-east-1.sc2s.sgov.gov",
        "123456789012.dkr.ecr.eu-isoe-west-1.cloud.adc-e.uk",
        "123456789012.dkr.ecr-fips.eu-isoe-west-1.cloud.adc-e.uk",
        "123456789012.dkr.ecr.us-isof-south-1.csp.hci.ic.gov",
        "123456789012.dkr.ecr-fips.us-isof-south-1.csp.hci.ic.gov",
        "public.ecr.aws",
        "ecr-public.aws.com",
    ];
    let missing: Vec<&str> = ecr_hosts.iter().copied().filter(|h| !matched(&format!("{h}/team/app:1"))).collect();
    assert!(missing.is_empty(), "kubelet would never ask the provider for: {missing:?}\nmatchImages: {globs:?}");

    for image in [
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com/app",
        "docker.io/library/alpine",
        "docker.io",
        "evil.com/123456789012.dkr.ecr.us-east-1.amazonaws.com/app",
        "ghcr.io/owner/app",
        "public.ecr.aws.evil.com/x",
        "x.123456789012.dkr.ecr.us-east-1.amazonaws.com/app",
    ] {
        assert!(!matched(image), "{image} must not be sent to the provider: {globs:?}");
    }
}
