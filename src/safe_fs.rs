//! Files and folders on paths another local user may have prepared for us: open a file we own
//! without following a link or blocking on a special file, and make a private folder without
//! ever changing the mode of one we did not just create.
//!
//! Every open uses `O_NOFOLLOW | O_NONBLOCK`: a symlink is refused, and a FIFO or device opens
//! at once (or fails) instead of blocking until someone writes to it; `fstat` then refuses
//! anything but a regular file owned by us. A folder is used only if it is ours and nobody
//! else can write to it, and its parent cannot let anyone else swap it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Our effective uid.
pub fn euid() -> u32 {
    crate::sys::euid()
}

/// Open flags for a file on a path we do not fully control.
const SAFE_FLAGS: i32 = libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC;

/// Is this file a regular file of ours? `Err` says why not.
fn check_regular_and_ours(f: &File) -> Result<std::fs::Metadata, String> {
    let meta = f.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else if kind.is_dir() {
            "a folder"
        } else {
            "a special file"
        };
        return Err(format!("{what}, not a regular file"));
    }
    if meta.uid() != euid() {
        return Err(format!("owned by uid {}, not by us", meta.uid()));
    }
    Ok(meta)
}

/// Read a file only if it is a regular file (not a link, FIFO or device), ours, closed to
/// others and at most `max` bytes. `Ok(None)` when it does not exist; `Err` says why it is
/// not trusted. Never blocks on a special file.
pub fn read_private(path: &Path, max: u64) -> Result<Option<String>, String> {
    let Some(f) = open_no_follow(path)? else { return Ok(None) };
    let meta = check_regular_and_ours(&f)?;
    if meta.mode() & 0o077 != 0 {
        return Err(format!("mode {:o} lets others read it", meta.mode() & 0o777));
    }
    read_at_most(f, meta.len(), max).map(Some)
}

/// Read a system file that is not ours (`/etc/passwd`, `/etc/group`): only a regular file (not
/// a link, FIFO or device), at most `max` bytes. `Ok(None)` when it does not exist; `Err` says
/// why it is not read. Never blocks on a special file.
pub fn read_system_file(path: &Path, max: u64) -> Result<Option<String>, String> {
    let Some(f) = open_no_follow(path)? else { return Ok(None) };
    let meta = f.metadata().map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_file() {
        return Err(if meta.file_type().is_fifo() { "a FIFO, not a regular file" } else { "not a regular file" }.into());
    }
    read_at_most(f, meta.len(), max).map(Some)
}

/// Open `path` for reading without following a link or blocking on a special file;
/// `Ok(None)` when it does not exist.
fn open_no_follow(path: &Path) -> Result<Option<File>, String> {
    match OpenOptions::new().read(true).custom_flags(SAFE_FLAGS).open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Err("a symbolic link, not a regular file".into()),
        Err(e) => Err(format!("cannot open: {e}")),
    }
}

/// Read a regular file of `len` bytes (from fstat) as text, at most `max` bytes.
fn read_at_most(f: File, len: u64, max: u64) -> Result<String, String> {
    if len > max {
        return Err(format!("{len} bytes is too large"));
    }
    let mut text = String::new();
    // A regular file never answers EAGAIN, so O_NONBLOCK does not matter for the read; the
    // limit still holds if the file grows between fstat and read.
    f.take(max + 1).read_to_string(&mut text).map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > max {
        return Err("grew too large while being read".into());
    }
    Ok(text)
}

/// Replace `path` atomically with `bytes`: a 0600 temporary file beside it (created new, never
/// through a link), synced, renamed over `path`.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let _ = fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut f = OpenOptions::new().write(true).create_new(true).mode(0o600).custom_flags(SAFE_FLAGS).open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    };
    write().inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Open (creating it 0600 if needed) a lock file: never through a link, never blocking on a
/// FIFO or device, and only if the result is a regular file of ours.
pub fn open_lock_file(path: &Path) -> std::io::Result<File> {
    // Read and write: a FIFO then opens at once (write-only would fail with ENXIO, or block
    // without O_NONBLOCK) and fstat can name it.
    let f = OpenOptions::new().create(true).truncate(false).read(true).write(true).mode(0o600).custom_flags(SAFE_FLAGS).open(path)?;
    check_regular_and_ours(&f).map_err(|why| std::io::Error::other(format!("{}: {why}", path.display())))?;
    Ok(f)
}

/// Why a folder may be used only by its owner: `Err` if `meta` is writable by group or others.
fn closed_to_writers(meta: &std::fs::Metadata) -> Result<(), String> {
    if meta.mode() & 0o022 != 0 {
        return Err(format!("mode {:o} lets other users write to it", meta.mode() & 0o7777));
    }
    Ok(())
}

/// A folder is safe to keep our files in if it is a folder owned by us, no one else can write
/// to it, and the entry naming it cannot be swapped by another user: the name is not a link
/// owned by someone else, and its parent belongs to us or root and is either closed to other
/// writers or sticky (then only the entry's owner can rename it). `Err` says why not.
pub fn check_private_dir(dir: &Path) -> Result<(), String> {
    let me = euid();
    let entry = fs::symlink_metadata(dir).map_err(|e| format!("cannot stat: {e}"))?;
    if entry.file_type().is_symlink() && entry.uid() != me && entry.uid() != 0 {
        return Err(format!("a symbolic link owned by uid {}", entry.uid()));
    }
    let meta = fs::metadata(dir).map_err(|e| format!("cannot stat: {e}"))?;
    if !meta.is_dir() {
        return Err("not a folder".into());
    }
    if meta.uid() != me {
        return Err(format!("owned by uid {}, not by us", meta.uid()));
    }
    closed_to_writers(&meta)?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        let p = fs::metadata(parent).map_err(|e| format!("cannot stat {}: {e}", parent.display()))?;
        if p.uid() != me && p.uid() != 0 {
            return Err(format!("its folder {} belongs to uid {}", parent.display(), p.uid()));
        }
        if p.mode() & libc::S_ISVTX == 0 {
            closed_to_writers(&p).map_err(|why| format!("its folder {}: {why}", parent.display()))?;
        }
    }
    Ok(())
}

/// Make `dir` a folder for our private files: create it 0700 if it is missing (missing
/// parents too, 0700), then check it with [`check_private_dir`]. An existing folder is used
/// as it is or refused; its mode is never changed.
pub fn private_dir(dir: &Path) -> Result<(), String> {
    private_dir_with_mode(dir, 0o700)
}

/// As [`private_dir`], creating `dir` (not its parents) with `mode` (e.g. 0711 for a socket
/// folder others must traverse); still never writable by others.
pub fn private_dir_with_mode(dir: &Path, mode: u32) -> Result<(), String> {
    if fs::symlink_metadata(dir).is_err() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        // Not recursive: if someone else made it first, mkdir fails and the checks below decide.
        match fs::DirBuilder::new().mode(mode & 0o755).create(dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(format!("cannot create: {e}")),
        }
    }
    check_private_dir(dir)
}

/// Refuse to put a file of ours (a socket, a state file) in `dir` if another user could write
/// there: `dir` (when it exists) must belong to us or root and be closed to other writers,
/// sticky or not. `Err` says why.
pub fn check_parent_for_our_file(dir: &Path) -> Result<(), String> {
    let meta = match fs::metadata(dir) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot stat {}: {e}", dir.display())),
    };
    if !meta.is_dir() {
        return Err(format!("{} is not a folder", dir.display()));
    }
    if meta.uid() != euid() && meta.uid() != 0 {
        return Err(format!("{} belongs to uid {}", dir.display(), meta.uid()));
    }
    closed_to_writers(&meta).map_err(|why| format!("{}: {why}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mkfifo(path: &Path) {
        crate::sys::mkfifo(path).unwrap();
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("f");
        mkfifo(&fifo);
        let err = read_private(&fifo, 100).unwrap_err();
        assert!(err.contains("FIFO"), "{err}");
        assert!(open_lock_file(&fifo).is_err(), "a FIFO is no lock file");
    }

    #[test]
    fn a_symlinked_lock_file_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        std::os::unix::fs::symlink(&target, tmp.path().join("lock")).unwrap();
        assert!(open_lock_file(&tmp.path().join("lock")).is_err());
        assert!(!target.exists(), "nothing created through the link");
    }

    #[test]
    fn a_folder_open_to_writers_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(private_dir(tmp.path()).unwrap_err().contains("write"));
        assert_eq!(fs::metadata(tmp.path()).unwrap().mode() & 0o7777, 0o1777, "mode untouched");
    }

    #[test]
    fn a_new_folder_is_0700_and_a_readable_one_of_ours_is_used_as_is() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o755, "never changed");
    }

    #[test]
    fn a_folder_inside_a_world_writable_non_sticky_folder_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o777)).unwrap();
        let err = private_dir(&tmp.path().join("cache")).unwrap_err();
        assert!(err.contains("its folder"), "{err}");
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        private_dir(&tmp.path().join("cache")).unwrap();
    }
}
