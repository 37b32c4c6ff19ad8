//! Reading the vault's JSON answers.
//!
//! [`pick_string`] walks a path of object keys (`data.data.<field>` of a KV v2 read,
//! `auth.client_token` of a login) and returns the string there in a zeroized buffer; every other
//! value is skipped without being kept, so the other fields of a secret are never held in a JSON
//! tree. Listings and error bodies hold no secret and use plain serde types.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroizing;

/// What [`pick_string`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Picked {
    /// The string at the path.
    Found(Zeroizing<String>),
    /// The object at `depth` (0: the top) has no key `path[depth]` (or is not an object).
    Missing { depth: usize },
    /// The value at the path is not a string.
    NotString,
}

/// The string at `path` in the JSON document `body`.
pub(crate) fn pick_string(body: &[u8], path: &[&str]) -> Result<Picked, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let picked = PathSeed { path, depth: 0 }.deserialize(&mut de)?;
    de.end()?;
    Ok(picked)
}

struct PathSeed<'p> {
    path: &'p [&'p str],
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for PathSeed<'_> {
    type Value = Picked;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Picked, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for PathSeed<'_> {
    type Value = Picked;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Picked, A::Error> {
        let Some((wanted, rest)) = self.path.split_first() else {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(Picked::NotString);
        };
        let mut picked = Picked::Missing { depth: self.depth };
        while let Some(key) = map.next_key::<KeyName>()? {
            if key.0 == *wanted {
                picked = map.next_value_seed(PathSeed {
                    path: rest,
                    depth: self.depth + 1,
                })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(picked)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Picked, E> {
        Ok(self.leaf(|| Zeroizing::new(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Picked, E> {
        Ok(self.leaf(|| Zeroizing::new(v)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Picked, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.not_found())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Picked, E> {
        Ok(self.not_found())
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Picked, E> {
        Ok(self.not_found())
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Picked, E> {
        Ok(self.not_found())
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Picked, E> {
        Ok(self.not_found())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Picked, E> {
        Ok(self.not_found())
    }
}

impl PathSeed<'_> {
    /// A string here: the answer when the path ends here.
    fn leaf(self, take: impl FnOnce() -> Zeroizing<String>) -> Picked {
        if self.path.is_empty() {
            Picked::Found(take())
        } else {
            Picked::Missing { depth: self.depth }
        }
    }

    /// Not a string nor an object here.
    fn not_found(self) -> Picked {
        if self.path.is_empty() {
            Picked::NotString
        } else {
            Picked::Missing { depth: self.depth }
        }
    }
}

/// An object key (keys of a secret's data are field names, not secrets).
struct KeyName(String);

impl<'de> Deserialize<'de> for KeyName {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<KeyName, D::Error> {
        String::deserialize(deserializer).map(KeyName)
    }
}

/// `data.keys` of a LIST answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ListAnswer {
    pub data: ListData,
}

/// The `data` of a LIST answer.
#[derive(Debug, Deserialize)]
pub(crate) struct ListData {
    #[serde(default)]
    pub keys: Vec<String>,
}

/// The server's `errors` list, joined and truncated, or empty when the body has none.
pub(crate) fn error_message(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    let text = serde_json::from_slice::<Errors>(body)
        .map(|e| e.errors.join("; "))
        .unwrap_or_default();
    truncate(&text, 200)
}

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(s: &str) -> Picked {
        Picked::Found(Zeroizing::new(s.to_owned()))
    }

    #[test]
    fn picks_the_field_of_a_kv2_answer() {
        let body =
            br#"{"request_id":"x","data":{"data":{"other":{"a":[1,2]},"value":"0xab\"c","n":3},
            "metadata":{"version":1}},"warnings":null}"#;
        assert_eq!(
            pick_string(body, &["data", "data", "value"]).unwrap(),
            found("0xab\"c")
        );
        assert_eq!(
            pick_string(body, &["data", "data", "missing"]).unwrap(),
            Picked::Missing { depth: 2 }
        );
        assert_eq!(
            pick_string(body, &["data", "data", "n"]).unwrap(),
            Picked::NotString
        );
        assert_eq!(
            pick_string(body, &["data", "data", "other"]).unwrap(),
            Picked::NotString
        );
        assert_eq!(
            pick_string(body, &["auth", "client_token"]).unwrap(),
            Picked::Missing { depth: 0 }
        );
        assert_eq!(
            pick_string(br#"{"data":null}"#, &["data", "data", "value"]).unwrap(),
            Picked::Missing { depth: 1 }
        );
        assert!(pick_string(b"{\"data\":", &["data"]).is_err());
        assert!(pick_string(b"{} trailing", &["data"]).is_err());
    }

    #[test]
    fn error_bodies() {
        assert_eq!(
            error_message(br#"{"errors":["permission denied","again"]}"#),
            "permission denied; again"
        );
        assert_eq!(error_message(b"<html>"), "");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
