//! `configure`: point docker's (and containers') configuration at this helper for ECR registries.
//!
//! Adds `"credHelpers": {"<host>": "ecr"}` entries to `$DOCKER_CONFIG/config.json` (default
//! `~/.docker/config.json`) and, with `--containers`, to containers' persistent auth file
//! (`$REGISTRY_AUTH_FILE`, else `${XDG_CONFIG_HOME:-~/.config}/containers/auth.json`).
//!
//! `--remove` takes this helper's entries for the hosts out again (of both files, where they
//! exist), and nothing else. `--profile NAME` / `--role-arn ARN` also route the hosts to that
//! identity in the user's config file (see [`crate::user_config`]), written the same way.
//!
//! Every other key and value is kept as it was, in its order (serde_json's `preserve_order`),
//! with the file's own indentation. A file is only written when something changes: first a
//! backup `<file>.bak` of the previous bytes, then the new content, each through a temporary
//! file in the same folder renamed into place, with the previous file's mode (and owner, when
//! we may). Everything that can fail (reading, parsing, creating the temporary files) happens
//! for every file before any file is replaced, so an error leaves all of them untouched.

use crate::reply::Reply;
use ecr_cred::registry::RegistryHost;
use serde_json::{Map, Value};
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The value docker and containers/image turn into `docker-credential-ecr`.
const HELPER_NAME: &str = "ecr";
const PUBLIC_HOST: &str = "public.ecr.aws";

#[derive(clap::Args, Debug, Default)]
#[command(about = "Point docker (and containers) configuration at this helper for ECR registries")]
pub struct ConfigureArgs {
    /// An ECR registry to send to this helper (repeatable), e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com.
    #[arg(long = "registry", value_name = "HOST")]
    pub registry: Vec<String>,
    /// Also every registry this user has used or configured, and public.ecr.aws.
    #[arg(long)]
    pub all_known: bool,
    /// Also containers' auth file (podman, skopeo, buildah): $REGISTRY_AUTH_FILE, else ~/.config/containers/auth.json.
    #[arg(long)]
    pub containers: bool,
    /// Show what would change, as a diff; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the kubelet credential provider configuration for this helper and exit.
    #[arg(long)]
    pub kubelet: bool,
    /// Take the hosts' entries for this helper out of docker's and containers' config instead (only those entries).
    #[arg(long, conflicts_with_all = ["all_known", "kubelet", "profile", "role_arn"])]
    pub remove: bool,
    /// Fetch these registries' tokens with this AWS profile: writes an identity and a rule to ~/.config/ecr-cred/config.toml.
    #[arg(long, value_name = "NAME")]
    pub profile: Option<String>,
    /// Fetch these registries' tokens by assuming this role (with --profile's credentials, else the default chain).
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// The external id the role's trust policy asks for (with --role-arn).
    #[arg(long, value_name = "ID", requires = "role_arn")]
    pub external_id: Option<String>,
}

/// The report (or `--kubelet`'s configuration) on stdout; errors on stderr.
pub fn run(args: &ConfigureArgs) -> Reply {
    if args.kubelet {
        return Reply::out(crate::kubelet::PROVIDER_CONFIG);
    }
    Reply::from_result("docker-credential-ecr configure", configure(args))
}

fn configure(args: &ConfigureArgs) -> Result<String, String> {
    let hosts = requested_hosts(args)?;
    let mut targets = vec![docker_config_path()?];
    // Removing looks at containers' file too: an entry there is as much ours.
    if args.containers || args.remove {
        let p = containers_auth_path()?;
        if !targets.contains(&p) {
            targets.push(p);
        }
    }
    // Read, check and compute every file before touching any.
    let mut plans: Vec<Plan> = targets.into_iter().map(|t| Plan::make(t, &hosts, args.remove)).collect::<Result<_, _>>()?;
    let wanted = crate::user_config::Wanted {
        profile: args.profile.clone(),
        role_arn: args.role_arn.clone(),
        external_id: args.external_id.clone(),
    };
    if !wanted.is_empty() {
        plans.push(Plan::user_config(&hosts, &wanted)?);
    }

    let mut out = String::new();
    if args.dry_run {
        for p in &plans {
            if p.changed() {
                let old = p.old.as_ref().map(|o| String::from_utf8_lossy(&o.bytes).into_owned()).unwrap_or_default();
                let new = String::from_utf8_lossy(&p.new_bytes);
                let from = if p.old.is_some() { p.real.display().to_string() } else { "/dev/null".to_string() };
                out.push_str(&unified_diff(&old, &new, &from, &p.real.display().to_string(), 3));
            } else {
                out.push_str(&p.unchanged());
            }
        }
        out.push_str("(dry run: nothing was written)\n");
        return Ok(out);
    }

    let mut staged = Vec::new();
    for p in plans.iter().filter(|p| p.changed()) {
        staged.push(Staged::prepare(p)?);
    }
    for s in &mut staged {
        s.commit()?;
    }
    for p in &plans {
        out.push_str(&p.summary());
    }
    Ok(out)
}

/// What [`add_cred_helpers_recorded`] changed in one file: enough for [`undo_change`] to take
/// exactly that back out. It holds the file's previous content, which may include other
/// registries' credentials: keep it as private as the file (0600).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileChange {
    /// The file written (a symlink's target).
    pub file: PathBuf,
    /// The file did not exist before.
    pub created: bool,
    /// The `credHelpers` object itself was added.
    pub added_key: bool,
    pub added: Vec<String>,
    /// Host and the helper it named before.
    pub replaced: Vec<(String, String)>,
    /// The file's content before the change (`None`: it did not exist).
    pub before: Option<String>,
    /// SHA-256 (hex) of the file after the change.
    pub after_sha256: String,
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Add `credHelpers` entries for `hosts` to docker's config (and containers' auth file): what
/// `login` does for a CI job. Returns the report `configure` prints and what changed in each
/// file, for `logout`.
pub fn add_cred_helpers_recorded(hosts: &[String], containers: bool) -> Result<(String, Vec<FileChange>), String> {
    let args = ConfigureArgs { registry: hosts.to_vec(), containers, ..Default::default() };
    let hosts = requested_hosts(&args)?;
    let mut targets = vec![docker_config_path()?];
    if containers {
        let p = containers_auth_path()?;
        if !targets.contains(&p) {
            targets.push(p);
        }
    }
    let plans: Vec<Plan> = targets.into_iter().map(|t| Plan::make(t, &hosts, false)).collect::<Result<_, _>>()?;
    let mut staged = Vec::new();
    for p in plans.iter().filter(|p| p.changed()) {
        staged.push(Staged::prepare(p)?);
    }
    for s in &mut staged {
        s.commit()?;
    }
    let changes = plans
        .iter()
        .filter(|p| p.changed())
        .map(|p| FileChange {
            file: p.real.clone(),
            created: p.old.is_none(),
            added_key: p
                .old
                .as_ref()
                .and_then(|o| serde_json::from_slice::<Value>(&o.bytes).ok())
                .is_none_or(|v| v.get("credHelpers").is_none()),
            added: p.added.clone(),
            replaced: p.replaced.clone(),
            before: p.old.as_ref().map(|o| String::from_utf8_lossy(&o.bytes).into_owned()),
            after_sha256: sha256_hex(&p.new_bytes),
        })
        .collect();
    Ok((plans.iter().map(Plan::summary).collect(), changes))
}

/// Take back out what [`add_cred_helpers_recorded`] put into one file. A file exactly as that
/// left it gets its previous bytes back (or, if it created the file, is removed); a file
/// changed since keeps those changes and loses only the entries that were added (an entry that
/// was replaced gets its old helper back, unless it no longer names this one). A `.bak` of the
/// file as it was is written, as for adding. Returns the report.
pub fn undo_change(change: &FileChange) -> Result<String, String> {
    let path = &change.file;
    let fail = |what: String| format!("{}: {what}", path.display());
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(format!("{}: gone already\n", path.display())),
        Err(e) => return Err(fail(format!("cannot be read ({e})"))),
    };
    if !meta.is_file() {
        return Err(fail("is no longer a regular file; left alone".into()));
    }
    let bytes = fs::read(path).map_err(|e| fail(format!("cannot be read ({e})")))?;
    let old = Old { bytes, mode: meta.mode() & 0o7777, uid: meta.uid(), gid: meta.gid() };
    let unchanged_since = sha256_hex(&old.bytes) == change.after_sha256;
    if unchanged_since && change.created {
        fs::remove_file(path).map_err(|e| fail(format!("cannot be removed ({e})")))?;
        return Ok(format!("removed {} (login created it)\n", path.display()));
    }
    let previous = change.before.as_ref().filter(|_| unchanged_since).map(|b| b.as_bytes().to_vec());
    let (new_bytes, how) = match previous {
        Some(b) => (b, "restored as it was before login"),
        None => (take_out(&old.bytes, change).map_err(fail)?, "took out the entries login added"),
    };
    if new_bytes == old.bytes {
        return Ok(format!("{}: nothing to take out\n", path.display()));
    }
    let plan = Plan {
        path: path.clone(),
        real: path.clone(),
        old: Some(old),
        new_bytes,
        added: Vec::new(),
        replaced: Vec::new(),
        already: Vec::new(),
        removed: Vec::new(),
        notes: Vec::new(),
    };
    Staged::prepare(&plan)?.commit()?;
    Ok(format!("{}: {how} (previous content saved as {})\n", path.display(), plan.backup_path().display()))
}

/// `text` without the `credHelpers` entries `change` added, and with those it replaced put back.
fn take_out(bytes: &[u8], change: &FileChange) -> Result<Vec<u8>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("is not UTF-8 text ({e}); left alone"))?;
    let mut config = match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => m,
        _ => return Err("is no longer a JSON object; left alone".into()),
    };
    let Some(Value::Object(helpers)) = config.get_mut("credHelpers") else { return Ok(bytes.to_vec()) };
    let ours = |v: Option<&Value>| v.and_then(Value::as_str) == Some(HELPER_NAME);
    let mut touched = false;
    for h in &change.added {
        if ours(helpers.get(h)) {
            helpers.shift_remove(h);
            touched = true;
        }
    }
    for (h, before) in &change.replaced {
        if ours(helpers.get(h)) {
            helpers.insert(h.clone(), Value::String(before.clone()));
            touched = true;
        }
    }
    if !touched {
        return Ok(bytes.to_vec());
    }
    if helpers.is_empty() && change.added_key {
        config.shift_remove("credHelpers");
    }
    let mut buf = Vec::new();
    let indent = indent_of(text);
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, serde_json::ser::PrettyFormatter::with_indent(&indent));
    serde::Serialize::serialize(&Value::Object(config), &mut ser).map_err(|e| e.to_string())?;
    if text.ends_with('\n') {
        buf.push(b'\n');
    }
    Ok(buf)
}

/// The hosts asked for: `--registry` values in the order given, then with `--all-known` the
/// known ones and ECR Public; each once.
fn requested_hosts(args: &ConfigureArgs) -> Result<Vec<String>, String> {
    let mut hosts: Vec<String> = Vec::new();
    let mut push = |h: String| {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    };
    for r in &args.registry {
        push(canonical_host(r)?);
    }
    if args.all_known {
        for r in crate::credentials::known_registries() {
            push(r.host);
        }
        push(PUBLIC_HOST.to_string());
    }
    if hosts.is_empty() {
        return Err("no registry given: pass --registry <account>.dkr.ecr.<region>.amazonaws.com (repeatable) or --all-known".into());
    }
    Ok(hosts)
}

/// The host as docker looks it up in `credHelpers`: lower case, no scheme, path or trailing
/// dot; a port given is kept.
fn canonical_host(input: &str) -> Result<String, String> {
    let reg = RegistryHost::parse(input).ok_or_else(|| {
        format!(
            "{:?} is not an Amazon ECR registry (expected <account>.dkr.ecr.<region>.amazonaws.com or {PUBLIC_HOST}); nothing was changed",
            input.trim()
        )
    })?;
    let s = input.trim();
    let rest = s.split_once("://").map(|(_, r)| r).unwrap_or(s);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    Ok(match authority.split_once(':') {
        Some((_, port)) => format!("{}:{port}", reg.host),
        None => reg.host,
    })
}

fn no_home() -> String {
    "cannot tell this user's home folder (set HOME)".to_string()
}

/// docker's config file ([`ecr_cred::paths::docker_config_file`]).
fn docker_config_path() -> Result<PathBuf, String> {
    ecr_cred::paths::docker_config_file().ok_or_else(no_home)
}

/// containers' persistent auth file ([`ecr_cred::paths::containers_auth_file`]).
fn containers_auth_path() -> Result<PathBuf, String> {
    ecr_cred::paths::containers_auth_file().ok_or_else(no_home)
}

/// The file as it was.
struct Old {
    bytes: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
}

/// What one file gets.
struct Plan {
    /// The path as configured.
    path: PathBuf,
    /// The file actually written (a symlink's target: the link itself is kept).
    real: PathBuf,
    old: Option<Old>,
    new_bytes: Vec<u8>,
    added: Vec<String>,
    /// Host and the helper it named before.
    replaced: Vec<(String, String)>,
    already: Vec<String>,
    removed: Vec<String>,
    /// Further lines for the report.
    notes: Vec<String>,
}

impl Plan {
    /// The file at `path` as it is (a symlink's target), and its text.
    fn read(path: &Path) -> Result<(PathBuf, Option<Old>), String> {
        let fail = |p: &Path, what: String| format!("{}: {what}; nothing was changed", p.display());
        let real = match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => {
                fs::canonicalize(path).map_err(|e| fail(path, format!("is a symbolic link that cannot be followed ({e})")))?
            }
            _ => path.to_path_buf(),
        };
        let old = match fs::metadata(&real) {
            Ok(meta) => {
                if !meta.is_file() {
                    return Err(fail(&real, "is not a regular file".into()));
                }
                let bytes = fs::read(&real).map_err(|e| fail(&real, format!("cannot be read ({e})")))?;
                Some(Old { bytes, mode: meta.mode() & 0o7777, uid: meta.uid(), gid: meta.gid() })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(fail(&real, format!("cannot be read ({e})"))),
        };
        if let Some(o) = &old {
            std::str::from_utf8(&o.bytes).map_err(|e| fail(&real, format!("is not UTF-8 text ({e})")))?;
        }
        Ok((real, old))
    }

    /// The user's config file with `hosts` routed to `wanted`.
    fn user_config(hosts: &[String], wanted: &crate::user_config::Wanted) -> Result<Plan, String> {
        let path = ecr_cred::config::user_config_path().ok_or("cannot tell this user's config folder (set HOME)")?;
        let (real, old) = Plan::read(&path)?;
        let text = old.as_ref().map(|o| String::from_utf8_lossy(&o.bytes).into_owned()).unwrap_or_default();
        let registries: Vec<RegistryHost> = hosts.iter().filter_map(|h| RegistryHost::parse(h)).collect();
        let (new_text, notes) = crate::user_config::with_rules(&text, &registries, wanted)
            .map_err(|e| format!("{}: {e}; nothing was changed", real.display()))?;
        let new_bytes = if new_text == text { old.as_ref().map(|o| o.bytes.clone()).unwrap_or_default() } else { new_text.into_bytes() };
        Ok(Plan { path, real, old, new_bytes, added: Vec::new(), replaced: Vec::new(), already: Vec::new(), removed: Vec::new(), notes })
    }

    fn make(path: PathBuf, hosts: &[String], remove: bool) -> Result<Plan, String> {
        let fail = |p: &Path, what: String| format!("{}: {what}; nothing was changed", p.display());
        let (real, old) = Plan::read(&path)?;
        let text = match &old {
            Some(o) => std::str::from_utf8(&o.bytes).expect("checked by read"),
            None => "",
        };
        // Docker reads an empty file as an empty configuration.
        let mut config = if text.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(m)) => m,
                Ok(other) => return Err(fail(&real, format!("holds a JSON {}, not an object", kind(&other)))),
                Err(e) => return Err(fail(&real, format!("is not valid JSON ({e})"))),
            }
        };

        let (mut added, mut replaced, mut already, mut removed, mut notes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        if remove {
            if let Some(helpers) = config.get_mut("credHelpers") {
                let Value::Object(helpers) = helpers else {
                    return Err(fail(&real, format!("\"credHelpers\" is a JSON {}, not an object", kind(helpers))));
                };
                for h in hosts {
                    match helpers.get(h) {
                        Some(Value::String(s)) if s == HELPER_NAME => {
                            helpers.shift_remove(h);
                            removed.push(h.clone());
                        }
                        Some(other) => notes.push(format!("  kept     {h}: {other} (not this helper)")),
                        None => {}
                    }
                }
            }
        }
        let mut nothing_to_add = Map::new();
        let helpers = if remove {
            &mut nothing_to_add
        } else {
            match config.entry("credHelpers").or_insert_with(|| Value::Object(Map::new())) {
                Value::Object(h) => h,
                other => return Err(fail(&real, format!("\"credHelpers\" is a JSON {}, not an object", kind(other)))),
            }
        };
        for h in hosts.iter().filter(|_| !remove) {
            match helpers.get(h) {
                Some(Value::String(s)) if s == HELPER_NAME => already.push(h.clone()),
                Some(other) => replaced.push((h.clone(), other.as_str().map(str::to_string).unwrap_or_else(|| other.to_string()))),
                None => added.push(h.clone()),
            }
            helpers.insert(h.clone(), Value::String(HELPER_NAME.into()));
        }

        let new_bytes = if added.is_empty() && replaced.is_empty() && removed.is_empty() {
            old.as_ref().map(|o| o.bytes.clone()).unwrap_or_default()
        } else {
            let indent = indent_of(text);
            let mut buf = Vec::new();
            let fmt = serde_json::ser::PrettyFormatter::with_indent(&indent);
            let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
            serde::Serialize::serialize(&Value::Object(config), &mut ser).map_err(|e| fail(&real, e.to_string()))?;
            // Keep the file's final newline (docker writes none); a new file gets one.
            if text.trim().is_empty() || text.ends_with('\n') {
                buf.push(b'\n');
            }
            buf
        };
        Ok(Plan { path, real, old, new_bytes, added, replaced, already, removed, notes })
    }

    fn changed(&self) -> bool {
        match &self.old {
            Some(o) => o.bytes != self.new_bytes,
            None => !self.new_bytes.is_empty(),
        }
    }

    /// The report line of a file that stays as it is.
    fn unchanged(&self) -> String {
        if self.old.is_none() {
            format!("{}: does not exist; nothing to remove\n", self.shown())
        } else if self.already.is_empty() {
            let mut s = format!("{}: unchanged\n", self.shown());
            for n in &self.notes {
                s.push_str(&format!("{n}\n"));
            }
            s
        } else {
            format!("{}: already configured for {}\n", self.shown(), self.already.join(", "))
        }
    }

    fn backup_path(&self) -> PathBuf {
        sibling(&self.real, ".bak")
    }

    /// The file for messages: the path, and where a symlink leads.
    fn shown(&self) -> String {
        if self.real == self.path {
            self.path.display().to_string()
        } else {
            format!("{} (-> {})", self.path.display(), self.real.display())
        }
    }

    fn summary(&self) -> String {
        let mut s = String::new();
        if !self.changed() {
            return self.unchanged();
        }
        match &self.old {
            Some(_) => s.push_str(&format!("updated {} (previous content saved as {})\n", self.shown(), self.backup_path().display())),
            None => s.push_str(&format!("created {}\n", self.shown())),
        }
        for h in &self.added {
            s.push_str(&format!("  added    {h}: {HELPER_NAME}\n"));
        }
        for (h, before) in &self.replaced {
            s.push_str(&format!("  replaced {h}: {before:?} -> {HELPER_NAME:?}\n"));
        }
        for h in &self.already {
            s.push_str(&format!("  kept     {h}: {HELPER_NAME} (already configured)\n"));
        }
        for h in &self.removed {
            s.push_str(&format!("  removed  {h}\n"));
        }
        for n in &self.notes {
            s.push_str(&format!("{n}\n"));
        }
        s
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The indentation of the first indented member line (one level deep); a tab, as docker
/// writes, when there is none.
fn indent_of(text: &str) -> Vec<u8> {
    for line in text.lines().skip(1) {
        let ws: &str = &line[..line.len() - line.trim_start_matches([' ', '\t']).len()];
        if !ws.is_empty() && line.trim_start().starts_with('"') {
            return ws.as_bytes().to_vec();
        }
    }
    b"\t".to_vec()
}

/// `<path><suffix>` (same folder).
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(suffix);
    path.with_file_name(name)
}

/// A temporary file beside `dest` holding `bytes`, with `mode` (and the owner, when allowed).
fn write_temp(dest: &Path, tag: &str, bytes: &[u8], mode: u32, owner: Option<(u32, u32)>) -> std::io::Result<PathBuf> {
    let name = dest.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dest.with_file_name(format!(".{name}{tag}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?; // create_new: never through a link
    let result = (|| {
        f.write_all(bytes)?;
        if let Some((uid, gid)) = owner {
            let meta = f.metadata()?;
            if meta.uid() != uid || meta.gid() != gid {
                // Only root may give a file away; anyone else keeps the file as theirs.
                let _ = std::os::unix::fs::fchown(&f, Some(uid), Some(gid));
            }
        }
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        f.sync_all()
    })();
    match result {
        Ok(()) => Ok(tmp),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e)
        }
    }
}

/// One file's new content and backup, written beside it and not yet renamed into place.
/// Dropped uncommitted, it removes its temporary files and the folders it created.
struct Staged {
    dest: PathBuf,
    new_tmp: Option<PathBuf>,
    backup: Option<(PathBuf, PathBuf)>,
    backup_existed: bool,
    created_dirs: Vec<PathBuf>,
    committed: bool,
}

impl Staged {
    fn prepare(plan: &Plan) -> Result<Staged, String> {
        let dest = plan.real.clone();
        let fail = |what: String| format!("{}: {what}; nothing was changed", dest.display());
        let mut s =
            Staged { dest: dest.clone(), new_tmp: None, backup: None, backup_existed: false, created_dirs: Vec::new(), committed: false };
        let dir = dest.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf();
        match &plan.old {
            Some(old) => {
                // A file made read-only is meant to stay as it is, even for root.
                if old.mode & 0o222 == 0 {
                    return Err(fail(format!("is read-only (mode {:04o})", old.mode & 0o777)));
                }
                // Opening for writing (without truncating) changes nothing; it fails for a file
                // we may not write or one marked immutable.
                OpenOptions::new().write(true).open(&dest).map_err(|e| fail(format!("is not writable ({e})")))?;
                let bak = plan.backup_path();
                s.backup_existed = fs::symlink_metadata(&bak).is_ok();
                let owner = Some((old.uid, old.gid));
                let tmp = write_temp(&dest, ".bak", &old.bytes, old.mode, owner)
                    .map_err(|e| fail(format!("cannot write a backup in {} ({e})", dir.display())))?;
                s.backup = Some((tmp, bak));
                let tmp = write_temp(&dest, "", &plan.new_bytes, old.mode, owner)
                    .map_err(|e| fail(format!("cannot write in {} ({e})", dir.display())))?;
                s.new_tmp = Some(tmp);
            }
            None => {
                s.created_dirs = create_dirs(&dir).map_err(|e| fail(format!("cannot create folder {} ({e})", dir.display())))?;
                let tmp = write_temp(&dest, "", &plan.new_bytes, 0o600, None)
                    .map_err(|e| fail(format!("cannot write in {} ({e})", dir.display())))?;
                s.new_tmp = Some(tmp);
            }
        }
        Ok(s)
    }

    /// Rename the backup, then the new content, into place.
    fn commit(&mut self) -> Result<(), String> {
        let fail = |what: String| format!("{}: {what}", self.dest.display());
        if let Some((tmp, bak)) = &self.backup {
            fs::rename(tmp, bak).map_err(|e| fail(format!("cannot save the backup {} ({e}); nothing was changed", bak.display())))?;
        }
        let tmp = self.new_tmp.as_ref().expect("staged content");
        if let Err(e) = fs::rename(tmp, &self.dest) {
            if let (Some((_, bak)), false) = (&self.backup, self.backup_existed) {
                let _ = fs::remove_file(bak);
            }
            return Err(fail(format!("cannot be replaced ({e}); nothing was changed")));
        }
        self.committed = true;
        if let Some(dir) = self.dest.parent() {
            if let Ok(d) = fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some((tmp, _)) = &self.backup {
            let _ = fs::remove_file(tmp);
        }
        if let Some(tmp) = &self.new_tmp {
            let _ = fs::remove_file(tmp);
        }
        if !self.committed {
            for d in self.created_dirs.iter().rev() {
                let _ = fs::remove_dir(d);
            }
        }
    }
}

/// Create `dir` and its missing parents, each 0700; returns those created, outermost first.
fn create_dirs(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut missing = Vec::new();
    let mut d = Some(dir);
    while let Some(p) = d.filter(|p| !p.as_os_str().is_empty()) {
        if fs::symlink_metadata(p).is_ok() {
            break;
        }
        missing.push(p.to_path_buf());
        d = p.parent();
    }
    let mut created = Vec::new();
    for p in missing.into_iter().rev() {
        match fs::DirBuilder::new().mode(0o700).create(&p) {
            Ok(()) => created.push(p),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                for c in created.iter().rev() {
                    let _ = fs::remove_dir(c);
                }
                return Err(e);
            }
        }
    }
    Ok(created)
}

/// `old` to `new` as a unified diff (GNU `diff -u` format, `similar`'s), with `ctx` lines
/// of context, a line without its final newline marked `\ No newline at end of file`.
fn unified_diff(old: &str, new: &str, from: &str, to: &str, ctx: usize) -> String {
    similar::TextDiff::from_lines(old, new).unified_diff().context_radius(ctx).header(from, to).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_canonical_and_keep_ports() {
        assert_eq!(
            canonical_host("https://123456789012.DKR.ecr.us-east-1.amazonaws.com/v2/").unwrap(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com"
        );
        assert_eq!(
            canonical_host("123456789012.dkr.ecr.us-east-1.amazonaws.com:5443").unwrap(),
            "123456789012.dkr.ecr.us-east-1.amazonaws.com:5443"
        );
        assert_eq!(canonical_host("public.ecr.aws").unwrap(), "public.ecr.aws");
        assert!(canonical_host("docker.io").unwrap_err().contains("docker.io"));
    }

    #[test]
    fn diff_shows_only_the_change() {
        let old = "{\n\t\"a\": 1,\n\t\"b\": 2\n}";
        let new = "{\n\t\"a\": 1,\n\t\"b\": 2,\n\t\"c\": 3\n}\n";
        let d = unified_diff(old, new, "x", "x", 3);
        assert!(d.starts_with("--- x\n+++ x\n@@ -1,4 +1,5 @@\n"), "{d}");
        assert!(d.contains("\n \t\"a\": 1,\n-\t\"b\": 2\n-}\n\\ No newline at end of file\n"), "{d}");
        assert!(d.ends_with("\n+\t\"b\": 2,\n+\t\"c\": 3\n+}\n"), "{d}");
        assert_eq!(unified_diff("", "{}\n", "/dev/null", "y", 3), "--- /dev/null\n+++ y\n@@ -0,0 +1 @@\n+{}\n");
    }

    #[test]
    fn indentation_is_detected() {
        assert_eq!(indent_of("{\n    \"a\": 1\n}"), b"    ");
        assert_eq!(indent_of("{\"a\":1}"), b"\t");
    }
}
