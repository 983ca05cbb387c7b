//! The Postgres store: the schema's migrations, session rows and their lifecycle transitions,
//! and the persisting of parsed transcripts.
//!
//! Every state change is one conditional statement (or one transaction) so that any number of
//! workers can race on a session and exactly one wins; see [`lifecycle`].

mod capture;
pub mod deletion;
pub mod keys;
pub mod lifecycle;
pub mod locate;
mod persist;

use chrono::{DateTime, Utc};
use sqlx::migrate::{MigrateDatabase, MigrateError, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row};

pub use capture::{Ended, Started, StoredTranscript, Transcript};
pub use claims::{Recovered, SILENT_AFTER};
pub use deletion::{DELETED_EVENT, Deleted, Tombstone};
pub use keys::{Principal, random_secret};
pub use lifecycle::{Lifecycle, ParseStatus, UnknownState};
pub use persist::{PERSIST_GROUP_ROWS, PersistOutcome};

/// The schema, from `migrations/` at the workspace root.
pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot reach the database {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("cannot migrate the database: {0}")]
    Migrate(#[from] MigrateError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("session {session}: moving {from} → {to} is not an allowed transition")]
    TransitionRefused {
        session: String,
        from: Lifecycle,
        to: Lifecycle,
    },
    #[error(transparent)]
    UnknownState(#[from] UnknownState),
}

/// A session row, as the stages and the API read it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: String,
    pub workspace_id: String,
    pub lifecycle: Lifecycle,
    pub parse_status: ParseStatus,
    pub transcript_key: Option<String>,
    pub parse_error: Option<String>,
    pub total_messages: i32,
    pub tokens_in: i64,
    pub tokens_out: i64,
    pub cost_estimate_usd: f64,
    pub initial_prompt: Option<String>,
    pub summary: Option<String>,
    pub updated_at: DateTime<Utc>,
    /// The claim of the run that holds the session (`parsing` through its summary), if one
    /// does: what that run's writes must match.
    pub claim: Option<String>,
}

/// The columns [`SessionRow`] reads, for `concat!` into static SQL.
macro_rules! session_columns {
    () => {
        "id, workspace_id, lifecycle, parse_status, transcript_key, parse_error, total_messages, \
         tokens_in, tokens_out, cost_estimate_usd, initial_prompt, summary, updated_at, claim"
    };
}

mod claims;

impl SessionRow {
    fn from_row(row: &PgRow) -> Result<Self, StoreError> {
        Ok(SessionRow {
            id: row.try_get("id")?,
            workspace_id: row.try_get("workspace_id")?,
            lifecycle: row.try_get::<&str, _>("lifecycle")?.parse()?,
            parse_status: row.try_get::<&str, _>("parse_status")?.parse()?,
            transcript_key: row.try_get("transcript_key")?,
            parse_error: row.try_get("parse_error")?,
            total_messages: row.try_get("total_messages")?,
            tokens_in: row.try_get("tokens_in")?,
            tokens_out: row.try_get("tokens_out")?,
            cost_estimate_usd: row.try_get("cost_estimate_usd")?,
            initial_prompt: row.try_get("initial_prompt")?,
            summary: row.try_get("summary")?,
            updated_at: row.try_get("updated_at")?,
            claim: row.try_get("claim")?,
        })
    }
}

/// What a pipeline run finds when it tries to claim a session for parsing.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The run owns the session's parse now (`parse_status = parsing`).
    Claimed(Box<SessionRow>),
    NotFound,
    NoTranscript,
    NotEnded(Lifecycle),
    /// Another run holds it.
    AlreadyParsing,
}

/// A new session to record.
#[derive(Debug, Clone, Default)]
pub struct NewSession<'a> {
    pub id: &'a str,
    pub workspace_id: &'a str,
    pub lifecycle: Option<Lifecycle>,
    pub transcript_key: Option<&'a str>,
    pub started_at: Option<DateTime<Utc>>,
}

/// Connections of a [`Store::for_runs`]: a run holds one at a time, and a worker runs few at once.
const RUN_CONNECTIONS: u32 = 8;

/// Handle on the database; cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    pool: PgPool,
}

impl Store {
    /// Connects to `url`, creating the database if it does not exist, and applies every pending
    /// migration.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_as(url, "sessionflow").await
    }

    /// [`open`](Self::open), its connections named `application_name` in Postgres
    /// (`pg_stat_activity` then tells which worker runs what).
    pub async fn open_as(url: &str, application_name: &str) -> Result<Self, StoreError> {
        let connect = |source: sqlx::Error| StoreError::Connect {
            url: redact(url),
            reason: connect_reason(url, &source),
        };
        if !Postgres::database_exists(url).await.map_err(connect)? {
            // Another worker starting at the same moment may create it first: that is fine.
            // Postgres says so as duplicate_database, or, in the race, as a unique violation.
            match Postgres::create_database(url).await {
                Err(sqlx::Error::Database(e))
                    if matches!(e.code().as_deref(), Some("42P04" | "23505")) => {}
                other => other.map_err(connect)?,
            }
        }
        let options: PgConnectOptions = url.parse().map_err(connect)?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .connect_with(options.application_name(application_name))
            .await
            .map_err(connect)?;
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool })
    }

    pub fn from_pool(pool: PgPool) -> Self {
        Store { pool }
    }

    /// This store over connections of its own whose commits do not wait for the disk
    /// (`synchronous_commit = off`), for what a session's run writes: its claim, rows, summary
    /// and failure — work that can be done again, never what a client was told is kept. An
    /// operating system crash of the database's machine may lose the last fraction of a second
    /// of them (a later synchronous commit makes them durable too); the session is then back
    /// where it was, and the recovery sweeps run it again. A run no longer waits for three
    /// flushes of the write-ahead log (its claim, its rows, its summary).
    pub fn for_runs(&self) -> Store {
        let options = (*self.pool.connect_options())
            .clone()
            .options([("synchronous_commit", "off")]);
        Store {
            pool: PgPoolOptions::new()
                .max_connections(RUN_CONNECTIONS)
                .connect_lazy_with(options),
        }
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Records a workspace if it is new.
    pub async fn ensure_workspace(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO workspaces (id) VALUES ($1) ON CONFLICT (id) DO NOTHING")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a session (and its workspace) unless one with that id exists; true if it was new.
    pub async fn create_session(&self, new: &NewSession<'_>) -> Result<bool, StoreError> {
        self.ensure_workspace(new.workspace_id).await?;
        let created = sqlx::query(
            "INSERT INTO sessions (id, workspace_id, lifecycle, transcript_key, started_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(new.id)
        .bind(new.workspace_id)
        .bind(new.lifecycle.unwrap_or(Lifecycle::Detected).as_str())
        .bind(new.transcript_key)
        .bind(new.started_at)
        .execute(&self.pool)
        .await?;
        Ok(created.rows_affected() == 1)
    }

    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            session_columns!(),
            " FROM sessions WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(SessionRow::from_row).transpose()
    }

    /// Moves a session from any of `from` to `to` in one conditional statement. `Ok(None)`: the
    /// session was not in any of `from` (another process moved it first, or it does not exist).
    pub async fn transition(
        &self,
        id: &str,
        from: &[Lifecycle],
        to: Lifecycle,
    ) -> Result<Option<SessionRow>, StoreError> {
        for &source in from {
            if !source.can_move_to(to) {
                return Err(StoreError::TransitionRefused {
                    session: id.to_owned(),
                    from: source,
                    to,
                });
            }
        }
        let from: Vec<&str> = from.iter().map(|l| l.as_str()).collect();
        let row = sqlx::query(concat!(
            "UPDATE sessions SET lifecycle = $2, updated_at = now() \
             WHERE id = $1 AND lifecycle = ANY($3) RETURNING ",
            session_columns!()
        ))
        .bind(id)
        .bind(to.as_str())
        .bind(&from)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(SessionRow::from_row).transpose()
    }

    /// Forgets what was parsed from a session — its messages, blocks, stats and summary — and
    /// returns it to `ended` with parse_status `pending`, all in one transaction. False when the
    /// session is unknown or a run is parsing it right now.
    pub async fn reset_for_reparse(&self, id: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let reset = sqlx::query(
            "UPDATE sessions SET lifecycle = 'ended', parse_status = 'pending', parse_error = NULL, \
                 total_messages = 0, user_messages = 0, assistant_messages = 0, tool_use_count = 0, \
                 thinking_blocks = 0, subagent_count = 0, tokens_in = 0, tokens_out = 0, \
                 cache_read_tokens = 0, cache_write_tokens = 0, cost_estimate_usd = 0, \
                 initial_prompt = NULL, summary = NULL, enqueued_at = NULL, enqueued_by = NULL, \
                 claimed_by = NULL, claim = NULL, failed_stage = NULL, updated_at = now() \
             WHERE id = $1 AND parse_status <> 'parsing' \
               AND lifecycle IN ('ended', 'parsed', 'summarized', 'archived', 'failed')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        if reset.rows_affected() == 0 {
            return Ok(false);
        }
        sqlx::query(
            "WITH blocks AS (DELETE FROM content_blocks WHERE session_id = $1) \
             DELETE FROM transcript_messages WHERE session_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }
}

/// Why a connection to `url` failed, in the server's words (without the line of the server's
/// own source file it names), with the fix when the role may not create the database.
fn connect_reason(url: &str, error: &sqlx::Error) -> String {
    match error.as_database_error() {
        Some(e) if e.code().as_deref() == Some("42501") => {
            let options: Option<sqlx::postgres::PgConnectOptions> = url.parse().ok();
            let user = options.as_ref().map_or("USER", |o| o.get_username());
            let database = options
                .as_ref()
                .and_then(|o| o.get_database())
                .unwrap_or(locate::DEFAULT_DATABASE);
            format!(
                "{}; create the database once with: sudo -u postgres createdb -O {user} {database}",
                e.message()
            )
        }
        Some(e) => e.message().to_owned(),
        None => error.to_string(),
    }
}

/// The URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}:***{}", &url[..scheme + 3 + colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_stay_out_of_messages() {
        assert_eq!(
            super::redact("postgres://app:s3cret@db:5432/x"),
            "postgres://app:***@db:5432/x"
        );
        assert_eq!(
            super::redact("postgres://root@127.0.0.1/x"),
            "postgres://root@127.0.0.1/x"
        );
    }
}
