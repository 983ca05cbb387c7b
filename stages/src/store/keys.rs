//! API keys in Postgres: made with a random 32-byte secret shown once, kept as its SHA-256,
//! resolved to what the key may do (its role) and where (its workspaces).

use chrono::{DateTime, Utc};
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::keys::{CreatedKey, KeyInfo, Role};
use sha2::{Digest, Sha256};

use super::{Store, StoreError};

/// Every key starts so, which makes one easy to recognise (and to find in a leak scan).
pub const PREFIX: &str = "sfk_";

/// Who is calling: a key's role and the workspaces it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's id (none: the bootstrap key from `SESSIONFLOW_API_KEY`).
    pub key_id: Option<String>,
    pub role: Role,
    /// None: every workspace.
    pub workspaces: Option<Vec<String>>,
}

impl Principal {
    /// The bootstrap key: admin of everything.
    pub fn bootstrap() -> Self {
        Principal {
            key_id: None,
            role: Role::Admin,
            workspaces: None,
        }
    }

    /// Whether the key covers `workspace`.
    pub fn covers(&self, workspace: &str) -> bool {
        self.workspaces
            .as_ref()
            .is_none_or(|list| list.iter().any(|w| w == workspace))
    }
}

fn hash(key: &str) -> Vec<u8> {
    Sha256::digest(key.as_bytes()).to_vec()
}

type KeyRow = (
    String,
    String,
    String,
    Option<Vec<String>>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

fn info(row: KeyRow) -> Result<KeyInfo, StoreError> {
    let (id, name, role, workspaces, created_at, last_used_at, expires_at, revoked_at) = row;
    Ok(KeyInfo {
        id,
        name,
        role: role
            .parse()
            .map_err(|e: String| StoreError::Database(sqlx::Error::Decode(e.into())))?,
        workspaces,
        created_at,
        last_used_at,
        expires_at,
        revoked_at,
    })
}

/// 256 random bits in hex: a key's secret part, or a process's own bootstrap key.
pub fn random_secret() -> Result<String, StoreError> {
    let mut secret = [0u8; 32];
    getrandom::fill(&mut secret).map_err(|e| {
        StoreError::Database(sqlx::Error::Protocol(format!(
            "no randomness for a key: {e}"
        )))
    })?;
    Ok(hex(&secret))
}

impl Store {
    /// Makes a key; the returned [`CreatedKey::key`] is the only copy of it. An admin key
    /// covers every workspace.
    pub async fn create_key(
        &self,
        name: Option<&str>,
        role: Role,
        workspaces: &[Id],
        expires_at: Option<DateTime<Utc>>,
    ) -> Result<CreatedKey, StoreError> {
        let key = format!("{PREFIX}{}", random_secret()?);
        let id = ulid::Ulid::generate().to_string();
        let workspaces: Option<Vec<String>> = (role != Role::Admin && !workspaces.is_empty())
            .then(|| workspaces.iter().map(|w| w.as_str().to_owned()).collect());
        let name = name.map_or_else(|| format!("{role} key {id}"), str::to_owned);
        sqlx::query(
            "INSERT INTO api_keys (id, name, key_hash, role, workspaces, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&name)
        .bind(hash(&key))
        .bind(role.name())
        .bind(&workspaces)
        .bind(expires_at)
        .execute(self.pool())
        .await?;
        Ok(CreatedKey {
            id,
            key,
            role,
            workspaces,
            expires_at,
        })
    }

    /// Every key, newest first (revoked and expired ones too).
    pub async fn list_keys(&self) -> Result<Vec<KeyInfo>, StoreError> {
        let rows: Vec<KeyRow> = sqlx::query_as(
            "SELECT id, name, role, workspaces, created_at, last_used_at, expires_at, revoked_at \
             FROM api_keys ORDER BY created_at DESC, id DESC",
        )
        .fetch_all(self.pool())
        .await?;
        rows.into_iter().map(info).collect()
    }

    /// How many keys are live (not revoked, not expired): a server started without a bootstrap
    /// key needs at least one, or no one could call it.
    pub async fn live_keys(&self) -> Result<i64, StoreError> {
        let (n,): (i64,) = sqlx::query_as(
            "SELECT count(*) FROM api_keys \
             WHERE revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())",
        )
        .fetch_one(self.pool())
        .await?;
        Ok(n)
    }

    /// Revokes key `id`; false when there is no such key (or it was revoked already).
    pub async fn revoke_key(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// What `key` may do, if it is a live key (not revoked, not expired). Its last use is
    /// recorded, at most once a minute.
    pub async fn resolve_key(&self, key: &str) -> Result<Option<Principal>, StoreError> {
        if !key.starts_with(PREFIX) {
            return Ok(None);
        }
        let row: Option<(String, String, Option<Vec<String>>, bool)> = sqlx::query_as(
            "SELECT id, role, workspaces, \
                    last_used_at IS NULL OR last_used_at < now() - interval '1 minute' \
             FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL \
               AND (expires_at IS NULL OR expires_at > now())",
        )
        .bind(hash(key))
        .fetch_optional(self.pool())
        .await?;
        let Some((id, role, workspaces, stale)) = row else {
            return Ok(None);
        };
        if stale {
            sqlx::query("UPDATE api_keys SET last_used_at = now() WHERE id = $1")
                .bind(&id)
                .execute(self.pool())
                .await?;
        }
        Ok(Some(Principal {
            key_id: Some(id),
            role: role
                .parse()
                .map_err(|e: String| StoreError::Database(sqlx::Error::Decode(e.into())))?,
            workspaces,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
