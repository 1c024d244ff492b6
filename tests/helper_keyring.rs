//! `credsStore: "ecr"`: credentials for registries that are not ECR are kept in the OS keyring
//! (the kernel keyring here), shared by separate helper runs of one user, listed without their
//! secrets, and never written to a file.

mod support;

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
