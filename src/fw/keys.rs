//! Signing keys and the trusted-keys directory.
//!
//! A key pair is two text files of one line each: `NAME.key`, `sluice-ed25519-secret <64 hex
//! digits>` (the 32-byte Ed25519 seed; mode 0600), and `NAME.pub`, `sluice-ed25519-public <64 hex
//! digits>` (the 32-byte public key). A key's id is the first 8 bytes of the SHA-256 of its
//! public key, as 16 hex digits; images name their signer by it. The trusted-keys directory
//! (default `/etc/sluice/keys`) holds one `<key-id>.pub` per trusted key; every `*.pub` file in
//! it is read and the key is identified by its content.

use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

const SECRET_TAG: &str = "sluice-ed25519-secret";
const PUBLIC_TAG: &str = "sluice-ed25519-public";
/// Where trusted keys are looked for when `--keys` is not given.
pub const DEFAULT_KEYS_DIR: &str = "/etc/sluice/keys";

/// The id of a public key: the first 8 bytes of its SHA-256.
pub fn key_id(public: &VerifyingKey) -> [u8; 8] {
    let d: [u8; 32] = Sha256::digest(public.as_bytes()).into();
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

/// A key id as written in file names and messages.
pub fn id_hex(id: [u8; 8]) -> String {
    hex(&id)
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.trim();
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

fn parse_line(text: &str, tag: &str) -> Option<[u8; 32]> {
    let line = text.lines().find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))?;
    let (t, hex) = line.trim().split_once(' ')?;
    (t == tag).then(|| unhex32(hex)).flatten()
}

/// Reads a secret key file.
pub fn read_secret(path: &Path) -> Result<SigningKey, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("reading the key {}: {e}", path.display()))?;
    let seed = parse_line(&text, SECRET_TAG).ok_or_else(|| {
        format!("{} is not a secret key file ({SECRET_TAG} <64 hex digits>)", path.display())
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Reads a public key file.
pub fn read_public(path: &Path) -> Result<VerifyingKey, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let bytes = parse_line(&text, PUBLIC_TAG).ok_or_else(|| {
        format!("{} is not a public key file ({PUBLIC_TAG} <64 hex digits>)", path.display())
    })?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| format!("{}: not an Ed25519 public key: {e}", path.display()))
}

/// A fresh key pair from the kernel's random source.
pub fn generate() -> std::io::Result<SigningKey> {
    let mut seed = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| std::io::Read::read_exact(&mut f, &mut seed))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Writes `OUT.key` (mode 0600, never over an existing file) and `OUT.pub`; returns their paths.
pub fn write_pair(out: &Path, key: &SigningKey) -> Result<(PathBuf, PathBuf), String> {
    use std::os::unix::fs::OpenOptionsExt;
    let secret = out.with_extension("key");
    let public = out.with_extension("pub");
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&secret)
        .map_err(|e| format!("creating {}: {e}", secret.display()))?;
    writeln!(f, "{SECRET_TAG} {}", hex(&key.to_bytes()))
        .map_err(|e| format!("writing {}: {e}", secret.display()))?;
    let vk = key.verifying_key();
    std::fs::write(&public, format!("{PUBLIC_TAG} {}\n", hex(vk.as_bytes())))
        .map_err(|e| format!("writing {}: {e}", public.display()))?;
    Ok((secret, public))
}

/// The keys of the trusted-keys directory, by id.
#[derive(Debug, Default)]
pub struct TrustedKeys {
    /// The directory read.
    pub dir: PathBuf,
    /// Its keys.
    pub keys: BTreeMap<[u8; 8], (VerifyingKey, PathBuf)>,
    /// Why the directory could not be read, if it could not.
    pub problem: Option<String>,
}

impl TrustedKeys {
    /// Reads every `*.pub` file of `dir`. A missing directory is no keys (said in `problem`); a
    /// file that is not a public key is skipped with a warning.
    pub fn load(dir: &Path) -> Self {
        let mut out = TrustedKeys { dir: dir.to_path_buf(), ..Self::default() };
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                out.problem = Some(e.to_string());
                return out;
            }
        };
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths.into_iter().filter(|p| p.extension().is_some_and(|x| x == "pub")) {
            match read_public(&p) {
                Ok(k) => {
                    out.keys.insert(key_id(&k), (k, p));
                }
                Err(e) => tracing::warn!("skipping {e}"),
            }
        }
        out
    }

    /// The ids, for messages: `a, b` or `none`.
    pub fn ids(&self) -> String {
        if self.keys.is_empty() {
            return match &self.problem {
                Some(p) => format!("none ({p})"),
                None => "none".into(),
            };
        }
        self.keys.keys().map(|k| id_hex(*k)).collect::<Vec<_>>().join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_pair_round_trips_and_the_directory_finds_it_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let (sk, pk) = write_pair(&dir.path().join("release"), &key).unwrap();
        assert_eq!(std::fs::metadata(&sk).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(read_secret(&sk).unwrap().to_bytes(), key.to_bytes());
        assert_eq!(read_public(&pk).unwrap(), key.verifying_key());
        assert!(write_pair(&dir.path().join("release"), &key).is_err(), "never overwrites a key");
        let trusted = TrustedKeys::load(dir.path());
        assert!(trusted.keys.contains_key(&key_id(&key.verifying_key())));
        assert_eq!(trusted.ids().len(), 16);
        assert!(read_public(&sk).is_err(), "a secret key is not a public key");
        let none = TrustedKeys::load(&dir.path().join("nope"));
        assert!(none.ids().starts_with("none ("), "{}", none.ids());
    }
}
