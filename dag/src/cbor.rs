//! DAG-CBOR: the deterministic CBOR subset IPLD uses for structured nodes.
//!
//! Encoding is canonical (shortest integer forms, map keys sorted by length
//! then bytes, 64-bit floats, links as tag 42), so equal values always give
//! equal bytes and so equal CIDs. Decoding refuses anything outside the
//! DAG-CBOR data model and never allocates more than the input could hold.

use std::collections::BTreeMap;

use crate::cid::Cid;
use crate::error::{DagError, DagResult};

/// Tag that marks a CID link.
const CID_TAG: u64 = 42;
/// Nesting deeper than this is refused, so hostile input cannot blow the stack.
const MAX_DEPTH: usize = 256;

/// A value of the IPLD data model.
#[derive(Clone, Debug, PartialEq)]
pub enum Ipld {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer in -2^64 ..= 2^64-1.
    Integer(i128),
    /// A 64-bit float.
    Float(f64),
    /// UTF-8 text.
    String(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// An ordered list.
    List(Vec<Ipld>),
    /// A map with text keys.
    Map(BTreeMap<String, Ipld>),
    /// A link to another block.
    Link(Cid),
}

impl Ipld {
    /// Encodes this value as canonical DAG-CBOR.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Appends the canonical DAG-CBOR encoding of this value to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Ipld::Null => out.push(0xf6),
            Ipld::Bool(false) => out.push(0xf4),
            Ipld::Bool(true) => out.push(0xf5),
            Ipld::Integer(i) if *i >= 0 => head(out, 0, *i as u64),
            Ipld::Integer(i) => head(out, 1, (-1 - *i) as u64),
            Ipld::Float(f) => {
                out.push(0xfb);
                out.extend_from_slice(&f.to_bits().to_be_bytes());
            }
            Ipld::String(s) => {
                head(out, 3, s.len() as u64);
                out.extend_from_slice(s.as_bytes());
            }
            Ipld::Bytes(b) => {
                head(out, 2, b.len() as u64);
                out.extend_from_slice(b);
            }
            Ipld::List(items) => {
                head(out, 4, items.len() as u64);
                for item in items {
                    item.encode_into(out);
                }
            }
            Ipld::Map(map) => {
                head(out, 5, map.len() as u64);
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort_by(|a, b| a.len().cmp(&b.len()).then_with(|| a.cmp(b)));
                for key in keys {
                    head(out, 3, key.len() as u64);
                    out.extend_from_slice(key.as_bytes());
                    map[key].encode_into(out);
                }
            }
            Ipld::Link(cid) => {
                head(out, 6, CID_TAG);
                let mut bytes = vec![0u8];
                cid.write_bytes(&mut bytes);
                head(out, 2, bytes.len() as u64);
                out.extend_from_slice(&bytes);
            }
        }
    }

    /// Decodes one DAG-CBOR value that must span all of `bytes`.
    pub fn decode(bytes: &[u8]) -> DagResult<Ipld> {
        let mut d = Decoder { bytes, pos: 0 };
        let value = d.value(0)?;
        if d.pos != bytes.len() {
            return Err(d.err("trailing bytes after value"));
        }
        Ok(value)
    }

    /// Decodes the value at the start of `bytes`; returns it and how many
    /// bytes it took (what follows is left alone).
    pub fn decode_prefix(bytes: &[u8]) -> DagResult<(Ipld, usize)> {
        let mut d = Decoder { bytes, pos: 0 };
        let value = d.value(0)?;
        Ok((value, d.pos))
    }

    /// Appends every link in this value, depth first.
    pub fn collect_links(&self, out: &mut Vec<Cid>) {
        match self {
            Ipld::Link(cid) => out.push(*cid),
            Ipld::List(items) => items.iter().for_each(|i| i.collect_links(out)),
            Ipld::Map(map) => map.values().for_each(|v| v.collect_links(out)),
            _ => {}
        }
    }

    /// The value under `key` if this is a map.
    pub fn get(&self, key: &str) -> Option<&Ipld> {
        match self {
            Ipld::Map(map) => map.get(key),
            _ => None,
        }
    }
}

/// The links of a DAG-CBOR block, in order.
pub fn links(bytes: &[u8]) -> DagResult<Vec<Cid>> {
    let mut out = Vec::new();
    Ipld::decode(bytes)?.collect_links(&mut out);
    Ok(out)
}

fn head(out: &mut Vec<u8>, major: u8, value: u64) {
    let m = major << 5;
    if value < 24 {
        out.push(m | value as u8);
    } else if value <= u8::MAX as u64 {
        out.extend_from_slice(&[m | 24, value as u8]);
    } else if value <= u16::MAX as u64 {
        out.push(m | 25);
        out.extend_from_slice(&(value as u16).to_be_bytes());
    } else if value <= u32::MAX as u64 {
        out.push(m | 26);
        out.extend_from_slice(&(value as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&value.to_be_bytes());
    }
}

struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn err(&self, reason: &str) -> DagError {
        DagError::Cbor {
            offset: self.pos,
            reason: reason.to_string(),
        }
    }

    fn take(&mut self, n: usize) -> DagResult<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let end = end.ok_or_else(|| self.err("unexpected end of input"))?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }

    /// Reads a head; returns (major type, argument). Refuses non-minimal forms.
    fn head(&mut self) -> DagResult<(u8, u64)> {
        let first = self.take(1)?[0];
        let major = first >> 5;
        let info = first & 0x1f;
        if major == 7 {
            return Ok((7, u64::from(info)));
        }
        let value = match info {
            0..=23 => u64::from(info),
            24 => u64::from(self.take(1)?[0]),
            25 => u64::from(u16::from_be_bytes([self.take(1)?[0], self.take(1)?[0]])),
            26 => {
                let b = self.take(4)?;
                u64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            }
            27 => {
                let b = self.take(8)?;
                u64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
            }
            _ => return Err(self.err("indefinite lengths and reserved forms are not DAG-CBOR")),
        };
        let minimal = match info {
            24 => value >= 24,
            25 => value > u8::MAX as u64,
            26 => value > u16::MAX as u64,
            27 => value > u32::MAX as u64,
            _ => true,
        };
        if !minimal {
            return Err(self.err("integer or length not in its shortest form"));
        }
        Ok((major, value))
    }

    fn length(&self, len: u64) -> DagResult<usize> {
        // Every item takes at least one byte, so a length beyond what is
        // left is a lie; checking it here keeps allocation bounded by input.
        let left = (self.bytes.len() - self.pos) as u64;
        if len > left {
            return Err(self.err("length runs past the end of input"));
        }
        Ok(len as usize)
    }

    fn text(&mut self, len: u64) -> DagResult<String> {
        let len = self.length(len)?;
        let raw = self.take(len)?.to_vec();
        String::from_utf8(raw).map_err(|_| self.err("text is not UTF-8"))
    }

    fn value(&mut self, depth: usize) -> DagResult<Ipld> {
        if depth > MAX_DEPTH {
            return Err(self.err("nesting too deep"));
        }
        let start = self.pos;
        let (major, arg) = self.head()?;
        Ok(match major {
            0 => Ipld::Integer(i128::from(arg)),
            1 => Ipld::Integer(-1 - i128::from(arg)),
            2 => {
                let len = self.length(arg)?;
                Ipld::Bytes(self.take(len)?.to_vec())
            }
            3 => Ipld::String(self.text(arg)?),
            4 => {
                let len = self.length(arg)?;
                let mut items = Vec::with_capacity(len);
                for _ in 0..len {
                    items.push(self.value(depth + 1)?);
                }
                Ipld::List(items)
            }
            5 => {
                let len = self.length(arg)?;
                let mut map = BTreeMap::new();
                let mut previous: Option<String> = None;
                for _ in 0..len {
                    let (kmajor, klen) = self.head()?;
                    if kmajor != 3 {
                        return Err(self.err("map keys must be text"));
                    }
                    let key = self.text(klen)?;
                    if let Some(prev) = &previous {
                        let order = prev.len().cmp(&key.len()).then_with(|| prev.cmp(&key));
                        if order != std::cmp::Ordering::Less {
                            return Err(self.err("map keys not in canonical order or repeated"));
                        }
                    }
                    let value = self.value(depth + 1)?;
                    previous = Some(key.clone());
                    map.insert(key, value);
                }
                Ipld::Map(map)
            }
            6 => {
                if arg != CID_TAG {
                    self.pos = start;
                    return Err(self.err("only tag 42 (CID) is allowed"));
                }
                let (bmajor, blen) = self.head()?;
                if bmajor != 2 {
                    return Err(self.err("CID tag must wrap a byte string"));
                }
                let blen = self.length(blen)?;
                let raw = self.take(blen)?;
                if raw.first() != Some(&0) {
                    return Err(self.err("CID bytes must start with the identity multibase 0x00"));
                }
                Ipld::Link(Cid::from_bytes(&raw[1..])?)
            }
            _ => match arg {
                20 => Ipld::Bool(false),
                21 => Ipld::Bool(true),
                22 => Ipld::Null,
                27 => {
                    let b = self.take(8)?;
                    let f = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
                    if !f.is_finite() {
                        return Err(self.err("NaN and infinities are not DAG-CBOR"));
                    }
                    Ipld::Float(f)
                }
                _ => return Err(self.err("unsupported simple value or float width")),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cid::Codec;
    use proptest::prelude::*;

    fn sample() -> Ipld {
        let link = Cid::hash(Codec::RAW, b"x");
        let mut map = BTreeMap::new();
        map.insert("roots".to_string(), Ipld::List(vec![Ipld::Link(link)]));
        map.insert("version".to_string(), Ipld::Integer(1));
        map.insert("a".to_string(), Ipld::Integer(-300));
        map.insert("bb".to_string(), Ipld::Bytes(vec![1, 2, 3]));
        map.insert("f".to_string(), Ipld::Float(1.5));
        map.insert("n".to_string(), Ipld::Null);
        map.insert("t".to_string(), Ipld::Bool(true));
        Ipld::Map(map)
    }

    #[test]
    fn round_trip_and_canonical_key_order() {
        let v = sample();
        let bytes = v.encode();
        assert_eq!(Ipld::decode(&bytes).expect("decodes"), v);
        // Keys sorted by length first: "a" ... "bb" ... "roots" ... "version".
        let pos = |k: &str| {
            bytes
                .windows(k.len())
                .position(|w| w == k.as_bytes())
                .expect("key present")
        };
        assert!(pos("t") < pos("bb") && pos("bb") < pos("roots") && pos("roots") < pos("version"));
    }

    #[test]
    fn links_are_found() {
        let v = sample();
        assert_eq!(
            links(&v.encode()).expect("decodes"),
            vec![Cid::hash(Codec::RAW, b"x")]
        );
    }

    #[test]
    fn refuses_non_canonical_and_hostile_input() {
        for bad in [
            &[0x18, 0x01][..],                                       // 1 in two bytes
            &[0x9f, 0xff],                                           // indefinite list
            &[0x5b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], // huge length
            &[0xc1, 0x00],                                           // tag other than 42
            &[0xa2, 0x61, 0x62, 0x00, 0x61, 0x61, 0x00],             // keys out of order
            &[0x01, 0x02],                                           // trailing bytes
            &[0xfb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0],                   // NaN
        ] {
            assert!(Ipld::decode(bad).is_err(), "{bad:02x?}");
        }
        let deep = vec![0x81u8; 10_000];
        assert!(Ipld::decode(&deep).is_err());
    }

    fn arb_ipld() -> impl Strategy<Value = Ipld> {
        let leaf = prop_oneof![
            Just(Ipld::Null),
            any::<bool>().prop_map(Ipld::Bool),
            any::<i64>().prop_map(|i| Ipld::Integer(i128::from(i))),
            any::<u64>().prop_map(|i| Ipld::Integer(i128::from(i))),
            "[a-z]{0,8}".prop_map(Ipld::String),
            proptest::collection::vec(any::<u8>(), 0..16).prop_map(Ipld::Bytes),
            any::<[u8; 32]>().prop_map(|d| Ipld::Link(Cid::new(Codec::DAG_CBOR, d))),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Ipld::List),
                proptest::collection::btree_map("[a-z]{0,6}", inner, 0..6).prop_map(Ipld::Map),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_round_trips(v in arb_ipld()) {
            let bytes = v.encode();
            prop_assert_eq!(Ipld::decode(&bytes).expect("decodes"), v.clone());
            prop_assert_eq!(Ipld::decode(&bytes).expect("decodes").encode(), bytes);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Ipld::decode(&bytes);
        }
    }
}
