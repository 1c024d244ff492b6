//! `docker-credential-ecr kubelet install --root DIR`: put this binary and its kubelet
//! `CredentialProviderConfig` where an EKS node's kubelet looks for them.
//!
//! The EKS-optimized AMIs (Amazon Linux 2 and 2023) start kubelet with
//! `--image-credential-provider-bin-dir=/etc/eks/image-credential-provider` and
//! `--image-credential-provider-config=/etc/eks/image-credential-provider/config.json`, whose
//! provider is named `ecr-credential-provider`. Under `DIR` (the node's root: `/` on the node,
//! the host's root mounted into an init container) this writes
//!
//! - `etc/eks/image-credential-provider/ecr-credential-provider`: a copy of the running
//!   executable (kubelet runs it under that name, which selects provider mode), mode 0755;
//! - `etc/eks/image-credential-provider/config.json`: the provider configuration of
//!   `configure --kubelet` as JSON (the AMI's own file is JSON), with every partition's host
//!   form in `matchImages`. The `env` list of the original `ecr-credential-provider` entry
//!   (EKS hybrid nodes set `AWS_CONFIG_FILE`/`AWS_PROFILE` there) is kept. With
//!   `--broker-uid UID`, `ECR_BROKER_UID=UID` is set in that list (replacing an older value):
//!   the provider then trusts a broker socket owned by that uid (the DaemonSet's broker runs
//!   as 65532).
//!
//! Each original is kept once, as `<name>.orig` (a hard link to the original file, so its
//! bytes, mode and owner are exactly kept; a backup that exists is never replaced). A file
//! that already holds what we would write is left alone, so a second run changes nothing.
//! New content goes to a temporary file in the same folder, renamed into place: kubelet never
//! sees half a binary. Folders on the way that are links, or writable by anyone but root and
//! us, are refused.

use crate::reply::{Channel, Reply};
use serde_json::{json, Value};
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The EKS AMIs' provider folder, relative to the node's root.
pub const EKS_PROVIDER_DIR: &str = "etc/eks/image-credential-provider";
/// The provider's file name in that folder (the name the AMI's config.json uses).
const PROVIDER_FILE: &str = "ecr-credential-provider";
const CONFIG_FILE: &str = "config.json";
const BACKUP_SUFFIX: &str = ".orig";
/// Largest existing config.json read (to keep its provider's `env`).
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// The image patterns of packaging/kubernetes/credential-provider-config.yaml, in its order
/// (a unit test keeps the two equal).
pub const MATCH_IMAGES: &[&str] = &[
    "*.dkr.ecr.*.amazonaws.com",
    "*.dkr.ecr-fips.*.amazonaws.com",
    "*.dkr.ecr.*.amazonaws.com.cn",
    "*.dkr-ecr.*.on.aws",
    "*.dkr-ecr-fips.*.on.aws",
    "*.dkr-ecr.*.on.amazonwebservices.com.cn",
    "*.dkr.ecr.*.amazonaws.eu",
    "*.dkr.ecr.*.c2s.ic.gov",
    "*.dkr.ecr-fips.*.c2s.ic.gov",
    "*.dkr.ecr.*.sc2s.sgov.gov",
    "*.dkr.ecr-fips.*.sc2s.sgov.gov",
    "*.dkr.ecr.*.cloud.adc-e.uk",
    "*.dkr.ecr-fips.*.cloud.adc-e.uk",
    "*.dkr.ecr.*.csp.hci.ic.gov",
    "*.dkr.ecr-fips.*.csp.hci.ic.gov",
    "public.ecr.aws",
    "ecr-public.aws.com",
];

#[derive(clap::Parser, Debug)]
#[command(
    name = "docker-credential-ecr kubelet install",
    about = "Install this binary as the EKS node's ecr-credential-provider, with a config.json for every ECR host form"
)]
struct InstallArgs {
    /// The node's root folder: / on the node, or where the host's root is mounted.
    #[arg(long, value_name = "DIR")]
    root: PathBuf,
    /// The uid the node's broker runs as (the DaemonSet's: 65532): the provider's env gets
    /// ECR_BROKER_UID=UID, so it trusts a broker socket owned by that uid.
    #[arg(long, value_name = "UID")]
    broker_uid: Option<u32>,
}

/// `kubelet install ARGS...`: the report on stdout; errors (and usage errors, exit 1) on stderr.
pub fn run(args: &[String]) -> Reply {
    let argv = std::iter::once("docker-credential-ecr kubelet install".to_string()).chain(args.iter().cloned());
    match <InstallArgs as clap::Parser>::try_parse_from(argv) {
        Ok(parsed) => Reply::from_result("docker-credential-ecr kubelet install", install(&parsed.root, parsed.broker_uid)),
        // --help is an answer on stdout; a usage error is clap's message on stderr, exit 1.
        Err(e) if e.use_stderr() => Reply { channel: Channel::Stderr, text: e.render().to_string().into_bytes(), code: 1 },
        Err(e) => Reply::out(e.render().to_string()),
    }
}

fn install(root: &Path, broker_uid: Option<u32>) -> Result<String, String> {
    let meta = fs::metadata(root).map_err(|e| format!("{}: {e}", root.display()))?;
    if !meta.is_dir() {
        return Err(format!("{} is not a folder", root.display()));
    }
    let eks = root.join("etc/eks");
    if !fs::symlink_metadata(&eks).is_ok_and(|m| m.is_dir()) {
        return Err(format!(
            "{} is not a folder: {} does not look like an EKS node's root (EKS-optimized AMIs have /etc/eks); nothing was changed",
            eks.display(),
            root.display()
        ));
    }
    check_folder(&root.join("etc"))?;
    check_folder(&eks)?;
    let dir = root.join(EKS_PROVIDER_DIR);
    match fs::symlink_metadata(&dir) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::DirBuilder::new().mode(0o755).create(&dir).map_err(|e| format!("cannot create {} ({e})", dir.display()))?;
        }
        Err(e) => return Err(format!("{}: {e}", dir.display())),
    }
    check_folder(&dir)?;

    let exe = std::env::current_exe().map_err(|e| format!("cannot find this program's own file ({e})"))?;
    let binary = fs::read(&exe).map_err(|e| format!("cannot read this program ({}): {e}", exe.display()))?;
    let config_path = dir.join(CONFIG_FILE);
    let config = provider_config_json(with_broker_uid(kept_env(&config_path), broker_uid).as_ref());

    let mut report = String::new();
    report += &place(&dir.join(PROVIDER_FILE), &binary, 0o755)?;
    report += &place(&config_path, config.as_bytes(), 0o644)?;
    report += "kubelet runs the new provider from its next image pull; it reads config.json when it starts \
(restart kubelet for the new matchImages to apply).\n";
    Ok(report)
}

/// A folder we write in, or create files in, must be a real folder (not a link) that only
/// root or we may change.
fn check_folder(dir: &Path) -> Result<(), String> {
    let m = fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if m.file_type().is_symlink() {
        return Err(format!("{} is a symbolic link: refusing to install through it; nothing was changed", dir.display()));
    }
    if !m.is_dir() {
        return Err(format!("{} is not a folder; nothing was changed", dir.display()));
    }
    let me = ecr_cred::sys::euid();
    if m.uid() != 0 && m.uid() != me {
        return Err(format!("{} belongs to uid {}, not root: refusing to install there; nothing was changed", dir.display(), m.uid()));
    }
    if m.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is writable by others (mode {:04o}): refusing to install there; nothing was changed",
            dir.display(),
            m.mode() & 0o7777
        ));
    }
    Ok(())
}

/// The `env` of the `ecr-credential-provider` entry in an existing config.json, if any.
fn kept_env(path: &Path) -> Option<Value> {
    let f = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path).ok()?;
    if !f.metadata().ok()?.is_file() {
        return None;
    }
    let mut text = Vec::new();
    f.take(MAX_CONFIG_BYTES).read_to_end(&mut text).ok()?;
    let v: Value = serde_json::from_slice(&text).ok()?;
    let env = v.get("providers")?.as_array()?.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(PROVIDER_FILE))?.get("env")?;
    env.as_array().filter(|a| !a.is_empty()).map(|_| env.clone())
}

/// `env` with `ECR_BROKER_UID` set to `broker_uid` (an older entry of that name replaced), or
/// `env` unchanged without one.
fn with_broker_uid(env: Option<Value>, broker_uid: Option<u32>) -> Option<Value> {
    let Some(uid) = broker_uid else { return env };
    let name = ecr_cred::broker::BROKER_UID_ENV;
    let mut list: Vec<Value> = env.and_then(|e| e.as_array().cloned()).unwrap_or_default();
    list.retain(|e| e.get("name").and_then(Value::as_str) != Some(name));
    list.push(json!({ "name": name, "value": uid.to_string() }));
    Some(Value::Array(list))
}

/// Our config.json: the same provider as packaging/kubernetes/credential-provider-config.yaml.
pub fn provider_config_json(env: Option<&Value>) -> String {
    let mut provider = json!({
        "name": PROVIDER_FILE,
        "matchImages": MATCH_IMAGES,
        "defaultCacheDuration": "6h",
        "apiVersion": "credentialprovider.kubelet.k8s.io/v1",
        "args": ["get-credentials"],
    });
    if let Some(env) = env {
        provider["env"] = env.clone();
    }
    let config = json!({
        "apiVersion": "kubelet.config.k8s.io/v1",
        "kind": "CredentialProviderConfig",
        "providers": [provider],
    });
    let mut text = serde_json::to_string_pretty(&config).expect("a JSON value always encodes");
    text.push('\n');
    text
}

/// Make `dest` hold `bytes` with `mode`, keeping the first original as `<dest>.orig`.
fn place(dest: &Path, bytes: &[u8], mode: u32) -> Result<String, String> {
    let shown = dest.display();
    if same_content(dest, bytes, mode) {
        return Ok(format!("{shown}: already installed, unchanged\n"));
    }
    let backup = sibling(dest, BACKUP_SUFFIX);
    let mut kept = String::new();
    if fs::symlink_metadata(dest).is_ok() {
        // linkat without AT_SYMLINK_FOLLOW: a link is kept as the link it is.
        match fs::hard_link(dest, &backup) {
            Ok(()) => kept = format!(" (the original is kept as {})", backup.display()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                kept = format!(" (the first original stays in {})", backup.display())
            }
            Err(e) => return Err(format!("cannot keep the original {shown} as {} ({e}); nothing was changed", backup.display())),
        }
    }
    let tmp = sibling(dest, &format!(".{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let written = (|| {
        // create_new: never through a link someone left at the temporary name.
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        f.write_all(bytes)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()?;
        fs::rename(&tmp, dest)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(format!("cannot write {shown} ({e})"));
    }
    if let Some(dir) = dest.parent().and_then(|d| fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(format!("{shown}: installed{kept}\n"))
}

/// `dest` is a regular file (not a link) holding exactly `bytes`, with `mode`.
fn same_content(dest: &Path, bytes: &[u8], mode: u32) -> bool {
    let Ok(f) = OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(dest) else {
        return false;
    };
    let Ok(m) = f.metadata() else { return false };
    if !m.is_file() || m.len() != bytes.len() as u64 || m.mode() & 0o7777 != mode {
        return false;
    }
    let mut have = Vec::with_capacity(bytes.len());
    f.take(bytes.len() as u64 + 1).read_to_end(&mut have).is_ok() && have == bytes
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kubelet::PROVIDER_CONFIG;

    /// The JSON written to nodes lists exactly the YAML's image patterns, in order.
    #[test]
    fn match_images_are_those_of_the_shipped_yaml() {
        let yaml: Vec<&str> = PROVIDER_CONFIG
            .lines()
            .skip_while(|l| l.trim() != "matchImages:")
            .skip(1)
            .map_while(|l| l.trim().strip_prefix("- \"").and_then(|s| s.strip_suffix('"')))
            .collect();
        assert_eq!(yaml, MATCH_IMAGES);
        assert!(PROVIDER_CONFIG.contains("defaultCacheDuration: \"6h\""));
        assert!(PROVIDER_CONFIG.contains("apiVersion: kubelet.config.k8s.io/v1\n"));
    }
}
