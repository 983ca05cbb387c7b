//! The data source: every interval it fetches `/api/monitor` and `/healthz` (and the session
//! list window when the sessions view shows; the usage report, at most every
//! [`USAGE_EVERY`], when the usage view shows), fetches a new window as soon as the operator
//! scrolls, filters or sorts, searches as the operator types, carries out commands (open a
//! session, reparse), and sends what it got — or why it could not — to the app. It never gives
//! up.
//!
//! It speaks to the API through a [`Transport`]: HTTP to a server ([`Http`]), or the daemon's
//! own router in-process (`daemon --tui`).

use std::time::Duration;

use futures::future::BoxFuture;
use serde::de::DeserializeOwned;
use tokio::sync::{mpsc, watch};

use crate::app::{Command, ListRequest, SessionWindow, Update, Usage, WINDOW, Wanted};
use crate::snapshot::{Health, MessagePage, Monitor, Session, SessionDetail, SessionPage};
use sessionflow_protocol::search::SearchPage;

/// A request to the API: method, path with query, and whether it carries the API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
}

/// An answer: status and body.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

/// How the monitor reaches the API.
pub trait Transport: Send + Sync + 'static {
    /// Sends a request with the API key; `Err` says why no answer came.
    fn call<'a>(&'a self, method: Method, path: &'a str) -> BoxFuture<'a, Result<Reply, String>>;
    /// Where the monitor looks, for the screen.
    fn describe(&self) -> String;
}

/// The API over HTTP.
pub struct Http {
    client: reqwest::Client,
    server: String,
    api_key: String,
}

impl Http {
    pub fn new(server: &str, api_key: String) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Http {
            client,
            server: server.trim_end_matches('/').to_owned(),
            api_key,
        })
    }
}

impl Transport for Http {
    fn call<'a>(&'a self, method: Method, path: &'a str) -> BoxFuture<'a, Result<Reply, String>> {
        Box::pin(async move {
            let url = format!("{}{path}", self.server);
            let request = match method {
                Method::Get => self.client.get(url),
                Method::Post => self.client.post(url),
            };
            let response = request
                .bearer_auth(&self.api_key)
                .send()
                .await
                .map_err(|e| format!("cannot reach {}: {e}", self.server))?;
            let status = response.status().as_u16();
            let body = response
                .bytes()
                .await
                .map_err(|e| format!("cannot reach {}: {e}", self.server))?;
            Ok(Reply {
                status,
                body: body.to_vec(),
            })
        })
    }

    fn describe(&self) -> String {
        self.server.clone()
    }
}

/// How often the usage view's report is asked for again (the server may first bring its usage
/// processor up to date).
pub const USAGE_EVERY: Duration = Duration::from_secs(15);

/// Runs until the app goes away.
pub async fn poll(
    transport: std::sync::Arc<dyn Transport>,
    interval: Duration,
    timezone: String,
    mut wanted: watch::Receiver<Wanted>,
    mut commands: mpsc::Receiver<Command>,
    updates: mpsc::Sender<Update>,
) {
    let api = Api(transport.as_ref());
    let usage_path = format!("/api/usage?by=daily&timezone={}", encode(&timezone));
    let mut usage_at: Option<tokio::time::Instant> = None;
    // The search whose hits were sent last (asked again only when it changes, or failed).
    let mut searched: Option<String> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let sent = tokio::select! {
            _ = tick.tick() => {
                let now = wanted.borrow_and_update().clone();
                if now.paused {
                    continue;
                }
                let snapshot = match api.snapshot().await {
                    Ok((monitor, health)) => Update::Snapshot(Box::new(monitor), health),
                    Err(why) => Update::Unreachable(why),
                };
                let mut sent = updates.send(snapshot).await.is_ok();
                if let Some(list) = now.list {
                    sent &= send_window(&api, list, &updates).await;
                }
                if now.usage && usage_at.is_none_or(|at| at.elapsed() >= USAGE_EVERY) {
                    usage_at = Some(tokio::time::Instant::now());
                    sent &= send_usage(&api, &usage_path, &updates).await;
                }
                sent &= send_search(&api, now.search, &mut searched, &updates).await;
                sent
            }
            changed = wanted.changed() => {
                if changed.is_err() {
                    return;
                }
                let now = wanted.borrow_and_update().clone();
                let mut sent = match now.list {
                    Some(list) => send_window(&api, list, &updates).await,
                    None => true,
                };
                if !now.usage {
                    usage_at = None;
                } else if usage_at.is_none() {
                    usage_at = Some(tokio::time::Instant::now());
                    sent &= send_usage(&api, &usage_path, &updates).await;
                }
                sent &= send_search(&api, now.search, &mut searched, &updates).await;
                sent
            }
            command = commands.recv() => match command {
                Some(command) => updates.send(api.carry_out(command).await).await.is_ok(),
                None => return,
            },
        };
        if !sent {
            return;
        }
    }
}

async fn send_window(api: &Api<'_>, list: ListRequest, updates: &mpsc::Sender<Update>) -> bool {
    let update = match api.window(list).await {
        Ok(window) => Update::Sessions(window),
        Err(why) => Update::Unreachable(why),
    };
    updates.send(update).await.is_ok()
}

async fn send_usage(api: &Api<'_>, path: &str, updates: &mpsc::Sender<Update>) -> bool {
    let update = match api.get(path, "a usage report").await {
        Ok(report) => Update::Usage(Box::new(Usage {
            report,
            this_month: chrono::Local::now().format("%Y-%m").to_string(),
        })),
        Err(why) => Update::Notice(format!("usage: {why}")),
    };
    updates.send(update).await.is_ok()
}

/// Hits per search in the search view.
pub const SEARCH_HITS: usize = 50;

/// The hits for `search` unless they were sent already; `searched` keeps what was.
async fn send_search(
    api: &Api<'_>,
    search: Option<String>,
    searched: &mut Option<String>,
    updates: &mpsc::Sender<Update>,
) -> bool {
    let Some(query) = search.filter(|q| searched.as_ref() != Some(q)) else {
        return true;
    };
    let path = format!("/api/search?q={}&limit={SEARCH_HITS}", encode(&query));
    let update = match api.get::<SearchPage>(&path, "search hits").await {
        Ok(page) => {
            *searched = Some(query.clone());
            Update::Search(query, Box::new(page))
        }
        Err(why) => Update::Notice(format!("search: {why}")),
    };
    updates.send(update).await.is_ok()
}

/// The API calls the monitor makes.
struct Api<'a>(&'a dyn Transport);

impl Api<'_> {
    /// GETs `path` and reads its JSON; any status but 200 is an error with the reason.
    async fn get<T: DeserializeOwned>(&self, path: &str, what: &str) -> Result<T, String> {
        let reply = self.0.call(Method::Get, path).await?;
        let server = self.0.describe();
        match reply.status {
            200 => serde_json::from_slice(&reply.body)
                .map_err(|e| format!("{server} sent {what} this monitor cannot read: {e}")),
            401 => Err(format!("{server} refused the API key (401)")),
            status => Err(format!(
                "{server} answered HTTP {status} for {what}: {}",
                reason(&reply.body)
            )),
        }
    }

    async fn snapshot(&self) -> Result<(Monitor, Health), String> {
        let monitor = self.get("/api/monitor", "a snapshot").await?;
        // /healthz answers 503 with its reasons when degraded: both are a health to show.
        let reply = self.0.call(Method::Get, "/healthz").await?;
        let health = serde_json::from_slice(&reply.body).unwrap_or_default();
        Ok((monitor, health))
    }

    async fn window(&self, list: ListRequest) -> Result<SessionWindow, String> {
        let mut path = format!(
            "/api/sessions?limit={WINDOW}&offset={}&sort={}&order={}",
            list.offset,
            list.sort.name(),
            if list.ascending { "asc" } else { "desc" }
        );
        if !list.filter.is_empty() {
            path.push_str("&q=");
            path.push_str(&encode(&list.filter));
        }
        let page: SessionPage = self.get(&path, "a session list").await?;
        Ok(SessionWindow {
            total: page.total.unwrap_or_default() as usize,
            rows: page.sessions,
            request: list,
        })
    }

    async fn carry_out(&self, command: Command) -> Update {
        match command {
            Command::Detail(id) => match self.detail(&id, None).await {
                Ok(detail) => Update::Detail(Box::new(detail)),
                Err(why) => Update::Notice(format!("cannot open {id}: {why}")),
            },
            Command::DetailAt(id, ordinal) => match self.detail(&id, Some(ordinal)).await {
                Ok(detail) => Update::Detail(Box::new(detail)),
                Err(why) => Update::Notice(format!("cannot open {id}: {why}")),
            },
            Command::Reparse(id) => {
                let path = format!("/api/sessions/{}/reparse", encode(&id));
                match self.0.call(Method::Post, &path).await {
                    Ok(reply) if reply.status == 202 => {
                        Update::Notice(format!("{id} is queued to be parsed again"))
                    }
                    Ok(reply) => Update::Notice(format!(
                        "reparse of {id} refused (HTTP {}): {}",
                        reply.status,
                        reason(&reply.body)
                    )),
                    Err(why) => Update::Notice(format!("reparse of {id} not sent: {why}")),
                }
            }
        }
    }

    /// A session and ten of its messages: the first, or from `from` on.
    async fn detail(&self, id: &str, from: Option<i64>) -> Result<SessionDetail, String> {
        let id = encode(id);
        let info: Session = self
            .get(&format!("/api/sessions/{id}"), "a session")
            .await?;
        let after = from.map_or(String::new(), |at| format!("&after={}", at - 1));
        let messages: MessagePage = self
            .get(
                &format!("/api/sessions/{id}/messages?limit=10{after}"),
                "the messages",
            )
            .await?;
        Ok(SessionDetail {
            info,
            first_messages: messages.messages,
            from_ordinal: from,
        })
    }
}

/// The `error` of a JSON error body, or the body itself.
fn reason(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).chars().take(200).collect())
}

/// Percent-encodes everything but letters and digits, for path segments and query values.
fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_escapes_all_but_letters_and_digits() {
        assert_eq!(encode("abc123"), "abc123");
        assert_eq!(encode("a b&c=%/é"), "a%20b%26c%3D%25%2F%C3%A9");
    }

    #[test]
    fn reasons_come_from_error_bodies() {
        assert_eq!(
            reason(br#"{"error":"session x not found"}"#),
            "session x not found"
        );
        assert_eq!(reason(b"plain"), "plain");
    }
}
