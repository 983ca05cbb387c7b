//! A `sessionflow daemon` of a test's own (embedded, its own database and port), and what the
//! tests that run one share.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{admin_url, url_for};

pub const KEY: &str = "daemon-test-key";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub struct Daemon {
    pub child: Child,
    pub url: String,
}

impl Daemon {
    pub fn start(database: &str, blobs: &std::path::Path) -> Self {
        Self::start_with(database, blobs, &[])
    }

    /// A daemon with `envs` set too.
    pub fn start_with(database: &str, blobs: &std::path::Path, envs: &[(&str, &str)]) -> Self {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_sessionflow"))
            .args(["daemon", "--log-format", "json"])
            .env("DATABASE_URL", url_for(database))
            .env_remove("REDIS_URL")
            .env_remove("ANTHROPIC_API_KEY")
            .env_remove("SESSIONFLOW_METRICS_KEY")
            .env("SESSIONFLOW_BLOB", blobs)
            .env("SESSIONFLOW_API_KEY", KEY)
            .env("SESSIONFLOW_LISTEN", format!("127.0.0.1:{port}"))
            .envs(envs.iter().copied())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        Daemon {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

pub async fn wait_healthy(url: &str) {
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match http.get(format!("{url}/healthz")).send().await {
            Ok(r) if r.status() == 200 => return,
            _ if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            other => panic!("the daemon never became healthy: {other:?}"),
        }
    }
}

pub async fn drop_database(database: &str) {
    let admin = sqlx::PgPool::connect(&admin_url()).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {database} WITH (FORCE)"
    )))
    .execute(&admin)
    .await
    .unwrap();
}
