//! A stored transcript's files. Capture sends a session as one body — the main transcript,
//! then each subagent file, each starting on a line of its own (a newline is put between two
//! files when the first does not end with one) — and names the files in the header
//! [`PARTS_HEADER`], so that the server can give them back one by one (`sessionflow restore`).
//!
//! A part is known by its name, its size as sent and its lines: the size lets the server check
//! the header against the body as it streams ([`PartsCheck`]); the lines let a stored body be cut
//! back into its files ([`Parts::split`]) even when the server stored it redacted, which changes
//! bytes inside lines but never the lines themselves.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The request (upload) and response (transcript download) header naming the body's files, as
/// the JSON of [`Parts`].
pub const PARTS_HEADER: &str = "x-sessionflow-parts";

/// The transcript download's header naming the session's workspace (Claude Code's project
/// folder, where the files go back).
pub const WORKSPACE_HEADER: &str = "x-sessionflow-workspace";

/// Most files one session may name.
pub const MAX_PARTS: usize = 4096;

/// One file of a session's body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Part {
    /// `<session id>.jsonl` for the main transcript (the first part), `agent-….jsonl` for a
    /// subagent file (restored into `<session id>/subagents/`).
    pub name: String,
    /// Bytes of the file as sent.
    pub size: u64,
    /// Its lines: newlines, plus one for a last line without a newline.
    pub lines: u64,
    /// Its last line has no newline (the body holds one after it when another file follows).
    pub unterminated: bool,
}

/// The files of a session's body, main transcript first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
pub struct Parts(pub Vec<Part>);

impl Parts {
    /// The header's value.
    pub fn to_header(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// The parts a header names for `session_id`, checked: 1 to [`MAX_PARTS`] files, the first
    /// `<session_id>.jsonl`, the others distinct `agent-*.jsonl` names of `A-Z a-z 0-9 . _ -`,
    /// each with no more lines than bytes.
    pub fn parse(session_id: &str, header: &str) -> Result<Parts, String> {
        let parts: Parts = serde_json::from_str(header)
            .map_err(|e| format!("{PARTS_HEADER} is not a list of {{name, size, lines}}: {e}"))?;
        let files = &parts.0;
        if files.is_empty() || files.len() > MAX_PARTS {
            return Err(format!(
                "{PARTS_HEADER} must name 1 to {MAX_PARTS} files, not {}",
                files.len()
            ));
        }
        let main = format!("{session_id}.jsonl");
        if files[0].name != main {
            return Err(format!(
                "{PARTS_HEADER}: the first file must be {main}, not {:?}",
                files[0].name
            ));
        }
        for (i, part) in files.iter().enumerate() {
            if i > 0 && !is_subagent_name(&part.name) {
                return Err(format!(
                    "{PARTS_HEADER}: {:?} is not a subagent file name (agent-….jsonl)",
                    part.name
                ));
            }
            if files[..i].iter().any(|other| other.name == part.name) {
                return Err(format!("{PARTS_HEADER} names {:?} twice", part.name));
            }
            if part.lines > part.size || (part.unterminated && part.lines == 0) {
                return Err(format!(
                    "{PARTS_HEADER}: {} cannot have {} lines{} in {} bytes",
                    part.name,
                    part.lines,
                    if part.unterminated {
                        ", the last open,"
                    } else {
                        ""
                    },
                    part.size
                ));
            }
        }
        Ok(parts)
    }

    /// Whether this is just one file (the main transcript): nothing to tell apart.
    pub fn is_single(&self) -> bool {
        self.0.len() <= 1
    }

    /// The files of a stored `body`, cut at the parts' lines: each part takes its number of
    /// lines, without the newline put after a file that did not end with one. Fails when the
    /// body's lines are not the parts' (a body stored without this header, or changed since).
    pub fn split<'b>(&self, body: &'b [u8]) -> Result<Vec<&'b [u8]>, String> {
        let mut files = Vec::with_capacity(self.0.len());
        let mut at = 0usize;
        for part in &self.0 {
            let start = at;
            for _ in 0..part.lines {
                if at >= body.len() {
                    return Err(format!(
                        "the stored body ends inside {} (it should have {} lines)",
                        part.name, part.lines
                    ));
                }
                match memchr::memchr(b'\n', &body[at..]) {
                    Some(n) => at += n + 1,
                    None => at = body.len(),
                }
            }
            // The newline after an unterminated last line was put there between two files.
            let end = if part.unterminated && at > start && body[at - 1] == b'\n' {
                at - 1
            } else {
                at
            };
            files.push(&body[start..end]);
        }
        if at != body.len() {
            return Err(format!(
                "the stored body has {} bytes after its {} files",
                body.len() - at,
                self.0.len()
            ));
        }
        Ok(files)
    }
}

/// `agent-<id>.jsonl` with `<id>` made of `A-Z a-z 0-9 . _ -`.
pub fn is_subagent_name(name: &str) -> bool {
    name.len() <= 200
        && name
            .strip_prefix("agent-")
            .and_then(|rest| rest.strip_suffix(".jsonl"))
            .is_some_and(|id| {
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            })
}

/// How many newlines `bytes` holds (vectorized: a transcript's bytes are counted as they stream
/// by, on the client and on the server).
pub fn newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Checks, as a body streams, that it is exactly the parts a header named: each file's size
/// and lines, with the newline between files where one is due.
#[derive(Debug)]
pub struct PartsCheck {
    parts: Vec<Part>,
    /// The part being read.
    index: usize,
    /// Its bytes still to come.
    left: u64,
    /// Its newlines so far.
    newlines: u64,
    /// The body's last byte so far.
    last: Option<u8>,
}

impl PartsCheck {
    pub fn new(parts: &Parts) -> Self {
        PartsCheck {
            left: parts.0.first().map_or(0, |p| p.size),
            parts: parts.0.clone(),
            index: 0,
            newlines: 0,
            last: None,
        }
    }

    /// The next chunk of the body.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), String> {
        while !chunk.is_empty() {
            if self.left == 0 {
                let separator = self.close_part()?;
                if separator {
                    if chunk[0] != b'\n' {
                        return Err(format!(
                            "{PARTS_HEADER}: {} does not start on a line of its own",
                            self.parts[self.index].name
                        ));
                    }
                    chunk = &chunk[1..];
                    self.last = Some(b'\n');
                }
                continue;
            }
            let n = (self.left.min(chunk.len() as u64)) as usize;
            self.newlines += newlines(&chunk[..n]);
            self.last = Some(chunk[n - 1]);
            self.left -= n as u64;
            chunk = &chunk[n..];
        }
        Ok(())
    }

    /// The body ended: every part must be complete.
    pub fn finish(mut self) -> Result<(), String> {
        if self.left > 0 {
            return Err(format!(
                "{PARTS_HEADER}: the body ends {} bytes short of {}'s end",
                self.left, self.parts[self.index].name
            ));
        }
        while self.index < self.parts.len() {
            if self.close_part()? {
                return Err(format!(
                    "{PARTS_HEADER}: the body ends before {}",
                    self.parts[self.index].name
                ));
            }
        }
        Ok(())
    }

    /// The part read is complete: checks its lines and moves to the next one (true when a
    /// newline must come first), or past the end.
    fn close_part(&mut self) -> Result<bool, String> {
        let part = self
            .parts
            .get(self.index)
            .ok_or_else(|| format!("{PARTS_HEADER}: the body is longer than the files it names"))?;
        let open = part.size > 0 && self.last != Some(b'\n');
        let lines = self.newlines + u64::from(open);
        if lines != part.lines || open != part.unterminated {
            return Err(format!(
                "{PARTS_HEADER}: {} has {lines} lines{}, not {}{}",
                part.name,
                if open { ", the last open" } else { "" },
                part.lines,
                if part.unterminated {
                    ", the last open"
                } else {
                    ""
                },
            ));
        }
        self.index += 1;
        self.newlines = 0;
        match self.parts.get(self.index) {
            Some(next) => {
                self.left = next.size;
                Ok(self.last.is_some_and(|b| b != b'\n'))
            }
            None => {
                self.left = 0;
                Ok(false)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The body capture sends for `files`, and their parts.
    fn joined(files: &[(&str, &[u8])]) -> (Vec<u8>, Parts) {
        let mut body = Vec::new();
        let mut parts = Vec::new();
        for (name, bytes) in files {
            if body.last().is_some_and(|b| *b != b'\n') {
                body.push(b'\n');
            }
            body.extend_from_slice(bytes);
            let lines = newlines(bytes) + u64::from(bytes.last().is_some_and(|b| *b != b'\n'));
            parts.push(Part {
                name: (*name).to_owned(),
                size: bytes.len() as u64,
                lines,
                unterminated: bytes.last().is_some_and(|b| *b != b'\n'),
            });
        }
        (body, Parts(parts))
    }

    const CASES: &[&[(&str, &[u8])]] = &[
        &[("s.jsonl", b"a\nb\n")],
        &[("s.jsonl", b"a\nb")],
        &[("s.jsonl", b"")],
        &[("s.jsonl", b"a\n"), ("agent-1.jsonl", b"x\ny\n")],
        &[("s.jsonl", b"a"), ("agent-1.jsonl", b"x\ny")],
        &[
            ("s.jsonl", b"a"),
            ("agent-1.jsonl", b""),
            ("agent-2.jsonl", b"z"),
        ],
        &[
            ("s.jsonl", b""),
            ("agent-1.jsonl", b"\n\n"),
            ("agent-2.jsonl", b""),
        ],
        &[
            ("s.jsonl", b"a\n"),
            ("agent-1.jsonl", b"b"),
            ("agent-2.jsonl", b"\nc"),
        ],
    ];

    #[test]
    fn a_body_splits_back_into_its_files_and_checks_in_any_chunks() {
        for files in CASES {
            let (body, parts) = joined(files);
            let split = parts.split(&body).unwrap();
            let want: Vec<&[u8]> = files.iter().map(|(_, b)| *b).collect();
            assert_eq!(split, want, "{files:?}");
            for size in [1, 2, 3, 100] {
                let mut check = PartsCheck::new(&parts);
                for chunk in body.chunks(size) {
                    check.feed(chunk).unwrap();
                }
                check.finish().unwrap_or_else(|e| panic!("{files:?}: {e}"));
            }
        }
    }

    #[test]
    fn a_body_that_is_not_its_parts_is_refused() {
        let (body, parts) = joined(&[("s.jsonl", b"a\n"), ("agent-1.jsonl", b"x\n")]);
        for bad in [
            [body.as_slice(), b"more\n"].concat(),
            body[..body.len() - 1].to_vec(),
            b"a\nxx".to_vec(),
            b"a\n\n".to_vec(),
        ] {
            let mut check = PartsCheck::new(&parts);
            let fed = check.feed(&bad);
            assert!(fed.is_err() || check.finish().is_err(), "{bad:?}");
        }
        assert!(parts.split(b"a\nx\ny\n").is_err());
        assert!(parts.split(b"a\n").is_err());
    }

    #[test]
    fn redacted_lines_still_split_where_the_files_were() {
        let (_, parts) = joined(&[("s.jsonl", b"key=secret\n"), ("agent-1.jsonl", b"x=secret")]);
        let stored = b"key=[REDACTED]\nx=[REDACTED]";
        let split = parts.split(stored).unwrap();
        assert_eq!(split, [&b"key=[REDACTED]\n"[..], &b"x=[REDACTED]"[..]]);
    }

    #[test]
    fn headers_name_the_main_file_first_and_subagent_files_after() {
        let part = |name: &str, size: u64, lines: u64| Part {
            name: name.to_owned(),
            size,
            lines,
            unterminated: false,
        };
        let good = Parts(vec![part("s.jsonl", 2, 1), part("agent-a1.jsonl", 3, 1)]);
        assert_eq!(Parts::parse("s", &good.to_header()).unwrap(), good);
        let open = Part {
            unterminated: true,
            ..part("s.jsonl", 0, 0)
        };
        for bad in [
            Parts(vec![]),
            Parts(vec![part("other.jsonl", 2, 1)]),
            Parts(vec![part("s.jsonl", 2, 3)]),
            Parts(vec![open]),
            Parts(vec![part("s.jsonl", 2, 1), part("../x.jsonl", 1, 1)]),
            Parts(vec![part("s.jsonl", 2, 1), part("agent-a/b.jsonl", 1, 1)]),
            Parts(vec![part("s.jsonl", 2, 1), part("agent-.jsonl", 1, 1)]),
            Parts(vec![
                part("s.jsonl", 2, 1),
                part("agent-1.jsonl", 1, 1),
                part("agent-1.jsonl", 1, 1),
            ]),
        ] {
            assert!(Parts::parse("s", &bad.to_header()).is_err(), "{bad:?}");
        }
        for bad in [
            "not json",
            r#"[{"name":"s.jsonl","size":2,"lines":1,"unterminated":false,"path":"/etc"}]"#,
        ] {
            assert!(Parts::parse("s", bad).is_err(), "{bad}");
        }
    }
}
