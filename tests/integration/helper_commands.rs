//! The helper's commands for scripts and CI: `get-login-password`, `login --github-actions`
//! and `status`, run as real processes against patched moto and a real broker.

use crate::support;

use support::{Helper, Moto};

const HOST: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const PASSWORD: &str = "123456789012-auth-token";

fn helper(moto: &Moto) -> Helper {
    let mut h = Helper::new();
    h.aws(&moto.endpoint(), "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    h
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn get_login_password_prints_the_password_alone() {
    let moto = Moto::start();
    let h = helper(&moto);
    let run = h.run(&["get-login-password", HOST], b"");
    assert_eq!((run.code, run.stdout.as_str()), (0, "123456789012-auth-token\n"), "{}", run.stderr);
    let again = h.run(&["get-login-password", &format!("https://{HOST}/")], b"");
    assert_eq!(again.stdout, run.stdout);
    assert_eq!(moto.count("GetAuthorizationToken"), 1, "the second call is a cache hit");
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn get_login_password_for_a_host_that_is_not_ecr_fails_on_stderr() {
    let moto = Moto::start();
    let run = helper(&moto).run(&["get-login-password", "docker.io"], b"");
    assert_eq!(run.code, 1);
    assert!(run.stdout.is_empty());
    assert!(run.stderr.contains("\"docker.io\" is not an Amazon ECR registry"), "{}", run.stderr);
    assert_eq!(moto.count("GetAuthorizationToken"), 0);
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn login_for_github_actions_masks_first_and_writes_the_outputs_amazon_ecr_login_writes() {
    let moto = Moto::start();
    let mut h = helper(&moto);
    let outputs = h.home().join("github_output");
    h.env("GITHUB_OUTPUT", &outputs);
    let run = h.run(&["login", "--github-actions", HOST], b"");
    assert_eq!(run.code, 0, "{} {}", run.stdout, run.stderr);
    assert_eq!(run.stdout, format!("::add-mask::{PASSWORD}\n"), "stdout carries only the mask command");
    assert!(!run.stderr.contains(PASSWORD));
    let written = std::fs::read_to_string(&outputs).unwrap();
    let suffix = "123456789012_dkr_ecr_us_east_1_amazonaws_com";
    assert_eq!(written, format!("registry={HOST}\ndocker_username_{suffix}=AWS\ndocker_password_{suffix}={PASSWORD}\n"));
    // docker and containers config now send the registry to the helper, other keys untouched.
    let docker: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(h.home().join(".docker/config.json")).unwrap()).unwrap();
    assert_eq!(docker["credHelpers"][HOST], "ecr");
    let containers: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(h.home().join(".config/containers/auth.json")).unwrap()).unwrap();
    assert_eq!(containers["credHelpers"][HOST], "ecr");
    // The token is now cached: the job's docker pulls are cache hits.
    let get = h.get(HOST);
    assert_eq!(get.code, 0);
    assert_eq!(moto.count("GetAuthorizationToken"), 1);
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn login_without_the_runner_output_file_or_with_a_bad_host_fails_clearly() {
    let moto = Moto::start();
    let h = helper(&moto);
    let run = h.run(&["login", "--github-actions", HOST], b"");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("GITHUB_OUTPUT"), "{}", run.stderr);
    assert!(!run.stdout.contains(PASSWORD), "nothing unmasked was printed");
    let run = h.run(&["login", "ghcr.io"], b"");
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not an Amazon ECR registry"));
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn status_without_a_broker_shows_the_local_cache_without_secrets() {
    let moto = Moto::start();
    let h = helper(&moto);
    assert_eq!(h.get(HOST).code, 0);
    let run = h.run(&["status"], b"");
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("ecr-broker: not used"), "{}", run.stdout);
    assert!(run.stdout.contains("arn:aws:sts::123456789012:user/moto"), "{}", run.stdout);
    assert!(run.stdout.contains("us-east-1") && run.stdout.contains("yes"), "{}", run.stdout);
    assert!(!run.stdout.contains(PASSWORD));
}
