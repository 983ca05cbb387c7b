//! The key table: one list drives both the key handler and the `?` help screen.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    ToggleHelp,
    TogglePause,
}

/// Key, its label in the help, and what it does.
pub const KEYS: [(KeyCode, &str, Action, &str); 4] = [
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
