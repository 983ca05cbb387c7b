//! Options several commands share, declared once: where the database is, and which
//! sessionflow API a client talks to.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use sessionflow_pipeline::capture::client::{Client, ClientError, Patience, Stored, encode};
use sessionflow_pipeline::capture::discover::{Admission, DEFAULT_MAX_UPLOAD};
use sessionflow_pipeline::deletion;
use sessionflow_pipeline::processors::Processors;
use sessionflow_protocol::sessions::{DeletedSession, SessionPage};
use sessionflow_stages::blob;
use sessionflow_stages::store::{Store, StoredTranscript, locate};

/// A duration as people write it: `500ms`, `90s`, `10m`, `12h`, `90d`, `1h 30m` (humantime).
pub fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 500ms, 90s, 10m, 12h or 90d ({e})"))
}

/// `--database-url`, or `DATABASE_URL`.
#[derive(clap::Args)]
pub struct Database {
    /// Postgres connection URL [default: database sessionflow on the local server, as PGUSER or
    /// this OS account, over its socket or 127.0.0.1].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl Database {
    /// The URL given, or the local server's that lets this user in.
    pub async fn url(&self) -> anyhow::Result<String> {
        Ok(locate::database_url(self.database_url.as_deref()).await?)
    }

    /// Opens (creating and migrating) the database.
    pub async fn open(&self) -> anyhow::Result<Store> {
        Ok(Store::open(&self.url().await?).await?)
    }
}

/// What capture (hooks, backfill) may send: `--max-upload`, or `SESSIONFLOW_MAX_UPLOAD`.
#[derive(clap::Args)]
pub struct Upload {
    /// Largest session sent, its subagent files included: bytes, or with K, M, G (KiB, MiB,
    /// GiB) [default: 1G].
    #[arg(long, env = "SESSIONFLOW_MAX_UPLOAD", value_parser = parse_size)]
    pub max_upload: Option<u64>,
}

impl Upload {
    /// What may be read: the Claude projects folders and `named`, up to the size cap.
    pub fn admission(&self, named: &[std::path::PathBuf]) -> Admission {
        Admission::new(named, self.max_upload.unwrap_or(DEFAULT_MAX_UPLOAD))
    }
}

/// `1073741824`, `512M`, `1G`, `64KiB`, `2 GiB`: a size in bytes (suffixes are powers of 1024).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size (bytes, or a number with K, M or G)"))?;
    let shift = match unit.trim().to_ascii_uppercase().as_str() {
        "" | "B" => 0,
        "K" | "KB" | "KIB" => 10,
        "M" | "MB" | "MIB" => 20,
        "G" | "GB" | "GIB" => 30,
        _ => {
            return Err(format!(
                "{text:?}: the unit must be K, M or G (powers of 1024)"
            ));
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A client's key for a server: `--api-key` (for scripts), else the key file.
#[derive(clap::Args)]
pub struct ApiKey {
    /// The server's bearer key (prefer the key file: arguments and the environment leak into
    /// process lists and shell history).
    #[arg(long, env = "SESSIONFLOW_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// A file holding the key, readable by its owner alone (mode 0600)
    /// [default: ~/.config/sessionflow/key, when it exists].
    #[arg(long, env = "SESSIONFLOW_API_KEY_FILE")]
    api_key_file: Option<PathBuf>,
}

impl ApiKey {
    pub fn new(api_key: Option<String>, api_key_file: Option<PathBuf>) -> Self {
        ApiKey {
            api_key,
            api_key_file,
        }
    }

    /// The key given, else the key file's (the default file only when it exists); a key file
    /// others may read is refused.
    pub fn get(&self) -> anyhow::Result<Option<String>> {
        if let Some(key) = self.api_key.as_deref().filter(|k| !k.is_empty()) {
            return Ok(Some(key.to_owned()));
        }
        let (path, named) = match &self.api_key_file {
            Some(path) => (path.clone(), true),
            None => match default_key_file() {
                Some(path) => (path, false),
                None => return Ok(None),
            },
        };
        let meta = match std::fs::metadata(&path) {
            Ok(meta) => meta,
            Err(e) if !named && e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            anyhow::bail!(
                "{} is readable by others (mode {mode:o}): run chmod 600 {}",
                path.display(),
                path.display()
            );
        }
        let key = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let key = key.trim();
        Ok((!key.is_empty()).then(|| key.to_owned()))
    }

    /// The key, which the command cannot do without.
    pub fn required(&self) -> anyhow::Result<String> {
        self.get()?.context(
            "no API key: put it in ~/.config/sessionflow/key (mode 0600), or pass --api-key-file \
             or --api-key",
        )
    }
}

/// `~/.config/sessionflow/key` (or under `XDG_CONFIG_HOME`).
fn default_key_file() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("sessionflow/key"))
}

/// `--server`, or `SESSIONFLOW_SERVER`.
#[derive(clap::Args)]
pub struct Server {
    /// The sessionflow API.
    #[arg(
        long,
        env = "SESSIONFLOW_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
}

/// Where `usage` and `tools` get their figures: a server's API when one is given, else the
/// database (whose processors are brought up to date first, reading transcripts from the blob
/// store).
#[derive(clap::Args)]
pub struct Reports {
    /// Ask this sessionflow server instead of the database.
    #[arg(long, env = "SESSIONFLOW_SERVER")]
    server: Option<String>,
    #[command(flatten)]
    api_key: ApiKey,
    #[command(flatten)]
    database: Database,
    /// Where transcripts are kept, read to bring processors up to date (without --server)
    /// [default: ~/.local/share/sessionflow/blobs].
    #[arg(long, env = "SESSIONFLOW_BLOB")]
    blob: Option<String>,
}

/// What [`Reports`] opened.
pub enum ReportSource {
    Api(Client),
    Database(Processors),
}

impl Reports {
    pub async fn open(&self) -> anyhow::Result<ReportSource> {
        Ok(match self.open_archive().await? {
            Archive::Api(client) => ReportSource::Api(client),
            Archive::Local { store, blobs } => {
                ReportSource::Database(Processors::standard(store.pool().clone(), blobs))
            }
        })
    }
}

/// Where `restore` and `delete` find sessions: a server's API when one is given, else the
/// database and blob store (the embedded defaults).
pub enum Archive {
    Api(Client),
    Local {
        store: Store,
        blobs: Arc<dyn blob::BlobStore>,
    },
}

/// A session `restore` may bring back.
pub struct Kept {
    pub id: String,
    /// When it started (else when the server first heard of it).
    pub at: chrono::DateTime<chrono::Utc>,
}

impl Reports {
    /// The sessions' archive: the server's API with `--server`, else the database and the
    /// blob store.
    pub async fn open_archive(&self) -> anyhow::Result<Archive> {
        match self.server.as_deref().filter(|s| !s.is_empty()) {
            Some(server) => {
                let key = self.api_key.required()?;
                Ok(Archive::Api(
                    Client::new(server, &key, Patience::REPORT).map_err(anyhow::Error::msg)?,
                ))
            }
            None => {
                let store = self.database.open().await?;
                let spec = self
                    .blob
                    .clone()
                    .unwrap_or_else(crate::service::default_blob_dir);
                let blobs = blob::open(&spec)
                    .await
                    .with_context(|| format!("cannot open the blob store {spec}"))?;
                Ok(Archive::Local {
                    store,
                    blobs: Arc::from(blobs),
                })
            }
        }
    }
}

impl Archive {
    /// Every session with a stored transcript, oldest first.
    pub async fn sessions(&self) -> anyhow::Result<Vec<Kept>> {
        match self {
            Archive::Local { store, .. } => Ok(store
                .sessions_with_transcripts()
                .await?
                .into_iter()
                .map(|(id, at)| Kept { id, at })
                .collect()),
            Archive::Api(client) => {
                let mut kept = Vec::new();
                let mut cursor: Option<String> = None;
                loop {
                    let mut path = "/api/sessions?order=asc&limit=200".to_owned();
                    if let Some(cursor) = &cursor {
                        path.push_str(&format!("&cursor={}", encode(cursor)));
                    }
                    let page: SessionPage = serde_json::from_value(
                        client.get(&path).await.map_err(anyhow::Error::msg)?,
                    )
                    .context("the server's session list is unreadable")?;
                    kept.extend(page.sessions.into_iter().map(|row| Kept {
                        at: row.started_at.unwrap_or(row.created_at),
                        id: row.id,
                    }));
                    match page.next_cursor {
                        Some(next) => cursor = Some(next),
                        None => break,
                    }
                }
                kept.sort_by(|a, b| (a.at, &a.id).cmp(&(b.at, &b.id)));
                Ok(kept)
            }
        }
    }

    /// The stored transcript of session `id`; none when there is no such session (or it has
    /// no transcript).
    pub async fn transcript(&self, id: &str) -> anyhow::Result<Option<Stored>> {
        match self {
            Archive::Api(client) => match client.transcript(id).await {
                Ok(stored) => Ok(Some(stored)),
                Err(ClientError::Refused(e)) if e.contains("HTTP 404") => Ok(None),
                Err(e) => Err(anyhow::Error::msg(e)),
            },
            Archive::Local { store, blobs } => {
                let Some(StoredTranscript {
                    workspace_id,
                    key: Some(key),
                    parts,
                }) = store.stored_transcript(id).await?
                else {
                    return Ok(None);
                };
                let bytes = blobs
                    .get(&key)
                    .await
                    .with_context(|| format!("cannot read session {id}'s transcript"))?;
                Ok(Some(Stored {
                    workspace_id,
                    parts,
                    bytes,
                }))
            }
        }
    }

    /// Deletes session `id` for good; none when there is no such session.
    pub async fn delete(&self, id: &str) -> anyhow::Result<Option<DeletedSession>> {
        match self {
            Archive::Api(client) => {
                match client
                    .delete(&format!("/api/sessions/{}", encode(id)))
                    .await
                {
                    Ok(answer) => Ok(Some(
                        serde_json::from_value(answer)
                            .context("the server's deletion answer is unreadable")?,
                    )),
                    Err(ClientError::Refused(e)) if e.contains("HTTP 404") => Ok(None),
                    Err(e) => Err(anyhow::Error::msg(e)),
                }
            }
            Archive::Local { store, blobs } => {
                Ok(
                    deletion::delete_session(store, blobs.as_ref(), id, None, "request", "cli")
                        .await?
                        .map(DeletedSession::from),
                )
            }
        }
    }
}
