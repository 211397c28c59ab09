//! Content identifiers: CIDv1 with a BLAKE3-256 multihash.
//!
//! hydra keeps its own fixed-size `Cid` rather than `cid::Cid<64>`: every
//! CID hydra makes has the same hash function and digest length, so the
//! type is 40 bytes and `Copy` instead of ~90, which matters in the hash
//! maps of the block cache, the index and the GC mark set. The binary and
//! text forms are the standard ones; the tests check them against the
//! `cid` crate byte for byte.

use std::fmt;
use std::str::FromStr;

use crate::error::{DagError, DagResult};
use crate::varint;

/// Multihash code of BLAKE3.
pub const BLAKE3_CODE: u64 = 0x1e;
/// Length in bytes of a BLAKE3-256 digest.
pub const DIGEST_LEN: usize = 32;

/// An IPLD codec: how a block's bytes are to be decoded.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Codec(pub u64);

impl Codec {
    /// Uninterpreted bytes (chunk data).
    pub const RAW: Codec = Codec(0x55);
    /// Deterministic CBOR with CID links (structured nodes).
    pub const DAG_CBOR: Codec = Codec(0x71);

    /// A short name for display.
    pub fn name(self) -> String {
        match self {
            Codec::RAW => "raw".into(),
            Codec::DAG_CBOR => "dag-cbor".into(),
            Codec(other) => format!("0x{other:x}"),
        }
    }
}

/// A CIDv1 whose multihash is BLAKE3-256.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cid {
    codec: Codec,
    digest: [u8; DIGEST_LEN],
}

impl Cid {
    /// Builds a CID from a codec and a digest.
    pub const fn new(codec: Codec, digest: [u8; DIGEST_LEN]) -> Self {
        Cid { codec, digest }
    }

    /// Hashes `data` and returns its CID under `codec`.
    pub fn hash(codec: Codec, data: &[u8]) -> Self {
        let digest = crate::digest::blake3(data);
        Cid { codec, digest }
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The 32-byte BLAKE3 digest.
    pub fn digest(&self) -> &[u8; DIGEST_LEN] {
        &self.digest
    }

    /// Whether `data` hashes to this CID.
    pub fn matches(&self, data: &[u8]) -> bool {
        crate::digest::blake3(data) == self.digest
    }

    /// Checks `data` against this CID, failing with the integrity error.
    pub fn verify(&self, data: &[u8]) -> DagResult<()> {
        if self.matches(data) {
            Ok(())
        } else {
            Err(DagError::Integrity { cid: *self })
        }
    }

    /// Appends the binary form (version, codec, multihash).
    pub fn write_bytes(&self, out: &mut Vec<u8>) {
        varint::encode(1, out);
        varint::encode(self.codec.0, out);
        varint::encode(BLAKE3_CODE, out);
        varint::encode(DIGEST_LEN as u64, out);
        out.extend_from_slice(&self.digest);
    }

    /// The binary form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        self.write_bytes(&mut out);
        out
    }

    /// Parses a binary CID from the front of `bytes`; returns it and its length.
    pub fn read_bytes(bytes: &[u8]) -> DagResult<(Cid, usize)> {
        let bad = |reason: &str| DagError::InvalidCid {
            input: hex_prefix(bytes),
            reason: reason.to_string(),
        };
        let mut pos = 0;
        let mut next = |what: &str| -> DagResult<u64> {
            let (v, n) = varint::decode(&bytes[pos..]).ok_or_else(|| bad(what))?;
            pos += n;
            Ok(v)
        };
        let version = next("truncated version")?;
        if version == 0x12 {
            return Err(bad(
                "CIDv0 (sha2-256) is not supported; hydra uses CIDv1 BLAKE3",
            ));
        }
        if version != 1 {
            return Err(bad("unsupported CID version"));
        }
        let codec = Codec(next("truncated codec")?);
        let hash = next("truncated multihash code")?;
        if hash != BLAKE3_CODE {
            return Err(bad("multihash is not BLAKE3 (0x1e)"));
        }
        let len = next("truncated digest length")?;
        if len != DIGEST_LEN as u64 {
            return Err(bad("BLAKE3 digest length is not 32"));
        }
        let digest: [u8; DIGEST_LEN] = bytes
            .get(pos..pos + DIGEST_LEN)
            .and_then(|d| d.try_into().ok())
            .ok_or_else(|| bad("truncated digest"))?;
        Ok((Cid { codec, digest }, pos + DIGEST_LEN))
    }

    /// Parses a binary CID that must span all of `bytes`.
    pub fn from_bytes(bytes: &[u8]) -> DagResult<Cid> {
        let (cid, n) = Cid::read_bytes(bytes)?;
        if n != bytes.len() {
            return Err(DagError::InvalidCid {
                input: hex_prefix(bytes),
                reason: "trailing bytes after CID".into(),
            });
        }
        Ok(cid)
    }
}

fn hex_prefix(bytes: &[u8]) -> String {
    let hex: String = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
    if bytes.len() > 16 {
        format!("0x{hex}…")
    } else {
        format!("0x{hex}")
    }
}

impl fmt::Display for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("b")?;
        f.write_str(
            &data_encoding::BASE32_NOPAD
                .encode(&self.to_bytes())
                .to_ascii_lowercase(),
        )
    }
}

impl fmt::Debug for Cid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Cid({self})")
    }
}

impl FromStr for Cid {
    type Err = DagError;

    fn from_str(s: &str) -> DagResult<Cid> {
        let shown: String = s.chars().take(80).collect();
        let bad = |reason: &str| DagError::InvalidCid {
            input: shown.clone(),
            reason: reason.to_string(),
        };
        let Some(rest) = s.strip_prefix('b') else {
            if s.starts_with("Qm") {
                return Err(bad("CIDv0 is not supported; hydra uses CIDv1 BLAKE3"));
            }
            return Err(bad(
                "expected multibase base32 lower (a CID starting with 'b')",
            ));
        };
        if rest.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("base32 must be lower case"));
        }
        let bytes = data_encoding::BASE32_NOPAD
            .decode(rest.to_ascii_uppercase().as_bytes())
            .map_err(|_| bad("not valid base32"))?;
        Cid::from_bytes(&bytes).map_err(|_| bad("not a CIDv1 with a BLAKE3-256 multihash"))
    }
}

impl serde::Serialize for Cid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Cid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Cid, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_match_the_cid_crate() {
        for (codec, data) in [(Codec::RAW, &b"hello"[..]), (Codec::DAG_CBOR, &b"\xa0"[..])] {
            let ours = Cid::hash(codec, data);
            let mh =
                cid::multihash::Multihash::<64>::wrap(BLAKE3_CODE, blake3::hash(data).as_bytes())
                    .expect("32-byte digest fits");
            let theirs = cid::Cid::new_v1(codec.0, mh);
            assert_eq!(ours.to_bytes(), theirs.to_bytes());
            assert_eq!(ours.to_string(), theirs.to_string());
            let parsed: Cid = theirs.to_string().parse().expect("parses");
            assert_eq!(parsed, ours);
        }
    }

    #[test]
    fn rejects_malformed_strings() {
        for bad in [
            "",
            "b",
            "zabc",
            "QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG",
            "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab",
            "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab!!",
            "BAFKR4IHKR4LD3M4GQKJF4RERYXSY2S5TKBXPRQKOW6FIN2IIYVREUZZABE",
        ] {
            assert!(bad.parse::<Cid>().is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn verify_detects_changes() {
        let cid = Cid::hash(Codec::RAW, b"abc");
        assert!(cid.verify(b"abc").is_ok());
        assert!(matches!(
            cid.verify(b"abd"),
            Err(DagError::Integrity { .. })
        ));
    }
}
