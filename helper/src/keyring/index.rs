//! The side list of what the native keyring holds (server URL -> user name, never a secret),
//! `keyring-index.json` in the cache folder, because the kernel keyring cannot list its
//! entries. Each change is a read-modify-write of the whole file under an exclusive `flock` on
//! `keyring-index.lock` beside it (0600, in the 0700 cache folder), so concurrent `store`s and
//! `erase`s never lose each other's entries.

use ecr_cred::cache::{read_private, write_private};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const INDEX: &str = "keyring-index.json";
const LOCK: &str = "keyring-index.lock";
/// No index is larger than this.
const MAX_BYTES: u64 = 1 << 20;
/// How long a change waits for another helper's change before giving up.
const LOCK_WAIT: Duration = Duration::from_secs(10);

fn folder() -> Option<PathBuf> {
    ecr_cred::cache::TokenCache::open_default().map(|c| c.dir().to_path_buf())
}

/// Server URL -> user name; empty when there is no index or it is not trusted.
pub fn read() -> BTreeMap<String, String> {
    folder().map(|d| read_in(&d)).unwrap_or_default()
}

fn read_in(dir: &Path) -> BTreeMap<String, String> {
    read_private(&dir.join(INDEX), MAX_BYTES).ok().flatten().and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default()
}

/// Apply `change` to the index under the lock. A failure is a warning: the keyring entry
/// itself is already stored or erased, only `list` misses it.
pub fn update(change: impl FnOnce(&mut BTreeMap<String, String>)) {
    let Some(dir) = folder() else { return };
    if let Err(e) = update_in(&dir, change) {
        tracing::warn!("could not update {}: {e}", dir.join(INDEX).display());
    }
}

fn update_in(dir: &Path, change: impl FnOnce(&mut BTreeMap<String, String>)) -> Result<(), String> {
    let _lock = lock(&dir.join(LOCK))?;
    let mut index = read_in(dir);
    change(&mut index);
    write_private(&dir.join(INDEX), serde_json::to_string_pretty(&index).expect("serializes").as_bytes()).map_err(|e| e.to_string())
}

/// An exclusive `flock` on `path`, released when the file is dropped. The file is opened
/// without following a link and without blocking (a FIFO planted there cannot hang us), and
/// must be a regular file of ours.
fn lock(path: &Path) -> Result<File, String> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("cannot open its lock {}: {e}", path.display()))?;
    let meta = f.metadata().map_err(|e| e.to_string())?;
    if !meta.is_file() || meta.uid() != ecr_cred::sys::euid() {
        return Err(format!("its lock {} is not a regular file of ours", path.display()));
    }
    let start = Instant::now();
    loop {
        match f.try_lock() {
            Ok(()) => return Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => {}
            Err(std::fs::TryLockError::Error(e)) => return Err(format!("cannot lock {}: {e}", path.display())),
        }
        if start.elapsed() > LOCK_WAIT {
            return Err(format!("{} is held by another process for more than {}s", path.display(), LOCK_WAIT.as_secs()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
