//! EIP-2335 password processing.
//!
//! "The password is a string of arbitrary unicode characters. The password is first converted to
//! its NFKD representation, then the control codes are stripped from the password and finally it
//! is UTF-8 encoded." The control codes are C0 (U+0000–U+001F), DEL (U+007F) and C1
//! (U+0080–U+009F), removed per character (code point).

use unicode_normalization::UnicodeNormalization;
use zeroize::Zeroizing;

/// True for the code points EIP-2335 removes from passwords: C0, DEL and C1 control codes.
pub fn is_stripped_control(c: char) -> bool {
    matches!(c, '\u{00}'..='\u{1F}' | '\u{7F}' | '\u{80}'..='\u{9F}')
}

/// Applies EIP-2335 password processing: NFKD normalisation, then removal of C0, DEL and C1
/// control code points. The UTF-8 bytes of the result are what the KDF receives.
///
/// The result lives in a buffer allocated once at its exact size (so no partial copy is left
/// behind by a reallocation) and zeroized on drop.
pub fn normalize_password(password: &str) -> Zeroizing<String> {
    let kept = || password.nfkd().filter(|c| !is_stripped_control(*c));
    let len: usize = kept().map(char::len_utf8).sum();
    let mut out = Zeroizing::new(String::with_capacity(len));
    for c in kept() {
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_stripped_per_code_point() {
        assert_eq!(
            normalize_password("a\u{0}b\u{1F}c\u{7F}d\u{80}e\u{9F}f\u{A0}").as_str(),
            // U+00A0 (no-break space) is not a control code; NFKD maps it to a space.
            "abcdef "
        );
        assert_eq!(normalize_password("\t\n\r").as_str(), "");
        assert_eq!(normalize_password("").as_str(), "");
    }

    #[test]
    fn nfkd_is_applied() {
        // Mathematical fraktur letters decompose (compatibility) to ASCII.
        assert_eq!(normalize_password("𝔱𝔢𝔰𝔱").as_str(), "test");
        // Precomposed é decomposes to e + combining acute accent.
        assert_eq!(normalize_password("é").as_str(), "e\u{301}");
        // The ligature ﬁ becomes "fi".
        assert_eq!(normalize_password("\u{FB01}").as_str(), "fi");
        // Emoji are unchanged.
        assert_eq!(normalize_password("🔑").as_str(), "🔑");
    }

    #[test]
    fn capacity_is_exact() {
        let out = normalize_password("𝔱𝔢𝔰𝔱\u{7F}é🔑");
        assert_eq!(out.capacity(), out.len());
    }
}
