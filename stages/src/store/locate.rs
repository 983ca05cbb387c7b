//! Where the database is when nobody said: connects as the user running the command (`PGUSER`,
//! else the OS account) to the `sessionflow` database over the local socket, then over
//! 127.0.0.1 (or only `PGHOST`, when it is set), and answers the URL of the first server that
//! lets that user in. [`Store::open`](super::Store::open) then creates the database if it is
//! missing. When no server does, the error says what was tried and the command that fixes it.

use std::fmt;
use std::path::Path;

use sqlx::ConnectOptions;
use sqlx::postgres::PgConnectOptions;

/// The database sessionflow uses when `DATABASE_URL` is not set.
pub const DEFAULT_DATABASE: &str = "sessionflow";

/// Directories Postgres servers put their socket in (Debian, macOS with Homebrew, the default).
const SOCKET_DIRS: [&str; 3] = ["/var/run/postgresql", "/private/tmp", "/tmp"];

/// A place a server may listen.
#[derive(Debug, Clone, PartialEq)]
enum Place {
    Socket(String),
    Tcp(String),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Socket(dir) => write!(f, "the socket in {dir}"),
            Place::Tcp(host) => write!(f, "{host}"),
        }
    }
}

/// How one try went wrong.
#[derive(Debug, Clone, PartialEq)]
enum Refusal {
    /// Nothing listens there.
    NoServer,
    RoleMissing,
    /// The server wants a password it was not given, or a different one.
    Password,
    Other(String),
}

/// No server let the user in.
#[derive(Debug, thiserror::Error)]
#[error("{summary}\n{fix}")]
pub struct LocateError {
    summary: String,
    fix: String,
}

/// The database URL to use: `explicit` when given, else the first local server that accepts
/// the user running the command.
pub async fn database_url(explicit: Option<&str>) -> Result<String, LocateError> {
    if let Some(url) = explicit.filter(|u| !u.is_empty()) {
        return Ok(url.to_owned());
    }
    let user = std::env::var("PGUSER")
        .ok()
        .filter(|u| !u.is_empty())
        .or_else(|| whoami::username().ok())
        .ok_or_else(|| LocateError {
            summary: "cannot tell which Postgres user to connect as: PGUSER is not set and \
                      this OS account has no name"
                .into(),
            fix: "Set PGUSER, or DATABASE_URL=postgres://USER@HOST/sessionflow.".into(),
        })?;
    let port = std::env::var("PGPORT")
        .ok()
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or(5432);
    let mut tried = Vec::new();
    for place in places(port) {
        let url = url_for(&place, port, &user);
        match try_connect(&place, port, &user).await {
            Ok(()) => return Ok(url),
            Err(refusal) => tried.push((place, refusal)),
        }
    }
    Err(explain(&user, port, &tried))
}

/// Where to look: `PGHOST` alone when set, else each local socket that exists, then 127.0.0.1.
fn places(port: u16) -> Vec<Place> {
    if let Ok(host) = std::env::var("PGHOST")
        && !host.is_empty()
    {
        return vec![if host.starts_with('/') {
            Place::Socket(host)
        } else {
            Place::Tcp(host)
        }];
    }
    let socket = format!(".s.PGSQL.{port}");
    SOCKET_DIRS
        .iter()
        .filter(|dir| Path::new(dir).join(&socket).exists())
        .map(|dir| Place::Socket((*dir).to_owned()))
        .chain(std::iter::once(Place::Tcp("127.0.0.1".into())))
        .collect()
}

fn url_for(place: &Place, port: u16, user: &str) -> String {
    let encode = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let host = match place {
        Place::Socket(dir) => encode(dir),
        Place::Tcp(host) => host.clone(),
    };
    format!(
        "postgres://{}@{host}:{port}/{DEFAULT_DATABASE}",
        encode(user)
    )
}

/// Connects once; a missing `sessionflow` database counts as success (it is created next).
async fn try_connect(place: &Place, port: u16, user: &str) -> Result<(), Refusal> {
    let options = PgConnectOptions::new()
        .port(port)
        .username(user)
        .database(DEFAULT_DATABASE);
    let options = match place {
        Place::Socket(dir) => options.socket(dir),
        Place::Tcp(host) => options.host(host),
    };
    match options.connect().await {
        Ok(connection) => {
            let _ = sqlx::Connection::close(connection).await;
            Ok(())
        }
        Err(error) => match classify(&error) {
            Some(refusal) => Err(refusal),
            None => Ok(()),
        },
    }
}

/// `None` when the server let the user in but the database is missing.
fn classify(error: &sqlx::Error) -> Option<Refusal> {
    match error {
        sqlx::Error::Database(e) => match e.code().as_deref() {
            Some("3D000") => None,
            Some("28000") if e.message().contains("does not exist") => Some(Refusal::RoleMissing),
            Some("28P01") => Some(Refusal::Password),
            Some("28000") if e.message().contains("password") => Some(Refusal::Password),
            _ => Some(Refusal::Other(e.message().to_owned())),
        },
        sqlx::Error::Io(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
            ) =>
        {
            Some(Refusal::NoServer)
        }
        sqlx::Error::Configuration(e) if e.to_string().contains("password") => {
            Some(Refusal::Password)
        }
        other => Some(Refusal::Other(other.to_string())),
    }
}

fn explain(user: &str, port: u16, tried: &[(Place, Refusal)]) -> LocateError {
    let outcomes: Vec<String> = tried
        .iter()
        .map(|(place, refusal)| {
            let what = match refusal {
                Refusal::NoServer => "no server".to_owned(),
                Refusal::RoleMissing => format!("role \"{user}\" does not exist"),
                Refusal::Password => "needs a password".to_owned(),
                Refusal::Other(text) => text.clone(),
            };
            format!("{place} ({what})")
        })
        .collect();
    let summary = format!(
        "no Postgres let user \"{user}\" in on port {port}: tried {}",
        outcomes.join(", ")
    );
    let any = |wanted: &Refusal| tried.iter().any(|(_, r)| r == wanted);
    let fix = if any(&Refusal::RoleMissing) {
        format!(
            "Create the role: sudo -u postgres createuser --createdb {user}\n\
             or set DATABASE_URL=postgres://USER@HOST/{DEFAULT_DATABASE}"
        )
    } else if any(&Refusal::Password) {
        format!(
            "Give the password with PGPASSWORD or ~/.pgpass, or set \
             DATABASE_URL=postgres://{user}:PASSWORD@HOST/{DEFAULT_DATABASE}"
        )
    } else if tried.iter().all(|(_, r)| *r == Refusal::NoServer) {
        format!(
            "Start Postgres (Debian/Ubuntu: sudo pg_ctlcluster $(ls /etc/postgresql) main \
             start; macOS: brew services start postgresql)\n\
             or set DATABASE_URL=postgres://USER@HOST/{DEFAULT_DATABASE}"
        )
    } else {
        format!("Set DATABASE_URL=postgres://USER@HOST/{DEFAULT_DATABASE}")
    };
    LocateError { summary, fix }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_urls_name_the_directory_and_the_user() {
        assert_eq!(
            url_for(&Place::Socket("/var/run/postgresql".into()), 5432, "root"),
            "postgres://root@%2Fvar%2Frun%2Fpostgresql:5432/sessionflow"
        );
        assert_eq!(
            url_for(&Place::Tcp("127.0.0.1".into()), 5433, "a b"),
            "postgres://a%20b@127.0.0.1:5433/sessionflow"
        );
    }

    #[test]
    fn the_fix_follows_what_went_wrong() {
        let socket = Place::Socket("/tmp".into());
        let tcp = Place::Tcp("127.0.0.1".into());
        let down = explain(
            "ann",
            5432,
            &[
                (socket.clone(), Refusal::NoServer),
                (tcp.clone(), Refusal::NoServer),
            ],
        );
        assert_eq!(
            down.summary,
            "no Postgres let user \"ann\" in on port 5432: tried the socket in /tmp (no server), \
             127.0.0.1 (no server)"
        );
        assert!(down.fix.starts_with("Start Postgres"), "{}", down.fix);
        let role = explain(
            "ann",
            5432,
            &[(socket, Refusal::RoleMissing), (tcp, Refusal::NoServer)],
        );
        assert!(
            role.fix
                .starts_with("Create the role: sudo -u postgres createuser --createdb ann"),
            "{}",
            role.fix
        );
    }
}
