//! A store's ed25519 identity, and the signatures it puts on changelog
//! entries: who moved a ref, checkable by anyone holding the entry.
//!
//! The secret key lives in the store directory (`identity.key`, mode
//! 0600); the public key is the signer's name, `ed25519:<hex>`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use ed25519_dalek::{Signer as _, SigningKey, Verifier as _, VerifyingKey};

use crate::cid::Cid;
use crate::error::{DagError, DagResult};
use crate::refs::{LogEntry, RefName};

/// The identity file in a store directory.
pub const IDENTITY_FILE: &str = "identity.key";
const PREFIX: &str = "ed25519-secret:";

/// A signing identity.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.signer())
    }
}

/// A signature of a changelog entry and the public key that made it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signature {
    /// The signer's public key.
    pub key: [u8; 32],
    /// The ed25519 signature.
    pub sig: [u8; 64],
}

/// What checking an entry's signature found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// No signature (written before signing, or by an unsigned bucket).
    Unsigned,
    /// Signed by this signer, and the entry is as signed.
    Valid(String),
    /// The signature does not match the entry (or is malformed).
    Invalid(String),
}

impl Identity {
    /// A fresh random identity.
    pub fn generate() -> DagResult<Identity> {
        let mut seed = [0u8; 32];
        getrandom::getrandom(&mut seed)
            .map_err(|e| DagError::Other(format!("no randomness for a new identity: {e}")))?;
        Ok(Identity {
            key: SigningKey::from_bytes(&seed),
        })
    }

    /// The identity of the store at `dir`; created when absent and
    /// `create` is set (`None` when absent otherwise).
    pub fn load(dir: &Path, create: bool) -> DagResult<Option<Identity>> {
        let path = dir.join(IDENTITY_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bad = || DagError::Other(format!("{} is not a hydra identity", path.display()));
                let hex = text.trim().strip_prefix(PREFIX).ok_or_else(bad)?;
                let seed = data_encoding::HEXLOWER_PERMISSIVE
                    .decode(hex.as_bytes())
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(bad)?;
                Ok(Some(Identity {
                    key: SigningKey::from_bytes(&seed),
                }))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let identity = Identity::generate()?;
                identity.save(&path)?;
                Ok(Some(identity))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(DagError::io(&path, e)),
        }
    }

    /// Writes the secret key, readable by the owner only.
    fn save(&self, path: &Path) -> DagResult<()> {
        let tmp = path.with_extension("tmp");
        let text = format!(
            "{PREFIX}{}\n",
            data_encoding::HEXLOWER.encode(self.key.as_bytes())
        );
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| DagError::io(&tmp, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| DagError::io(&tmp, e))?;
        crate::durable::replace(&tmp, path)
    }

    /// The public name of this identity, `ed25519:<hex>`.
    pub fn signer(&self) -> String {
        signer_name(&self.key.verifying_key().to_bytes())
    }

    /// Signs `payload`.
    pub fn sign(&self, payload: &[u8]) -> Signature {
        Signature {
            key: self.key.verifying_key().to_bytes(),
            sig: self.key.sign(payload).to_bytes(),
        }
    }
}

fn signer_name(key: &[u8; 32]) -> String {
    format!("ed25519:{}", data_encoding::HEXLOWER.encode(key))
}

impl Signature {
    /// Key then signature, 96 bytes (as volumes store it).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.key.to_vec();
        out.extend_from_slice(&self.sig);
        out
    }

    /// Reads what [`Signature::to_bytes`] wrote.
    pub fn from_bytes(bytes: &[u8]) -> Option<Signature> {
        if bytes.len() != 96 {
            return None;
        }
        Some(Signature {
            key: bytes[..32].try_into().ok()?,
            sig: bytes[32..].try_into().ok()?,
        })
    }

    /// The signer's public name, `ed25519:<hex>`.
    pub fn signer(&self) -> String {
        signer_name(&self.key)
    }

    /// Whether this signs `payload`.
    pub fn verifies(&self, payload: &[u8]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.key) else {
            return false;
        };
        key.verify(payload, &ed25519_dalek::Signature::from_bytes(&self.sig))
            .is_ok()
    }
}

impl serde::Serialize for Signature {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct as _;
        let mut st = s.serialize_struct("Signature", 2)?;
        st.serialize_field("signer", &self.signer())?;
        st.serialize_field("signature", &data_encoding::HEXLOWER.encode(&self.sig))?;
        st.end()
    }
}

/// The bytes a changelog entry's signature covers: everything but its
/// position in one store's log (which syncing changes).
pub fn entry_payload(
    name: &RefName,
    old: Option<&Cid>,
    new: Option<&Cid>,
    time_ns: i64,
    author: &str,
    message: &str,
) -> Vec<u8> {
    let cid = |c: Option<&Cid>| c.map(Cid::to_string).unwrap_or_default();
    let mut out = b"hydra changelog entry v1\0".to_vec();
    for part in [
        name.as_str(),
        &cid(old),
        &cid(new),
        &time_ns.to_string(),
        author,
        message,
    ] {
        out.extend_from_slice(&(part.len() as u64).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out
}

impl LogEntry {
    /// Checks the entry's signature.
    pub fn verify(&self) -> Verdict {
        let Some(signature) = &self.signature else {
            return Verdict::Unsigned;
        };
        let payload = entry_payload(
            &self.name,
            self.old.as_ref(),
            self.new.as_ref(),
            self.time_ns,
            &self.author,
            &self.message,
        );
        if signature.verifies(&payload) {
            Verdict::Valid(signature.signer())
        } else {
            Verdict::Invalid(signature.signer())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_cover_every_field() {
        let id = Identity::generate().expect("identity");
        let name = RefName::new("fs/a").expect("name");
        let cid = Cid::hash(crate::Codec::RAW, b"x");
        let payload = entry_payload(&name, None, Some(&cid), 5, "me", "why");
        let mut entry = LogEntry {
            id: 1,
            name: name.clone(),
            old: None,
            new: Some(cid),
            time_ns: 5,
            author: "me".into(),
            message: "why".into(),
            signature: Some(id.sign(&payload)),
        };
        assert_eq!(entry.verify(), Verdict::Valid(id.signer()));
        entry.id = 99;
        assert_eq!(
            entry.verify(),
            Verdict::Valid(id.signer()),
            "ids are not signed"
        );
        for change in 0..4 {
            let mut e = entry.clone();
            match change {
                0 => e.time_ns += 1,
                1 => e.author.push('!'),
                2 => e.message.push('!'),
                _ => e.old = Some(cid),
            }
            assert!(matches!(e.verify(), Verdict::Invalid(_)), "change {change}");
        }
        let sig = entry.signature.expect("signed");
        assert_eq!(Signature::from_bytes(&sig.to_bytes()), Some(sig));
    }

    #[test]
    fn an_identity_is_kept_and_reloaded() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(Identity::load(dir.path(), false).expect("load").is_none());
        let made = Identity::load(dir.path(), true)
            .expect("create")
            .expect("made");
        let again = Identity::load(dir.path(), false)
            .expect("load")
            .expect("kept");
        assert_eq!(made.signer(), again.signer());
        let mode = std::fs::metadata(dir.path().join(IDENTITY_FILE))
            .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()))
            .expect("stat");
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(dir.path().join(IDENTITY_FILE), "garbage").expect("write");
        assert!(Identity::load(dir.path(), false).is_err());
    }
}
