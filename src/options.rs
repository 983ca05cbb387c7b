//! Options several commands share, declared once: where the database is, and which
//! sessionflow API a client talks to.

/// `--database-url`, or `DATABASE_URL`.
#[derive(clap::Args)]
pub struct Database {
    /// Postgres connection URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://localhost/sessionflow",
        hide_env_values = true
    )]
    pub database_url: String,
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
