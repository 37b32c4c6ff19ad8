//! Conformance: `testdata/ssz-progressive/` (EIP-7916 progressive lists and bitlists, EIP-7495
//! progressive containers), read as data.
//!
//! Each file describes its types; this test builds a small dynamic SSZ model from those
//! descriptors: a strict decoder and a `hash_tree_root` whose progressive parts are the crate's
//! [`ferrosigner_consensus::progressive`] functions (the regular parts use `tree_hash`). For
//! every valid case: `serialized` decodes to exactly `value` and hashes to `root`. For every
//! invalid case: decoding fails. The crate's typed progressive values (`ProgressiveList<T>`,
//! `ProgressiveByteList`, `ProgressiveBitList`) are checked against the list and bitlist files
//! too, and the bare `merkleize_progressive` roots against `merkleize_progressive`.

use std::path::PathBuf;

use alloy_primitives::U256;
use ferrosigner_consensus::progressive::{
    ProgressiveBitList, ProgressiveByteList, ProgressiveList, merkleize_progressive,
    progressive_bitlist_root, progressive_container_root, progressive_list_root_composite,
    progressive_list_root_packed,
};
use serde_json::Value;
use ssz::Decode;
use tree_hash::{TreeHash, merkle_root, mix_in_length};

fn dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../testdata/ssz-progressive"
    ))
}

fn load(file: &str) -> Value {
    let text = std::fs::read_to_string(dir().join(file)).expect("vector file");
    serde_json::from_str(&text).expect("vector JSON")
}

fn unhex(s: &str) -> Vec<u8> {
    hex::decode(s.trim_start_matches("0x")).expect("hex")
}

fn root32(s: &str) -> [u8; 32] {
    unhex(s).try_into().expect("32-byte root")
}

/// An SSZ type from a vector file's descriptor.
#[derive(Debug, Clone)]
enum Ty {
    /// `uintN`, `byte` (1 byte) by size in bytes.
    Uint(usize),
    Bool,
    /// `byte`: a uint8 whose JSON is `0x` hex.
    Byte,
    List(Box<Ty>, usize),
    ProgList(Box<Ty>),
    Bitlist(usize),
    ProgBitlist,
    Bitvector(usize),
    Container(Vec<Ty>, Vec<String>),
    ProgContainer(Vec<bool>, Vec<Ty>, Vec<String>),
}

/// A decoded value: basic values as little-endian bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val {
    Basic(Vec<u8>),
    Seq(Vec<Val>),
    Bits(Vec<bool>),
    Fields(Vec<Val>),
}

fn ty(v: &Value) -> Ty {
    if let Some(name) = v.as_str() {
        return match name {
            "bool" => Ty::Bool,
            "byte" => Ty::Byte,
            "uint8" => Ty::Uint(1),
            "uint16" => Ty::Uint(2),
            "uint32" => Ty::Uint(4),
            "uint64" => Ty::Uint(8),
            "uint128" => Ty::Uint(16),
            "uint256" => Ty::Uint(32),
            other => panic!("unknown basic type {other}"),
        };
    }
    let fields = |v: &Value| -> (Vec<Ty>, Vec<String>) {
        v["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| (ty(&f[1]), f[0].as_str().unwrap().to_owned()))
            .unzip()
    };
    let limit = |v: &Value| v["limit"].as_u64().unwrap() as usize;
    match v["kind"].as_str().unwrap() {
        "list" => Ty::List(Box::new(ty(&v["elem"])), limit(v)),
        "progressive_list" => Ty::ProgList(Box::new(ty(&v["elem"]))),
        "bitlist" => Ty::Bitlist(limit(v)),
        "progressive_bitlist" => Ty::ProgBitlist,
        "bitvector" => Ty::Bitvector(v["length"].as_u64().unwrap() as usize),
        "container" => {
            let (t, n) = fields(v);
            Ty::Container(t, n)
        }
        "progressive_container" => {
            let active = v["active_fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_u64() == Some(1))
                .collect();
            let (t, n) = fields(v);
            Ty::ProgContainer(active, t, n)
        }
        other => panic!("unknown kind {other}"),
    }
}

impl Ty {
    fn basic_size(&self) -> Option<usize> {
        match self {
            Ty::Uint(n) => Some(*n),
            Ty::Bool | Ty::Byte => Some(1),
            _ => None,
        }
    }

    fn fixed_size(&self) -> Option<usize> {
        match self {
            Ty::Uint(_) | Ty::Bool | Ty::Byte => self.basic_size(),
            Ty::Bitvector(n) => Some(n.div_ceil(8)),
            Ty::Container(fields, _) | Ty::ProgContainer(_, fields, _) => {
                fields.iter().map(Ty::fixed_size).sum()
            }
            _ => None,
        }
    }
}

fn offset_at(bytes: &[u8], at: usize) -> Result<usize, String> {
    let b = bytes.get(at..at + 4).ok_or("offset out of bounds")?;
    Ok(u32::from_le_bytes(b.try_into().unwrap()) as usize)
}

/// Strict SSZ decoding.
fn decode(t: &Ty, bytes: &[u8]) -> Result<Val, String> {
    match t {
        Ty::Uint(n) => {
            if bytes.len() != *n {
                return Err(format!("uint{} needs {n} bytes", n * 8));
            }
            Ok(Val::Basic(bytes.to_vec()))
        }
        Ty::Byte => {
            if bytes.len() != 1 {
                return Err("byte needs 1 byte".into());
            }
            Ok(Val::Basic(bytes.to_vec()))
        }
        Ty::Bool => match bytes {
            [0] | [1] => Ok(Val::Basic(bytes.to_vec())),
            _ => Err("invalid bool".into()),
        },
        Ty::Bitvector(n) => {
            if bytes.len() != n.div_ceil(8) {
                return Err("bitvector length".into());
            }
            let bits: Vec<bool> = (0..bytes.len() * 8)
                .map(|i| bytes[i / 8] & (1 << (i % 8)) != 0)
                .collect();
            if bits[*n..].iter().any(|b| *b) {
                return Err("bitvector bits beyond its length".into());
            }
            Ok(Val::Bits(bits[..*n].to_vec()))
        }
        Ty::Bitlist(_) | Ty::ProgBitlist => {
            let b = ProgressiveBitList::from_ssz(bytes)?;
            if let Ty::Bitlist(limit) = t
                && b.len() > *limit
            {
                return Err("bitlist over its limit".into());
            }
            Ok(Val::Bits((0..b.len()).map(|i| b.get(i).unwrap()).collect()))
        }
        Ty::List(elem, _) | Ty::ProgList(elem) => {
            let items = match elem.fixed_size() {
                Some(size) => {
                    if !bytes.len().is_multiple_of(size) {
                        return Err("list bytes not a multiple of the element size".into());
                    }
                    bytes
                        .chunks(size)
                        .map(|c| decode(elem, c))
                        .collect::<Result<Vec<_>, _>>()?
                }
                None => {
                    if bytes.is_empty() {
                        Vec::new()
                    } else {
                        let first = offset_at(bytes, 0)?;
                        if !first.is_multiple_of(4) || first == 0 || first > bytes.len() {
                            return Err("bad first offset".into());
                        }
                        let count = first / 4;
                        let mut offsets = (0..count)
                            .map(|i| offset_at(bytes, 4 * i))
                            .collect::<Result<Vec<_>, _>>()?;
                        offsets.push(bytes.len());
                        let mut out = Vec::new();
                        for w in offsets.windows(2) {
                            if w[0] > w[1] || w[1] > bytes.len() {
                                return Err("offsets out of order".into());
                            }
                            out.push(decode(elem, &bytes[w[0]..w[1]])?);
                        }
                        out
                    }
                }
            };
            if let Ty::List(_, limit) = t
                && items.len() > *limit
            {
                return Err("list over its limit".into());
            }
            Ok(Val::Seq(items))
        }
        Ty::Container(fields, _) | Ty::ProgContainer(_, fields, _) => {
            let fixed_len: usize = fields.iter().map(|f| f.fixed_size().unwrap_or(4)).sum();
            if bytes.len() < fixed_len {
                return Err("container shorter than its fixed part".into());
            }
            let mut pos = 0;
            let mut fixed_vals: Vec<Option<Val>> = Vec::new();
            let mut offsets = Vec::new();
            for f in fields {
                match f.fixed_size() {
                    Some(size) => {
                        fixed_vals.push(Some(decode(f, &bytes[pos..pos + size])?));
                        pos += size;
                    }
                    None => {
                        offsets.push(offset_at(bytes, pos)?);
                        fixed_vals.push(None);
                        pos += 4;
                    }
                }
            }
            if offsets.is_empty() {
                if bytes.len() != fixed_len {
                    return Err("container has trailing bytes".into());
                }
            } else if offsets[0] != fixed_len {
                return Err("first offset does not follow the fixed part".into());
            }
            offsets.push(bytes.len());
            let mut var_vals = Vec::new();
            for w in offsets.windows(2) {
                if w[0] > w[1] || w[1] > bytes.len() {
                    return Err("offsets out of order".into());
                }
                var_vals.push((w[0], w[1]));
            }
            let mut var_iter = var_vals.into_iter();
            let mut out = Vec::new();
            for (f, v) in fields.iter().zip(fixed_vals) {
                out.push(match v {
                    Some(v) => v,
                    None => {
                        let (a, b) = var_iter.next().unwrap();
                        decode(f, &bytes[a..b])?
                    }
                });
            }
            Ok(Val::Fields(out))
        }
    }
}

fn le_from_decimal(s: &str, size: usize) -> Vec<u8> {
    let v = U256::from_str_radix(s, 10).expect("decimal");
    v.to_le_bytes::<32>()[..size].to_vec()
}

/// The canonical JSON mapping of the vectors.
fn from_json(t: &Ty, v: &Value) -> Val {
    match t {
        Ty::Uint(n) => Val::Basic(le_from_decimal(v.as_str().expect("uint string"), *n)),
        Ty::Byte => Val::Basic(unhex(v.as_str().unwrap())),
        Ty::Bool => Val::Basic(vec![u8::from(v.as_bool().unwrap())]),
        Ty::Bitvector(_) | Ty::Bitlist(_) | Ty::ProgBitlist => {
            decode(t, &unhex(v.as_str().unwrap())).expect("JSON bitfield decodes")
        }
        Ty::List(elem, _) | Ty::ProgList(elem) => match (elem.as_ref(), v) {
            (Ty::Byte, Value::String(s)) => {
                Val::Seq(unhex(s).into_iter().map(|b| Val::Basic(vec![b])).collect())
            }
            _ => Val::Seq(
                v.as_array()
                    .unwrap()
                    .iter()
                    .map(|e| from_json(elem, e))
                    .collect(),
            ),
        },
        Ty::Container(fields, names) | Ty::ProgContainer(_, fields, names) => Val::Fields(
            fields
                .iter()
                .zip(names)
                .map(|(f, n)| from_json(f, &v[n.as_str()]))
                .collect(),
        ),
    }
}

fn pack(items: &[Val]) -> Vec<u8> {
    items
        .iter()
        .flat_map(|i| match i {
            Val::Basic(b) => b.clone(),
            _ => unreachable!(),
        })
        .collect()
}

fn pack_bits(bits: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; bits.len().div_ceil(8)];
    for (i, b) in bits.iter().enumerate() {
        if *b {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

fn hash_tree_root(t: &Ty, v: &Val) -> [u8; 32] {
    match (t, v) {
        (Ty::Uint(_) | Ty::Bool | Ty::Byte, Val::Basic(b)) => {
            let mut out = [0u8; 32];
            out[..b.len()].copy_from_slice(b);
            out
        }
        (Ty::Bitvector(n), Val::Bits(bits)) => merkle_root(&pack_bits(bits), n.div_ceil(256)).0,
        (Ty::Bitlist(limit), Val::Bits(bits)) => {
            mix_in_length(
                &merkle_root(&pack_bits(bits), limit.div_ceil(256)),
                bits.len(),
            )
            .0
        }
        (Ty::ProgBitlist, Val::Bits(bits)) => {
            progressive_bitlist_root(&pack_bits(bits), bits.len() as u64)
        }
        (Ty::List(elem, limit), Val::Seq(items)) => {
            let root = match elem.basic_size() {
                Some(size) => merkle_root(&pack(items), (limit * size).div_ceil(32)),
                None => {
                    let roots: Vec<u8> =
                        items.iter().flat_map(|i| hash_tree_root(elem, i)).collect();
                    merkle_root(&roots, *limit)
                }
            };
            mix_in_length(&root, items.len()).0
        }
        (Ty::ProgList(elem), Val::Seq(items)) => match elem.basic_size() {
            Some(_) => progressive_list_root_packed(&pack(items), items.len() as u64),
            None => {
                let roots: Vec<[u8; 32]> = items.iter().map(|i| hash_tree_root(elem, i)).collect();
                progressive_list_root_composite(&roots)
            }
        },
        (Ty::Container(fields, _), Val::Fields(vals)) => {
            let roots: Vec<u8> = fields
                .iter()
                .zip(vals)
                .flat_map(|(f, v)| hash_tree_root(f, v))
                .collect();
            merkle_root(&roots, fields.len()).0
        }
        (Ty::ProgContainer(active, fields, _), Val::Fields(vals)) => {
            let roots: Vec<[u8; 32]> = fields
                .iter()
                .zip(vals)
                .map(|(f, v)| hash_tree_root(f, v))
                .collect();
            progressive_container_root(active, &roots).expect("valid active_fields")
        }
        _ => panic!("value does not match type {t:?}"),
    }
}

const VALID_FILES: [&str; 12] = [
    "progressive_list_bool.json",
    "progressive_list_uint8.json",
    "progressive_list_byte.json",
    "progressive_list_uint16.json",
    "progressive_list_uint32.json",
    "progressive_list_uint64.json",
    "progressive_list_uint128.json",
    "progressive_list_uint256.json",
    "progressive_bitlist.json",
    "progressive_list_composite.json",
    "progressive_container.json",
    "container_with_progressive_fields.json",
];

const INVALID_FILES: [&str; 4] = [
    "progressive_list_basic_invalid.json",
    "progressive_bitlist_invalid.json",
    "progressive_container_invalid.json",
    "container_with_progressive_fields_invalid.json",
];

fn cases(file: &str) -> (Value, Vec<Value>) {
    let d = load(file);
    let cases = d["cases"].as_array().unwrap().clone();
    (d["types"].clone(), cases)
}

#[test]
fn every_valid_case_decodes_to_its_value_and_hashes_to_its_root() {
    let mut total = 0;
    for file in VALID_FILES {
        let (types, cases) = cases(file);
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            assert_eq!(case["valid"], true, "{file} {name}");
            let t = ty(&types[case["type"].as_str().unwrap()]);
            let decoded = decode(&t, &unhex(case["serialized"].as_str().unwrap()))
                .unwrap_or_else(|e| panic!("{file} {name}: {e}"));
            assert_eq!(decoded, from_json(&t, &case["value"]), "{file} {name}");
            assert_eq!(
                hex::encode(hash_tree_root(&t, &decoded)),
                case["root"].as_str().unwrap().trim_start_matches("0x"),
                "{file} {name}"
            );
            total += 1;
        }
    }
    assert_eq!(total, 1147, "valid cases");
}

#[test]
fn every_invalid_case_is_rejected() {
    let mut total = 0;
    for file in INVALID_FILES {
        let (types, cases) = cases(file);
        for case in &cases {
            let name = case["name"].as_str().unwrap();
            assert_eq!(case["valid"], false, "{file} {name}");
            let t = ty(&types[case["type"].as_str().unwrap()]);
            let bytes = unhex(case["serialized"].as_str().unwrap());
            assert!(decode(&t, &bytes).is_err(), "{file} {name} decoded");
            total += 1;
        }
    }
    assert_eq!(total, 469, "invalid cases");
}

#[test]
fn bare_merkleize_progressive_roots() {
    let (_, cases) = cases("merkleize_progressive.json");
    assert_eq!(cases.len(), 48);
    for case in cases {
        let n = case["num_chunks"].as_u64().unwrap();
        let chunks: Vec<[u8; 32]> = (0..n)
            .map(|i| ethereum_hashing::hash_fixed(&i.to_le_bytes()))
            .collect();
        let name = case["name"].as_str().unwrap();
        assert_eq!(
            merkleize_progressive(&chunks),
            root32(case["merkleize_progressive_root"].as_str().unwrap()),
            "{name}"
        );
        assert_eq!(
            progressive_list_root_composite(&chunks),
            root32(case["progressive_list_uint256_root"].as_str().unwrap()),
            "{name}"
        );
        let packed: Vec<u8> = chunks.iter().flatten().copied().collect();
        assert_eq!(
            progressive_list_root_packed(&packed, n),
            root32(case["progressive_list_uint256_root"].as_str().unwrap()),
            "{name} packed"
        );
    }
}

/// The typed values the Gloas containers use, against the list and bitlist files.
#[test]
fn typed_progressive_values_match_the_vectors() {
    fn check<T: Decode + TreeHash>(file: &str, invalid: Option<(&str, &str)>) {
        let (_, valid) = cases(file);
        for case in valid {
            let name = case["name"].as_str().unwrap();
            let v = T::from_ssz_bytes(&unhex(case["serialized"].as_str().unwrap()))
                .unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(
                v.tree_hash_root().0,
                root32(case["root"].as_str().unwrap()),
                "{file} {name}"
            );
        }
        if let Some((invalid_file, type_name)) = invalid {
            let (_, invalid) = cases(invalid_file);
            for case in invalid.iter().filter(|c| c["type"] == type_name) {
                let bytes = unhex(case["serialized"].as_str().unwrap());
                assert!(T::from_ssz_bytes(&bytes).is_err(), "{}", case["name"]);
            }
        }
    }
    check::<ProgressiveList<bool>>(
        "progressive_list_bool.json",
        Some((
            "progressive_list_basic_invalid.json",
            "ProgressiveList[bool]",
        )),
    );
    check::<ProgressiveList<u8>>("progressive_list_uint8.json", None);
    check::<ProgressiveByteList>("progressive_list_byte.json", None);
    check::<ProgressiveList<u16>>(
        "progressive_list_uint16.json",
        Some((
            "progressive_list_basic_invalid.json",
            "ProgressiveList[uint16]",
        )),
    );
    check::<ProgressiveList<u32>>(
        "progressive_list_uint32.json",
        Some((
            "progressive_list_basic_invalid.json",
            "ProgressiveList[uint32]",
        )),
    );
    check::<ProgressiveList<u64>>(
        "progressive_list_uint64.json",
        Some((
            "progressive_list_basic_invalid.json",
            "ProgressiveList[uint64]",
        )),
    );
    check::<ProgressiveList<U256>>("progressive_list_uint256.json", None);
    check::<ProgressiveBitList>(
        "progressive_bitlist.json",
        Some(("progressive_bitlist_invalid.json", "ProgressiveBitList")),
    );

    // JSON: a progressive bitlist reads the SSZ hex; a byte list reads hex.
    let (_, bit_cases) = cases("progressive_bitlist.json");
    for case in bit_cases {
        let from_json: ProgressiveBitList = serde_json::from_value(case["value"].clone()).unwrap();
        assert_eq!(
            from_json.tree_hash_root().0,
            root32(case["root"].as_str().unwrap())
        );
    }
    let (_, byte_cases) = cases("progressive_list_byte.json");
    for case in byte_cases {
        let from_json: ProgressiveByteList = serde_json::from_value(case["value"].clone()).unwrap();
        assert_eq!(
            from_json.tree_hash_root().0,
            root32(case["root"].as_str().unwrap())
        );
    }
}
