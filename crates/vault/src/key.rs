//! The private key a secret field holds: `0x`-hex (or bare hex) text to 32 bytes.
//!
//! [`crate::VaultClient::read_key`] and [`crate::VaultClient::fetch_all`] read a field with
//! [`crate::VaultClient::read_field`] and parse it here. The bytes are not checked to be a valid
//! BLS scalar (non-zero, below the group order): the caller makes the key from them.

use std::fmt;

use zeroize::Zeroizing;

/// The 32 bytes of a secret key, zeroized on drop. `Debug` shows none of them.
#[derive(Clone)]
pub struct SecretKeyBytes(Zeroizing<[u8; 32]>);

impl SecretKeyBytes {
    /// The bytes, big-endian as EIP-2335 and Web3Signer store them.
    pub fn expose(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for SecretKeyBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKeyBytes(<redacted>)")
    }
}

/// Parses a private key written as 64 hex digits, with or without a `0x` prefix; surrounding
/// whitespace (such as a trailing newline) is ignored. The error says what is wrong without
/// repeating the text.
pub fn parse_secret_key_hex(text: &str) -> Result<SecretKeyBytes, &'static str> {
    let text = text.trim();
    let digits = text
        .strip_prefix("0x")
        .or_else(|| text.strip_prefix("0X"))
        .unwrap_or(text);
    if digits.is_empty() {
        return Err("empty");
    }
    if digits.len() != 64 {
        return Err("expected 64 hex digits (32 bytes)");
    }
    let mut bytes = Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(digits, bytes.as_mut_slice()).map_err(|_| "not hexadecimal")?;
    Ok(SecretKeyBytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_forms() {
        let hex64 = "17079f966aa2d5db1678ed32467165bbbd640868e7371ade8d5812ea856d2bbf";
        let bare = parse_secret_key_hex(hex64).unwrap();
        let prefixed = parse_secret_key_hex(&format!("0x{hex64}\n")).unwrap();
        let upper = parse_secret_key_hex(&format!("0X{}", hex64.to_uppercase())).unwrap();
        assert_eq!(bare.expose(), prefixed.expose());
        assert_eq!(bare.expose(), upper.expose());
        assert_eq!(bare.expose()[0], 0x17);
        assert_eq!(bare.expose()[31], 0xbf);
    }

    #[test]
    fn bad_hex_is_refused_without_echo() {
        assert_eq!(parse_secret_key_hex("").unwrap_err(), "empty");
        assert_eq!(parse_secret_key_hex("0x").unwrap_err(), "empty");
        assert_eq!(
            parse_secret_key_hex("0x1234").unwrap_err(),
            "expected 64 hex digits (32 bytes)"
        );
        let not_hex = format!("0x{}", "zz".repeat(32));
        assert_eq!(
            parse_secret_key_hex(&not_hex).unwrap_err(),
            "not hexadecimal"
        );
        let key = parse_secret_key_hex(&"ab".repeat(32)).unwrap();
        assert_eq!(format!("{key:?}"), "SecretKeyBytes(<redacted>)");
    }
}
