//! The key table: one list drives both the key handler and the `?` help screen.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::View;

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    ToggleHelp,
    TogglePause,
    NextView,
    Show(View),
    Up,
    Down,
}

/// Key, its label in the help, and what it does.
pub const KEYS: [(KeyCode, &str, Action, &str); 14] = [
    (
        KeyCode::Char('q'),
        "q",
        Action::Quit,
        "quit, or close the help",
    ),
    (KeyCode::Esc, "Esc", Action::Quit, "quit, or close the help"),
    (
        KeyCode::Char('?'),
        "?",
        Action::ToggleHelp,
        "show or hide this help",
    ),
    (
        KeyCode::Char('p'),
        "p",
        Action::TogglePause,
        "pause or resume refreshing",
    ),
    (KeyCode::Tab, "Tab", Action::NextView, "next view"),
    (
        KeyCode::Char('1'),
        "1",
        Action::Show(View::Dashboard),
        "dashboard",
    ),
    (
        KeyCode::Char('2'),
        "2",
        Action::Show(View::Sessions),
        "sessions (the latest 200)",
    ),
    (
        KeyCode::Char('3'),
        "3",
        Action::Show(View::Failures),
        "failures with their error text",
    ),
    (
        KeyCode::Char('4'),
        "4",
        Action::Show(View::Workers),
        "workers",
    ),
    (
        KeyCode::Char('5'),
        "5",
        Action::Show(View::Processors),
        "processors",
    ),
    (KeyCode::Up, "Up", Action::Up, "scroll up"),
    (KeyCode::Char('k'), "k", Action::Up, "scroll up"),
    (KeyCode::Down, "Down", Action::Down, "scroll down"),
    (KeyCode::Char('j'), "j", Action::Down, "scroll down"),
];

/// The action bound to `key`, if any; Ctrl-C always quits.
pub fn action(key: KeyEvent) -> Option<Action> {
    if key.code == KeyCode::Char('c') && key.modifiers.contains(KeyModifiers::CONTROL) {
        return Some(Action::Quit);
    }
    KEYS.iter()
        .find(|(code, _, _, _)| *code == key.code)
        .map(|(_, _, action, _)| *action)
}
