//! Progressive SSZ merkleization: EIP-7916 `ProgressiveList` / `ProgressiveBitList` and
//! EIP-7495/7688 `ProgressiveContainer(active_fields)`, as specified in consensus-specs
//! `ssz/simple-serialize.md` (commit `a08d8a6e`, after PR #4813 "Merkleize progressive SSZ shape
//! to right").
//!
//! The published `tree_hash` crates have no progressive support, so it lives here, once:
//!
//! - `merkleize_progressive(chunks, num_leaves=1)`: if `len(chunks) == 0` the root is
//!   `Bytes32()`; otherwise `hash(a, b)` where `a = merkleize(chunks[:num_leaves], num_leaves)`
//!   and `b = merkleize_progressive(chunks[num_leaves:], num_leaves * 4)`. The first subtree is
//!   the **left** child. Subtrees hold 1, 4, 16, 64, … chunks.
//! - `mix_in_length(root, length) = hash(root, uint256(length))` for progressive lists and
//!   bitlists.
//! - `mix_in_active_fields(root, active_fields) = hash(root, pack_bits(active_fields))` for
//!   progressive containers, whose chunk list has **one entry per `active_fields` position**: the
//!   root of the next field where the entry is 1, a zero chunk where it is 0.
//!
//! Serialization is unchanged by progressiveness: a progressive list serializes like a `List`, a
//! progressive bitlist like a `Bitlist` (delimiter bit included), a progressive container like a
//! `Container` of its fields. The types here ([`ProgressiveList`], [`ProgressiveByteList`],
//! [`ProgressiveBitList`]) implement `TreeHash`, SSZ `Encode`/`Decode` and the Beacon-API JSON
//! encoding, with no length limit at the type level (limits that the state transition asserts
//! are checked by the containers that use them).

use std::fmt;

use ethereum_hashing::hash32_concat;
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use ssz::{Decode, DecodeError, Encode};
use tree_hash::{BYTES_PER_CHUNK, Hash256, PackedEncoding, TreeHash, TreeHashType, merkle_root};

use crate::Root;

/// A zero chunk, `Bytes32()`.
const ZERO_CHUNK: Root = [0u8; 32];

/// `hash(a, b)`: SHA-256 of the two 32-byte nodes.
fn hash_pair(a: &Root, b: &Root) -> Root {
    hash32_concat(a, b)
}

/// `merkleize_progressive(chunks)` over `bytes` split into 32-byte chunks, the last one padded
/// with zeros (so `bytes` may be `pack(value)` of any length).
///
/// Computed bottom-up without recursion: the subtree roots `s_0, s_1, …, s_{k-1}` (of 1, 4, 16,
/// … chunks, each padded to its full width) are folded from the right as
/// `hash(s_0, hash(s_1, … hash(s_{k-1}, Bytes32())))`, which is the spec's recursion unrolled.
pub fn merkleize_progressive_bytes(bytes: &[u8]) -> Root {
    let mut subtrees: Vec<Root> = Vec::new();
    let mut rest = bytes;
    let mut width = 1usize;
    while !rest.is_empty() {
        let take = rest.len().min(width.saturating_mul(BYTES_PER_CHUNK));
        let (head, tail) = rest.split_at(take);
        subtrees.push(merkle_root(head, width).0);
        rest = tail;
        width = width.saturating_mul(4);
    }
    fold_subtrees(&subtrees)
}

/// `merkleize_progressive(chunks)` for a list of 32-byte chunks.
pub fn merkleize_progressive(chunks: &[Root]) -> Root {
    let mut subtrees: Vec<Root> = Vec::new();
    let mut rest = chunks;
    let mut width = 1usize;
    while !rest.is_empty() {
        let take = rest.len().min(width);
        let (head, tail) = rest.split_at(take);
        subtrees.push(merkleize_chunks(head, width));
        rest = tail;
        width = width.saturating_mul(4);
    }
    fold_subtrees(&subtrees)
}

/// `merkleize(chunks, limit=width)` for `chunks.len() <= width` (a power of two).
fn merkleize_chunks(chunks: &[Root], width: usize) -> Root {
    match chunks {
        [] => ZERO_CHUNK,
        [one] if width == 1 => *one,
        _ => {
            let mut hasher = tree_hash::MerkleHasher::with_leaves(width);
            for c in chunks {
                // Cannot fail: `chunks.len() <= width` leaves.
                let _ = hasher.write(c);
            }
            hasher.finish().map(|h| h.0).unwrap_or(ZERO_CHUNK)
        }
    }
}

fn fold_subtrees(subtrees: &[Root]) -> Root {
    subtrees
        .iter()
        .rev()
        .fold(ZERO_CHUNK, |acc, subtree| hash_pair(subtree, &acc))
}

/// `mix_in_length(root, length)`: `hash(root, uint256_le(length))`.
pub fn mix_in_length(root: &Root, length: u64) -> Root {
    let mut len = [0u8; 32];
    len[..8].copy_from_slice(&length.to_le_bytes());
    hash_pair(root, &len)
}

/// `pack_bits(active_fields)` as one 32-byte chunk, bit `i` of byte `i / 8` LSB-first.
///
/// Returns `None` when there are more than 256 positions (the spec restricts `active_fields` to
/// at most 256 bits), or when the last entry is not 1 (the spec requires it).
pub fn pack_active_fields(active_fields: &[bool]) -> Option<Root> {
    if active_fields.len() > 256 || active_fields.last() != Some(&true) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, _) in active_fields.iter().enumerate().filter(|(_, a)| **a) {
        out[i / 8] |= 1 << (i % 8);
    }
    Some(out)
}

/// `mix_in_active_fields(merkleize_progressive(chunks), active_fields)` for a progressive
/// container with `active_fields` whose fields have the roots `field_roots`, in field order.
///
/// Returns `None` when `active_fields` is invalid (see [`pack_active_fields`]) or the number of
/// 1 entries is not the number of fields.
pub fn progressive_container_root(active_fields: &[bool], field_roots: &[Root]) -> Option<Root> {
    let packed = pack_active_fields(active_fields)?;
    if active_fields.iter().filter(|a| **a).count() != field_roots.len() {
        return None;
    }
    let mut roots = field_roots.iter();
    let chunks: Vec<Root> = active_fields
        .iter()
        .map(|active| {
            if *active {
                roots.next().copied().unwrap_or(ZERO_CHUNK)
            } else {
                ZERO_CHUNK
            }
        })
        .collect();
    Some(hash_pair(&merkleize_progressive(&chunks), &packed))
}

/// The root of a progressive container whose `active_fields` are all 1 (every Gloas container):
/// `hash(merkleize_progressive(field_roots), pack_bits([1] * n))`.
///
/// # Panics
/// Never for `field_roots.len()` in `1..=256`; with 0 or more than 256 roots it returns the root
/// of the empty chunk list mixed with a zero chunk, which no valid container has.
pub fn progressive_container_root_all_active(field_roots: &[Root]) -> Root {
    let mut packed = [0u8; 32];
    for i in 0..field_roots.len().min(256) {
        packed[i / 8] |= 1 << (i % 8);
    }
    hash_pair(&merkleize_progressive(field_roots), &packed)
}

/// Root of a progressive list of basic values given `pack(value)` and the element count.
pub fn progressive_list_root_packed(packed: &[u8], len: u64) -> Root {
    mix_in_length(&merkleize_progressive_bytes(packed), len)
}

/// Root of a progressive list of composite values given the element roots.
pub fn progressive_list_root_composite(element_roots: &[Root]) -> Root {
    mix_in_length(
        &merkleize_progressive(element_roots),
        element_roots.len() as u64,
    )
}

/// Root of a progressive bitlist given its bits packed LSB-first without the delimiter
/// (`pack_bits(value)`) and its bit length.
pub fn progressive_bitlist_root(bits: &[u8], bit_len: u64) -> Root {
    mix_in_length(&merkleize_progressive_bytes(bits), bit_len)
}

/// The root of a list of `T` under progressive merkleization, choosing packing or element roots
/// by `T`'s tree-hash type.
fn progressive_root_of<T: TreeHash>(items: &[T]) -> Root {
    match T::tree_hash_type() {
        TreeHashType::Basic => {
            let factor = T::tree_hash_packing_factor().max(1);
            let mut packed = Vec::with_capacity(items.len() * BYTES_PER_CHUNK / factor + 32);
            for item in items {
                packed.extend_from_slice(&item.tree_hash_packed_encoding());
            }
            progressive_list_root_packed(&packed, items.len() as u64)
        }
        _ => {
            let roots: Vec<Root> = items.iter().map(|i| i.tree_hash_root().0).collect();
            progressive_list_root_composite(&roots)
        }
    }
}

/// EIP-7916 `ProgressiveList[T]`: a list with no length limit, merkleized progressively.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgressiveList<T>(pub Vec<T>);

impl<T> ProgressiveList<T> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T> From<Vec<T>> for ProgressiveList<T> {
    fn from(v: Vec<T>) -> Self {
        Self(v)
    }
}

impl<T: TreeHash> TreeHash for ProgressiveList<T> {
    fn tree_hash_type() -> TreeHashType {
        TreeHashType::List
    }

    fn tree_hash_packed_encoding(&self) -> PackedEncoding {
        unreachable!("a list is never packed")
    }

    fn tree_hash_packing_factor() -> usize {
        unreachable!("a list is never packed")
    }

    fn tree_hash_root(&self) -> Hash256 {
        Hash256::from(progressive_root_of(&self.0))
    }
}

impl<T: Encode> Encode for ProgressiveList<T> {
    fn is_ssz_fixed_len() -> bool {
        false
    }

    fn ssz_bytes_len(&self) -> usize {
        self.0.ssz_bytes_len()
    }

    fn ssz_append(&self, buf: &mut Vec<u8>) {
        self.0.ssz_append(buf)
    }
}

impl<T: Decode> Decode for ProgressiveList<T> {
    fn is_ssz_fixed_len() -> bool {
        false
    }

    fn from_ssz_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Vec::<T>::from_ssz_bytes(bytes).map(Self)
    }
}

impl<T: Serialize> Serialize for ProgressiveList<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for ProgressiveList<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Vec::<T>::deserialize(d).map(Self)
    }
}

/// A [`ProgressiveList`] whose JSON elements use a serde `with` module (e.g. quoted `uint64`).
pub(crate) mod progressive_list_with {
    use super::*;

    /// `ProgressiveList<[u8; N]>` as a JSON array of `0x` hex strings of exactly `N` bytes.
    pub(crate) mod hex_items {
        use super::*;

        pub(crate) fn serialize<S: Serializer, const N: usize>(
            v: &ProgressiveList<[u8; N]>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            let items: Vec<String> = v.0.iter().map(|b| crate::wire::to_hex(b)).collect();
            items.serialize(s)
        }

        pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
            d: D,
        ) -> Result<ProgressiveList<[u8; N]>, D::Error> {
            struct V<const N: usize>;
            impl<'de, const N: usize> Visitor<'de> for V<N> {
                type Value = Vec<[u8; N]>;
                fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                    write!(f, "an array of {N}-byte hex strings")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                    let mut out = Vec::new();
                    while let Some(s) = seq.next_element::<&str>()? {
                        out.push(crate::wire::decode_fixed::<N>(s).map_err(de::Error::custom)?);
                    }
                    Ok(out)
                }
            }
            d.deserialize_seq(V::<N>).map(ProgressiveList)
        }
    }
}

/// EIP-7916 `ProgressiveByteList` (`ProgressiveList[byte]`): JSON is one `0x` hex string.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ProgressiveByteList(pub Vec<u8>);

impl fmt::Debug for ProgressiveByteList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ProgressiveByteList({} bytes)", self.0.len())
    }
}

impl TreeHash for ProgressiveByteList {
    fn tree_hash_type() -> TreeHashType {
        TreeHashType::List
    }

    fn tree_hash_packed_encoding(&self) -> PackedEncoding {
        unreachable!("a list is never packed")
    }

    fn tree_hash_packing_factor() -> usize {
        unreachable!("a list is never packed")
    }

    fn tree_hash_root(&self) -> Hash256 {
        Hash256::from(progressive_list_root_packed(&self.0, self.0.len() as u64))
    }
}

impl Encode for ProgressiveByteList {
    fn is_ssz_fixed_len() -> bool {
        false
    }

    fn ssz_bytes_len(&self) -> usize {
        self.0.len()
    }

    fn ssz_append(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.0)
    }
}

impl Decode for ProgressiveByteList {
    fn is_ssz_fixed_len() -> bool {
        false
    }

    fn from_ssz_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Ok(Self(bytes.to_vec()))
    }
}

impl Serialize for ProgressiveByteList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::wire::to_hex(&self.0))
    }
}

impl<'de> Deserialize<'de> for ProgressiveByteList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ProgressiveByteList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a 0x hex string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                crate::wire::decode_hex_any(v)
                    .map(ProgressiveByteList)
                    .map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

/// EIP-7916 `ProgressiveBitList`: a bitlist with no length limit, merkleized progressively.
///
/// Held as its bits packed LSB-first (without the delimiter) and the bit length. SSZ and JSON
/// carry the `Bitlist` encoding: the bits followed by a single 1 delimiter bit, in the fewest
/// bytes (the last byte is never zero).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProgressiveBitList {
    bits: Vec<u8>,
    len: usize,
}

impl ProgressiveBitList {
    /// The bit list of `len` bits from `bits` (LSB-first); bits at or beyond `len` are cleared.
    pub fn from_bits(mut bits: Vec<u8>, len: usize) -> Self {
        bits.resize(len.div_ceil(8), 0);
        if !len.is_multiple_of(8)
            && let Some(last) = bits.last_mut()
        {
            *last &= (1u8 << (len % 8)) - 1;
        }
        Self { bits, len }
    }

    /// A bitlist from bools.
    pub fn from_bools(bools: &[bool]) -> Self {
        let mut bits = vec![0u8; bools.len().div_ceil(8)];
        for (i, _) in bools.iter().enumerate().filter(|(_, b)| **b) {
            bits[i / 8] |= 1 << (i % 8);
        }
        Self {
            bits,
            len: bools.len(),
        }
    }

    /// Number of bits.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bits.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bit `i`, or `None` beyond the length.
    pub fn get(&self, i: usize) -> Option<bool> {
        (i < self.len).then(|| self.bits[i / 8] & (1 << (i % 8)) != 0)
    }

    /// Reads the SSZ encoding (bits then the delimiter bit). Rejects an empty input and a last
    /// byte of zero (no delimiter in the last byte).
    pub fn from_ssz(bytes: &[u8]) -> Result<Self, String> {
        let (&last, head) = bytes
            .split_last()
            .ok_or_else(|| "a bitlist needs at least one byte (the delimiter)".to_owned())?;
        if last == 0 {
            return Err("the last byte of a bitlist must hold the delimiter bit".to_owned());
        }
        let top = 7 - last.leading_zeros() as usize;
        let len = head.len() * 8 + top;
        let mut bits = head.to_vec();
        let rem = last & !(1u8 << top);
        if top > 0 {
            bits.push(rem);
        }
        Ok(Self { bits, len })
    }

    /// The SSZ encoding: bits then the delimiter bit.
    pub fn to_ssz(&self) -> Vec<u8> {
        let mut out = self.bits.clone();
        out.resize(self.len / 8 + 1, 0);
        out[self.len / 8] |= 1 << (self.len % 8);
        out
    }
}

impl TreeHash for ProgressiveBitList {
    fn tree_hash_type() -> TreeHashType {
        TreeHashType::List
    }

    fn tree_hash_packed_encoding(&self) -> PackedEncoding {
        unreachable!("a list is never packed")
    }

    fn tree_hash_packing_factor() -> usize {
        unreachable!("a list is never packed")
    }

    fn tree_hash_root(&self) -> Hash256 {
        Hash256::from(progressive_bitlist_root(&self.bits, self.len as u64))
    }
}

impl Encode for ProgressiveBitList {
    fn is_ssz_fixed_len() -> bool {
        false
    }

    fn ssz_bytes_len(&self) -> usize {
        self.len / 8 + 1
    }

    fn ssz_append(&self, buf: &mut Vec<u8>) {
        buf.extend_from_slice(&self.to_ssz())
    }
}

impl Decode for ProgressiveBitList {
    fn is_ssz_fixed_len() -> bool {
        false
    }

    fn from_ssz_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_ssz(bytes).map_err(DecodeError::BytesInvalid)
    }
}

impl Serialize for ProgressiveBitList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::wire::to_hex(&self.to_ssz()))
    }
}

impl<'de> Deserialize<'de> for ProgressiveBitList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ProgressiveBitList;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a 0x hex string of an SSZ bitlist")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                let bytes = crate::wire::decode_hex_any(v).map_err(E::custom)?;
                ProgressiveBitList::from_ssz(&bytes).map_err(E::custom)
            }
        }
        d.deserialize_str(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn z() -> Root {
        [0u8; 32]
    }

    /// The spec's recursive definition, literally.
    fn naive(chunks: &[Root], num_leaves: usize) -> Root {
        if chunks.is_empty() {
            return z();
        }
        let take = chunks.len().min(num_leaves);
        let a = merkleize_chunks(&chunks[..take], num_leaves);
        let b = naive(&chunks[take..], num_leaves * 4);
        hash_pair(&a, &b)
    }

    #[test]
    fn worked_example_from_the_vectors_source() {
        // proglist_uint64_len5_max: five times 2^64-1.
        let packed = [0xffu8; 40];
        let root = progressive_list_root_packed(&packed, 5);
        assert_eq!(
            hex::encode(root),
            "7219a02cf7f7be5b0362d1277d331697a8d69b1223e880de53308ff214c8bfd9"
        );
    }

    #[test]
    fn empty_is_zero_and_empty_list_mixes_zero_length() {
        assert_eq!(merkleize_progressive(&[]), z());
        assert_eq!(
            hex::encode(progressive_list_root_packed(&[], 0)),
            "f5a5fd42d16a20302798ef6ed309979b43003d2320d9f0e8ea9831a92759fb4b"
        );
    }

    #[test]
    fn bytes_and_chunks_agree_with_naive_for_all_small_sizes() {
        for n in 0..200usize {
            let chunks: Vec<Root> = (0..n).map(|i| [(i % 251) as u8 + 1; 32]).collect();
            let bytes: Vec<u8> = chunks.iter().flatten().copied().collect();
            let expected = naive(&chunks, 1);
            assert_eq!(merkleize_progressive(&chunks), expected, "{n}");
            assert_eq!(merkleize_progressive_bytes(&bytes), expected, "{n}");
        }
    }

    #[test]
    fn bitlist_ssz_round_trip_and_rejections() {
        for bytes in [&[0x01u8][..], &[0xff, 0x01], &[0x05], &[0x00, 0x80]] {
            let b = ProgressiveBitList::from_ssz(bytes).unwrap();
            assert_eq!(b.to_ssz(), bytes);
        }
        assert_eq!(ProgressiveBitList::from_ssz(&[0x05]).unwrap().len(), 2);
        for bad in [&[][..], &[0x00], &[0x01, 0x00], &[0xff, 0x01, 0x00]] {
            assert!(ProgressiveBitList::from_ssz(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn active_fields_packing() {
        let p = pack_active_fields(&[true, false, true, false, true]).unwrap();
        assert_eq!(p[0], 0x15);
        assert!(p[1..].iter().all(|b| *b == 0));
        assert!(pack_active_fields(&[true, false]).is_none());
        assert!(pack_active_fields(&[]).is_none());
        assert!(pack_active_fields(&vec![true; 257]).is_none());
        assert_eq!(
            progressive_container_root(&[true; 3], &[[1; 32], [2; 32], [3; 32]]),
            Some(progressive_container_root_all_active(&[
                [1; 32], [2; 32], [3; 32]
            ]))
        );
        assert!(progressive_container_root(&[true, false, true], &[[1; 32]]).is_none());
    }
}
