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

    /// This user's cache: `AWS_ECR_DISABLE_CACHE` off, [`crate::paths::cache_dir`] opened.
    /// `None` when disabled, when there is no home to put it in, or when the folder cannot be
    /// used (then with a warning): the cache is never a reason to fail.
    pub fn open_default() -> Option<TokenCache> {
        if crate::paths::env_flag("AWS_ECR_DISABLE_CACHE") {
            return None;
        }
        let dir = crate::paths::cache_dir()?;
        match TokenCache::open(&dir) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!("{e}; continuing without a cache");
                None
            }
        }
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

/// An exclusive lock on the cache's lock file (`File::lock`: `flock(2)` on Linux, so helpers
/// of older versions still exclude each other), released when the file is closed on drop.
struct Lock(#[allow(dead_code)] File);

impl Lock {
    fn exclusive(path: &Path) -> std::io::Result<Lock> {
        let f = safe_fs::open_lock_file(path)?;
        f.lock()?;
        Ok(Lock(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_cache_is_the_configured_folder_and_none_when_disabled() {
        // The only test that reads or sets these variables (the others open a folder directly).
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        std::env::set_var("AWS_ECR_CACHE_DIR", &dir);
        std::env::remove_var("AWS_ECR_DISABLE_CACHE");
        let cache = TokenCache::open_default().expect("a cache in AWS_ECR_CACHE_DIR");
        assert_eq!(cache.dir(), dir);
        assert!(dir.is_dir(), "the folder is made");
        std::env::set_var("AWS_ECR_DISABLE_CACHE", "1");
        assert!(TokenCache::open_default().is_none(), "AWS_ECR_DISABLE_CACHE turns it off");
        std::env::remove_var("AWS_ECR_DISABLE_CACHE");
        std::env::remove_var("AWS_ECR_CACHE_DIR");
    }
    use crate::safe_fs::euid;
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

    /// A realistic moment (2023-11-14) so arithmetic on timestamps is not hidden by zeros.
    const T0: i64 = 1_700_000_000;

    #[test]
    fn registries_are_remembered_for_90_days_to_the_second() {
        let mut c = CacheFile::default();
        c.note_registry("123456789012.dkr.ecr.us-east-1.amazonaws.com", T0);
        c.prune(T0 + 7_775_999);
        assert_eq!(c.registries.get("123456789012.dkr.ecr.us-east-1.amazonaws.com"), Some(&T0));
        c.prune(T0 + 7_776_000);
        assert!(c.registries.is_empty(), "forgotten after exactly 90 days");
    }

    #[test]
    fn pruning_keeps_tokens_while_valid_and_sources_until_their_deadline() {
        let mut c = CacheFile::default();
        c.put_token(key("p"), token(T0, T0 + 43_200));
        c.put_source("fp", "arn:p", T0 + 3600);
        c.prune(T0 + 43_200 - 61);
        assert_eq!((c.tokens.len(), c.sources.len()), (1, 0), "the source mapping ended at T0+3600");
        c.prune(T0 + 43_200 - 60);
        assert!(c.tokens.is_empty(), "a token in its last minute is dropped");
        c.put_source("fp", "arn:p", T0 + 3600);
        c.prune(T0 + 3599);
        assert_eq!(c.sources.len(), 1, "kept before its deadline");
        c.prune(T0 + 3600);
        assert!(c.sources.is_empty(), "dropped at its deadline");
        c.put_source("fp", "arn:p", T0 + 3600);
        assert_eq!(c.principal_for("fp", T0 + 3599), Some("arn:p"));
        assert_eq!(c.principal_for("fp", T0 + 3600), None);
        assert_eq!(c.principal_for("other", T0), None);
    }

    #[test]
    fn a_token_is_cached_under_principal_region_variant_and_endpoint() {
        let mut c = CacheFile::default();
        let base = TokenKey::new("arn:p", "us-east-1", EndpointVariant::Standard, None);
        c.put_token(base.clone(), token(T0, T0 + 43_200));
        assert!(c.fresh_token(&base, T0 + 1).is_some());
        assert!(c.fresh_token(&base, T0 + 32_400).is_none(), "not fresh in its last quarter");
        for other in [
            TokenKey::new("arn:p", "us-west-2", EndpointVariant::Standard, None),
            TokenKey::new("arn:p", "us-east-1", EndpointVariant::Fips, None),
            TokenKey::new("arn:p", "us-east-1", EndpointVariant::Standard, Some("http://127.0.0.1:4566")),
            TokenKey::new("arn:q", "us-east-1", EndpointVariant::Standard, None),
        ] {
            assert!(c.fresh_token(&other, T0 + 1).is_none(), "{other:?}");
        }
        let test_server = TokenKey::new("arn:p", "us-east-1", EndpointVariant::Standard, Some("http://127.0.0.1:4566"));
        c.put_token(test_server.clone(), token(T0, T0 + 60_000));
        assert_eq!(c.tokens.len(), 2);
        assert_eq!(c.fresh_token(&test_server, T0 + 1).map(|t| t.expires_at), Some(T0 + 60_000));
        assert_eq!(c.fresh_token(&base, T0 + 1).map(|t| t.expires_at), Some(T0 + 43_200));
    }

    #[test]
    fn a_cache_file_of_exactly_4_mib_is_read_and_one_byte_more_is_not() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(tmp.path()).unwrap();
        cache.update(T0, |c| c.note_registry("public.ecr.aws", T0)).unwrap();
        let mut text = fs::read(cache.file_path()).unwrap();
        text.resize(4 * 1024 * 1024, b' ');
        fs::write(cache.file_path(), &text).unwrap();
        assert_eq!(cache.load().registries.get("public.ecr.aws"), Some(&T0), "exactly 4 MiB is read");
        text.push(b' ');
        fs::write(cache.file_path(), &text).unwrap();
        assert_eq!(cache.load(), CacheFile::default(), "4 MiB and one byte is not");
    }

    #[test]
    fn a_cache_file_of_another_format_version_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(tmp.path()).unwrap();
        cache.update(T0, |c| c.note_registry("public.ecr.aws", T0)).unwrap();
        assert_eq!(cache.load().version, 1);
        let text = fs::read_to_string(cache.file_path()).unwrap().replace("\"version\": 1", "\"version\": 2");
        fs::write(cache.file_path(), text).unwrap();
        assert_eq!(cache.load(), CacheFile::default());
    }

    #[test]
    fn the_low_level_reader_says_why_a_file_is_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        assert_eq!(read_private(&file, 100), Ok(None), "a missing file is no file");
        fs::write(&file, "hello").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_private(&file, 5), Ok(Some("hello".to_string())));
        assert_eq!(read_private(&file, 4), Err("5 bytes is too large".to_string()));
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        let err = read_private(&link, 100).unwrap_err();
        assert_eq!(err, "a symbolic link, not a regular file", "a symlink is an error, not a missing file");
        assert_eq!(read_private(tmp.path(), 100), Err("a folder, not a regular file".to_string()));
        for mode in [0o640, 0o604, 0o610] {
            fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(read_private(&file, 100), Err(format!("mode {mode:o} lets others read it")));
        }
    }

    #[test]
    fn files_and_folders_of_another_user_are_not_trusted() {
        let tmp = tempfile::tempdir().unwrap();
        let (file, other_uid) = if euid() == 0 {
            let file = tmp.path().join("theirs");
            fs::write(&file, "{}").unwrap();
            fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
            std::os::unix::fs::chown(&file, Some(65534), None).unwrap();
            (file, 65534)
        } else {
            (PathBuf::from("/etc/passwd"), 0)
        };
        assert_eq!(read_private(&file, 1 << 20), Err(format!("owned by uid {other_uid}, not by us")));
        if euid() == 0 {
            let dir = tmp.path().join("their-cache");
            fs::create_dir(&dir).unwrap();
            std::os::unix::fs::chown(&dir, Some(65534), None).unwrap();
            let err = TokenCache::open(&dir).unwrap_err().to_string();
            assert_eq!(err, format!("token cache {} not used: owned by uid 65534, not by us", dir.display()));
        }
    }

    #[test]
    fn a_cache_path_that_is_a_file_is_refused_with_a_clear_error() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cache");
        fs::write(&path, "").unwrap();
        let err = TokenCache::open(&path).unwrap_err();
        assert!(matches!(err, CacheError::Untrusted(..)), "{err:?}");
        assert_eq!(err.to_string(), format!("token cache {} not used: not a folder", path.display()));
        let io = CacheError::Io(path.clone(), std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(io.to_string().starts_with(&format!("token cache {}: ", path.display())), "{io}");
        // A folder under a file cannot be made: refused (the cache is then not used), not a panic.
        let inner = TokenCache::open(&path.join("sub")).unwrap_err();
        assert!(matches!(inner, CacheError::Untrusted(..)) && inner.to_string().contains("cannot create"), "{inner:?}");
    }

    #[test]
    fn the_cache_knows_its_folder_and_file() {
        let tmp = tempfile::tempdir().unwrap();
        let cache = TokenCache::open(tmp.path()).unwrap();
        assert_eq!(cache.dir(), tmp.path());
        assert_eq!(cache.file_path(), tmp.path().join("tokens.json"));
    }

    #[test]
    fn a_private_write_replaces_the_file_whole_and_leaves_no_temporary() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("state.json");
        fs::write(&file, "old contents, longer than the new").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&file, b"new").unwrap();
        assert_eq!(fs::read(&file).unwrap(), b"new");
        assert_eq!(fs::metadata(&file).unwrap().mode() & 0o777, 0o600);
        let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["state.json"]);
        assert!(write_private(&tmp.path().join("missing/state.json"), b"x").is_err());
    }

    #[test]
    fn the_effective_uid_is_the_owner_of_files_we_create() {
        let tmp = tempfile::tempdir().unwrap();
        assert_eq!(fs::metadata(tmp.path()).unwrap().uid(), euid());
    }

    #[test]
    fn a_folder_closed_to_others_keeps_its_mode() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cache");
        fs::create_dir(&dir).unwrap();
        for mode in [0o700, 0o500] {
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode)).unwrap();
            TokenCache::open(&dir).unwrap();
            assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, mode, "{mode:o} is not changed");
        }
    }
}
