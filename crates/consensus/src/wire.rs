//! Serde helpers for the Beacon-API / Web3Signer JSON encoding of consensus values.
//!
//! - `uint64` values are decimal strings over the full `u64` range; JSON numbers are accepted too.
//! - Byte strings are `0x`-prefixed hex, upper or lower case, of an exact length.
//! - Bitfields are the hex of their SSZ encoding (a `BitList` carries its length bit).
//! - Lists are rejected as soon as they exceed their SSZ limit, before the rest is read.
//!
//! Every helper returns a serde error (never panics) on malformed input.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::ser::{SerializeSeq, Serializer};
use serde::{Deserialize, Serialize};
use ssz_types::{BitList, BitVector, FixedVector, VariableList};
use typenum::Unsigned;

/// Longest piece of client input echoed back in an error message.
const SNIPPET_LEN: usize = 40;

/// Shortens client input for an error message (on a char boundary).
pub(crate) fn snippet(s: &str) -> String {
    if s.len() <= SNIPPET_LEN {
        return s.to_owned();
    }
    let mut end = SNIPPET_LEN;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Formats bytes as `0x`-prefixed lower-case hex.
pub fn to_hex(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Parses a decimal `uint64` string: ASCII digits only, at most `u64::MAX`.
pub(crate) fn parse_u64(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid uint64 {:?}: expected decimal digits",
            snippet(s)
        ));
    }
    s.parse::<u64>()
        .map_err(|_| format!("uint64 {:?} is out of range", snippet(s)))
}

/// Strips the `0x` prefix of a hex string.
fn strip_0x(s: &str) -> Result<&str, String> {
    s.strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .ok_or_else(|| format!("hex {:?} must start with 0x", snippet(s)))
}

/// Decodes `0x` hex into exactly `N` bytes.
pub(crate) fn decode_fixed<const N: usize>(s: &str) -> Result<[u8; N], String> {
    let digits = strip_0x(s)?;
    if digits.len() != 2 * N {
        return Err(format!(
            "expected {} bytes of hex, got {} hex digits",
            N,
            digits.len()
        ));
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(digits, &mut out).map_err(|e| format!("invalid hex: {e}"))?;
    Ok(out)
}

/// Decodes `0x` hex of any even length, refusing more than `max_len` bytes.
fn decode_var(s: &str, max_len: usize) -> Result<Vec<u8>, String> {
    let digits = strip_0x(s)?;
    if digits.len() / 2 > max_len {
        return Err(format!(
            "{} bytes of hex exceed the limit of {} bytes",
            digits.len() / 2,
            max_len
        ));
    }
    hex::decode(digits).map_err(|e| format!("invalid hex: {e}"))
}

/// Decodes `0x` hex of any even length.
pub(crate) fn decode_hex_any(s: &str) -> Result<Vec<u8>, String> {
    decode_var(s, usize::MAX)
}

struct U64Visitor;

impl Visitor<'_> for U64Visitor {
    type Value = u64;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a uint64 as a decimal string")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
        parse_u64(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        Ok(v)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v).map_err(|_| E::custom(format!("uint64 cannot be negative ({v})")))
    }
}

/// A `uint64` that deserializes from a decimal string or a JSON number and serializes as a string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuotedU64(pub u64);

impl<'de> Deserialize<'de> for QuotedU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(U64Visitor).map(QuotedU64)
    }
}

impl Serialize for QuotedU64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// `#[serde(with)]` module for a `u64` written as a decimal string.
pub mod quoted_u64 {
    use super::*;

    /// Reads a `u64` from a decimal string or a JSON number.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(U64Visitor)
    }

    /// Writes a `u64` as a decimal string.
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
}

struct FixedHexVisitor<const N: usize>;

impl<const N: usize> Visitor<'_> for FixedHexVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a 0x-prefixed hex string of {N} bytes")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<[u8; N], E> {
        decode_fixed::<N>(v).map_err(E::custom)
    }
}

/// Fixed-length bytes that (de)serialize as `0x` hex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HexBytes<const N: usize>(pub [u8; N]);

impl<'de, const N: usize> Deserialize<'de> for HexBytes<N> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(FixedHexVisitor::<N>).map(HexBytes)
    }
}

impl<const N: usize> Serialize for HexBytes<N> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&self.0))
    }
}

/// `#[serde(with)]` module for `[u8; N]` written as `0x` hex.
pub mod hex_fixed {
    use super::*;

    /// Reads exactly `N` bytes of `0x` hex (either case).
    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        d.deserialize_str(FixedHexVisitor::<N>)
    }

    /// Writes `0x`-prefixed lower-case hex.
    pub fn serialize<S: Serializer, const N: usize>(v: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(v))
    }
}

/// `#[serde(with)]` module for an SSZ `BitList<N>` written as the hex of its SSZ bytes.
pub mod bitlist {
    use super::*;

    /// Reads the hex of the SSZ encoding (with its length bit) and checks it against the limit.
    pub fn deserialize<'de, D: Deserializer<'de>, N: Unsigned + Clone>(
        d: D,
    ) -> Result<BitList<N>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = decode_var(&s, N::to_usize() / 8 + 1).map_err(de::Error::custom)?;
        BitList::<N>::from_bytes(bytes.into()).map_err(|e| {
            de::Error::custom(format!("invalid bitlist (limit {}): {e:?}", N::to_usize()))
        })
    }

    /// Writes the hex of the SSZ encoding.
    pub fn serialize<S: Serializer, N: Unsigned + Clone>(
        v: &BitList<N>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&v.clone().into_bytes()))
    }
}

/// `#[serde(with)]` module for an SSZ `BitVector<N>` written as the hex of its SSZ bytes.
pub mod bitvector {
    use super::*;

    /// Reads exactly `ceil(N / 8)` bytes of hex with no bit set beyond `N`.
    pub fn deserialize<'de, D: Deserializer<'de>, N: Unsigned + Clone>(
        d: D,
    ) -> Result<BitVector<N>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = decode_var(&s, N::to_usize().div_ceil(8)).map_err(de::Error::custom)?;
        BitVector::<N>::from_bytes(bytes.into()).map_err(|e| {
            de::Error::custom(format!(
                "invalid bitvector (length {}): {e:?}",
                N::to_usize()
            ))
        })
    }

    /// Writes the hex of the SSZ encoding.
    pub fn serialize<S: Serializer, N: Unsigned + Clone>(
        v: &BitVector<N>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(&v.clone().into_bytes()))
    }
}

/// Reads a JSON array of `T` into a `Vec`, failing as soon as it holds more than `max` items.
struct BoundedSeq<T> {
    max: usize,
    _t: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for BoundedSeq<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a list of at most {} items", self.max)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(self.max).min(64));
        while let Some(item) = seq.next_element::<T>()? {
            if out.len() == self.max {
                return Err(de::Error::custom(format!(
                    "list longer than its limit of {}",
                    self.max
                )));
            }
            out.push(item);
        }
        Ok(out)
    }
}

fn bounded_vec<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
    max: usize,
) -> Result<Vec<T>, D::Error> {
    d.deserialize_seq(BoundedSeq {
        max,
        _t: PhantomData,
    })
}

/// `#[serde(with)]` module for an SSZ `VariableList<T, N>` of containers.
pub mod list {
    use super::*;

    /// Reads a JSON array of at most `N` items.
    pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>, N: Unsigned>(
        d: D,
    ) -> Result<VariableList<T, N>, D::Error> {
        let v = bounded_vec::<D, T>(d, N::to_usize())?;
        VariableList::new(v).map_err(|e| de::Error::custom(format!("{e:?}")))
    }

    /// Writes a JSON array.
    pub fn serialize<S: Serializer, T: Serialize, N: Unsigned>(
        v: &VariableList<T, N>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for item in v.iter() {
            seq.serialize_element(item)?;
        }
        seq.end()
    }
}

/// `#[serde(with)]` module for an SSZ `VariableList<u64, N>` written as decimal strings.
pub mod quoted_u64_list {
    use super::*;

    /// Reads a JSON array of at most `N` uint64 values.
    pub fn deserialize<'de, D: Deserializer<'de>, N: Unsigned>(
        d: D,
    ) -> Result<VariableList<u64, N>, D::Error> {
        let v = bounded_vec::<D, QuotedU64>(d, N::to_usize())?;
        VariableList::new(v.into_iter().map(|q| q.0).collect())
            .map_err(|e| de::Error::custom(format!("{e:?}")))
    }

    /// Writes a JSON array of decimal strings.
    pub fn serialize<S: Serializer, N: Unsigned>(
        v: &VariableList<u64, N>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for item in v.iter() {
            seq.serialize_element(&QuotedU64(*item))?;
        }
        seq.end()
    }
}

/// `#[serde(with)]` module for an SSZ `FixedVector<[u8; 32], N>` written as hex strings.
pub mod root_vector {
    use super::*;

    /// Reads a JSON array of exactly `N` 32-byte hex strings.
    pub fn deserialize<'de, D: Deserializer<'de>, N: Unsigned>(
        d: D,
    ) -> Result<FixedVector<[u8; 32], N>, D::Error> {
        let v = bounded_vec::<D, HexBytes<32>>(d, N::to_usize())?;
        let len = v.len();
        FixedVector::new(v.into_iter().map(|h| h.0).collect())
            .map_err(|_| de::Error::custom(format!("expected {} roots, got {len}", N::to_usize())))
    }

    /// Writes a JSON array of hex strings.
    pub fn serialize<S: Serializer, N: Unsigned>(
        v: &FixedVector<[u8; 32], N>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(v.len()))?;
        for item in v.iter() {
            seq.serialize_element(&HexBytes(*item))?;
        }
        seq.end()
    }
}

/// `#[serde(with)]` module for an SSZ `ByteList` (`VariableList<u8, N>`) written as one `0x` hex
/// string.
pub mod hex_byte_list {
    use super::*;

    /// Reads `0x` hex of at most `N` bytes.
    pub fn deserialize<'de, D: Deserializer<'de>, N: Unsigned>(
        d: D,
    ) -> Result<VariableList<u8, N>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let bytes = decode_var(&s, N::to_usize()).map_err(de::Error::custom)?;
        VariableList::new(bytes).map_err(|e| de::Error::custom(format!("{e:?}")))
    }

    /// Writes `0x` hex.
    pub fn serialize<S: Serializer, N: Unsigned>(
        v: &VariableList<u8, N>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&to_hex(v))
    }
}

/// `#[serde(with)]` module for a `uint256` written as a decimal string (JSON numbers accepted
/// when they are unsigned integers).
pub mod quoted_u256 {
    use super::*;
    use alloy_primitives::U256;

    /// Reads decimal digits (at most `2**256 - 1`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<U256, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = U256;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a uint256 as a decimal string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<U256, E> {
                if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(E::custom(format!(
                        "invalid uint256 {:?}: expected decimal digits",
                        snippet(v)
                    )));
                }
                U256::from_str_radix(v, 10)
                    .map_err(|_| E::custom(format!("uint256 {:?} is out of range", snippet(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<U256, E> {
                Ok(U256::from(v))
            }
        }
        d.deserialize_any(V)
    }

    /// Writes decimal digits.
    pub fn serialize<S: Serializer>(v: &U256, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn u64_strings() {
        assert_eq!(parse_u64("0"), Ok(0));
        assert_eq!(parse_u64("18446744073709551615"), Ok(u64::MAX));
        assert!(parse_u64("18446744073709551616").is_err());
        assert!(parse_u64("").is_err());
        assert!(parse_u64("-1").is_err());
        assert!(parse_u64("+1").is_err());
        assert!(parse_u64(" 1").is_err());
        assert!(parse_u64("1.0").is_err());
        assert!(parse_u64("٣").is_err());
    }

    #[test]
    fn fixed_hex() {
        assert_eq!(decode_fixed::<2>("0xABcd"), Ok([0xab, 0xcd]));
        assert_eq!(decode_fixed::<2>("0XABcd"), Ok([0xab, 0xcd]));
        assert!(decode_fixed::<2>("abcd").is_err());
        assert!(decode_fixed::<2>("0xabc").is_err());
        assert!(decode_fixed::<2>("0xabcdef").is_err());
        assert!(decode_fixed::<2>("0xzzzz").is_err());
        assert!(decode_fixed::<2>("0xé1").is_err());
    }

    #[test]
    fn snippet_cuts_on_char_boundary() {
        let s = "é".repeat(50);
        let cut = snippet(&s);
        assert!(cut.len() < s.len());
        assert!(cut.ends_with('…'));
    }
}
