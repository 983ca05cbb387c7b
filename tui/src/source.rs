//! The data source: polls `/api/monitor` and `/healthz` every interval and sends what it got —
//! or why it could not — to the app through a channel. It never gives up.

use std::time::Duration;

use tokio::sync::mpsc;

use crate::app::Update;
use crate::snapshot::{Health, Monitor, SessionPage, SessionRow};

pub async fn poll(
    server: String,
    api_key: String,
    interval: Duration,
    updates: mpsc::Sender<Update>,
) {
    let http = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
    {
        Ok(http) => http,
        Err(e) => {
            let _ = updates.send(Update::Unreachable(e.to_string())).await;
            return;
        }
    };
    let mut tick = tokio::time::interval(interval);
    loop {
        tick.tick().await;
        let update = match fetch(&http, &server, &api_key).await {
            Ok((monitor, health, sessions)) => {
                Update::Snapshot(Box::new(monitor), health, sessions)
            }
            Err(why) => Update::Unreachable(why),
        };
        if updates.send(update).await.is_err() {
            return;
        }
    }
}

async fn fetch(
    http: &reqwest::Client,
    server: &str,
    api_key: &str,
) -> Result<(Monitor, Health, Vec<SessionRow>), String> {
    let server = server.trim_end_matches('/');
    let response = http
        .get(format!("{server}/api/monitor"))
        .bearer_auth(api_key)
        .send()
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    match response.status().as_u16() {
        200 => {}
        401 => return Err(format!("{server} refused the API key (401)")),
        status => return Err(format!("{server} answered HTTP {status}")),
    }
    let monitor: Monitor = response
        .json()
        .await
        .map_err(|e| format!("{server} sent a snapshot this monitor cannot read: {e}"))?;
    // /healthz answers 503 with its reasons when degraded: both are a health to show.
    let health: Health = http
        .get(format!("{server}/healthz"))
        .send()
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?
        .json()
        .await
        .unwrap_or_default();
    let page: SessionPage = http
        .get(format!("{server}/api/sessions?limit=200"))
        .bearer_auth(api_key)
        .send()
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("{server} sent a session list this monitor cannot read: {e}"))?;
    Ok((monitor, health, page.sessions))
}
