//! Users and groups by name and number: the broker user's uid, a user's home folder, a
//! caller's groups, a group's gid.
//!
//! Dynamically linked builds ask glibc's name service switch (NSS), so LDAP/SSSD users and
//! groups are seen. Statically linked builds (`crt-static`, the release binaries) never call
//! NSS: a static glibc that loads the modules `/etc/nsswitch.conf` names (`systemd`, `sss`,
//! ...) can crash (SIGSEGV in `libnss_systemd.so.2` on Debian 12). They read `/etc/passwd`
//! and `/etc/group` themselves, in the format of glibc's `files` backend (colon-separated
//! fields, `#` comments), through [`crate::safe_fs::read_system_file`].

use std::path::{Path, PathBuf};

/// The password file read by static builds.
pub const PASSWD_FILE: &str = "/etc/passwd";
/// The group file read by static builds.
pub const GROUP_FILE: &str = "/etc/group";
/// The largest password or group file read: a bigger one is not read at all (no answer).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The uid of the user `name`, if it exists.
pub fn uid_by_name(name: &str) -> Option<u32> {
    if cfg!(target_feature = "crt-static") {
        files::uid_by_name(&read(PASSWD_FILE)?, name)
    } else {
        crate::sys::nss_uid_by_name(name)
    }
}

/// The home folder of the user with `uid`, if it has an entry.
pub fn home_of(uid: u32) -> Option<PathBuf> {
    if cfg!(target_feature = "crt-static") {
        files::home_of(&read(PASSWD_FILE)?, uid)
    } else {
        crate::sys::nss_home_of(uid)
    }
}

/// The groups of the user with `uid`: its primary group and every group that lists its name.
/// Empty if the uid has no entry.
pub fn groups_of(uid: u32) -> Vec<u32> {
    if cfg!(target_feature = "crt-static") {
        match (read(PASSWD_FILE), read(GROUP_FILE)) {
            (Some(passwd), group) => files::groups_of(&passwd, group.as_deref().unwrap_or(""), uid),
            (None, _) => Vec::new(),
        }
    } else {
        crate::sys::nss_groups_of(uid)
    }
}

/// The gid of the group `name`, if it exists.
pub fn gid_by_name(name: &str) -> Option<u32> {
    if cfg!(target_feature = "crt-static") {
        files::gid_by_name(&read(GROUP_FILE)?, name)
    } else {
        crate::sys::nss_gid_by_name(name)
    }
}

/// One of the system files, or `None` (missing, not a regular file, too large) with a debug
/// line saying why.
fn read(path: &str) -> Option<String> {
    match crate::safe_fs::read_system_file(Path::new(path), MAX_FILE_BYTES) {
        Ok(Some(text)) => Some(text),
        Ok(None) => None,
        Err(why) => {
            tracing::debug!("not reading {path}: {why}");
            None
        }
    }
}

/// The `files` format: `/etc/passwd` lines `name:password:uid:gid:gecos:home:shell`,
/// `/etc/group` lines `name:password:gid:member,member`. Lines that are empty, comments
/// (`#`), NIS compat entries (`+`/`-`), too short or with a number that does not parse are
/// skipped, as glibc's files backend does. The first matching line wins.
pub mod files {
    use std::path::PathBuf;

    /// The fields of the usable lines of a passwd or group file with at least `min` fields.
    fn entries(text: &str, min: usize) -> impl Iterator<Item = Vec<&str>> {
        text.lines()
            .map(|l| l.trim_start())
            .filter(|l| !l.is_empty() && !l.starts_with(['#', '+', '-']))
            .map(|l| l.split(':').collect::<Vec<_>>())
            .filter(move |f| f.len() >= min && !f[0].is_empty())
    }

    /// A passwd entry: name, uid, gid, home.
    fn users(passwd: &str) -> impl Iterator<Item = (&str, u32, u32, &str)> {
        entries(passwd, 7).filter_map(|f| Some((f[0], f[2].parse().ok()?, f[3].parse().ok()?, f[5])))
    }

    /// A group entry: name, gid, members.
    fn groups(group: &str) -> impl Iterator<Item = (&str, u32, &str)> {
        entries(group, 4).filter_map(|f| Some((f[0], f[2].parse().ok()?, f[3])))
    }

    pub fn uid_by_name(passwd: &str, name: &str) -> Option<u32> {
        users(passwd).find(|u| u.0 == name).map(|u| u.1)
    }

    pub fn home_of(passwd: &str, uid: u32) -> Option<PathBuf> {
        users(passwd).find(|u| u.1 == uid).map(|u| u.3).filter(|h| !h.is_empty()).map(PathBuf::from)
    }

    pub fn gid_by_name(group: &str, name: &str) -> Option<u32> {
        groups(group).find(|g| g.0 == name).map(|g| g.1)
    }

    /// The primary gid of `uid`'s first entry, then each other group naming that user.
    pub fn groups_of(passwd: &str, group: &str, uid: u32) -> Vec<u32> {
        let Some((name, _, primary, _)) = users(passwd).find(|u| u.1 == uid) else {
            return Vec::new();
        };
        let mut out = vec![primary];
        for (_, gid, members) in groups(group) {
            if !out.contains(&gid) && members.split(',').any(|m| m.trim() == name) {
                out.push(gid);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::files;
    use std::path::PathBuf;

    const PASSWD: &str = "\
# a comment line
root:x:0:0:root:/root:/bin/bash

   # an indented comment
#olduser:x:4000:4000::/home/old:/bin/sh
+nisuser:x:4001:4001::/home/nis:/bin/sh
short:x:5
bad:x:notanumber:1::/nowhere:/bin/sh
alice:x:1000:1000:Alice,,,:/home/alice:/bin/bash
ecr-broker:x:998:998::/var/lib/ecr-broker:/usr/sbin/nologin
alice:x:1001:1001::/second/alice:/bin/sh
nohome:x:1002:1002:::/bin/sh
";
    const GROUP: &str = "\
# groups
root:x:0:
docker:x:999:bob,alice
short:x
ecr-broker:x:998:
staff:x:50: alice
alice:x:1000:
oops:x:zz:alice
#old:x:4000:alice
";

    #[test]
    fn users_are_found_by_name_and_uid_and_bad_lines_are_skipped() {
        assert_eq!(files::uid_by_name(PASSWD, "ecr-broker"), Some(998));
        assert_eq!(files::uid_by_name(PASSWD, "root"), Some(0));
        assert_eq!(files::uid_by_name(PASSWD, "alice"), Some(1000), "the first entry wins");
        assert_eq!(files::uid_by_name(PASSWD, "short"), None, "a line with too few fields");
        assert_eq!(files::uid_by_name(PASSWD, "bad"), None, "a uid that is no number");
        assert_eq!(files::uid_by_name(PASSWD, "+nisuser"), None, "NIS compat lines are no users");
        assert_eq!(files::uid_by_name(PASSWD, "#olduser"), None, "a commented-out user");
        assert_eq!(files::home_of(PASSWD, 4000), None, "a commented-out user");
        assert_eq!(files::home_of(PASSWD, 4001), None, "NIS compat lines are no users");
        assert_eq!(files::uid_by_name(PASSWD, "nobody"), None);
        assert_eq!(files::uid_by_name("", "root"), None);
        assert_eq!(files::home_of(PASSWD, 1000), Some(PathBuf::from("/home/alice")));
        assert_eq!(files::home_of(PASSWD, 1001), Some(PathBuf::from("/second/alice")));
        assert_eq!(files::home_of(PASSWD, 1002), None, "an empty home is no home");
        assert_eq!(files::home_of(PASSWD, 4242), None);
    }

    #[test]
    fn groups_are_the_primary_one_and_those_that_list_the_user() {
        assert_eq!(files::gid_by_name(GROUP, "docker"), Some(999));
        assert_eq!(files::gid_by_name(GROUP, "short"), None);
        assert_eq!(files::gid_by_name(GROUP, "oops"), None);
        assert_eq!(files::gid_by_name(GROUP, "# groups"), None);
        assert_eq!(files::gid_by_name(GROUP, "#old"), None, "a commented-out group");
        assert_eq!(files::groups_of(PASSWD, GROUP, 1000), vec![1000, 999, 50]);
        assert_eq!(files::groups_of(PASSWD, GROUP, 998), vec![998]);
        assert_eq!(files::groups_of(PASSWD, GROUP, 4242), Vec::<u32>::new(), "no entry, no groups");
        assert_eq!(files::groups_of(PASSWD, "", 0), vec![0]);
    }

    #[test]
    fn the_system_files_are_read_only_if_regular_small_and_not_links() {
        use crate::safe_fs::read_system_file;
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("passwd");
        assert_eq!(read_system_file(&p, 100), Ok(None), "a missing file is no answer, not an error");
        std::fs::write(&p, PASSWD).unwrap();
        assert_eq!(read_system_file(&p, 4096).unwrap().as_deref(), Some(PASSWD));
        let err = read_system_file(&p, 100).unwrap_err();
        assert!(err.contains("too large"), "{err}");
        std::os::unix::fs::symlink(&p, tmp.path().join("link")).unwrap();
        assert!(read_system_file(&tmp.path().join("link"), 4096).unwrap_err().contains("link"));
        crate::sys::mkfifo(&tmp.path().join("fifo")).unwrap();
        assert!(read_system_file(&tmp.path().join("fifo"), 4096).unwrap_err().contains("FIFO"));
    }

    #[test]
    fn this_build_answers_for_root() {
        // The real files (static builds) or NSS (dynamic): root is uid 0 on every system.
        assert_eq!(super::uid_by_name("root"), Some(0));
        assert_eq!(super::uid_by_name("no-such-user-ecr-cred"), None);
        assert!(super::groups_of(0).contains(&0));
        assert_eq!(super::gid_by_name("no-such-group-ecr-cred"), None);
    }
}
