//! The record of what `login` added to docker's and containers' config, so `logout` takes out
//! exactly that: `$RUNNER_TEMP/ecr-cred-login.json` on a CI runner (the job's own folder, which
//! the runner empties after the job), else `${XDG_STATE_HOME:-~/.local/state}/ecr-cred/login.json`.
//!
//! It holds each changed file's previous content (which may include other registries'
//! credentials), so it is written 0600, atomically, only in a folder that belongs to this user
//! and no one else may write, and read only if it is a regular file of ours (never through a
//! link, never blocking on a FIFO). `logout` removes it once everything is taken out.

use crate::configure::FileChange;
use std::fs::{self, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

const FILE_NAME: &str = "ecr-cred-login.json";
/// Far more than any job's logins write (each holds a copy of a small config file).
const MAX_BYTES: u64 = 16 * 1024 * 1024;

#[derive(serde::Serialize, serde::Deserialize, Default)]
struct Contents {
    version: u32,
    changes: Vec<FileChange>,
}

pub struct RecordFile {
    path: PathBuf,
}

/// Is `dir` a folder of this user that nobody else may write?
fn check_private_dir(dir: &Path) -> Result<(), String> {
    let meta = fs::symlink_metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let me = ecr_cred::sys::euid();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not a folder of this user that only it may write: refusing to keep the login record there",
            dir.display()
        ));
    }
    Ok(())
}

impl RecordFile {
    /// Where the record lives; with `create`, the state folder is made (0700) if missing.
    pub fn locate(create: bool) -> Result<RecordFile, String> {
        let (dir, runner) = ecr_cred::paths::login_record_dir().ok_or("cannot tell this user's home folder (set HOME)")?;
        if runner {
            check_private_dir(&dir)?;
            return Ok(RecordFile { path: dir.join(FILE_NAME) });
        }
        if create && fs::symlink_metadata(&dir).is_err() {
            fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        if fs::symlink_metadata(&dir).is_ok() || create {
            check_private_dir(&dir)?;
        }
        Ok(RecordFile { path: dir.join("login.json") })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The changes recorded, oldest first; none if there is no record.
    pub fn load(&self) -> Result<Vec<FileChange>, String> {
        let fail = |what: String| format!("login record {}: {what}", self.path.display());
        let mut f = match OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC).open(&self.path)
        {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(fail(format!("cannot be opened ({e})"))),
        };
        let meta = f.metadata().map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() || meta.uid() != ecr_cred::sys::euid() {
            return Err(fail("is not a regular file of this user; ignored".into()));
        }
        let mut text = String::new();
        Read::by_ref(&mut f).take(MAX_BYTES + 1).read_to_string(&mut text).map_err(|e| fail(e.to_string()))?;
        if text.len() as u64 > MAX_BYTES {
            return Err(fail("is too large".into()));
        }
        let c: Contents = serde_json::from_str(&text).map_err(|e| fail(format!("is not a record this version understands ({e})")))?;
        Ok(c.changes)
    }

    /// Add `changes` to the record.
    pub fn append(&self, changes: &[FileChange]) -> Result<(), String> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut all = self.load()?;
        all.extend_from_slice(changes);
        self.replace(&all)
    }

    /// Make the record hold exactly `changes` (none: remove it).
    pub fn replace(&self, changes: &[FileChange]) -> Result<(), String> {
        let fail = |what: String| format!("login record {}: {what}", self.path.display());
        if changes.is_empty() {
            return match fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(fail(format!("cannot be removed ({e})"))),
                _ => Ok(()),
            };
        }
        let text = serde_json::to_vec_pretty(&Contents { version: 1, changes: changes.to_vec() }).map_err(|e| fail(e.to_string()))?;
        let tmp = self.path.with_file_name(format!(".{FILE_NAME}.{}.tmp", std::process::id()));
        let _ = fs::remove_file(&tmp);
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.path)
        })();
        written.map_err(|e| {
            let _ = fs::remove_file(&tmp);
            fail(format!("cannot be written ({e})"))
        })
    }
}
