//! Ed25519 key material for signed tokens: the private key only the issuer
//! holds (a PKCS#8 PEM file nobody else may read), the public keys every
//! verifier is given, each named by a `kid` derived from the key itself so
//! that issuer and verifiers agree on names without configuring them.

use std::path::{Path, PathBuf};

use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::signature::{Ed25519KeyPair, KeyPair};
use sha2::{Digest, Sha256};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410); the 32
/// key bytes follow it.
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{0} may be read by others (group or world permissions); run chmod 600 on it \
         (a key root owns may also be 640, for its group)"
    )]
    Readable(PathBuf),
    #[error("{0} is not an Ed25519 private key in PKCS#8 PEM")]
    NotPrivate(String),
    #[error("{0} is not an Ed25519 public key in PEM (SubjectPublicKeyInfo)")]
    NotPublic(String),
}

/// A verifier's view of one key.
#[derive(Clone)]
pub struct PublicKey {
    pub kid: String,
    raw: [u8; 32],
    pub(crate) decoding: DecodingKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({})", self.kid)
    }
}

impl PublicKey {
    fn from_raw(raw: [u8; 32]) -> PublicKey {
        PublicKey {
            kid: kid_of(&raw),
            decoding: DecodingKey::from_ed_der(&raw),
            raw,
        }
    }

    /// Parses one SubjectPublicKeyInfo PEM.
    pub fn from_pem(text: &str, named: &str) -> Result<PublicKey, KeyError> {
        let not_public = || KeyError::NotPublic(named.to_string());
        let block = pem::parse(text.trim()).map_err(|_| not_public())?;
        let der = block.contents();
        if block.tag() != "PUBLIC KEY" || der.len() != 44 || der[..12] != SPKI_PREFIX {
            return Err(not_public());
        }
        let mut raw = [0u8; 32];
        raw.copy_from_slice(&der[12..]);
        Ok(PublicKey::from_raw(raw))
    }

    pub fn to_pem(&self) -> String {
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&self.raw);
        pem::encode(&pem::Pem::new("PUBLIC KEY", der))
    }

    /// The key as a JSON Web Key (RFC 8037).
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "OKP",
            "crv": "Ed25519",
            "alg": "EdDSA",
            "use": "sig",
            "kid": self.kid,
            "x": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.raw),
        })
    }
}

/// The issuer's key: signs, and knows its public half.
#[derive(Clone)]
pub struct PrivateKey {
    pub(crate) encoding: EncodingKey,
    pub public: PublicKey,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({})", self.public.kid)
    }
}

impl PrivateKey {
    /// Parses a PKCS#8 PEM; anything but Ed25519 is refused.
    pub fn from_pem(text: &str, named: &str) -> Result<PrivateKey, KeyError> {
        let not_private = || KeyError::NotPrivate(named.to_string());
        let block = pem::parse(text.trim()).map_err(|_| not_private())?;
        if block.tag() != "PRIVATE KEY" {
            return Err(not_private());
        }
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(block.contents())
            .map_err(|_| not_private())?;
        let raw: [u8; 32] = pair
            .public_key()
            .as_ref()
            .try_into()
            .map_err(|_| not_private())?;
        Ok(PrivateKey {
            encoding: EncodingKey::from_ed_der(block.contents()),
            public: PublicKey::from_raw(raw),
        })
    }

    /// Reads a private key file, refusing one that others may read.
    pub fn read(path: &Path) -> Result<PrivateKey, KeyError> {
        refuse_readable_by_others(path)?;
        let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        PrivateKey::from_pem(&text, &path.display().to_string())
    }

    /// A fresh key from the system's random source.
    pub fn generate() -> (PrivateKey, String) {
        let pem = generate_pkcs8_pem();
        let key = PrivateKey::from_pem(&pem, "a generated key").expect("a generated key parses");
        (key, pem)
    }

    /// Reads the key at `path`, or creates it there (0600) if there is none:
    /// the zero-configuration start of the all-in-one.
    pub fn read_or_create(path: &Path) -> Result<PrivateKey, KeyError> {
        if path.exists() {
            return PrivateKey::read(path);
        }
        let (key, pem) = PrivateKey::generate();
        write_private(path, &pem)?;
        Ok(key)
    }
}

fn generate_pkcs8_pem() -> String {
    let rng = ring::rand::SystemRandom::new();
    let document = Ed25519KeyPair::generate_pkcs8(&rng).expect("the system's random source works");
    pem::encode(&pem::Pem::new("PRIVATE KEY", document.as_ref().to_vec()))
}

/// A short, stable name for a key: the start of its SHA-256.
fn kid_of(raw: &[u8; 32]) -> String {
    hex::encode(&Sha256::digest(raw)[..8])
}

/// A private key must be its owner's alone (0600 or less), or, when root
/// owns it, also readable by its group and nothing more (0640 or less): the
/// rule PostgreSQL keeps for its TLS key. The second is how Kubernetes
/// hands a Secret to a non-root process: root's file, the pod's `fsGroup`
/// as its group, group-readable whatever `defaultMode` says.
#[cfg(unix)]
fn refuse_readable_by_others(path: &Path) -> Result<(), KeyError> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::metadata(path).map_err(|source| KeyError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !private_enough(meta.permissions().mode(), meta.uid()) {
        return Err(KeyError::Readable(path.to_path_buf()));
    }
    Ok(())
}

#[cfg(unix)]
fn private_enough(mode: u32, owner: u32) -> bool {
    let others = if owner == 0 { 0o037 } else { 0o077 };
    mode & others == 0
}

#[cfg(not(unix))]
fn refuse_readable_by_others(_path: &Path) -> Result<(), KeyError> {
    Ok(())
}

/// Writes a new private key readable by its owner only; never overwrites.
pub fn write_private(path: &Path, pem: &str) -> Result<(), KeyError> {
    use std::io::Write;
    let failed = |source| KeyError::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(failed)?;
    file.write_all(pem.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)
}

/// Parses a comma-separated list of public keys, each a file path or an
/// inline PEM.
pub fn parse_public_keys(list: &str) -> Result<Vec<PublicKey>, KeyError> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            if item.contains("-----BEGIN") {
                PublicKey::from_pem(item, "an inline key")
            } else {
                let path = Path::new(item);
                let text = std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                    path: path.to_path_buf(),
                    source,
                })?;
                PublicKey::from_pem(&text, item)
            }
        })
        .collect()
}

/// Writes `<name>.key` (0600) and `<name>.pub` into `dir`; returns the
/// public key.
pub fn generate_pair(dir: &Path, name: &str) -> Result<PublicKey, KeyError> {
    std::fs::create_dir_all(dir).map_err(|source| KeyError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let (key, pem) = PrivateKey::generate();
    write_private(&dir.join(format!("{name}.key")), &pem)?;
    let public = dir.join(format!("{name}.pub"));
    std::fs::write(&public, key.public.to_pem()).map_err(|source| KeyError::Write {
        path: public.clone(),
        source,
    })?;
    Ok(key.public)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pair_round_trips_through_pem_with_the_same_kid() {
        let dir = tempfile::tempdir().expect("dir");
        let public = generate_pair(dir.path(), "token").expect("generate");
        let private = PrivateKey::read(&dir.path().join("token.key")).expect("read private");
        assert_eq!(private.public.kid, public.kid);
        let listed = parse_public_keys(&format!(
            "{}, {}",
            dir.path().join("token.pub").display(),
            public.to_pem()
        ))
        .expect("parse");
        assert_eq!(listed.len(), 2);
        assert!(listed.iter().all(|k| k.kid == public.kid));
    }

    #[cfg(unix)]
    #[test]
    fn a_private_key_others_may_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("dir");
        generate_pair(dir.path(), "token").expect("generate");
        let path = dir.path().join("token.key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(matches!(
            PrivateKey::read(&path),
            Err(KeyError::Readable(_))
        ));
    }

    #[cfg(unix)]
    #[test]
    fn a_key_may_be_its_owners_alone_or_roots_shared_with_its_group_only() {
        let (user, root) = (65532, 0);
        for mode in [0o600, 0o400] {
            assert!(private_enough(mode, user), "{mode:o}");
            assert!(private_enough(mode, root), "{mode:o}");
        }
        // A Kubernetes Secret mounted for a pod with an fsGroup.
        assert!(private_enough(0o440, root));
        assert!(private_enough(0o640, root));
        for mode in [0o440, 0o640, 0o604, 0o644] {
            assert!(!private_enough(mode, user), "{mode:o} of a user");
        }
        for mode in [0o660, 0o604, 0o644, 0o444] {
            assert!(!private_enough(mode, root), "{mode:o} of root");
        }
    }

    #[test]
    fn keys_that_are_not_ed25519_are_refused() {
        // An RSA-sized blob under the right label is still not Ed25519.
        let fake = pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            vec![0x30, 0x03, 0x02, 0x01, 0x00],
        ));
        assert!(matches!(
            PrivateKey::from_pem(&fake, "fake"),
            Err(KeyError::NotPrivate(_))
        ));
        let secret = "change-me";
        assert!(PrivateKey::from_pem(secret, "secret").is_err());
        assert!(PublicKey::from_pem(secret, "secret").is_err());
    }
}
