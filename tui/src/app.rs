//! The monitor's state: the latest snapshot and health, the window of the session list on
//! screen, the open session, what went wrong fetching them, the queue-depth history for the
//! sparkline, and the switches keys flip.
//!
//! The app never talks to the server itself: it says what list it wants to see ([`App::wanted`])
//! and queues the requests keys make ([`App::outbox`]); the data source answers with
//! [`Update`]s. That keeps every key testable without a server.

use std::collections::VecDeque;

use crossterm::event::KeyEvent;
use sessionflow_protocol::reports::UsageReport;
use sessionflow_protocol::search::SearchPage;

use crate::keys::{self, Action, InputAction};
use crate::snapshot::{Health, Monitor, SessionDetail, SessionRow};

/// The monitor's views, in Tab order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum View {
    #[default]
    Dashboard,
    Sessions,
    Failures,
    Workers,
    Processors,
    Usage,
    Search,
}

impl View {
    pub const ALL: [View; 7] = [
        View::Dashboard,
        View::Sessions,
        View::Failures,
        View::Workers,
        View::Processors,
        View::Usage,
        View::Search,
    ];

    pub fn title(self) -> &'static str {
        match self {
            View::Dashboard => "dashboard",
            View::Sessions => "sessions",
            View::Failures => "failures",
            View::Workers => "workers",
            View::Processors => "processors",
            View::Usage => "usage",
            View::Search => "search",
        }
    }

    fn next(self) -> View {
        let at = View::ALL.iter().position(|v| *v == self).unwrap_or(0);
        View::ALL[(at + 1) % View::ALL.len()]
    }
}

/// What the session list is ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    #[default]
    Created,
    Cost,
    Tokens,
    Messages,
}

impl Sort {
    /// The API's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Sort::Created => "created",
            Sort::Cost => "cost",
            Sort::Tokens => "tokens",
            Sort::Messages => "messages",
        }
    }

    fn next(self) -> Sort {
        match self {
            Sort::Created => Sort::Cost,
            Sort::Cost => Sort::Tokens,
            Sort::Tokens => Sort::Messages,
            Sort::Messages => Sort::Created,
        }
    }
}

/// The slice of the session list the sessions view needs: filter, order, and where the window
/// of rows starts.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListRequest {
    pub filter: String,
    pub sort: Sort,
    pub ascending: bool,
    pub offset: usize,
}

/// Rows fetched per window; the window is re-centred on the selection as it nears an edge.
pub const WINDOW: usize = 200;
/// How close to a window's edge the selection may come before the next window is asked for.
const MARGIN: usize = 50;

/// A window of the session list, as asked for by `request`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionWindow {
    pub request: ListRequest,
    /// How many sessions match the filter.
    pub total: usize,
    pub rows: Vec<SessionRow>,
}

impl SessionWindow {
    /// The row at absolute position `at` in the list, if this window holds it.
    pub fn row(&self, at: usize) -> Option<&SessionRow> {
        at.checked_sub(self.request.offset)
            .and_then(|i| self.rows.get(i))
    }
}

/// What the source should fetch besides the snapshot: the session list window (when the
/// sessions view is showing), and whether refreshing is paused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Wanted {
    pub list: Option<ListRequest>,
    /// The usage report, when the usage view shows.
    pub usage: bool,
    /// The search typed, when the search view shows one.
    pub search: Option<String>,
    pub paused: bool,
}

/// Requests keys make of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Fetch a session's detail.
    Detail(String),
    /// Fetch a session's detail with its messages from this ordinal on (a search hit).
    DetailAt(String, i64),
    /// Ask for the session to be parsed again.
    Reparse(String),
}

/// What the data source delivers.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Snapshot(Box<Monitor>, Health),
    Sessions(SessionWindow),
    Detail(Box<SessionDetail>),
    /// Tokens and cost by day.
    Usage(Box<Usage>),
    /// The hits for a search (the query they answer, then the page).
    Search(String, Box<SearchPage>),
    /// The outcome of a command, to show the operator.
    Notice(String),
    /// The server could not be reached or refused us; the source keeps retrying.
    Unreachable(String),
}

/// The usage view's data: the report by day, and which month is the current one where the
/// monitor runs (`YYYY-MM`, the month whose total the view shows).
#[derive(Debug, Clone, PartialEq)]
pub struct Usage {
    pub report: UsageReport,
    pub this_month: String,
}

/// A line being typed at the bottom of the screen, or a question waiting for an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// Typing the session filter; the previous one comes back on Esc.
    Filter { previous: String },
    /// Typing the search; the previous one comes back on Esc.
    Search { previous: String },
    /// Waiting for `y` to reparse this session.
    ConfirmReparse(String),
}

/// The open session: its id, and its detail once it has arrived.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Open {
    pub id: String,
    pub detail: Option<SessionDetail>,
    pub scroll: usize,
}

#[derive(Debug, Default)]
pub struct App {
    pub monitor: Option<Monitor>,
    pub health: Option<Health>,
    pub view: View,
    /// First line shown in the failures and workers views.
    pub scroll: usize,
    /// The session list as the operator wants it.
    pub list: ListRequest,
    /// The latest window of the list that arrived.
    pub window: Option<SessionWindow>,
    /// The selected session's position in the list.
    pub selected: usize,
    /// Rows the sessions table shows at once (set when drawn; paging moves by it).
    pub page_rows: usize,
    pub open: Option<Open>,
    /// The latest usage report (by day) that arrived.
    pub usage: Option<Usage>,
    /// The search as typed, and the latest hits that arrived (with the query they answer).
    pub search: String,
    pub hits: Option<(String, SearchPage)>,
    /// The selected hit.
    pub hit: usize,
    pub prompt: Option<Prompt>,
    /// The outcome of the last command.
    pub notice: Option<String>,
    /// Commands for the source to carry out.
    pub outbox: Vec<Command>,
    pub problem: Option<String>,
    pub depth_history: VecDeque<u64>,
    pub paused: bool,
    pub show_help: bool,
    pub quit: bool,
    pub server: String,
}

/// Queue depths kept for the sparkline (one per refresh).
pub const HISTORY: usize = 300;

impl App {
    pub fn new(server: impl Into<String>) -> Self {
        App {
            server: server.into(),
            page_rows: 20,
            ..App::default()
        }
    }

    /// What the source should fetch now.
    pub fn wanted(&self) -> Wanted {
        Wanted {
            list: (self.view == View::Sessions).then(|| self.list.clone()),
            usage: self.view == View::Usage,
            search: (self.view == View::Search && !self.search.trim().is_empty())
                .then(|| self.search.clone()),
            paused: self.paused,
        }
    }

    /// How many sessions match the list's filter (as far as the latest window knows).
    pub fn total(&self) -> usize {
        self.window.as_ref().map_or(0, |w| w.total)
    }

    /// The selected session, if its row has arrived.
    pub fn selected_row(&self) -> Option<&SessionRow> {
        self.window.as_ref().and_then(|w| w.row(self.selected))
    }

    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Snapshot(..) if self.paused => {}
            Update::Snapshot(monitor, health) => {
                if self.depth_history.len() == HISTORY {
                    self.depth_history.pop_front();
                }
                self.depth_history.push_back(monitor.queue.depth);
                self.monitor = Some(*monitor);
                self.health = Some(health);
                self.problem = None;
            }
            Update::Sessions(window) => {
                // Only the window asked for last counts; an older answer would jump back.
                if window.request == self.list {
                    self.selected = self.selected.min(window.total.saturating_sub(1));
                    self.window = Some(window);
                    self.follow_selection();
                }
            }
            Update::Detail(detail) => {
                if let Some(open) = self.open.as_mut().filter(|o| o.id == detail.info.id) {
                    open.detail = Some(*detail);
                }
            }
            Update::Usage(report) => self.usage = Some(*report),
            Update::Search(query, page) => {
                // Only the search typed last counts: results follow the typing.
                if query == self.search {
                    self.hit = self.hit.min(page.hits.len().saturating_sub(1));
                    self.hits = Some((query, *page));
                }
            }
            Update::Notice(text) => self.notice = Some(text),
            Update::Unreachable(why) => self.problem = Some(why),
        }
    }

    /// Handles a key press: an open prompt takes what is typed; Ctrl-C always quits.
    pub fn key(&mut self, key: KeyEvent) {
        if self.prompt.is_some() {
            if let Some(input) = keys::input_action(key) {
                self.input(input);
            } else if keys::action(key) == Some(Action::Quit) {
                self.act(Action::Quit);
            }
        } else if let Some(action) = keys::action(key) {
            self.act(action);
        }
    }

    pub fn act(&mut self, action: Action) {
        match action {
            Action::Quit if self.show_help => self.show_help = false,
            Action::Quit => self.quit = true,
            Action::Back => self.back(),
            Action::ToggleHelp => self.show_help = !self.show_help,
            Action::TogglePause => self.paused = !self.paused,
            Action::NextView => self.show(self.view.next()),
            Action::Show(view) => self.show(view),
            Action::Up => self.move_by(-1),
            Action::Down => self.move_by(1),
            Action::PageUp => self.move_by(-(self.page_rows.max(1) as i64)),
            Action::PageDown => self.move_by(self.page_rows.max(1) as i64),
            Action::Top => self.move_by(i64::MIN),
            Action::Bottom => self.move_by(i64::MAX),
            Action::Filter if self.view == View::Sessions => {
                self.prompt = Some(Prompt::Filter {
                    previous: self.list.filter.clone(),
                });
            }
            // `/` elsewhere searches every session.
            Action::Filter => {
                self.show(View::Search);
                self.prompt = Some(Prompt::Search {
                    previous: self.search.clone(),
                });
            }
            Action::Open if self.view == View::Search && self.open.is_none() => {
                let hit = self
                    .hits
                    .as_ref()
                    .and_then(|(_, page)| page.hits.get(self.hit));
                if let Some(hit) = hit {
                    let id = hit.session_id.clone();
                    self.outbox
                        .push(Command::DetailAt(id.clone(), hit.message_ordinal));
                    self.open = Some(Open {
                        id,
                        ..Open::default()
                    });
                }
            }
            Action::NextSort if self.view == View::Sessions => {
                let sort = self.list.sort.next();
                self.relist(|list| list.sort = sort);
            }
            Action::ReverseOrder if self.view == View::Sessions => {
                let ascending = !self.list.ascending;
                self.relist(|list| list.ascending = ascending);
            }
            Action::Open if self.view == View::Sessions && self.open.is_none() => {
                if let Some(id) = self.selected_row().map(|r| r.id.clone()) {
                    self.outbox.push(Command::Detail(id.clone()));
                    self.open = Some(Open {
                        id,
                        ..Open::default()
                    });
                }
            }
            Action::Reparse => self.ask_reparse(),
            Action::NextSort | Action::ReverseOrder | Action::Open => {}
        }
    }

    /// A key typed while a prompt is open.
    pub fn input(&mut self, action: InputAction) {
        match (self.prompt.clone(), action) {
            (Some(Prompt::Filter { .. }), InputAction::Type(c)) => {
                let filter = format!("{}{c}", self.list.filter);
                self.relist(|list| list.filter = filter);
            }
            (Some(Prompt::Filter { .. }), InputAction::Erase) => {
                let mut filter = self.list.filter.clone();
                filter.pop();
                self.relist(|list| list.filter = filter);
            }
            (Some(Prompt::Filter { .. }), InputAction::Accept) => self.prompt = None,
            (Some(Prompt::Filter { previous }), InputAction::Cancel) => {
                self.prompt = None;
                self.relist(|list| list.filter = previous);
            }
            (Some(Prompt::Search { .. }), InputAction::Type(c)) => {
                self.search.push(c);
                self.hit = 0;
            }
            (Some(Prompt::Search { .. }), InputAction::Erase) => {
                self.search.pop();
                self.hit = 0;
            }
            (Some(Prompt::Search { .. }), InputAction::Accept) => self.prompt = None,
            (Some(Prompt::Search { previous }), InputAction::Cancel) => {
                self.prompt = None;
                self.search = previous;
                self.hit = 0;
            }
            (Some(Prompt::ConfirmReparse(id)), InputAction::Type('y' | 'Y')) => {
                self.prompt = None;
                self.notice = Some(format!("asking the server to reparse {id}…"));
                self.outbox.push(Command::Reparse(id));
            }
            (Some(Prompt::ConfirmReparse(id)), _) => {
                self.prompt = None;
                self.notice = Some(format!("reparse of {id} cancelled"));
            }
            (None, _) => {}
        }
    }

    /// Esc: closes the help, then the open session, then clears the filter.
    fn back(&mut self) {
        if self.show_help {
            self.show_help = false;
        } else if self.open.is_some() {
            self.open = None;
        } else if self.view == View::Sessions && !self.list.filter.is_empty() {
            self.relist(|list| list.filter.clear());
        }
    }

    /// `r`: on a failed or parsed session (the open one, or the selected row), asks to confirm.
    fn ask_reparse(&mut self) {
        if self.view != View::Sessions {
            return;
        }
        let (id, lifecycle) = match &self.open {
            Some(open) => match &open.detail {
                Some(detail) => (open.id.clone(), detail.info.lifecycle.clone()),
                None => return,
            },
            None => match self.selected_row() {
                Some(row) => (row.id.clone(), row.lifecycle.clone()),
                None => return,
            },
        };
        if matches!(lifecycle.as_str(), "failed" | "parsed") {
            self.prompt = Some(Prompt::ConfirmReparse(id));
        } else {
            self.notice = Some(format!(
                "only failed or parsed sessions are reparsed from here; {id} is {lifecycle}"
            ));
        }
    }

    /// Changes the list's filter or order and starts again from its top.
    fn relist(&mut self, change: impl FnOnce(&mut ListRequest)) {
        change(&mut self.list);
        self.list.offset = 0;
        self.selected = 0;
    }

    fn move_by(&mut self, delta: i64) {
        if let Some(open) = self.open.as_mut() {
            open.scroll = step(open.scroll, delta, usize::MAX);
            return;
        }
        match self.view {
            View::Sessions => {
                let last = self.total().saturating_sub(1);
                self.selected = step(self.selected, delta, last);
                self.follow_selection();
            }
            View::Search => {
                let hits = self.hits.as_ref().map_or(0, |(_, page)| page.hits.len());
                self.hit = step(self.hit, delta, hits.saturating_sub(1));
            }
            _ => self.scroll = step(self.scroll, delta, usize::MAX / 2),
        }
    }

    /// Asks for a window centred on the selection when it nears the edge of the one held.
    fn follow_selection(&mut self) {
        let Some(window) = &self.window else { return };
        let start = window.request.offset;
        let end = start + window.rows.len();
        let near_start = start > 0 && self.selected < start + MARGIN;
        let near_end = end < window.total && self.selected + MARGIN >= end;
        if near_start || near_end || self.selected < start || self.selected >= end {
            let offset = self.selected.saturating_sub(WINDOW / 2);
            if offset != self.list.offset {
                self.list.offset = offset;
            }
        }
    }

    fn show(&mut self, view: View) {
        if self.view != view {
            self.view = view;
            self.scroll = 0;
            self.open = None;
        }
    }
}

/// `at` moved by `delta`, kept within `0..=last`.
fn step(at: usize, delta: i64, last: usize) -> usize {
    let moved = if delta < 0 {
        at.saturating_sub(delta.unsigned_abs() as usize)
    } else {
        at.saturating_add(delta as usize)
    };
    moved.min(last)
}
