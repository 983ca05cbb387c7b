//! The ratatui operator monitor: app state ([`app`]), the key tables that drive both the
//! handler and the `?` help ([`keys`]), drawing ([`view`]), and the async data source that
//! fetches snapshots, session list windows and session details over a [`source::Transport`]
//! (HTTP, or the daemon's router in-process) and feeds them to the app through a channel
//! ([`source`]).

pub mod app;
pub mod keys;
pub mod snapshot;
pub mod source;
pub mod view;

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event, EventStream, KeyEventKind};
use futures::StreamExt;
use ratatui::DefaultTerminal;
use tokio::sync::{mpsc, watch};

use crate::app::App;
use crate::source::Transport;

/// Where the monitor looks and how often.
#[derive(Clone)]
pub struct Config {
    pub transport: Arc<dyn Transport>,
    pub interval: Duration,
    /// IANA time zone the usage view's days are taken in.
    pub timezone: String,
}

/// Runs the monitor in the terminal until the operator quits or `until` completes. The
/// terminal is restored on the way out, also when the program panics.
pub async fn run(config: Config, until: impl Future<Output = ()>) -> io::Result<()> {
    let terminal = ratatui::init();
    let result = event_loop(terminal, config, until).await;
    ratatui::restore();
    result
}

async fn event_loop(
    mut terminal: DefaultTerminal,
    config: Config,
    until: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut app = App::new(config.transport.describe());
    let (tx, mut updates) = mpsc::channel(8);
    let (wanted, wanted_rx) = watch::channel(app.wanted());
    let (commands, commands_rx) = mpsc::channel(8);
    let source = tokio::spawn(source::poll(
        config.transport,
        config.interval,
        config.timezone,
        wanted_rx,
        commands_rx,
        tx,
    ));
    let mut events = EventStream::new();
    tokio::pin!(until);
    while !app.quit {
        let size = terminal.size()?;
        app.page_rows =
            view::session_rows(ratatui::layout::Rect::new(0, 0, size.width, size.height));
        terminal.draw(|frame| view::draw(frame, &app))?;
        tokio::select! {
            Some(update) = updates.recv() => app.apply(update),
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) if key.kind == KeyEventKind::Press => app.key(key),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => break,
            },
            () = &mut until => break,
        }
        let now = app.wanted();
        wanted.send_if_modified(|held| {
            let changed = *held != now;
            *held = now;
            changed
        });
        for command in app.outbox.drain(..) {
            // A full queue means the source is busy; the operator can press the key again.
            let _ = commands.try_send(command);
        }
    }
    source.abort();
    Ok(())
}
