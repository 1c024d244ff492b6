//! Every `unsafe` call into libc of the library and the helper, each behind a safe function
//! with its reason (the daemon's own socket code is the daemon's). Nothing else in `src/` or
//! `helper/` writes `unsafe`.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

/// Our effective uid.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Our real uid.
pub fn uid() -> u32 {
    // SAFETY: getuid cannot fail and touches no memory of ours.
    unsafe { libc::getuid() }
}

/// The home folder of the user `uid` in the password database (NSS). Only dynamically linked
/// builds call this (see [`crate::users`]).
pub fn nss_home_of(uid: u32) -> Option<PathBuf> {
    // SAFETY: getpwuid_r writes only into the buffers we hand it; pw_dir points into `buf`,
    // which outlives the CStr read from it.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_dir.is_null() {
            return None;
        }
        let dir = std::ffi::CStr::from_ptr(pwd.pw_dir);
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(dir.to_bytes())))
    }
}

/// The uid of the user `name` in the password database (NSS), if it exists.
pub fn nss_uid_by_name(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getpwnam_r writes only into the buffers we hand it.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
    }
}

/// The gid of the group `name` in the group database (NSS), if it exists.
pub fn nss_gid_by_name(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: getgrnam_r writes only into the buffers we hand it.
    unsafe {
        let mut grp: libc::group = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 16384];
        let mut result: *mut libc::group = std::ptr::null_mut();
        let rc = libc::getgrnam_r(name.as_ptr(), &mut grp, buf.as_mut_ptr(), buf.len(), &mut result);
        (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
    }
}

/// The groups of the user `uid` in the group database (NSS, `getgrouplist`): empty if the
/// uid has no password entry.
pub fn nss_groups_of(uid: u32) -> Vec<u32> {
    // SAFETY: getpwuid_r and getgrouplist write only into buffers we own and size.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as libc::c_char; 4096];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) != 0 || result.is_null() {
            return Vec::new();
        }
        // gid_t on Linux, c_int on macOS: the same size, so the casts are exact.
        let mut n: libc::c_int = 64;
        let mut groups = vec![0u32; n as usize];
        if libc::getgrouplist(pwd.pw_name, pwd.pw_gid as _, groups.as_mut_ptr() as *mut _, &mut n) < 0 {
            groups.resize(n.max(0) as usize, 0);
            if libc::getgrouplist(pwd.pw_name, pwd.pw_gid as _, groups.as_mut_ptr() as *mut _, &mut n) < 0 {
                return Vec::new();
            }
        }
        groups.truncate(n.max(0) as usize);
        groups
    }
}

/// No core dump of this process, and no ptrace or /proc/PID/mem by other processes of the same
/// user (tokens pass through it). Linux only; elsewhere nothing.
pub fn forbid_core_dumps_and_ptrace() {
    // SAFETY: prctl(PR_SET_DUMPABLE, 0) only changes a flag of this process.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
    }
}

/// Attach the user's session keyring (`_uid_ses.<uid>`, keyrings(7)) to a process that has
/// none, by asking the kernel for it with "create". Linux only.
#[cfg(target_os = "linux")]
pub fn attach_session_keyring() {
    const KEYCTL_GET_KEYRING_ID: libc::c_long = 0;
    const KEY_SPEC_SESSION_KEYRING: libc::c_long = -3;
    // SAFETY: keyctl(GET_KEYRING_ID) takes two integers and touches no memory of ours.
    unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_SESSION_KEYRING, 1 as libc::c_long) };
}

/// Make a FIFO at `path` (mode 0600). Tests use it to plant special files.
pub fn mkfifo(path: &Path) -> std::io::Result<()> {
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
    // SAFETY: a valid C string that lives across the call.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A Unix stream socket (close-on-exec) connected to `socket`, where `connect` itself gives
/// up after `timeout`: a listener whose queue is full (it stopped accepting) would otherwise
/// block it for good. On Linux `SO_SNDTIMEO` bounds a Unix stream `connect`, which then fails
/// with `EAGAIN` (`WouldBlock`).
pub fn connect_unix_within(socket: &Path, timeout: std::time::Duration) -> std::io::Result<UnixStream> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let path = socket.as_os_str().as_bytes();
    // SAFETY: sockaddr_un is plain data; all zeroes is a valid value.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if path.len() >= addr.sun_path.len() || path.contains(&0) {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "socket path too long or not a path"));
    }
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (d, s) in addr.sun_path.iter_mut().zip(path) {
        *d = *s as libc::c_char;
    }
    // SAFETY: a new descriptor, owned by the UnixStream at once (closed on every path).
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let stream = unsafe { UnixStream::from_raw_fd(fd) };
    stream.set_write_timeout(Some(timeout))?;
    let len = (std::mem::size_of_val(&addr) - addr.sun_path.len() + path.len() + 1) as libc::socklen_t;
    // SAFETY: addr is a valid sockaddr_un and len covers the path and its NUL.
    if unsafe { libc::connect(stream.as_raw_fd(), (&addr as *const libc::sockaddr_un).cast(), len) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileTypeExt;

    #[test]
    fn mkfifo_makes_a_fifo_and_refuses_an_existing_path() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("f");
        mkfifo(&p).unwrap();
        assert!(std::fs::symlink_metadata(&p).unwrap().file_type().is_fifo());
        assert_eq!(mkfifo(&p).unwrap_err().kind(), std::io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn connect_to_nothing_is_not_found_and_a_long_path_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let e = connect_unix_within(&tmp.path().join("none.sock"), std::time::Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
        let long = tmp.path().join("x".repeat(200));
        let e = connect_unix_within(&long, std::time::Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_connected_socket_is_close_on_exec() {
        use std::os::fd::AsRawFd;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("s.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&p).unwrap();
        let s = connect_unix_within(&p, std::time::Duration::from_secs(1)).unwrap();
        let flags = std::fs::read_to_string(format!("/proc/self/fdinfo/{}", s.as_raw_fd())).unwrap();
        let flags = flags.lines().find_map(|l| l.strip_prefix("flags:")).unwrap().trim().to_string();
        let flags = u32::from_str_radix(&flags, 8).unwrap();
        assert_ne!(flags & libc::O_CLOEXEC as u32, 0, "flags {flags:o}");
    }

    #[test]
    fn our_uids_and_the_root_user() {
        assert_eq!(euid(), std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m)).unwrap());
        assert_eq!(nss_uid_by_name("root"), Some(0));
        assert_eq!(nss_uid_by_name("no-such-user-ecr-cred"), None);
        assert_eq!(nss_uid_by_name("a\0b"), None);
        assert_eq!(nss_gid_by_name("root"), Some(0));
        assert_eq!(nss_gid_by_name("no-such-group-ecr-cred"), None);
        assert!(nss_groups_of(0).contains(&0));
    }
}
