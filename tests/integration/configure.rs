//! `docker-credential-ecr configure`: docker's config.json and containers' auth.json gain
//! `credHelpers` entries for ECR, and nothing else in them changes.
//!
//! Build first: `cargo build --release --workspace`, then `cargo test --release --test integration configure::`.

use crate::support;

use serde_json::Value;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{Helper, Run};

const A: &str = "123456789012.dkr.ecr.us-east-1.amazonaws.com";
const B: &str = "210987654321.dkr.ecr.eu-west-1.amazonaws.com";

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().mode() & 0o7777
}

fn mtime(p: &Path) -> (i64, i64) {
    let m = fs::metadata(p).unwrap();
    (m.mtime(), m.mtime_nsec())
}

fn json(p: &Path) -> Value {
    serde_json::from_slice(&fs::read(p).unwrap()).unwrap_or_else(|e| panic!("{} is not JSON: {e}", p.display()))
}

fn without_cred_helpers(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("credHelpers");
    v
}

/// The names in a folder, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// A helper whose DOCKER_CONFIG is `<home>/dockercfg` (created), and that folder.
fn with_docker_config() -> (Helper, PathBuf) {
    let mut h = Helper::new();
    let dir = h.home().join("dockercfg");
    fs::create_dir(&dir).unwrap();
    h.env("DOCKER_CONFIG", &dir);
    (h, dir)
}

/// Configurations as docker, podman and people write them.
const FIXTURES: &[&str] = &[
    // docker's own format: tabs, no final newline.
    "{\n\t\"auths\": {\n\t\t\"https://index.docker.io/v1/\": {\n\t\t\t\"auth\": \"dXNlcjpwYXNzd29yZA==\"\n\t\t},\n\t\t\"ghcr.io\": {\n\t\t\t\"auth\": \"Z2g6dG9rZW4=\",\n\t\t\t\"identitytoken\": \"abc\"\n\t\t}\n\t},\n\t\"credsStore\": \"desktop\",\n\t\"proxies\": {\n\t\t\"default\": {\n\t\t\t\"httpProxy\": \"http://proxy:3128\",\n\t\t\t\"noProxy\": \"*.local,169.254/16\"\n\t\t}\n\t},\n\t\"HttpHeaders\": {\n\t\t\"User-Agent\": \"Docker-Client/24 (linux)\"\n\t},\n\t\"zUnknown\": {\n\t\t\"nested\": [1, 2.5, -3e-7, true, null, {\"deep\": \"é <&> \\u0000\"}],\n\t\t\"empty\": {}\n\t},\n\t\"currentContext\": \"colima\"\n}",
    // two spaces, a final newline, an existing credHelpers for another registry.
    "{\n  \"currentContext\": \"default\",\n  \"credHelpers\": {\n    \"gcr.io\": \"gcloud\",\n    \"210987654321.dkr.ecr.eu-west-1.amazonaws.com\": \"ecr\"\n  },\n  \"auths\": {\n    \"quay.io\": {\"auth\": \"cTp0\"}\n  },\n  \"aliases\": {\"builder\": \"buildx\"},\n  \"features\": {\"hooks\": \"true\"}\n}\n",
    // compact, one line.
    r#"{"auths":{"registry.example.com:5000":{"auth":"YWxpY2U6czNjcjN0"}},"credsStore":"pass","plugins":{"x":{"y":"z"}},"psFormat":"table {{.ID}}"}"#,
    // empty file: docker reads it as an empty configuration.
    "",
    "{}",
];

/// The top-level keys of a JSON object text, in the order they appear.
fn top_level_keys(text: &str) -> Vec<String> {
    // Serde without preserve_order sorts; walk the text instead, tracking depth.
    let (mut depth, mut keys, mut chars) = (0, Vec::new(), text.char_indices().peekable());
    while let Some((i, c)) = chars.next() {
        match c {
            '{' | '[' => depth += 1,
            '}' | ']' => depth -= 1,
            '"' => {
                let start = i + 1;
                let mut end = start;
                let mut escaped = false;
                for (j, c) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if c == '\\' {
                        escaped = true;
                    } else if c == '"' {
                        end = j;
                        break;
                    }
                }
                let after = text[end + 1..].trim_start();
                if depth == 1 && after.starts_with(':') {
                    keys.push(text[start..end].to_string());
                }
            }
            _ => {}
        }
    }
    keys
}

#[test]
fn round_trips_keep_every_other_key_value_order_and_mode() {
    for (n, fixture) in FIXTURES.iter().enumerate() {
        let (h, dir) = with_docker_config();
        let cfg = dir.join("config.json");
        fs::write(&cfg, fixture).unwrap();
        fs::set_permissions(&cfg, fs::Permissions::from_mode(0o640)).unwrap();
        let before: Value = if fixture.trim().is_empty() { serde_json::json!({}) } else { serde_json::from_str(fixture).unwrap() };

        let run = h.run(&["configure", "--registry", A, "--registry", &format!("https://{B}:5443/v2/")], b"");
        run.assert_ok();
        let after = json(&cfg);
        assert_eq!(without_cred_helpers(after.clone()), without_cred_helpers(before.clone()), "fixture {n}: other keys changed");
        let helpers = after["credHelpers"].as_object().unwrap();
        assert_eq!(helpers[A], "ecr", "fixture {n}");
        assert_eq!(helpers[&format!("{B}:5443")], "ecr", "fixture {n}: the port given is kept");
        if let Some(old) = before.get("credHelpers").and_then(Value::as_object) {
            for (k, v) in old {
                assert_eq!(&helpers[k], v, "fixture {n}: existing credHelpers entry {k} changed");
            }
        }
        assert_eq!(helpers.len(), 2 + before.get("credHelpers").map_or(0, |o| o.as_object().unwrap().len()));

        // Keys keep their order; a new credHelpers goes last.
        let old_keys = top_level_keys(fixture);
        let mut new_keys = top_level_keys(&fs::read_to_string(&cfg).unwrap());
        if !old_keys.contains(&"credHelpers".to_string()) {
            assert_eq!(new_keys.pop().as_deref(), Some("credHelpers"), "fixture {n}");
        }
        assert_eq!(new_keys, old_keys, "fixture {n}: key order changed");
        // The indentation is the file's own.
        let text = fs::read_to_string(&cfg).unwrap();
        if fixture.contains("\n  \"") {
            assert!(text.contains(&format!("\n    \"{A}\": \"ecr\"")), "fixture {n}: {text}");
        } else {
            assert!(text.contains(&format!("\n\t\t\"{A}\": \"ecr\"")), "fixture {n}: {text}");
        }
        assert_eq!(text.ends_with('\n'), fixture.ends_with('\n') || fixture.is_empty(), "fixture {n}: final newline");

        let bak = dir.join("config.json.bak");
        assert_eq!(fs::read(&bak).unwrap(), fixture.as_bytes(), "fixture {n}: backup holds the old bytes");
        assert_eq!(mode(&cfg), 0o640, "fixture {n}");
        assert_eq!(mode(&bak), 0o640, "fixture {n}");
        assert_eq!(names_in(&dir), ["config.json", "config.json.bak"], "fixture {n}: no temporary files left");
        assert!(run.stdout.contains(&cfg.display().to_string()) && run.stdout.contains(A), "{run:#?}");
        assert!(run.stdout.contains(&format!("{B}:5443")), "{run:#?}");

        // Again: nothing to do, nothing written.
        let (bytes, t, bak_t) = (fs::read(&cfg).unwrap(), mtime(&cfg), mtime(&bak));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let again = h.run(&["configure", "--registry", A, "--registry", &format!("{B}:5443")], b"");
        again.assert_ok();
        assert!(again.stdout.contains("already configured"), "{again:#?}");
        assert_eq!(fs::read(&cfg).unwrap(), bytes);
        assert_eq!(mtime(&cfg), t, "fixture {n}: rewritten although nothing changed");
        assert_eq!(mtime(&bak), bak_t, "fixture {n}: backup rewritten");
        assert_eq!(names_in(&dir), ["config.json", "config.json.bak"]);
    }
}

#[test]
fn another_helper_is_replaced_only_for_the_hosts_asked_for() {
    let (h, dir) = with_docker_config();
    let cfg = dir.join("config.json");
    let old = format!("{{\n\t\"credHelpers\": {{\n\t\t\"{A}\": \"ecr-login\",\n\t\t\"{B}\": \"ecr-login\"\n\t}}\n}}");
    fs::write(&cfg, &old).unwrap();
    let run = h.run(&["configure", "--registry", A], b"");
    run.assert_ok();
    let after = json(&cfg);
    assert_eq!(after["credHelpers"][A], "ecr");
    assert_eq!(after["credHelpers"][B], "ecr-login", "a host not asked for keeps its helper");
    assert!(run.stdout.contains("ecr-login") && run.stdout.contains(A), "the change is shown: {run:#?}");
    assert_eq!(fs::read_to_string(dir.join("config.json.bak")).unwrap(), old);
}

#[test]
fn a_new_file_in_a_missing_folder_is_private() {
    let mut h = Helper::new();
    let dir = h.home().join("a/b/docker");
    h.env("DOCKER_CONFIG", &dir);
    let run = h.run(&["configure", "--registry", A], b"");
    run.assert_ok();
    let cfg = dir.join("config.json");
    assert_eq!(json(&cfg), serde_json::json!({"credHelpers": {A: "ecr"}}));
    assert_eq!(mode(&cfg), 0o600);
    for d in [h.home().join("a"), h.home().join("a/b"), dir.clone()] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    assert_eq!(names_in(&dir), ["config.json"], "no backup of a file that did not exist");
    assert!(run.stdout.contains(&cfg.display().to_string()), "{run:#?}");

    // Without DOCKER_CONFIG: ~/.docker/config.json.
    let h = Helper::new();
    h.run(&["configure", "--registry", "public.ecr.aws"], b"").assert_ok();
    assert_eq!(json(&h.home().join(".docker/config.json"))["credHelpers"]["public.ecr.aws"], "ecr");
    assert_eq!(mode(&h.home().join(".docker")), 0o700);
}

#[test]
fn a_symlinked_config_stays_a_symlink() {
    let (h, dir) = with_docker_config();
    let dotfiles = h.home().join("dotfiles");
    fs::create_dir(&dotfiles).unwrap();
    let real = dotfiles.join("docker-config.json");
    fs::write(&real, "{\"auths\": {}}").unwrap();
    std::os::unix::fs::symlink(&real, dir.join("config.json")).unwrap();
    h.run(&["configure", "--registry", A], b"").assert_ok();
    assert!(fs::symlink_metadata(dir.join("config.json")).unwrap().file_type().is_symlink());
    assert_eq!(json(&real)["credHelpers"][A], "ecr");
    assert_eq!(fs::read_to_string(dotfiles.join("docker-config.json.bak")).unwrap(), "{\"auths\": {}}");
}

#[test]
fn containers_auth_file_too() {
    // REGISTRY_AUTH_FILE honoured, existing content kept.
    let (mut h, dir) = with_docker_config();
    let auth = h.home().join("podman/my-auth.json");
    fs::create_dir(h.home().join("podman")).unwrap();
    let old = "{\n\t\"auths\": {\n\t\t\"quay.io\": {\n\t\t\t\"auth\": \"cTp0\"\n\t\t}\n\t}\n}";
    fs::write(&auth, old).unwrap();
    h.env("REGISTRY_AUTH_FILE", &auth);
    let run = h.run(&["configure", "--containers", "--registry", A], b"");
    run.assert_ok();
    assert_eq!(json(&dir.join("config.json"))["credHelpers"][A], "ecr");
    let after = json(&auth);
    assert_eq!(after["credHelpers"][A], "ecr");
    assert_eq!(after["auths"]["quay.io"]["auth"], "cTp0");
    assert_eq!(fs::read_to_string(h.home().join("podman/my-auth.json.bak")).unwrap(), old);
    assert!(run.stdout.contains(&auth.display().to_string()) && run.stdout.contains("config.json"), "{run:#?}");

    // Default: ~/.config/containers/auth.json; --all-known adds what docker's config sends to
    // this helper, and ECR Public.
    let (h, _dir) = with_docker_config();
    h.run(&["configure", "--registry", B], b"").assert_ok();
    h.run(&["configure", "--containers", "--all-known"], b"").assert_ok();
    let auth = h.home().join(".config/containers/auth.json");
    assert_eq!(json(&auth), serde_json::json!({"credHelpers": {B: "ecr", "public.ecr.aws": "ecr"}}));
    assert_eq!(mode(&auth), 0o600);
    assert_eq!(mode(&h.home().join(".config/containers")), 0o700);
}

#[test]
fn dry_run_shows_a_diff_and_writes_nothing() {
    let (h, dir) = with_docker_config();
    let cfg = dir.join("config.json");
    let old = "{\n\t\"auths\": {},\n\t\"credsStore\": \"desktop\"\n}";
    fs::write(&cfg, old).unwrap();
    let t = mtime(&cfg);
    let run = h.run(&["configure", "--dry-run", "--registry", A], b"");
    run.assert_ok();
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert!(lines.contains(&format!("--- {}", cfg.display()).as_str()), "{run:#?}");
    assert!(lines.iter().any(|l| l.starts_with("+++ ")), "{run:#?}");
    assert!(lines.iter().any(|l| l.starts_with("@@ ")), "{run:#?}");
    assert!(lines.iter().any(|l| l.starts_with('+') && l.contains(A) && l.contains("ecr")), "{run:#?}");
    assert!(lines.iter().any(|l| l.starts_with('-') && l.contains("desktop")), "the changed line is shown: {run:#?}");
    assert!(!lines.iter().any(|l| l.starts_with('-') && l.contains("auths")), "unchanged lines are context: {run:#?}");
    assert_eq!(fs::read_to_string(&cfg).unwrap(), old);
    assert_eq!(mtime(&cfg), t);
    assert_eq!(names_in(&dir), ["config.json"]);

    // A file that does not exist yet: nothing is created, not even its folder.
    let mut h = Helper::new();
    let dir = h.home().join("missing/docker");
    h.env("DOCKER_CONFIG", &dir);
    let run = h.run(&["configure", "--dry-run", "--containers", "--registry", A], b"");
    run.assert_ok();
    assert!(run.stdout.contains("--- /dev/null"), "{run:#?}");
    assert_eq!(run.stdout.lines().filter(|l| l.starts_with('+') && l.contains(A)).count(), 2, "{run:#?}");
    assert!(!h.home().join("missing").exists());
    assert!(!h.home().join(".config").exists());
}

#[test]
fn kubelet_prints_the_provider_configuration() {
    let h = Helper::new();
    let run = h.run(&["configure", "--kubelet"], b"");
    run.assert_ok();
    let expected = fs::read_to_string(support::repo_root().join("packaging/kubernetes/credential-provider-config.yaml")).unwrap();
    assert_eq!(run.stdout, expected);
    assert!(!h.home().join(".docker").exists(), "--kubelet changes nothing");
}

/// Run the case, then check the file is exactly as before and nothing was left beside it.
fn assert_refused(run: &Run, cfg: &Path, old: &[u8], old_mode: u32, names_before: &[String], what: &str) {
    assert_eq!(run.code, 1, "{what}: {run:#?}");
    let err = run.stderr.trim();
    assert_eq!(err.lines().count(), 1, "{what}: one line on stderr: {run:#?}");
    assert!(err.contains(&cfg.display().to_string()), "{what}: the file is named: {run:#?}");
    assert_eq!(fs::read(cfg).unwrap(), old, "{what}: file changed");
    assert_eq!(mode(cfg), old_mode, "{what}: mode changed");
    assert_eq!(names_in(cfg.parent().unwrap()), names_before, "{what}: something was left beside the file");
}

#[test]
fn bad_files_are_refused_and_left_untouched() {
    let cases: &[(&str, &str, &str)] = &[
        ("malformed JSON", "{\"auths\": {\"x\": {\"auth\": \"YTpi\"}}", "JSON"),
        ("a JSON array", "[{\"credHelpers\": {}}]", "array"),
        ("a JSON string", "\"hello\"", "string"),
        ("credHelpers not an object", "{\"credHelpers\": [\"ecr\"]}", "credHelpers"),
        ("read-only file", "{\"auths\": {}}", "read-only"),
    ];
    for (what, content, expect) in cases {
        let (h, dir) = with_docker_config();
        let cfg = dir.join("config.json");
        fs::write(&cfg, content).unwrap();
        let m = if *what == "read-only file" { 0o444 } else { 0o640 };
        fs::set_permissions(&cfg, fs::Permissions::from_mode(m)).unwrap();
        let run = h.run(&["configure", "--registry", A], b"");
        assert_refused(&run, &cfg, content.as_bytes(), m, &["config.json".to_string()], what);
        assert!(run.stderr.contains(expect), "{what}: {run:#?}");
    }

    // A registry that is not ECR: named, and nothing is written anywhere.
    let (h, dir) = with_docker_config();
    let cfg = dir.join("config.json");
    fs::write(&cfg, "{}").unwrap();
    let run = h.run(&["configure", "--registry", A, "--registry", "ghcr.io"], b"");
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("ghcr.io") && run.stderr.trim().lines().count() == 1, "{run:#?}");
    assert_eq!(fs::read(&cfg).unwrap(), b"{}");
    assert_eq!(names_in(&dir), ["config.json"]);

    // No registry at all.
    let run = h.run(&["configure"], b"");
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("--registry") && run.stderr.contains("--all-known"), "{run:#?}");
    assert_eq!(fs::read(&cfg).unwrap(), b"{}");

    // With --containers, a bad auth file stops the docker config from changing too.
    let (mut h, dir) = with_docker_config();
    let cfg = dir.join("config.json");
    fs::write(&cfg, "{}").unwrap();
    let auth = h.home().join("auth.json");
    fs::write(&auth, "{oops").unwrap();
    h.env("REGISTRY_AUTH_FILE", &auth);
    let run = h.run(&["configure", "--containers", "--registry", A], b"");
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains(&auth.display().to_string()), "{run:#?}");
    assert_eq!(fs::read(&cfg).unwrap(), b"{}");
    assert_eq!(names_in(&dir), ["config.json"]);
}

/// `chattr -i` on drop, so a failed assertion leaves nothing undeletable behind.
struct Immutable(PathBuf);

impl Immutable {
    fn set(p: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr").arg("+i").arg(p).output().map(|o| o.status.success()).unwrap_or(false);
        ok.then(|| Immutable(p.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

/// An unwritable folder. These tests run as root, which ignores permission bits, so a
/// `chmod 0500` would not stop anything: the folder is made immutable (`chattr +i`, which
/// stops root too) and the helper is also run as an unprivileged user (uid 65534) on a
/// folder owned by root.
#[test]
#[ignore = "needs peer chattr and root: tests/run-all.sh runs it"]
fn an_unwritable_folder_is_reported_and_nothing_changes() {
    let (h, dir) = with_docker_config();
    let cfg = dir.join("config.json");
    let old = b"{\n\t\"auths\": {}\n}";
    fs::write(&cfg, old).unwrap();
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o600)).unwrap();
    match Immutable::set(&dir) {
        Some(_guard) => {
            let run = h.run(&["configure", "--registry", A], b"");
            assert_refused(&run, &cfg, old, 0o600, &["config.json".to_string()], "immutable folder");
        }
        None => panic!(
            "chattr +i did not work on {}: this test needs e2fsprogs' chattr on a file system that supports it (ext4 does)",
            dir.display()
        ),
    }

    // The file itself immutable.
    {
        let _guard = Immutable::set(&cfg).expect("chattr +i on the config file");
        let run = h.run(&["configure", "--registry", A], b"");
        assert_refused(&run, &cfg, old, 0o600, &["config.json".to_string()], "immutable file");
    }

    // As uid 65534: the file is that user's, the folder root's (0755), HOME root's.
    assert!(support::is_root(), "the uid 65534 case needs root: run tests/run-all.sh");
    let base = tempfile::Builder::new().prefix("configure-nobody-").tempdir().unwrap();
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
    let dir = base.path().join("docker");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let cfg = dir.join("config.json");
    fs::write(&cfg, old).unwrap();
    fs::set_permissions(&cfg, fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(&cfg, Some(65534), Some(65534)).unwrap();
    use std::os::unix::process::CommandExt;
    let out = Command::new(support::helper_bin())
        .args(["configure", "--registry", A])
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", base.path())
        .env("DOCKER_CONFIG", &dir)
        .current_dir(base.path())
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        elapsed: Default::default(),
    };
    assert_refused(&run, &cfg, old, 0o644, &["config.json".to_string()], "folder not writable by uid 65534");
    assert!(run.stderr.contains("ermission denied"), "{run:#?}");
    assert_eq!(fs::metadata(&cfg).unwrap().uid(), 65534);
}

#[test]
fn list_reports_the_configured_registries() {
    let (h, _dir) = with_docker_config();
    h.run(&["configure", "--registry", A, "--registry", "public.ecr.aws"], b"").assert_ok();
    let run = h.run(&["list"], b"");
    run.assert_ok();
    let listed = run.json();
    assert_eq!(listed[format!("https://{A}")], "AWS", "{run:#?}");
    assert_eq!(listed["https://public.ecr.aws"], "AWS", "{run:#?}");
}

#[test]
fn remove_takes_out_only_this_helpers_entry_from_both_files_and_keeps_a_backup() {
    for (n, fixture) in FIXTURES.iter().enumerate() {
        let (mut h, dir) = with_docker_config();
        let auth = h.home().join("containers-auth.json");
        h.env("REGISTRY_AUTH_FILE", &auth);
        let cfg = dir.join("config.json");
        fs::write(&cfg, fixture).unwrap();
        fs::set_permissions(&cfg, fs::Permissions::from_mode(0o640)).unwrap();
        h.run(&["configure", "--containers", "--registry", A, "--registry", B], b"").assert_ok();
        let added = fs::read(&cfg).unwrap();
        let added_auth = fs::read(&auth).unwrap();

        let run = h.run(&["configure", "--remove", "--registry", A], b"");
        run.assert_ok();
        assert!(run.stdout.contains("removed") && run.stdout.contains(A), "fixture {n}: {run:#?}");
        for (file, before) in [(&cfg, &added), (&auth, &added_auth)] {
            let after = json(file);
            let mut want: Value = serde_json::from_slice(before).unwrap();
            want["credHelpers"].as_object_mut().unwrap().remove(A);
            assert_eq!(after, want, "fixture {n}: {}: only {A} went", file.display());
            assert_eq!(after["credHelpers"][B], "ecr", "fixture {n}");
            assert_eq!(fs::read(sibling_bak(file)).unwrap(), *before, "fixture {n}: .bak holds the file before removal");
        }
        assert_eq!(top_level_keys(&fs::read_to_string(&cfg).unwrap()), top_level_keys(&String::from_utf8_lossy(&added)), "fixture {n}");
        assert_eq!(mode(&cfg), 0o640, "fixture {n}");

        // Nothing left to remove: nothing written.
        let t = mtime(&cfg);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let again = h.run(&["configure", "--remove", "--registry", A], b"");
        again.assert_ok();
        assert_eq!(mtime(&cfg), t, "fixture {n}: rewritten although nothing changed");
    }
}

#[test]
fn remove_keeps_another_helpers_entry_and_creates_no_file() {
    let (h, dir) = with_docker_config();
    let cfg = dir.join("config.json");
    let old = format!("{{\n\t\"credHelpers\": {{\n\t\t\"{A}\": \"ecr-login\"\n\t}}\n}}");
    fs::write(&cfg, &old).unwrap();
    let run = h.run(&["configure", "--remove", "--registry", A], b"");
    run.assert_ok();
    assert_eq!(fs::read_to_string(&cfg).unwrap(), old, "an entry naming another helper is not ours to remove");
    assert!(run.stdout.contains("not this helper"), "{run:#?}");
    assert!(!h.home().join(".config/containers/auth.json").exists(), "removal creates no file");
}

fn sibling_bak(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.bak", p.display()))
}
