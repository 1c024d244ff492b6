//! `docker-credential-ecr get` against the patched moto: every registry form, the token
//! cache (hits, rotation, expiry, disabling it), the cache files' safety, and no secret in logs.

use crate::support;

use base64::Engine;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use support::fake_aws::{FakeAws, Mode};
use support::{assume_role, file_contains, files_under, Helper, Moto};

/// moto's deterministic token password for account 123456789012.
const MOTO_PASSWORD: &str = "123456789012-auth-token";
const AKID: &str = "AKIATESTHELPERGET001";
const SECRET: &str = "helper-get-secret-access-key-0001";
const US_EAST_1: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";

fn helper_for(moto: &Moto) -> Helper {
    let mut h = Helper::new();
    h.aws(&moto.endpoint(), AKID, SECRET);
    h
}

fn assert_moto_credentials(run: &support::Run, server_url: &str) {
    run.assert_ok();
    let v = run.json();
    assert_eq!(v["ServerURL"], server_url, "{run:#?}");
    assert_eq!(v["Username"], "AWS", "{run:#?}");
    assert_eq!(v["Secret"], MOTO_PASSWORD, "{run:#?}");
    assert_eq!(run.stdout.lines().count(), 1, "one line of JSON: {run:#?}");
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn get_answers_every_registry_form_from_its_own_region() {
    let moto = Moto::start();
    let cases = [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com", "us-east-1"),
        ("https://123456789012.dkr.ecr.eu-west-1.amazonaws.com", "eu-west-1"),
        ("123456789012.dkr.ecr.ap-southeast-2.amazonaws.com", "ap-southeast-2"),
        ("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com", "us-gov-west-1"),
        ("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn", "cn-north-1"),
        ("123456789012.dkr-ecr.eu-west-1.on.aws", "eu-west-1"),
        ("123456789012.dkr.ecr.eusc-de-east-1.amazonaws.eu", "eusc-de-east-1"),
        ("123456789012.dkr.ecr.us-iso-east-1.c2s.ic.gov", "us-iso-east-1"),
    ];
    let mut failures = Vec::new();
    for (host, region) in cases {
        // A fresh HOME each time: no token of an earlier case can answer.
        let helper = helper_for(&moto);
        let before = moto.calls().len();
        let run = helper.get(host);
        let new_calls: Vec<_> = moto.calls()[before..].to_vec();
        let ok = run.code == 0
            && run.json()["Secret"] == MOTO_PASSWORD
            && run.json()["Username"] == "AWS"
            && run.json()["ServerURL"] == host
            && new_calls.iter().filter(|c| c.0 == "GetAuthorizationToken").count() == 1
            && new_calls.iter().any(|c| c.0 == "GetAuthorizationToken" && c.1 == region && c.2 == AKID);
        if !ok {
            failures.push(format!("{host}: want a token and GetAuthorizationToken in {region}; got {run:#?}, moto calls {new_calls:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn second_get_is_a_cache_hit_and_one_token_serves_every_account_of_a_region() {
    let moto = Moto::start();
    let helper = helper_for(&moto);
    assert_moto_credentials(&helper.get(US_EAST_1), US_EAST_1);
    assert_eq!(moto.count("GetAuthorizationToken"), 1, "{}", moto.log_text());
    let sts_after_first = moto.count("GetCallerIdentity");
    assert_eq!(sts_after_first, 1, "the first get asks STS once: {}", moto.log_text());

    let second = helper.get(US_EAST_1);
    assert_moto_credentials(&second, US_EAST_1);
    assert_eq!(moto.count("GetAuthorizationToken"), 1, "second get must be a cache hit: {}", moto.log_text());
    assert_eq!(moto.count("GetCallerIdentity"), sts_after_first, "a cache hit needs no STS call: {}", moto.log_text());

    let other_account = "https://210987654321.dkr.ecr.us-east-1.amazonaws.com";
    assert_moto_credentials(&helper.get(other_account), other_account);
    assert_eq!(moto.count("GetAuthorizationToken"), 1, "same principal and region: one token: {}", moto.log_text());
    assert_eq!(moto.count("GetCallerIdentity"), sts_after_first, "{}", moto.log_text());

    // Another region is another token.
    let eu = "123456789012.dkr.ecr.eu-west-1.amazonaws.com";
    assert_moto_credentials(&helper.get(eu), eu);
    assert_eq!(moto.count("GetAuthorizationToken"), 2, "{}", moto.log_text());
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn rotated_credentials_of_one_role_share_its_token_and_another_role_does_not() {
    let moto = Moto::start();
    let puller = "arn:aws:iam::123456789012:role/Puller";
    let set1 = assume_role(&moto.endpoint(), puller, "session-1");
    let set2 = assume_role(&moto.endpoint(), puller, "session-2");
    assert!(set1.access_key_id.starts_with("ASIA") && set2.access_key_id.starts_with("ASIA"));
    assert_ne!(set1.access_key_id, set2.access_key_id, "two AssumeRole calls give two credential sets");

    let mut helper = Helper::new();
    helper.env("AWS_ENDPOINT_URL", moto.endpoint()).env("AWS_REGION", "us-east-1");
    let with = |h: &mut Helper, c: &support::TempCreds| {
        h.env("AWS_ACCESS_KEY_ID", &c.access_key_id)
            .env("AWS_SECRET_ACCESS_KEY", &c.secret_access_key)
            .env("AWS_SESSION_TOKEN", &c.session_token);
    };

    with(&mut helper, &set1);
    assert_moto_credentials(&helper.get(US_EAST_1), US_EAST_1);
    assert_eq!(moto.count("GetAuthorizationToken"), 1, "{}", moto.log_text());
    let sts1 = moto.count("GetCallerIdentity");

    with(&mut helper, &set2);
    assert_moto_credentials(&helper.get(US_EAST_1), US_EAST_1);
    assert_eq!(moto.count("GetAuthorizationToken"), 1, "rotated credentials of the same role reuse its token: {}", moto.log_text());
    assert_eq!(moto.count("GetCallerIdentity"), sts1 + 1, "the new credentials' principal is asked of STS: {}", moto.log_text());
    assert!(
        moto.calls().iter().any(|c| c.0 == "GetCallerIdentity" && c.2 == set2.access_key_id),
        "STS was asked with set 2: {}",
        moto.log_text()
    );

    let pusher = assume_role(&moto.endpoint(), "arn:aws:iam::123456789012:role/Pusher", "session-1");
    with(&mut helper, &pusher);
    assert_moto_credentials(&helper.get(US_EAST_1), US_EAST_1);
    assert_eq!(moto.count("GetAuthorizationToken"), 2, "another principal never gets the first one's token: {}", moto.log_text());
    assert!(moto.calls().iter().any(|c| c.0 == "GetAuthorizationToken" && c.2 == pusher.access_key_id), "{}", moto.log_text());
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn a_token_expired_on_arrival_is_used_once_with_a_warning_and_not_cached() {
    let moto = Moto::start_with_lifetime(Some(-60));
    let helper = helper_for(&moto);
    let first = helper.get(US_EAST_1);
    assert_moto_credentials(&first, US_EAST_1);
    assert!(first.stderr.to_lowercase().contains("expired"), "a warning on stderr: {first:#?}");
    assert!(first.stderr.contains("WARN"), "at warn level: {first:#?}");
    assert_eq!(moto.count("GetAuthorizationToken"), 1);

    let second = helper.get(US_EAST_1);
    assert_moto_credentials(&second, US_EAST_1);
    assert_eq!(moto.count("GetAuthorizationToken"), 2, "an expired token is never served from the cache: {}", moto.log_text());
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn disabling_the_cache_fetches_every_time_and_writes_nothing() {
    let moto = Moto::start();
    let mut helper = helper_for(&moto);
    helper.env("AWS_ECR_DISABLE_CACHE", "1");
    assert_moto_credentials(&helper.get(US_EAST_1), US_EAST_1);
    assert_moto_credentials(&helper.get(US_EAST_1), US_EAST_1);
    assert_eq!(moto.count("GetAuthorizationToken"), 2, "{}", moto.log_text());
    let files = files_under(helper.home());
    assert!(files.iter().all(|f| f.file_name().unwrap() != "tokens.json"), "no tokens.json: {files:?}");
    assert!(!helper.default_cache_dir().exists(), "no cache folder is created");
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn cache_files_are_private_and_hold_no_credentials() {
    let moto = Moto::start();
    let helper = helper_for(&moto);
    assert_moto_credentials(&helper.get(US_EAST_1), US_EAST_1);
    let dir = helper.default_cache_dir();
    let file = dir.join("tokens.json");
    assert!(file.is_file(), "the cache is at $HOME/.cache/ecr-cred/tokens.json: {:?}", files_under(helper.home()));
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
    assert_eq!(std::fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
    for f in files_under(helper.home()) {
        if f != file {
            assert!(!file_contains(&f, MOTO_PASSWORD), "token password found in {}", f.display());
        }
        assert!(!file_contains(&f, AKID), "access key id found in {}", f.display());
        assert!(!file_contains(&f, SECRET), "secret access key found in {}", f.display());
    }
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn a_corrupt_or_readable_cache_file_is_ignored_and_replaced() {
    let moto = Moto::start();
    for (what, content, mode) in [
        ("junk bytes", b"\x00\xff{{not json at all\x80\x81".to_vec(), 0o600),
        ("truncated JSON", b"{\"version\":1,\"tokens\":{".to_vec(), 0o600),
        ("mode 0644", Vec::new(), 0o644),
    ] {
        let helper = helper_for(&moto);
        let dir = helper.default_cache_dir();
        let file = dir.join("tokens.json");
        if content.is_empty() {
            // A valid file, but readable by others.
            assert_moto_credentials(&helper.get(US_EAST_1), US_EAST_1);
        } else {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).unwrap();
            std::fs::write(&file, &content).unwrap();
        }
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        let before = moto.count("GetAuthorizationToken");
        let run = helper.get(US_EAST_1);
        assert_moto_credentials(&run, US_EAST_1);
        assert!(!run.stderr.contains("panicked"), "{what}: {run:#?}");
        if mode == 0o644 {
            assert_eq!(moto.count("GetAuthorizationToken"), before + 1, "{what}: a file others can read is not trusted");
        }
        let meta = std::fs::metadata(&file).unwrap();
        assert_eq!(meta.mode() & 0o777, 0o600, "{what}: replaced by a 0600 file");
        let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{what}: not text: {e}"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"));
        assert_eq!(v["version"], 1, "{what}: {text}");
        // And the new file serves the next get.
        let n = moto.count("GetAuthorizationToken");
        assert_moto_credentials(&helper.get(US_EAST_1), US_EAST_1);
        assert_eq!(moto.count("GetAuthorizationToken"), n, "{what}: the replaced file is used");
    }
}

#[test]
#[ignore = "needs root and peer moto: tests/run-all.sh runs it"]
fn a_cache_folder_owned_by_another_user_is_not_used() {
    assert!(support::is_root(), "needs root to chown: run tests/run-all.sh");
    let moto = Moto::start();
    let mut helper = helper_for(&moto);
    let foreign = helper.home().join("foreign-cache");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::set_permissions(&foreign, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&foreign, Some(65534), Some(65534)).unwrap();
    helper.env("AWS_ECR_CACHE_DIR", &foreign);
    let run = helper.get(US_EAST_1);
    assert_moto_credentials(&run, US_EAST_1);
    assert!(run.stderr.contains("WARN") && run.stderr.contains("65534"), "a warning names the owner: {run:#?}");
    assert!(!foreign.join("tokens.json").exists(), "nothing is written into it");
    assert_eq!(std::fs::metadata(&foreign).unwrap().uid(), 65534);
    // Without a cache every get asks ECR.
    assert_moto_credentials(&helper.get(US_EAST_1), US_EAST_1);
    assert_eq!(moto.count("GetAuthorizationToken"), 2);
}

#[test]
#[ignore = "needs peer moto: tests/run-all.sh runs it"]
fn secrets_never_reach_the_logs_even_at_trace() {
    let moto = Moto::start();
    let session_token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN-helper-get-0001";
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{MOTO_PASSWORD}"));
    let mut helper = helper_for(&moto);
    helper.env("ECR_LOG", "trace").env("AWS_SESSION_TOKEN", session_token);

    let check = |what: &str, run: &support::Run, secrets: &[&str]| {
        assert!(!run.stderr.trim().is_empty(), "{what}: ECR_LOG=trace must log something: {run:#?}");
        for s in secrets {
            assert!(!run.stderr.contains(s), "{what}: stderr contains the secret {s:?}:\n{}", run.stderr);
        }
    };
    // Success (a fetch), then a cache hit.
    let run = helper.get(US_EAST_1);
    assert_moto_credentials(&run, US_EAST_1);
    check("fetch", &run, &[MOTO_PASSWORD, &encoded, SECRET, session_token]);
    let run = helper.get(US_EAST_1);
    assert_moto_credentials(&run, US_EAST_1);
    check("cache hit", &run, &[MOTO_PASSWORD, &encoded, SECRET, session_token]);

    // A success against the fake with a distinct token.
    let fake = FakeAws::start();
    let mut h2 = Helper::new();
    h2.aws(&fake.endpoint(), AKID, SECRET).env("ECR_LOG", "trace").env("AWS_SESSION_TOKEN", session_token);
    let run = h2.get(US_EAST_1);
    run.assert_ok();
    let pw = FakeAws::token_password(1);
    assert_eq!(run.json()["Secret"], pw.as_str());
    let enc = base64::engine::general_purpose::STANDARD.encode(format!("AWS:{pw}"));
    check("fake fetch", &run, &[&pw, &enc, SECRET, session_token]);

    // Failure: refused.
    let fake = FakeAws::start();
    fake.set_mode(Mode::Deny);
    let mut h3 = Helper::new();
    h3.aws(&fake.endpoint(), AKID, SECRET).env("ECR_LOG", "trace").env("AWS_SESSION_TOKEN", session_token);
    let run = h3.get(US_EAST_1);
    assert_eq!(run.code, 1, "{run:#?}");
    check("refused", &run, &[SECRET, session_token]);
    assert!(!run.stdout.contains(SECRET) && !run.stdout.contains(session_token), "{run:#?}");
}

#[test]
fn the_cache_lives_where_the_environment_says() {
    let fake = FakeAws::start();
    let base = Helper::new();
    let home = base.home().to_path_buf();
    let cases: Vec<(Vec<(&str, String)>, std::path::PathBuf)> = vec![
        (vec![], home.join(".cache/ecr-cred")),
        (vec![("XDG_CACHE_HOME", home.join("xdg").display().to_string())], home.join("xdg/ecr-cred")),
        (vec![("AWS_ECR_CACHE_DIR", home.join("explicit").display().to_string())], home.join("explicit")),
        (
            vec![
                ("XDG_CACHE_HOME", home.join("xdg2").display().to_string()),
                ("AWS_ECR_CACHE_DIR", home.join("wins").display().to_string()),
            ],
            home.join("wins"),
        ),
        (vec![("AWS_ECR_CACHE_DIR", "~/tilde".to_string())], home.join("tilde")),
    ];
    for (vars, want) in cases {
        let mut h = Helper::new();
        h.env("HOME", &home).aws(&fake.endpoint(), AKID, SECRET);
        for (k, v) in &vars {
            h.env(k, v);
        }
        h.get(US_EAST_1).assert_ok();
        let file = want.join("tokens.json");
        assert!(file.is_file(), "{vars:?}: want {}; files: {:?}", file.display(), files_under(&home));
        assert_eq!(std::fs::metadata(&want).unwrap().mode() & 0o777, 0o700, "{vars:?}");
        std::fs::remove_file(&file).unwrap();
    }
}

#[test]
fn a_changed_aws_config_file_asks_sts_again_but_reuses_the_principals_token() {
    let fake = FakeAws::start();
    let mut helper = Helper::new();
    helper.aws(&fake.endpoint(), AKID, SECRET);
    let aws_dir = helper.home().join(".aws");
    std::fs::create_dir(&aws_dir).unwrap();
    std::fs::write(aws_dir.join("config"), "[default]\nregion = us-east-1\n").unwrap();
    assert_eq!(helper.get(US_EAST_1).json()["Secret"], "fake-token-1");
    assert_eq!(helper.get(US_EAST_1).json()["Secret"], "fake-token-1");
    assert_eq!((fake.calls("GetAuthorizationToken"), fake.calls("GetCallerIdentity")), (1, 1));

    std::fs::write(aws_dir.join("config"), "[default]\nregion = us-east-1\noutput = json\n").unwrap();
    let run = helper.get(US_EAST_1);
    assert_eq!(run.json()["Secret"], "fake-token-1", "same principal, same token: {run:#?}");
    assert_eq!(fake.calls("GetCallerIdentity"), 2, "an edited config file is another credential source: STS is asked again");
    assert_eq!(fake.calls("GetAuthorizationToken"), 1);

    // Another access key of another principal: STS first, then its own token.
    fake.set_caller_arn("arn:aws:iam::123456789012:user/other");
    let run = helper.run_with(&["get"], US_EAST_1.as_bytes(), &[("AWS_ACCESS_KEY_ID", "AKIATESTHELPERGET002")]);
    assert_eq!(run.json()["Secret"], "fake-token-2", "{run:#?}");
    assert_eq!(fake.calls("GetCallerIdentity"), 3);
    // And the first principal still gets its own.
    fake.set_caller_arn("arn:aws:iam::123456789012:user/fake");
    assert_eq!(helper.get(US_EAST_1).json()["Secret"], "fake-token-1");
    assert_eq!(fake.calls("GetAuthorizationToken"), 2);
}

#[test]
#[ignore = "needs peer libfaketime: tests/run-all.sh runs it"]
fn a_clock_that_jumps_past_expiry_never_gets_the_cached_token() {
    let fake = support::fake_aws::FakeAws::start();
    let mut h = Helper::new();
    h.aws(&fake.endpoint(), "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    let first = h.get("123456789012.dkr.ecr.us-east-1.amazonaws.com");
    assert_eq!(first.json()["Secret"], "fake-token-1");
    let lib = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
    assert!(std::path::Path::new(lib).exists(), "{lib} is missing: run tests/peers/install.sh (package faketime)");
    let later = h.run_with(&["get"], b"123456789012.dkr.ecr.us-east-1.amazonaws.com", &[("LD_PRELOAD", lib), ("FAKETIME", "+46800")]);
    assert_eq!(later.code, 0, "{later:#?}");
    assert_eq!(later.json()["Secret"], "fake-token-2", "13 h later the cached token must not be handed out");
    assert_eq!(fake.calls("GetAuthorizationToken"), 2);
}
