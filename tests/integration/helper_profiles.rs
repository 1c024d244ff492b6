//! A profile or role per registry with no broker: the helper reads the user's
//! `~/.config/ecr-cred/config.toml` (the broker's format), fetches each registry with the
//! identity its rule names, caches the tokens apart, and names a profile that cannot work.
//! Real helper processes against the fake AWS, which records the access key id that signed
//! each call and answers GetCallerIdentity per key.
//!
//! Build first: `cargo build --release --workspace`, then `cargo test --release --test integration helper_profiles::`.

use crate::support;

use std::path::Path;
use support::fake_aws::FakeAws;
use support::Helper;

const ALPHA_HOST: &str = "111111111111.dkr.ecr.us-east-1.amazonaws.com";
const BETA_HOST: &str = "222222222222.dkr.ecr.us-east-1.amazonaws.com";
const OTHER_HOST: &str = "333333333333.dkr.ecr.us-east-1.amazonaws.com";
const ALPHA_KEY: &str = "AKIAALPHAPROFILEKEY1";
const BETA_KEY: &str = "AKIABETAPROFILEKEY22";
const ENV_KEY: &str = "AKIAENVIRONMENTKEY33";

/// A helper whose HOME has two profiles with different keys (and different principals at the
/// fake AWS), and the environment's own keys for everything else.
fn two_profiles(fake: &FakeAws) -> Helper {
    fake.set_caller_arn_for(ALPHA_KEY, "arn:aws:iam::111111111111:user/alpha");
    fake.set_caller_arn_for(BETA_KEY, "arn:aws:iam::222222222222:user/beta");
    fake.set_caller_arn_for(ENV_KEY, "arn:aws:iam::333333333333:user/env");
    let mut h = Helper::new();
    h.aws(&fake.endpoint(), ENV_KEY, "env-secret-key-0000000000000000000000000");
    write(&h.home().join(".aws/config"), "[profile alpha]\nregion = us-east-1\n\n[profile beta]\nregion = us-east-1\n");
    write(
        &h.home().join(".aws/credentials"),
        &format!(
            "[alpha]\naws_access_key_id = {ALPHA_KEY}\naws_secret_access_key = alpha-secret-000000000000000000000000000\n\n\
             [beta]\naws_access_key_id = {BETA_KEY}\naws_secret_access_key = beta-secret-0000000000000000000000000000\n"
        ),
    );
    h
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn user_config(h: &Helper) -> std::path::PathBuf {
    h.home().join(".config/ecr-cred/config.toml")
}

const ROUTES: &str = r#"
[identities.alpha]
profile = "alpha"

[identities.beta]
profile = "beta"

[[rules]]
registry = "111111111111.us-east-1"
identity = "alpha"

[[rules]]
registry = "222222222222.*"
identity = "beta"
"#;

/// The access key ids that signed the ECR token calls, in order.
fn ecr_signers(fake: &FakeAws) -> Vec<String> {
    fake.requests().into_iter().filter(|r| r.op == "GetAuthorizationToken").map(|r| r.access_key_id).collect()
}

#[test]
fn registries_routed_to_two_profiles_are_fetched_with_each_profiles_keys_and_cached_apart() {
    let fake = FakeAws::start();
    let h = two_profiles(&fake);
    write(&user_config(&h), ROUTES);

    let alpha = h.get(ALPHA_HOST);
    alpha.assert_ok();
    let beta = h.get(BETA_HOST);
    beta.assert_ok();
    let other = h.get(OTHER_HOST);
    other.assert_ok();
    // All three are in us-east-1: one principal-blind cache would hand alpha's token to beta.
    assert_eq!(ecr_signers(&fake), vec![ALPHA_KEY, BETA_KEY, ENV_KEY], "each registry's ECR call is signed by its identity's keys");
    let secrets: Vec<String> = [&alpha, &beta, &other].iter().map(|r| r.json()["Secret"].as_str().unwrap().to_string()).collect();
    assert_eq!(secrets, vec![FakeAws::token_password(1), FakeAws::token_password(2), FakeAws::token_password(3)]);

    // The second get of each is a cache hit: no AWS call at all, not even STS.
    let before = fake.requests().len();
    for (host, secret) in [(ALPHA_HOST, &secrets[0]), (BETA_HOST, &secrets[1]), (OTHER_HOST, &secrets[2])] {
        let again = h.get(host);
        again.assert_ok();
        assert_eq!(again.json()["Secret"].as_str().unwrap(), secret, "{host}: its own token again");
    }
    assert_eq!(fake.requests().len(), before, "cache hits make no AWS call: {:?}", &fake.requests()[before..]);
}

#[test]
fn a_rule_changed_to_another_profile_never_serves_the_first_profiles_token() {
    let fake = FakeAws::start();
    let h = two_profiles(&fake);
    write(&user_config(&h), ROUTES);
    let first = h.get(ALPHA_HOST);
    assert_eq!(first.json()["Secret"], FakeAws::token_password(1));
    // Route the same registry to beta now: same region, same cache, another principal.
    write(&user_config(&h), &ROUTES.replace("identity = \"alpha\"", "identity = \"beta\""));
    let second = h.get(ALPHA_HOST);
    second.assert_ok();
    assert_eq!(second.json()["Secret"], FakeAws::token_password(2), "a new token for beta's principal");
    assert_eq!(ecr_signers(&fake), vec![ALPHA_KEY, BETA_KEY]);
}

#[test]
fn configure_with_a_profile_writes_the_rule_the_helper_then_follows() {
    let fake = FakeAws::start();
    let h = two_profiles(&fake);
    let cfg = user_config(&h);
    write(&cfg, "# my own notes\nprefetch = []\n\n[[rules]]\nregistry = \"*\"   # everything else: default chain\n");
    let run = h.run(&["configure", "--registry", BETA_HOST, "--profile", "beta"], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(text.contains("# my own notes") && text.contains("# everything else: default chain"), "comments kept:\n{text}");
    assert!(text.contains("[identities.beta]") && text.contains("profile = \"beta\""), "{text}");
    let rule = text.find("registry = \"222222222222.us-east-1\"").expect("the new rule");
    assert!(rule < text.find("registry = \"*\"").unwrap(), "the new rule comes before the catch-all:\n{text}");
    assert!(std::fs::read_to_string(cfg.with_file_name("config.toml.bak")).unwrap().contains("# my own notes"), ".bak of the old file");
    let docker: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(h.home().join(".docker/config.json")).unwrap()).unwrap();
    assert_eq!(docker["credHelpers"][BETA_HOST], "ecr");

    h.get(BETA_HOST).assert_ok();
    h.get(ALPHA_HOST).assert_ok();
    assert_eq!(ecr_signers(&fake), vec![BETA_KEY, ENV_KEY], "beta's registry with beta's keys, the other with the default chain");

    // A role on top of a profile, and the file stays a valid config for the broker.
    let run =
        h.run(&["configure", "--registry", ALPHA_HOST, "--profile", "alpha", "--role-arn", "arn:aws:iam::111111111111:role/EcrPull"], b"");
    assert_eq!(run.code, 0, "{run:#?}");
    let text = std::fs::read_to_string(&cfg).unwrap();
    assert!(
        text.contains("[identities.alpha-EcrPull]") && text.contains("role_arn = \"arn:aws:iam::111111111111:role/EcrPull\""),
        "{text}"
    );
    let check = std::process::Command::new(support::broker::broker_bin())
        .args(["--check-config", "--config"])
        .arg(&cfg)
        .env_clear()
        .env("HOME", h.home())
        .output()
        .unwrap();
    assert!(check.status.success(), "ecr-broker accepts the file: {}", String::from_utf8_lossy(&check.stderr));
}

#[test]
fn an_unknown_profile_is_named_whether_from_aws_profile_or_a_rule() {
    let fake = FakeAws::start();
    let mut h = two_profiles(&fake);
    h.remove_env("AWS_ACCESS_KEY_ID").remove_env("AWS_SECRET_ACCESS_KEY");
    let run = h.run_with(&["get"], format!("{OTHER_HOST}\n").as_bytes(), &[("AWS_PROFILE", "nosuch")]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains("profile nosuch not found in ~/.aws/config"), "{run:#?}");

    write(&user_config(&h), &ROUTES.replace("profile = \"beta\"", "profile = \"gone\""));
    let run = h.get(BETA_HOST);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains("profile gone not found in ~/.aws/config"), "{run:#?}");
    assert_eq!(ecr_signers(&fake), Vec::<String>::new(), "nothing was fetched");
}

#[test]
fn an_sso_profile_without_a_live_session_says_aws_sso_login() {
    let fake = FakeAws::start();
    let mut h = two_profiles(&fake);
    h.remove_env("AWS_ACCESS_KEY_ID").remove_env("AWS_SECRET_ACCESS_KEY");
    write(
        &h.home().join(".aws/config"),
        "[profile work]\nsso_session = corp\nsso_account_id = 111111111111\nsso_role_name = Dev\nregion = us-east-1\n\n\
         [sso-session corp]\nsso_start_url = https://corp.awsapps.com/start\nsso_region = us-east-1\n",
    );
    let run = h.run_with(&["get"], format!("{ALPHA_HOST}\n").as_bytes(), &[("AWS_PROFILE", "work")]);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains("aws sso login --profile work"), "{run:#?}");
}

#[test]
fn a_broken_user_config_is_a_clear_error_and_a_fifo_does_not_hang() {
    let fake = FakeAws::start();
    let h = two_profiles(&fake);
    let cfg = user_config(&h);
    write(&cfg, "[[rules]]\nregistry = \"*\"\nidentity = \"undefined\"\n");
    let run = h.get(ALPHA_HOST);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains("config.toml") && run.stdout.contains("not defined"), "{run:#?}");

    std::fs::remove_file(&cfg).unwrap();
    support::mkfifo(&cfg);
    let run = h.get(ALPHA_HOST);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stdout.contains("not a regular file"), "{run:#?}");
    assert!(run.elapsed < std::time::Duration::from_secs(10), "{run:#?}");
    assert!(fake.requests().is_empty());
}

#[test]
fn a_user_broker_reads_the_shared_file_and_falls_back_to_the_old_path() {
    let home = tempfile::tempdir().unwrap();
    let check = || {
        let out = std::process::Command::new(support::broker::broker_bin())
            .args(["--user", "--check-config"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HOME", home.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let new = home.path().join(".config/ecr-cred/config.toml");
    let old = home.path().join(".config/ecr-broker/config.toml");
    write(&old, "prefetch = []\n");
    assert!(check().starts_with(&format!("{}: ok", old.display())), "only the old file: it is read");
    write(&new, ROUTES);
    assert!(check().starts_with(&format!("{}: ok (3 identities, 2 rules)", new.display())), "the shared file wins: {}", check());
}
