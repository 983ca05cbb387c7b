//! Backfill: sends every session found on disk that the server does not hold as it is — a
//! synthetic `session.start`, the transcript, and `session.end` unless the session is live —
//! in groups whose events go together, ten transcripts at a time; then follows the server-side
//! pipeline with batch-status until every session is done, the wait times out, or the operator
//! stops it.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, SystemTime};

use futures::StreamExt;
use serde_json::json;

use super::client::{Client, ClientError};
use super::discover::{Admission, DEFAULT_MAX_UPLOAD, LocalSession, Transcript};
use crate::events::Event;
use sessionflow_protocol::sessions::{SessionPage, SessionStatus};

/// How a backfill runs.
#[derive(Debug, Clone)]
pub struct Options {
    /// Send `session.end` for live sessions too.
    pub include_live: bool,
    /// A session whose files changed more recently than this is live.
    pub live_within: Duration,
    /// Sessions sent at once.
    pub concurrency: usize,
    /// The device the events come from.
    pub device_id: String,
    /// What may be read and sent.
    pub admission: Admission,
    /// Send sessions the server deleted for good again (otherwise they are left out).
    pub force_deleted: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            include_live: false,
            live_within: Duration::from_secs(5 * 60),
            concurrency: 10,
            device_id: device_id(),
            admission: Admission::new(&[], DEFAULT_MAX_UPLOAD),
            force_deleted: false,
        }
    }
}

/// This machine's name, for the events' `device_id`, kept to the id rule the server checks:
/// any other character becomes `-`, at most 128 of them.
pub fn device_id() -> String {
    let name: String = crate::hostname()
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(sessionflow_protocol::ids::MAX_ID)
        .collect();
    match name.as_str() {
        "" | "." | ".." => "unknown-host".to_owned(),
        _ => name,
    }
}

/// What happened to one session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sent {
    /// Sent and ended: the server will process it.
    Uploaded,
    /// Sent without an end: it is still being written.
    Live,
    /// The server already holds it as it is (and has ended it, or not: still live).
    Skipped { ended: bool },
    /// Not sent: the server deleted it for good (sent again with `force_deleted`).
    Deleted,
    /// Not sent; the reason.
    Failed(String),
}

/// Told as the backfill goes.
pub trait Progress: Send + Sync {
    fn sending(&self, total: usize);
    fn sent(&self, session_id: &str, outcome: &Sent);
    fn processing(&self, counts: &Processing);
}

/// The result of the sending phase, session by session.
#[derive(Debug, Default, Clone)]
pub struct SendReport {
    pub outcomes: BTreeMap<String, Sent>,
}

impl SendReport {
    pub fn count(&self, wanted: impl Fn(&Sent) -> bool) -> usize {
        self.outcomes.values().filter(|o| wanted(o)).count()
    }

    /// The sessions the server has ended and will process (or has): those to wait for.
    pub fn to_follow(&self) -> Vec<String> {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Sent::Uploaded | Sent::Skipped { ended: true }))
            .map(|(id, _)| id.clone())
            .collect()
    }
}

/// Sessions sent as one group: their `session.start` events go in one request, then their
/// transcripts, then their `session.end` events in one request (the server takes up to
/// [`MAX_EVENTS`](crate::api::ingest::MAX_EVENTS) events a request), so that a backfill costs
/// the server one upload and a small share of two event requests per session instead of three
/// requests.
pub const GROUP: usize = 50;

/// Groups in flight at once, so that one group's event requests overlap the other's uploads.
const GROUPS_AT_ONCE: usize = 2;

/// Sends every session in `sessions`, in groups of [`GROUP`]; one that fails is reported and
/// the others go on.
pub async fn send_all(
    client: &Client,
    sessions: Vec<LocalSession>,
    options: &Options,
    progress: &dyn Progress,
) -> Result<SendReport, ClientError> {
    progress.sending(sessions.len());
    let ids: Vec<String> = sessions.iter().map(|s| s.id.clone()).collect();
    let (remote, deleted) = client.remote(&ids).await?;
    let mut report = SendReport::default();
    let mut groups = futures::stream::iter(sessions)
        .chunks(GROUP)
        .map(|group| send_group(client, group, &remote, &deleted, options))
        .buffer_unordered(GROUPS_AT_ONCE);
    while let Some(outcomes) = groups.next().await {
        for (id, outcome) in outcomes {
            progress.sent(&id, &outcome);
            report.outcomes.insert(id, outcome);
        }
    }
    Ok(report)
}

/// What is to be sent of one session, as its files and the server's record tell.
struct Plan {
    session: LocalSession,
    transcript: Transcript,
    /// Its files changed within `live_within` (and live sessions are not ended).
    live: bool,
    /// The server holds these very bytes.
    same_content: bool,
    /// The server has not ended it, and it is not live.
    needs_end: bool,
    /// The server deleted it for good and it is sent again: the upload brings it back before
    /// its events.
    deleted: bool,
    /// The server does not know it: it needs its `session.start`.
    unknown: bool,
}

/// Sends one group: each session's files read (the group's share of `concurrency` at once),
/// then the starts of those the server does not know in one request, their transcripts, and
/// the ends in one request — in that order for every session, as the hooks would send them.
async fn send_group(
    client: &Client,
    group: Vec<LocalSession>,
    remote: &BTreeMap<String, SessionStatus>,
    deleted: &std::collections::BTreeSet<String>,
    options: &Options,
) -> Vec<(String, Sent)> {
    let at_once = options.concurrency.div_ceil(GROUPS_AT_ONCE).max(1);
    let mut outcomes: Vec<(String, Option<Sent>)> =
        group.iter().map(|s| (s.id.clone(), None)).collect();
    let planned: Vec<Result<Plan, Sent>> = futures::stream::iter(group)
        .map(|session| async move {
            let deleted = deleted.contains(&session.id);
            if deleted && !options.force_deleted {
                return Err(Sent::Deleted);
            }
            plan(session, remote, deleted, options)
                .await
                .map_err(Sent::Failed)
        })
        .buffered(at_once)
        .collect()
        .await;
    let mut plans: Vec<(usize, Plan)> = Vec::new();
    for (i, planned) in planned.into_iter().enumerate() {
        match planned {
            Ok(plan) if plan.same_content && !plan.needs_end => {
                outcomes[i].1 = Some(Sent::Skipped {
                    ended: remote
                        .get(&plan.session.id)
                        .is_some_and(SessionStatus::has_ended),
                });
            }
            Ok(plan) => plans.push((i, plan)),
            Err(outcome) => outcomes[i].1 = Some(outcome),
        }
    }
    // Deleted for good and sent again: the upload first.
    let restored = upload_each(client, &plans, at_once, true).await;
    settle(&mut outcomes, &mut plans, restored);
    let starts: Vec<(usize, Event)> = plans
        .iter()
        .filter(|(_, p)| p.unknown)
        .map(|(i, p)| {
            (
                *i,
                start_event(&p.session, &p.transcript, &options.device_id),
            )
        })
        .collect();
    settle(&mut outcomes, &mut plans, send_events(client, starts).await);
    let uploaded = upload_each(client, &plans, at_once, false).await;
    settle(&mut outcomes, &mut plans, uploaded);
    let ends: Vec<(usize, Event)> = plans
        .iter()
        .filter(|(_, p)| p.needs_end)
        .map(|(i, p)| (*i, end_event(&p.session, &p.transcript, &options.device_id)))
        .collect();
    settle(&mut outcomes, &mut plans, send_events(client, ends).await);
    for (i, plan) in plans {
        outcomes[i].1 = Some(if plan.live && !plan.needs_end {
            Sent::Live
        } else {
            Sent::Uploaded
        });
    }
    outcomes
        .into_iter()
        .map(|(id, outcome)| (id, outcome.unwrap_or(Sent::Uploaded)))
        .collect()
}

/// Reads `session`'s files and compares them with what the server holds (`remote`).
async fn plan(
    session: LocalSession,
    remote: &BTreeMap<String, SessionStatus>,
    deleted: bool,
    options: &Options,
) -> Result<Plan, String> {
    let session = options.admission.admit(&session.main)?;
    let reading = session.clone();
    let transcript = tokio::task::spawn_blocking(move || reading.scan())
        .await
        .map_err(|e| format!("reading {} failed: {e}", session.main.display()))?
        .map_err(|e| format!("cannot read {}: {e}", session.main.display()))?;
    let remote = remote.get(&session.id);
    let live = !options.include_live
        && SystemTime::now()
            .duration_since(transcript.modified)
            .is_ok_and(|age| age < options.live_within);
    Ok(Plan {
        live,
        same_content: remote.and_then(|r| r.transcript_sha256.as_deref())
            == Some(transcript.sha256.as_str()),
        needs_end: !live && !remote.is_some_and(SessionStatus::has_ended),
        deleted,
        unknown: remote.is_none(),
        session,
        transcript,
    })
}

/// Uploads the transcripts of the plans that need it, `at_once` at a time — with `force`,
/// those the server deleted for good (sent again); otherwise those whose bytes it lacks. The
/// failures, by the plan's place in the group.
async fn upload_each(
    client: &Client,
    plans: &[(usize, Plan)],
    at_once: usize,
    force: bool,
) -> Vec<(usize, String)> {
    let wanted = |p: &Plan| match force {
        true => p.deleted,
        false => !p.same_content && !p.deleted,
    };
    futures::stream::iter(plans.iter().filter(|(_, p)| wanted(p)))
        .map(|(i, p)| async move {
            let sent = client.upload(&p.session, force).await;
            sent.err().map(|e| (*i, e.to_string()))
        })
        .buffer_unordered(at_once)
        .filter_map(futures::future::ready)
        .collect()
        .await
}

/// Sends `events` (each with its plan's place) in one request; when the server refuses the
/// request, one by one, so that an event it refuses fails its own session only. The failures,
/// by place.
async fn send_events(client: &Client, events: Vec<(usize, Event)>) -> Vec<(usize, String)> {
    if events.is_empty() {
        return Vec::new();
    }
    let all: Vec<Event> = events.iter().map(|(_, e)| e.clone()).collect();
    match client.send_events(&all).await {
        Ok(()) => Vec::new(),
        Err(ClientError::Refused(_)) if events.len() > 1 => {
            let mut failed = Vec::new();
            for (i, event) in events {
                if let Err(e) = client.send_events(std::slice::from_ref(&event)).await {
                    failed.push((i, e.to_string()));
                }
            }
            failed
        }
        Err(e) => events
            .into_iter()
            .map(|(i, _)| (i, e.to_string()))
            .collect(),
    }
}

/// Ends the plans that `failed` names with their reasons; the others go on.
fn settle(
    outcomes: &mut [(String, Option<Sent>)],
    plans: &mut Vec<(usize, Plan)>,
    failed: Vec<(usize, String)>,
) {
    for (i, reason) in failed {
        outcomes[i].1 = Some(Sent::Failed(reason));
    }
    plans.retain(|(i, _)| outcomes[*i].1.is_none());
}

fn envelope(
    kind: &str,
    session: &LocalSession,
    at: chrono::DateTime<chrono::Utc>,
    device_id: &str,
    data: serde_json::Value,
) -> Event {
    Event {
        id: ulid::Ulid::generate().to_string(),
        kind: kind.to_owned(),
        timestamp: at,
        device_id: device_id.to_owned(),
        workspace_id: session.workspace_id.clone(),
        session_id: Some(session.id.clone()),
        data,
        blob_refs: Vec::new(),
    }
}

/// `session.start` as the file tells it: source backfill, cwd, branch, version, model and the
/// first timestamp.
pub fn start_event(session: &LocalSession, transcript: &Transcript, device_id: &str) -> Event {
    let at = transcript
        .first_timestamp
        .unwrap_or_else(|| transcript.modified.into());
    envelope(
        "session.start",
        session,
        at,
        device_id,
        json!({
            "cc_session_id": session.id,
            "source": "backfill",
            "cwd": transcript.cwd,
            "git_branch": transcript.git_branch,
            "cc_version": transcript.cc_version,
            "model": transcript.model,
            "transcript_path": session.main.display().to_string(),
        }),
    )
}

/// `session.end` at the last timestamp, with the duration from first to last.
pub fn end_event(session: &LocalSession, transcript: &Transcript, device_id: &str) -> Event {
    let last = transcript
        .last_timestamp
        .unwrap_or_else(|| transcript.modified.into());
    let duration_ms = transcript
        .first_timestamp
        .map(|first| (last - first).num_milliseconds().max(0));
    envelope(
        "session.end",
        session,
        last,
        device_id,
        json!({
            "cc_session_id": session.id,
            "end_reason": "other",
            "duration_ms": duration_ms,
            "transcript_path": session.main.display().to_string(),
        }),
    )
}

/// Where the followed sessions stand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Processing {
    pub total: usize,
    /// Summarized or archived.
    pub summarized: usize,
    pub parsed: usize,
    pub failed: usize,
    /// Being parsed right now.
    pub parsing: usize,
    /// Ended, waiting for a worker.
    pub queued: usize,
    /// Not done yet (parsing, queued, or not yet seen by the server).
    pub pending: usize,
}

impl Processing {
    pub fn of(total: usize, statuses: &BTreeMap<String, SessionStatus>) -> Self {
        let mut counts = Processing {
            total,
            ..Processing::default()
        };
        for status in statuses.values() {
            match status.lifecycle.as_str() {
                "summarized" | "archived" => counts.summarized += 1,
                "parsed" => counts.parsed += 1,
                "failed" => counts.failed += 1,
                _ if status.parse_status == "parsing" => counts.parsing += 1,
                _ => counts.queued += 1,
            }
        }
        counts.pending = total - counts.summarized - counts.parsed - counts.failed;
        counts
    }

    pub fn done(&self) -> usize {
        self.total - self.pending
    }
}

/// How the wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WaitEnd {
    Finished,
    TimedOut,
    Interrupted,
}

/// What the wait saw last.
#[derive(Debug, Clone)]
pub struct Followed {
    pub end: WaitEnd,
    pub counts: Processing,
    pub statuses: BTreeMap<String, SessionStatus>,
}

/// Sessions the server keeps from device `device_id` that are not in `local` (their files are
/// gone from this machine: Claude Code's cleanup, say), oldest first. None when the key may not
/// list sessions (an ingest key: a read or admin key may).
pub async fn kept_on_server_only(
    client: &Client,
    device_id: &str,
    local: &std::collections::BTreeSet<String>,
) -> Result<Option<Vec<String>>, ClientError> {
    let mut kept = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!(
            "/api/sessions?device={}&order=asc&limit=200",
            super::client::encode(device_id)
        );
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={}", super::client::encode(cursor)));
        }
        let page: SessionPage = match client.get(&path).await {
            Ok(answer) => serde_json::from_value(answer).map_err(|e| {
                ClientError::Refused(format!("the server's session list is unreadable: {e}"))
            })?,
            Err(ClientError::Refused(e)) if e.contains("HTTP 403") => return Ok(None),
            Err(e) => return Err(e),
        };
        kept.extend(
            page.sessions
                .into_iter()
                .map(|row| row.id)
                .filter(|id| !local.contains(id)),
        );
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(Some(kept)),
        }
    }
}

/// Polls batch-status for `ids` every `every` until each is parsed, summarized, archived or
/// failed, `timeout` passes, or `stop` completes. A poll that fails is retried at the next tick.
pub async fn follow(
    client: &Client,
    ids: &[String],
    every: Duration,
    timeout: Duration,
    stop: impl Future<Output = ()>,
    progress: &dyn Progress,
) -> Followed {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut statuses: BTreeMap<String, SessionStatus> = BTreeMap::new();
    // Asked about until they are summarized or failed (a parsed one is done waiting for, but
    // still reported as summarized once it is).
    let mut pending: Vec<String> = ids.to_vec();
    let mut tick = tokio::time::interval(every);
    tokio::pin!(stop);
    let end = loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = tokio::time::sleep_until(deadline) => break WaitEnd::TimedOut,
            () = &mut stop => break WaitEnd::Interrupted,
        }
        match client.statuses(&pending).await {
            Ok(now) => statuses.extend(now),
            Err(e) => tracing::warn!("checking on the sessions failed (retrying): {e}"),
        }
        pending.retain(|id| {
            !statuses.get(id).is_some_and(|s| {
                matches!(s.lifecycle.as_str(), "summarized" | "archived" | "failed")
            })
        });
        let counts = Processing::of(ids.len(), &statuses);
        progress.processing(&counts);
        if counts.pending == 0 {
            break WaitEnd::Finished;
        }
    };
    Followed {
        end,
        counts: Processing::of(ids.len(), &statuses),
        statuses,
    }
}
