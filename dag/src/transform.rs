//! Transforms on stored bytes: zstd compression and authenticated
//! encryption (XChaCha20-Poly1305), as a volume decorator below
//! verification, so everything above sees plain blocks under their CIDs.
//!
//! A stored block is a flag byte (0: as is, 1: zstd) and the payload;
//! encrypted, that is sealed with a random nonce together with the block's
//! CID, and stored under a name that is a BLAKE3 keyed hash of the CID, so
//! neither names nor bytes tell anything about the content. The name is
//! also the associated data, so a block moved under another name fails to
//! open. Keys come from a passphrase (Argon2id, salt in `hydra.json`) or a
//! key file; a check value in `hydra.json` tells a wrong key at once.

use std::sync::Arc;

use bytes::Bytes;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use data_encoding::HEXLOWER;

use crate::block::{Block, MAX_BLOCK_SIZE};
use crate::cid::{Cid, Codec};
use crate::error::{DagError, DagResult};
use crate::volume::{BlockInfo, Volume, VolumeStats, forward_refs};

/// Length of an XChaCha20 nonce.
const NONCE: usize = 24;

/// What a bucket does to bytes before storing them (recorded in `hydra.json`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transforms {
    /// zstd level, when compressing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd_level: Option<i32>,
    /// Encryption, when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<EncryptionSpec>,
}

impl Transforms {
    /// Whether stored bytes are the blocks' own.
    pub fn is_none(&self) -> bool {
        self.zstd_level.is_none() && self.encryption.is_none()
    }
}

/// How an encrypted bucket's key is made, and how to recognise it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EncryptionSpec {
    /// `passphrase` (Argon2id) or `key-file`.
    pub key_source: String,
    /// Argon2id salt, hex.
    pub salt: String,
    /// A keyed hash of a constant under the right key, hex.
    pub check: String,
}

/// The secret a store is opened with.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A passphrase.
    Passphrase(String),
    /// The bytes of a key file.
    KeyFile(Vec<u8>),
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Secret::Passphrase(_) => "Secret::Passphrase(..)",
            Secret::KeyFile(_) => "Secret::KeyFile(..)",
        })
    }
}

impl Secret {
    /// The secret `$HYDRA_KEY_FILE` or `$HYDRA_PASSPHRASE` gives, if any.
    pub fn from_env() -> DagResult<Option<Secret>> {
        if let Some(path) = std::env::var_os("HYDRA_KEY_FILE").filter(|p| !p.is_empty()) {
            let bytes = std::fs::read(&path).map_err(|e| DagError::io(&path, e))?;
            if bytes.len() < 32 {
                return Err(DagError::Other(format!(
                    "key file {} holds {} bytes; 32 or more are needed",
                    std::path::Path::new(&path).display(),
                    bytes.len()
                )));
            }
            return Ok(Some(Secret::KeyFile(bytes)));
        }
        Ok(std::env::var("HYDRA_PASSPHRASE")
            .ok()
            .filter(|p| !p.is_empty())
            .map(Secret::Passphrase))
    }

    fn source(&self) -> &'static str {
        match self {
            Secret::Passphrase(_) => "passphrase",
            Secret::KeyFile(_) => "key-file",
        }
    }
}

/// The two keys of an encrypted bucket.
#[derive(Clone)]
struct Keys {
    aead: [u8; 32],
    names: [u8; 32],
}

fn derive(secret: &Secret, salt: &[u8]) -> DagResult<Keys> {
    let mut master = [0u8; 32];
    match secret {
        Secret::Passphrase(p) => argon2::Argon2::default()
            .hash_password_into(p.as_bytes(), salt, &mut master)
            .map_err(|e| DagError::Other(format!("deriving the key: {e}")))?,
        Secret::KeyFile(bytes) => {
            master = blake3::derive_key("hydra 2026 key file", bytes);
        }
    }
    Ok(Keys {
        aead: blake3::derive_key("hydra 2026 block encryption", &master),
        names: blake3::derive_key("hydra 2026 block names", &master),
    })
}

fn check_value(keys: &Keys) -> String {
    HEXLOWER.encode(blake3::keyed_hash(&keys.names, b"hydra key check").as_bytes())
}

impl EncryptionSpec {
    /// A new spec for `secret`: a fresh salt and its check value.
    pub fn new(secret: &Secret) -> DagResult<EncryptionSpec> {
        let mut salt = [0u8; 16];
        getrandom::getrandom(&mut salt)
            .map_err(|e| DagError::Other(format!("no randomness for a salt: {e}")))?;
        let keys = derive(secret, &salt)?;
        Ok(EncryptionSpec {
            key_source: secret.source().into(),
            salt: HEXLOWER.encode(&salt),
            check: check_value(&keys),
        })
    }
}

/// A volume whose stored bytes are compressed and/or encrypted.
pub struct TransformVolume {
    inner: Arc<dyn Volume>,
    zstd_level: Option<i32>,
    cipher: Option<(XChaCha20Poly1305, Keys)>,
}

impl std::fmt::Debug for TransformVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransformVolume")
            .field("inner", &self.inner)
            .field("zstd_level", &self.zstd_level)
            .field("encrypted", &self.cipher.is_some())
            .finish()
    }
}

impl TransformVolume {
    /// Every block sealed (compressed, encrypted) as stored.
    fn seal_all(&self, blocks: &[Block]) -> DagResult<Vec<Block>> {
        // Compression and encryption are CPU work: a large batch is
        // sealed on every core.
        let bytes: usize = blocks.iter().map(Block::len).sum();
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        if threads > 1 && bytes >= 4 << 20 {
            let per = blocks.len().div_ceil(threads);
            std::thread::scope(|scope| {
                let parts: Vec<_> = blocks
                    .chunks(per)
                    .map(|part| {
                        scope.spawn(move || {
                            part.iter()
                                .map(|b| self.seal(b))
                                .collect::<DagResult<Vec<_>>>()
                        })
                    })
                    .collect();
                let mut all = Vec::with_capacity(blocks.len());
                for part in parts {
                    let sealed = part
                        .join()
                        .map_err(|_| DagError::Other("a sealing thread panicked".into()))??;
                    all.extend(sealed);
                }
                Ok::<_, DagError>(all)
            })
        } else {
            blocks.iter().map(|b| self.seal(b)).collect()
        }
    }

    /// `inner` with `transforms`; an encrypted one needs the right `secret`.
    pub fn new(
        inner: Arc<dyn Volume>,
        transforms: &Transforms,
        secret: Option<&Secret>,
    ) -> DagResult<TransformVolume> {
        let cipher = match &transforms.encryption {
            None => None,
            Some(spec) => {
                let secret = secret.ok_or_else(|| {
                    DagError::Other(format!(
                        "the store is encrypted: give its {} in {}",
                        spec.key_source,
                        if spec.key_source == "key-file" {
                            "$HYDRA_KEY_FILE"
                        } else {
                            "$HYDRA_PASSPHRASE"
                        }
                    ))
                })?;
                let salt = HEXLOWER
                    .decode(spec.salt.as_bytes())
                    .map_err(|_| DagError::Other("hydra.json: malformed salt".into()))?;
                let keys = derive(secret, &salt)?;
                if check_value(&keys) != spec.check {
                    return Err(DagError::Other("wrong key for this encrypted store".into()));
                }
                let aead = XChaCha20Poly1305::new(&keys.aead.into());
                Some((aead, keys))
            }
        };
        Ok(TransformVolume {
            inner,
            zstd_level: transforms.zstd_level,
            cipher,
        })
    }

    /// The name `cid` is stored under.
    fn name(&self, cid: &Cid) -> Cid {
        match &self.cipher {
            Some((_, keys)) => Cid::new(
                Codec::RAW,
                *blake3::keyed_hash(&keys.names, &cid.to_bytes()).as_bytes(),
            ),
            None => *cid,
        }
    }

    fn seal(&self, block: &Block) -> DagResult<Block> {
        let data = block.data();
        let mut body = Vec::with_capacity(data.len() + 1);
        match self.zstd_level {
            Some(level) => match zstd::bulk::compress(data, level) {
                Ok(z) if z.len() < data.len() => {
                    body.push(1);
                    body.extend_from_slice(&z);
                }
                _ => {
                    body.push(0);
                    body.extend_from_slice(data);
                }
            },
            None => {
                body.push(0);
                body.extend_from_slice(data);
            }
        }
        let name = self.name(block.cid());
        let stored = match &self.cipher {
            None => body,
            Some((aead, _)) => {
                let mut plain = block.cid().to_bytes();
                plain.insert(0, plain.len() as u8);
                plain.extend_from_slice(&body);
                let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
                let aad = name.to_bytes();
                let sealed = aead
                    .encrypt(
                        &nonce,
                        Payload {
                            msg: &plain,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| DagError::Other("encryption failed".into()))?;
                let mut out = nonce.to_vec();
                out.extend_from_slice(&sealed);
                out
            }
        };
        Ok(Block::trusted(name, Bytes::from(stored)))
    }

    /// The block stored under `name`: its CID and bytes.
    fn unseal(&self, name: &Cid, stored: &[u8], want: Option<&Cid>) -> DagResult<(Cid, Bytes)> {
        let bad = |cid: Cid| DagError::Integrity { cid };
        let (cid, body) = match &self.cipher {
            None => (*want.unwrap_or(name), stored.to_vec()),
            Some((aead, _)) => {
                let cid_for_error = *want.unwrap_or(name);
                if stored.len() < NONCE {
                    return Err(bad(cid_for_error));
                }
                let (nonce, sealed) = stored.split_at(NONCE);
                let aad = name.to_bytes();
                let plain = aead
                    .decrypt(
                        XNonce::from_slice(nonce),
                        Payload {
                            msg: sealed,
                            aad: &aad,
                        },
                    )
                    .map_err(|_| bad(cid_for_error))?;
                let n = *plain.first().ok_or_else(|| bad(cid_for_error))? as usize;
                let cid = plain
                    .get(1..1 + n)
                    .and_then(|b| Cid::from_bytes(b).ok())
                    .ok_or_else(|| bad(cid_for_error))?;
                if want.is_some_and(|w| *w != cid) {
                    return Err(bad(cid_for_error));
                }
                (cid, plain[1 + n..].to_vec())
            }
        };
        let data = match body.split_first() {
            Some((0, rest)) => Bytes::copy_from_slice(rest),
            Some((1, rest)) => Bytes::from(
                zstd::bulk::decompress(rest, MAX_BLOCK_SIZE + 1024).map_err(|_| bad(cid))?,
            ),
            _ => return Err(bad(cid)),
        };
        Ok((cid, data))
    }
}

impl Volume for TransformVolume {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn get(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        let name = self.name(cid);
        match self.inner.get(&name)? {
            Some(stored) => Ok(Some(self.unseal(&name, &stored, Some(cid))?.1)),
            None => Ok(None),
        }
    }

    fn get_uncached(&self, cid: &Cid) -> DagResult<Option<Bytes>> {
        let name = self.name(cid);
        match self.inner.get_uncached(&name)? {
            Some(stored) => Ok(Some(self.unseal(&name, &stored, Some(cid))?.1)),
            None => Ok(None),
        }
    }

    fn get_many(&self, cids: &[Cid]) -> DagResult<Vec<Option<Bytes>>> {
        let names: Vec<Cid> = cids.iter().map(|c| self.name(c)).collect();
        self.inner
            .get_many(&names)?
            .into_iter()
            .zip(names.iter().zip(cids))
            .map(|(stored, (name, cid))| match stored {
                Some(s) => Ok(Some(self.unseal(name, &s, Some(cid))?.1)),
                None => Ok(None),
            })
            .collect()
    }

    fn has(&self, cid: &Cid) -> DagResult<bool> {
        self.inner.has(&self.name(cid))
    }

    fn put_many(&self, blocks: &[Block]) -> DagResult<()> {
        self.inner.put_many(&self.seal_all(blocks)?)
    }

    fn put_many_and_cas_ref(
        &self,
        blocks: &[Block],
        name: &crate::refs::RefName,
        expected: Option<&Cid>,
        new: Option<&Cid>,
        note: &crate::refs::RefNote,
    ) -> DagResult<crate::refs::LogEntry> {
        let sealed = self.seal_all(blocks)?;
        self.inner
            .put_many_and_cas_ref(&sealed, name, expected, new, note)
    }

    fn delete_many(&self, cids: &[Cid]) -> DagResult<u64> {
        let names: Vec<Cid> = cids.iter().map(|c| self.name(c)).collect();
        self.inner.delete_many(&names)
    }

    fn for_each_block(&self, f: &mut dyn FnMut(BlockInfo)) -> DagResult<()> {
        // A listing names blocks by CID with their own sizes: encrypted
        // names are one-way and stored sizes are not the blocks', so each
        // block is opened (a cost only GC and stats pay).
        let mut stored = Vec::new();
        self.inner.for_each_block(&mut |info| stored.push(info))?;
        for info in stored {
            let Some(bytes) = self.inner.get(&info.cid)? else {
                continue; // deleted meanwhile
            };
            let want = self.cipher.is_none().then_some(info.cid);
            let (cid, data) = self.unseal(&info.cid, &bytes, want.as_ref())?;
            f(BlockInfo {
                cid,
                size: data.len() as u64,
                ..info
            });
        }
        Ok(())
    }

    fn stats(&self) -> DagResult<VolumeStats> {
        let mut stats = self.inner.stats()?;
        stats.blocks = 0;
        stats.block_bytes = 0;
        self.for_each_block(&mut |b| {
            stats.blocks += 1;
            stats.block_bytes += b.size;
        })?;
        Ok(stats)
    }

    forward_refs!();
}
