//! API keys: what a key may do (its role) and where (its workspaces), as `keys list --json`,
//! `keys create --json` and `/api/admin/keys` show them. The key itself is shown once, when made;
//! the server keeps only its hash.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Send events, upload transcripts, ask batch-status: what a laptop's hooks and backfill
    /// need, for its workspaces.
    Ingest,
    /// Every GET route, for its workspaces.
    Read,
    /// Everything, on every workspace: reparse, processors, keys.
    Admin,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Read => "read",
            Role::Admin => "admin",
        }
    }

    /// Whether a key of this role may do what `needed` allows (admin may do anything).
    pub fn allows(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ingest" => Ok(Role::Ingest),
            "read" => Ok(Role::Read),
            "admin" => Ok(Role::Admin),
            other => Err(format!("role {other:?} is not ingest, read or admin")),
        }
    }
}

/// A key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The workspaces it covers; none: every workspace.
    pub workspaces: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `POST /api/admin/keys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    pub role: Role,
    /// Workspaces the key covers; empty or absent: every workspace (admin keys always).
    #[serde(default)]
    pub workspaces: Vec<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// When it stops working.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A key just made: the only time the key itself is shown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatedKey {
    pub id: String,
    pub key: String,
    pub role: Role,
    pub workspaces: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}
