//! The ratatui operator monitor: app state ([`app`]), the key table that drives both the handler
//! and the `?` help ([`keys`]), drawing ([`view`]), and the async data source that feeds
//! snapshots of `/api/monitor` and `/healthz` into the app through a channel ([`source`]).
//!
//! This first cut is the dashboard; the sessions, failures, workers and processors views come
//! next.

pub mod app;
pub mod keys;
pub mod snapshot;
pub mod source;
pub mod view;

use std::io;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::sync::mpsc;

use crate::app::App;

/// Where the monitor looks and how often.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: String,
    pub api_key: String,
    pub interval: Duration,
}

/// Runs the monitor in the terminal until the operator quits. The terminal is restored on the
/// way out, also when the program panics.
pub async fn run(config: Config) -> io::Result<()> {
    let terminal = ratatui::init();
    let result = event_loop(terminal, config).await;
    ratatui::restore();
    result
}

async fn event_loop(mut terminal: DefaultTerminal, config: Config) -> io::Result<()> {
    let mut app = App::new(config.server.clone());
    let (tx, mut updates) = mpsc::channel(4);
    let source = tokio::spawn(source::poll(
        config.server,
        config.api_key,
        config.interval,
        tx,
    ));
    let mut events = EventStream::new();
    terminal.draw(|frame| view::draw(frame, &app))?;
    while !app.quit {
        tokio::select! {
            Some(update) = updates.recv() => app.apply(update),
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind == KeyEventKind::Press => {
                    if let Some(action) = keys::action(key) {
                        app.act(action);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => break,
            },
        }
        terminal.draw(|frame| view::draw(frame, &app))?;
    }
    source.abort();
    Ok(())
}
