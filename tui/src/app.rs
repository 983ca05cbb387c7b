//! The monitor's state: the latest snapshot and health, what went wrong fetching them, the
//! queue-depth history for the sparkline, and the switches keys flip.

use std::collections::VecDeque;

use crate::keys::Action;
use crate::snapshot::{Health, Monitor, SessionRow};

/// The monitor's views, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    #[default]
    Dashboard,
    Sessions,
    Failures,
    Workers,
    Processors,
}

impl View {
    pub const ALL: [View; 5] = [
        View::Dashboard,
        View::Sessions,
        View::Failures,
        View::Workers,
        View::Processors,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Dashboard => "dashboard",
            View::Sessions => "sessions",
            View::Failures => "failures",
            View::Workers => "workers",
            View::Processors => "processors",
        }
    }

    fn next(self) -> View {
        let at = View::ALL.iter().position(|v| *v == self).unwrap_or(0);
        View::ALL[(at + 1) % View::ALL.len()]
    }
}

/// Queue depths kept for the sparkline (one per refresh).
pub const HISTORY: usize = 300;

/// What the data source delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Snapshot(Box<Monitor>, Health, Vec<SessionRow>),
    /// The server could not be reached or refused us; the source keeps retrying.
    Unreachable(String),
}

#[derive(Debug, Default)]
pub struct App {
    pub monitor: Option<Monitor>,
    pub health: Option<Health>,
    pub sessions: Vec<SessionRow>,
    pub view: View,
    /// First row shown in the scrolling views.
    pub scroll: usize,
    pub problem: Option<String>,
    pub depth_history: VecDeque<u64>,
    pub paused: bool,
    pub show_help: bool,
    pub quit: bool,
    pub server: String,
}

impl App {
    pub fn new(server: impl Into<String>) -> Self {
        App {
            server: server.into(),
            ..App::default()
        }
    }

    pub fn apply(&mut self, update: Update) {
        if self.paused {
            return;
        }
        match update {
            Update::Snapshot(monitor, health, sessions) => {
                self.sessions = sessions;
                if self.depth_history.len() == HISTORY {
                    self.depth_history.pop_front();
                }
                self.depth_history.push_back(monitor.queue.depth);
                self.monitor = Some(*monitor);
                self.health = Some(health);
                self.problem = None;
            }
            Update::Unreachable(why) => self.problem = Some(why),
        }
    }

    pub fn act(&mut self, action: Action) {
        match action {
            Action::Quit if self.show_help => self.show_help = false,
            Action::Quit => self.quit = true,
            Action::ToggleHelp => self.show_help = !self.show_help,
            Action::TogglePause => self.paused = !self.paused,
            Action::NextView => self.show(self.view.next()),
            Action::Show(view) => self.show(view),
            Action::Up => self.scroll = self.scroll.saturating_sub(1),
            Action::Down => self.scroll += 1,
        }
    }

    fn show(&mut self, view: View) {
        if self.view != view {
            self.view = view;
            self.scroll = 0;
        }
    }
}
