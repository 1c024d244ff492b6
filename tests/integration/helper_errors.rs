//! `docker-credential-ecr` when things go wrong: hosts it does not serve, no credentials,
//! an unreachable or refusing AWS, hostile input; and the other actions of the protocol.

use crate::support;

use std::time::Duration;
use support::fake_aws::{FakeAws, Mode};
use support::{Helper, Run};

const NOT_FOUND: &str = "credentials not found in native keychain\n";
const AKID: &str = "AKIATESTHELPERERR001";
const SECRET: &str = "helper-errors-secret-access-key-01";
const US_EAST_1: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn assert_one_line_failure(what: &str, run: &Run) {
    assert_eq!(run.code, 1, "{what}: exit 1: {run:#?}");
    assert!(!run.stderr.contains("panicked"), "{what}: no panic: {run:#?}");
    assert!(run.stdout.ends_with('\n') && run.stdout.trim_end_matches('\n').lines().count() == 1, "{what}: one line: {run:#?}");
    assert!(!run.stdout.trim().is_empty(), "{what}: a message: {run:#?}");
}

fn fake_helper(fake: &FakeAws) -> Helper {
    let mut h = Helper::new();
    h.aws(&fake.endpoint(), AKID, SECRET);
    h
}

#[test]
fn hosts_that_are_not_ecr_are_not_found_without_any_aws_call() {
    let fake = FakeAws::start();
    // No AWS configuration at all, only an endpoint that records calls.
    let mut helper = Helper::new();
    helper.env("AWS_ENDPOINT_URL", fake.endpoint());
    for host in [
        "docker.io",
        "ghcr.io",
        "https://index.docker.io/v1/",
        "evil.com/123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "https://user:pass@123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "user@123456789012.dkr.ecr.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.com",
        "quay.io:443",
    ] {
        let run = helper.get(host);
        assert_eq!((run.code, run.stdout.as_str()), (1, NOT_FOUND), "{host}: {run:#?}");
        assert!(!run.stderr.contains("panicked"), "{host}: {run:#?}");
    }
    assert_eq!(fake.requests(), vec![], "no AWS call for hosts that are not ECR");
}

#[test]
fn no_credentials_is_an_ecr_error_not_not_found() {
    let fake = FakeAws::start();
    let mut helper = Helper::new();
    helper.env("AWS_ENDPOINT_URL", fake.endpoint());
    let run = helper.get(US_EAST_1);
    assert_one_line_failure("no credentials", &run);
    assert_ne!(run.stdout, NOT_FOUND);
    assert!(run.stdout.starts_with(&format!("ecr: {US_EAST_1}: ")), "{run:#?}");
    assert!(run.stdout.contains("no usable AWS credentials"), "{run:#?}");
    assert_eq!(fake.requests(), vec![], "nothing to sign with: no call");
}

#[test]
fn an_unreachable_endpoint_says_so_quickly() {
    let mut helper = Helper::new();
    helper.aws(&format!("http://127.0.0.1:{}", support::closed_port()), AKID, SECRET);
    helper.timeout = Duration::from_secs(60);
    let run = helper.get(US_EAST_1);
    assert_one_line_failure("unreachable", &run);
    assert!(run.stdout.starts_with(&format!("ecr: {US_EAST_1}: could not reach ECR")), "{run:#?}");
    assert!(run.elapsed < Duration::from_secs(15), "took {:?}: {run:#?}", run.elapsed);
}

#[test]
fn access_denied_is_reported_with_aws_message() {
    let fake = FakeAws::start();
    fake.set_mode(Mode::Deny);
    let helper = fake_helper(&fake);
    let run = helper.get(US_EAST_1);
    assert_one_line_failure("denied", &run);
    assert!(run.stdout.starts_with(&format!("ecr: {US_EAST_1}: ECR refused: AccessDeniedException")), "{run:#?}");
    assert!(run.stdout.contains("is not authorized to perform: ecr:GetAuthorizationToken"), "AWS's message: {run:#?}");
    assert_eq!(fake.calls("GetAuthorizationToken"), 1, "access denied is not retried");
    assert!(!run.stdout.contains(SECRET) && !run.stderr.contains(SECRET));
}

#[test]
fn throttling_and_server_errors_are_ecr_errors() {
    for (mode, code) in [(Mode::Throttle, "ThrottlingException"), (Mode::ServerError, "ServerException")] {
        let fake = FakeAws::start();
        fake.set_mode(mode);
        let run = fake_helper(&fake).get(US_EAST_1);
        assert_one_line_failure(code, &run);
        assert!(run.stdout.starts_with(&format!("ecr: {US_EAST_1}: ")), "{run:#?}");
        assert!(run.stdout.contains(code), "{code}: {run:#?}");
        assert!(run.elapsed < Duration::from_secs(30), "{code}: took {:?}", run.elapsed);
    }
}

#[test]
fn a_token_from_the_fake_is_served_and_cached_under_its_endpoint() {
    let fake = FakeAws::start();
    let helper = fake_helper(&fake);
    let run = helper.get(US_EAST_1);
    run.assert_ok();
    assert_eq!(run.json()["Secret"], "fake-token-1", "{run:#?}");
    assert_eq!(helper.get(US_EAST_1).json()["Secret"], "fake-token-1");
    assert_eq!(fake.calls("GetAuthorizationToken"), 1);
    // Another endpoint override is another cache key: its token never serves this one.
    let fake2 = FakeAws::start();
    let run = helper.run_with(&["get"], US_EAST_1.as_bytes(), &[("AWS_ENDPOINT_URL", &fake2.endpoint())]);
    run.assert_ok();
    assert_eq!(fake2.calls("GetAuthorizationToken"), 1, "{run:#?}");
}

#[test]
fn sts_failure_is_tolerated() {
    let fake = FakeAws::start();
    fake.set_sts_mode(Mode::Deny);
    let helper = fake_helper(&fake);
    let run = helper.get(US_EAST_1);
    run.assert_ok();
    assert_eq!(run.json()["Secret"], "fake-token-1");
    assert!(fake.calls("GetCallerIdentity") >= 1);
    // Cached under the access key: the next get is a hit.
    assert_eq!(helper.get(US_EAST_1).json()["Secret"], "fake-token-1");
    assert_eq!(fake.calls("GetAuthorizationToken"), 1);
}

#[test]
fn ecr_public_uses_its_own_api_in_us_east_1_whatever_the_region() {
    let fake = FakeAws::start();
    let mut helper = fake_helper(&fake);
    helper.env("AWS_REGION", "eu-west-1").env("AWS_DEFAULT_REGION", "eu-west-1");
    for url in ["public.ecr.aws", "https://public.ecr.aws/", "ecr-public.aws.com"] {
        let run = helper.get(url);
        run.assert_ok();
        let v = run.json();
        assert_eq!(v["Username"], "AWS", "{run:#?}");
        assert_eq!(v["ServerURL"], url, "{run:#?}");
        assert!(v["Secret"].as_str().unwrap().starts_with("fake-token-"), "{run:#?}");
    }
    assert_eq!(fake.calls("PublicGetAuthorizationToken"), 1, "one token for ECR Public, then cache hits: {:?}", fake.requests());
    assert_eq!(fake.calls("GetAuthorizationToken"), 0, "not the private ECR API: {:?}", fake.requests());
    let public: Vec<_> = fake.requests().into_iter().filter(|r| r.op == "PublicGetAuthorizationToken").collect();
    assert!(public.iter().all(|r| r.region == "us-east-1"), "{public:?}");
}

#[test]
fn hostile_input_to_get_is_a_one_line_failure_never_a_panic() {
    let fake = FakeAws::start();
    let helper = fake_helper(&fake);
    let bomb = "[".repeat(60_000);
    let cases: Vec<(&str, Vec<u8>, Option<&str>)> = vec![
        ("empty", b"".to_vec(), Some("no credentials server URL\n")),
        ("white space", b"  \n\t\r\n ".to_vec(), Some("no credentials server URL\n")),
        ("10 MB", vec![b'a'; 10 * 1024 * 1024], None),
        ("10 MB of an ECR host", US_EAST_1.repeat(10 * 1024 * 1024 / US_EAST_1.len()).into_bytes(), None),
        ("NUL bytes", b"123456789012.dkr.ecr.us-east-1.amazonaws.com\0evil".to_vec(), Some(NOT_FOUND)),
        ("only NUL", vec![0u8; 100], Some(NOT_FOUND)),
        ("invalid UTF-8", b"123456789012.dkr.ecr.us-east-1.amazonaws.com\xff\xfe".to_vec(), None),
        ("JSON bomb", bomb.clone().into_bytes(), Some(NOT_FOUND)),
        ("JSON instead of a URL", br#"{"ServerURL":"123456789012.dkr.ecr.us-east-1.amazonaws.com"}"#.to_vec(), Some(NOT_FOUND)),
        ("punycode", b"xn--80ak6aa92e.com".to_vec(), Some(NOT_FOUND)),
        ("punycode in an ECR form", b"123456789012.dkr.ecr.xn--us-east-1-.amazonaws.com".to_vec(), Some(NOT_FOUND)),
        ("IPv4", b"127.0.0.1".to_vec(), Some(NOT_FOUND)),
        ("IPv4 with port", b"http://169.254.169.254:80/latest".to_vec(), Some(NOT_FOUND)),
        ("IPv6", b"[::1]:5000".to_vec(), Some(NOT_FOUND)),
        ("two lines", format!("{US_EAST_1}\nghcr.io\n").into_bytes(), None),
        ("very long host", format!("123456789012.dkr.ecr.us-east-1.amazonaws.com/{}", "a".repeat(60_000)).into_bytes(), None),
        ("control characters", b"123456789012.dkr.ecr.us-east-1.amazonaws.com\x1b[31m".to_vec(), Some(NOT_FOUND)),
    ];
    let mut failures = Vec::new();
    for (what, input, want) in cases {
        let run = helper.run(&["get"], &input);
        let one_line = run.stdout.ends_with('\n') && run.stdout.trim_end_matches('\n').lines().count() == 1;
        let mut bad = run.code != 1 || !one_line || run.stderr.contains("panicked") || run.stdout.len() > 400;
        if let Some(w) = want {
            bad |= run.stdout != w;
        }
        if what.starts_with("10 MB") {
            bad |= !run.stdout.starts_with("input is larger than");
        }
        if what == "invalid UTF-8" {
            bad |= !run.stdout.starts_with("input is not valid UTF-8");
        }
        if bad {
            failures.push(format!("{what}: {run:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let token_calls = fake.calls("GetAuthorizationToken");
    assert_eq!(token_calls, 0, "no hostile input reaches ECR: {:?}", fake.requests());
}

#[test]
fn store_and_erase_of_ecr_hosts_succeed_without_storing_and_never_call_aws() {
    let fake = FakeAws::start();
    let mut helper = Helper::new();
    helper.env("AWS_ENDPOINT_URL", fake.endpoint());
    let ecr_json = format!(r#"{{"ServerURL":"https://{US_EAST_1}","Username":"AWS","Secret":"stored-secret-1"}}"#);

    let run = helper.run(&["store"], ecr_json.as_bytes());
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:#?}");
    let run = helper.run(&["erase"], format!("https://{US_EAST_1}\n").as_bytes());
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:#?}");
    let run = helper.run(&["store"], br#"{"ServerURL":"public.ecr.aws","Username":"AWS","Secret":"x"}"#);
    assert_eq!((run.code, run.stdout.as_str()), (0, ""), "{run:#?}");
    for f in support::files_under(helper.home()) {
        assert!(!support::file_contains(&f, "stored-secret-1"), "{}", f.display());
    }

    // Bad input.
    for (what, input) in [
        ("junk", b"not json".to_vec()),
        ("empty", b"".to_vec()),
        ("JSON bomb", "[".repeat(60_000).into_bytes()),
        ("no ServerURL", br#"{"Username":"AWS","Secret":"s3cr3t-in-bad-json"}"#.to_vec()),
        ("truncated", br#"{"ServerURL":"x","Secret":"s3cr3t-in-bad-json"#.to_vec()),
        ("10 MB", vec![b'{'; 10 * 1024 * 1024]),
    ] {
        let run = helper.run(&["store"], &input);
        assert_one_line_failure(&format!("store {what}"), &run);
        assert!(!run.stdout.contains("s3cr3t") && !run.stderr.contains("s3cr3t"), "store {what} echoes no secret: {run:#?}");
    }
    let run = helper.run(&["erase"], b"");
    assert_one_line_failure("erase empty", &run);
    assert_eq!(run.stdout, "no credentials server URL\n");
    assert_eq!(fake.requests(), vec![], "store and erase never call AWS");
}

#[test]
fn list_names_asked_for_and_configured_ecr_registries() {
    let fake = FakeAws::start();
    let mut helper = Helper::new();
    let run = helper.run(&["list"], b"");
    assert_eq!((run.code, run.stdout.as_str()), (0, "{}\n"), "{run:#?}");

    helper.aws(&fake.endpoint(), AKID, SECRET);
    helper.get(US_EAST_1).assert_ok();
    helper.get("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/v2/").assert_ok();
    helper.get("ghcr.io"); // not ECR: never listed

    let docker_config = helper.home().join("docker-config");
    std::fs::create_dir(&docker_config).unwrap();
    std::fs::write(
        docker_config.join("config.json"),
        r#"{"auths":{"ghcr.io":{}},"credHelpers":{
            "210987654321.dkr.ecr.ap-southeast-2.amazonaws.com":"ecr",
            "111122223333.dkr.ecr.us-west-2.amazonaws.com":"ecr-login",
            "quay.io":"ecr",
            "gcr.io":"gcloud"}}"#,
    )
    .unwrap();
    helper.env("DOCKER_CONFIG", &docker_config);
    let run = helper.run(&["list"], b"");
    run.assert_ok();
    let v = run.json();
    let want = serde_json::json!({
        "https://123456789012.dkr.ecr.us-east-1.amazonaws.com": "AWS",
        "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com": "AWS",
        "https://210987654321.dkr.ecr.ap-southeast-2.amazonaws.com": "AWS",
    });
    assert_eq!(v, want, "{run:#?}");

    // ~/.docker/config.json when DOCKER_CONFIG is not set.
    let mut h2 = Helper::new();
    std::fs::create_dir(h2.home().join(".docker")).unwrap();
    std::fs::write(h2.home().join(".docker/config.json"), r#"{"credHelpers":{"123456789012.dkr.ecr.us-east-2.amazonaws.com":"ecr"}}"#)
        .unwrap();
    let run = h2.run(&["list"], b"");
    assert_eq!(run.json(), serde_json::json!({"https://123456789012.dkr.ecr.us-east-2.amazonaws.com":"AWS"}), "{run:#?}");
    // A corrupt docker config is not an error.
    std::fs::write(h2.home().join(".docker/config.json"), b"{{{").unwrap();
    let run = h2.run(&["list"], b"");
    assert_eq!((run.code, run.stdout.as_str()), (0, "{}\n"), "{run:#?}");
    h2.env("AWS_ECR_DISABLE_CACHE", "1");
}

#[test]
fn version_help_and_unknown_actions() {
    let helper = Helper::new();
    let run = helper.run(&["version"], b"");
    assert_eq!((run.code, run.stdout.as_str()), (0, format!("docker-credential-ecr {}\n", env!("CARGO_PKG_VERSION")).as_str()), "{run:#?}");
    let run = helper.run(&["--version"], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains(env!("CARGO_PKG_VERSION")), "{run:#?}");

    let run = helper.run(&["--help"], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    for word in ["get", "store", "erase", "list", "version"] {
        assert!(run.stdout.contains(word), "--help names {word}: {run:#?}");
    }
    let run = helper.run(&["help"], b"");
    assert_eq!(run.code, 0, "{run:#?}");

    for args in [&["frobnicate"][..], &[][..], &["GET"][..], &["get", "extra"][..]] {
        let run = helper.run(args, b"123456789012.dkr.ecr.us-east-1.amazonaws.com\n");
        assert_eq!(run.code, 1, "{args:?}: {run:#?}");
        assert!(!run.stdout.trim().is_empty(), "{args:?}: a message on stdout: {run:#?}");
        assert!(!run.stderr.contains("panicked"), "{args:?}: {run:#?}");
    }
}

#[test]
fn a_populated_cache_survives_bad_input() {
    let fake = FakeAws::start();
    let helper = fake_helper(&fake);
    helper.get(US_EAST_1).assert_ok();
    let file = helper.default_cache_dir().join("tokens.json");
    let before = std::fs::read(&file).expect("tokens.json after a get");

    let runs = [
        helper.run(&["get"], b"\xff\xfe junk \0"),
        helper.run(&["get"], b"docker.io\n"),
        helper.run(&["get"], &vec![b'x'; 1 << 20]),
        helper.run(&["store"], b"{\"ServerURL\": [1,2,"),
        helper.run(&["erase"], b"never-stored.example.test\n"),
        helper.run(&["erase"], format!("{US_EAST_1}\n").as_bytes()),
        helper.run(&["list"], b""),
        helper.run(&["frobnicate"], b""),
    ];
    for r in &runs {
        assert!(!r.stderr.contains("panicked"), "{r:#?}");
    }
    let after = std::fs::read(&file).unwrap();
    assert!(
        before == after,
        "tokens.json changed:\nbefore: {}\nafter: {}",
        String::from_utf8_lossy(&before),
        String::from_utf8_lossy(&after)
    );
    // And still serves.
    assert_eq!(helper.get(US_EAST_1).json()["Secret"], "fake-token-1");
    assert_eq!(fake.calls("GetAuthorizationToken"), 1);
}

#[test]
fn a_malformed_token_from_ecr_is_a_one_line_error_saying_what_is_wrong_and_is_not_cached() {
    let cases = [
        ("%%% not base64 %%%", "not valid base64"),
        ("QVdTLW5vLWNvbG9uLXNlY3JldHZhbHVl", "without the `user:password` form"), // base64("AWS-no-colon-secretvalue")
        ("QVdTOg==", "empty authorization token"),                                // base64("AWS:")
        ("", "empty authorization token"),
    ];
    for (token, why) in cases {
        let fake = FakeAws::start();
        fake.set_mode(Mode::Malformed(token));
        let helper = fake_helper(&fake);
        for attempt in 1..=2 {
            let run = helper.get(US_EAST_1);
            assert_one_line_failure(&format!("token {token:?}"), &run);
            assert!(run.stdout.starts_with(&format!("ecr: {US_EAST_1}: ")), "{run:#?}");
            assert!(run.stdout.contains(why), "token {token:?} must say {why:?}: {run:#?}");
            assert!(!run.stdout.contains("secretvalue") && !run.stderr.contains("secretvalue"), "{run:#?}");
            assert_eq!(fake.calls("GetAuthorizationToken"), attempt, "a bad token is never cached: {run:#?}");
        }
    }
}
