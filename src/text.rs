//! Text from elsewhere (transcripts, the server, hook input) made safe to print: control
//! characters would move the cursor, recolour or retitle the terminal, or forge lines.

use std::borrow::Cow;

/// `text` with every control character (newlines and ANSI escapes included) written as a
/// visible escape such as `\u{1b}` or `\n`.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escaped;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(escaped("Bash"), "Bash");
        assert_eq!(escaped("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escaped("one\ntwo\r\u{7}"), "one\\ntwo\\r\\u{7}");
        assert_eq!(escaped("é ✓ 日本"), "é ✓ 日本");
    }
}
