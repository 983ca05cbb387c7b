//! The key tables: one list of bindings drives both the key handler and the `?` help screen;
//! a second one does the same for the keys of a prompt (the `/` filter and the reparse question).

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::app::View;

/// What a key does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Quit,
    Back,
    ToggleHelp,
    TogglePause,
    NextView,
    Show(View),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    Open,
    Reparse,
    Filter,
    NextSort,
    ReverseOrder,
}

/// A key, with Ctrl held or not (Shift is part of the character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub code: KeyCode,
    pub ctrl: bool,
}

const fn key(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

const fn ch(c: char) -> Key {
    key(KeyCode::Char(c))
}

/// Keys, their label in the help, what they do, and the help line.
pub struct Binding {
    pub keys: &'static [Key],
    pub label: &'static str,
    pub action: Action,
    pub what: &'static str,
}

const fn bind(
    keys: &'static [Key],
    label: &'static str,
    action: Action,
    what: &'static str,
) -> Binding {
    Binding {
        keys,
        label,
        action,
        what,
    }
}

pub const KEYS: [Binding; 23] = [
    bind(
        &[
            ch('q'),
            Key {
                code: KeyCode::Char('c'),
                ctrl: true,
            },
        ],
        "q ^C",
        Action::Quit,
        "quit (q closes the help first)",
    ),
    bind(
        &[key(KeyCode::Esc)],
        "Esc",
        Action::Back,
        "back: close, or clear filter",
    ),
    bind(
        &[ch('?')],
        "?",
        Action::ToggleHelp,
        "show or hide this help",
    ),
    bind(
        &[ch('p')],
        "p",
        Action::TogglePause,
        "pause or resume refreshing",
    ),
    bind(&[key(KeyCode::Tab)], "Tab", Action::NextView, "next view"),
    bind(&[ch('1')], "1", Action::Show(View::Dashboard), "dashboard"),
    bind(&[ch('2')], "2", Action::Show(View::Sessions), "sessions"),
    bind(
        &[ch('3')],
        "3",
        Action::Show(View::Failures),
        "failures with their error text",
    ),
    bind(&[ch('4')], "4", Action::Show(View::Workers), "workers"),
    bind(
        &[ch('5')],
        "5",
        Action::Show(View::Processors),
        "processors",
    ),
    bind(
        &[ch('6')],
        "6",
        Action::Show(View::Usage),
        "usage: tokens and cost by day",
    ),
    bind(
        &[ch('7')],
        "7",
        Action::Show(View::Search),
        "search every session",
    ),
    bind(&[key(KeyCode::Up), ch('k')], "↑ k", Action::Up, "move up"),
    bind(
        &[key(KeyCode::Down), ch('j')],
        "↓ j",
        Action::Down,
        "move down",
    ),
    bind(
        &[key(KeyCode::PageUp)],
        "PgUp",
        Action::PageUp,
        "one screen up",
    ),
    bind(
        &[key(KeyCode::PageDown)],
        "PgDn",
        Action::PageDown,
        "one screen down",
    ),
    bind(
        &[key(KeyCode::Home), ch('g')],
        "Home g",
        Action::Top,
        "to the first row",
    ),
    bind(
        &[key(KeyCode::End), ch('G')],
        "End G",
        Action::Bottom,
        "to the last row",
    ),
    bind(
        &[key(KeyCode::Enter)],
        "Enter",
        Action::Open,
        "open the selected session or hit",
    ),
    bind(
        &[ch('r')],
        "r",
        Action::Reparse,
        "reparse failed/parsed session",
    ),
    bind(
        &[ch('/')],
        "/",
        Action::Filter,
        "filter sessions; elsewhere search",
    ),
    bind(
        &[ch('s')],
        "s",
        Action::NextSort,
        "sort: created/cost/tokens/msgs",
    ),
    bind(&[ch('S')], "S", Action::ReverseOrder, "reverse the order"),
];

/// The action bound to `key`, if any.
pub fn action(key: KeyEvent) -> Option<Action> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    KEYS.iter()
        .find(|binding| {
            binding
                .keys
                .iter()
                .any(|k| k.code == key.code && k.ctrl == ctrl)
        })
        .map(|binding| binding.action)
}

/// What a key does while a prompt is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputAction {
    Type(char),
    Erase,
    Accept,
    Cancel,
}

/// The prompt's keys other than typing, their label and help line.
pub const INPUT_KEYS: [(KeyCode, &str, InputAction, &str); 3] = [
    (
        KeyCode::Enter,
        "Enter",
        InputAction::Accept,
        "keep the filter typed",
    ),
    (
        KeyCode::Esc,
        "Esc",
        InputAction::Cancel,
        "drop it, or answer no",
    ),
    (
        KeyCode::Backspace,
        "Bksp",
        InputAction::Erase,
        "erase a character",
    ),
];

/// The prompt's action for `key`: Ctrl-C still quits (None here; the caller checks
/// [`action`] first for it), listed keys, or a typed character.
pub fn input_action(key: KeyEvent) -> Option<InputAction> {
    if key.modifiers.contains(KeyModifiers::CONTROL) {
        return None;
    }
    INPUT_KEYS
        .iter()
        .find(|(code, ..)| *code == key.code)
        .map(|(_, _, action, _)| *action)
        .or(match key.code {
            KeyCode::Char(c) => Some(InputAction::Type(c)),
            _ => None,
        })
}
