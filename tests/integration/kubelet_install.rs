//! `docker-credential-ecr kubelet install --root DIR` on a scratch copy of an EKS node's
//! filesystem: the provider binary and config.json replaced, each original kept once, a
//! second run byte-identical, the installed copy working as `ecr-credential-provider`, and the
//! roots and folders it must refuse.

use crate::support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::{helper_bin, run_command, Run};

const PROVIDER_DIR: &str = "etc/eks/image-credential-provider";
/// What the AMI ships, standing in for AWS's provider binary.
const AWS_BINARY: &[u8] = b"#!/bin/sh\necho aws ecr-credential-provider\n";
/// nodeadm's config.json on an EKS hybrid node (its provider has an env list).
const NODEADM_CONFIG: &str = r#"{
  "apiVersion": "kubelet.config.k8s.io/v1",
  "kind": "CredentialProviderConfig",
  "providers": [
    {
      "name": "ecr-credential-provider",
      "matchImages": ["*.dkr.ecr.*.amazonaws.com", "*.dkr.ecr.*.amazonaws.com.cn"],
      "defaultCacheDuration": "12h",
      "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
      "env": [{"name": "AWS_CONFIG_FILE", "value": "/.aws/config"}, {"name": "AWS_PROFILE", "value": "hybrid"}]
    }
  ]
}
"#;

fn helper(args: &[&str]) -> Run {
    let mut cmd = Command::new(helper_bin());
    cmd.args(args).env_clear().env("PATH", "/usr/bin:/bin");
    run_command(cmd, b"", Duration::from_secs(30))
}

fn install(root: &Path) -> Run {
    helper(&["kubelet", "install", "--root", root.to_str().unwrap()])
}

/// A node root with /etc/eks/image-credential-provider holding the AMI's two files.
fn eks_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = root.path().join(PROVIDER_DIR);
    std::fs::create_dir_all(&dir).unwrap();
    for d in ["etc", "etc/eks", PROVIDER_DIR] {
        std::fs::set_permissions(root.path().join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(dir.join("ecr-credential-provider"), AWS_BINARY).unwrap();
    std::fs::set_permissions(dir.join("ecr-credential-provider"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(dir.join("config.json"), NODEADM_CONFIG).unwrap();
    std::fs::set_permissions(dir.join("config.json"), std::fs::Permissions::from_mode(0o644)).unwrap();
    root
}

/// Every entry under `dir`: path -> (mode, inode, bytes or link target).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let content = if m.is_dir() {
                stack.push(p.clone());
                Vec::new()
            } else if m.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().into_os_string().into_encoded_bytes()
            } else {
                std::fs::read(&p).unwrap()
            };
            out.insert(p, (m.mode(), m.ino(), content));
        }
    }
    out
}

/// The image patterns `configure --kubelet` prints (the `- "..."` lines under matchImages).
fn configure_kubelet_patterns() -> Vec<String> {
    let run = helper(&["configure", "--kubelet"]);
    assert_eq!(run.code, 0, "{run:#?}");
    let patterns: Vec<String> = run
        .stdout
        .lines()
        .skip_while(|l| l.trim() != "matchImages:")
        .skip(1)
        .map_while(|l| l.trim().strip_prefix("- \"").and_then(|s| s.strip_suffix('"')).map(str::to_string))
        .collect();
    assert!(patterns.len() >= 15, "too few patterns in configure --kubelet: {patterns:?}");
    patterns
}

#[test]
fn install_replaces_provider_and_config_keeps_originals_and_a_second_run_changes_nothing() {
    let root = eks_root();
    let dir = root.path().join(PROVIDER_DIR);
    let run = install(root.path());
    assert_eq!(run.code, 0, "{run:#?}");
    assert!(run.stdout.contains("installed"), "{run:#?}");

    // The binary is this helper, executable by all.
    let bin = dir.join("ecr-credential-provider");
    assert_eq!(std::fs::read(&bin).unwrap(), std::fs::read(helper_bin()).unwrap(), "the provider is not a copy of the helper");
    assert_eq!(std::fs::metadata(&bin).unwrap().mode() & 0o7777, 0o755);
    // The originals, kept as they were.
    assert_eq!(std::fs::read(dir.join("ecr-credential-provider.orig")).unwrap(), AWS_BINARY);
    assert_eq!(std::fs::metadata(dir.join("ecr-credential-provider.orig")).unwrap().mode() & 0o7777, 0o755);
    assert_eq!(std::fs::read_to_string(dir.join("config.json.orig")).unwrap(), NODEADM_CONFIG);

    // config.json: ours, JSON, every host form of `configure --kubelet`, the node's env kept.
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["apiVersion"], "kubelet.config.k8s.io/v1");
    assert_eq!(config["kind"], "CredentialProviderConfig");
    let providers = config["providers"].as_array().unwrap();
    assert_eq!(providers.len(), 1, "{config:#}");
    let p = &providers[0];
    assert_eq!(p["name"], "ecr-credential-provider");
    assert_eq!(p["apiVersion"], "credentialprovider.kubelet.k8s.io/v1");
    let images: Vec<String> = p["matchImages"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
    assert_eq!(images, configure_kubelet_patterns());
    for form in ["*.dkr-ecr.*.on.aws", "*.dkr.ecr.*.amazonaws.eu", "public.ecr.aws"] {
        assert!(images.iter().any(|i| i == form), "{form} missing from {images:?}");
    }
    assert_eq!(p["env"][1]["value"], "hybrid", "the original provider's env was not kept: {config:#}");
    assert_eq!(std::fs::metadata(dir.join("config.json")).unwrap().mode() & 0o7777, 0o644);

    // A second run: every file, mode and inode as it was.
    let before = snapshot(root.path());
    let again = install(root.path());
    assert_eq!(again.code, 0, "{again:#?}");
    assert_eq!(again.stdout.matches("unchanged").count(), 2, "{again:#?}");
    assert_eq!(snapshot(root.path()), before, "a second install changed the node's files");
    // No temporary files were left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 4, "{before:#?}");
}

#[test]
fn a_changed_file_is_replaced_again_but_the_first_original_is_kept() {
    let root = eks_root();
    let dir = root.path().join(PROVIDER_DIR);
    assert_eq!(install(root.path()).code, 0);
    // Something (nodeadm at boot) rewrites config.json.
    std::fs::write(dir.join("config.json"), "{\"rewritten\": true}\n").unwrap();
    let run = install(root.path());
    assert_eq!(run.code, 0, "{run:#?}");
    assert_eq!(std::fs::read_to_string(dir.join("config.json.orig")).unwrap(), NODEADM_CONFIG, "the first original was replaced");
    assert!(std::fs::read_to_string(dir.join("config.json")).unwrap().contains("\"*.dkr-ecr.*.on.aws\""));
}

#[test]
fn the_installed_copy_answers_as_the_kubelet_provider() {
    let root = eks_root();
    assert_eq!(install(root.path()).code, 0);
    let bin = root.path().join(PROVIDER_DIR).join("ecr-credential-provider");
    let mut cmd = Command::new(&bin);
    cmd.arg("get-credentials").env_clear().env("PATH", "/usr/bin:/bin").env("ECR_BROKER_SOCKET", "none");
    let request = br#"{"apiVersion":"credentialprovider.kubelet.k8s.io/v1","kind":"CredentialProviderRequest","image":"docker.io/library/busybox:1"}"#;
    let run = run_command(cmd, request, Duration::from_secs(30));
    // Provider mode (selected by the file name): a non-ECR image is refused on stderr, nothing on stdout.
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.starts_with("ecr-credential-provider: "), "{run:#?}");
    assert!(run.stderr.contains("not in an Amazon ECR registry"), "{run:#?}");
    assert!(run.stdout.is_empty(), "{run:#?}");
}

#[test]
fn a_missing_provider_folder_is_created_and_nothing_is_backed_up() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("etc/eks")).unwrap();
    for d in ["etc", "etc/eks"] {
        std::fs::set_permissions(root.path().join(d), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let run = install(root.path());
    assert_eq!(run.code, 0, "{run:#?}");
    let dir = root.path().join(PROVIDER_DIR);
    assert_eq!(std::fs::metadata(&dir).unwrap().mode() & 0o7777, 0o755);
    let mut names: Vec<String> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["config.json", "ecr-credential-provider"]);
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert!(config["providers"][0].get("env").is_none(), "{config:#}");
}

#[test]
fn a_root_that_is_not_an_eks_node_is_refused_and_left_untouched() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir(root.path().join("etc")).unwrap();
    let before = snapshot(root.path());
    let run = install(root.path());
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("does not look like an EKS node"), "{run:#?}");
    assert_eq!(snapshot(root.path()), before);

    let missing = root.path().join("nowhere");
    let run = install(&missing);
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("nowhere"), "{run:#?}");
}

#[test]
fn a_provider_folder_others_can_write_or_a_linked_one_is_refused() {
    let root = eks_root();
    let dir = root.path().join(PROVIDER_DIR);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let before = snapshot(root.path());
    let run = install(root.path());
    assert_eq!(run.code, 1, "{run:#?}");
    assert!(run.stderr.contains("writable by others"), "{run:#?}");
    assert_eq!(snapshot(root.path()), before, "files changed in a folder others can write");

    // /etc/eks as a link to somewhere else.
    let root = eks_root();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::rename(root.path().join("etc/eks"), elsewhere.path().join("eks")).unwrap();
    std::os::unix::fs::symlink(elsewhere.path().join("eks"), root.path().join("etc/eks")).unwrap();
    let before = snapshot(elsewhere.path());
    let run = install(root.path());
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(snapshot(elsewhere.path()), before, "files changed through a link");
}

#[test]
fn install_needs_root_option() {
    let run = helper(&["kubelet", "install"]);
    assert_ne!(run.code, 0, "{run:#?}");
    assert!(run.stderr.contains("--root"), "{run:#?}");
}

#[test]
fn broker_uid_lands_in_the_provider_env_once_beside_the_nodes_own() {
    let root = eks_root();
    let dir = root.path().join(PROVIDER_DIR);
    let r = root.path().to_str().unwrap();
    for uid in ["4242", "65532"] {
        let run = helper(&["kubelet", "install", "--root", r, "--broker-uid", uid]);
        assert_eq!(run.code, 0, "{run:#?}");
    }
    let config: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let env = config["providers"][0]["env"].as_array().unwrap();
    let named = |n: &str| env.iter().filter(|e| e["name"] == n).map(|e| e["value"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    assert_eq!(named("ECR_BROKER_UID"), vec!["65532".to_string()], "{config:#}");
    assert_eq!(named("AWS_PROFILE"), vec!["hybrid".to_string()], "{config:#}");
    let bad = helper(&["kubelet", "install", "--root", r, "--broker-uid", "nobody"]);
    assert_eq!(bad.code, 1, "{bad:#?}");
}
