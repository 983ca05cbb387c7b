//! The id rule: a session, workspace or device id is 1 to 128 characters of `[A-Za-z0-9._-]`,
//! and not `.` or `..`. Every entry checks it — API paths and queries, event envelopes, what
//! the capture side sends — before anything is stored, and the server builds blob keys only
//! from ids that passed ([`Id`] can only be made by the check), so an id can never nest, climb
//! out of its folder or collide with another.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// A checked id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Id(String);

/// Longest id.
pub const MAX_ID: usize = 128;

/// An id that breaks the rule, with the field it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdError {
    pub field: String,
    /// The value as given, shortened and with control characters escaped, for the message.
    pub shown: String,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is not a valid id: use 1 to {MAX_ID} letters, digits, '.', '_' or '-' (not \
             \".\" or \"..\")",
            self.field, self.shown
        )
    }
}

impl std::error::Error for IdError {}

impl Id {
    /// `value` as an id of `field` (`session_id`, `workspace_id`, `device_id`), or why not.
    pub fn parse(field: &str, value: &str) -> Result<Id, IdError> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-');
        let fits = (1..=MAX_ID).contains(&value.len())
            && value.bytes().all(allowed)
            && value != "."
            && value != "..";
        if fits {
            Ok(Id(value.to_owned()))
        } else {
            Err(IdError {
                field: field.to_owned(),
                shown: shown(value),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Id {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Id::parse("id", &value).map_err(serde::de::Error::custom)
    }
}

/// Deserializers that name the field in the refusal (`#[serde(deserialize_with = …)]`).
pub mod field {
    use serde::{Deserialize, Deserializer};

    use super::Id;

    fn named<'de, D: Deserializer<'de>>(field: &str, deserializer: D) -> Result<Id, D::Error> {
        let value = String::deserialize(deserializer)?;
        Id::parse(field, &value).map_err(serde::de::Error::custom)
    }

    pub fn device_id<'de, D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        named("device_id", d)
    }

    pub fn workspace_id<'de, D: Deserializer<'de>>(d: D) -> Result<Id, D::Error> {
        named("workspace_id", d)
    }

    pub fn session_id<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Id>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|value| Id::parse("session_id", &value).map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// `value` quoted for a message: at most 40 characters, control characters escaped.
fn shown(value: &str) -> String {
    let mut quoted: String = value
        .chars()
        .take(40)
        .collect::<String>()
        .escape_debug()
        .collect();
    if value.chars().count() > 40 {
        quoted.push('…');
    }
    format!("\"{quoted}\" ({} bytes)", value.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        for good in [
            "a",
            "s1",
            "4f1c1f0e-7b1e-4b8e-9c55-0d6b3e1e2f3a",
            "-home-dev-app",
            "a.b_c-D",
            &"x".repeat(128),
            "...",
        ] {
            assert_eq!(
                Id::parse("session_id", good).map(|i| i.into_string()),
                Ok(good.to_owned()),
                "{good:?}"
            );
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a\\b",
            "a b",
            "a\0b",
            "é",
            "a%00",
            "a?b",
            &"x".repeat(129),
            "\u{202e}x",
        ] {
            let err = Id::parse("workspace_id", bad).unwrap_err();
            assert_eq!(err.field, "workspace_id", "{bad:?}");
            assert!(err.to_string().starts_with("workspace_id \""), "{err}");
        }
        assert_eq!(
            Id::parse("device_id", "a\nb").unwrap_err().to_string(),
            "device_id \"a\\nb\" (3 bytes) is not a valid id: use 1 to 128 letters, digits, '.', '_' \
             or '-' (not \".\" or \"..\")"
        );
        let long = Id::parse("session_id", &"y".repeat(300)).unwrap_err();
        assert!(long.shown.contains("…\" (300 bytes)"), "{}", long.shown);
    }

    #[test]
    fn ids_deserialize_only_when_they_keep_the_rule() {
        assert_eq!(serde_json::from_str::<Id>("\"w1\"").unwrap().as_str(), "w1");
        assert!(serde_json::from_str::<Id>("\"../etc\"").is_err());
    }
}
