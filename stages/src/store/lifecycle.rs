//! The session lifecycle and its transitions.
//!
//! ```text
//! detected → capturing → ended → parsed → summarized → archived
//!    └──────────┴───────────┴────────┴──→ failed
//! ```
//!
//! `detected → ended` is allowed too: a session whose start was seen but whose capture never
//! reported can still end. Every transition is one conditional `UPDATE … WHERE lifecycle =
//! ANY($from) RETURNING`; no row back means another process moved the session first, and the
//! caller stops quietly. A transition the table above does not allow is refused before any SQL.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Detected,
    Capturing,
    Ended,
    Parsed,
    Summarized,
    Archived,
    Failed,
}

impl Lifecycle {
    pub const ALL: [Lifecycle; 7] = [
        Lifecycle::Detected,
        Lifecycle::Capturing,
        Lifecycle::Ended,
        Lifecycle::Parsed,
        Lifecycle::Summarized,
        Lifecycle::Archived,
        Lifecycle::Failed,
    ];

    /// Sessions that may still fail: every state before `summarized`.
    pub const NON_TERMINAL: [Lifecycle; 4] = [
        Lifecycle::Detected,
        Lifecycle::Capturing,
        Lifecycle::Ended,
        Lifecycle::Parsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Detected => "detected",
            Lifecycle::Capturing => "capturing",
            Lifecycle::Ended => "ended",
            Lifecycle::Parsed => "parsed",
            Lifecycle::Summarized => "summarized",
            Lifecycle::Archived => "archived",
            Lifecycle::Failed => "failed",
        }
    }

    /// Whether a session may move from `self` to `to`.
    pub fn can_move_to(self, to: Lifecycle) -> bool {
        use Lifecycle::*;
        matches!(
            (self, to),
            (Detected, Capturing)
                | (Detected, Ended)
                | (Capturing, Ended)
                | (Ended, Parsed)
                | (Parsed, Summarized)
                | (Summarized, Archived)
                | (Detected | Capturing | Ended | Parsed, Failed)
        )
    }
}

impl fmt::Display for Lifecycle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Lifecycle {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Lifecycle::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// Where the parse of a session's transcript stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParseStatus {
    Pending,
    Parsing,
    Completed,
    Failed,
}

impl ParseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ParseStatus::Pending => "pending",
            ParseStatus::Parsing => "parsing",
            ParseStatus::Completed => "completed",
            ParseStatus::Failed => "failed",
        }
    }
}

impl FromStr for ParseStatus {
    type Err = UnknownState;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        [
            ParseStatus::Pending,
            ParseStatus::Parsing,
            ParseStatus::Completed,
            ParseStatus::Failed,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| UnknownState(s.to_owned()))
    }
}

/// A state name the database holds but this code does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown session state `{0}`")]
pub struct UnknownState(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_drawn_transitions_are_allowed() {
        use Lifecycle::*;
        let allowed: Vec<(Lifecycle, Lifecycle)> = Lifecycle::ALL
            .into_iter()
            .flat_map(|from| Lifecycle::ALL.into_iter().map(move |to| (from, to)))
            .filter(|(from, to)| from.can_move_to(*to))
            .collect();
        assert_eq!(
            allowed,
            [
                (Detected, Capturing),
                (Detected, Ended),
                (Detected, Failed),
                (Capturing, Ended),
                (Capturing, Failed),
                (Ended, Parsed),
                (Ended, Failed),
                (Parsed, Summarized),
                (Parsed, Failed),
                (Summarized, Archived),
            ]
        );
    }

    #[test]
    fn names_round_trip() {
        for l in Lifecycle::ALL {
            assert_eq!(l.as_str().parse::<Lifecycle>(), Ok(l));
        }
        assert_eq!(
            "gone".parse::<Lifecycle>(),
            Err(UnknownState("gone".into()))
        );
        assert_eq!("parsing".parse::<ParseStatus>(), Ok(ParseStatus::Parsing));
    }
}
