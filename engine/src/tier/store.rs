//! Where cold objects live: a small front over `object_store` (a local directory, the
//! embedded default `<data-dir>/cold`, or S3 and S3-compatible servers).
//!
//! Naming: an object's key is `<stem>.<len>.<crc32c as 8 hex digits>.arrow` (`.snap` for
//! a backup's shard snapshot), relative to the store's root (the directory, or `s3://bucket/prefix`). The name carries the
//! checksum and length, so an object verifies itself on every read without a sidecar or a
//! trailer (which would stop standard Arrow tools from opening the file), and whatever
//! references an object by key (the manifest, next) carries its checksum with it.
//!
//! Invariants:
//! - `put` writes complete objects only. Local directory: object_store writes a staging
//!   file `<name>#<n>` and renames it over the name, with fsync of the file and the
//!   directory (`with_fsync(true)`), so a reader sees nothing or the whole object and a put
//!   that returned survives a crash. S3: a single PUT is atomic by S3's semantics (objects
//!   appear whole or not at all). Either way the object is complete and durable before
//!   the caller can reference it (invariant 3).
//! - `get` returns bytes only if their length and CRC-32C match the name; a mismatch is
//!   [`StoreError::Checksum`], never data.
//! - Credentials come from a file (invariant 7): `AmazonS3Builder::new()`, never
//!   `from_env`, so no `AWS_*` variable is read.
//! - Transient failures (connection errors, 5xx, timeouts) are retried inside
//!   object_store's HTTP client with exponential backoff ([`retry_config`]); what reaches
//!   the caller says whether it is permanent ([`StoreError::is_permanent`]).

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};

use super::format;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cold store configuration: {0}")]
    Config(String),
    #[error("cold object key {0:?} is not a Prism object name (<stem>.<len>.<crc32c>.arrow|snap|enc)")]
    BadName(String),
    #[error("object {0:?} not found")]
    NotFound(String),
    #[error("object {key:?} failed verification: {source}")]
    Checksum { key: String, source: format::FormatError },
    #[error("cold store {op} {key:?}: {source}")]
    Store { op: &'static str, key: String, source: object_store::Error },
}

impl StoreError {
    /// True when retrying cannot help (bad name, missing object, corrupt data, denied
    /// access, bad configuration); false for an outage that may pass.
    pub fn is_permanent(&self) -> bool {
        match self {
            StoreError::Store { source, .. } => !matches!(source, object_store::Error::Generic { .. }),
            _ => true,
        }
    }
}

/// The extensions of self-verifying objects: cold partitions (Arrow IPC), shard
/// snapshots in backups, and encrypted backup objects.
pub const EXTENSIONS: [&str; 3] = ["arrow", "snap", "enc"];

/// A stored object: its key and what its name says about its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub key: String,
    pub len: u64,
    pub crc32c: u32,
}

impl ObjectRef {
    /// The reference for bytes stored under `stem` (a cold partition: `.arrow`).
    pub fn for_bytes(stem: &str, bytes: &[u8]) -> ObjectRef {
        ObjectRef::with_ext(stem, "arrow", bytes)
    }

    /// The reference for bytes stored under `stem` with extension `ext` (one of
    /// [`EXTENSIONS`]: backups keep shard snapshots as `.snap`).
    pub fn with_ext(stem: &str, ext: &str, bytes: &[u8]) -> ObjectRef {
        let (len, crc32c) = (bytes.len() as u64, format::checksum(bytes));
        ObjectRef { key: format!("{stem}.{len}.{crc32c:08x}.{ext}"), len, crc32c }
    }

    /// Parses an object key (module doc); `None` for any other name.
    pub fn parse(key: &str) -> Option<ObjectRef> {
        let (rest, ext) = key.rsplit_once('.')?;
        if !EXTENSIONS.contains(&ext) {
            return None;
        }
        let (rest, crc) = rest.rsplit_once('.')?;
        let (stem, len) = rest.rsplit_once('.')?;
        if stem.is_empty() || crc.len() != 8 || len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(ObjectRef { key: key.to_string(), len: len.parse().ok()?, crc32c: u32::from_str_radix(crc, 16).ok()? })
    }
}

/// How transient failures are retried: 100 ms doubling to 5 s, at most 5 retries within
/// 60 s, so an outage surfaces as an error in about a minute at worst.
pub fn retry_config() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            base: 2.0,
        },
        max_retries: 5,
        retry_timeout: Duration::from_secs(60),
    }
}

/// A cold object store.
#[derive(Debug, Clone)]
pub struct ColdStore {
    inner: Arc<dyn ObjectStore>,
    /// The URL it was opened from, for messages.
    url: String,
}

impl ColdStore {
    /// Opens a store by URL: `file:///dir` or a plain path (a local directory, created if
    /// missing), or `s3://bucket[/prefix]` configured from `credentials`: a TOML file of
    /// object_store S3 options as strings (`aws_access_key_id`, `aws_secret_access_key`,
    /// `aws_region`, `aws_endpoint`, `aws_allow_http`, ...). Other schemes are refused.
    pub fn open(url: &str, credentials: Option<&FsPath>) -> Result<ColdStore, StoreError> {
        if let Some(rest) = url.strip_prefix("s3://") {
            return ColdStore::s3(url, rest, credentials);
        }
        let dir = match url.strip_prefix("file://") {
            Some(p) => PathBuf::from(p),
            None if !url.contains("://") => PathBuf::from(url),
            None => return Err(StoreError::Config(format!("unsupported cold store URL {url:?} (file:// or s3://)"))),
        };
        ColdStore::local(&dir)
    }

    /// A local directory (created if missing).
    pub fn local(dir: &FsPath) -> Result<ColdStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Config(format!("cannot create {}: {e}", dir.display())))?;
        let fs = LocalFileSystem::new_with_prefix(dir)
            .map_err(|e| StoreError::Config(format!("{}: {e}", dir.display())))?
            .with_fsync(true)
            .with_automatic_cleanup(true);
        Ok(ColdStore { inner: Arc::new(fs), url: format!("file://{}", dir.display()) })
    }

    fn s3(url: &str, rest: &str, credentials: Option<&FsPath>) -> Result<ColdStore, StoreError> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::Config(format!("{url:?} names no bucket")));
        }
        let mut b = AmazonS3Builder::new().with_bucket_name(bucket).with_retry(retry_config()).with_client_options(
            ClientOptions::new().with_connect_timeout(Duration::from_secs(5)).with_timeout(Duration::from_secs(30)),
        );
        if let Some(path) = credentials {
            for (key, value) in read_options(path)? {
                let k: AmazonS3ConfigKey = key
                    .parse()
                    .map_err(|_| StoreError::Config(format!("{}: unknown S3 option {key:?}", path.display())))?;
                b = b.with_config(k, value);
            }
        }
        let s3 = b.build().map_err(|e| StoreError::Config(format!("{url}: {e}")))?;
        let inner: Arc<dyn ObjectStore> = match prefix.trim_matches('/') {
            "" => Arc::new(s3),
            p => Arc::new(PrefixStore::new(s3, p)),
        };
        Ok(ColdStore { inner, url: url.to_string() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Stores `bytes` as a complete object named after `stem` and its checksum.
    pub async fn put(&self, stem: &str, bytes: Bytes) -> Result<ObjectRef, StoreError> {
        self.put_ext(stem, "arrow", bytes).await
    }

    /// [`ColdStore::put`] with another of the [`EXTENSIONS`].
    pub async fn put_ext(&self, stem: &str, ext: &str, bytes: Bytes) -> Result<ObjectRef, StoreError> {
        let obj = ObjectRef::with_ext(stem, ext, &bytes);
        let path = path_of(&obj.key)?;
        self.inner.put(&path, PutPayload::from_bytes(bytes)).await.map_err(|source| StoreError::Store {
            op: "put",
            key: obj.key.clone(),
            source,
        })?;
        Ok(obj)
    }

    /// Stores `bytes` under a raw key, without checksum naming (for tests that need a
    /// corrupt object under a valid name, and for future sidecars such as manifests).
    pub async fn put_raw(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&path_of(key)?, PutPayload::from_bytes(bytes))
            .await
            .map(drop)
            .map_err(|source| StoreError::Store { op: "put", key: key.to_string(), source })
    }

    /// The bytes under a raw key, unverified (sidecars such as a backup's manifest, which
    /// carry their own checks).
    pub async fn get_raw(&self, key: &str) -> Result<Bytes, StoreError> {
        let found = self.inner.get(&path_of(key)?).await.map_err(|e| self.error("get", key, e))?;
        found.bytes().await.map_err(|e| self.error("get", key, e))
    }

    /// The bytes of an object, verified against the length and CRC-32C in its name.
    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let obj = ObjectRef::parse(key).ok_or_else(|| StoreError::BadName(key.to_string()))?;
        let bytes = self
            .inner
            .get(&path_of(key)?)
            .await
            .map_err(|e| self.error("get", key, e))?
            .bytes()
            .await
            .map_err(|e| self.error("get", key, e))?;
        let found = format::checksum(&bytes);
        if bytes.len() as u64 != obj.len || found != obj.crc32c {
            let source = format::FormatError::Checksum {
                expected: obj.crc32c,
                expected_len: obj.len,
                found,
                found_len: bytes.len() as u64,
            };
            return Err(StoreError::Checksum { key: key.to_string(), source });
        }
        Ok(bytes)
    }

    /// Deletes an object (absent is fine: deletes are retried after crashes).
    pub async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self.inner.delete(&path_of(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error("delete", key, e)),
        }
    }

    /// The Prism objects under `prefix` (a key prefix ending at a `/`, or "" for all), in
    /// key order. Other files are skipped. Not for the hot path: the manifest is the truth
    /// of what exists; listing serves verification and garbage collection.
    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectRef>, StoreError> {
        let names = self.list_names(prefix).await?;
        Ok(names.iter().filter_map(|(key, _)| ObjectRef::parse(key)).collect())
    }

    /// Every key under `prefix` ("" for all), Prism objects or not (backup manifests are
    /// JSON), with the size of each, in key order. For garbage collection.
    pub async fn list_names(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let p = match prefix.trim_end_matches('/') {
            "" => None,
            p => Some(path_of(p)?),
        };
        let metas: Vec<_> =
            self.inner.list(p.as_ref()).try_collect().await.map_err(|e| self.error("list", prefix, e))?;
        let mut out: Vec<(String, u64)> = metas.into_iter().map(|m| (m.location.to_string(), m.size)).collect();
        out.sort();
        Ok(out)
    }

    fn error(&self, op: &'static str, key: &str, e: object_store::Error) -> StoreError {
        match e {
            object_store::Error::NotFound { .. } => StoreError::NotFound(key.to_string()),
            source => StoreError::Store { op, key: key.to_string(), source },
        }
    }
}

/// An object_store path from a key, refusing empty segments, `.` and `..` (a key never
/// leaves the store's root).
fn path_of(key: &str) -> Result<Path, StoreError> {
    Path::parse(key)
        .ok()
        .filter(|p| !key.is_empty() && p.as_ref() == key)
        .ok_or_else(|| StoreError::BadName(key.to_string()))
}

/// Reads a TOML file of string options.
fn read_options(path: &FsPath) -> Result<Vec<(String, String)>, StoreError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StoreError::Config(format!("cannot read {}: {e}", path.display())))?;
    let table: toml::Table = text.parse().map_err(|e| StoreError::Config(format!("{}: {e}", path.display())))?;
    table
        .into_iter()
        .map(|(k, v)| match v {
            toml::Value::String(s) => Ok((k, s)),
            toml::Value::Boolean(b) => Ok((k, b.to_string())),
            _ => Err(StoreError::Config(format!("{}: option {k:?} must be a string", path.display()))),
        })
        .collect()
}
