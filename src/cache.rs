//! The per-user token cache on disk: one JSON file, 0600, in a 0700 folder.
//!
//! Readers never lock: the file is only ever replaced whole by `rename`, so a reader sees the
//! old or the new file, never half of one. Writers take an exclusive `flock` on a lock file
//! beside it, read the newest file, change it and rename a new one into place, so many helpers
//! started at once by a parallel `docker compose pull` do not lose each other's tokens.
//! A file that is corrupt, too large, not ours, readable by others, a link, a FIFO or a device
//! is ignored (with a warning) and replaced by the next write; a folder that is not ours or
//! that others can write to is not used at all (see [`crate::safe_fs`]). The cache is never a
//! reason to fail.

use crate::registry::EndpointVariant;
use crate::safe_fs;
pub use crate::safe_fs::{read_private, write_private};
use crate::token::Token;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

const FILE_NAME: &str = "tokens.json";
const LOCK_NAME: &str = "tokens.lock";
/// Larger cache files are not read (a healthy one is a few KiB).
const MAX_FILE_BYTES: u64 = 4 << 20;
/// Registries not asked for in this long drop out of `list`.
const REGISTRY_MEMORY_SECS: i64 = 90 * 24 * 3600;
const FORMAT_VERSION: u32 = 1;

/// What a token is cached under: one token serves every registry the principal can reach in a
/// region through one endpoint variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TokenKey {
    pub principal: String,
    pub region: String,
    pub variant: String,
    /// An `AWS_ENDPOINT_URL*` override, so a test server's tokens never serve real AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
}

impl TokenKey {
    pub fn new(principal: &str, region: &str, variant: EndpointVariant, endpoint: Option<&str>) -> TokenKey {
        TokenKey {
            principal: principal.to_string(),
            region: region.to_string(),
            variant: variant.as_str().to_string(),
            endpoint: endpoint.map(str::to_string),
        }
    }

    fn id(&self) -> String {
        format!("{}|{}|{}|{}", self.principal, self.region, self.variant, self.endpoint.as_deref().unwrap_or(""))
    }
}

/// Which principal a credential source resolved to, and until when we believe it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceEntry {
    pub principal: String,
    pub valid_until: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenEntry {
    pub key: TokenKey,
    pub token: Token,
}

/// The whole cache file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheFile {
    #[serde(default)]
    pub version: u32,
    /// Credential source fingerprint -> principal.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceEntry>,
    /// `TokenKey` id -> token.
    #[serde(default)]
    pub tokens: BTreeMap<String, TokenEntry>,
    /// Registry hosts this user asked for -> when last (for `list`).
    #[serde(default)]
    pub registries: BTreeMap<String, i64>,
}

impl CacheFile {
    /// The principal a credential source is known to resolve to, while that is still believed.
    pub fn principal_for(&self, fingerprint: &str, now: i64) -> Option<&str> {
        self.sources.get(fingerprint).filter(|s| now < s.valid_until).map(|s| s.principal.as_str())
    }

    /// A token under `key` that may still be handed out at `now`.
    pub fn fresh_token(&self, key: &TokenKey, now: i64) -> Option<&Token> {
        self.tokens.get(&key.id()).map(|e| &e.token).filter(|t| t.is_fresh(now))
    }

    pub fn put_source(&mut self, fingerprint: &str, principal: &str, valid_until: i64) {
        self.sources.insert(fingerprint.to_string(), SourceEntry { principal: principal.to_string(), valid_until });
    }

    pub fn put_token(&mut self, key: TokenKey, token: Token) {
        self.tokens.insert(key.id(), TokenEntry { key, token });
    }

    pub fn note_registry(&mut self, host: &str, now: i64) {
        self.registries.insert(host.to_string(), now);
    }

    /// Drop what can no longer be used: expired tokens and source mappings, old registries.
    pub fn prune(&mut self, now: i64) {
        self.tokens.retain(|_, e| e.token.is_valid(now));
        self.sources.retain(|_, s| now < s.valid_until);
        self.registries.retain(|_, t| now - *t < REGISTRY_MEMORY_SECS);
    }
}

#[derive(Debug)]
pub enum CacheError {
    /// The folder belongs to someone else or is not a folder: never used.
    Untrusted(PathBuf, String),
    Io(PathBuf, std::io::Error),
}

impl std::fmt::Display for CacheError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CacheError::Untrusted(p, why) => write!(f, "token cache {} not used: {}", p.display(), why),
            CacheError::Io(p, e) => write!(f, "token cache {}: {}", p.display(), e),
        }
    }
}

impl std::error::Error for CacheError {}

/// The cache folder, checked and ready.
#[derive(Debug, Clone)]
pub struct TokenCache {
    dir: PathBuf,
}

impl TokenCache {
    /// Create the folder 0700 if needed. An existing folder is used only if it is ours, closed
    /// to other writers and cannot be swapped by another user ([`safe_fs::private_dir`]); it is
    /// never loosened or tightened.
    pub fn open(dir: &Path) -> Result<TokenCache, CacheError> {
        safe_fs::private_dir(dir).map_err(|why| CacheError::Untrusted(dir.to_path_buf(), why))?;
        Ok(TokenCache { dir: dir.to_path_buf() })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn file_path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }

    /// Read the cache without locking. Anything wrong with the file gives an empty cache.
    pub fn load(&self) -> CacheFile {
        match self.read_file() {
            Ok(Some(c)) => c,
            Ok(None) => CacheFile::default(),
            Err(why) => {
                tracing::warn!(file = %self.file_path().display(), "ignoring token cache: {why}");
                CacheFile::default()
            }
        }
    }

    fn read_file(&self) -> Result<Option<CacheFile>, String> {
        let Some(text) = read_private(&self.file_path(), MAX_FILE_BYTES)? else { return Ok(None) };
        let cache: CacheFile = serde_json::from_str(&text).map_err(|e| format!("not a valid cache file ({e})"))?;
        if cache.version != FORMAT_VERSION {
            return Err(format!("format version {} is not {FORMAT_VERSION}", cache.version));
        }
        Ok(Some(cache))
    }

    /// Change the cache under the write lock: read the newest file, apply `change`, prune, and
    /// replace the file atomically.
    pub fn update(&self, now: i64, change: impl FnOnce(&mut CacheFile)) -> Result<(), CacheError> {
        let io = |e| CacheError::Io(self.dir.clone(), e);
        let _lock = Lock::exclusive(&self.dir.join(LOCK_NAME)).map_err(io)?;
        let mut cache = self.load();
        cache.version = FORMAT_VERSION;
        change(&mut cache);
        cache.prune(now);
        let text = serde_json::to_vec_pretty(&cache).expect("cache serializes");
        write_private(&self.file_path(), &text).map_err(io)
    }
}

/// An exclusive `flock`, released when dropped.
struct Lock(File);

impl Lock {
    fn exclusive(path: &Path) -> std::io::Result<Lock> {
        let f = safe_fs::open_lock_file(path)?;
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Lock(f))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        // SAFETY: as above.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn token(fetched: i64, expires: i64) -> Token {
        Token { username: "AWS".into(), password: "pw".into(), proxy_endpoint: None, fetched_at: fetched, expires_at: expires }
    }

    fn key(p: &str) -> TokenKey {
        TokenKey::new(p, "us-east-1", EndpointVariant::Standard, None)
    }

    #[test]
    fn folder_and_file_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b/cache");
        let cache = TokenCache::open(&dir).unwrap();
        cache.update(0, |c| c.put_token(key("p"), token(0, 43200))).unwrap();
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        assert_eq!(fs::metadata(cache.file_path()).unwrap().mode() & 0o777, 0o600);
    }

    #[test]
    fn a_folder_others_can_write_is_refused_and_left_alone() {
        let tmp = tempfile::tempdir().unwrap();
        fs::set_permissions(tmp.path(), fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(matches!(TokenCache::open(tmp.path()), Err(CacheError::Untrusted(..))));
        assert_eq!(fs::metadata(tmp.path()).unwrap().mode() & 0o7777, 0o1777);
    }

    #[test]
    fn round_trip_and_freshness() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(tmp.path()).unwrap();
        cache
            .update(100, |c| {
                c.put_source("fp", "arn:p", 200);
                c.put_token(key("arn:p"), token(100, 100 + 43200));
            })
            .unwrap();
        let loaded = cache.load();
        assert_eq!(loaded.principal_for("fp", 150), Some("arn:p"));
        assert_eq!(loaded.principal_for("fp", 200), None, "source mapping expires");
        assert!(loaded.fresh_token(&key("arn:p"), 150).is_some());
        assert!(loaded.fresh_token(&key("arn:other"), 150).is_none(), "another principal never gets it");
        assert!(loaded.fresh_token(&key("arn:p"), 100 + 43200).is_none(), "expired is never fresh");
    }

    #[test]
    fn corrupt_truncated_or_loose_files_are_ignored_then_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(tmp.path()).unwrap();
        for junk in [&b"{\"version\":1,\"tokens\":{"[..], b"\0\0\0", b"[]", b""] {
            fs::write(cache.file_path(), junk).unwrap();
            fs::set_permissions(cache.file_path(), fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(cache.load(), CacheFile::default());
        }
        cache.update(0, |c| c.put_token(key("p"), token(0, 43200))).unwrap();
        assert!(cache.load().fresh_token(&key("p"), 1).is_some());
        fs::set_permissions(cache.file_path(), fs::Permissions::from_mode(0o644)).unwrap();
        assert_eq!(cache.load(), CacheFile::default(), "a world-readable file is not trusted");
    }

    #[test]
    fn a_symlinked_cache_file_is_not_followed() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(tmp.path()).unwrap();
        let elsewhere = tmp.path().join("elsewhere.json");
        fs::write(&elsewhere, br#"{"version":1}"#).unwrap();
        std::os::unix::fs::symlink(&elsewhere, cache.file_path()).unwrap();
        assert_eq!(cache.load(), CacheFile::default());
    }

    #[test]
    fn pruning_drops_expired_tokens_only() {
        let mut c = CacheFile::default();
        c.put_token(key("old"), token(0, 1000));
        c.put_token(key("new"), token(0, 100_000));
        c.prune(5000);
        assert_eq!(c.tokens.len(), 1);
        assert!(c.tokens.values().all(|e| e.key.principal == "new"));
    }

    #[test]
    fn concurrent_writers_lose_nothing() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let cache = TokenCache::open(&dir).unwrap();
                    for j in 0..10 {
                        cache.update(0, |c| c.put_token(key(&format!("p{i}-{j}")), token(0, 43200))).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(TokenCache::open(&dir).unwrap().load().tokens.len(), 160);
    }
}
