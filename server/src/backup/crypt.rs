//! Encryption at rest for backups: AES-256-GCM (ring) with a key read from a file.
//!
//! An encrypted object is `"PRSMENC1" | nonce (12 bytes) | ciphertext | tag (16 bytes)`;
//! its name's length and CRC-32C are those of these bytes, so `verify` checks a
//! backup's integrity before decrypting, and the tag then proves the bytes are the ones
//! this key sealed. A key is identified in the manifest by the first 8 bytes of its
//! SHA-256 (`key_id`), never by the key itself, so a wrong key is named as such rather
//! than reported as corrupt data.
//!
//! Invariants: a fresh random nonce per object (objects are never re-sealed); the key
//! file holds exactly 32 bytes, raw or as 64 hex digits (one trailing newline allowed),
//! and is read from a file only (never argv or the environment).

use bytes::Bytes;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

const MAGIC: &[u8; 8] = b"PRSMENC1";

/// A backup key.
pub struct BackupKey {
    key: LessSafeKey,
    id: String,
}

/// Shows the id only: the key never reaches a log.
impl std::fmt::Debug for BackupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BackupKey").field("id", &self.id).finish_non_exhaustive()
    }
}

impl BackupKey {
    /// Reads the key file (module header); the error names the file.
    pub fn from_file(path: &std::path::Path) -> Result<BackupKey, String> {
        let raw = std::fs::read(path).map_err(|e| format!("key file {}: {e}", path.display()))?;
        let trimmed = raw.strip_suffix(b"\n").unwrap_or(&raw);
        let bytes: Vec<u8> = match trimmed.len() {
            32 => trimmed.to_vec(),
            64 => (0..32)
                .map(|i| {
                    std::str::from_utf8(&trimmed[2 * i..2 * i + 2]).ok().and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| format!("key file {}: 64 characters that are not hex digits", path.display()))?,
            n => {
                return Err(format!(
                    "key file {}: {n} bytes; an AES-256 key is 32 bytes, raw or as 64 hex digits",
                    path.display()
                ))
            }
        };
        BackupKey::new(&bytes)
    }

    fn new(bytes: &[u8]) -> Result<BackupKey, String> {
        let unbound = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| "not an AES-256 key".to_string())?;
        let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
        let id = digest.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect();
        Ok(BackupKey { key: LessSafeKey::new(unbound), id })
    }

    /// The key's id as manifests record it.
    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn seal(&self, plain: &[u8]) -> Result<Bytes, String> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new().fill(&mut nonce).map_err(|_| "no randomness for a nonce".to_string())?;
        let mut out = Vec::with_capacity(MAGIC.len() + NONCE_LEN + plain.len() + AES_256_GCM.tag_len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(plain);
        let mut body = out.split_off(MAGIC.len() + NONCE_LEN);
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(MAGIC), &mut body)
            .map_err(|_| "encryption failed".to_string())?;
        out.extend_from_slice(&body);
        Ok(Bytes::from(out))
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Bytes, String> {
        let rest = sealed.strip_prefix(MAGIC.as_slice()).ok_or("not an encrypted backup object")?;
        if rest.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err("encrypted object truncated".into());
        }
        let (nonce, body) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| "bad nonce".to_string())?;
        let mut body = body.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(MAGIC), &mut body)
            .map_err(|_| "decryption failed: the key does not open this object".to_string())?;
        let len = plain.len();
        body.truncate(len);
        Ok(Bytes::from(body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_and_refusals() {
        let k = BackupKey::new(&[7u8; 32]).unwrap();
        let sealed = k.seal(b"hello backup").unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"hello"), "no plaintext in the sealed bytes");
        assert_eq!(&k.open(&sealed).unwrap()[..], b"hello backup");
        assert_ne!(k.seal(b"hello backup").unwrap(), sealed, "a fresh nonce each time");
        let other = BackupKey::new(&[8u8; 32]).unwrap();
        assert_ne!(other.id(), k.id());
        assert!(other.open(&sealed).unwrap_err().contains("does not open"));
        let mut flipped = sealed.to_vec();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(k.open(&flipped).is_err());
        assert!(k.open(b"PRSMENC1short").is_err());
        assert!(k.open(b"plain").is_err());
    }

    #[test]
    fn key_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            p
        };
        let raw = BackupKey::from_file(&write("raw", &[1u8; 32])).unwrap();
        let hex = BackupKey::from_file(&write("hex", format!("{}\n", "01".repeat(32)).as_bytes())).unwrap();
        assert_eq!(raw.id(), hex.id());
        assert!(BackupKey::from_file(&write("short", b"abc")).unwrap_err().contains("3 bytes"));
        assert!(BackupKey::from_file(&write("nothex", "zz".repeat(32).as_bytes())).unwrap_err().contains("hex"));
        assert!(BackupKey::from_file(&dir.path().join("absent")).unwrap_err().contains("absent"));
    }
}
