//! `sessionflow keys create|list|revoke`: API keys, in the database (`--database-url`) or
//! through a server (`--server` with an admin `--api-key`). A key is shown once, when made.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use sessionflow_pipeline::capture::client::{Client, Patience, encode};
use sessionflow_protocol::ids::Id;
use sessionflow_protocol::keys::{CreatedKey, KeyInfo, NewKeyRequest, Role};

use crate::options::ApiKey;
use crate::text::escaped;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
    #[command(flatten)]
    database: crate::options::Database,
    /// Manage the keys of this sessionflow server instead of the database.
    #[arg(long, env = "SESSIONFLOW_SERVER", global = true)]
    server: Option<String>,
    /// An admin key of that server.
    #[arg(
        long,
        env = "SESSIONFLOW_API_KEY",
        hide_env_values = true,
        global = true
    )]
    api_key: Option<String>,
    /// A file holding that key (mode 0600) [default: ~/.config/sessionflow/key, when it
    /// exists].
    #[arg(long, env = "SESSIONFLOW_API_KEY_FILE", global = true)]
    api_key_file: Option<std::path::PathBuf>,
}

#[derive(clap::Subcommand)]
enum Action {
    /// Make a key; it is printed once.
    Create {
        /// ingest (hooks and backfill), read (every GET) or admin (everything).
        #[arg(long)]
        role: Role,
        /// A workspace the key covers (repeat for more) [default: every workspace].
        #[arg(long = "workspace", allow_hyphen_values = true)]
        workspaces: Vec<String>,
        /// What the key is for, like "alice's laptop".
        #[arg(long)]
        name: Option<String>,
        /// How long it works, like 90d or 12h [default: until revoked].
        #[arg(long, value_parser = crate::options::parse_duration)]
        expires: Option<Duration>,
        #[arg(long)]
        json: bool,
    },
    /// Every key, newest first (never the keys themselves).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key: it opens nothing from now on.
    Revoke { id: String },
}

enum Keys {
    Api(Client),
    Database(sessionflow_stages::store::Store),
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    tokio::runtime::Runtime::new()?.block_on(keys(args))
}

async fn keys(args: Args) -> anyhow::Result<ExitCode> {
    let keys = match args.server.as_deref().filter(|s| !s.is_empty()) {
        Some(server) => {
            let key = ApiKey::new(args.api_key.clone(), args.api_key_file.clone()).required()?;
            Keys::Api(Client::new(server, &key, Patience::REPORT).map_err(anyhow::Error::msg)?)
        }
        None => Keys::Database(args.database.open().await?),
    };
    match args.action {
        Action::Create {
            role,
            workspaces,
            name,
            expires,
            json,
        } => {
            let checked = workspaces
                .iter()
                .map(|w| Id::parse("--workspace", w))
                .collect::<Result<Vec<_>, _>>()?;
            if role == Role::Admin && !checked.is_empty() {
                anyhow::bail!("an admin key covers every workspace: drop --workspace");
            }
            let expires_at = expires
                .map(|d| chrono::Duration::from_std(d).map(|d| Utc::now() + d))
                .transpose()
                .context("--expires is too far")?;
            let created: CreatedKey = match &keys {
                Keys::Database(store) => {
                    store
                        .create_key(name.as_deref(), role, &checked, expires_at)
                        .await?
                }
                Keys::Api(client) => {
                    let request = NewKeyRequest {
                        role,
                        workspaces,
                        name,
                        expires_at,
                    };
                    let answer = client.post_json("/api/admin/keys", &request).await?;
                    serde_json::from_value(answer).context("the server's answer")?
                }
            };
            if json {
                println!("{}", serde_json::to_string(&created)?);
            } else {
                println!("{}", created.key);
                eprintln!(
                    "key {} ({}, {}): this is the only time it is shown; keep it in a file of \
                     mode 0600",
                    created.id,
                    created.role,
                    covered(&created.workspaces)
                );
            }
        }
        Action::List { json } => {
            let list: Vec<KeyInfo> = match &keys {
                Keys::Database(store) => store.list_keys().await?,
                Keys::Api(client) => serde_json::from_value(client.get("/api/admin/keys").await?)
                    .context("the server's answer")?,
            };
            if json {
                println!("{}", serde_json::to_string(&list)?);
            } else {
                println!(
                    "{:<26}  {:<6}  {:<24}  {:<8}  name",
                    "id", "role", "workspaces", "state"
                );
                for key in &list {
                    let state = match (key.revoked_at, key.expires_at) {
                        (Some(_), _) => "revoked",
                        (None, Some(at)) if at <= Utc::now() => "expired",
                        _ => "live",
                    };
                    println!(
                        "{:<26}  {:<6}  {:<24}  {:<8}  {}",
                        key.id,
                        key.role,
                        escaped(&covered(&key.workspaces)),
                        state,
                        escaped(&key.name)
                    );
                }
            }
        }
        Action::Revoke { id } => {
            let revoked = match &keys {
                Keys::Database(store) => store.revoke_key(&id).await?,
                Keys::Api(client) => {
                    client
                        .delete(&format!("/api/admin/keys/{}", encode(&id)))
                        .await?;
                    true
                }
            };
            if !revoked {
                anyhow::bail!("no live key {}", escaped(&id));
            }
            println!("revoked {}", escaped(&id));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn covered(workspaces: &Option<Vec<String>>) -> String {
    workspaces
        .as_ref()
        .map_or_else(|| "every workspace".to_owned(), |list| list.join(","))
}
